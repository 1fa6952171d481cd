import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PadlockClient } from './client.js';
import { readEnvelopeHeader } from './envelope.js';
import {
  DecryptionFailed,
  InvalidInput,
  KeychainNotFound,
  KeychainShredded,
  PermissionDenied,
  ReceiptInvalid,
} from './errors.js';
import type { PadlockClientOptions } from './options.js';
import { batchGetCount, createDeployment, type Deployment, type PadlockProcess } from './testing/padlock-processes.js';

/*
 * The client against real Padlock processes: two deployment groups
 * (`padlock serve` twice) on one SQLite store, with maxStalenessSeconds 2.
 * Batch-get requests are counted by the servers' own /metrics.
 */

const USERS = Array.from({ length: 600 }, (_, i) => `user-${String(i).padStart(4, '0')}`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let deployment: Deployment;
let primary: PadlockProcess;
let mirror: PadlockProcess;
const clients: PadlockClient[] = [];

function client(groups: readonly PadlockProcess[], options: Partial<PadlockClientOptions> = {}): PadlockClient {
  const created = new PadlockClient({
    groups: groups.map((g) => ({ name: g.name, urls: [g.url] })),
    credential: deployment.credentials['app']!,
    // Generous: CI machines are loaded; the tests that are about timeouts set their own.
    timeoutMs: 10_000,
    ...options,
  });
  clients.push(created);
  return created;
}

async function totalBatchGets(...processes: PadlockProcess[]): Promise<number> {
  let total = 0;
  for (const p of processes) total += await batchGetCount(p);
  return total;
}

before(async () => {
  deployment = await createDeployment({ maxStalenessSeconds: 2 });
  [primary, mirror] = await Promise.all([deployment.start('padlock'), deployment.start('padlock-mirror')]);
  const admin = client([primary, mirror]);
  for (let i = 0; i < USERS.length; i += 50) {
    await Promise.all(USERS.slice(i, i + 50).map((u) => admin.createKeychain(u)));
  }
});

after(async () => {
  for (const c of clients) await c.close();
  await deployment?.close();
});

void describe('client against two real Padlock groups', { timeout: 120_000 }, () => {
  void it('turns thousands of concurrent encrypts for hundreds of users into a handful of batch-gets', async (t) => {
    const padlock = client([primary, mirror]);
    const before = await totalBatchGets(primary, mirror);
    const started = performance.now();
    const sealed = await Promise.all(
      Array.from({ length: 6000 }, (_, i) => padlock.encrypt(USERS[i % USERS.length]!, 'profile', `record ${i}`)),
    );
    const encryptMs = performance.now() - started;
    const batches = (await totalBatchGets(primary, mirror)) - before;
    // 600 distinct users, 500 per batch-get at most: 2 requests.
    assert.equal(batches, 2);
    assert.equal(padlock.stats().batches, 2);
    const opened = await Promise.all(sealed.map((s, i) => padlock.decryptText(USERS[i % USERS.length]!, s)));
    assert.equal(opened[5999], 'record 5999');
    // Served from the cache, except users whose answer had maxAgeSeconds 0 (the server's copy was over 1 s
    // old of the 2 s bound): those are looked up again, coalesced the same way.
    const decryptBatches = (await totalBatchGets(primary, mirror)) - before - batches;
    assert.ok(decryptBatches <= 2, `${decryptBatches} batch-gets for the decrypts`);
    t.diagnostic(
      `6000 encrypts for 600 users: ${batches} batch-get requests, ${encryptMs.toFixed(0)} ms ` +
        `(${JSON.stringify(padlock.stats())})`,
    );
  });

  void it('decrypts in one group what was encrypted through the other (same derived keys)', async () => {
    const viaPrimary = client([primary]);
    const viaMirror = client([mirror]);
    const sealed = await viaPrimary.encrypt('user-0001', 'payments', '4111 1111 1111 1111');
    assert.equal(await viaMirror.decryptText('user-0001', sealed), '4111 1111 1111 1111');
  });

  void it('maps real refusals: unknown user, category not permitted, missing right, foreign ciphertext', async () => {
    const padlock = client([primary, mirror]);
    const reader = new PadlockClient({
      groups: [{ name: 'padlock', urls: [primary.url] }],
      credential: deployment.credentials['reader']!,
    });
    clients.push(reader);
    await assert.rejects(padlock.encrypt('nobody-here', 'profile', 'x'), KeychainNotFound);
    await assert.rejects(reader.encrypt('user-0002', 'payments', 'x'), PermissionDenied);
    await assert.rejects(reader.createKeychain('user-new'), PermissionDenied);
    // Another service's keys for the same user and category are unrelated: its envelope does not open here.
    const readerSealed = await reader.encrypt('user-0002', 'profile', 'mine');
    await assert.rejects(padlock.decrypt('user-0002', readerSealed), DecryptionFailed);
    const wrongCredential = new PadlockClient({
      groups: [{ name: 'padlock', urls: [primary.url] }],
      credential: 'app.not-a-real.credential',
    });
    clients.push(wrongCredential);
    await assert.rejects(wrongCredential.encrypt('user-0002', 'profile', 'x'), PermissionDenied);
    await assert.rejects(padlock.encrypt('user-0002', 'Bad Category', 'x'), InvalidInput);
  });

  void it('encrypts with the newest version after a rotation and still decrypts the old one', async () => {
    const padlock = client([primary]);
    const old = await padlock.encrypt('user-0003', 'profile', 'before rotation');
    const rotated = await fetch(`${primary.url}/v1/keychains/user-0003/categories/profile/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${deployment.credentials['app']!}` },
    });
    assert.equal(rotated.status, 201);
    padlock.forget('user-0003');
    const fresh = await padlock.encrypt('user-0003', 'profile', 'after rotation');
    assert.equal(readEnvelopeHeader(old)?.version, 1);
    assert.equal(readEnvelopeHeader(fresh)?.version, 2);
    assert.equal(await padlock.decryptText('user-0003', old), 'before rotation');
    assert.equal(await padlock.decryptText('user-0003', fresh), 'after rotation');
  });

  void it('after a shred, every client stops decrypting that user within maxStalenessSeconds', async (t) => {
    const victim = 'user-0010';
    const survivor = 'user-0011';
    // Two clients preferring different groups, both with warm caches (and warm server caches behind them).
    const first = client([primary, mirror]);
    const second = client([mirror, primary]);
    const records = new Map<PadlockClient, { victim: Buffer; survivor: Buffer }>();
    for (const c of [first, second]) {
      records.set(c, {
        victim: await c.encrypt(victim, 'profile', 'v'),
        survivor: await c.encrypt(survivor, 'profile', 's'),
      });
      assert.equal(await c.decryptText(victim, records.get(c)!.victim), 'v');
    }
    // Shred through the CLI, straight on the store: no server's cache is invalidated, the worst case.
    await deployment.cli('keychain', 'shred', victim);
    const shredDone = Date.now();
    const boundMs = deployment.maxStalenessSeconds * 1000;
    const stoppedAfter = new Map<PadlockClient, number>();
    let decryptsAfterShred = 0;
    while (stoppedAfter.size < 2 && Date.now() - shredDone < boundMs + 2000) {
      for (const c of [first, second]) {
        if (stoppedAfter.has(c)) continue;
        try {
          await c.decrypt(victim, records.get(c)!.victim);
          decryptsAfterShred++;
        } catch (error) {
          assert.ok(error instanceof KeychainShredded, String(error));
          stoppedAfter.set(c, Date.now() - shredDone);
        }
        assert.equal(await c.decryptText(survivor, records.get(c)!.survivor), 's');
      }
      await sleep(25);
    }
    t.diagnostic(
      `stopped ${[...stoppedAfter.values()].join(' and ')} ms after the shred returned (bound ${boundMs} ms); ` +
        `${decryptsAfterShred} decrypts succeeded in between from caches`,
    );
    assert.equal(stoppedAfter.size, 2, 'both clients stopped');
    // The bound, plus one polling step and one request's latency.
    for (const ms of stoppedAfter.values()) assert.ok(ms <= boundMs + 250, `stopped after ${ms} ms`);
    await assert.rejects(first.encrypt(victim, 'profile', 'new data'), KeychainShredded);
  });

  void it('stops at once in the client that shreds, for that category only', async () => {
    const padlock = client([primary, mirror]);
    const ads = await padlock.encrypt('user-0020', 'advertising', 'segments');
    const name = await padlock.encrypt('user-0020', 'profile', 'Zoë');
    const { receipt } = await padlock.shredCategory('user-0020', 'advertising');
    const claims = await padlock.verifyReceipt(receipt.jws);
    assert.deepEqual([claims.sub, claims.scope, claims.jti], ['user-0020', 'category', receipt.id]);
    assert.deepEqual(
      claims.categories.map((c) => c.category),
      ['advertising'],
    );
    // One character changed anywhere (header, claims or signature) and the SDK refuses it.
    for (const at of [5, Math.floor(receipt.jws.length / 2), receipt.jws.length - 1]) {
      const changed = receipt.jws.slice(0, at) + (receipt.jws[at] === 'A' ? 'B' : 'A') + receipt.jws.slice(at + 1);
      await assert.rejects(padlock.verifyReceipt(changed), ReceiptInvalid);
    }
    const error = await padlock.decrypt('user-0020', ads).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof KeychainShredded && error.category === 'advertising');
    assert.equal(await padlock.decryptText('user-0020', name), 'Zoë');
  });

  void it('runs the README example', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(code !== undefined, 'the README has a js example');
    // Inside the package, so that '@padlock/client' resolves as it does for a service depending on it.
    const file = fileURLToPath(new URL('./readme-example.mjs', import.meta.url));
    writeFileSync(file, code);
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [file], {
        env: { ...process.env, PADLOCK_URL: primary.url, PADLOCK_CREDENTIAL: deployment.credentials['app']! },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (exitCode) => resolve({ code: exitCode, stdout, stderr }));
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '{"segments":["cycling"]}\nalice\'s advertising data is gone, in every copy\n');
  });

  void it('loses no operation when one group is SIGKILLed mid-run', async (t) => {
    // Own processes, so killing one leaves the other tests' servers alone.
    const doomed = await deployment.start('doomed');
    const standby = await deployment.start('standby');
    // No cache: every round fetches keys, so the kill lands on requests in flight.
    const padlock = client([doomed, standby], { cache: false });
    const users = USERS.slice(100, 300);
    let operations = 0;
    let failures = 0;
    let killedAt = -1;
    const started = Date.now();
    // Counted, not timed: on a loaded machine a fixed 300 ms may hold no operation at all.
    // The kill lands between rounds of 400 operations in flight at once; bounded at 60 s.
    while (operations < killedAt + 800 || killedAt < 0) {
      assert.ok(Date.now() - started < 60_000, `only ${operations} operations in 60 s`);
      if (killedAt < 0 && operations >= 400) {
        killedAt = operations;
        const round = users.map((user, i) => padlock.encrypt(user, 'profile', `in flight ${i}`));
        await doomed.kill('SIGKILL');
        for (const result of await Promise.allSettled(round)) {
          if (result.status === 'fulfilled') operations++;
          else {
            failures++;
            t.diagnostic(`failed during the kill: ${String(result.reason)}`);
          }
        }
      }
      const round = users.map(async (user, i) => {
        try {
          const sealed = await padlock.encrypt(user, 'profile', `round data ${i}`);
          assert.equal(await padlock.decryptText(user, sealed), `round data ${i}`);
          operations += 2;
        } catch (error) {
          failures++;
          t.diagnostic(`failed: ${String(error)}`);
        }
      });
      await Promise.all(round);
    }
    const stats = padlock.stats();
    t.diagnostic(`${operations} operations, kill after ${killedAt}, ${failures} failed; ${JSON.stringify(stats)}`);
    assert.equal(failures, 0);
    assert.ok(killedAt > 0 && operations > killedAt + 400, 'operations ran before and after the kill');
    assert.ok(stats.failovers > 0);
    assert.ok((await batchGetCount(standby)) > 0);
    await standby.kill('SIGTERM');
  });
});
