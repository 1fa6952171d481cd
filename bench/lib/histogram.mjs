/*
 * A log-linear latency histogram in whole microseconds, in the manner of
 * HdrHistogram: exact below 2^SUB_BITS us, above that 2^(SUB_BITS-1) buckets
 * per power of two, so any reported value is within 1/2^(SUB_BITS-1) (0.8 %)
 * of a recorded one. Fixed memory (about 3,300 counters up to 71 minutes),
 * O(1) record, and histograms from several processes merge by adding counts.
 */

const SUB_BITS = 8;
const SUB = 1 << SUB_BITS; // 256
const HALF = SUB >> 1; // 128
const MAX_US = 2 ** 32 - 1;
const BUCKETS = (32 - SUB_BITS + 1) * HALF + HALF;

/** The bucket a value in microseconds falls into. */
export function bucketOf(us) {
  if (us < SUB) return us;
  const msb = 31 - Math.clz32(us);
  const shift = msb - (SUB_BITS - 1);
  return shift * HALF + (us >>> shift);
}

/** The smallest and largest value of a bucket, inclusive. */
export function bucketRange(index) {
  if (index < SUB) return [index, index];
  const shift = Math.floor(index / HALF) - 1;
  const top = index - shift * HALF;
  return [top * 2 ** shift, (top + 1) * 2 ** shift - 1];
}

export class Histogram {
  constructor() {
    this.counts = new Float64Array(BUCKETS);
    this.count = 0;
    this.sumUs = 0;
    this.minUs = Infinity;
    this.maxUs = 0;
  }

  /** Records one value in milliseconds (fractions allowed); negative values count as 0. */
  recordMs(ms) {
    this.recordUs(Math.round(ms * 1000));
  }

  recordUs(us) {
    const v = Math.min(MAX_US, Math.max(0, Math.round(us)));
    this.counts[bucketOf(v)] += 1;
    this.count += 1;
    this.sumUs += v;
    if (v < this.minUs) this.minUs = v;
    if (v > this.maxUs) this.maxUs = v;
  }

  /**
   * The value at quantile q (0 < q <= 1), in microseconds, by nearest rank:
   * the smallest recorded value v such that at least q of all values are <= v,
   * reported as its bucket's upper end (never above the true maximum).
   */
  quantileUs(q) {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.max(this.minUs, Math.min(this.maxUs, bucketRange(i)[1]));
    }
    return this.maxUs;
  }

  merge(other) {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sumUs += other.sumUs;
    this.minUs = Math.min(this.minUs, other.minUs);
    this.maxUs = Math.max(this.maxUs, other.maxUs);
    return this;
  }

  /** p50, p90, p99, p99.9 and max in milliseconds, plus the mean and count. */
  summary() {
    const ms = (us) => (Number.isNaN(us) ? null : Math.round(us) / 1000);
    return {
      count: this.count,
      meanMs: this.count === 0 ? null : Math.round(this.sumUs / this.count) / 1000,
      p50Ms: ms(this.quantileUs(0.5)),
      p90Ms: ms(this.quantileUs(0.9)),
      p99Ms: ms(this.quantileUs(0.99)),
      p999Ms: ms(this.quantileUs(0.999)),
      maxMs: this.count === 0 ? null : ms(this.maxUs),
    };
  }

  /** A compact, JSON-safe form: only the non-empty buckets. */
  toJSON() {
    const buckets = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) buckets.push([i, this.counts[i]]);
    return { count: this.count, sumUs: this.sumUs, minUs: this.minUs, maxUs: this.maxUs, buckets };
  }

  static fromJSON(json) {
    const h = new Histogram();
    for (const [i, n] of json.buckets) h.counts[i] = n;
    h.count = json.count;
    h.sumUs = json.sumUs;
    h.minUs = json.count === 0 ? Infinity : json.minUs;
    h.maxUs = json.maxUs;
    return h;
  }
}
