import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { PadlockClient } from './client.js';
import { readEnvelopeHeader } from './envelope.js';
import {
  DecryptionFailed,
  InvalidInput,
  KeychainNotFound,
  KeychainShredded,
  PermissionDenied,
  Unavailable,
} from './errors.js';
import type { PadlockClientOptions } from './options.js';
import { deadUrl, defaultHandler, fakeKey, startFakePadlock, type FakePadlock } from './testing/fake-padlock.js';

/*
 * The client against stand-in servers whose failures are exact: batching and
 * coalescing, the cache and its TTL, error mapping, failover, hedging,
 * retries and deadlines. integration.test.ts runs the same paths against
 * real Padlock processes.
 */

const CREDENTIAL = 'app.cred-id.secret-part';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let a: FakePadlock;
let b: FakePadlock;
const clients: PadlockClient[] = [];

function client(options: Partial<PadlockClientOptions> = {}): PadlockClient {
  const created = new PadlockClient({
    groups: [
      { name: 'padlock', urls: [a.url] },
      { name: 'padlock-mirror', urls: [b.url] },
    ],
    credential: CREDENTIAL,
    ...options,
  });
  clients.push(created);
  return created;
}

function idsOf(request: { body: string }): string[] {
  return (JSON.parse(request.body) as { userIds: string[] }).userIds;
}

async function rejectsWith(promise: Promise<unknown>, type: new (...args: never[]) => Error): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

before(async () => {
  a = await startFakePadlock();
  b = await startFakePadlock();
});

after(async () => {
  await a.close();
  await b.close();
});

