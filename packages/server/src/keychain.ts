import { PadlockError, unwrapRootKey, type KekRing, type SecretBytes } from '@padlock/core';
import type { Metrics } from './metrics.js';
import type { KeyRow, KeyStore } from './store/types.js';

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

export interface CategoryKeys {
  readonly category: string;
  /** Live root keys, oldest version first; empty when every version is shredded. */
  readonly versions: readonly { readonly version: number; readonly rootKey: SecretBytes }[];
}

export interface Keychain {
  readonly userId: string;
  readonly readAt: number;
  /** By category; a category with no rows at all is absent. */
  readonly categories: ReadonlyMap<string, CategoryKeys>;
  /**
   * Answers already rendered from this keychain, one per service and choice of
   * categories, newest last, at most a few (see http/serialize.ts): a warm
   * lookup copies bytes instead of deriving keys and encoding JSON. They live
   * exactly as long as the keychain object, so the cache bounds them too.
   */
  readonly rendered: RenderedKeys[];
}

/**
 * One service's answer for some categories of a keychain, as JSON bytes with
 * a slot of `width` spaces where each answer writes its maxAgeSeconds value
 * (which changes every second), right-aligned: JSON allows the spaces.
 */
export interface RenderedKeys {
  /** The service and categories it answers (CategoryChoice.id). */
  readonly id: string;
  readonly status: 'ok' | 'shredded' | 'not_found';
  readonly bytes: Buffer;
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
    return await work;
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
  const categories = new Map<string, { category: string; versions: { version: number; rootKey: SecretBytes }[] }>();
  for (const row of read.rows) {
    let entry = categories.get(row.category);
    if (entry === undefined) {
      entry = { category: row.category, versions: [] };
      categories.set(row.category, entry);
    }
    if (row.wrapped === null) continue;
    try {
      const rootKey = unwrapRootKey(keks, { userId, category: row.category, version: row.version }, row.wrapped);
      entry.versions.push({ version: row.version, rootKey });
    } catch {
      throw new KeyIntegrityError(userId);
    }
  }
  for (const entry of categories.values()) entry.versions.sort((a, b) => a.version - b.version);
  return { userId, readAt: read.readAt, categories, rendered: [] };
}
