/*
 * Zipf-distributed user ranks and a seeded generator, so every run draws the
 * same kind of access pattern: rank k in 1..n has probability proportional to
 * 1 / k^s. The default s = 0.99 is YCSB's "zipfian" constant. Ranks map to
 * user indexes through a fixed permutation, so the hot users are spread over
 * the key space (and the SQLite B-tree) instead of being u0, u1, ...
 */

/** A small seeded PRNG (SplitMix32 variant): deterministic, uniform in [0, 1). */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

// A prime above any population used here; a prime larger than n never divides n,
// so multiplication by it modulo n is a bijection on 0..n-1.
const PERMUTATION_PRIME = 2654435761;

export class ZipfSampler {
  /**
   * @param {number} n population size (>= 1)
   * @param {number} s exponent (> 0)
   * @param {() => number} random uniform in [0, 1)
   */
  constructor(n, s, random) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError('n must be a positive integer');
    if (!(s > 0)) throw new RangeError('s must be positive');
    this.n = n;
    this.s = s;
    this.random = random;
    this.cdf = new Float64Array(n);
    let total = 0;
    for (let k = 1; k <= n; k++) {
      total += 1 / k ** s;
      this.cdf[k - 1] = total;
    }
    for (let i = 0; i < n; i++) this.cdf[i] /= total;
    this.cdf[n - 1] = 1;
    this.multiplier = PERMUTATION_PRIME % n;
  }

  /** The probability of rank k (1-based). */
  probability(k) {
    return this.cdf[k - 1] - (k === 1 ? 0 : this.cdf[k - 2]);
  }

  /** A rank in 1..n: inverse transform by binary search on the CDF. */
  nextRank() {
    const u = this.random();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo + 1;
  }

  /** The user index (0..n-1) a rank stands for. */
  indexOf(rank) {
    return ((rank - 1) * this.multiplier) % this.n;
  }

  /** A user index in 0..n-1, Zipf-distributed by rank. */
  next() {
    return this.indexOf(this.nextRank());
  }
}
