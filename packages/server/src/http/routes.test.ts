import { ERRORS } from '@padlock/core';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROUTES } from '../app.js';
import {
  ALL_RIGHTS,
  assertError,
  CATEGORIES,
  findSecret,
  metricValue,
  servedKeys,
  SlowStore,
  startHarness,
  type BatchBody,
  type Harness,
  type KeysBody,
  type MetadataBody,
} from '../testing/harness.js';
import { withoutReceipt } from '../testing/receipts.js';

const READ_ONLY = { read: [...CATEGORIES], create: false, rotate: false, shred: false, hold: false };

/** The served keys must be exactly what the spec's derivation gives for these rows. */
async function assertKeysMatchSpec(h: Harness, serviceId: string, body: KeysBody): Promise<void> {
  const expected = await h.expectedKeys(serviceId, body.userId);
  for (const [category, versions] of servedKeys(body)) {
    assert.deepEqual(
      [...versions].map(([v, k]) => [v, k.toString('hex')]),
      [...(expected.get(category) ?? new Map<number, Buffer>())].map(([v, k]) => [v, k.toString('hex')]),
      `${serviceId} ${body.userId} ${category}`,
    );
  }
}

function keyOf(body: KeysBody, category: string, version: number): string {
  const key = body.categories.find((c) => c.category === category)?.keys?.find((k) => k.version === version)?.key;
  assert.ok(key !== undefined, `no key ${category} v${version} in ${JSON.stringify(body.categories.map((c) => c))}`);
  return key;
}

