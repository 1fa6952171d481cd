import Database from 'better-sqlite3';
import cassandra from 'cassandra-driver';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { ServiceWriter } from '../service-rows.js';
import { credentialVerifier, newCredential, newServiceRecord, ServiceRegistry } from '../services.js';
import { ALL_RIGHTS, metricValue, startHarness, type Harness } from '../testing/harness.js';
import { requiredEnv } from '../testing/services-env.js';
import { openStore } from './open.js';

/*
 * The store cannot grant what the KEK did not (DESIGN.md section 10): rows of
 * a running server's store are edited directly, in the SQLite file and in
 * Cassandra's tables, the way someone with database access and no KEK would.
 * Each edit must be refused, counted, shown on /readyz, and leave the
 * service on its last verified state.
 */

const READ_PROFILE = { read: ['profile'], create: false, rotate: false, shred: false, hold: false };
const USER = 'integrity-user';

/** Direct access to the service and credential rows, as the database's own client sees them. */
interface RawRows {
  service(serviceId: string): Promise<Record<string, unknown>>;
  credential(serviceId: string, credentialId: string): Promise<Record<string, unknown>>;
  setService(serviceId: string, values: Record<string, unknown>): Promise<void>;
  setCredential(serviceId: string, credentialId: string, values: Record<string, unknown>): Promise<void>;
  insertCredential(values: Record<string, unknown>): Promise<void>;
  /** A boolean and a time as the backend stores them. */
  bool(value: boolean): unknown;
  close(): Promise<void>;
}

function sqliteRows(h: Harness): RawRows {
  const db = new Database(join(h.dir, 'padlock.db'));
  db.pragma('busy_timeout = 5000');
  const set = (table: string, where: Record<string, unknown>, values: Record<string, unknown>): void => {
    const columns = Object.keys(values);
    const keys = Object.keys(where);
    db.prepare(
      `UPDATE ${table} SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE ${keys.map((k) => `${k} = ?`).join(' AND ')}`,
    ).run(...columns.map((c) => values[c]), ...keys.map((k) => where[k]));
  };
  return {
    service: (id) =>
      Promise.resolve(db.prepare('SELECT * FROM services WHERE service_id = ?').get(id) as Record<string, unknown>),
    credential: (id, cid) =>
      Promise.resolve(
        db.prepare('SELECT * FROM credentials WHERE service_id = ? AND credential_id = ?').get(id, cid) as Record<
          string,
          unknown
        >,
      ),
    setService: (id, values) => Promise.resolve(set('services', { service_id: id }, values)),
    setCredential: (id, cid, values) =>
      Promise.resolve(set('credentials', { service_id: id, credential_id: cid }, values)),
    insertCredential: (values) => {
      const columns = Object.keys(values);
      db.prepare(
        `INSERT OR REPLACE INTO credentials (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      ).run(...columns.map((c) => values[c]));
      return Promise.resolve();
    },
    bool: (value) => Number(value),
    close: () => {
      db.close();
      return Promise.resolve();
    },
  };
}

async function cassandraRows(h: Harness): Promise<RawRows> {
  if (h.config.store.kind !== 'cassandra') throw new Error('not a Cassandra harness');
  const { contactPoints, keyspace } = h.config.store.cassandra;
  const client = new cassandra.Client({ contactPoints: [...contactPoints], localDataCenter: 'dc1', keyspace });
  await client.connect();
  const options = { prepare: true, consistency: cassandra.types.consistencies.localQuorum };
  const one = async (query: string, params: unknown[]): Promise<Record<string, unknown>> =>
    (await client.execute(query, params, options)).first();
  const set = async (table: string, where: Record<string, unknown>, values: Record<string, unknown>) => {
    const columns = Object.keys(values);
    const keys = Object.keys(where);
    await client.execute(
      `UPDATE ${table} SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE ${keys.map((k) => `${k} = ?`).join(' AND ')}`,
      [...columns.map((c) => values[c]), ...keys.map((k) => where[k])],
      options,
    );
  };
  return {
    service: (id) => one('SELECT * FROM services WHERE service_id = ?', [id]),
    credential: (id, cid) => one('SELECT * FROM credentials WHERE service_id = ? AND credential_id = ?', [id, cid]),
    setService: (id, values) => set('services', { service_id: id }, values),
    setCredential: (id, cid, values) => set('credentials', { service_id: id, credential_id: cid }, values),
    insertCredential: async (values) => {
      const columns = Object.keys(values);
      await client.execute(
        `INSERT INTO credentials (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
        columns.map((c) => values[c]),
        options,
      );
    },
    bool: (value) => value,
    close: () => client.shutdown(),
  };
}

const cassandraEnv = requiredEnv('PADLOCK_TEST_CASSANDRA');

const BACKENDS: {
  name: string;
  skip: boolean | string;
  config: Record<string, unknown>;
  open: (h: Harness) => Promise<RawRows>;
}[] = [
  {
    name: 'sqlite',
    skip: false,
    // Whatever PADLOCK_TEST_BACKEND the harness runs on: this case edits the SQLite file.
    config: { store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } } },
    open: (h) => Promise.resolve(sqliteRows(h)),
  },
  {
    name: 'cassandra',
    skip: cassandraEnv.skip,
    config: {
      store: {
        kind: 'cassandra',
        cassandra: {
          contactPoints: (cassandraEnv.value ?? '').split(','),
          localDataCenter: 'dc1',
          keyspace: `padlock_integrity_${process.pid}`,
          replication: { dc1: 1 },
          readTimeoutMs: 5000,
        },
      },
    },
    open: cassandraRows,
  },
];

