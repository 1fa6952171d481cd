import { kekRing, SecretBytes, type KekRing } from '@padlock/core';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, canonicalJson, entryHash, type AuditEvent } from './audit.js';
import { exportAudit, verifyAudit, verifyChain } from './audit-verify.js';
import { StoreRows, Unwrapper } from './keychain.js';
import { KeyService } from './keys.js';
import { Metrics } from './metrics.js';
import { ReceiptSigner } from './receipts.js';
import { ServiceWriter } from './service-rows.js';
import { newCredential, newServiceRecord } from './services.js';
import { CassandraKeyStore } from './store/cassandra.js';
import { SqliteKeyStore } from './store/sqlite.js';
import type { AuditRow, KeyStore } from './store/types.js';
import { startHarness } from './testing/harness.js';
import { requiredEnv } from './testing/services-env.js';

/** Edits made behind the store's back, as someone with write access to the database would. */
interface RawAudit {
  setRow(chain: string, seq: number, body: string, hash: string): Promise<void>;
  remove(chain: string, seq: number): Promise<void>;
  /** Clears every audit entry and checkpoint, so each case starts from an empty log. */
  clear(): Promise<void>;
}

interface Backend {
  readonly store: KeyStore;
  readonly raw: RawAudit;
  close(): Promise<void>;
}

const CATEGORIES = ['profile', 'payments', 'advertising'];

function sqliteBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'padlock-audit-'));
  const store = new SqliteKeyStore({ path: join(dir, 'padlock.db'), busyTimeoutMs: 2000 });
  const db = store.database;
  return Promise.resolve({
    store,
    raw: {
      setRow: (chain, seq, body, hash) => {
        db.prepare('UPDATE audit_entries SET body = ?, hash = ? WHERE chain_id = ? AND seq = ?').run(
          body,
          hash,
          chain,
          seq,
        );
        return Promise.resolve();
      },
      remove: (chain, seq) => {
        db.prepare('DELETE FROM audit_entries WHERE chain_id = ? AND seq = ?').run(chain, seq);
        return Promise.resolve();
      },
      clear: () => {
        db.exec('DELETE FROM audit_entries; DELETE FROM audit_checkpoints;');
        return Promise.resolve();
      },
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

async function cassandraBackend(contactPoints: string): Promise<Backend> {
  const keyspace = `padlock_audit_${randomBytes(4).toString('hex')}`;
  const store = await CassandraKeyStore.open({
    contactPoints: contactPoints.split(','),
    localDataCenter: 'dc1',
    keyspace,
    replication: { dc1: 1 },
    connectTimeoutMs: 5000,
    readTimeoutMs: 5000,
    hedgeAfterMs: 0,
    createSchema: true,
  });
  const cql = (query: string, params: unknown[]): Promise<unknown> =>
    store.driver.execute(query.replaceAll('{ks}', keyspace), params, { prepare: true, consistency: 6 });
  return {
    store,
    raw: {
      // Plain writes next to the store's IF NOT EXISTS: what an operator with cqlsh would do.
      setRow: async (chain, seq, body, hash) => {
        await cql('UPDATE {ks}.audit_entries SET body = ?, hash = ? WHERE chain_id = ? AND seq = ?', [
          body,
          hash,
          chain,
          seq,
        ]);
      },
      remove: async (chain, seq) => {
        await cql('DELETE FROM {ks}.audit_entries WHERE chain_id = ? AND seq = ?', [chain, seq]);
      },
      clear: async () => {
        await store.driver.execute(`TRUNCATE ${keyspace}.audit_entries`, [], { readTimeout: 60000 });
        await store.driver.execute(`TRUNCATE ${keyspace}.audit_checkpoints`, [], { readTimeout: 60000 });
      },
    },
    async close() {
      await store.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 60000 });
      await store.close();
    },
  };
}

/** A log writer on `store` that checkpoints after every append (so a cut tail shows). */
async function writer(store: KeyStore, keks: KekRing): Promise<{ audit: AuditLog; signer: ReceiptSigner }> {
  const signer = await ReceiptSigner.open(store, keks);
  return { audit: new AuditLog(store, { checkpointEveryMs: 0, signer }), signer };
}

/**
 * A day of a keychain's life through the real paths: a service made and given a
 * credential (ServiceWriter), a keychain created, rotated and shredded (KeyService),
 * then the events the lifecycle paths append (schedule, hold). Returns what a
 * log must never hold: the credential and its verifier.
 */
async function lifeOfAKeychain(store: KeyStore, keks: KekRing, audit: AuditLog, signer: ReceiptSigner) {
  const admin = new ServiceWriter(store, keks, { log: audit, actor: 'cli:ops' });
  const now = Date.now();
  const serviceId = `billing-${randomBytes(4).toString('hex')}`;
  const permissions = { read: ['profile'], create: true, rotate: false, shred: true, hold: false };
  await admin.create(newServiceRecord(keks, serviceId, permissions, now));
  const { credential, record } = newCredential(serviceId, now);
  await admin.addCredential(serviceId, record);
  await admin.setPermissions(serviceId, { ...permissions, rotate: true }, 'service.grant');
  const metrics = new Metrics();
  const keys = new KeyService(
    store,
    new Unwrapper(new StoreRows(store, metrics), keks),
    keks,
    CATEGORIES,
    30000,
    metrics,
    {
      receipts: signer,
      audit,
    },
  );
  const user = `u-${randomBytes(4).toString('hex')}`;
  await keys.create(user, serviceId);
  await keys.rotate(user, 'advertising', serviceId);
  const events: AuditEvent[] = [
    { type: 'hold.place', userId: user, category: null, holdId: 'h1', reason: 'litigation 2026-17' },
    { type: 'hold.release', userId: user, category: null, holdId: 'h1' },
    { type: 'schedule.create', userId: user, category: null, scheduleId: 's1', executeAt: now + 1000 },
  ];
  for (const event of events) await audit.append(serviceId, event);
  await keys.shred(user, 'advertising', { requestedBy: serviceId });
  await keys.shred(user, undefined, { requestedBy: 'scheduler', scheduleId: 's1' });
  await audit.append('scheduler', { type: 'schedule.execute', userId: user, category: null, scheduleId: 's1' });
  await admin.revokeCredential(serviceId, record.credentialId, Date.now());
  return { credential, verifier: Buffer.from(record.verifier) };
}

function runAuditCases(name: string, open: () => Promise<Backend>): void {
  describe(`audit log on ${name}`, () => {
    let backend: Backend;
    let store: KeyStore;
    const keks = kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1');
    before(async () => {
      backend = await open();
      store = backend.store;
    });
    after(async () => {
      await backend.close();
    });

    /** A fresh log with the life of one keychain in it: 12 entries on one chain. */
    async function filled(): Promise<{ chain: string; rows: AuditRow[]; signer: ReceiptSigner }> {
      await backend.raw.clear();
      const { audit, signer } = await writer(store, keks);
      await lifeOfAKeychain(store, keks, audit, signer);
      const rows = await store.readAuditChain(audit.chainId);
      return { chain: audit.chainId, rows, signer };
    }

    it('verifies after a series of lifecycle and admin events, every one recorded in order', async () => {
      const { audit, signer } = await writer(store, keks);
      await backend.raw.clear();
      await lifeOfAKeychain(store, keks, audit, signer);
      const report = await verifyAudit(store, signer.jwks);
      assert.deepEqual(report, { ok: true, chains: 1, entries: 12, checkpoints: 12 });
      const types = (await exportAudit(store, 0)).map((r) => (JSON.parse(r.body) as { event: AuditEvent }).event.type);
      assert.deepEqual(types, [
        'service.create',
        'credential.add',
        'service.grant',
        'keychain.create',
        'category.rotate',
        'hold.place',
        'hold.release',
        'schedule.create',
        'category.shred',
        'keychain.shred',
        'schedule.execute',
        'credential.revoke',
      ]);
    });

    it('holds no credential, verifier or key bytes in any entry', async () => {
      await backend.raw.clear();
      const { audit, signer } = await writer(store, keks);
      const { credential, verifier } = await lifeOfAKeychain(store, keks, audit, signer);
      const text = (await exportAudit(store, 0)).map((r) => r.body).join('\n');
      const secret = credential.split('.')[3]!;
      for (const form of [
        credential,
        secret,
        verifier.toString('hex'),
        verifier.toString('base64'),
        verifier.toString('base64url'),
      ]) {
        assert.ok(!text.includes(form), 'an audit entry holds a credential or verifier');
      }
    });

    it('names an entry whose body was edited (hash left as it was)', async () => {
      const { chain, rows, signer } = await filled();
      const row = rows[2]!;
      await backend.raw.setRow(chain, row.seq, row.body.replace('"service.grant"', '"service.revoke"'), row.hash);
      const report = await verifyAudit(store, signer.jwks);
      assert.equal(report.ok, false);
      assert.deepEqual([report.first?.chain, report.first?.seq, report.first?.problem], [chain, 3, 'edited']);
    });

    it('names an entry edited with its hash recomputed (the next entry no longer links to it)', async () => {
      const { chain, rows, signer } = await filled();
      const row = rows[4]!;
      const body = row.body.replace('"advertising"', '"profile"');
      assert.notEqual(body, row.body);
      await backend.raw.setRow(chain, row.seq, body, entryHash(body));
      const report = await verifyAudit(store, signer.jwks);
      assert.deepEqual([report.first?.seq, report.first?.problem], [5, 'edited']);
    });

    it('names an entry removed from the middle', async () => {
      const { chain, signer } = await filled();
      await backend.raw.remove(chain, 6);
      const report = await verifyAudit(store, signer.jwks);
      assert.deepEqual([report.first?.seq, report.first?.problem], [6, 'removed']);
    });

    it('names the first of two entries swapped in place', async () => {
      const { chain, rows, signer } = await filled();
      const [a, b] = [rows[6]!, rows[7]!];
      await backend.raw.setRow(chain, a.seq, b.body, b.hash);
      await backend.raw.setRow(chain, b.seq, a.body, a.hash);
      const report = await verifyAudit(store, signer.jwks);
      assert.deepEqual([report.first?.seq, report.first?.problem], [7, 'reordered']);
    });

    it('names the last entry when it is cut off (its checkpoint signed it)', async () => {
      const { chain, rows, signer } = await filled();
      const last = rows.at(-1)!;
      await backend.raw.remove(chain, last.seq);
      const report = await verifyAudit(store, signer.jwks);
      assert.deepEqual([report.first?.seq, report.first?.problem], [last.seq, 'removed']);
    });

    it('refuses a checkpoint that does not verify', async () => {
      const { chain, signer } = await filled();
      const marks = await store.listAuditCheckpoints(chain);
      const mark = marks[3]!;
      const parts = mark.jws.split('.');
      const forged = `${parts[0]}.${Buffer.from(canonicalJson({ at: 1, chain, hash: '0'.repeat(64), seq: mark.seq })).toString('base64url')}.${parts[2]}`;
      await store.putAuditCheckpoint({ ...mark, jws: forged });
      const report = await verifyAudit(store, signer.jwks);
      assert.deepEqual([report.first?.seq, report.first?.problem], [mark.seq, 'bad-checkpoint']);
    });

    it('a failed append ends the chain; the next starts a new one and the log still verifies', async () => {
      await backend.raw.clear();
      const signer = await ReceiptSigner.open(store, keks);
      let failing = false;
      const flaky: Pick<KeyStore, 'appendAudit' | 'putAuditCheckpoint'> = {
        appendAudit: (row) => (failing ? Promise.reject(new Error('store down')) : store.appendAudit(row)),
        putAuditCheckpoint: (c) => store.putAuditCheckpoint(c),
      };
      const audit = new AuditLog(flaky, { checkpointEveryMs: 0, signer });
      await audit.append('a', { type: 'kek.activate', kid: 'k2' });
      const first = audit.chainId;
      failing = true;
      await assert.rejects(audit.append('a', { type: 'kek.rewrap', kid: 'k2', rows: 10 }), /audit log did not take/);
      failing = false;
      await audit.append('a', { type: 'kek.retire', kid: 'k1' });
      assert.notEqual(audit.chainId, first);
      assert.deepEqual(await verifyAudit(store, signer.jwks), { ok: true, chains: 2, entries: 2, checkpoints: 2 });
    });
  });
}

runAuditCases('SQLite', sqliteBackend);
const cassandraEnv = requiredEnv('PADLOCK_TEST_CASSANDRA');
if (cassandraEnv.skip === false) runAuditCases('Cassandra', () => cassandraBackend(cassandraEnv.value!));

describe('verifyChain on generated edits', () => {
  it('any single edit, removal or swap of a 12-entry chain is named at the right entry', () => {
    const chain = 'c';
    const rows: AuditRow[] = [];
    let prev = '0'.repeat(64);
    for (let seq = 1; seq <= 12; seq++) {
      const body = canonicalJson({
        v: 1,
        chain,
        seq,
        at: seq,
        prev,
        actor: 'x',
        event: { type: 'kek.activate', kid: `k${seq}` },
      });
      const hash = entryHash(body);
      rows.push({ chainId: chain, seq, at: seq, body, hash });
      prev = hash;
    }
    assert.equal(verifyChain(chain, rows), undefined);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 11 }), fc.constantFrom('edit', 'rehash', 'remove', 'swap'), (i, kind) => {
        const copy = rows.map((r) => ({ ...r }));
        let expected: [number, string];
        if (kind === 'edit' || kind === 'rehash') {
          const body = copy[i]!.body.replace(`"k${i + 1}"`, `"z${i + 1}"`);
          copy[i] = { ...copy[i]!, body, hash: kind === 'rehash' ? entryHash(body) : copy[i]!.hash };
          expected = [i + 1, 'edited'];
          if (kind === 'rehash' && i === 11) return; // the tail: only a checkpoint can tell (tested above)
        } else if (kind === 'remove') {
          if (i === 11) return; // ditto
          copy.splice(i, 1);
          expected = [i + 1, 'removed'];
        } else {
          if (i === 11) return;
          const a = copy[i]!;
          const b = copy[i + 1]!;
          copy[i] = { ...b, seq: a.seq };
          copy[i + 1] = { ...a, seq: b.seq };
          expected = [i + 1, 'reordered'];
        }
        const found = verifyChain(chain, copy);
        assert.deepEqual([found?.seq, found?.problem], expected);
      }),
      { numRuns: 200 },
    );
  });
});

