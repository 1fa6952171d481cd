/** What a client has done since it was created; read with PadlockClient.stats(). */
export interface ClientStats {
  /** Key lookups asked for by operations (encrypt, decrypt, getKeys). */
  readonly lookups: number;
  /** Lookups answered from the cache. */
  readonly cacheHits: number;
  /** Lookups that joined a request already queued or in flight for the same user. */
  readonly coalesced: number;
  /** Batch-get calls (each may take several HTTP attempts). */
  readonly batches: number;
  /** HTTP attempts sent, to any endpoint. */
  readonly requests: number;
  /** Attempts sent to another group after one failed. */
  readonly failovers: number;
  /** Attempts sent to another group because the first was slow. */
  readonly hedges: number;
  /** Rounds over the groups repeated under the retry policy. */
  readonly retries: number;
  /** Users whose keys are cached now, and their estimated bytes. */
  readonly cacheEntries: number;
  readonly cacheBytes: number;
}

export type Counter = Exclude<keyof ClientStats, 'cacheEntries' | 'cacheBytes'>;

export class Counters {
  readonly #values: Record<Counter, number> = {
    lookups: 0,
    cacheHits: 0,
    coalesced: 0,
    batches: 0,
    requests: 0,
    failovers: 0,
    hedges: 0,
    retries: 0,
  };

  inc(name: Counter, by = 1): void {
    this.#values[name] += by;
  }

  snapshot(): Record<Counter, number> {
    return { ...this.#values };
  }
}