for (const backend of BACKENDS) {
  describe(`rows edited in ${backend.name} without the KEK are refused`, { skip: backend.skip }, () => {
    let h: Harness;
    let raw: RawRows;
    /** A second registry on the same store, loaded before the edits: it shows byTlsIdentity and the last verified state. */
    let registry: ServiceRegistry;
    const registryMetrics = new Metrics();
    const lines: string[] = [];

    before(async () => {
      const services = ['reads', 'rights', 'holder', 'verifier', 'unrevoke', 'replay', 'copy', 'tls', 'legacy'].map(
        (serviceId) => ({
          serviceId,
          permissions: READ_PROFILE,
          tlsIdentities: [`CN=${serviceId}`],
        }),
      );
      h = await startHarness({
        services: [{ serviceId: 'admin', permissions: ALL_RIGHTS }, ...services],
        config: { ...backend.config, services: { refreshSeconds: 1 } },
      });
      raw = await backend.open(h);
      registry = new ServiceRegistry(
        h.padlock.store,
        h.keks,
        createLogger('info', (l) => lines.push(l)),
        registryMetrics,
      );
      await registry.refresh();
      assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: USER } })).status, 201);
    });
    after(async () => {
      await raw.close();
      await h.close();
    });

    /** Waits until the server's /readyz names the service's failure; returns the reply body's checks. */
    async function refused(serviceId: string, reason: string): Promise<void> {
      const expected = `${serviceId} (${reason})`;
      const deadline = Date.now() + 15000;
      for (;;) {
        const ready = await h.call('GET', '/readyz', { authorization: null });
        const checks = (ready.body as { checks: Record<string, string> }).checks;
        if (checks['integrity']?.includes(expected)) {
          assert.equal(ready.status, 200, 'an integrity failure keeps the server ready, with a warning');
          assert.match(checks['integrity'], /^failing, last verified state kept: /);
          break;
        }
        assert.ok(Date.now() < deadline, `/readyz never named ${expected}: ${JSON.stringify(checks)}`);
        await sleep(200);
      }
      const [row, why] = reason.split(':') as [string, string];
      const before = metricValue(registryMetrics.render(), 'padlock_store_integrity_failures_total', {
        row,
        reason: why,
      });
      await registry.refresh();
      assert.equal(registry.integrityFailures.get(serviceId), reason);
      assert.ok(
        metricValue(registryMetrics.render(), 'padlock_store_integrity_failures_total', { row, reason: why }) > before,
      );
      const text = (await h.call('GET', '/metrics', { authorization: null })).text;
      assert.ok(metricValue(text, 'padlock_store_integrity_failures_total', { row, reason: why }) > 0);
      assert.ok(metricValue(text, 'padlock_services_failing_integrity') >= 1);
    }

    const keys = (as: string, category: string, authorization?: string) =>
      h.call('GET', `/v1/keys/${USER}?categories=${category}`, {
        as,
        ...(authorization === undefined ? {} : { authorization }),
      });

    it('a category added to the read permissions: still 403, the old rights stay', async () => {
      assert.equal((await keys('reads', 'payments')).status, 403);
      await raw.setService('reads', { read_categories: 'profile,payments' });
      await refused('reads', 'service:bad-mac');
      assert.equal((await keys('reads', 'payments')).status, 403);
      assert.equal((await keys('reads', 'profile')).status, 200, 'the last verified state stays in force');
      assert.deepEqual(registry.byTlsIdentity('CN=reads')?.permissions.read, ['profile']);
    });

    it('create and shred rights flipped on: still 403', async () => {
      await raw.setService('rights', { can_create: raw.bool(true), can_shred: raw.bool(true) });
      await refused('rights', 'service:bad-mac');
      assert.equal((await h.call('POST', '/v1/keychains', { as: 'rights', json: { userId: 'x-rights' } })).status, 403);
      assert.equal((await h.call('DELETE', `/v1/keychains/${USER}`, { as: 'rights' })).status, 403);
      assert.equal((await keys('rights', 'profile')).status, 200);
    });

    it('the hold right flipped on: still 403, no hold placed', async () => {
      await raw.setService('holder', { can_hold: raw.bool(true) });
      await refused('holder', 'service:bad-mac');
      const placed = await h.call('POST', `/v1/keychains/${USER}/holds`, { as: 'holder', json: { reason: 'x' } });
      assert.equal(placed.status, 403, placed.text);
      assert.equal((await keys('holder', 'profile')).status, 200);
    });

    it('a verifier swapped for one whose secret the attacker knows: 401, the real credential still works', async () => {
      const live = h.credentials['verifier']!.split('.')[2]!;
      const secret = Buffer.alloc(32, 7);
      const forged = `Bearer pl1.verifier.${live}.${secret.toString('base64url')}`;
      assert.equal((await keys('verifier', 'profile', forged)).status, 401);
      await raw.setCredential('verifier', live, { verifier: credentialVerifier('verifier', live, secret) });
      await refused('verifier', 'credential:bad-mac');
      assert.equal((await keys('verifier', 'profile', forged)).status, 401);
      assert.equal((await keys('verifier', 'profile')).status, 200);
    });

    it('a revocation removed (revoked_at set back to null): still 401', async () => {
      const revoked = `Bearer ${h.revokedCredentials['unrevoke']!}`;
      const credentialId = h.revokedCredentials['unrevoke']!.split('.')[2]!;
      assert.equal((await keys('unrevoke', 'profile', revoked)).status, 401);
      await raw.setCredential('unrevoke', credentialId, { revoked_at: null });
      await refused('unrevoke', 'credential:bad-mac');
      assert.equal((await keys('unrevoke', 'profile', revoked)).status, 401);
      assert.equal((await keys('unrevoke', 'profile')).status, 200);
    });

    it('an older, validly MACed copy of a credential row replayed after its revocation: still 401', async () => {
      const writer = new ServiceWriter(h.padlock.store, h.keks);
      const { credential, record } = newCredential('replay', Date.now());
      assert.equal(await writer.addCredential('replay', record), true);
      const bearer = `Bearer ${credential}`;
      await waitFor(async () => (await keys('replay', 'profile', bearer)).status === 200);
      const before = await raw.credential('replay', record.credentialId);
      assert.equal(await writer.revokeCredential('replay', record.credentialId, Date.now()), true);
      await waitFor(async () => (await keys('replay', 'profile', bearer)).status === 401);
      await raw.setCredential('replay', record.credentialId, { revoked_at: null, mac: before['mac'] });
      await refused('replay', 'credential:revived');
      assert.equal((await keys('replay', 'profile', bearer)).status, 401);
    });

    it('a credential row copied from another service: refused, the copy authenticates no one', async () => {
      const adminCredential = h.credentials['admin']!;
      const adminId = adminCredential.split('.')[2]!;
      const row = await raw.credential('admin', adminId);
      await raw.insertCredential({ ...row, service_id: 'copy' });
      await refused('copy', 'credential:bad-mac');
      const [, , id, secret] = adminCredential.split('.');
      assert.equal((await keys('copy', 'profile', `Bearer pl1.copy.${id}.${secret}`)).status, 401);
      assert.equal((await keys('copy', 'profile')).status, 200);
    });

    it('a TLS identity added: it maps to no service, the verified ones still do', async () => {
      await raw.setService('tls', { tls_identities: 'CN=tls\nCN=attacker' });
      await refused('tls', 'service:bad-mac');
      assert.equal(registry.byTlsIdentity('CN=attacker'), undefined);
      assert.equal(registry.byTlsIdentity('CN=tls')?.serviceId, 'tls');
      // A registry that never verified the service does not load it at all.
      const fresh = new ServiceRegistry(
        h.padlock.store,
        h.keks,
        createLogger('error', () => undefined),
      );
      await fresh.refresh();
      assert.equal(fresh.byTlsIdentity('CN=tls'), undefined);
      assert.equal(fresh.byTlsIdentity('CN=attacker'), undefined);
      assert.equal(fresh.authenticate(`Bearer ${h.credentials['tls']!}`), undefined);
      assert.equal(fresh.authenticate(`Bearer ${h.credentials['admin']!}`)?.serviceId, 'admin');
    });

    it('rows from before MACs are refused with a message to run `padlock migrate`, which seals them once', async () => {
      await raw.setService('legacy', { mac: null });
      await refused('legacy', 'service:unmigrated');
      assert.ok(
        lines.some((l) => l.includes('"serviceId":"legacy"') && l.includes('run `padlock migrate` with the KEK')),
      );
      const writer = new ServiceWriter(h.padlock.store, h.keks);
      const migration = await writer.migrate();
      assert.deepEqual(migration.sealed, ['legacy']);
      // The edited services are left alone, not sealed as they are now.
      assert.deepEqual(migration.failed.map((f) => f.serviceId).sort(), [
        'copy',
        'holder',
        'reads',
        'replay',
        'rights',
        'tls',
        'unrevoke',
        'verifier',
      ]);
      await registry.refresh();
      assert.equal(registry.integrityFailures.has('legacy'), false);
      assert.equal(registry.authenticate(`Bearer ${h.credentials['legacy']!}`)?.serviceId, 'legacy');
      const again = await writer.migrate();
      assert.deepEqual(again.sealed, []);
      assert.equal(again.unchanged, 2, 'admin and legacy');
    });

    it('a write through the CLI path refuses to seal an edited service', async () => {
      const writer = new ServiceWriter(h.padlock.store, h.keks);
      await assert.rejects(
        writer.setPermissions('reads', READ_PROFILE),
        /failed its integrity check \(service row: bad-mac\)/,
      );
      await assert.rejects(
        writer.create(newServiceRecord(h.keks, 'reads', READ_PROFILE, Date.now())).then((made) => {
          if (!made) throw new Error('exists');
        }),
        /exists/,
      );
    });

    it('concurrent writes over two connections all land: the generation check makes the losers retry', async () => {
      const peer = await openStore(
        h.config,
        createLogger('error', () => undefined),
      );
      try {
        const writers = [new ServiceWriter(h.padlock.store, h.keks), new ServiceWriter(peer, h.keks)];
        assert.equal(await writers[0]!.create(newServiceRecord(h.keks, 'busy', READ_PROFILE, Date.now())), true);
        const made = Array.from({ length: 6 }, () => newCredential('busy', Date.now()));
        const added = await Promise.all(made.map((m, i) => writers[i % 2]!.addCredential('busy', m.record)));
        assert.deepEqual(
          added,
          made.map(() => true),
        );
        await registry.refresh();
        assert.equal(registry.integrityFailures.has('busy'), false);
        for (const m of made) assert.equal(registry.authenticate(`Bearer ${m.credential}`)?.serviceId, 'busy');
        const record = await h.padlock.store.getService('busy');
        assert.equal(record?.generation, 7);
      } finally {
        await peer.close();
      }
    });

    it('logs name the service and the row kind, never row bytes', () => {
      const secretForms = Object.values(h.credentials).map((c) => c.split('.')[3]!);
      for (const line of [...lines, ...h.logLines]) {
        for (const secret of secretForms) assert.ok(!line.includes(secret));
      }
      assert.ok(lines.some((l) => l.includes('"serviceId":"verifier"') && l.includes('"row":"credential"')));
    });
  });
}

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15000;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, 'condition not met within 15 s');
    await sleep(200);
  }
}
