import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  availability,
  freePort,
  listMemcachedKeys,
  privateMemcachedOptions,
  sharedMemcachedOptions,
  sharedMemcachedServers,
  spawnMemcached,
  testOptions,
  type SpawnedMemcached,
} from '../testing/memcached.js';
import { isValidKey, MemcachedClient, MemcachedError } from './memcached-client.js';

/** Rejects with the MemcachedError `work` fails with, and how long it took. */
async function failure(work: Promise<unknown>): Promise<{ error: MemcachedError; ms: number }> {
  const started = performance.now();
  try {
    await work;
  } catch (error) {
    assert.ok(error instanceof MemcachedError, `expected a MemcachedError, got ${String(error)}`);
    return { error, ms: performance.now() - started };
  }
  assert.fail('the request succeeded');
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

const prefix = (): string => `mct${randomBytes(4).toString('hex')}:`;

describe('test policy for a missing PADLOCK_TEST_MEMCACHED', () => {
  const cases = [
    { name: 'present, outside CI: run', present: true, ci: undefined, expect: {} },
    { name: 'present, in CI: run', present: true, ci: 'true', expect: {} },
    { name: 'missing, outside CI: skip with the reason', present: false, ci: undefined, expect: { skip: 'why' } },
    { name: 'missing, CI=false: skip', present: false, ci: 'false', expect: { skip: 'why' } },
    { name: 'missing, in CI: run (and fail)', present: false, ci: 'true', expect: {} },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const env = c.ci === undefined ? {} : { CI: c.ci };
      assert.deepEqual(testOptions(availability(c.present, 'why', env)), c.expect);
    });
  }

  it('sharedMemcachedServers throws when the variable is unset in CI, and splits it otherwise', () => {
    assert.throws(() => sharedMemcachedServers({ CI: 'true' }), /PADLOCK_TEST_MEMCACHED is not set/);
    assert.deepEqual(sharedMemcachedServers({ PADLOCK_TEST_MEMCACHED: ' a:1, b:2 ' }), ['a:1', 'b:2']);
  });
});

describe('isValidKey', () => {
  const cases: [string, boolean][] = [
    ['padlock:user-1', true],
    ['', false],
    ['a b', false],
    ['a\r\nb', false],
    ['x'.repeat(250), true],
    ['x'.repeat(251), false],
    ['caf\u00e9', false],
  ];
  for (const [key, valid] of cases) {
    it(`${JSON.stringify(key.length > 20 ? `${key.slice(0, 10)}...(${key.length})` : key)} is ${valid ? 'valid' : 'invalid'}`, () =>
      assert.equal(isValidKey(key), valid));
  }
});

describe('consistent hashing', () => {
  const keys = Array.from({ length: 20000 }, (_, i) => `padlock:user-${i}`);
  const spread = (client: MemcachedClient): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const key of keys) counts.set(client.serverFor(key), (counts.get(client.serverFor(key)) ?? 0) + 1);
    return counts;
  };

  it('spreads keys roughly evenly over two servers', () => {
    const counts = spread(
      new MemcachedClient({ servers: ['10.0.0.1:11211', '10.0.0.2:11211'], timeoutMs: 1, downMs: 1 }),
    );
    assert.equal(counts.size, 2);
    for (const [server, count] of counts) {
      assert.ok(count > keys.length * 0.4 && count < keys.length * 0.6, `${server} holds ${count} of ${keys.length}`);
    }
  });

  it('removing a server moves only the keys that lived on it', () => {
    const three = new MemcachedClient({ servers: ['a:1', 'b:1', 'c:1'], timeoutMs: 1, downMs: 1 });
    const two = new MemcachedClient({ servers: ['a:1', 'b:1'], timeoutMs: 1, downMs: 1 });
    let moved = 0;
    for (const key of keys) {
      const before = three.serverFor(key);
      if (before === 'c:1') moved++;
      else assert.equal(two.serverFor(key), before, `${key} moved from ${before} although its server stayed`);
    }
    assert.ok(moved > keys.length * 0.2 && moved < keys.length * 0.45, `${moved} keys lived on the removed server`);
  });

  it('places keys the same way whatever the order of the server list', () => {
    const ab = new MemcachedClient({ servers: ['a:1', 'b:1'], timeoutMs: 1, downMs: 1 });
    const ba = new MemcachedClient({ servers: ['b:1', 'a:1'], timeoutMs: 1, downMs: 1 });
    for (const key of keys.slice(0, 2000)) assert.equal(ab.serverFor(key), ba.serverFor(key));
  });
});

