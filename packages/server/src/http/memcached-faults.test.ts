import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemcachedClient } from '../cache/memcached-client.js';
import {
  cacheCounters,
  httpCall,
  lookupLoad,
  PadlockFixture,
  privateMemcachedOptions,
  sameKeys,
  servedKeys,
  spawnMemcached,
  startCorruptingProxy,
  waitFor,
  type Instance,
  type KeyMap,
  type LoadResult,
  type SpawnedMemcached,
} from '../testing/memcached.js';

/*
 * memcached failing while requests flow, seen through HTTP. Each test runs
 * its own memcached processes, kills or pauses one in the middle of a bounded
 * load of lookups, and checks every answer: no 5xx, no key other than the one
 * the store holds, /readyz still ready but reporting memcached degraded.
 * L1 is off so that every lookup goes through memcached.
 */

const TIMEOUT_MS = 20;
const DOWN_MS = 250;
const DEADLINE_MS = 500;
const LOAD = { durationMs: 3000, maxRequests: 4000, concurrency: 8 };

function summary(result: LoadResult): string {
  return `${result.total} requests, statuses ${JSON.stringify([...result.statuses])}, max ${result.maxMs.toFixed(1)} ms`;
}

function assertClean(result: LoadResult, minRequests = 200): void {
  const failed = [...result.statuses].filter(([status]) => status !== 200);
  assert.deepEqual(failed, [], `non-200 answers: ${summary(result)}`);
  assert.equal(result.wrong, 0, `${result.wrong} answers carried wrong keys`);
  assert.ok(result.total >= minRequests, `only ${result.total} requests ran`);
}

/** Polls /readyz while `during` runs; every answer must be 200. Returns the memcached details seen. */
async function watchReadiness(instance: Instance, during: Promise<unknown>): Promise<string[]> {
  let done = false;
  void during.finally(() => (done = true)).catch(() => undefined);
  const seen: string[] = [];
  while (!done) {
    const reply = await httpCall(instance.port, 'GET', '/readyz');
    assert.equal(reply.status, 200, `/readyz answered ${reply.status}: ${reply.text}`);
    seen.push((reply.body as { checks: Record<string, string> }).checks['memcached'] ?? 'absent');
    await sleep(25);
  }
  return seen;
}

/** Two passes over every user once memcached is back: the second must be all memcached hits. */
async function assertHitsResume(fixture: PadlockFixture, instance: Instance, expected: Map<string, KeyMap>) {
  for (let pass = 0; pass < 2; pass++) {
    const before = await cacheCounters(instance);
    for (const [userId, keys] of expected) {
      const reply = await fixture.call(instance, 'GET', `/v1/keys/${userId}`);
      assert.equal(reply.status, 200);
      assert.ok(sameKeys(servedKeys(reply.body), keys));
    }
    // The fills of the first pass are not awaited by the requests.
    if (pass === 0) await sleep(50);
    const after = await cacheCounters(instance);
    if (pass === 1) assert.equal(after.hits - before.hits, expected.size, 'hits did not resume for every user');
  }
}