describe('lookups: counted per service and category, never appended to the audit log', () => {
  it('counts single and batch lookups by service and category; the log holds only the create', async () => {
    const h = await startHarness({
      services: [
        {
          serviceId: 'admin',
          permissions: {
            read: ['profile', 'payments', 'advertising'],
            create: true,
            rotate: true,
            shred: true,
            hold: true,
          },
        },
        {
          serviceId: 'ads',
          permissions: { read: ['advertising'], create: false, rotate: false, shred: false, hold: false },
        },
      ],
    });
    try {
      await h.call('POST', '/v1/keychains', { json: { userId: 'lu' } });
      const entriesBefore = await countEntries(h.padlock.store);
      for (let i = 0; i < 3; i++) assert.equal((await h.call('GET', '/v1/keys/lu?categories=profile')).status, 200);
      assert.equal((await h.call('GET', '/v1/keys/lu', { as: 'ads' })).status, 200);
      const batch = await h.call('POST', '/v1/keys/batch-get', {
        as: 'ads',
        json: { userIds: ['lu', 'nobody'], categories: ['advertising'] },
      });
      assert.equal(batch.status, 200);
      const lookups = h.padlock.metrics.lookups;
      assert.equal(lookups.get({ service: 'admin', category: 'profile' }), 3);
      assert.equal(lookups.get({ service: 'admin', category: 'payments' }), 0);
      assert.equal(lookups.get({ service: 'ads', category: 'advertising' }), 3, 'one lookup and a batch of two users');
      assert.match(h.padlock.metrics.render(), /padlock_lookups_total\{category="profile",service="admin"\} 3/);
      assert.equal(await countEntries(h.padlock.store), entriesBefore, 'a lookup wrote to the audit log');
      assert.equal(entriesBefore, 1, 'the create is in the log');
    } finally {
      await h.close();
    }
  });
});

async function countEntries(store: KeyStore): Promise<number> {
  let n = 0;
  for (const chain of await store.listAuditChains()) n += (await store.readAuditChain(chain)).length;
  return n;
}
