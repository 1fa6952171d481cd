import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { serviceRow } from '../service-rows.js';
import { runKeyStoreConformance, type RowEdit } from './conformance.js';
import { SqliteKeyStore } from './sqlite.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'padlock-sqlite-'));
}

runKeyStoreConformance('sqlite', () => {
  const dir = tempDir();
  const path = join(dir, 'padlock.db');
  const peers: SqliteKeyStore[] = [];
  const store = new SqliteKeyStore({ path, busyTimeoutMs: 2000 });
  return Promise.resolve({
    store,
    openPeer: () => {
      const peer = new SqliteKeyStore({ path, busyTimeoutMs: 2000 });
      peers.push(peer);
      return Promise.resolve(peer);
    },
    dispose: async () => {
      await store.close();
      for (const peer of peers) await peer.close();
      rmSync(dir, { recursive: true, force: true });
    },
    tamper: (edit: RowEdit) => {
      // Another program writing the file, as an attacker with the database but not the KEK would.
      const db = new Database(path);
      try {
        if (edit.table === 'holds')
          db.prepare('UPDATE holds SET released_at = ? WHERE user_id = ? AND hold_id = ?').run(
            edit.releasedAt,
            edit.userId,
            edit.holdId,
          );
        else
          db.prepare('UPDATE schedules SET execute_at = ? WHERE schedule_id = ?').run(edit.executeAt, edit.scheduleId);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
  });
});

describe('SQLite shred leaves no bytes behind', () => {
  it('holds none of the shredded wrapped blobs in the database file or WAL after a shred', async () => {
    const dir = tempDir();
    const store = new SqliteKeyStore({ path: join(dir, 'padlock.db'), busyTimeoutMs: 1000 });
    try {
      const blobs = Array.from({ length: 20 }, () => randomBytes(70));
      for (const [i, wrapped] of blobs.entries()) {
        await store.insertKeys(`user-${i}`, [{ category: 'profile', version: 1, wrapped, createdAt: Date.now() }]);
      }
      // A keeper row written after, so the shredded cells are not simply at the end of the page.
      await store.insertKeys('keeper', [{ category: 'profile', version: 1, wrapped: randomBytes(70), createdAt: 1 }]);
      const contents = (): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
      assert.ok(
        blobs.every((b) => contents().includes(b)),
        'the blobs are in the files before the shred (the scan can find them)',
      );
      for (let i = 0; i < blobs.length; i++) await store.shred(`user-${i}`, undefined, Date.now());
      const after = contents();
      const found = blobs.filter((b) => after.includes(b.subarray(0, 16)));
      assert.equal(found.length, 0, `${found.length} of ${blobs.length} shredded blobs still readable`);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite schema migration', () => {
  it('adds the columns a file made before them lacks, keeps its rows, and does it once', async () => {
    const dir = tempDir();
    const path = join(dir, 'padlock.db');
    try {
      // The services table as the first release made it.
      const old = new Database(path);
      old.exec(`CREATE TABLE services (
        service_id TEXT PRIMARY KEY, wrapped_key BLOB NOT NULL, read_categories TEXT NOT NULL,
        can_create INTEGER NOT NULL, can_rotate INTEGER NOT NULL, can_shred INTEGER NOT NULL,
        created_at INTEGER NOT NULL) WITHOUT ROWID`);
      old.prepare('INSERT INTO services VALUES (?, ?, ?, 1, 0, 1, 1234)').run('legacy', randomBytes(70), 'profile');
      old.close();
      for (let open = 0; open < 2; open++) {
        const store = new SqliteKeyStore({ path, busyTimeoutMs: 1000 });
        const read = await store.getService('legacy');
        assert.deepEqual(read?.tlsIdentities, open === 0 ? [] : ['CN=legacy']);
        assert.equal(read?.generation, open);
        assert.equal(read?.mac, null);
        assert.deepEqual(read?.credentialStates, []);
        assert.deepEqual(read?.permissions, {
          read: ['profile'],
          create: true,
          rotate: false,
          shred: true,
          hold: false,
        });
        if (read !== undefined) {
          const row = serviceRow(read);
          assert.equal(
            await store.updateService({ ...row, tlsIdentities: ['CN=legacy'], generation: open + 1 }, open),
            true,
          );
        }
        assert.deepEqual((await store.getService('legacy'))?.tlsIdentities, ['CN=legacy']);
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
