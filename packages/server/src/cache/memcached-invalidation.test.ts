import { kekRing, SecretBytes } from '@padlock/core';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RowSource, RowsRead } from '../keychain.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { privateMemcachedOptions, spawnMemcached, type SpawnedMemcached } from '../testing/memcached.js';
import { MemcachedRows } from './memcached.js';
import { MemcachedClient, MemcachedError } from './memcached-client.js';

/*
 * A shred must not leave this process serving the pre-shred rows from
 * memcached: not when the delete fails, and not when a read that began before
 * the shred finishes after it and would put the old rows back.
 */

const LIVE: RowsRead['rows'] = [
  { category: 'profile', version: 1, wrapped: randomBytes(70), createdAt: 1, shreddedAt: null },
];
const SHREDDED: RowsRead['rows'] = [{ category: 'profile', version: 1, wrapped: null, createdAt: 1, shreddedAt: 2 }];

/** A store whose answer the test sets, and whose reads it can hold open. */
class ScriptedRows implements RowSource {
  rows: RowsRead['rows'] = LIVE;
  hold: Promise<void> | undefined;
  async get(): Promise<RowsRead> {
    const readAt = Date.now();
    const rows = this.rows;
    if (this.hold !== undefined) await this.hold;
    return { rows, readAt };
  }
  async getMany(userIds: readonly string[]): Promise<Map<string, RowsRead>> {
    return new Map(await Promise.all(userIds.map(async (id) => [id, await this.get()] as const)));
  }
  invalidate(): Promise<void> {
    return Promise.resolve();
  }
}

/** A real client whose deletes are lost on the way (a timeout after which memcached never saw the command). */
class LosingDeletes extends MemcachedClient {
  loseDeletes = false;
  override delete(key: string): Promise<boolean> {
    if (this.loseDeletes) return Promise.reject(new MemcachedError('injected: delete lost', 'timeout'));
    return super.delete(key);
  }
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('memcached L2 after an invalidation', privateMemcachedOptions(), () => {
  let memcached: SpawnedMemcached;
  before(async () => {
    memcached = await spawnMemcached();
  });
  after(() => memcached.stop());

  function layer(): { rows: ScriptedRows; l2: MemcachedRows; client: LosingDeletes } {
    const rows = new ScriptedRows();
    const client = new LosingDeletes({ servers: [memcached.address], timeoutMs: 100, downMs: 50 });
    const keks = kekRing([{ kid: 'k', key: SecretBytes.random(32) }], 'k');
    const l2 = new MemcachedRows(
      rows,
      client,
      keks,
      { keyPrefix: `inv-${randomBytes(4).toString('hex')}:`, maxStalenessMs: 30000 },
      new Metrics(),
      createLogger('error', () => undefined),
    );
    return { rows, l2, client };
  }

  it('reads the store, not the surviving entry, after a delete that failed', async () => {
    const { rows, l2, client } = layer();
    try {
      await l2.get('u1', false);
      await settle();
      assert.equal((await l2.get('u1', false)).rows[0]?.wrapped !== null, true, 'served from memcached');
      // The shred reaches the store, but memcached does not answer the delete.
      rows.rows = SHREDDED;
      client.loseDeletes = true;
      await l2.invalidate('u1');
      client.loseDeletes = false;
      const after = await l2.get('u1', false);
      assert.equal(after.rows[0]?.wrapped, null, 'the pre-shred entry was served after a failed delete');
      await settle();
      // The store's answer was written back over the old entry: memcached is trusted again.
      rows.rows = LIVE;
      assert.equal((await l2.get('u1', false)).rows[0]?.wrapped, null, 'the refilled entry is the shredded one');
    } finally {
      client.close();
    }
  });

  it('does not let a read that began before the shred put the old rows back', async () => {
    const { rows, l2, client } = layer();
    try {
      let release!: () => void;
      rows.hold = new Promise((resolve) => (release = resolve));
      const slowRead = l2.get('u2', true); // reads LIVE, held open
      await settle();
      rows.hold = undefined;
      rows.rows = SHREDDED;
      await l2.invalidate('u2'); // the shred happens while that read is in flight
      release();
      assert.notEqual((await slowRead).rows[0]?.wrapped, null);
      await settle();
      assert.equal((await l2.get('u2', false)).rows[0]?.wrapped, null, 'the late fill put the live row back');
    } finally {
      client.close();
    }
  });
});
