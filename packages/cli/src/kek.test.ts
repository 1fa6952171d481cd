import { wrappedKid } from '@padlock/core';
import { readCheckpoint, SqliteKeyStore } from '@padlock/server';
import { servedKeys, startHarness, type Harness, type KeysBody } from '@padlock/server/testing';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/*
 * KEK rotation end to end (DESIGN.md section 11, docs/operations.md "Rotating
 * the KEK"), with the real CLI as a child process and a real server: add and
 * activate a second KEK, re-wrap online while the server shreds and creates
 * keychains, kill -9 the re-wrap mid-way, run it again from its checkpoint;
 * then every live row is under the new kid and opens to the same keys, every
 * shredded one stays shredded, and the old KEK can be retired, after which a
 * server holding only the new one serves the same keys and signs receipts.
 */

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const USERS = 600;
const SHRED_DURING = 50;
const CREATE_DURING = 20;
const CATEGORIES = 3;
/** Shredded under the first KEK: their journal entries are MAC'd under it. */
const SHRED_EARLY = 5;
const FILES = {
  store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } },
  journal: { file: { path: 'journal/shreds.journal' }, checkIntervalMs: 200 },
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

/** Runs the CLI; with `killWhen`, sends SIGKILL once stdout so far satisfies it. */
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

/** The last JSON document of a run's stdout (after its progress lines). */
function lastJson<T>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  const start = run.stdout.lastIndexOf('\n{\n');
  return JSON.parse(run.stdout.slice(start + 1)) as T;
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** The derived keys a server hands out for a user, as category/version -> base64url. */
async function keysOf(server: Harness, userId: string): Promise<Map<string, string>> {
  const got = await server.call('GET', `/v1/keys/${userId}`);
  assert.equal(got.status, 200, got.text);
  const out = new Map<string, string>();
  for (const [category, versions] of servedKeys(got.body as KeysBody)) {
    for (const [version, key] of versions) out.set(`${category}/${version}`, Buffer.from(key).toString('base64url'));
  }
  return out;
}

