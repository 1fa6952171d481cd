import cassandra from 'cassandra-driver';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { requiredEnv } from '../testing/services-env.js';
import { CassandraKeyStore, SPECULATIVE_RETRY, type CassandraStoreOptions } from './cassandra.js';
import { BudgetedHedgePolicy } from './hedge-budget.js';
import { serviceRow } from '../service-rows.js';
import { tamperCassandra } from '../testing/tamper.js';
import { runKeyStoreConformance, type RowEdit } from './conformance.js';

const env = requiredEnv('PADLOCK_TEST_CASSANDRA');

function options(keyspace: string): CassandraStoreOptions {
  return {
    contactPoints: (env.value ?? '').split(','),
    localDataCenter: 'dc1',
    keyspace,
    replication: { dc1: 1 },
    connectTimeoutMs: 5000,
    readTimeoutMs: 5000,
    hedgeAfterMs: 8,
    createSchema: true,
  };
}

const keyspace = `padlock_conformance_${randomBytes(4).toString('hex')}`;

if (env.skip === false) {
  runKeyStoreConformance('cassandra', async () => {
    const store = await CassandraKeyStore.open(options(keyspace));
    const peers: CassandraKeyStore[] = [];
    return {
      store,
      openPeer: async () => {
        const peer = await CassandraKeyStore.open({ ...options(keyspace), createSchema: false });
        peers.push(peer);
        return peer;
      },
      dispose: async () => {
        await store.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 60000 });
        await store.close();
        for (const peer of peers) await peer.close();
      },
      tamper: (edit: RowEdit) => tamperCassandra(store, keyspace, edit),
      withholdingIndex: async () =>
        (
          await store.driver.execute(`SELECT schedule_id FROM ${keyspace}.schedules_withholding WHERE id = 0`, [], {
            consistency: cassandra.types.consistencies.localQuorum, // as the store writes it
          })
        ).rows.map((r) => r['schedule_id'] as string),
    };
  });
}

