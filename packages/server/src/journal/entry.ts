import { hkdfSha256, hmacSha256, PadlockError, SecretBytes, type KekRing } from '@padlock/core';
import { timingSafeEqual } from 'node:crypto';

/*
 * One shred journal entry and its MAC (DESIGN.md section 11). The journal
 * lives apart from the store, so it is as untrusted as the store: every entry
 * carries HMAC-SHA256 under a key derived from a KEK with a label of its own,
 * over its fields and the previous entry's MAC. Positions count up from 1 with
 * no gap, so an edited, removed, inserted or reordered entry breaks the chain.
 *
 * Key: HKDF-SHA256(IKM = KEK, salt = "", info = "padlock/v1/shred-journal", 32).
 * Message: label || u64 position || u32 len || userId || u8 hasCategory
 *          || u32 len || category || u64 at || u32 len || kid || previous MAC (32 bytes).
 */

export const JOURNAL_LABEL = 'padlock/v1/shred-journal';
export const MAC_LENGTH = 32;
/** The "previous MAC" of the first entry. */
export const GENESIS_MAC: Uint8Array = new Uint8Array(MAC_LENGTH);

export interface ShredRequest {
  readonly userId: string;
  /** null: every category (the whole keychain). */
  readonly category: string | null;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

export interface JournalEntry extends ShredRequest {
  readonly position: number;
  /** The KEK whose derived key made the MAC. */
  readonly kid: string;
  readonly mac: Uint8Array;
}

/** Derives and keeps one MAC key per KEK; the keys never leave this object. */
export class JournalKeys {
  readonly #keys = new Map<string, SecretBytes>();

  constructor(private readonly keks: KekRing) {}

  get activeKid(): string {
    return this.keks.active.kid;
  }

  #key(kid: string): SecretBytes {
    let key = this.#keys.get(kid);
    if (key === undefined) {
      const kek = this.keks.find(kid);
      if (kek === undefined)
        throw new PadlockError('JOURNAL_CORRUPT', `a journal entry names KEK "${kid}", which is not loaded`);
      key = SecretBytes.adopt(hkdfSha256(kek.key.expose(), Buffer.alloc(0), Buffer.from(JOURNAL_LABEL, 'latin1'), 32));
      this.#keys.set(kid, key);
    }
    return key;
  }

  /** The MAC of an entry that follows one whose MAC is `previous`. */
  mac(entry: Omit<JournalEntry, 'mac'>, previous: Uint8Array): Buffer {
    return hmacSha256(this.#key(entry.kid).expose(), macMessage(entry, previous));
  }

  /** Checks `entry` follows (position, MAC) `previous`; throws JOURNAL_CORRUPT naming what is wrong. */
  verify(entry: JournalEntry, previous: { readonly position: number; readonly mac: Uint8Array }): void {
    if (entry.position !== previous.position + 1) {
      throw new PadlockError(
        'JOURNAL_CORRUPT',
        `journal entry at position ${entry.position} follows position ${previous.position}: an entry is missing or out of order`,
      );
    }
    const expected = this.mac(entry, previous.mac);
    if (entry.mac.length !== MAC_LENGTH || !timingSafeEqual(expected, entry.mac)) {
      throw new PadlockError(
        'JOURNAL_CORRUPT',
        `journal entry at position ${entry.position} does not authenticate: edited, forged, or its predecessor was changed`,
      );
    }
  }

  wipe(): void {
    for (const key of this.#keys.values()) key.wipe();
    this.#keys.clear();
  }
}

function macMessage(entry: Omit<JournalEntry, 'mac'>, previous: Uint8Array): Buffer {
  const text = (value: string): Buffer => {
    const bytes = Buffer.from(value, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(bytes.length);
    return Buffer.concat([head, bytes]);
  };
  const u64 = (value: number): Buffer => {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(BigInt(value));
    return bytes;
  };
  return Buffer.concat([
    Buffer.from(JOURNAL_LABEL, 'latin1'),
    u64(entry.position),
    text(entry.userId),
    Buffer.of(entry.category === null ? 0 : 1),
    text(entry.category ?? ''),
    u64(entry.at),
    text(entry.kid),
    previous,
  ]);
}

/** The longest line the file journal writes or accepts (user ids and categories are short). */
export const MAX_LINE_BYTES = 1024;

/** One entry as a line of the file journal (JSON, then "\n"). */
export function encodeLine(entry: JournalEntry): string {
  return `${JSON.stringify({
    position: entry.position,
    userId: entry.userId,
    category: entry.category,
    at: entry.at,
    kid: entry.kid,
    mac: Buffer.from(entry.mac).toString('base64url'),
  })}\n`;
}

/** Parses one line (without its "\n"); throws JOURNAL_CORRUPT with `where` on anything malformed. */
export function decodeLine(line: string, where: string): JournalEntry {
  const bad = (why: string): PadlockError => new PadlockError('JOURNAL_CORRUPT', `${where}: ${why}`);
  if (Buffer.byteLength(line) > MAX_LINE_BYTES) throw bad(`line longer than ${MAX_LINE_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw bad('not a JSON entry');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'at,category,kid,mac,position,userId') throw bad(`unexpected fields: ${keys}`);
  const { position, userId, category, at, kid, mac } = o;
  if (!Number.isSafeInteger(position) || (position as number) < 1) throw bad('position is not a positive integer');
  if (typeof userId !== 'string' || userId.length === 0) throw bad('userId is not a string');
  if (category !== null && (typeof category !== 'string' || category.length === 0))
    throw bad('category is not a string or null');
  if (!Number.isSafeInteger(at) || (at as number) < 0) throw bad('at is not a time');
  if (typeof kid !== 'string' || kid.length === 0) throw bad('kid is not a string');
  if (typeof mac !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(mac)) throw bad('mac is not 32 bytes of base64url');
  const macBytes = Buffer.from(mac, 'base64url');
  // One spelling per MAC: base64url's last character has spare bits that decoding ignores.
  if (macBytes.toString('base64url') !== mac) throw bad('mac is not in canonical base64url');
  return {
    position: position as number,
    userId,
    category: category,
    at: at as number,
    kid,
    mac: macBytes,
  };
}