describe('MemcachedClient against the shared servers', sharedMemcachedOptions(), () => {
  let servers: string[];
  let client: MemcachedClient;
  before(() => {
    servers = sharedMemcachedServers();
    assert.ok(servers.length >= 2, `${servers.length} shared servers; the tests need two`);
    client = new MemcachedClient({ servers, timeoutMs: 2000, downMs: 100 });
  });
  after(() => client?.close());

  const values: [string, Buffer][] = [
    ['random binary', randomBytes(64)],
    ['CRLF and protocol words inside', Buffer.from('a\r\nEND\r\nVALUE x 0 3\r\nabc\r\n\r\n', 'latin1')],
    ['empty', Buffer.alloc(0)],
    ['only CRLF', Buffer.from('\r\n')],
    ['every byte value', Buffer.from(Array.from({ length: 256 }, (_, i) => i))],
    ['100 KB', randomBytes(100 * 1024)],
  ];
  for (const [name, value] of values) {
    it(`round-trips a value: ${name}`, async () => {
      const key = `${prefix()}v`;
      assert.equal(await client.set(key, value, 60), true);
      const { values: got, failures } = await client.getMany([key]);
      assert.deepEqual(failures, []);
      assert.ok(got.get(key)?.equals(value), 'the value read back differs');
      assert.equal(await client.delete(key), true);
      assert.equal((await client.getMany([key])).values.has(key), false, 'deleted key still found');
      assert.equal(await client.delete(key), false, 'a second delete reports the key as absent');
    });
  }

  it('pipelines many concurrent requests on one connection per server and answers each its own', async () => {
    const p = prefix();
    const entries = Array.from({ length: 300 }, (_, i) => [`${p}${i}`, randomBytes(i % 50)] as const);
    const stored = await Promise.all(entries.map(([key, value]) => client.set(key, value, 60)));
    assert.ok(stored.every(Boolean));
    const singles = await Promise.all(entries.map(([key]) => client.getMany([key])));
    for (const [i, [key, value]] of entries.entries()) {
      assert.ok(singles[i]!.values.get(key)?.equals(value), `${key} answered with another request's value`);
    }
  });

  it('getMany over many keys spread over both servers returns every one, mixed with absent keys', async () => {
    const p = prefix();
    const entries = new Map(Array.from({ length: 1000 }, (_, i) => [`${p}user-${i}`, randomBytes(80)] as const));
    await Promise.all([...entries].map(([key, value]) => client.set(key, value, 60)));
    const absent = Array.from({ length: 100 }, (_, i) => `${p}absent-${i}`);
    const { values: got, failures } = await client.getMany([...entries.keys(), ...absent]);
    assert.deepEqual(failures, []);
    assert.equal(got.size, entries.size);
    for (const [key, value] of entries) assert.ok(got.get(key)?.equals(value), `${key} missing or wrong`);
    const used = new Set([...entries.keys()].map((k) => client.serverFor(k)));
    assert.equal(used.size, servers.length, 'the keys did not reach every server');
  });

  it('stores each key on the server serverFor names, and a client without one server still finds the others', async () => {
    const p = prefix();
    const keys = Array.from({ length: 400 }, (_, i) => `${p}${i}`);
    await Promise.all(keys.map((key) => client.set(key, Buffer.from(key), 60)));
    const [first, second] = servers as [string, string];
    const onFirst = new Set((await listMemcachedKeys(first)).filter((k) => k.startsWith(p)));
    const onSecond = new Set((await listMemcachedKeys(second)).filter((k) => k.startsWith(p)));
    for (const key of keys) {
      const expected = client.serverFor(key);
      assert.equal(onFirst.has(key), expected === first, `${key} on ${first}: ${onFirst.has(key)}`);
      assert.equal(onSecond.has(key), expected === second, `${key} on ${second}: ${onSecond.has(key)}`);
    }
    assert.ok(
      onFirst.size > keys.length * 0.3 && onSecond.size > keys.length * 0.3,
      `${onFirst.size}/${onSecond.size}`,
    );

    // Drop the second server from the list: the keys of the first are found where they were.
    const firstOnly = new MemcachedClient({ servers: [first], timeoutMs: 2000, downMs: 100 });
    try {
      const { values: got } = await firstOnly.getMany(keys);
      assert.deepEqual(new Set(got.keys()), onFirst);
    } finally {
      firstOnly.close();
    }
  });

  it('a stall of this process longer than the timeout does not fail a request whose reply arrived', async () => {
    const stallClient = new MemcachedClient({ servers, timeoutMs: 20, downMs: 1000 });
    try {
      const key = `${prefix()}stall`;
      await stallClient.set(key, Buffer.from('v'), 60);
      for (let i = 0; i < 3; i++) {
        const pending = stallClient.getMany([key]);
        const until = Date.now() + 60;
        while (Date.now() < until) {
          // synchronous work, as a large batch or a GC pause: the reply arrives meanwhile, unread
        }
        const { values: got, failures } = await pending;
        assert.deepEqual(
          failures.map((f) => f.kind),
          [],
          'the timer fired before the waiting reply was read',
        );
        assert.equal(got.get(key)?.toString(), 'v');
      }
      assert.equal(stallClient.healthyServers, servers.length, 'a healthy server was marked down');
    } finally {
      stallClient.close();
    }
  });

  it('expires a value after its ttl', async () => {
    const key = `${prefix()}ttl`;
    await client.set(key, Buffer.from('x'), 1);
    assert.equal((await client.getMany([key])).values.size, 1);
    await sleep(2100);
    assert.equal((await client.getMany([key])).values.size, 0, 'value outlived its ttl');
  });
});

