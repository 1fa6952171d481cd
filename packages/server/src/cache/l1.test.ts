import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Keychain, type KeychainSource } from '../keychain.js';
import { Metrics } from '../metrics.js';
import { L1Cache } from './l1.js';

/** A source below the cache that counts reads and can hold them open. */
class CountingSource implements KeychainSource {
  reads = 0;
  readAt = Date.now();
  hold: Promise<void> | undefined;
  async get(userId: string): Promise<Keychain> {
    this.reads++;
    const keychain = Keychain.pack(userId, this.readAt, new Map());
    if (this.hold !== undefined) await this.hold;
    return keychain;
  }
  async getMany(userIds: readonly string[]): Promise<Map<string, Keychain | null>> {
    return new Map(await Promise.all(userIds.map(async (id) => [id, await this.get(id)] as const)));
  }
  invalidate(): Promise<void> {
    return Promise.resolve();
  }
}

function cache(maxEntries: number, maxStalenessMs = 30_000): { l1: L1Cache; below: CountingSource } {
  const below = new CountingSource();
  return { l1: new L1Cache(below, { maxEntries, maxStalenessMs }, new Metrics()), below };
}

describe('L1 cache', () => {
  it('peek and peekMany answer from the cache only, never reading below, and count hits', async () => {
    const below = new CountingSource();
    const metrics = new Metrics();
    const l1 = new L1Cache(below, { maxEntries: 10, maxStalenessMs: 1000 }, metrics);
    const cached = await l1.get('cached');
    assert.equal(l1.peek('missing'), undefined);
    assert.equal(l1.peek('cached'), cached);
    assert.deepEqual(l1.peekMany(['missing', 'cached', 'other', 'cached']), [undefined, cached, undefined, cached]);
    assert.equal(below.reads, 1, 'peeking read from below');
    assert.equal(metrics.cacheHits.get({ cache: 'l1' }), 3);
    below.readAt = Date.now() - 1000;
    await l1.get('old', true);
    assert.equal(l1.peek('old'), undefined, 'an entry past maxStaleness was peeked');
  });

  it('holds at most maxEntries and keeps a hot entry through eviction pressure', async () => {
    const { l1, below } = cache(100);
    await l1.get('hot');
    for (let i = 0; i < 1000; i++) {
      await l1.get(`cold-${i}`);
      await l1.get('hot');
      assert.ok(l1.size <= 100, `size ${l1.size}`);
    }
    assert.equal(below.reads, 1001, 'the hot user was read from below once, every cold user once');
  });

  it('evicts the coldest entries first', async () => {
    const { l1, below } = cache(10);
    for (let i = 0; i < 10; i++) await l1.get(`u${i}`);
    for (let i = 10; i < 15; i++) await l1.get(`u${i}`);
    const before = below.reads;
    for (let i = 10; i < 15; i++) await l1.get(`u${i}`);
    assert.equal(below.reads, before, 'the newest entries are still cached');
    await l1.get('u0');
    assert.equal(below.reads, before + 1, 'the oldest entry was evicted');
  });

  it('never serves an entry maxStaleness after its store read', async () => {
    const { l1, below } = cache(10, 1000);
    below.readAt = Date.now() - 999;
    await l1.get('u');
    await new Promise((resolve) => setTimeout(resolve, 5));
    await l1.get('u');
    assert.equal(below.reads, 2);
  });

  it('coalesces concurrent misses into one read, and an invalidation makes that read not cached', async () => {
    const { l1, below } = cache(10);
    let release!: () => void;
    below.hold = new Promise((resolve) => (release = resolve));
    const reads = Array.from({ length: 20 }, () => l1.get('u'));
    await l1.invalidate('u');
    below.hold = undefined;
    release();
    await Promise.all(reads);
    assert.equal(below.reads, 1, 'twenty concurrent misses, one read below');
    await l1.get('u');
    assert.equal(below.reads, 2, 'the read that began before the invalidation was not cached');
  });
});