describe('v1 routes', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      services: [
        { serviceId: 'admin', permissions: ALL_RIGHTS },
        { serviceId: 'playlist', permissions: READ_ONLY },
        { serviceId: 'ads', permissions: READ_ONLY },
      ],
    });
  });
  after(() => h.close());

  const create = async (userId: string): Promise<KeysBody> => {
    const reply = await h.call('POST', '/v1/keychains', { json: { userId } });
    assert.ok(reply.status === 201 || reply.status === 200, reply.text);
    return reply.body as KeysBody;
  };

  it('POST /v1/keychains creates with 201, then answers 200 with the same keys', async () => {
    const first = await h.call('POST', '/v1/keychains', { json: { userId: 'alice' } });
    assert.equal(first.status, 201, first.text);
    const body = first.body as KeysBody;
    assert.equal(body.created, true);
    assert.equal(body.userId, 'alice');
    assert.equal(body.status, 'ok');
    assert.ok(body.maxAgeSeconds >= 29 && body.maxAgeSeconds <= 30, `maxAgeSeconds ${body.maxAgeSeconds}`);
    assert.deepEqual(
      body.categories.map((c) => [c.category, c.status, c.current, c.keys?.map((k) => k.version)]),
      CATEGORIES.map((c) => [c, 'ok', 1, [1]]),
    );
    await assertKeysMatchSpec(h, 'admin', body);

    const second = await h.call('POST', '/v1/keychains', { json: { userId: 'alice' } });
    assert.equal(second.status, 200, second.text);
    const again = second.body as KeysBody;
    assert.equal(again.created, false);
    assert.deepEqual(again.categories, body.categories);
  });

  it('GET /v1/keys/{userId} serves every readable category, or the named ones in the order named', async () => {
    const created = await create('alice');
    const all = await h.call('GET', '/v1/keys/alice');
    assert.equal(all.status, 200, all.text);
    assert.equal(all.headers['cache-control'], 'no-store');
    const body = all.body as KeysBody;
    assert.deepEqual(Object.keys(body).sort(), ['categories', 'maxAgeSeconds', 'status', 'userId']);
    assert.deepEqual(body.categories, created.categories);

    const named = await h.call('GET', '/v1/keys/alice?categories=payments,profile');
    assert.equal(named.status, 200, named.text);
    const namedBody = named.body as KeysBody;
    assert.deepEqual(
      namedBody.categories.map((c) => c.category),
      ['payments', 'profile'],
    );
    assert.equal(keyOf(namedBody, 'profile', 1), keyOf(body, 'profile', 1));

    assertError(await h.call('GET', '/v1/keys/nobody'), 404, 'KEYCHAIN_NOT_FOUND');
  });

  it('derived keys differ per service, per category and per user, and are stable across calls', async () => {
    await create('dave');
    await create('erin');
    const get = async (as: string, user: string): Promise<KeysBody> => {
      const reply = await h.call('GET', `/v1/keys/${user}`, { as });
      assert.equal(reply.status, 200, reply.text);
      return reply.body as KeysBody;
    };
    const playlist = await get('playlist', 'dave');
    const ads = await get('ads', 'dave');
    const playlistErin = await get('playlist', 'erin');
    const seen = new Set<string>();
    for (const category of CATEGORIES) {
      assert.notEqual(keyOf(playlist, category, 1), keyOf(ads, category, 1), `${category}: services share a key`);
      assert.notEqual(keyOf(playlist, category, 1), keyOf(playlistErin, category, 1), `${category}: users share`);
      seen.add(keyOf(playlist, category, 1));
    }
    assert.equal(seen.size, CATEGORIES.length, 'categories share a key');
    assert.deepEqual((await get('playlist', 'dave')).categories, playlist.categories, 'not stable across calls');
    const batch = await h.call('POST', '/v1/keys/batch-get', { as: 'playlist', json: { userIds: ['dave'] } });
    assert.deepEqual((batch.body as BatchBody).results[0]?.categories, playlist.categories, 'batch differs from GET');
    await assertKeysMatchSpec(h, 'playlist', playlist);
    await assertKeysMatchSpec(h, 'ads', ads);
  });

  it('POST /v1/keys/batch-get answers in input order, each with its own status', async () => {
    await create('bob');
    await create('carol');
    assert.equal((await h.call('DELETE', '/v1/keychains/carol')).status, 200);
    const reply = await h.call('POST', '/v1/keys/batch-get', {
      json: { userIds: ['bob', 'nobody', 'alice', 'carol', 'bob'] },
    });
    assert.equal(reply.status, 200, reply.text);
    const { results } = reply.body as BatchBody;
    assert.deepEqual(
      results.map((r) => [r.userId, r.status]),
      [
        ['bob', 'ok'],
        ['nobody', 'not_found'],
        ['alice', 'ok'],
        ['carol', 'shredded'],
        ['bob', 'ok'],
      ],
    );
    assert.deepEqual(results[1], { userId: 'nobody', status: 'not_found' });
    assert.deepEqual(results[3], { userId: 'carol', status: 'shredded' });
    assert.deepEqual(results[0], results[4]);
    const single = await h.call('GET', '/v1/keys/bob');
    assert.deepEqual(results[0]?.categories, (single.body as KeysBody).categories);

    const narrowed = await h.call('POST', '/v1/keys/batch-get', {
      json: { userIds: ['bob'], categories: ['advertising'] },
    });
    assert.deepEqual(
      (narrowed.body as BatchBody).results[0]?.categories.map((c) => c.category),
      ['advertising'],
    );
  });

  it('POST /v1/keys/batch-get takes exactly limits.maxBatch user ids', async () => {
    const userIds = Array.from({ length: h.config.limits.maxBatch }, (_, i) => `bulk-${i}`);
    userIds[250] = 'alice';
    const reply = await h.call('POST', '/v1/keys/batch-get', { json: { userIds } });
    assert.equal(reply.status, 200, reply.text.slice(0, 200));
    const { results } = reply.body as BatchBody;
    assert.equal(results.length, 500);
    assert.equal(results[250]?.status, 'ok');
    assert.equal(results.filter((r) => r.status === 'not_found').length, 499);
  });

  it('GET /v1/keychains/{userId} answers metadata and never key bytes', async () => {
    const created = await create('frank');
    const roots = await h.rootKeys('frank');
    const reply = await h.call('GET', '/v1/keychains/frank');
    assert.equal(reply.status, 200, reply.text);
    const body = reply.body as MetadataBody;
    assert.equal(body.userId, 'frank');
    assert.deepEqual(body.categories.map((c) => c.category).sort(), [...CATEGORIES].sort());
    for (const c of body.categories) {
      assert.equal(c.state, 'active');
      assert.equal(c.versions.length, 1);
      assert.deepEqual(Object.keys(c.versions[0] ?? {}).sort(), ['createdAt', 'shreddedAt', 'state', 'version']);
      assert.ok(!Number.isNaN(Date.parse(c.versions[0]?.createdAt ?? '')));
      assert.equal(c.versions[0]?.shreddedAt, null);
    }
    assert.doesNotMatch(reply.text, /"key"/);
    for (const [category, versions] of roots) {
      for (const root of versions.values()) assert.equal(findSecret(reply.text, root), undefined, category);
    }
    for (const [, versions] of servedKeys(created)) {
      for (const key of versions.values()) assert.equal(findSecret(reply.text, key), undefined);
    }
    const asReader = await h.call('GET', '/v1/keychains/frank', { as: 'playlist' });
    assert.equal(asReader.status, 200, 'any authenticated service may read metadata');
    assertError(await h.call('GET', '/v1/keychains/nobody'), 404, 'KEYCHAIN_NOT_FOUND');
  });

  it('DELETE /v1/keychains/{userId} shreds every category; again answers 0; 404 without a keychain', async () => {
    await create('gina');
    assert.equal((await h.call('GET', '/v1/keys/gina')).status, 200);
    const reply = await h.call('DELETE', '/v1/keychains/gina');
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(withoutReceipt(reply.body), { userId: 'gina', shredded: 3 });
    assertError(await h.call('GET', '/v1/keys/gina'), 410, 'KEYCHAIN_SHREDDED');
    assert.equal((await h.rootKeys('gina')).size, 0, 'a root key is still in the store');
    const meta = (await h.call('GET', '/v1/keychains/gina')).body as MetadataBody;
    for (const c of meta.categories) {
      assert.equal(c.state, 'shredded');
      assert.ok(c.versions.every((v) => v.state === 'shredded' && v.shreddedAt !== null));
    }
    assert.deepEqual(withoutReceipt((await h.call('DELETE', '/v1/keychains/gina')).body), {
      userId: 'gina',
      shredded: 0,
    });

    const recreate = await h.call('POST', '/v1/keychains', { json: { userId: 'gina' } });
    assert.equal(recreate.status, 200, 'create must not revive a shredded keychain');
    assert.equal((recreate.body as KeysBody).status, 'shredded');
    assert.doesNotMatch(recreate.text, /"keys"/);

    assertError(await h.call('DELETE', '/v1/keychains/nobody'), 404, 'KEYCHAIN_NOT_FOUND');
  });

  it('DELETE /v1/keychains/{userId}/categories/{category} shreds that category only', async () => {
    const created = await create('hank');
    const reply = await h.call('DELETE', '/v1/keychains/hank/categories/advertising');
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(withoutReceipt(reply.body), { userId: 'hank', category: 'advertising', shredded: 1 });
    const after = (await h.call('GET', '/v1/keys/hank')).body as KeysBody;
    assert.equal(after.status, 'ok');
    assert.deepEqual(
      after.categories.find((c) => c.category === 'advertising'),
      { category: 'advertising', status: 'shredded' },
    );
    assert.equal(keyOf(after, 'profile', 1), keyOf(created, 'profile', 1));
    assertError(await h.call('GET', '/v1/keys/hank?categories=advertising'), 410, 'KEYCHAIN_SHREDDED');
    const again = await h.call('DELETE', '/v1/keychains/hank/categories/advertising');
    assert.deepEqual(withoutReceipt(again.body), { userId: 'hank', category: 'advertising', shredded: 0 });
    assertError(await h.call('DELETE', '/v1/keychains/nobody/categories/profile'), 404, 'KEYCHAIN_NOT_FOUND');
  });

  it('POST .../rotate makes a new current version and keeps serving the old one', async () => {
    const created = await create('ivan');
    const reply = await h.call('POST', '/v1/keychains/ivan/categories/profile/rotate');
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.body, { userId: 'ivan', category: 'profile', version: 2 });
    const body = (await h.call('GET', '/v1/keys/ivan?categories=profile')).body as KeysBody;
    const profile = body.categories[0];
    assert.equal(profile?.current, 2);
    assert.deepEqual(
      profile?.keys?.map((k) => k.version),
      [1, 2],
    );
    assert.equal(keyOf(body, 'profile', 1), keyOf(created, 'profile', 1), 'the old version changed');
    assert.notEqual(keyOf(body, 'profile', 2), keyOf(body, 'profile', 1));
    await assertKeysMatchSpec(h, 'admin', body);
    const third = await h.call('POST', '/v1/keychains/ivan/categories/profile/rotate');
    assert.deepEqual(third.body, { userId: 'ivan', category: 'profile', version: 3 });
    const meta = (await h.call('GET', '/v1/keychains/ivan')).body as MetadataBody;
    assert.deepEqual(
      meta.categories.find((c) => c.category === 'profile')?.versions.map((v) => [v.version, v.state]),
      [
        [1, 'active'],
        [2, 'active'],
        [3, 'active'],
      ],
    );
    assertError(await h.call('POST', '/v1/keychains/nobody/categories/profile/rotate'), 404, 'KEYCHAIN_NOT_FOUND');
  });

  it('rotating a shredded category makes a new live version; the old one stays shredded', async () => {
    await create('judy');
    await h.call('DELETE', '/v1/keychains/judy/categories/advertising');
    const reply = await h.call('POST', '/v1/keychains/judy/categories/advertising/rotate');
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.body, { userId: 'judy', category: 'advertising', version: 2 });
    const body = (await h.call('GET', '/v1/keys/judy?categories=advertising')).body as KeysBody;
    assert.equal(body.status, 'ok');
    assert.deepEqual(
      body.categories[0]?.keys?.map((k) => k.version),
      [2],
    );
    assert.equal(body.categories[0]?.current, 2);
    const meta = (await h.call('GET', '/v1/keychains/judy')).body as MetadataBody;
    const versions = meta.categories.find((c) => c.category === 'advertising')?.versions;
    assert.deepEqual(
      versions?.map((v) => [v.version, v.state]),
      [
        [1, 'shredded'],
        [2, 'active'],
      ],
    );
    const roots = await h.rootKeys('judy');
    assert.deepEqual([...(roots.get('advertising')?.keys() ?? [])], [2], 'version 1 came back');
  });
});

