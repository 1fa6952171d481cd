import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  cacheCounters,
  dumpMemcached,
  PadlockFixture,
  sameKeys,
  secretForms,
  servedKeys,
  sharedMemcachedOptions,
  sharedMemcachedServers,
  waitFor,
  type Instance,
  type KeyMap,
} from '../testing/memcached.js';
import { MemcachedClient } from './memcached-client.js';

/*
 * The L2 through real Padlock instances that share one SQLite store and the
 * shared memcached servers. L1 is off wherever a lookup must reach memcached.
 */

describe('memcached L2 through Padlock', sharedMemcachedOptions(), () => {
  let servers: string[];
  let fixture: PadlockFixture;
  /** The test's own view of memcached, to see what the instances wrote. */
  let direct: MemcachedClient;
  let storeOnly: Instance;
  let counter = 0;
  const newUsers = (n: number): string[] => Array.from({ length: n }, () => `user-${++counter}`);
  const present = async (userId: string): Promise<boolean> =>
    (await direct.getMany([`${fixture.keyPrefix}${userId}`])).values.size === 1;

  before(async () => {
    servers = sharedMemcachedServers();
    fixture = await PadlockFixture.create();
    direct = new MemcachedClient({ servers, timeoutMs: 2000, downMs: 100 });
    storeOnly = await fixture.start({ l1: false });
  });
  after(async () => {
    direct?.close();
    await fixture?.close();
  });

  it('a second instance sharing memcached answers from memcached, without reading the store', async () => {
    const [userId] = newUsers(1) as [string];
    await fixture.createUsers(storeOnly, [userId]); // no memcached: nothing written through
    assert.equal(await present(userId), false);

    const a = await fixture.start({ memcached: servers, l1: false });
    const reply = await fixture.call(a, 'GET', `/v1/keys/${userId}`);
    assert.equal(reply.status, 200);
    const aCounters = await cacheCounters(a);
    assert.deepEqual([aCounters.hits, aCounters.misses, aCounters.storeReads], [0, 1, 1]);
    assert.ok(await waitFor(() => present(userId)), 'the miss did not fill memcached');

    const b = await fixture.start({ memcached: servers }); // L1 on, but empty: the lookup goes to L2
    const second = await fixture.call(b, 'GET', `/v1/keys/${userId}`);
    assert.equal(second.status, 200);
    const bCounters = await cacheCounters(b);
    assert.equal(bCounters.hits, 1, 'padlock_cache_hits_total{cache="memcached"} did not move');
    assert.equal(bCounters.storeReads, 0, 'the store was read although memcached had the rows');
    assert.ok(sameKeys(servedKeys(second.body), await fixture.expectedKeys(userId)));
  });

  it('create writes through: the next lookup in another instance is a memcached hit', async () => {
    const a = await fixture.start({ memcached: servers, l1: false });
    const b = await fixture.start({ memcached: servers, l1: false });
    const users = newUsers(5);
    await fixture.createUsers(a, users);
    // The fill is not awaited by the request; it is on its way before the answer.
    assert.ok(await waitFor(async () => (await Promise.all(users.map(present))).every(Boolean)));
    for (const userId of users) {
      const reply = await fixture.call(b, 'GET', `/v1/keys/${userId}`);
      assert.equal(reply.status, 200);
      assert.ok(sameKeys(servedKeys(reply.body), await fixture.expectedKeys(userId)));
    }
    const counters = await cacheCounters(b);
    assert.equal(counters.hits, users.length);
    assert.equal(counters.storeReads, 0);
  });

  it('shred and rotate on one instance are seen at once by another sharing memcached', async () => {
    const a = await fixture.start({ memcached: servers, l1: false });
    const b = await fixture.start({ memcached: servers, l1: false });
    const [userId] = newUsers(1) as [string];
    await fixture.createUsers(a, [userId]);
    assert.ok(await waitFor(() => present(userId)));
    const before = await fixture.call(b, 'GET', `/v1/keys/${userId}`);
    assert.deepEqual([...servedKeys(before.body).keys()].sort(), ['advertising/1', 'payments/1', 'profile/1']);

    assert.equal((await fixture.call(a, 'POST', `/v1/keychains/${userId}/categories/payments/rotate`)).status, 201);
    assert.equal(await present(userId), false, 'rotate left the entry in memcached');
    const rotated = await fixture.call(b, 'GET', `/v1/keys/${userId}?categories=payments`);
    assert.equal(rotated.status, 200);
    assert.deepEqual([...servedKeys(rotated.body).keys()].sort(), ['payments/1', 'payments/2']);

    // Refill from b, then shred on a: b must not serve the shredded key from memcached.
    await fixture.call(b, 'GET', `/v1/keys/${userId}`);
    assert.ok(await waitFor(() => present(userId)));
    assert.equal((await fixture.call(a, 'DELETE', `/v1/keychains/${userId}/categories/advertising`)).status, 200);
    const optedOut = await fixture.call(b, 'GET', `/v1/keys/${userId}?categories=advertising`);
    assert.equal(optedOut.status, 410, optedOut.text);

    await fixture.call(b, 'GET', `/v1/keys/${userId}`);
    assert.ok(await waitFor(() => present(userId)));
    assert.equal((await fixture.call(a, 'DELETE', `/v1/keychains/${userId}`)).status, 200);
    const gone = await fixture.call(b, 'GET', `/v1/keys/${userId}`);
    assert.equal(gone.status, 410, gone.text);
    assert.ok((await cacheCounters(b)).hits >= 3, 'b did read through memcached between the changes');
  });

  it('keys served through memcached are byte-identical to keys served from the store', async () => {
    const a = await fixture.start({ memcached: servers, l1: false });
    const users = newUsers(20);
    await fixture.createUsers(a, users);
    await fixture.call(a, 'POST', `/v1/keychains/${users[0]}/categories/profile/rotate`);
    await fixture.call(a, 'DELETE', `/v1/keychains/${users[1]}/categories/payments`);
    await fixture.call(a, 'POST', '/v1/keys/batch-get', { userIds: users }); // fill after the changes
    assert.ok(await waitFor(async () => (await Promise.all(users.map(present))).every(Boolean)));

    const hitsBefore = (await cacheCounters(a)).hits;
    const viaCache = await fixture.call(a, 'POST', '/v1/keys/batch-get', { userIds: users });
    const viaStore = await fixture.call(storeOnly, 'POST', '/v1/keys/batch-get', { userIds: users });
    assert.equal((await cacheCounters(a)).hits - hitsBefore, users.length, 'the batch was not served by memcached');
    assert.equal(viaCache.status, 200);
    assert.equal(viaStore.status, 200);
    const results = (reply: typeof viaCache): unknown[] => (reply.body as { results: unknown[] }).results;
    for (const [i, userId] of users.entries()) {
      const cached = results(viaCache)[i];
      const stored = results(viaStore)[i];
      assert.deepEqual(stripAge(cached), stripAge(stored), `${userId}: the answers differ`);
      assert.ok(sameKeys(servedKeys(cached), await fixture.expectedKeys(userId)), `${userId}: not the expected keys`);
    }
    assert.equal(servedKeys(results(viaCache)[0]).size, 4, 'the rotated user has two profile versions');
    assert.equal(servedKeys(results(viaCache)[1]).size, 2, 'the opted-out user has no payments key');
  });

  it('an entry is served at most maxStaleness after its store read (the deletion bound with L2)', async () => {
    // 3 s: the fill's memcached ttl is whole seconds left (2), and memcached's clock ticks once a second.
    const a = await fixture.start({ memcached: servers, l1: false, maxStalenessSeconds: 3 });
    const [userId] = newUsers(1) as [string];
    await fixture.createUsers(storeOnly, [userId]);
    assert.equal((await fixture.call(a, 'GET', `/v1/keys/${userId}`)).status, 200);
    const readAt = Date.now();
    assert.ok(await waitFor(() => present(userId)), 'not cached (a fill needs at least 1 s of staleness left)');
    // A shred this group's caches never hear of (as from another deployment group sharing the store).
    await fixture.store.shred(userId, undefined, Date.now());
    const stale = await fixture.call(a, 'GET', `/v1/keys/${userId}`);
    assert.equal(stale.status, 200, 'within maxStaleness the cached rows may still be served');
    await sleep(Math.max(0, readAt + 3000 - Date.now()) + 50);
    const after = await fixture.call(a, 'GET', `/v1/keys/${userId}`);
    assert.equal(after.status, 410, `still served ${Date.now() - readAt} ms after the read: ${after.text}`);
  });

  it('readyz reports memcached ok', async () => {
    const a = await fixture.start({ memcached: servers });
    const reply = await fixture.call(a, 'GET', '/readyz');
    assert.equal(reply.status, 200);
    assert.equal((reply.body as { checks: Record<string, string> }).checks['memcached'], 'ok');
  });

  it('no memcached item holds a root key, a derived key or the KEK, in raw, hex or base64 form', async () => {
    const a = await fixture.start({ memcached: servers, l1: false });
    const users = newUsers(12);
    await fixture.createUsers(a, users);
    await fixture.call(a, 'POST', `/v1/keychains/${users[0]}/categories/payments/rotate`);
    await fixture.call(a, 'DELETE', `/v1/keychains/${users[1]}/categories/profile`);
    const served: KeyMap[] = [];
    for (const userId of users) {
      const reply = await fixture.call(a, 'GET', `/v1/keys/${userId}`);
      assert.equal(reply.status, 200);
      served.push(servedKeys(reply.body));
    }
    const batch = await fixture.call(a, 'POST', '/v1/keys/batch-get', { userIds: users });
    for (const result of (batch.body as { results: unknown[] }).results) served.push(servedKeys(result));
    assert.ok(await waitFor(async () => (await Promise.all(users.map(present))).every(Boolean)));

    const secrets: { name: string; bytes: Buffer }[] = [{ name: 'the KEK', bytes: fixture.kek }];
    // Every user this suite created, not only this test's.
    for (let i = 1; i <= counter; i++) {
      for (const [at, key] of await fixture.rootKeys(`user-${i}`)) {
        secrets.push({ name: `root key user-${i} ${at}`, bytes: key });
      }
    }
    for (const keys of served) for (const [at, key] of keys) secrets.push({ name: `derived key ${at}`, bytes: key });
    assert.ok(secrets.length > 3 * users.length);

    // The LRU crawler can miss an item that moves between LRU segments while it walks them: dump again
    // until every cached keychain is listed (they are all present: checked above), at most 20 times.
    const items = new Map<string, Buffer>();
    let missing: string[] = [...users];
    for (let attempt = 0; attempt < 20 && missing.length > 0; attempt++) {
      for (const server of servers) for (const [key, value] of await dumpMemcached(server)) items.set(key, value);
      missing = users.filter((userId) => !items.has(`${fixture.keyPrefix}${userId}`));
      if (missing.length > 0) await sleep(100);
    }
    assert.deepEqual(missing, [], 'the dump did not find every cached keychain');
    // The scan can see key material: each item holds its user's wrapped rows as stored.
    for (const userId of users) {
      const rows = await fixture.store.getKeychain(userId);
      const item = items.get(`${fixture.keyPrefix}${userId}`)!;
      for (const row of rows)
        if (row.wrapped !== null) assert.ok(item.includes(Buffer.from(row.wrapped)), `${userId} lacks its row`);
    }

    const haystacks = [...items].map(([key, value]) => ({ key, bytes: Buffer.concat([Buffer.from(key), value]) }));
    const lines = a.lines.join('\n');
    for (const secret of secrets) {
      for (const form of secretForms(secret.bytes)) {
        for (const { key, bytes } of haystacks) {
          assert.ok(!bytes.includes(form), `${secret.name} found in memcached item ${key}`);
        }
        assert.ok(!lines.includes(form.toString('latin1')), `${secret.name} found in the log`);
      }
    }
  });
});

/** A result without maxAgeSeconds, which depends on when each instance read the rows. */
function stripAge(result: unknown): unknown {
  return Object.fromEntries(Object.entries(result as object).filter(([name]) => name !== 'maxAgeSeconds'));
}