describe('MemcachedClient faults (private memcached processes)', privateMemcachedOptions(), () => {
  const spawned: SpawnedMemcached[] = [];
  after(async () => {
    for (const server of spawned) await server.stop();
  });
  const spawn = async (): Promise<SpawnedMemcached> => {
    const server = await spawnMemcached();
    spawned.push(server);
    return server;
  };

  it('a paused server: requests reject within the timeout, then fail fast while it is marked down, then recover', async () => {
    const server = await spawn();
    const timeoutMs = 20;
    const downMs = 300;
    const client = new MemcachedClient({ servers: [server.address], timeoutMs, downMs });
    try {
      assert.equal(await client.set('k', Buffer.from('v'), 60), true);
      await server.pause();

      // Ten pipelined requests on the stalled connection: every one fails with the first deadline.
      const stalled = await Promise.all(
        Array.from({ length: 10 }, () => failure(client.getMany(['k']).then(throwFirst))),
      );
      for (const { error, ms } of stalled) {
        assert.equal(error.kind, 'timeout');
        // Bounds, not speed: they hold on a CI machine whose event loop stalls for tens of milliseconds.
        assert.ok(ms >= timeoutMs / 2, `failed after ${ms.toFixed(1)} ms, well before the timeout`);
        assert.ok(ms < timeoutMs + 1000, `took ${ms.toFixed(1)} ms for a ${timeoutMs} ms timeout`);
      }
      assert.equal(client.healthyServers, 0);

      // Marked down: refused at once, without touching the network.
      const down = await failure(client.set('k', Buffer.from('w'), 60));
      assert.equal(down.error.kind, 'down');
      assert.ok(down.ms < 200, `a down server took ${down.ms.toFixed(1)} ms to refuse`);

      // Still paused: the background probe (every downMs) times out, and no request waits for it.
      // Requests over three probe periods are all refused at once.
      const until = performance.now() + 3 * downMs + timeoutMs;
      let refused = 0;
      while (performance.now() < until) {
        const attempt = await failure(client.getMany(['k']).then(throwFirst));
        assert.equal(attempt.error.kind, 'down');
        assert.ok(attempt.ms < 200, `a request to a paused server took ${attempt.ms.toFixed(1)} ms while it was down`);
        refused++;
        await sleep(5);
      }
      assert.ok(refused > 10, `only ${refused} requests in ${3 * downMs} ms`);
      assert.equal(client.healthyServers, 0);

      // Resumed: the next probe is answered and requests reach the server again.
      server.resume();
      await waitFor(() => client.healthyServers === 1, 2 * downMs + 1000, 'the server was not probed back up');
      const { value, ms } = await timed(client.getMany(['k']));
      assert.deepEqual(value.failures, []);
      assert.equal(value.values.get('k')?.toString(), 'v', 'the server did not recover');
      assert.ok(ms < 1000, `recovered request took ${ms.toFixed(1)} ms`);
    } finally {
      client.close();
      server.resume();
    }
  });

  it('a server that stalls once is probed at once and used again; one that fails again soon waits downMs', async () => {
    const server = await spawn();
    // A timeout long enough for the resume below to land within the first probe's own timeout.
    const timeoutMs = 300;
    const downMs = 5000;
    const client = new MemcachedClient({ servers: [server.address], timeoutMs, downMs });
    try {
      assert.equal(await client.set('k', Buffer.from('v'), 60), true);
      await server.pause();
      assert.equal((await failure(client.getMany(['k']).then(throwFirst))).error.kind, 'timeout');
      server.resume();
      // Up for longer than downMs before it failed: the probe went out at once and is answered.
      await waitFor(() => client.healthyServers === 1, downMs / 2, 'the server was not probed at once');
      assert.equal((await client.getMany(['k'])).values.get('k')?.toString(), 'v');

      // Up again for less than downMs when it fails: the next probe waits downMs.
      await server.pause();
      assert.equal((await failure(client.getMany(['k']).then(throwFirst))).error.kind, 'timeout');
      server.resume();
      await sleep(1000);
      assert.equal(client.healthyServers, 0, 'a server failing again within downMs was probed at once');
      assert.equal((await failure(client.getMany(['k']).then(throwFirst))).error.kind, 'down');
    } finally {
      client.close();
      server.resume();
    }
  });

  it('a killed server gives fast errors while the other server keeps answering', async () => {
    const [a, b] = [await spawn(), await spawn()];
    // "Fast" is well under the timeout: a dead server's errors do not wait for it. The timeout is long
    // so that the live server, on a loaded machine, is not taken for a dead one (it was, at 50 ms).
    const timeoutMs = 1000;
    const fast = timeoutMs / 4;
    const client = new MemcachedClient({ servers: [a.address, b.address], timeoutMs, downMs: 500 });
    try {
      const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      await Promise.all(keys.map((key) => client.set(key, Buffer.from(`value of ${key}`), 60)));
      const onA = keys.filter((k) => client.serverFor(k) === a.address);
      const onB = keys.filter((k) => client.serverFor(k) === b.address);
      assert.ok(onA.length > 0 && onB.length > 0);
      await a.kill();

      const { value, ms } = await timed(client.getMany(keys));
      assert.ok(ms < fast, `getMany took ${ms.toFixed(1)} ms with a dead server`);
      assert.deepEqual([...value.values.keys()].sort(), [...onB].sort(), "the live server's keys are all found");
      for (const key of onB) assert.equal(value.values.get(key)?.toString(), `value of ${key}`);
      assert.equal(value.failures.length, 1);
      assert.ok(['connection', 'down'].includes(value.failures[0]!.kind), value.failures[0]!.kind);

      const again = await failure(client.set(onA[0]!, Buffer.from('x'), 60));
      assert.equal(again.error.kind, 'down');
      assert.ok(again.ms < fast, `${again.ms.toFixed(1)} ms`);
      assert.equal(await client.set(onB[0]!, Buffer.from('still'), 60), true);
      assert.equal(client.healthyServers, 1);

      // Past downMs the background probe has found nothing listening: still down, still refused at once.
      await sleep(520);
      const retry = await failure(client.getMany([onA[0]!]).then(throwFirst));
      assert.equal(retry.error.kind, 'down');
      assert.ok(retry.ms < fast, `${retry.ms.toFixed(1)} ms`);
      assert.equal(client.healthyServers, 1);
    } finally {
      client.close();
    }
  });

  it('a port with nothing listening fails fast, then is marked down', async () => {
    const port = await freePort();
    const client = new MemcachedClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 1000, downMs: 1000 });
    try {
      const first = await failure(client.set('k', Buffer.from('v'), 60));
      assert.equal(first.error.kind, 'connection');
      assert.ok(first.ms < 100, `refused connection took ${first.ms.toFixed(1)} ms (timeout 1000 ms)`);
      const second = await failure(client.delete('k'));
      assert.equal(second.error.kind, 'down');
    } finally {
      client.close();
    }
  });

  it('a server restarted on the same port is used again once a probe finds it', async () => {
    const server = await spawn();
    const client = new MemcachedClient({ servers: [server.address], timeoutMs: 50, downMs: 200 });
    try {
      await client.set('k', Buffer.from('old'), 60);
      await server.kill();
      await sleep(20);
      await failure(client.getMany(['k']).then(throwFirst));
      assert.equal(client.healthyServers, 0);
      spawned.push(await spawnMemcached({ port: server.port }));
      await waitFor(() => client.healthyServers === 1, 1500, 'the restarted server was not probed back up');
      assert.equal(await client.set('k', Buffer.from('new'), 60), true);
      assert.equal((await client.getMany(['k'])).values.get('k')?.toString(), 'new');
    } finally {
      client.close();
    }
  });
});

/** Polls `condition` every 10 ms; fails with `message` after `withinMs`. */
async function waitFor(condition: () => boolean, withinMs: number, message: string): Promise<void> {
  const until = performance.now() + withinMs;
  while (!condition()) {
    assert.ok(performance.now() < until, `${message} within ${withinMs} ms`);
    await sleep(10);
  }
}

/** getMany reports failures instead of rejecting; this turns the first one into a rejection. */
function throwFirst(result: { failures: MemcachedError[] }): void {
  if (result.failures[0] !== undefined) throw result.failures[0];
}