beforeEach(() => {
  for (const fake of [a, b]) {
    fake.requests.length = 0;
    fake.handler = defaultHandler;
    fake.maxAgeSeconds = 30;
    fake.versions.clear();
    fake.missing.clear();
    fake.shredded.clear();
  }
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

void describe('encrypt and decrypt', () => {
  void it('round-trip strings, Buffers and Uint8Arrays', async () => {
    const padlock = client();
    const text = await padlock.encrypt('alice', 'profile', 'héllo wörld');
    assert.equal(await padlock.decryptText('alice', text), 'héllo wörld');
    const bytes = await padlock.encrypt('alice', 'payments', new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await padlock.decrypt('alice', bytes))], [1, 2, 3]);
    const empty = await padlock.encrypt('alice', 'advertising', Buffer.alloc(0));
    assert.equal((await padlock.decrypt('alice', empty)).length, 0);
    assert.deepEqual(readEnvelopeHeader(text), { category: 'profile', version: 1 });
  });

  void it('sends the credential as a bearer token, to batch-get, and never shows it', async () => {
    const padlock = client();
    await padlock.encrypt('alice', 'profile', 'x');
    for (const text of [inspect(padlock, { depth: 10, showHidden: true }), JSON.stringify(padlock)]) {
      assert.ok(!text.includes('secret-part'), text);
    }
    const [request] = a.requests;
    assert.equal(request?.path, '/v1/keys/batch-get');
    assert.equal(request.headers.authorization, `Bearer ${CREDENTIAL}`);
    assert.equal(request.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(request.body), { userIds: ['alice'] });
  });

  void it('asks for the configured categories only', async () => {
    const padlock = client({ categories: ['profile'] });
    await padlock.encrypt('alice', 'profile', 'x');
    assert.deepEqual(JSON.parse(a.requests[0]!.body), { userIds: ['alice'], categories: ['profile'] });
    const error = await rejectsWith(padlock.encrypt('alice', 'payments', 'x'), InvalidInput);
    assert.equal(error.message, 'category "payments" is not among options.categories');
  });

  void it('encrypts with the current version and still decrypts older ones', async () => {
    const padlock = client();
    const old = await padlock.encrypt('alice', 'profile', 'v1 data');
    a.versions.set('profile', 3);
    padlock.forget('alice');
    const fresh = await padlock.encrypt('alice', 'profile', 'v3 data');
    assert.equal(readEnvelopeHeader(fresh)?.version, 3);
    assert.equal(await padlock.decryptText('alice', old), 'v1 data');
    assert.equal(await padlock.decryptText('alice', fresh), 'v3 data');
  });

  void it('uses the key the server serves (AES-256-GCM under it, checkable by anyone holding it)', async () => {
    const padlock = client();
    const sealed = await padlock.encrypt('alice', 'profile', 'x');
    const keys = await padlock.getKeys('alice');
    const profile = keys.categories.find((c) => c.category === 'profile');
    assert.equal(profile?.current, 1);
    assert.ok(profile.keys[0]?.key.expose().equals(fakeKey('alice', 'profile', 1)));
    assert.equal(readEnvelopeHeader(sealed)?.category, 'profile');
  });

  void it('fails every foreign, tampered or unknown-version ciphertext with DecryptionFailed', async () => {
    const padlock = client();
    const sealed = await padlock.encrypt('alice', 'profile', 'secret');
    await rejectsWith(padlock.decrypt('bob', sealed), DecryptionFailed);
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    await rejectsWith(padlock.decrypt('alice', tampered), DecryptionFailed);
    const future = Buffer.from(sealed);
    future.writeUInt32BE(9, 2 + 'profile'.length);
    await rejectsWith(padlock.decrypt('alice', future), DecryptionFailed);
    const otherCategory = await padlock.encrypt('alice', 'payments', 'secret');
    const relabelled = Buffer.concat([sealed.subarray(0, 13), otherCategory.subarray(14)]);
    await rejectsWith(padlock.decrypt('alice', relabelled), DecryptionFailed);
  });

  void it('fails malformed ciphertexts before any request', async () => {
    const padlock = client();
    await rejectsWith(padlock.decrypt('alice', Buffer.from('not an envelope at all, clearly')), DecryptionFailed);
    assert.equal(a.requests.length, 0);
  });

  void it('checks its arguments before sending anything', async () => {
    const padlock = client();
    const cases: [Promise<unknown>, string][] = [
      [
        padlock.encrypt('', 'profile', 'x'),
        'userId must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit',
      ],
      [
        padlock.encrypt('a/b', 'profile', 'x'),
        'userId must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit',
      ],
      [
        padlock.encrypt('alice', 'Profile', 'x'),
        'category must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter',
      ],
      [
        padlock.encrypt('alice', 'profile', 42 as unknown as string),
        'plaintext must be a string, a Buffer or a Uint8Array',
      ],
      [padlock.decrypt('alice', 'abc' as unknown as Uint8Array), 'ciphertext must be a Buffer or a Uint8Array'],
      [
        padlock.getKeys('x'.repeat(129)),
        'userId must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit',
      ],
    ];
    for (const [promise, message] of cases) {
      const error = await rejectsWith(promise, InvalidInput);
      assert.equal(error.message, message);
    }
    assert.equal(a.requests.length, 0);
  });
});

