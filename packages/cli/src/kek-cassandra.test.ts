import { wrappedKid } from '@padlock/core';
import { CassandraKeyStore, readCheckpoint } from '@padlock/server';
import { servedKeys, startHarness, type Harness, type KeysBody } from '@padlock/server/testing';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requiredEnv } from '../../server/dist/testing/services-env.js';

/*
 * kek.test's kill -9 resume, end to end on a real Cassandra node: the store
 * and the shred journal (its own keyspace) on PADLOCK_TEST_CASSANDRA. Users
 * shredded under the first KEK; then, while a server with both KEKs shreds
 * and creates, `padlock kek rewrap` is killed with -9 mid-way through the
 * root keys (paged by token range) and run again: it resumes from its
 * checkpoint, every live row ends under the new kid, every shredded row stays
 * shredded (the LWT on the old blob loses to the shred), the journal is
 * re-keyed, the old KEK retired, and a server holding only the new KEK serves
 * the same keys.
 */

const env = requiredEnv('PADLOCK_TEST_CASSANDRA');
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const USERS = 400;
const SHRED_EARLY = 5;
const SHRED_DURING = 40;
const CREATE_DURING = 20;
const CATEGORIES = 3;
const suffix = randomBytes(4).toString('hex');
const KEYSPACE = `padlock_kekc_${suffix}`;
const JOURNAL_KEYSPACE = `padlock_kekc_${suffix}_journal`;
const CASSANDRA = {
  contactPoints: (env.value ?? '').split(','),
  localDataCenter: 'dc1',
  keyspace: KEYSPACE,
  replication: { dc1: 1 },
  readTimeoutMs: 10000,
};
const STORE = {
  store: { kind: 'cassandra', cassandra: CASSANDRA },
  journal: { kind: 'cassandra', cassandra: { keyspace: JOURNAL_KEYSPACE }, checkIntervalMs: 200 },
};
const BOTH = {
  active: 'kek-2',
  files: [
    { kid: 'test-kek', path: 'kek.bin' },
    { kid: 'kek-2', path: 'kek-2.bin' },
  ],
};
const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function padlock(args: readonly string[], killWhen?: (stdout: string) => boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, PADLOCK_CONFIG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (killWhen !== undefined && child.exitCode === null && killWhen(stdout)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function json<T>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

function lastJson<T>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout.slice(run.stdout.lastIndexOf('\n{\n') + 1)) as T;
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function keysOf(server: Harness, userId: string): Promise<Map<string, string>> {
  const got = await server.call('GET', `/v1/keys/${userId}`);
  assert.equal(got.status, 200, got.text);
  const out = new Map<string, string>();
  for (const [category, versions] of servedKeys(got.body as KeysBody)) {
    for (const [version, key] of versions) out.set(`${category}/${version}`, Buffer.from(key).toString('base64url'));
  }
  return out;
}

/** One request as a client makes it: a 503 (retryable, docs/errors.md) is tried again, up to 5 times. */
async function retried(call: () => Promise<{ status: number; text: string }>, want: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const reply = await call();
    if (reply.status === 503 && attempt < 5) {
      process.stderr.write(`# retrying a 503: ${reply.text}\n`);
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      continue;
    }
    assert.equal(reply.status, want, reply.text);
    return;
  }
}

