import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom, ZipfSampler } from './lib/zipf.mjs';

test('the seeded generator is deterministic and roughly uniform', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
    buckets[Math.floor(x * 10)] += 1;
  }
  for (const n of buckets) assert.ok(Math.abs(n - 10_000) < 500, `decile count ${n}`);
});

test('rank probabilities follow 1/k^s', () => {
  const z = new ZipfSampler(1000, 0.99, seededRandom(1));
  let total = 0;
  for (let k = 1; k <= 1000; k++) total += 1 / k ** 0.99;
  for (const k of [1, 2, 10, 1000]) {
    assert.ok(Math.abs(z.probability(k) - 1 / k ** 0.99 / total) < 1e-12, `P(${k})`);
  }
});

test('sampled rank frequencies match the distribution (chi-square over the top 20 and the rest)', () => {
  const n = 1000;
  const draws = 400_000;
  const z = new ZipfSampler(n, 0.99, seededRandom(7));
  const counts = new Array(n + 1).fill(0);
  for (let i = 0; i < draws; i++) {
    const r = z.nextRank();
    assert.ok(Number.isInteger(r) && r >= 1 && r <= n);
    counts[r] += 1;
  }
  let chi2 = 0;
  let restObserved = draws;
  let restExpected = draws;
  for (let k = 1; k <= 20; k++) {
    const expected = draws * z.probability(k);
    chi2 += (counts[k] - expected) ** 2 / expected;
    restObserved -= counts[k];
    restExpected -= expected;
  }
  chi2 += (restObserved - restExpected) ** 2 / restExpected;
  // 20 degrees of freedom: P(chi2 > 45.3) = 0.001.
  assert.ok(chi2 < 45.3, `chi-square ${chi2.toFixed(1)}`);
});

test('the rank-to-user permutation is a bijection and spreads the hot ranks', () => {
  for (const n of [1, 2, 97, 1000, 100_000]) {
    const z = new ZipfSampler(n, 0.99, seededRandom(3));
    const seen = new Uint8Array(n);
    for (let rank = 1; rank <= n; rank++) {
      const i = z.indexOf(rank);
      assert.ok(i >= 0 && i < n && seen[i] === 0, `n=${n} rank=${rank}`);
      seen[i] = 1;
    }
  }
  const z = new ZipfSampler(100_000, 0.99, seededRandom(3));
  const hot = [1, 2, 3, 4, 5].map((r) => z.indexOf(r));
  assert.ok(Math.max(...hot) - Math.min(...hot) > 1000, `hot users ${hot.join(',')} are not adjacent`);
});

test('bad parameters are refused', () => {
  assert.throws(() => new ZipfSampler(0, 1, Math.random), /n must be a positive integer/);
  assert.throws(() => new ZipfSampler(10, 0, Math.random), /s must be positive/);
});