describe('memcached faults while requests flow', privateMemcachedOptions(), () => {
  let fixture: PadlockFixture;
  let counter = 0;
  const spawned: SpawnedMemcached[] = [];
  const spawn = async (port?: number): Promise<SpawnedMemcached> => {
    const server = await spawnMemcached(port === undefined ? {} : { port });
    spawned.push(server);
    return server;
  };

  before(async () => {
    fixture = await PadlockFixture.create();
  });
  after(async () => {
    await fixture?.close();
    for (const server of spawned) await server.stop();
  });

  /** Users created through `instance` (written through), with the keys the store says they must get. */
  async function users(instance: Instance, n: number): Promise<Map<string, KeyMap>> {
    const ids = Array.from({ length: n }, () => `fault-user-${++counter}`);
    await fixture.createUsers(instance, ids);
    const expected = new Map<string, KeyMap>();
    for (const userId of ids) expected.set(userId, await fixture.expectedKeys(userId));
    return expected;
  }

  async function startWith(servers: readonly string[]): Promise<Instance> {
    return fixture.start({
      memcached: servers,
      l1: false,
      timeoutMs: TIMEOUT_MS,
      downMs: DOWN_MS,
      deadlineMs: DEADLINE_MS,
    });
  }

  it('kill -9 of one memcached mid-run: no 5xx, no wrong key, /readyz degraded; hits resume after a restart', async (t) => {
    const [a, b] = [await spawn(), await spawn()];
    const instance = await startWith([a.address, b.address]);
    const expected = await users(instance, 40);
    const client = new MemcachedClient({ servers: [a.address, b.address], timeoutMs: 1, downMs: 1 });
    const onA = [...expected.keys()].filter((u) => client.serverFor(`${fixture.keyPrefix}${u}`) === a.address);
    assert.ok(onA.length > 5, `${onA.length} users on the server to kill`);
    const warm = await lookupLoad(fixture, instance, expected, { durationMs: 5000, maxRequests: 200, concurrency: 4 });
    assertClean(warm, 200);
    const hitsBefore = (await cacheCounters(instance)).hits;
    assert.ok(hitsBefore >= 150, `only ${hitsBefore} hits before the fault`);

    const load = lookupLoad(fixture, instance, expected, LOAD);
    await sleep(400);
    await a.kill();
    const readiness = await watchReadiness(instance, load);
    const result = await load;
    t.diagnostic(summary(result));
    assertClean(result);
    assert.ok(
      readiness.some((r) => r.startsWith('degraded: 1 of 2 servers down')),
      `/readyz never said degraded: ${[...new Set(readiness)].join(' | ')}`,
    );
    const counters = await cacheCounters(instance);
    assert.ok(counters.hits - hitsBefore > result.total / 4, 'the live server stopped serving hits');

    await spawn(a.port);
    await sleep(DOWN_MS + 50);
    await assertHitsResume(fixture, instance, expected);
    const ready = await httpCall(instance.port, 'GET', '/readyz');
    assert.equal((ready.body as { checks: Record<string, string> }).checks['memcached'], 'ok');
  });

  it('SIGSTOP of one memcached mid-run: no 5xx, no wrong key, every answer within the deadline; hits resume after SIGCONT', async (t) => {
    const [a, b] = [await spawn(), await spawn()];
    const instance = await startWith([a.address, b.address]);
    const expected = await users(instance, 40);
    await lookupLoad(fixture, instance, expected, { durationMs: 5000, maxRequests: 200, concurrency: 4 });

    const load = lookupLoad(fixture, instance, expected, LOAD);
    await sleep(400);
    await a.pause();
    let readiness: string[];
    try {
      readiness = await watchReadiness(instance, load);
    } finally {
      a.resume();
    }
    const result = await load;
    t.diagnostic(summary(result));
    assertClean(result);
    // A paused server costs a request at most one memcached timeout; the slack is for a loaded machine.
    assert.ok(result.maxMs < DEADLINE_MS, `slowest answer ${result.maxMs.toFixed(1)} ms: ${summary(result)}`);
    assert.ok(
      readiness.some((r) => r.startsWith('degraded')),
      `/readyz never said degraded: ${[...new Set(readiness)].join(' | ')}`,
    );

    await sleep(DOWN_MS + 50);
    await assertHitsResume(fixture, instance, expected);
  });

  it('corrupt values are never served: answers come from the store, the corruption is counted and replaced', async () => {
    const server = await spawn();
    const proxy = await startCorruptingProxy(server.address);
    try {
      const instance = await fixture.start({ memcached: [proxy.address], l1: false, timeoutMs: 1000 });
      const expected = await users(instance, 20);
      const direct = new MemcachedClient({ servers: [server.address], timeoutMs: 1000, downMs: 10 });
      const raw = async (): Promise<Map<string, Buffer>> =>
        (await direct.getMany([...expected.keys()].map((u) => `${fixture.keyPrefix}${u}`))).values;
      try {
        assert.ok(await waitFor(async () => (await raw()).size === expected.size), 'creates did not write through');
        const original = await raw();

        // Corruption on: every value read back is damaged.
        proxy.corrupt = true;
        const before = await cacheCounters(instance);
        for (const [userId, keys] of expected) {
          const reply = await fixture.call(instance, 'GET', `/v1/keys/${userId}`);
          assert.equal(reply.status, 200, reply.text);
          assert.ok(sameKeys(servedKeys(reply.body), keys), `${userId}: a wrong key was served`);
        }
        const during = await cacheCounters(instance);
        assert.equal(during.hits - before.hits, 0, 'a corrupted value was used');
        assert.equal(during.corrupt - before.corrupt, expected.size, 'corruption not counted once per value');
        assert.equal(during.storeReads - before.storeReads, expected.size, 'the answers did not come from the store');
        assert.ok(proxy.corrupted >= expected.size);
        assert.ok(
          instance.lines.some((l) => l.includes('failed authentication')),
          'no log line for the corruption',
        );

        // Each damaged entry was deleted and refilled from the store: a new value (a new read time).
        assert.ok(
          await waitFor(async () => {
            const now = await raw();
            return [...original].every(([key, value]) => now.has(key) && !now.get(key)!.equals(value));
          }),
          'the corrupted entries were not replaced',
        );

        const load = await lookupLoad(fixture, instance, expected, {
          durationMs: 1000,
          maxRequests: 1000,
          concurrency: 4,
        });
        assertClean(load, 100);

        // Corruption off: the replacements are good values, served as hits.
        proxy.corrupt = false;
        await sleep(50);
        const clean = await cacheCounters(instance);
        for (const [userId, keys] of expected) {
          const reply = await fixture.call(instance, 'GET', `/v1/keys/${userId}`);
          assert.ok(sameKeys(servedKeys(reply.body), keys));
        }
        const afterwards = await cacheCounters(instance);
        assert.equal(afterwards.hits - clean.hits, expected.size, 'the refilled values were not hits');
        assert.equal(afterwards.corrupt, clean.corrupt);
      } finally {
        direct.close();
      }
    } finally {
      await proxy.close();
    }
  });
});