describe('Cassandra store: driver settings and table', { skip: env.skip }, () => {
  it('creates the table with read_repair NONE, leveled compaction and no row cache', async () => {
    const ks = `padlock_schema_${randomBytes(4).toString('hex')}`;
    const store = await CassandraKeyStore.open(options(ks));
    try {
      const table = await store.driver.execute(
        'SELECT read_repair, compaction, caching FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?',
        [ks, 'root_keys'],
      );
      const row = table.first();
      assert.equal(row['read_repair'], 'NONE');
      assert.match(String((row['compaction'] as Record<string, string>)['class']), /LeveledCompactionStrategy/);
      assert.equal((row['caching'] as Record<string, string>)['rows_per_partition'], 'NONE');
      const keyspaceRow = (
        await store.driver.execute('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [ks])
      ).first();
      assert.match(String((keyspaceRow['replication'] as Record<string, string>)['class']), /NetworkTopologyStrategy/);
      const columns = await store.driver.execute(
        'SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?',
        [ks, 'root_keys'],
      );
      for (const column of columns.rows) {
        assert.doesNotMatch(
          String(column['type']),
          /^(map|list|set|frozen)</,
          `${String(column['column_name'])} is a collection`,
        );
      }
    } finally {
      await store.driver.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 60000 });
      await store.close();
    }
  });

  it('asks another replica after at most 50 ms (speculative_retry), on new tables and on tables made before it', async () => {
    const ks = `padlock_spec_${randomBytes(4).toString('hex')}`;
    const retries = async (store: CassandraKeyStore): Promise<Map<string, string>> =>
      new Map(
        (
          await store.driver.execute(
            'SELECT table_name, speculative_retry FROM system_schema.tables WHERE keyspace_name = ?',
            [ks],
          )
        ).rows.map((r) => [String(r['table_name']), String(r['speculative_retry'])]),
      );
    let store = await CassandraKeyStore.open(options(ks));
    try {
      const created = await retries(store);
      assert.ok(created.size >= 15, `${created.size} tables`);
      for (const [table, value] of created) assert.equal(value, SPECULATIVE_RETRY, table);
      // A keyspace from before the option: two tables back at Cassandra's default, then a start.
      for (const table of ['holds', 'root_keys']) {
        await store.driver.execute(`ALTER TABLE ${ks}.${table} WITH speculative_retry = '99p'`, [], {
          readTimeout: 60000,
        });
      }
      assert.equal((await retries(store)).get('holds'), '99p');
      await store.close();
      store = await CassandraKeyStore.open(options(ks));
      for (const [table, value] of await retries(store)) assert.equal(value, SPECULATIVE_RETRY, table);
    } finally {
      await store.driver.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 60000 });
      await store.close();
    }
  });

  it('never retries, hedges once after hedgeAfterMs (within a budget), and uses the configured timeouts and local datacenter', async () => {
    const ks = `padlock_opts_${randomBytes(4).toString('hex')}`;
    const store = await CassandraKeyStore.open(options(ks));
    const unhedged = await CassandraKeyStore.open({ ...options(ks), hedgeAfterMs: 0 });
    try {
      const o = (store.driver as unknown as { options: cassandra.ClientOptions }).options;
      assert.ok(o.policies?.retry instanceof cassandra.policies.retry.FallthroughRetryPolicy);
      assert.ok(o.policies?.loadBalancing instanceof cassandra.policies.loadBalancing.DefaultLoadBalancingPolicy);
      const hedge = o.policies?.speculativeExecution;
      assert.ok(hedge instanceof BudgetedHedgePolicy);
      assert.equal(hedge, store.hedgePolicy);
      // One hedge, after hedgeAfterMs, then none: a plan answers 8 once, then -1.
      const plan = hedge.newPlan();
      assert.deepEqual([plan.nextExecution(), plan.nextExecution()], [8, -1]);
      assert.ok(
        (unhedged.driver as unknown as { options: cassandra.ClientOptions }).options.policies
          ?.speculativeExecution instanceof cassandra.policies.speculativeExecution.NoSpeculativeExecutionPolicy,
        'hedgeAfterMs 0 must turn hedging off',
      );
      assert.equal(o.socketOptions?.readTimeout, 5000);
      assert.equal(o.localDataCenter, 'dc1');
    } finally {
      await store.driver.execute(`DROP KEYSPACE IF EXISTS ${ks}`, []).catch(() => undefined);
      await unhedged.close();
      await store.close();
    }
  });

  it('shreds by overwriting with an empty blob: no tombstone-making deletes or nulls in the row', async () => {
    const ks = `padlock_shred_${randomBytes(4).toString('hex')}`;
    const store = await CassandraKeyStore.open(options(ks));
    try {
      await store.insertKeys('u1', [{ category: 'profile', version: 1, wrapped: randomBytes(70), createdAt: 1 }]);
      assert.equal(await store.shred('u1', undefined, 2), 1);
      const raw = (
        await store.driver.execute(`SELECT wrapped, shredded_at FROM ${ks}.root_keys WHERE user_id = ?`, ['u1'])
      ).first();
      assert.ok(Buffer.isBuffer(raw['wrapped']) && raw['wrapped'].length === 0, 'an empty blob, not null');
      assert.equal((raw['shredded_at'] as Date).getTime(), 2);
    } finally {
      await store.driver.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 60000 });
      await store.close();
    }
  });

  it('fails fast when no contact point answers', async () => {
    const started = Date.now();
    await assert.rejects(
      CassandraKeyStore.open({ ...options('padlock_none'), contactPoints: ['127.0.0.1:1'], connectTimeoutMs: 500 }),
    );
    assert.ok(Date.now() - started < 5000, 'connect failure took more than 5 s');
  });
});

describe('Cassandra store: schema migration', { skip: env.skip }, () => {
  it('adds the columns a table made before them lacks, keeps its rows, and does it once', async () => {
    const ks = `padlock_migrate_${randomBytes(4).toString('hex')}`;
    const client = new cassandra.Client({ contactPoints: (env.value ?? '').split(','), localDataCenter: 'dc1' });
    await client.connect();
    try {
      await client.execute(`CREATE KEYSPACE ${ks} WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 1}`);
      // The services table as the first release made it.
      await client.execute(`CREATE TABLE ${ks}.services (
        service_id text PRIMARY KEY, wrapped_key blob, read_categories text,
        can_create boolean, can_rotate boolean, can_shred boolean, created_at timestamp)`);
      await client.execute(
        `INSERT INTO ${ks}.services (service_id, wrapped_key, read_categories, can_create, can_rotate, can_shred, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ['legacy', randomBytes(70), 'profile', true, false, true, new Date(1234)],
        { prepare: true },
      );
      for (let open = 0; open < 2; open++) {
        const store = await CassandraKeyStore.open(options(ks));
        try {
          const read = await store.getService('legacy');
          assert.deepEqual(read?.tlsIdentities, open === 0 ? [] : ['CN=legacy']);
          assert.equal(read?.generation, open);
          assert.equal(read?.mac, null);
          assert.deepEqual(read?.credentialStates, []);
          assert.deepEqual(read?.permissions, {
            read: ['profile'],
            create: true,
            rotate: false,
            shred: true,
            hold: false,
          });
          if (read !== undefined) {
            const row = serviceRow(read);
            assert.equal(
              await store.updateService({ ...row, tlsIdentities: ['CN=legacy'], generation: open + 1 }, open),
              true,
            );
          }
        } finally {
          await store.close();
        }
      }
    } finally {
      await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 60000 });
      await client.shutdown();
    }
  });
});
