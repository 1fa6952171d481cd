import { inspect } from 'node:util';
import { PadlockError, SecretBytes, unwrapRootKey, type KekRing } from '@padlock/core';
import type { Metrics } from './metrics.js';
import type { KeyRow, KeyStore } from './store/types.js';
import { traced, tracingOn } from './tracing.js';

/*
 * The read path, as layers that each do one thing:
 *   RowSource      wrapped rows of a user, with the time they were read from the store
 *                  (StoreRows; the memcached layer decorates it)
 *   KeychainSource root keys unwrapped (Unwrapper; the in-process L1 decorates it)
 * `readAt` travels through every layer so that no cache, here or in a client,
 * serves a row longer than maxStaleness after it left the store.
 */

export interface RowsRead {
  readonly rows: readonly KeyRow[];
  /** When these rows were read from the store (ms since the epoch). */
  readonly readAt: number;
}

export interface RowSource {
  get(userId: string, fresh: boolean): Promise<RowsRead>;
  getMany(userIds: readonly string[]): Promise<Map<string, RowsRead>>;
  /**
   * Forgets a user in this layer and every layer below it. A fresh get
   * bypasses caches on the way down and refills them on the way up, which is
   * how a create writes through.
   */
  invalidate(userId: string): Promise<void>;
}

/**
 * A user's unwrapped root keys, and the answers rendered from them, packed in
 * one buffer: the in-process cache holds 100,000 of these, and the collector
 * marks a handful of objects per keychain instead of the ~40 that a Map of
 * categories, arrays of versions and a SecretBytes per key made (the old
 * layout's mark-compacts cost 70-125 ms of main-thread marking at 100k users;
 * docs/performance.md).
 *
 * Layout, little-endian:
 *   u16 categoryCount, then per category (in the order of the rows):
 *     u16 name (interned), u16 versionCount, then per version, oldest first:
 *       u32 version, u8 keyLength, key bytes
 *   then the rendered answers, oldest first, at most RENDERED_PER_KEYCHAIN:
 *     u16 id (interned), u8 status, u8 width, u32 slot, u32 length, bytes
 *
 * Key bytes leave only as copies (versions()) for the caller to wipe. The
 * buffer is never wiped while the keychain lives: a reply being written may
 * still read its rendered bytes; it is left to the collector like any value.
 */
export class Keychain {
  #bytes: Buffer;
  /** Where the rendered answers start, and how many there are. */
  readonly #renderedAt: number;
  #renderedCount = 0;
  /** The in-process cache's recency stamp (L1Cache); 0 outside it. */
  cacheStamp = 0;

  private constructor(
    readonly userId: string,
    /** When its rows were read from the store (ms since the epoch). */
    readonly readAt: number,
    bytes: Buffer,
  ) {
    this.#bytes = bytes;
    this.#renderedAt = bytes.length;
  }

  /**
   * Packs the keychain of `categories` (by name; each version with its root
   * key, or null when shredded). The caller keeps and wipes its own keys.
   */
  static pack(
    userId: string,
    readAt: number,
    categories: ReadonlyMap<string, readonly { readonly version: number; readonly rootKey: SecretBytes | null }[]>,
  ): Keychain {
    let size = 2;
    for (const versions of categories.values()) {
      size += 4;
      for (const v of versions) if (v.rootKey !== null) size += 5 + v.rootKey.length;
    }
    const out = Buffer.allocUnsafeSlow(size);
    let at = out.writeUInt16LE(categories.size, 0);
    for (const [name, versions] of categories) {
      const live = versions.filter((v) => v.rootKey !== null).sort((a, b) => a.version - b.version);
      at = out.writeUInt16LE(internCategory(name), at);
      at = out.writeUInt16LE(live.length, at);
      for (const { version, rootKey } of live) {
        at = out.writeUInt32LE(version, at);
        at = out.writeUInt8(rootKey!.length, at);
        out.set(rootKey!.expose(), at);
        at += rootKey!.length;
      }
    }
    return new Keychain(userId, readAt, out);
  }

  /** Category names in the order of the rows. */
  get categoryNames(): string[] {
    const names: string[] = [];
    this.#walk((name) => void names.push(name));
    return names;
  }