describe('KEK rotation on Cassandra: re-wrap killed with -9 and resumed', { skip: env.skip, timeout: 900_000 }, () => {
  let h: Harness;
  let server: Harness | undefined;
  let configFile: string;
  const users = ids('user', USERS);
  const shredEarly = ids('early', SHRED_EARLY);
  const shredDuring = users.slice(0, SHRED_DURING);
  const createdDuring = ids('late', CREATE_DURING);
  const sample = users.slice(SHRED_DURING, SHRED_DURING + 30);
  const before_ = new Map<string, Map<string, string>>();

  before(async () => {
    h = await startHarness({ config: STORE });
    configFile = join(h.dir, 'padlock.json');
    writeFileSync(configFile, JSON.stringify(h.config), { mode: 0o600 });
    writeFileSync(join(h.dir, 'kek-2.bin'), randomBytes(32), { mode: 0o600 });
  });
  after(async () => {
    await server?.close();
    await h?.close();
    const store = await CassandraKeyStore.open({
      ...CASSANDRA,
      connectTimeoutMs: 5000,
      hedgeAfterMs: 0,
      createSchema: false,
    });
    try {
      await store.driver.execute(`DROP KEYSPACE IF EXISTS ${JOURNAL_KEYSPACE}`, [], { readTimeout: 60000 });
    } finally {
      await store.close();
    }
  });

  it('creates keychains and shreds a few under the first KEK; adds and activates a second', async () => {
    await inParallel(users, 16, async (userId) => {
      const created = await h.call('POST', '/v1/keychains', { json: { userId } });
      assert.equal(created.status, 201, created.text);
    });
    for (const userId of sample) before_.set(userId, await keysOf(h, userId));
    for (const userId of shredEarly) {
      const created = await h.call('POST', '/v1/keychains', { json: { userId } });
      assert.equal(created.status, 201, created.text);
      const shredded = await h.call('DELETE', `/v1/keychains/${userId}`);
      assert.equal(shredded.status, 200, shredded.text);
    }
    json(await padlock(['kek', 'add', join(h.dir, 'kek-2.bin'), '-c', configFile]));
    json(await padlock(['kek', 'activate', 'kek-2', '-c', configFile]));
  });

  it('re-wraps while a server shreds and creates; killed with -9 mid-way, it resumes from its checkpoint', async () => {
    await h.stop();
    server = await h.peer({ config: { ...STORE, keks: BOTH } });
    const live = server;
    const traffic = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await inParallel(shredDuring, 4, async (userId) => {
        await retried(() => live.call('DELETE', `/v1/keychains/${userId}`), 200);
      });
      await inParallel(createdDuring, 4, async (userId) => {
        await retried(() => live.call('POST', '/v1/keychains', { json: { userId } }), 201);
      });
    })();
    const args = ['kek', 'rewrap', '-c', configFile, '--rate', '150', '--page-size', '30', '--batch', '8'];
    const killed = await padlock(args, (out) =>
      /"phase":"root_keys".*"rewrapped":(\d{3,})/.test(out.split('\n').at(-2) ?? ''),
    );
    assert.equal(killed.signal, 'SIGKILL', `the re-wrap finished before it was killed: ${killed.stdout.slice(-500)}`);
    const saved = readCheckpoint(join(h.dir, 'kek-rewrap.checkpoint.json'));
    assert.ok(saved !== undefined && saved.phase === 'root_keys' && saved.cursor !== null, JSON.stringify(saved));
    assert.ok(saved.counts.rewrapped > 0 && saved.counts.rewrapped < USERS * CATEGORIES);
    await traffic;
    const resumed = lastJson<{ kid: string; rewrapped: number; failed: number; resumed: boolean }>(
      await padlock([...args, '--rate', '3000']),
    );
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.failed, 0);
    assert.ok(resumed.rewrapped >= saved.counts.rewrapped, 'the counts go on from the checkpoint');
  });

  it('every live row is under the new kid, none lost or doubled, every shredded one still shredded', async () => {
    const store = await CassandraKeyStore.open({
      ...CASSANDRA,
      connectTimeoutMs: 5000,
      hedgeAfterMs: 0,
      createSchema: false,
    });
    try {
      const result = await store.driver.execute(`SELECT user_id, wrapped FROM ${KEYSPACE}.root_keys`, [], {
        prepare: true,
        fetchSize: 100_000,
      });
      assert.equal(result.pageState, null, 'one page holds every row');
      const rows = result.rows.map((row) => ({
        user_id: row['user_id'] as string,
        // A shred overwrites the blob with an empty value (store/cassandra.ts).
        wrapped: (row['wrapped'] as Buffer | null)?.length ? (row['wrapped'] as Buffer) : null,
      }));
      assert.equal(rows.length, (USERS + SHRED_EARLY + CREATE_DURING) * CATEGORIES);
      const shredded = new Set([...shredDuring, ...shredEarly]);
      let live = 0;
      for (const row of rows) {
        if (shredded.has(row.user_id)) assert.equal(row.wrapped, null, `${row.user_id} stays shredded`);
        else {
          assert.equal(wrappedKid(row.wrapped!), 'kek-2', `${row.user_id} is under the new kid`);
          live++;
        }
      }
      assert.equal(live, (USERS - SHRED_DURING + CREATE_DURING) * CATEGORIES);
    } finally {
      await store.close();
    }
  });

  it('re-keys the journal, retires the old KEK; a server with only the new one serves the same keys', async () => {
    const refused = await padlock(['kek', 'retire', 'test-kek', '-c', configFile]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /"test-kek" is still in use: 5 journal/);
    const rekeyed = json<{ rekeyed: boolean; from: string }>(await padlock(['kek', 'rekey-journal', '-c', configFile]));
    assert.equal(rekeyed.rekeyed, true);
    assert.equal(rekeyed.from, 'test-kek');
    json(await padlock(['kek', 'retire', 'test-kek', '-c', configFile]));
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { keks: typeof BOTH };
    assert.deepEqual(config.keks, { active: 'kek-2', files: [{ kid: 'kek-2', path: 'kek-2.bin' }] });
    await server?.close();
    server = await h.peer({ config: { ...STORE, keks: config.keks } });
    for (const userId of sample) assert.deepEqual(await keysOf(server, userId), before_.get(userId), userId);
    for (const userId of [...shredDuring.slice(0, 10), ...shredEarly]) {
      const got = await server.call('GET', `/v1/keys/${userId}`);
      assert.ok([404, 410].includes(got.status), `${userId}: ${got.status}`);
    }
    const journal = json<{ verified: number; state: string }>(await padlock(['journal', 'status', '-c', configFile]));
    assert.equal(journal.verified, SHRED_EARLY + SHRED_DURING + 1);
    assert.equal(journal.state, 'caught-up');
  });
});