void describe('keychain states', () => {
  void it('maps not_found and shredded users, and shredded categories', async () => {
    const padlock = client({ cache: false });
    a.missing.add('nobody');
    a.shredded.add('gone');
    const sealed = await padlock.encrypt('carol', 'advertising', 'ads profile');
    const kept = await padlock.encrypt('carol', 'profile', 'name');
    a.shredded.add('carol/advertising');
    await rejectsWith(padlock.encrypt('nobody', 'profile', 'x'), KeychainNotFound);
    await rejectsWith(padlock.decrypt('nobody', sealed), KeychainNotFound);
    await rejectsWith(padlock.encrypt('gone', 'profile', 'x'), KeychainShredded);
    await rejectsWith(padlock.decrypt('gone', sealed), KeychainShredded);
    const optOut = await rejectsWith(padlock.decrypt('carol', sealed), KeychainShredded);
    assert.equal((optOut as KeychainShredded).category, 'advertising');
    await rejectsWith(padlock.encrypt('carol', 'advertising', 'x'), KeychainShredded);
    assert.equal(await padlock.decryptText('carol', kept), 'name');
  });

  void it('refuses a category the service does not receive with PermissionDenied', async () => {
    a.handler = (request, fake) => {
      const body = JSON.parse(request.body) as { userIds: string[] };
      return { status: 200, body: { results: body.userIds.map((id) => keysOf(fake, id, ['profile'])) } };
    };
    const keysOf = (fake: FakePadlock, id: string, categories: string[]) => {
      const reply = defaultHandler(
        {
          method: 'POST',
          path: '/v1/keys/batch-get',
          headers: {},
          body: JSON.stringify({ userIds: [id], categories }),
        },
        fake,
      );
      return (reply as { body: { results: unknown[] } }).body.results[0];
    };
    const error = await rejectsWith(client().encrypt('alice', 'payments', 'x'), PermissionDenied);
    assert.match(error.message, /may not read category "payments"/);
  });

  void it('maps 401 and 403 refusals to PermissionDenied, without failing over', async () => {
    a.handler = () => ({
      status: 401,
      body: { error: { code: 'UNAUTHENTICATED', message: 'A valid credential is required' } },
    });
    const denied = await rejectsWith(client().encrypt('alice', 'profile', 'x'), PermissionDenied);
    assert.equal((denied as PermissionDenied).serverCode, 'UNAUTHENTICATED');
    assert.ok(!denied.message.includes(CREDENTIAL));
    a.handler = () => ({
      status: 403,
      body: { error: { code: 'PERMISSION_DENIED', message: 'the service may not read: payments' } },
    });
    await rejectsWith(client().encrypt('alice', 'profile', 'x'), PermissionDenied);
    assert.equal(b.requests.length, 0);
  });

  void it('creates a keychain and caches the keys it answers with', async () => {
    const padlock = client();
    a.missing.add('dave');
    assert.deepEqual(await padlock.createKeychain('dave'), { created: true });
    assert.deepEqual(await padlock.createKeychain('dave'), { created: false });
    const sealed = await padlock.encrypt('dave', 'profile', 'hi');
    assert.equal(await padlock.decryptText('dave', sealed), 'hi');
    assert.equal(a.batchGets().length, 0);
  });

  void it('forgets a user at once after shredding through it', async () => {
    const padlock = client();
    const sealed = await padlock.encrypt('erin', 'profile', 'hi');
    assert.deepEqual(await padlock.shredKeychain('erin'), {
      shredded: 1,
      receipt: { id: '0'.repeat(32), jws: 'e30.e30.AA' },
    });
    await rejectsWith(padlock.decrypt('erin', sealed), KeychainShredded);
    assert.equal(a.requests.filter((r) => r.method === 'DELETE')[0]?.path, '/v1/keychains/erin');
    const other = await padlock.encrypt('frank@example.com', 'advertising', 'ads');
    await padlock.shredCategory('frank@example.com', 'advertising');
    assert.equal(a.requests.at(-1)?.path, '/v1/keychains/frank%40example.com/categories/advertising');
    await rejectsWith(padlock.decrypt('frank@example.com', other), KeychainShredded);
  });

  void it('returns copies of keys from getKeys, oldest version first', async () => {
    a.versions.set('profile', 2);
    const padlock = client();
    const keys = await padlock.getKeys('alice');
    const profile = keys.categories.find((c) => c.category === 'profile')!;
    assert.deepEqual(
      profile.keys.map((k) => k.version),
      [1, 2],
    );
    profile.keys[1]!.key.wipe();
    const sealed = await padlock.encrypt('alice', 'profile', 'still fine');
    assert.equal(await padlock.decryptText('alice', sealed), 'still fine');
    assert.equal(String(profile.keys[0]!.key), '[SecretBytes: redacted]');
  });
});

