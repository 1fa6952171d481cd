import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CATCH_UP_MS, settledFirst } from './cassandra.js';

describe('query plans put replicas that came back up last (settledFirst)', () => {
  const now = 1_000_000;
  const host = (name: string, isUpSince: number | null | undefined) => ({ name, isUpSince });
  const names = (plan: readonly { name: string }[]): string[] => plan.map((h) => h.name);

  it('moves a replica up for less than CATCH_UP_MS behind the others, keeping both orders', () => {
    const plan = [host('a', now - 1000), host('b', null), host('c', now - CATCH_UP_MS - 1), host('d', undefined)];
    assert.deepEqual(names(settledFirst(plan, now)), ['b', 'c', 'd', 'a']);
  });

  it('keeps the order when no host came back recently, or when all did', () => {
    const never = [host('a', null), host('b', null), host('c', null)];
    assert.deepEqual(names(settledFirst(never, now)), ['a', 'b', 'c']);
    const all = [host('a', now - 10), host('b', now - 20000), host('c', now)];
    assert.deepEqual(names(settledFirst(all, now)), ['a', 'b', 'c']);
  });

  it('a replica is back in its place exactly CATCH_UP_MS after it came up', () => {
    assert.deepEqual(names(settledFirst([host('a', now - CATCH_UP_MS + 1), host('b', null)], now)), ['b', 'a']);
    assert.deepEqual(names(settledFirst([host('a', now - CATCH_UP_MS), host('b', null)], now)), ['a', 'b']);
  });

  it('returns every host once, and an empty plan as empty', () => {
    const plan = [host('a', now), host('b', null), host('c', now - 5)];
    assert.deepEqual(names(settledFirst(plan, now)).sort(), ['a', 'b', 'c']);
    assert.deepEqual(settledFirst([], now), []);
  });
});
