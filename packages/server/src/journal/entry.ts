import { hkdfSha256, hmacSha256, PadlockError, SecretBytes, type KekRing } from '@padlock/core';
import { createHash, timingSafeEqual } from 'node:crypto';

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
 *
 * Entries are never re-MAC'd (other servers keep appending after them), so a
 * KEK that MAC'd entries would be needed for ever. A *re-key entry* ends that
 * (docs/spec.md, "Shred journal"): appended to the chain like a shred, it
 * carries the digest of every entry before it and is MAC'd under the active
 * KEK and under the KEK being moved from. Once it verifies, the entries it
 * covers are checked against its digest instead of their own MACs, so the
 * old KEK can be retired; an entry before it that is edited, removed,
 * inserted or reordered changes the digest.
 *
 * Digest: D(0) = 32 zero bytes; D(n) = SHA-256(D(n-1) || u32 len || message(n) || MAC(n) [|| fromMac(n)]).
 * Re-key message: "padlock/v1/shred-journal/rekey" || u64 position || u64 at || u32 len || kid
 *          || u32 len || fromKid || D(position - 1) || previous MAC.
 * (The two labels cannot be confused: the shred label followed by "/rekey" would be a position
 * above 2^53, which no entry has.)
 */

export const JOURNAL_LABEL = 'padlock/v1/shred-journal';
export const REKEY_LABEL = 'padlock/v1/shred-journal/rekey';
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

/** What a re-key entry adds (its userId is "" and its category null: it shreds nothing). */
export interface Rekey {
  /** The KEK moved from: `fromMac` is made under it. */
  readonly fromKid: string;
  readonly fromMac: Uint8Array;
  /** D(position - 1): the digest of every entry before this one. */
  readonly digest: Uint8Array;
}

export interface JournalEntry extends ShredRequest {
  readonly position: number;
  /** The KEK whose derived key made the MAC. */
  readonly kid: string;
  readonly mac: Uint8Array;
  /** Present on a re-key entry only. */
  readonly rekey?: Rekey;
}

/** A re-key entry before its MACs: what `JournalKeys.rekeyEntry` signs. */
export interface UnsignedRekey {
  readonly position: number;
  readonly at: number;
  readonly kid: string;
  readonly fromKid: string;
  readonly digest: Uint8Array;
}

/** Derives and keeps one MAC key per KEK; the keys never leave this object. */
export class JournalKeys {
  readonly #keys = new Map<string, SecretBytes>();

  constructor(private readonly keks: KekRing) {}

  get activeKid(): string {
    return this.keks.active.kid;
  }