void describe('batching and coalescing', () => {
  void it('turns concurrent operations for many users into one batch-get with each user once', async () => {
    const padlock = client();
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const sealed = await Promise.all(
      Array.from({ length: 2000 }, (_, i) => padlock.encrypt(users[i % users.length]!, 'profile', `record ${i}`)),
    );
    assert.equal(a.batchGets().length, 1);
    assert.deepEqual(new Set(idsOf(a.batchGets()[0]!)), new Set(users));
    assert.equal(idsOf(a.batchGets()[0]!).length, 200);
    const stats = padlock.stats();
    assert.equal(stats.lookups, 2000);
    assert.equal(stats.coalesced, 1800);
    assert.equal(stats.batches, 1);
    const opened = await Promise.all(sealed.map((s, i) => padlock.decryptText(users[i % users.length]!, s)));
    assert.equal(opened[1999], 'record 1999');
    assert.equal(a.batchGets().length, 1, 'decrypts are served from the cache');
  });

  void it('splits at batch.maxUsers', async () => {
    const padlock = client({ batch: { maxUsers: 100 } });
    await Promise.all(Array.from({ length: 250 }, (_, i) => padlock.encrypt(`u${i}`, 'profile', 'x')));
    assert.deepEqual(
      a.batchGets().map((r) => idsOf(r).length),
      [100, 100, 50],
    );
  });

  void it("splits at batch.maxBodyBytes, so the server's body limit is never hit", async () => {
    const padlock = client({ batch: { maxBodyBytes: 20000 }, categories: ['profile'] });
    const longIds = Array.from({ length: 500 }, (_, i) => `${String(i).padStart(4, '0')}${'x'.repeat(124)}`);
    await Promise.all(longIds.map((id) => padlock.encrypt(id, 'profile', 'x')));
    const sizes = a.batchGets().map((r) => Buffer.byteLength(r.body));
    // 131 bytes per id: each full batch is within one id of the limit, and none is over it.
    assert.equal(sizes.length, 4, String(sizes));
    assert.ok(
      sizes.every((s) => s <= 20000),
      String(sizes),
    );
    assert.ok(
      sizes.slice(0, 3).every((s) => s > 20000 - 131),
      String(sizes),
    );
    assert.equal(a.batchGets().flatMap(idsOf).length, 500);
  });

  void it('halves batches a server refuses as too large, and keeps the lower limit', async () => {
    a.handler = (request, fake) => {
      const count = idsOf(request).length;
      if (count > 120) {
        return {
          status: 400,
          body: { error: { code: 'BATCH_TOO_LARGE', message: `userIds holds ${count} ids; at most 120 are allowed` } },
        };
      }
      return defaultHandler(request, fake);
    };
    const padlock = client();
    await Promise.all(Array.from({ length: 400 }, (_, i) => padlock.encrypt(`u${i}`, 'profile', 'x')));
    // The halves go out concurrently, so they may reach the server in any order.
    const [first, ...halves] = a.batchGets().map((r) => idsOf(r).length);
    assert.equal(first, 400);
    assert.deepEqual(
      halves.sort((x, y) => y - x),
      [200, 200, 100, 100, 100, 100],
    );
    a.requests.length = 0;
    await Promise.all(Array.from({ length: 400 }, (_, i) => padlock.encrypt(`v${i}`, 'profile', 'x')));
    assert.deepEqual(
      a.batchGets().map((r) => idsOf(r).length),
      [100, 100, 100, 100],
    );
  });

  void it('gathers lookups for batch.delayMs when asked', async () => {
    const padlock = client({ batch: { delayMs: 30 } });
    const first = padlock.encrypt('u1', 'profile', 'x');
    await sleep(5);
    const second = padlock.encrypt('u2', 'profile', 'x');
    await Promise.all([first, second]);
    assert.equal(a.batchGets().length, 1);
  });
});