describe('v1 routes under concurrency', () => {
  let h: Harness;
  let slow: SlowStore;
  before(async () => {
    h = await startHarness({
      wrapStore: (store) => {
        slow = new SlowStore(store);
        return slow;
      },
    });
  });
  after(() => h.close());

  it('concurrent rotations of one category: exactly one 201, the others 409 CONCURRENT_UPDATE', async () => {
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'race' } })).status, 201);
    // Every rotation reads the keychain before writing; holding the reads open makes them all see version 1.
    slow.delays = { getKeychain: 150 };
    const replies = await Promise.all(
      Array.from({ length: 8 }, () => h.call('POST', '/v1/keychains/race/categories/profile/rotate')),
    );
    slow.delays = {};
    const won = replies.filter((r) => r.status === 201);
    assert.equal(won.length, 1, replies.map((r) => r.status).join(','));
    assert.deepEqual(won[0]?.body, { userId: 'race', category: 'profile', version: 2 });
    for (const lost of replies.filter((r) => r.status !== 201)) assertError(lost, 409, 'CONCURRENT_UPDATE');
    const meta = (await h.call('GET', '/v1/keychains/race')).body as MetadataBody;
    assert.deepEqual(
      meta.categories.find((c) => c.category === 'profile')?.versions.map((v) => v.version),
      [1, 2],
    );
    const keys = (await h.call('GET', '/v1/keys/race?categories=profile')).body as KeysBody;
    assert.equal(keys.categories[0]?.current, 2);
  });

  for (const [name, delays] of [
    ['as fast as the store allows', {}],
    ['with every insert held open', { insertKeys: 30 }],
  ] as const) {
    it(`64 concurrent creates of one user all succeed with identical keys (${name})`, async () => {
      const userId = `signup-${Object.keys(delays).length}`;
      slow.delays = delays;
      const replies = await Promise.all(
        Array.from({ length: 64 }, () => h.call('POST', '/v1/keychains', { json: { userId } })),
      );
      slow.delays = {};
      assert.ok(
        replies.every((r) => r.status === 200 || r.status === 201),
        replies.map((r) => r.status).join(','),
      );
      assert.equal(replies.filter((r) => r.status === 201).length, 1, 'exactly one create wins');
      const keys = replies.map((r) => JSON.stringify((r.body as KeysBody).categories));
      assert.equal(new Set(keys).size, 1, 'creates returned different keys');
      const meta = (await h.call('GET', `/v1/keychains/${userId}`)).body as MetadataBody;
      assert.deepEqual(
        meta.categories.map((c) => [c.category, c.versions.length]).sort(),
        CATEGORIES.map((c) => [c, 1]).sort(),
      );
      const served = (await h.call('GET', `/v1/keys/${userId}`)).body as KeysBody;
      assert.equal(JSON.stringify(served.categories), keys[0]);
    });
  }
});

