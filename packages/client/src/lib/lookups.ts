import type { BatchOptions, CacheOptions } from '../options.js';
import { KeyCache } from './cache.js';
import type { Counters } from './stats.js';
import { wipeUserKeys, type UserKeys } from './user-keys.js';

/*
 * Key lookups, coalesced: a lookup is answered from the cache, or joins the
 * request already queued or in flight for that user, or joins the queue.
 * The queue goes out as one batch-get at the next turn of the event loop (or
 * after batch.delayMs), at once when it reaches the server's batch limits.
 *
 * Cache expiry is counted from when the request was sent, not answered: the
 * server's maxAgeSeconds is measured from its own read, which comes later,
 * so the entry never outlives the deletion bound.
 */

interface Pending {
  readonly promise: Promise<UserKeys>;
  resolve(keys: UserKeys): void;
  reject(error: unknown): void;
}

/** Sends one batch-get for distinct user ids; resolves with one result per id, in order. */
export type FetchBatch = (userIds: string[]) => Promise<UserKeys[]>;

const SWEEP_INTERVAL_MS = 1000;

function pending(): Pending {
  let resolve!: (keys: UserKeys) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<UserKeys>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class KeyLookups {
  readonly #fetch: FetchBatch;
  readonly #delayMs: number;
  /** The batch limits, lowered when a server refuses a batch as too large. */
  #maxUsers: number;
  #maxBodyBytes: number;
  readonly #cache: KeyCache | undefined;
  readonly #maxTtlMs: number;
  readonly #counters: Counters;
  /** Every user with a request queued or in flight. */
  readonly #inFlight = new Map<string, Pending>();
  /** Bytes of a batch-get body before any user id. */
  readonly #baseBodyBytes: number;
  /** Lookups waiting for the next batch, each with the request its waiters hold. */
  #queue: { readonly userId: string; readonly request: Pending }[] = [];
  #queueBytes: number;
  /** Cancels the scheduled send, when one is scheduled. */
  #cancelTimer: (() => void) | undefined;
  readonly #sweeper: NodeJS.Timeout | undefined;

  constructor(
    fetch: FetchBatch,
    options: {
      readonly batch: Required<BatchOptions>;
      readonly cache: Required<CacheOptions> | false;
      readonly categories: readonly string[] | undefined;
    },
    counters: Counters,
  ) {
    this.#fetch = fetch;
    this.#delayMs = options.batch.delayMs;
    this.#maxUsers = options.batch.maxUsers;
    this.#maxBodyBytes = options.batch.maxBodyBytes;
    this.#counters = counters;
    this.#cache = options.cache === false ? undefined : new KeyCache(options.cache);
    this.#maxTtlMs = options.cache === false ? 0 : options.cache.maxTtlMs;
    this.#baseBodyBytes = Buffer.byteLength(
      JSON.stringify(
        options.categories === undefined ? { userIds: [] } : { userIds: [], categories: options.categories },
      ),
    );
    this.#queueBytes = this.#baseBodyBytes;
    if (this.#cache !== undefined) {
      const cache = this.#cache;
      this.#sweeper = setInterval(() => cache.sweep(Date.now()), SWEEP_INTERVAL_MS);
      this.#sweeper.unref();
    }
  }

  get cacheEntries(): number {
    return this.#cache?.size ?? 0;
  }

  get cacheBytes(): number {
    return this.#cache?.bytes ?? 0;
  }

  /** The user's keys: synchronously from the cache, or a promise shared with every other lookup of that user. */
  get(userId: string): UserKeys | Promise<UserKeys> {
    this.#counters.inc('lookups');
    const cached = this.#cache?.get(userId, Date.now());
    if (cached !== undefined) {
      this.#counters.inc('cacheHits');
      return cached;
    }
    const joined = this.#inFlight.get(userId);
    if (joined !== undefined) {
      this.#counters.inc('coalesced');
      return joined.promise;
    }
    const request = pending();
    this.#inFlight.set(userId, request);
    this.#enqueue(userId, request);
    return request.promise;
  }

  /** Caches keys obtained otherwise (a create's answer), sent at `sentAt`. */
  prime(keys: UserKeys, sentAt: number): void {
    if (this.#inFlight.has(keys.userId)) return;
    this.#store(keys, sentAt);
  }

  /**
   * Forgets the user's cached keys; a request in flight still answers its
   * waiters but is not cached, and the next lookup asks again.
   */
  invalidate(userId: string): void {
    this.#cache?.delete(userId);
    this.#inFlight.delete(userId);
  }

  /**
   * Lowers the batch limits after a server refused a batch as too large (its
   * limits.maxBatch or maxBodyBytes is below this client's options), so later
   * batches fit at the first attempt.
   */
  lowerLimits(limits: { readonly maxUsers?: number; readonly maxBodyBytes?: number }): void {
    if (limits.maxUsers !== undefined) this.#maxUsers = Math.max(1, Math.min(this.#maxUsers, limits.maxUsers));
    if (limits.maxBodyBytes !== undefined) {
      this.#maxBodyBytes = Math.max(this.#baseBodyBytes + 131, Math.min(this.#maxBodyBytes, limits.maxBodyBytes));
    }
  }

  /** Wipes every cached key. Lookups queued or in flight are left to fail with the transport. */
  close(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#cache?.clear(wipeUserKeys);
  }

  #store(keys: UserKeys, sentAt: number): void {
    if (this.#cache === undefined || keys.status !== 'ok') return;
    const ttlMs = Math.min(keys.maxAgeSeconds * 1000, this.#maxTtlMs);
    if (ttlMs > 0) this.#cache.set(keys, sentAt + ttlMs);
  }

  #enqueue(userId: string, request: Pending): void {
    // User ids are ASCII without quotes or backslashes (their grammar), so each adds its length, two quotes and a comma.
    const bytes = userId.length + 3;
    if (
      this.#queue.length > 0 &&
      (this.#queue.length >= this.#maxUsers || this.#queueBytes + bytes > this.#maxBodyBytes)
    ) {
      this.#send();
    }
    this.#queue.push({ userId, request });
    this.#queueBytes += bytes;
    if (this.#queue.length >= this.#maxUsers) {
      this.#send();
    } else if (this.#cancelTimer === undefined) {
      if (this.#delayMs === 0) {
        const immediate = setImmediate(() => this.#send());
        this.#cancelTimer = () => clearImmediate(immediate);
      } else {
        const timeout = setTimeout(() => this.#send(), this.#delayMs);
        this.#cancelTimer = () => clearTimeout(timeout);
      }
    }
  }

  #send(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    const queued = this.#queue;
    if (queued.length === 0) return;
    this.#queue = [];
    this.#queueBytes = this.#baseBodyBytes;
    const userIds = queued.map((q) => q.userId);
    const sentAt = Date.now();
    this.#counters.inc('batches');
    // Not current when invalidate() ran meanwhile: the waiters get their answer, the cache gets nothing.
    const settle = ({ userId, request }: (typeof queued)[number]): boolean => {
      const current = this.#inFlight.get(userId) === request;
      if (current) this.#inFlight.delete(userId);
      return current;
    };
    this.#fetch(userIds).then(
      (results) =>
        queued.forEach((q, i) => {
          const keys = results[i]!;
          if (settle(q)) this.#store(keys, sentAt);
          q.request.resolve(keys);
        }),
      (error: unknown) =>
        queued.forEach((q) => {
          settle(q);
          q.request.reject(error);
        }),
    );
  }
}
