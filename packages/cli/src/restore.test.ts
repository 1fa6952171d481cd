import { SqliteKeyStore, verifyReceipt, type JsonWebKeySet } from '@padlock/server';
import { assertError, servedKeys, startHarness, type Harness, type KeysBody } from '@padlock/server/testing';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/*
 * DESIGN.md section 11, end to end: back up, shred 1,000 users and one
 * category of 100 others, restore the backup; not one of those keys may be
 * served by any route (GET /v1/keys, batch-get, create), while the users
 * nobody shredded keep theirs (so the count can see a key). Then the same
 * with the replay killed (kill -9) half-way, by `padlock journal replay` and
 * by `padlock backup restore`.
 */

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const SHREDDED_USERS = 1000;
const CATEGORY_USERS = 100;
const KEPT_USERS = 20;
const BEFORE_BACKUP = 10;
/** Keys a kept user is served across the three routes counted: 3 categories, 3 routes. */
const KEPT_SERVED = KEPT_USERS * 3 * 3;
/** The store and the journal in directories of their own, as docs/operations.md advises. */
const FILES = {
  store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } },
  journal: { file: { path: 'journal/shreds.journal' }, checkIntervalMs: 200 },
};
const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI; with `killAt`, sends SIGKILL once stderr matches it. */
function padlock(args: readonly string[], killAt?: RegExp): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, PADLOCK_CONFIG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      if (killAt !== undefined && killAt.test(stderr)) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function json<T>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