  /** Whether the KEK `kid` is loaded (its entries' own MACs can be checked). */
  loaded(kid: string): boolean {
    return this.keks.find(kid) !== undefined;
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

  /** The MAC of a shred entry that follows one whose MAC is `previous`. */
  mac(entry: Omit<JournalEntry, 'mac' | 'rekey'>, previous: Uint8Array): Buffer {
    return hmacSha256(this.#key(entry.kid).expose(), macMessage(entry, previous));
  }

  /** A re-key entry, MAC'd under its kid and its fromKid (both must be loaded). */
  rekeyEntry(unsigned: UnsignedRekey, previous: Uint8Array): JournalEntry {
    const message = rekeyMessage(unsigned, previous);
    return {
      position: unsigned.position,
      userId: '',
      category: null,
      at: unsigned.at,
      kid: unsigned.kid,
      mac: hmacSha256(this.#key(unsigned.kid).expose(), message),
      rekey: {
        fromKid: unsigned.fromKid,
        fromMac: hmacSha256(this.#key(unsigned.fromKid).expose(), message),
        digest: Buffer.from(unsigned.digest),
      },
    };
  }

  /** Checks `entry` follows (position, MAC) `previous`; throws JOURNAL_CORRUPT naming what is wrong. */
  verify(entry: JournalEntry, previous: { readonly position: number; readonly mac: Uint8Array }): void {
    if (entry.position !== previous.position + 1) {
      throw new PadlockError(
        'JOURNAL_CORRUPT',
        `journal entry at position ${entry.position} follows position ${previous.position}: an entry is missing or out of order`,
      );
    }
    const forged = (): PadlockError =>
      new PadlockError(
        'JOURNAL_CORRUPT',
        `journal entry at position ${entry.position} does not authenticate: edited, forged, or its predecessor was changed`,
      );
    if (entry.rekey === undefined) {
      if (!equalMac(this.mac(entry, previous.mac), entry.mac)) throw forged();
      return;
    }
    // A re-key entry is trusted for what it covers, so its own kid must be loaded and its MAC must
    // hold; the MAC under the KEK moved from is checked too while that KEK is still loaded.
    const message = rekeyMessage({ ...entry, fromKid: entry.rekey.fromKid, digest: entry.rekey.digest }, previous.mac);
    if (entry.rekey.digest.length !== MAC_LENGTH) throw forged();
    if (!equalMac(hmacSha256(this.#key(entry.kid).expose(), message), entry.mac)) throw forged();
    if (this.loaded(entry.rekey.fromKid)) {
      if (!equalMac(hmacSha256(this.#key(entry.rekey.fromKid).expose(), message), entry.rekey.fromMac)) throw forged();
    } else if (entry.rekey.fromMac.length !== MAC_LENGTH) {
      throw forged();
    }
  }

  wipe(): void {
    for (const key of this.#keys.values()) key.wipe();
    this.#keys.clear();
  }
}

function equalMac(expected: Buffer, actual: Uint8Array): boolean {
  return actual.length === MAC_LENGTH && timingSafeEqual(expected, actual);
}

function text(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(bytes.length);
  return Buffer.concat([head, bytes]);
}

function u64(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(BigInt(value));
  return bytes;
}

function rekeyMessage(entry: UnsignedRekey, previous: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from(REKEY_LABEL, 'latin1'),
    u64(entry.position),
    u64(entry.at),
    text(entry.kid),
    text(entry.fromKid),
    entry.digest,
    previous,
  ]);
}

/** D(n) from D(n-1) and entry n (which follows an entry whose MAC is `previous`). */
export function nextDigest(digest: Uint8Array, entry: JournalEntry, previous: Uint8Array): Buffer {
  const message =
    entry.rekey === undefined
      ? macMessage(entry, previous)
      : rekeyMessage({ ...entry, fromKid: entry.rekey.fromKid, digest: entry.rekey.digest }, previous);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(message.length);
  const hash = createHash('sha256').update(digest).update(length).update(message).update(entry.mac);
  if (entry.rekey !== undefined) hash.update(entry.rekey.fromMac);
  return hash.digest();
}

function macMessage(entry: Omit<JournalEntry, 'mac' | 'rekey'>, previous: Uint8Array): Buffer {
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
  const mac = Buffer.from(entry.mac).toString('base64url');
  if (entry.rekey !== undefined) {
    return `${JSON.stringify({
      position: entry.position,
      at: entry.at,
      kid: entry.kid,
      mac,
      rekey: {
        fromKid: entry.rekey.fromKid,
        fromMac: Buffer.from(entry.rekey.fromMac).toString('base64url'),
        digest: Buffer.from(entry.rekey.digest).toString('base64url'),
      },
    })}\n`;
  }
  return `${JSON.stringify({
    position: entry.position,
    userId: entry.userId,
    category: entry.category,
    at: entry.at,
    kid: entry.kid,
    mac,
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
  const isRekey = keys === 'at,kid,mac,position,rekey';
  if (!isRekey && keys !== 'at,category,kid,mac,position,userId') throw bad(`unexpected fields: ${keys}`);
  const { position, userId, category, at, kid, mac } = o;
  if (!Number.isSafeInteger(position) || (position as number) < 1) throw bad('position is not a positive integer');
  if (!Number.isSafeInteger(at) || (at as number) < 0) throw bad('at is not a time');
  if (typeof kid !== 'string' || kid.length === 0) throw bad('kid is not a string');
  const macBytes = macField(mac, 'mac', bad);
  if (isRekey) {
    const r = o['rekey'];
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad('rekey is not a JSON object');
    const rekey = r as Record<string, unknown>;
    if (Object.keys(rekey).sort().join(',') !== 'digest,fromKid,fromMac') throw bad('rekey has unexpected fields');
    if (typeof rekey['fromKid'] !== 'string' || rekey['fromKid'].length === 0)
      throw bad('rekey.fromKid is not a string');
    return {
      position: position as number,
      userId: '',
      category: null,
      at: at as number,
      kid,
      mac: macBytes,
      rekey: {
        fromKid: rekey['fromKid'],
        fromMac: macField(rekey['fromMac'], 'rekey.fromMac', bad),
        digest: macField(rekey['digest'], 'rekey.digest', bad),
      },
    };
  }
  if (typeof userId !== 'string' || userId.length === 0) throw bad('userId is not a string');
  if (category !== null && (typeof category !== 'string' || category.length === 0))
    throw bad('category is not a string or null');
  return {
    position: position as number,
    userId,
    category: category,
    at: at as number,
    kid,
    mac: macBytes,
  };
}

function macField(value: unknown, name: string, bad: (why: string) => PadlockError): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(value))
    throw bad(`${name} is not 32 bytes of base64url`);
  const bytes = Buffer.from(value, 'base64url');
  // One spelling per MAC: base64url's last character has spare bits that decoding ignores.
  if (bytes.toString('base64url') !== value) throw bad(`${name} is not in canonical base64url`);
  return bytes;
}

/**
 * Verifies a chain entry by entry, oldest first, from position 1. An entry
 * under a KEK that is loaded is checked by its own MAC at once. An entry
 * under a KEK that is not loaded (retired after a re-key) is held back until
 * the next re-key entry: that entry's MAC (under a loaded KEK) covers the
 * digest of everything before it, so the held entries are released only if
 * the digest matches. `accept` returns the entries verified by this one, in
 * chain order; `finish` throws when entries are still held (no re-key
 * covers them: their KEK is simply not loaded).
 */
export class ChainVerifier {
  #position = 0;
  #mac: Uint8Array = GENESIS_MAC;
  #digest: Uint8Array = Buffer.alloc(MAC_LENGTH);
  #held: JournalEntry[] = [];
  #firstHeld: JournalEntry | undefined;
  /** Entries per kid since the last re-key entry (the re-key entry counts under its own kid). */
  #since = new Map<string, number>();
  #lastRekey = 0;

  /** `keep`: hold entries to release them (entriesAfter); without it only the chain state is kept. */
  constructor(
    private readonly keys: JournalKeys,
    private readonly keep: boolean,
  ) {}

  get head(): { readonly position: number; readonly mac: Uint8Array } {
    return { position: this.#position, mac: this.#mac };
  }

  /** D(head position): what a re-key entry appended next must carry. */
  get digest(): Uint8Array {
    return this.#digest;
  }

  /** Position of the last re-key entry; 0 when there is none. */
  get lastRekey(): number {
    return this.#lastRekey;
  }

  /** Entries per kid since the last re-key entry, most recently used kid last. */
  get kidsSinceRekey(): ReadonlyMap<string, number> {
    return this.#since;
  }

  copy(): ChainVerifier {
    const copy = new ChainVerifier(this.keys, this.keep);
    copy.#position = this.#position;
    copy.#mac = this.#mac;
    copy.#digest = this.#digest;
    copy.#held = [...this.#held];
    copy.#firstHeld = this.#firstHeld;
    copy.#since = new Map(this.#since);
    copy.#lastRekey = this.#lastRekey;
    return copy;
  }

  accept(entry: JournalEntry): JournalEntry[] {
    const previous = { position: this.#position, mac: this.#mac };
    let released: JournalEntry[];
    if (entry.rekey !== undefined) {
      if (!this.keys.loaded(entry.kid)) throw notLoaded(entry);
      if (entry.position !== previous.position + 1 || !equalDigest(this.#digest, entry.rekey.digest)) {
        this.keys.verify(entry, previous); // names a gap in positions first
        throw new PadlockError(
          'JOURNAL_CORRUPT',
          `the re-key entry at position ${entry.position} does not match the entries before it: ` +
            'one was edited, removed, inserted or reordered',
        );
      }
      this.keys.verify(entry, previous);
      released = [...this.#held, entry];
      this.#held = [];
      this.#firstHeld = undefined;
      this.#since = new Map();
      this.#lastRekey = entry.position;
    } else if (this.keys.loaded(entry.kid)) {
      this.keys.verify(entry, previous);
      released = this.#firstHeld === undefined ? [entry] : [];
      if (this.#firstHeld !== undefined && this.keep) this.#held.push(entry);
    } else {
      if (entry.position !== previous.position + 1) this.keys.verify(entry, previous); // throws: the gap
      this.#firstHeld ??= entry;
      if (this.keep) this.#held.push(entry);
      released = [];
    }
    this.#digest = nextDigest(this.#digest, entry, previous.mac);
    this.#position = entry.position;
    this.#mac = entry.mac;
    const count = this.#since.get(entry.kid) ?? 0;
    this.#since.delete(entry.kid);
    this.#since.set(entry.kid, count + 1);
    return released;
  }

  /** Throws when an entry is held: its KEK is not loaded and no later re-key entry covers it. */
  finish(): void {
    if (this.#firstHeld !== undefined) throw notLoaded(this.#firstHeld);
  }
}

/** The KEK a re-key entry appended now moves from: the last one other than `active` since the last re-key. */
export function rekeyFrom(chain: ChainVerifier, active: string): string | undefined {
  let from: string | undefined;
  for (const kid of chain.kidsSinceRekey.keys()) if (kid !== active) from = kid;
  return from;
}

function notLoaded(entry: JournalEntry): PadlockError {
  return new PadlockError(
    'JOURNAL_CORRUPT',
    `journal entry at position ${entry.position} names KEK "${entry.kid}", which is not loaded` +
      (entry.rekey === undefined ? ', and no re-key entry after it covers it' : ''),
  );
}

function equalDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
