import cassandra from 'cassandra-driver';

/** The share of keychain reads that may be hedged over time, unless configured (store.cassandra.hedgeShare). */
export const DEFAULT_HEDGE_SHARE = 0.1;

/** Hedges that may be sent back to back before the budget's share applies (the bucket's size). */
export const HEDGE_BURST = 100;

/**
 * Hedged reads with a budget: a keychain read not answered after `delayMs` is sent to the next
 * replica too, but over time at most `share` of reads (plus HEDGE_BURST at once) get a second copy.
 *
 * An unbounded hedge (ConstantSpeculativeExecutionPolicy) turns a store that is slow everywhere into
 * one that is asked everything twice: once its median passes the delay, every read is sent again,
 * exactly when the nodes are behind. A slow or frozen replica needs only the share of reads it
 * coordinates hedged; a saturated cluster needs none.
 *
 * A token bucket: each read that could be hedged earns `share` of a token (up to HEDGE_BURST), each
 * hedge sent spends one. The driver asks the plan twice per idempotent read: when the first copy
 * starts (answer the delay to arm a hedge, or -1) and when the hedge starts (answer -1: no third
 * copy). A read is armed only while a whole token is there; the token is spent when the hedge
 * starts, since most armed reads are answered before the delay and cost nothing. Reads armed
 * together may all fire, so the bucket can go below zero by the reads in flight at one moment; it
 * then arms nothing until it has earned its way back.
 */
export class BudgetedHedgePolicy implements cassandra.policies.speculativeExecution.SpeculativeExecutionPolicy {
  readonly #delayMs: number;
  readonly #share: number;
  #tokens = HEDGE_BURST;
  /** Reads sent to a second replica. */
  hedges = 0;
  /** Reads that could have been hedged but were not armed: the budget was spent. */
  unarmed = 0;

  constructor(delayMs: number, share: number) {
    if (!(Number.isInteger(delayMs) && delayMs > 0)) throw new RangeError('the hedge delay must be a positive integer');
    if (!(share > 0 && share <= 1)) throw new RangeError('the hedge share must be above 0 and at most 1');
    this.#delayMs = delayMs;
    this.#share = share;
  }

  /** Whole hedges the bucket holds now (below zero after a burst of armed reads all fired). */
  get tokens(): number {
    return this.#tokens;
  }

  init(): void {
    // Nothing to set up: the bucket starts full.
  }

  shutdown(): void {
    // No timers to stop.
  }

  newPlan(): { nextExecution: () => number } {
    let asked = 0;
    return {
      nextExecution: (): number => {
        asked++;
        if (asked === 1) {
          this.#tokens = Math.min(HEDGE_BURST, this.#tokens + this.#share);
          if (this.#tokens >= 1) return this.#delayMs;
          this.unarmed++;
          return -1;
        }
        if (asked === 2) {
          // The hedge is starting now.
          this.#tokens -= 1;
          this.hedges++;
        }
        return -1;
      },
    };
  }

  getOptions(): Map<string, object> {
    // The driver's typings say object; it only reports these values (as ConstantSpeculativeExecutionPolicy does its numbers).
    const options = new Map<string, unknown>([
      ['delay', this.#delayMs],
      ['share', this.#share],
      ['burst', HEDGE_BURST],
    ]);
    return options as unknown as Map<string, object>;
  }
}