describe('backup, shred, restore: no shredded key comes back', { timeout: 600_000 }, () => {
  let h: Harness;
  let configFile: string;
  let backupFile: string;
  const shredded = ids('gone', SHREDDED_USERS);
  const categoryShredded = ids('partly', CATEGORY_USERS);
  const kept = ids('kept', KEPT_USERS);
  const early = ids('early', BEFORE_BACKUP);
  /** user -> categories that must never be served again */
  const mustBeGone = new Map<string, readonly string[]>();
  /** The receipts the shreds answered with, as their users keep them. */
  const receipts: { userId: string; jws: string }[] = [];

  /** Every receipt still verifies against the JWKS the restored server publishes, and names its user. */
  async function receiptsVerify(target: Harness): Promise<void> {
    const jwks = (await target.call('GET', '/v1/receipts/keys', { authorization: null })).body as JsonWebKeySet;
    assert.equal(receipts.length, SHREDDED_USERS + CATEGORY_USERS);
    for (const { userId, jws } of receipts) assert.equal((await verifyReceipt(jws, jwks)).sub, userId);
  }

  /** `padlock audit verify` passes on the store as it is now. */
  async function auditVerifies(): Promise<void> {
    const report = await padlock(['audit', 'verify', '-c', configFile]);
    assert.equal(report.code, 0, `audit verify: ${report.stdout}${report.stderr}`);
  }

  before(async () => {
    h = await startHarness({ config: FILES });
    configFile = join(h.dir, 'padlock.json');
    writeFileSync(configFile, JSON.stringify(h.config), { mode: 0o600 });
    backupFile = join(h.dir, 'backup-1.db');
  });
  after(async () => {
    await h?.close();
  });

  /** Keys served for users/categories in mustBeGone, by any route; also checks kept users still get theirs. */
  async function countServed(target: Harness): Promise<{ gone: number; kept: number }> {
    let gone = 0;
    let keptKeys = 0;
    const count = (userId: string, body: KeysBody): void => {
      const served = servedKeys(body);
      const forbidden = mustBeGone.get(userId) ?? [];
      for (const [category, versions] of served) {
        if (forbidden.includes(category)) gone += versions.size;
        else if (kept.includes(userId)) keptKeys += versions.size;
      }
    };
    const users = [...mustBeGone.keys(), ...kept];
    await inParallel(users, 16, async (userId) => {
      const got = await target.call('GET', `/v1/keys/${userId}`);
      if (got.status === 200) count(userId, got.body as KeysBody);
      else assert.ok([404, 410].includes(got.status), `GET ${userId}: ${got.status} ${got.text}`);
      const created = await target.call('POST', '/v1/keychains', { json: { userId } });
      assert.ok([200, 201].includes(created.status), `create ${userId}: ${created.status} ${created.text}`);
      count(userId, created.body as KeysBody);
    });
    for (let start = 0; start < users.length; start += 500) {
      const batch = await target.call('POST', '/v1/keys/batch-get', {
        json: { userIds: users.slice(start, start + 500) },
      });
      assert.equal(batch.status, 200, batch.text);
      for (const result of (batch.body as { results: KeysBody[] }).results) count(result.userId, result);
    }
    return { gone, kept: keptKeys };
  }

  it('creates users, shreds a few, and backs up online (the backup records the journal position)', async () => {
    await inParallel([...shredded, ...categoryShredded, ...kept, ...early], 16, async (userId) => {
      const created = await h.call('POST', '/v1/keychains', { json: { userId } });
      assert.equal(created.status, 201, created.text);
    });
    for (const userId of early) {
      assert.equal((await h.call('DELETE', `/v1/keychains/${userId}`)).status, 200);
      mustBeGone.set(userId, ['profile', 'payments', 'advertising']);
    }
    const made = json<{ backup: string; journalPosition: number }>(
      await padlock(['backup', 'create', backupFile, '-c', configFile]),
    );
    assert.deepEqual(made.backup, backupFile);
    assert.equal(made.journalPosition, BEFORE_BACKUP);
    const again = await padlock(['backup', 'create', backupFile, '-c', configFile]);
    assert.equal(again.code, 2, 'an existing backup is never overwritten');
    assert.match(again.stderr, /must not exist/);
  });

  it('shreds 1,000 users and one category of 100 others after the backup', async () => {
    await inParallel(shredded, 16, async (userId) => {
      const shred = await h.call('DELETE', `/v1/keychains/${userId}`);
      assert.equal(shred.status, 200);
      receipts.push({ userId, jws: (shred.body as { receipt: { jws: string } }).receipt.jws });
      mustBeGone.set(userId, ['profile', 'payments', 'advertising']);
    });
    await inParallel(categoryShredded, 16, async (userId) => {
      const shred = await h.call('DELETE', `/v1/keychains/${userId}/categories/payments`);
      assert.equal(shred.status, 200);
      receipts.push({ userId, jws: (shred.body as { receipt: { jws: string } }).receipt.jws });
      mustBeGone.set(userId, ['payments']);
    });
    const served = await countServed(h);
    assert.equal(served.gone, 0);
    assert.equal(served.kept, KEPT_SERVED);
  });

  it("restore replays the journal from the backup's position: 0 shredded keys served, kept users keep theirs", async () => {
    await h.stop();
    const restored = json<{ backupPosition: number; journalPosition: number; replayed: number; shreddedAgain: number }>(
      await padlock(['backup', 'restore', backupFile, '-c', configFile]),
    );
    assert.equal(restored.backupPosition, BEFORE_BACKUP);
    assert.equal(restored.replayed, SHREDDED_USERS + CATEGORY_USERS);
    assert.equal(restored.journalPosition, BEFORE_BACKUP + SHREDDED_USERS + CATEGORY_USERS);
    // Every key shredded after the backup was back in the copied file, and was shredded again.
    assert.equal(restored.shreddedAgain, SHREDDED_USERS * 3 + CATEGORY_USERS);
    await h.start();
    const served = await countServed(h);
    assert.equal(served.gone, 0);
    assert.equal(served.kept, KEPT_SERVED);
    // The "receipts still verify, audit intact": the signing key came back with the backup.
    await receiptsVerify(h);
    await h.stop();
    await auditVerifies();
    await h.start();
  });

  it('a store copied back by hand, replay killed half-way: the server refuses keys (503) until a replay completes', async () => {
    await h.stop();
    const store = h.config.store.sqlite.path;
    for (const suffix of ['-wal', '-shm']) rmSync(`${store}${suffix}`, { force: true });
    copyFileSync(backupFile, store);
    const killed = await padlock(
      ['journal', 'replay', '-c', configFile, '--checkpoint-every', '50'],
      /"replay":\{"position":\d+/,
    );
    assert.equal(killed.signal, 'SIGKILL', `replay finished before it could be killed: ${killed.stdout}`);
    const head = BEFORE_BACKUP + SHREDDED_USERS + CATEGORY_USERS;
    const behind = new SqliteKeyStore({ path: store, busyTimeoutMs: 5000 });
    const applied = await behind.journalApplied();
    await behind.close();
    assert.ok(applied > BEFORE_BACKUP && applied < head, `killed mid-way: applied ${applied} of ${head}`);

    const manual = await h.peer({ config: { ...FILES, journal: { ...FILES.journal, replay: 'manual' } } });
    assertError(await manual.call('GET', `/v1/keys/${shredded.at(-1)!}`), 503, 'STORE_BEHIND_JOURNAL');
    assertError(await manual.call('GET', `/v1/keys/${kept[0]!}`), 503, 'STORE_BEHIND_JOURNAL');
    assertError(
      await manual.call('POST', '/v1/keys/batch-get', { json: { userIds: kept } }),
      503,
      'STORE_BEHIND_JOURNAL',
    );
    assertError(
      await manual.call('POST', '/v1/keychains', { json: { userId: kept[0]! } }),
      503,
      'STORE_BEHIND_JOURNAL',
    );
    const ready = await manual.call('GET', '/readyz', { authorization: null });
    assert.equal(ready.status, 503);
    assert.match(
      (ready.body as { checks: { journal: string } }).checks.journal,
      new RegExp(`behind: .*position ${applied} of ${head}`),
    );

    const status = json<{ state: string; head: number; storeApplied: number; verified: number }>(
      await padlock(['journal', 'status', '-c', configFile]),
    );
    assert.deepEqual(
      [status.state, status.head, status.storeApplied, status.verified],
      ['behind', head, applied, head],
    );
    const finished = json<{ from: number; to: number }>(await padlock(['journal', 'replay', '-c', configFile]));
    assert.deepEqual([finished.from, finished.to], [applied, head]);
    for (let waited = 0; (await manual.call('GET', '/readyz', { authorization: null })).status !== 200; waited += 50) {
      assert.ok(waited < 5000, 'the server did not notice the replay within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const served = await countServed(manual);
    assert.equal(served.gone, 0);
    assert.equal(served.kept, KEPT_SERVED);
    await manual.close();
  });

  it('backup restore killed half-way leaves the store as it was; run again, it completes', async () => {
    const killed = await padlock(
      ['backup', 'restore', backupFile, '-c', configFile, '--checkpoint-every', '50'],
      /"replay":\{"position":\d+/,
    );
    assert.equal(killed.signal, 'SIGKILL');
    const store = h.config.store.sqlite.path;
    assert.ok(existsSync(`${store}.restoring`), 'the half-replayed copy stays beside the store');
    const untouched = new SqliteKeyStore({ path: store, busyTimeoutMs: 5000 });
    assert.equal(await untouched.journalApplied(), BEFORE_BACKUP + SHREDDED_USERS + CATEGORY_USERS);
    await untouched.close();
    const done = json<{ replayed: number }>(await padlock(['backup', 'restore', backupFile, '-c', configFile]));
    assert.equal(done.replayed, SHREDDED_USERS + CATEGORY_USERS);
    assert.equal(existsSync(`${store}.restoring`), false);
    await auditVerifies();
    await h.start();
    const served = await countServed(h);
    assert.equal(served.gone, 0);
    assert.equal(served.kept, KEPT_SERVED);
    await receiptsVerify(h);
  });

  it('restore refuses while a server holds the journal, and refuses a file that is not a Padlock store', async () => {
    const busy = await padlock(['backup', 'restore', backupFile, '-c', configFile]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /held by process \d+ \(a running server\?\)/);
    const junk = join(h.dir, 'junk.db');
    writeFileSync(junk, 'not a database at all, just text that is long enough to look like a header');
    const refused = await padlock(['backup', 'restore', junk, '-c', configFile]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /not a readable SQLite database|cannot open backup/);
  });
});
