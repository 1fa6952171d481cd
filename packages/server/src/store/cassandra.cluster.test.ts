/*
 * Against the three-node, two-datacenter cluster of scripts/cassandra
 * (127.0.0.1-2 in dc1, 127.0.0.3 in dc2), started by scripts/test.sh in its
 * second phase. Each case leaves every node running.
 */
import cassandra from 'cassandra-driver';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requiredEnv } from '../testing/services-env.js';
import { CassandraKeyStore, type CassandraStoreOptions } from './cassandra.js';

const env = requiredEnv('PADLOCK_TEST_CLUSTER');
const root = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
const script = (name: string, ...args: string[]): string =>
  execFileSync('bash', [join(root, 'scripts/cassandra', name), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

// The typings declare RequestTracker an interface, but the driver checks instanceof the class.
const RequestTrackerBase = (
  cassandra.tracker as unknown as { RequestTracker: new () => cassandra.tracker.RequestTracker }
).RequestTracker;

class HostCounter extends RequestTrackerBase {
  readonly byDatacenter = new Map<string, number>();
  readonly byAddress = new Map<string, number>();
  /** Reads of root_keys at LOCAL_QUORUM: the store's second read after a LOCAL_ONE miss. */
  quorumReads = 0;
  override onSuccess(
    host: cassandra.Host,
    query: unknown,
    _params: unknown,
    options: cassandra.ExecutionOptions,
  ): void {
    this.#count(host);
    if (typeof query === 'string' && query.startsWith('SELECT') && query.includes('root_keys')) {
      if (options.getConsistency() === cassandra.types.consistencies.localQuorum) this.quorumReads++;
    }
  }
  override onError(host: cassandra.Host): void {
    this.#count(host);
  }
  override shutdown(): void {}
  #count(host: cassandra.Host): void {
    this.byDatacenter.set(host.datacenter, (this.byDatacenter.get(host.datacenter) ?? 0) + 1);
    this.byAddress.set(host.address, (this.byAddress.get(host.address) ?? 0) + 1);
  }
}

const keyspace = `padlock_cluster_${randomBytes(4).toString('hex')}`;
const rows = (n: number): { category: string; version: number; wrapped: Buffer; createdAt: number }[] =>
  Array.from({ length: n }, (_, i) => ({
    category: `c${i}`,
    version: 1,
    wrapped: randomBytes(70),
    createdAt: Date.now(),
  }));

function options(tracker?: HostCounter, catchUpMs?: number, hedgeAfterMs = 0): CassandraStoreOptions {
  return {
    contactPoints: (env.value ?? '').split(','),
    localDataCenter: 'dc1',
    keyspace,
    replication: { dc1: 2, dc2: 1 },
    connectTimeoutMs: 5000,
    readTimeoutMs: 5000,
    hedgeAfterMs,
    createSchema: true,
    ...(tracker === undefined ? {} : { requestTracker: tracker }),
    ...(catchUpMs === undefined ? {} : { catchUpMs }),
  };
}

async function waitFor(check: () => boolean, what: string, ms = 60000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('Cassandra store on three nodes in two datacenters', { skip: env.skip, timeout: 900_000 }, () => {
  let store: CassandraKeyStore;
  let tracker: HostCounter;
  before(async () => {
    tracker = new HostCounter();
    // No catch-up period: the lagging-replica case needs reads to reach a node just restarted.
    store = await CassandraKeyStore.open(options(tracker, 0));
  });
  after(async () => {
    // Bounded: a DROP during a schema disagreement, or a driver still reconnecting to a restarted
    // node, must not keep the test process alive after its cases have finished.
    const bounded = (work: Promise<unknown> | undefined, ms: number): Promise<unknown> =>
      Promise.race([work?.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, ms).unref())]);
    await bounded(store?.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 30000 }), 30000);
    await bounded(store?.close(), 10000);
  });

  it('sends no request to dc2 when the local datacenter is dc1', { timeout: 300_000 }, async () => {
    const before = tracker.byDatacenter.get('dc2') ?? 0;
    for (let i = 0; i < 50; i++) {
      const user = `route-${i}`;
      await store.insertKeys(user, rows(2));
      assert.equal((await store.getKeychain(user)).length, 2);
      await store.getKeychains([user, `missing-${i}`]);
    }
    await store.shred('route-0', undefined, Date.now());
    assert.equal(tracker.byDatacenter.get('dc2') ?? 0, before, 'a request went to dc2');
    assert.ok((tracker.byDatacenter.get('dc1') ?? 0) >= 200);
    assert.ok((tracker.byAddress.get('127.0.0.1:9042') ?? 0) > 0, 'node 1 coordinated requests');
    assert.ok((tracker.byAddress.get('127.0.0.2:9042') ?? 0) > 0, 'node 2 coordinated requests');
  });

  it(
    'finds a user that one dc1 replica lacks, through the LOCAL_QUORUM read after a LOCAL_ONE miss',
    { timeout: 300_000 },
    async () => {
      const user = `lagging-${randomBytes(4).toString('hex')}`;
      const localOne = cassandra.types.consistencies.localOne;
      // A store with the default catch-up period, open while node 2 goes down and comes back.
      const guarded = new HostCounter();
      const catchUp = await CassandraKeyStore.open(options(guarded));
      // Write the row while node 2 is down, with hints off, so node 2 never gets it.
      script('nodetool.sh', '1', 'disablehandoff');
      script('stop.sh', '2');
      try {
        await store.driver.execute(
          `INSERT INTO ${keyspace}.root_keys (user_id, category, version, wrapped, created_at) VALUES (?, 'profile', 1, ?, ?)`,
          [user, randomBytes(70), new Date()],
          { prepare: true, consistency: localOne },
        );
      } finally {
        script('start-node.sh', '2');
        script('nodetool.sh', '1', 'enablehandoff');
      }
      const isNode2 = (h: cassandra.Host): boolean => h.address.startsWith('127.0.0.2:');
      await waitFor(
        () => store.driver.getState().getConnectedHosts().some(isNode2),
        'the driver to reconnect to node 2',
      );
      const node2 = store.driver.getState().getConnectedHosts().find(isNode2)!;
      const direct = await store.driver.execute(
        `SELECT category FROM ${keyspace}.root_keys WHERE user_id = ?`,
        [user],
        {
          prepare: true,
          consistency: localOne,
          host: node2,
        },
      );
      assert.equal(direct.rows.length, 0, 'node 2 must lack the row for this case to mean anything');

      // With the default catch-up period, node 2 coordinates nothing while node 1 answers: every
      // LOCAL_ONE read finds the row on node 1, and none needs the LOCAL_QUORUM retry.
      await waitFor(
        () => catchUp.driver.getState().getConnectedHosts().some(isNode2),
        'the second driver to reconnect to node 2',
      );
      const node2Before = guarded.byAddress.get(node2.address) ?? 0;
      for (let i = 0; i < 20; i++) {
        const found = await catchUp.getKeychain(user);
        assert.deepEqual(
          found.map((r) => r.category),
          ['profile'],
        );
      }
      assert.equal(
        guarded.byAddress.get(node2.address) ?? 0,
        node2Before,
        'node 2 coordinated a read in its first minute',
      );
      assert.equal(guarded.quorumReads, 0, 'a LOCAL_ONE read reached node 2, which lacks the row');
      await catchUp.close();

      // Without it, reads reach node 2 too, and its misses are read again at LOCAL_QUORUM.
      const quorumBefore = tracker.quorumReads;
      for (let i = 0; i < 20; i++) {
        const found = await store.getKeychain(user);
        assert.deepEqual(
          found.map((r) => r.category),
          ['profile'],
        );
      }
      assert.ok(tracker.quorumReads > quorumBefore, 'no LOCAL_ONE read missed, so the retry was never exercised');
    },
  );

  it('hedges a read that a frozen replica holds: answered by the other one', { timeout: 300_000 }, async () => {
    const users = Array.from({ length: 16 }, (_, i) => `frozen-${i}-${randomBytes(3).toString('hex')}`);
    for (const user of users) await store.insertKeys(user, rows(2));
    const timeoutMs = 1500;
    const hedged = await CassandraKeyStore.open({ ...options(undefined, 0, 20), readTimeoutMs: timeoutMs });
    const plain = await CassandraKeyStore.open({ ...options(undefined, 0, 0), readTimeoutMs: timeoutMs });
    const timed = async (s: CassandraKeyStore, user: string): Promise<{ ms: number; ok: boolean }> => {
      const started = performance.now();
      const ok = await s.getKeychain(user).then(
        (found) => found.length === 2,
        () => false,
      );
      return { ms: performance.now() - started, ok };
    };
    try {
      for (const user of users) await Promise.all([hedged.getKeychain(user), plain.getKeychain(user)]);
      const hedgedBefore = hedged.hedgedReads;
      // Node 2 frozen: its sockets stay open, so no driver sees it down; reads it coordinates hang.
      script('signal-node.sh', '2', 'STOP');
      let withHedge: { ms: number; ok: boolean }[];
      let without: { ms: number; ok: boolean }[];
      try {
        withHedge = await Promise.all(users.map((u) => timed(hedged, u)));
        without = await Promise.all(users.map((u) => timed(plain, u)));
      } finally {
        script('signal-node.sh', '2', 'CONT');
      }
      // The control: without hedging, the reads node 2 coordinated waited for the read timeout.
      assert.ok(
        without.some((r) => !r.ok || r.ms >= timeoutMs * 0.9),
        `no unhedged read was held by the frozen node (${without.map((r) => Math.round(r.ms)).join(', ')} ms)`,
      );
      assert.ok(
        withHedge.every((r) => r.ok && r.ms < timeoutMs / 2),
        `a hedged read was held (${withHedge.map((r) => `${Math.round(r.ms)}${r.ok ? '' : '!'}`).join(', ')} ms)`,
      );
      assert.ok(hedged.hedgedReads > hedgedBefore, 'no read was hedged');
    } finally {
      await hedged.close();
      await plain.close();
    }
  });

  it('still answers LOCAL_ONE reads with one dc1 node stopped', { timeout: 300_000 }, async () => {
    const users = Array.from({ length: 20 }, (_, i) => `survivor-${i}-${randomBytes(3).toString('hex')}`);
    for (const user of users) await store.insertKeys(user, rows(3));
    script('stop.sh', '2');
    try {
      await waitFor(
        () =>
          !store.driver
            .getState()
            .getConnectedHosts()
            .some((h) => h.address.startsWith('127.0.0.2')),
        'the driver to see node 2 down',
      );
      const dc2Before = tracker.byDatacenter.get('dc2') ?? 0;
      for (let round = 0; round < 5; round++) {
        for (const user of users) assert.equal((await store.getKeychain(user)).length, 3, user);
        const many = await store.getKeychains(users);
        assert.ok(users.every((u) => many.get(u)?.length === 3));
      }
      assert.equal(tracker.byDatacenter.get('dc2') ?? 0, dc2Before, 'reads fell over to dc2');
      // A create needs LOCAL_QUORUM (2 of 2 in dc1): it fails fast rather than succeeding in dc2.
      const started = Date.now();
      await assert.rejects(store.insertKeys(`new-${randomBytes(3).toString('hex')}`, rows(1)));
      assert.ok(Date.now() - started < 10000);
    } finally {
      script('start-node.sh', '2');
    }
  });
});
