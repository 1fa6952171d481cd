import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketOf, bucketRange, Histogram } from './lib/histogram.mjs';

test('every value lies in the range of its bucket, and buckets are contiguous', () => {
  let previous = -1;
  for (const v of [0, 1, 255, 256, 257, 511, 512, 1000, 65535, 1e6, 2 ** 31, 2 ** 32 - 1]) {
    const [lo, hi] = bucketRange(bucketOf(v));
    assert.ok(lo <= v && v <= hi, `${v} in [${lo}, ${hi}]`);
    assert.ok(hi - lo <= Math.max(0, v / 128), `bucket of ${v} is at most 0.8 % wide`);
  }
  for (let i = 0; i < bucketOf(2 ** 32 - 1); i++) {
    const [lo, hi] = bucketRange(i);
    assert.equal(lo, previous + 1, `bucket ${i} starts where ${i - 1} ended`);
    previous = hi;
  }
});

test('nearest-rank percentiles of 1..1000 us', () => {
  const h = new Histogram();
  for (let v = 1000; v >= 1; v--) h.recordUs(v);
  const cases = [
    [0.5, 500],
    [0.9, 900],
    [0.99, 990],
    [0.999, 999],
    [1, 1000],
  ];
  for (const [q, expected] of cases) {
    const got = h.quantileUs(q);
    assert.ok(got >= expected && got <= expected * 1.008, `q=${q}: ${got} vs ${expected}`);
  }
  assert.equal(h.count, 1000);
  assert.equal(h.minUs, 1);
  assert.equal(h.maxUs, 1000);
  assert.equal(h.sumUs, 500500);
});

test('small values are exact and the maximum is never exceeded', () => {
  const h = new Histogram();
  for (const v of [3, 3, 3, 7]) h.recordUs(v);
  assert.equal(h.quantileUs(0.5), 3);
  assert.equal(h.quantileUs(0.75), 3);
  assert.equal(h.quantileUs(0.76), 7);
  const big = new Histogram();
  big.recordUs(1_000_001);
  assert.equal(big.quantileUs(0.99), 1_000_001);
});

test('a single outlier shows at p99.9 and max, not at p99', () => {
  const h = new Histogram();
  for (let i = 0; i < 999; i++) h.recordMs(1);
  h.recordMs(250);
  const s = h.summary();
  assert.ok(s.p99Ms >= 1 && s.p99Ms <= 1.008, `p99 ${s.p99Ms}`);
  assert.ok(s.p999Ms >= 1 && s.p999Ms <= 1.008, `p99.9 ${s.p999Ms}`);
  assert.equal(s.maxMs, 250);
  h.recordMs(250);
  assert.ok(h.summary().p999Ms >= 249);
});

test('merge and the JSON form preserve every count', () => {
  const a = new Histogram();
  const b = new Histogram();
  for (let v = 0; v < 5000; v += 7) a.recordUs(v);
  for (let v = 0; v < 90000; v += 13) b.recordUs(v);
  const merged = Histogram.fromJSON(JSON.parse(JSON.stringify(a))).merge(Histogram.fromJSON(b.toJSON()));
  const direct = new Histogram();
  for (let v = 0; v < 5000; v += 7) direct.recordUs(v);
  for (let v = 0; v < 90000; v += 13) direct.recordUs(v);
  assert.deepEqual(merged.summary(), direct.summary());
  assert.equal(merged.minUs, 0);
  assert.equal(merged.maxUs, direct.maxUs);
});

test('an empty histogram reports nothing rather than zeros', () => {
  const s = new Histogram().summary();
  assert.equal(s.count, 0);
  assert.equal(s.p99Ms, null);
  assert.equal(s.maxMs, null);
});
