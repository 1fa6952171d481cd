// A small service's own database of user records: a JSON file holding only
// Padlock envelopes. The service never sees a key; after a user's keychain is
// shredded, the envelopes stay in the file (and in every backup and copy of
// it) but can no longer be read by anyone.
import { KeychainShredded } from '@padlock/client';
import { Buffer } from 'node:buffer';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export class UserRecords {
  /**
   * @param {import('@padlock/client').PadlockClient} padlock
   * @param {string} file path of the JSON database
   */
  constructor(padlock, file) {
    this.padlock = padlock;
    this.file = file;
  }

  /** At signup: Padlock creates the user's keychain (idempotent). */
  async signup(userId) {
    await this.padlock.createKeychain(userId);
  }

  /** Encrypts the record under the user's "profile" key and stores the envelope (base64). */
  async save(userId, record) {
    const envelope = await this.padlock.encrypt(userId, 'profile', JSON.stringify(record));
    const db = this.#read();
    db.users[userId] = { profile: envelope.toString('base64'), savedAt: new Date().toISOString() };
    this.#write(db);
  }

  /** The user's record, or { status: 'deleted' } once their keys are shredded. */
  async load(userId) {
    const row = this.#read().users[userId];
    if (row === undefined) return { status: 'absent' };
    try {
      const text = await this.padlock.decryptText(userId, Buffer.from(row.profile, 'base64'));
      return { status: 'ok', record: JSON.parse(text) };
    } catch (error) {
      // Shredded keys mean deleted data: the envelope is now noise, however many copies exist.
      if (error instanceof KeychainShredded) return { status: 'deleted' };
      throw error;
    }
  }

  /** The raw rows, as anyone with the database file (or a backup) would see them. */
  rawRows() {
    return this.#read().users;
  }

  #read() {
    return existsSync(this.file) ? JSON.parse(readFileSync(this.file, 'utf8')) : { users: {} };
  }

  #write(db) {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(db, null, 2));
    renameSync(`${this.file}.tmp`, this.file);
  }
}