describe('operations routes', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('GET /healthz answers 200 without a credential', async () => {
    const reply = await h.call('GET', '/healthz', { authorization: null });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { status: 'ok' });
  });

  it('GET /readyz names its checks and answers 200 when ready', async () => {
    const reply = await h.call('GET', '/readyz', { authorization: null });
    assert.equal(reply.status, 200, reply.text);
    const memcached = h.config.cache.memcached.servers.length > 0 ? { memcached: 'ok' } : {};
    assert.deepEqual(reply.body, {
      ready: true,
      checks: { store: 'ok', services: 'ok', integrity: 'ok', journal: 'ok', draining: 'false', ...memcached },
    });
  });

  it('GET /metrics counts requests by route and status, and L1 hits and misses', async () => {
    const scrape = async (): Promise<string> => {
      const reply = await h.call('GET', '/metrics', { authorization: null });
      assert.equal(reply.status, 200);
      assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return reply.text;
    };
    await h.call('POST', '/v1/keychains', { json: { userId: 'metered' } });
    const before = await scrape();
    const ok = { route: '/v1/keys/{userId}', method: 'GET', status: '200' };
    const missing = { route: '/v1/keys/{userId}', method: 'GET', status: '404' };
    assert.equal((await h.call('GET', '/v1/keys/metered')).status, 200);
    assert.equal((await h.call('GET', '/v1/keys/metered')).status, 200);
    assert.equal((await h.call('GET', '/v1/keys/never-created')).status, 404);
    assert.equal((await h.call('GET', '/no/such/route')).status, 404);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    assert.equal(delta('padlock_http_requests_total', ok), 2);
    assert.equal(delta('padlock_http_requests_total', missing), 1);
    assert.equal(delta('padlock_http_requests_total', { route: 'unmatched', status: '404' }), 1);
    assert.equal(delta('padlock_http_requests_total', { route: '/metrics', status: '200' }), 1);
    // metered was cached by its create; never-created is not cached (a signup must be visible at once).
    assert.equal(delta('padlock_cache_hits_total', { cache: 'l1' }), 2);
    assert.equal(delta('padlock_cache_misses_total', { cache: 'l1' }), 1);
    assert.match(after, /^# TYPE padlock_keys_derived_total counter$/m);
    assert.equal(delta('padlock_http_request_duration_seconds_count', { route: '/v1/keys/{userId}' }), 3);
    assert.ok(metricValue(after, 'padlock_store_duration_seconds_count', { op: 'get' }) >= 1);
    assert.match(after, /^# TYPE padlock_http_requests_total counter$/m);
  });

  it('GET /openapi.json is an OpenAPI 3.1 document listing every route', async () => {
    const reply = await h.call('GET', '/openapi.json', { authorization: null });
    assert.equal(reply.status, 200);
    const doc = reply.body as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { operationId: string; security: unknown[]; responses: object }>>;
      components: { schemas: { Error: { properties: { error: { properties: { code: { enum: string[] } } } } } } };
    };
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.info.title, 'Padlock');
    assert.match(doc.info.version, /^\d+\.\d+\.\d+$/);
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    assert.deepEqual(listed.sort(), ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    for (const route of ROUTES) {
      const op = doc.paths[route.path]?.[route.method.toLowerCase()];
      assert.equal(op?.operationId, route.operationId);
      assert.equal(op.security.length, route.auth ? 1 : 0, route.path);
      for (const status of Object.keys(route.responses)) assert.ok(status in op.responses, `${route.path} ${status}`);
    }
    assert.deepEqual(doc.paths['/v1/keys/{userId}']?.['get']?.operationId, 'getKeys');
    assert.deepEqual(
      doc.components.schemas.Error.properties.error.properties.code.enum.sort(),
      Object.keys(ERRORS).sort(),
    );
  });
});