void describe('cache', () => {
  void it("holds keys no longer than the server's maxAgeSeconds", async () => {
    a.maxAgeSeconds = 1;
    const padlock = client();
    await padlock.encrypt('alice', 'profile', 'x');
    await padlock.encrypt('alice', 'profile', 'x');
    assert.equal(a.batchGets().length, 1);
    await sleep(1050);
    await padlock.encrypt('alice', 'profile', 'x');
    assert.equal(a.batchGets().length, 2);
  });

  void it('holds nothing when maxAgeSeconds is 0, and no longer than cache.maxTtlMs', async () => {
    a.maxAgeSeconds = 0;
    const uncached = client();
    await uncached.encrypt('alice', 'profile', 'x');
    await uncached.encrypt('alice', 'profile', 'x');
    assert.equal(a.batchGets().length, 2);
    assert.equal(uncached.stats().cacheEntries, 0);
    a.maxAgeSeconds = 30;
    const capped = client({ cache: { maxTtlMs: 50 } });
    await capped.encrypt('alice', 'profile', 'x');
    await sleep(60);
    await capped.encrypt('alice', 'profile', 'x');
    assert.equal(a.batchGets().length, 4);
  });

  void it('stays within maxEntries and maxBytes, evicting the least recently used', async () => {
    const padlock = client({ cache: { maxEntries: 10, maxBytes: 1024 * 1024 } });
    for (let i = 0; i < 30; i++) await padlock.encrypt(`u${i}`, 'profile', 'x');
    assert.equal(padlock.stats().cacheEntries, 10);
    const small = client({ cache: { maxEntries: 1000, maxBytes: 4096 } });
    for (let i = 0; i < 30; i++) await small.encrypt(`u${i}`, 'profile', 'x');
    const stats = small.stats();
    assert.ok(stats.cacheBytes <= 4096 && stats.cacheEntries < 30 && stats.cacheEntries > 0, JSON.stringify(stats));
  });

  void it('with cache: false, still coalesces concurrent lookups', async () => {
    const padlock = client({ cache: false });
    await Promise.all(Array.from({ length: 100 }, () => padlock.encrypt('alice', 'profile', 'x')));
    await padlock.encrypt('alice', 'profile', 'x');
    assert.equal(a.batchGets().length, 2);
  });

  void it('answers lookups queued before forget(), and asks again for those after it', async () => {
    const padlock = client();
    const queued = padlock.encrypt('alice', 'profile', 'x');
    padlock.forget('alice');
    const after = padlock.encrypt('alice', 'profile', 'y');
    assert.equal(await padlock.decryptText('alice', await queued), 'x');
    assert.equal(await padlock.decryptText('alice', await after), 'y');
    assert.deepEqual(idsOf(a.batchGets()[0]!), ['alice', 'alice']);
  });

  void it('does not cache an answer that arrives after forget()', async () => {
    a.handler = async (request, fake) => {
      await sleep(50);
      return defaultHandler(request, fake);
    };
    const padlock = client();
    const pending = padlock.encrypt('alice', 'profile', 'x');
    await sleep(10);
    padlock.forget('alice');
    await pending;
    assert.equal(padlock.stats().cacheEntries, 0);
  });
});

