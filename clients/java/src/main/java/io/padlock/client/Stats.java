package io.padlock.client;

import java.util.concurrent.atomic.LongAdder;

/** The client's counters since creation. */
public final class Stats {
  final LongAdder requests = new LongAdder();
  final LongAdder failovers = new LongAdder();
  final LongAdder hedges = new LongAdder();
  final LongAdder retries = new LongAdder();
  final LongAdder batches = new LongAdder();
  final LongAdder lookups = new LongAdder();
  final LongAdder cacheHits = new LongAdder();
  final LongAdder coalesced = new LongAdder();

  /** HTTP attempts sent. */
  public long requests() {
    return requests.sum();
  }

  /** Attempts sent to another group or URL after one failed. */
  public long failovers() {
    return failovers.sum();
  }

  /** Reads also sent to the next target because the first was slow (hedgeAfter). */
  public long hedges() {
    return hedges.sum();
  }

  /** Rounds over the groups after every group failed (opt-in retries). */
  public long retries() {
    return retries.sum();
  }

  /** Batch-get calls made (coalesced lookups and bulk chunks). */
  public long batches() {
    return batches.sum();
  }

  public long lookups() {
    return lookups.sum();
  }

  public long cacheHits() {
    return cacheHits.sum();
  }

  /** Lookups that joined a request already queued or in flight for the same user. */
  public long coalesced() {
    return coalesced.sum();
  }

  @Override
  public String toString() {
    return "Stats[requests=" + requests() + ", failovers=" + failovers() + ", hedges=" + hedges() + ", retries=" + retries() + ", batches=" + batches() + ", lookups="
        + lookups() + ", cacheHits=" + cacheHits() + ", coalesced=" + coalesced() + "]";
  }
}
