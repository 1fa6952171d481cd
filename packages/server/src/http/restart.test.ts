import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ALL_RIGHTS, assertError, metricValue, startHarness, type Harness, type KeysBody } from '../testing/harness.js';

/* Keys live in the store, wrapped under the KEK: a restart on the same files must serve every key byte for byte. */

const USERS = ['r-plain', 'r-rotated', 'r-opted-out', 'r-reopted', 'r-deleted'] as const;
const SERVICES = ['admin', 'reader'] as const;

interface Snapshot {
  readonly single: Record<string, { status: number; text: string }>;
  readonly batch: Record<string, string>;
  readonly metadata: Record<string, string>;
  readonly roots: Record<string, string>;
}

async function snapshot(h: Harness): Promise<Snapshot> {
  const single: Snapshot['single'] = {};
  const batch: Snapshot['batch'] = {};
  const metadata: Snapshot['metadata'] = {};
  const roots: Snapshot['roots'] = {};
  for (const as of SERVICES) {
    for (const userId of USERS) {
      const reply = await h.call('GET', `/v1/keys/${userId}`, { as });
      // maxAgeSeconds depends on cache age, not on the keys.
      const text = reply.status === 200 ? JSON.stringify((reply.body as KeysBody).categories) : reply.text;
      single[`${as} ${userId}`] = { status: reply.status, text };
    }
    const reply = await h.call('POST', '/v1/keys/batch-get', { as, json: { userIds: [...USERS] } });
    assert.equal(reply.status, 200);
    batch[as] = JSON.stringify(
      (reply.body as { results: KeysBody[] }).results.map((r) => [r.userId, r.status, r.categories]),
    );
  }
  for (const userId of USERS) {
    metadata[userId] = (await h.call('GET', `/v1/keychains/${userId}`)).text;
    const keys = await h.rootKeys(userId);
    roots[userId] = JSON.stringify([...keys].map(([c, v]) => [c, [...v].map(([n, k]) => [n, k.toString('hex')])]));
  }
  return { single, batch, metadata, roots };
}

describe('restart on the same files', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      services: [
        { serviceId: 'admin', permissions: ALL_RIGHTS },
        {
          serviceId: 'reader',
          permissions: { read: ['profile', 'payments'], create: false, rotate: false, shred: false, hold: false },
        },
      ],
    });
    for (const userId of USERS) assert.equal((await h.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
    const ops: [string, string][] = [
      ['POST', '/v1/keychains/r-rotated/categories/profile/rotate'],
      ['POST', '/v1/keychains/r-rotated/categories/profile/rotate'],
      ['DELETE', '/v1/keychains/r-opted-out/categories/advertising'],
      ['DELETE', '/v1/keychains/r-reopted/categories/payments'],
      ['POST', '/v1/keychains/r-reopted/categories/payments/rotate'],
      ['DELETE', '/v1/keychains/r-deleted'],
    ];
    for (const [method, path] of ops) assert.ok((await h.call(method, path)).status < 300, `${method} ${path}`);
  });
  after(() => h.close());

  it('serves every derived key, version and state byte-identical after a restart, twice', async () => {
    const before = await snapshot(h);
    assert.equal(before.single['admin r-plain']?.status, 200);
    assert.equal(before.single['admin r-deleted']?.status, 410);
    assert.match(before.single['admin r-rotated']?.text ?? '', /"current":3/);
    const firstServer = h.padlock;

    await h.restart();
    assert.notEqual(h.padlock, firstServer);
    const metrics = (await h.call('GET', '/metrics', { authorization: null })).text;
    assert.equal(metricValue(metrics, 'padlock_cache_hits_total'), 0, 'not a fresh process state');
    const afterOne = await snapshot(h);
    assert.deepEqual(afterOne, before);

    await h.restart();
    assert.deepEqual(await snapshot(h), before);
  });

  it('keeps credentials: the live one works, the revoked one still does not', async () => {
    await h.restart();
    assert.equal((await h.call('GET', '/v1/keys/r-plain', { as: 'reader' })).status, 200);
    assertError(
      await h.call('GET', '/v1/keys/r-plain', { authorization: `Bearer ${h.revokedCredentials['reader'] ?? ''}` }),
      401,
      'UNAUTHENTICATED',
    );
  });

  it('keeps create idempotent across a restart: the same keys, 200, no new versions', async () => {
    const created = await h.call('POST', '/v1/keychains', { json: { userId: 'r-across' } });
    assert.equal(created.status, 201);
    await h.restart();
    const again = await h.call('POST', '/v1/keychains', { json: { userId: 'r-across' } });
    assert.equal(again.status, 200);
    assert.deepEqual((again.body as KeysBody).categories, (created.body as KeysBody).categories);
  });
});