  /**
   * Copies of the live root keys of `category`, oldest first, for the caller
   * to wipe; [] when every version is shredded, undefined when the category
   * has no rows at all.
   */
  versions(category: string): { version: number; rootKey: SecretBytes }[] | undefined {
    const wanted = categoryIds.get(category);
    if (wanted === undefined) return undefined;
    let found: { version: number; rootKey: SecretBytes }[] | undefined;
    this.#walk((_, id, at, count) => {
      if (id !== wanted) return false;
      const bytes = this.#bytes;
      found = [];
      for (let i = 0; i < count; i++) {
        const length = bytes[at + 4]!;
        found.push({
          version: bytes.readUInt32LE(at),
          rootKey: SecretBytes.copyOf(bytes.subarray(at + 5, at + 5 + length)),
        });
        at += 5 + length;
      }
      return true;
    });
    return found;
  }

  /** Visits each category record; `visit` returns true to stop. */
  #walk(visit: (name: string, id: number, versionsAt: number, count: number) => boolean | void): void {
    const bytes = this.#bytes;
    const count = bytes.readUInt16LE(0);
    let at = 2;
    for (let c = 0; c < count; c++) {
      const id = bytes.readUInt16LE(at);
      const versions = bytes.readUInt16LE(at + 2);
      if (visit(categoryNames[id]!, id, at + 4, versions) === true) return;
      at += 4;
      for (let v = 0; v < versions; v++) at += 5 + bytes[at + 4]!;
    }
  }

  /** The answer kept for `id` (an internRenderedId() number), or undefined. */
  rendered(id: number): RenderedKeys | undefined {
    const bytes = this.#bytes;
    let at = this.#renderedAt;
    for (let i = 0; i < this.#renderedCount; i++) {
      const length = bytes.readUInt32LE(at + 8);
      if (bytes.readUInt16LE(at) === id) {
        return {
          status: STATUSES[bytes[at + 2]!]!,
          bytes,
          start: at + 12,
          length,
          slot: bytes.readUInt32LE(at + 4),
          width: bytes[at + 3]!,
        };
      }
      at += 12 + length;
    }
    return undefined;
  }

  /**
   * Keeps `rendered` as the answer for `id`, dropping the oldest kept answer
   * when there are RENDERED_PER_KEYCHAIN already; returns the kept copy.
   */
  keepRendered(id: number, rendered: RenderedKeys): RenderedKeys {
    const old = this.#bytes;
    let from = this.#renderedAt;
    let count = this.#renderedCount;
    if (count >= RENDERED_PER_KEYCHAIN) {
      from += 12 + old.readUInt32LE(from + 8);
      count--;
    }
    const keptLength = old.length - from;
    const out = Buffer.allocUnsafeSlow(this.#renderedAt + keptLength + 12 + rendered.length);
    old.copy(out, 0, 0, this.#renderedAt);
    old.copy(out, this.#renderedAt, from);
    let at = this.#renderedAt + keptLength;
    at = out.writeUInt16LE(id, at);
    at = out.writeUInt8(STATUSES.indexOf(rendered.status), at);
    at = out.writeUInt8(rendered.width, at);
    at = out.writeUInt32LE(rendered.slot, at);
    at = out.writeUInt32LE(rendered.length, at);
    rendered.bytes.copy(out, at, rendered.start, rendered.start + rendered.length);
    this.#bytes = out;
    this.#renderedCount = count + 1;
    return { ...rendered, bytes: out, start: at };
  }

  toString(): string {
    return `[Keychain ${this.userId}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** At most this many answers are kept per keychain (one per service and choice of categories). */
export const RENDERED_PER_KEYCHAIN = 4;

const STATUSES = ['ok', 'shredded', 'not_found'] as const;

/*
 * Category names and rendered-answer ids are stored as u16 numbers; these
 * tables map them both ways for the life of the process. Category names come
 * from the store's rows; ids are a service and a choice of categories
 * (http/route.ts), so both stay few. An id past the table's capacity is
 * rendered on every lookup instead of kept.
 */
const MAX_INTERNED = 0xffff;
const categoryIds = new Map<string, number>();
const categoryNames: string[] = [];
const renderedIds = new Map<string, number>();

function internCategory(name: string): number {
  let id = categoryIds.get(name);
  if (id === undefined) {
    if (categoryNames.length >= MAX_INTERNED) throw new RangeError('more than 65535 category names');
    id = categoryNames.length;
    categoryNames.push(name);
    categoryIds.set(name, id);
  }
  return id;
}

/** The number kept answers for `id` are filed under, or -1 when the table is full (then nothing is kept). */
export function internRenderedId(id: string): number {
  let n = renderedIds.get(id);
  if (n === undefined) {
    if (renderedIds.size >= MAX_INTERNED) return -1;
    n = renderedIds.size;
    renderedIds.set(id, n);
  }
  return n;
}

/**
 * One service's answer for some categories of a keychain: JSON bytes at
 * bytes[start, start + length), with a slot of `width` spaces at `slot`
 * (relative to start) where each answer writes its maxAgeSeconds value (which
 * changes every second), right-aligned: JSON allows the spaces.
 */
export interface RenderedKeys {
  readonly status: 'ok' | 'shredded' | 'not_found';
  readonly bytes: Buffer;
  readonly start: number;
  readonly length: number;
  readonly slot: number;
  readonly width: number;
}

export interface KeychainSource {
  /** The user's keychain, or null when the user has none. */
  get(userId: string, fresh?: boolean): Promise<Keychain | null>;
  /** The user's keychain when a cache holds it right now, without waiting; undefined otherwise. */
  peek?(userId: string): Keychain | undefined;
  peekMany?(userIds: readonly string[]): (Keychain | undefined)[];
  getMany(userIds: readonly string[]): Promise<Map<string, Keychain | null>>;
  invalidate(userId: string): Promise<void>;
}

/** The bottom layer: the store itself, timed. */
export class StoreRows implements RowSource {
  constructor(
    private readonly store: KeyStore,
    private readonly metrics: Metrics,
  ) {}

  async get(userId: string, fresh: boolean): Promise<RowsRead> {
    const readAt = Date.now();
    const rows = await timed(this.metrics, 'get', this.store.getKeychain(userId, { fresh }));
    return { rows, readAt };
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, RowsRead>> {
    const readAt = Date.now();
    const byUser = await timed(this.metrics, 'get_many', this.store.getKeychains(userIds));
    const result = new Map<string, RowsRead>();
    for (const [userId, rows] of byUser) result.set(userId, { rows, readAt });
    return result;
  }

  invalidate(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Times a store call. A failure that is not already a PadlockError becomes
 * STORE_UNAVAILABLE (503), its cause kept for the log, never for the caller.
 */
export async function timed<T>(metrics: Metrics, op: string, work: Promise<T>): Promise<T> {
  const start = process.hrtime.bigint();
  try {
    return await (tracingOn() ? traced(`store ${op}`, { 'db.operation.name': op }, () => work) : work);
  } catch (error) {
    metrics.storeErrors.inc({ op });
    if (error instanceof PadlockError) throw error;
    throw new PadlockError('STORE_UNAVAILABLE', undefined, { cause: error });
  } finally {
    metrics.storeDuration.observe({ op }, Number(process.hrtime.bigint() - start) / 1e9);
  }
}

/** Unwraps rows into a Keychain; a row that fails to unwrap is an integrity error, never a silent miss. */
export class Unwrapper implements KeychainSource {
  constructor(
    private readonly rows: RowSource,
    private readonly keks: KekRing,
  ) {}

  async get(userId: string, fresh = false): Promise<Keychain | null> {
    return toKeychain(this.keks, userId, await this.rows.get(userId, fresh));
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, Keychain | null>> {
    const reads = await this.rows.getMany(userIds);
    const result = new Map<string, Keychain | null>();
    for (const userId of userIds) {
      const read = reads.get(userId);
      result.set(userId, read === undefined ? null : toKeychain(this.keks, userId, read));
    }
    return result;
  }

  invalidate(userId: string): Promise<void> {
    return this.rows.invalidate(userId);
  }
}

export class KeyIntegrityError extends Error {
  constructor(readonly userId: string) {
    super('a stored root key failed to authenticate');
    this.name = 'KeyIntegrityError';
  }
}

export function toKeychain(keks: KekRing, userId: string, read: RowsRead): Keychain | null {
  if (read.rows.length === 0) return null;
  const categories = new Map<string, { version: number; rootKey: SecretBytes | null }[]>();
  try {
    for (const row of read.rows) {
      let versions = categories.get(row.category);
      if (versions === undefined) {
        versions = [];
        categories.set(row.category, versions);
      }
      if (row.wrapped === null) continue;
      let rootKey: SecretBytes;
      try {
        rootKey = unwrapRootKey(keks, { userId, category: row.category, version: row.version }, row.wrapped);
      } catch {
        throw new KeyIntegrityError(userId);
      }
      versions.push({ version: row.version, rootKey });
    }
    return Keychain.pack(userId, read.readAt, categories);
  } finally {
    for (const versions of categories.values()) for (const v of versions) v.rootKey?.wipe();
  }
}