describe('KEK rotation: add, activate, re-wrap online (killed and resumed), retire', { timeout: 600_000 }, () => {
  let h: Harness;
  let server: Harness;
  let configFile: string;
  let checkpoint: string;
  const users = ids('user', USERS);
  const shredDuring = users.slice(0, SHRED_DURING);
  const createdDuring = ids('late', CREATE_DURING);
  const sample = users.slice(SHRED_DURING, SHRED_DURING + 40);
  const shredEarly = ids('early', SHRED_EARLY);
  const before_ = new Map<string, Map<string, string>>();

  before(async () => {
    h = await startHarness({ config: FILES });
    configFile = join(h.dir, 'padlock.json');
    checkpoint = join(h.dir, 'kek-rewrap.checkpoint.json');
    writeFileSync(configFile, JSON.stringify(h.config), { mode: 0o600 });
    writeFileSync(join(h.dir, 'kek-2.bin'), randomBytes(32), { mode: 0o600 });
    writeFileSync(join(h.dir, 'loose.bin'), randomBytes(32), { mode: 0o644 });
    writeFileSync(join(h.dir, 'short.bin'), randomBytes(31), { mode: 0o600 });
  });
  after(async () => {
    await server?.close();
    await h?.close();
  });

  it('creates keychains, a hold and a schedule under the first KEK', async () => {
    await inParallel(users, 16, async (userId) => {
      const created = await h.call('POST', '/v1/keychains', { json: { userId } });
      assert.equal(created.status, 201, created.text);
    });
    for (const userId of sample) before_.set(userId, await keysOf(h, userId));
    json(await padlock(['keychain', 'hold', users.at(-1)!, '--reason', 'litigation', '-c', configFile]));
    json(await padlock(['keychain', 'schedule-shred', users.at(-2)!, '--grace', '86400', '-c', configFile]));
    for (const userId of shredEarly) {
      assert.equal((await h.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
      assert.equal((await h.call('DELETE', `/v1/keychains/${userId}`)).status, 200);
    }
  });

  it('kek add refuses a file readable by others, a short file, a bad kid and a kid taken; takes a good one', async () => {
    const loose = await padlock(['kek', 'add', join(h.dir, 'loose.bin'), '-c', configFile]);
    assert.equal(loose.code, 1);
    assert.match(loose.stderr, /accessible by group or others/);
    const short = await padlock(['kek', 'add', join(h.dir, 'short.bin'), '-c', configFile]);
    assert.equal(short.code, 1);
    assert.match(short.stderr, /exactly 32 bytes/);
    const badKid = await padlock(['kek', 'add', join(h.dir, 'kek-2.bin'), '--kid', 'no/slash', '-c', configFile]);
    assert.equal(badKid.code, 2);
    const taken = await padlock(['kek', 'add', join(h.dir, 'kek-2.bin'), '--kid', 'test-kek', '-c', configFile]);
    assert.equal(taken.code, 2);
    assert.match(taken.stderr, /already/);
    const added = json<{ added: string; active: string }>(
      await padlock(['kek', 'add', join(h.dir, 'kek-2.bin'), '-c', configFile]),
    );
    assert.deepEqual([added.added, added.active], ['kek-2', 'test-kek']);
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { keks: typeof BOTH };
    assert.deepEqual(
      config.keks.files.map((f) => f.kid),
      ['test-kek', 'kek-2'],
    );
  });

  it('kek activate names a loaded kid; retire refuses the active kid and a kid rows still use', async () => {
    assert.equal((await padlock(['kek', 'activate', 'nope', '-c', configFile])).code, 2);
    json(await padlock(['kek', 'activate', 'kek-2', '-c', configFile]));
    const active = await padlock(['kek', 'retire', 'kek-2', '-c', configFile]);
    assert.equal(active.code, 1);
    assert.match(active.stderr, /"kek-2" is the active KEK/);
    const used = await padlock(['kek', 'retire', 'test-kek', '-c', configFile]);
    assert.equal(used.code, 1);
    assert.match(used.stderr, new RegExp(`"test-kek" is still in use: .*${USERS * CATEGORIES} root_keys`));
    const status = json<{ active: string; rows: Record<string, Record<string, number>> }>(
      await padlock(['kek', 'status', '-c', configFile]),
    );
    assert.equal(status.active, 'kek-2');
    assert.equal(status.rows['test-kek']?.['root_keys'], USERS * CATEGORIES);
    assert.equal(status.rows['test-kek']?.['holds'], 1);
    assert.equal(status.rows['test-kek']?.['schedules'], 1);
    assert.equal(status.rows['test-kek']?.['service_keys'], 1);
    assert.equal(status.rows['kek-2'], undefined);
  });

  it('re-wraps while the server shreds and creates; killed with -9 mid-way, it resumes from its checkpoint', async () => {
    await h.stop();
    server = await h.peer({ config: { ...FILES, keks: BOTH } });
    const traffic = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await inParallel(shredDuring, 4, async (userId) => {
        assert.equal((await server.call('DELETE', `/v1/keychains/${userId}`)).status, 200);
      });
      await inParallel(createdDuring, 4, async (userId) => {
        assert.equal((await server.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
      });
    })();
    const args = ['kek', 'rewrap', '-c', configFile, '--rate', '400', '--page-size', '50'];
    const killed = await padlock(args, (out) =>
      /"phase":"root_keys".*"rewrapped":(\d{3,})/.test(out.split('\n').at(-2) ?? ''),
    );
    assert.equal(killed.signal, 'SIGKILL', `the re-wrap finished before it was killed: ${killed.stdout.slice(-500)}`);
    const saved = readCheckpoint(checkpoint);
    assert.ok(saved !== undefined && saved.phase === 'root_keys' && saved.cursor !== null, JSON.stringify(saved));
    assert.ok(saved.counts.rewrapped > 0 && saved.counts.rewrapped < USERS * CATEGORIES);
    for (const line of killed.stdout.trim().split('\n')) {
      const progress = (JSON.parse(line) as { progress: { kid: string; phase: string } }).progress;
      assert.equal(progress.kid, 'kek-2');
    }
    await traffic;

    const resumed = lastJson<{ kid: string; rewrapped: number; failed: number; resumed: boolean }>(
      await padlock([...args, '--rate', '5000', '--metrics-file', join(h.dir, 'rewrap.prom')]),
    );
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.failed, 0);
    assert.ok(resumed.rewrapped >= saved.counts.rewrapped, 'the counts go on from the checkpoint');
    const metrics = readFileSync(join(h.dir, 'rewrap.prom'), 'utf8');
    assert.match(metrics, /padlock_kek_rewrap_rows\{kid="kek-2",outcome="rewrapped"\} \d+/);
    assert.match(metrics, /padlock_kek_rewrap_phase\{kid="kek-2"\} 5/);
  });

  it('every live row is under the new kid, no row lost or doubled, every shredded one still shredded', async () => {
    const store = new SqliteKeyStore({ path: join(h.dir, 'padlock.db'), busyTimeoutMs: 5000 });
    try {
      const rows = store.database
        .prepare<[], { user_id: string; wrapped: Buffer | null }>('SELECT user_id, wrapped FROM root_keys')
        .all();
      assert.equal(
        rows.length,
        (USERS + CREATE_DURING + SHRED_EARLY) * CATEGORIES,
        'one row per user and category, as before',
      );
      const shredded = new Set([...shredDuring, ...shredEarly]);
      for (const row of rows) {
        if (shredded.has(row.user_id)) assert.equal(row.wrapped, null, `${row.user_id} stays shredded`);
        else assert.equal(wrappedKid(row.wrapped!), 'kek-2', `${row.user_id} is under the new kid`);
      }
    } finally {
      await store.close();
    }
    const status = json<{ rows: Record<string, Record<string, number>> }>(
      await padlock(['kek', 'status', '-c', configFile]),
    );
    // The shreds made under the first KEK are MAC'd under it in the journal, and stay so.
    assert.deepEqual(status.rows['test-kek'], { journal: SHRED_EARLY }, JSON.stringify(status.rows));
    assert.equal(status.rows['kek-2']?.['root_keys'], (USERS - SHRED_DURING + CREATE_DURING) * CATEGORIES);
  });

  it('retire refuses while journal entries need the old KEK; kek rekey-journal covers them', async () => {
    const refused = await padlock(['kek', 'retire', 'test-kek', '-c', configFile]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /"test-kek" is still in use: 5 journal; run padlock kek rekey-journal first/);
    // Run while the server (both KEKs, kek-2 active) still shreds: the re-key entry takes its place in the chain.
    const shredding = inParallel(users.slice(SHRED_DURING + 40, SHRED_DURING + 60), 2, async (userId) => {
      assert.equal((await server.call('DELETE', `/v1/keychains/${userId}`)).status, 200);
    });
    const rekeyed = json<{ rekeyed: boolean; kid: string; from: string; position: number; covered: number }>(
      await padlock(['kek', 'rekey-journal', '-c', configFile]),
    );
    await shredding;
    assert.equal(rekeyed.rekeyed, true);
    assert.equal(rekeyed.kid, 'kek-2');
    assert.equal(rekeyed.from, 'test-kek');
    assert.equal(rekeyed.covered, rekeyed.position - 1);
    assert.ok(rekeyed.covered >= SHRED_EARLY + SHRED_DURING);
    const again = json<{ rekeyed: boolean }>(await padlock(['kek', 'rekey-journal', '-c', configFile]));
    assert.equal(again.rekeyed, false);
    const status = json<{
      rows: Record<string, Record<string, number>>;
      journal: { entries: number; lastRekey: number; coveredByRekey: number };
    }>(await padlock(['kek', 'status', '-c', configFile]));
    assert.equal(status.rows['test-kek'], undefined, JSON.stringify(status.rows));
    assert.equal(status.journal.lastRekey, rekeyed.position);
    assert.equal(status.journal.entries, SHRED_EARLY + SHRED_DURING + 20 + 1);
  });

  it('retires the old KEK; a server with only the new one serves the same keys, and the audit log has each step', async () => {
    const retired = json<{ retired: string }>(await padlock(['kek', 'retire', 'test-kek', '-c', configFile]));
    assert.equal(retired.retired, 'test-kek');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { keks: typeof BOTH };
    assert.deepEqual(config.keks, { active: 'kek-2', files: [{ kid: 'kek-2', path: 'kek-2.bin' }] });
    await server.close();
    server = await h.peer({ config: { ...FILES, keks: config.keks } });
    for (const userId of sample) assert.deepEqual(await keysOf(server, userId), before_.get(userId), userId);
    // The server verified the whole journal at start with kek-2 alone; the CLI can too.
    const journal = json<{ verified: number; state: string }>(await padlock(['journal', 'status', '-c', configFile]));
    assert.equal(journal.verified, SHRED_EARLY + SHRED_DURING + 20 + 1);
    for (const userId of [...shredDuring.slice(0, 10), ...shredEarly]) {
      const got = await server.call('GET', `/v1/keys/${userId}`);
      assert.ok([404, 410].includes(got.status), `${userId}: ${got.status}`);
    }
    // The receipt signing key was re-wrapped: a shred under the new KEK alone gets a receipt that verifies.
    const shred = await server.call('DELETE', `/v1/keychains/${sample[0]!}`);
    assert.equal(shred.status, 200, shred.text);
    const receiptFile = join(h.dir, 'receipt.json');
    writeFileSync(receiptFile, shred.text);
    const jwks = await server.call('GET', '/v1/receipts/keys', { authorization: null });
    writeFileSync(join(h.dir, 'jwks.json'), jwks.text);
    json(await padlock(['receipt', 'verify', receiptFile, '--jwks', join(h.dir, 'jwks.json')]));
    await server.close();
    json(await padlock(['audit', 'verify', '-c', configFile]));
    const exported = await padlock(['audit', 'export', '-c', configFile]);
    assert.equal(exported.code, 0, exported.stderr);
    const kekEvents = exported.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          (JSON.parse((JSON.parse(line) as { body: string }).body) as { event: { type: string; kid?: string } }).event,
      )
      .filter((e) => e.type.startsWith('kek.'))
      .map((e) => `${e.type} ${e.kid}`);
    assert.deepEqual(kekEvents, [
      'kek.add kek-2',
      'kek.activate kek-2',
      'kek.rewrap kek-2',
      'kek.rekey-journal kek-2',
      'kek.retire test-kek',
    ]);
  });
});
