import type { UserKeys } from './user-keys.js';

/*
 * Derived keys by user: LRU, bounded by entries and by estimated bytes, each
 * entry with its own expiry that the caller computes from the server's
 * maxAgeSeconds (so a shred reaches this cache within maxStaleness).
 *
 * Entries are dropped, not wiped, when they expire or are evicted: an
 * operation that already holds them may still be between its lookup and its
 * synchronous use. close() wipes everything once no operation may start.
 */

interface Entry {
  readonly keys: UserKeys;
  readonly expiresAt: number;
}

export class KeyCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(limits: { readonly maxEntries: number; readonly maxBytes: number }) {
    this.#maxEntries = limits.maxEntries;
    this.#maxBytes = limits.maxBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The keys of `userId` unless absent or expired; a hit becomes the most recently used. */
  get(userId: string, now: number): UserKeys | undefined {
    const entry = this.#entries.get(userId);
    if (entry === undefined) return undefined;
    this.#entries.delete(userId);
    if (entry.expiresAt <= now) {
      this.#bytes -= entry.keys.bytes;
      return undefined;
    }
    this.#entries.set(userId, entry);
    return entry.keys;
  }

  /** Holds `keys` until `expiresAt`, evicting the least recently used entries beyond the bounds. */
  set(keys: UserKeys, expiresAt: number): void {
    this.delete(keys.userId);
    if (keys.bytes > this.#maxBytes) return;
    this.#entries.set(keys.userId, { keys, expiresAt });
    this.#bytes += keys.bytes;
    for (const [userId] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.delete(userId);
    }
  }

  delete(userId: string): void {
    const entry = this.#entries.get(userId);
    if (entry === undefined) return;
    this.#entries.delete(userId);
    this.#bytes -= entry.keys.bytes;
  }

  /** Drops expired entries, so expired key bytes do not linger until evicted. */
  sweep(now: number): void {
    for (const [userId, entry] of this.#entries) if (entry.expiresAt <= now) this.delete(userId);
  }

  /** Empties the cache, handing each entry's keys to `dispose`. */
  clear(dispose: (keys: UserKeys) => void = () => undefined): void {
    for (const entry of this.#entries.values()) dispose(entry.keys);
    this.#entries.clear();
    this.#bytes = 0;
  }
}