void describe('failover, hedging, retries', () => {
  void it('fails over to the next group on a connection error', async () => {
    const padlock = new PadlockClient({
      groups: [
        { name: 'dead', urls: [await deadUrl()] },
        { name: 'alive', urls: [b.url] },
      ],
      credential: CREDENTIAL,
    });
    clients.push(padlock);
    await padlock.encrypt('alice', 'profile', 'x');
    assert.equal(b.batchGets().length, 1);
    assert.equal(padlock.stats().failovers, 1);
  });

  const failures: [string, FakePadlock['handler']][] = [
    ['503', () => ({ status: 503, body: { error: { code: 'OVERLOADED', message: 'shed' } } })],
    ['500 without a body', () => ({ status: 500, body: '', raw: true })],
    ['429', () => ({ status: 429, body: { error: { code: 'OVERLOADED', message: 'shed' } } })],
    ['404 from a proxy', () => ({ status: 404, body: '<html>not found</html>', raw: true })],
    ['ROUTE_NOT_FOUND', () => ({ status: 404, body: { error: { code: 'ROUTE_NOT_FOUND', message: 'no route' } } })],
    ['a malformed 200', () => ({ status: 200, body: { results: 'nope' } })],
    ['a 200 that is not JSON', () => ({ status: 200, body: '{"results": [', raw: true })],
    ['a reset connection', () => 'destroy'],
    ['a result for another user', () => ({ status: 200, body: { results: [{ userId: 'mallory', status: 'ok' }] } })],
  ];
  for (const [name, handler] of failures) {
    void it(`fails over on ${name}`, async () => {
      a.handler = handler;
      const padlock = client();
      const sealed = await padlock.encrypt('alice', 'profile', 'x');
      assert.equal(await padlock.decryptText('alice', sealed), 'x');
      assert.equal(a.requests.length, 1);
      assert.equal(b.batchGets().length, 1);
    });
  }

  void it('fails over on a timeout, then tries the failed group last for downMs', async () => {
    a.handler = () => 'hang';
    const padlock = client({ timeoutMs: 100, downMs: 60_000 });
    const started = Date.now();
    await padlock.encrypt('u1', 'profile', 'x');
    assert.ok(Date.now() - started >= 100);
    await padlock.encrypt('u2', 'profile', 'x');
    assert.equal(a.requests.length, 1, 'the hung group is not asked first again');
    assert.equal(b.batchGets().length, 2);
  });

  void it('hedges a slow lookup to the next group after hedgeAfterMs', async () => {
    a.handler = () => 'hang';
    const padlock = client({ timeoutMs: 2000, hedgeAfterMs: 20 });
    const started = Date.now();
    await padlock.encrypt('alice', 'profile', 'x');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `took ${elapsed} ms`);
    assert.equal(padlock.stats().hedges, 1);
    assert.equal(padlock.stats().failovers, 0);
  });

  void it('does not hedge a fast group', async () => {
    const padlock = client({ hedgeAfterMs: 200 });
    await padlock.encrypt('alice', 'profile', 'x');
    await sleep(250);
    assert.equal(b.requests.length, 0);
    assert.equal(padlock.stats().hedges, 0);
  });

  void it('does not retry by default: one attempt per group, then Unavailable listing them', async () => {
    a.handler = () => ({ status: 503, body: { error: { code: 'STORE_UNAVAILABLE', message: 'x' } } });
    b.handler = a.handler;
    const padlock = client();
    const error = (await rejectsWith(padlock.encrypt('alice', 'profile', 'x'), Unavailable)) as Unavailable;
    assert.deepEqual(
      error.attempts.map((t) => [t.group, t.reason]),
      [
        ['padlock', 'HTTP_503 STORE_UNAVAILABLE'],
        ['padlock-mirror', 'HTTP_503 STORE_UNAVAILABLE'],
      ],
    );
    assert.equal(a.requests.length + b.requests.length, 2);
  });

  void it('retries when asked, within its budget', async () => {
    let failuresLeft = 2;
    const flaky: FakePadlock['handler'] = (request, fake) =>
      failuresLeft-- > 0
        ? { status: 503, body: { error: { code: 'OVERLOADED', message: 'x' } } }
        : defaultHandler(request, fake);
    a.handler = flaky;
    b.handler = () => ({ status: 503, body: { error: { code: 'OVERLOADED', message: 'x' } } });
    const padlock = client({ retry: { maxRetries: 3, baseDelayMs: 1, maxDelayMs: 5 } });
    await padlock.encrypt('alice', 'profile', 'x');
    assert.equal(padlock.stats().retries, 2);

    a.handler = b.handler;
    const stingy = client({ retry: { maxRetries: 5, budgetMax: 1, budgetRatio: 0, baseDelayMs: 1 } });
    await rejectsWith(stingy.encrypt('u1', 'profile', 'x'), Unavailable);
    await rejectsWith(stingy.encrypt('u2', 'profile', 'x'), Unavailable);
    assert.equal(stingy.stats().retries, 1, 'the budget allowed one retry in all');
  });

  void it('gives up at deadlineMs, whatever the groups do', async () => {
    a.handler = () => 'hang';
    b.handler = () => 'hang';
    const padlock = client({ timeoutMs: 100, deadlineMs: 150, retry: { maxRetries: 10, baseDelayMs: 1 } });
    const started = Date.now();
    await rejectsWith(padlock.encrypt('alice', 'profile', 'x'), Unavailable);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 140 && elapsed < 400, `took ${elapsed} ms`);
  });

  void it('rotates over the URLs of a group', async () => {
    const padlock = new PadlockClient({ groups: [{ name: 'both', urls: [a.url, b.url] }], credential: CREDENTIAL });
    clients.push(padlock);
    for (let i = 0; i < 4; i++) await padlock.encrypt(`u${i}`, 'profile', 'x');
    assert.equal(a.batchGets().length, 2);
    assert.equal(b.batchGets().length, 2);
  });

  void it('fails operations with Unavailable once closed, and cancels those in flight', async () => {
    a.handler = () => 'hang';
    b.handler = () => 'hang';
    const padlock = client({ timeoutMs: 5000 });
    const pending = padlock.encrypt('alice', 'profile', 'x');
    await sleep(20);
    await padlock.close();
    await rejectsWith(pending, Unavailable);
    await rejectsWith(padlock.encrypt('alice', 'profile', 'x'), Unavailable);
  });
});
