import { SecretBytes, wrapRootKey } from '@padlock/core';
import { loadConfig, loadKeks, sealSchedule, SqliteKeyStore, type ScheduleRecord } from '@padlock/server';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/*
 * The scheduler in a process of its own (scheduler.ownProcess: true, set here, in
 * `padlock serve`), beside a standalone `padlock scheduler`, on one SQLite
 * store: every due schedule executed exactly once, none by the serving process
 * itself, each execution of the server's own scheduler counted in its metrics
 * and dropped from its cache at once, and the scheduler gone with its server.
 */

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const CATEGORIES = ['profile', 'payments', 'advertising'];
const USERS = 40;

interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Every JSON log line so far. */
  readonly lines: () => Record<string, unknown>[];
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function start(args: readonly string[]): Started {
  const env = { ...process.env };
  delete env['PADLOCK_CONFIG'];
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.resume();
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const lines = (): Record<string, unknown>[] =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    exited,
    lines,
    async waitFor(msg, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = lines().find((l) => l['msg'] === msg);
        if (found !== undefined) return found;
        if (Date.now() > until || child.exitCode !== null) throw new Error(`no "${msg}" in: ${stdout.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('the scheduler in its own process', () => {
  let dir: string;
  let configFile: string;
  let credential: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-sched-'));
    const init = spawnSync(process.execPath, [MAIN, 'init', '--dir', dir, '--port', '0'], { encoding: 'utf8' });
    assert.equal(init.status, 0, init.stderr);
    configFile = join(dir, 'padlock.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    // A long staleness bound: a shredded keychain answered 410 at once can only be the scheduler's word.
    config['maxStalenessSeconds'] = 600;
    config['scheduler'] = { intervalMs: 100, batch: 10, concurrency: 2, ownProcess: true };
    config['log'] = { level: 'info', requests: false };
    writeFileSync(configFile, JSON.stringify(config));
    const created = spawnSync(
      process.execPath,
      [MAIN, 'service', 'create', 'reader', '--read', CATEGORIES.join(','), '-c', configFile],
      { encoding: 'utf8' },
    );
    assert.equal(created.status, 0, created.stderr);
    credential = (JSON.parse(created.stdout) as { credential: string }).credential;
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serve and a standalone scheduler execute each due schedule exactly once, none on the serving loop', async () => {
    const config = loadConfig(configFile);
    const keks = loadKeks(config);
    const store = new SqliteKeyStore({ path: config.store.sqlite.path, busyTimeoutMs: 5000 });
    const users: string[] = [];
    for (let i = 0; i < USERS; i++) {
      const userId = `sched-${i}-${randomUUID().slice(0, 8)}`;
      await store.insertKeys(
        userId,
        CATEGORIES.map((category) => {
          const root = SecretBytes.random(32);
          const wrapped = wrapRootKey(keks.active, { userId, category, version: 1 }, root);
          root.wipe();
          return { category, version: 1, wrapped, createdAt: Date.now() };
        }),
      );
      users.push(userId);
    }

    const server = start(['serve', '-c', configFile]);
    const standalone = start(['scheduler', '-c', configFile]);
    try {
      const listening = await server.waitFor('padlock listening');
      assert.equal(listening['scheduler'], 'own process');
      const port = listening['port'] as number;
      const childLine = await server.waitFor('padlock scheduler running');
      const childPid = childLine['pid'] as number;
      assert.notEqual(childPid, server.child.pid, 'the server scheduler is another process');
      await standalone.waitFor('padlock scheduler running');
      const get = async (userId: string): Promise<number> =>
        (
          await fetch(`http://127.0.0.1:${port}/v1/keys/${userId}`, {
            headers: { authorization: `Bearer ${credential}` },
          })
        ).status;
      for (const userId of users) assert.equal(await get(userId), 200, 'served (and cached) before it is due');
      // Due at once, written while both schedulers run (as a schedule made through another server would be).
      const schedules: ScheduleRecord[] = [];
      for (const userId of users) {
        const schedule = sealSchedule(keks.active, {
          scheduleId: `sched-${randomUUID()}`,
          userId,
          category: null,
          executeAt: Date.now(),
          serveDuringGrace: true,
          requestedBy: 'test',
          createdAt: Date.now(),
          state: 'pending',
          finishedAt: null,
          finishedBy: null,
          claimedBy: null,
          leaseUntil: null,
        });
        assert.equal(await store.insertSchedule(schedule), true);
        schedules.push(schedule);
      }

      // Each keychain was cached for 600 s. One the server's scheduler process executed is refused the
      // moment its schedule reads executed: the child has the server drop it before it finishes the schedule.
      const seen = new Set<string>();
      let checkedAtOnce = 0;
      await until(
        'every schedule executed',
        async () => {
          const rows = await Promise.all(schedules.map((s) => store.getSchedule(s.scheduleId)));
          for (const row of rows) {
            if (row?.state !== 'executed' || seen.has(row.scheduleId)) continue;
            seen.add(row.scheduleId);
            if (Number(row.finishedBy!.split(':')[1]) !== childPid) continue;
            assert.equal(await get(row.userId), 410, `${row.userId}: served after its schedule was executed`);
            checkedAtOnce++;
          }
          return seen.size === schedules.length;
        },
        90_000,
        10,
      ); // a bound, not a measurement: the machine may be shared
      assert.ok(checkedAtOnce > 0, 'some executions of the server scheduler were checked as they landed');
      const finishedBy = new Map<string, string>();
      for (const s of schedules) {
        const row = (await store.getSchedule(s.scheduleId))!;
        finishedBy.set(s.scheduleId, row.finishedBy!);
        const pid = Number(row.finishedBy!.split(':')[1]);
        assert.ok(pid === childPid || pid === standalone.child.pid, `finished by ${row.finishedBy}`);
        assert.notEqual(pid, server.child.pid, 'never on the serving process');
        // Exactly once: one receipt, naming this schedule; all keys gone.
        const receipts = await store.listReceipts(s.userId);
        assert.equal(receipts.length, 1, s.userId);
        const claims = JSON.parse(Buffer.from(receipts[0]!.jws.split('.')[1]!, 'base64url').toString('utf8')) as {
          scheduleId: string;
        };
        assert.equal(claims.scheduleId, s.scheduleId);
        const rows = await store.getKeychain(s.userId);
        assert.ok(rows.every((r) => r.wrapped === null));
      }
      const byChild = schedules.filter((s) => Number(finishedBy.get(s.scheduleId)!.split(':')[1]) === childPid);
      assert.ok(byChild.length > 0, 'the server scheduler won some of the claims');
      // The server counts what its scheduler process reports, one by one.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const executedLine = metrics
        .split('\n')
        .find((l) => l.startsWith('padlock_schedules_executed_total{') && l.includes('outcome="executed"'));
      const counted = executedLine === undefined ? 0 : Number(executedLine.split(/\s+/).at(-1));
      assert.equal(counted, byChild.length, 'the server counts its scheduler process’s executions');
      // And still refused after (the outcome report drops them again).
      for (const s of byChild) assert.equal(await get(s.userId), 410, s.userId);

      // Both schedulers still run (nothing ends them but a signal or, for the server's, its server going).
      assert.equal(standalone.child.exitCode, null, 'the standalone scheduler is still running');
      assert.ok(alive(childPid), 'the server scheduler is still running');
      assert.equal(
        server.lines().filter((l) => l['msg'] === 'padlock scheduler running').length,
        1,
        'the server scheduler never had to be restarted',
      );
      // Its scheduler goes with the server: SIGTERM both, then kill -9 a new one and its child follows.
      const termAt = Date.now();
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      // The child stopped by itself on the signal, not killed by its server 30 s later (it used to be: the
      // IPC 'disconnect' listener kept it alive), and not by noticing its server gone.
      const msgs = server.lines().map((l) => l['msg']);
      assert.ok(msgs.includes('scheduler stopping'), 'the scheduler process was told to stop');
      assert.ok(!msgs.includes('the scheduler process did not stop in time; killing it'), 'it stopped in time');
      assert.ok(!msgs.includes('the server is gone; the scheduler exits'), 'it stopped before its server');
      assert.ok(Date.now() - termAt < 15_000, `SIGTERM to exit took ${Date.now() - termAt} ms`);
      await until('the server scheduler to exit', () => !alive(childPid), 5000);
      const again = start(['serve', '-c', configFile]);
      try {
        const againChild = (await again.waitFor('padlock scheduler running'))['pid'] as number;
        again.child.kill('SIGKILL');
        await again.exited;
        await until('the orphaned scheduler to exit', () => !alive(againChild), 5000);
      } finally {
        again.child.kill('SIGKILL');
      }
    } finally {
      server.child.kill('SIGTERM');
      standalone.child.kill('SIGTERM');
      await Promise.all([server.exited, standalone.exited]);
      await store.close();
    }
    assert.equal(await standalone.exited, 0);
  });

  it('a scheduler whose server is killed with -9 while it starts exits too', async () => {
    // The child appears in /proc as soon as it is forked; the server is killed at several points of its
    // start-up (loading modules, opening the store, starting the scheduler), each time a new server.
    for (const afterMs of [0, 40, 120, 300]) {
      const server = start(['serve', '-c', configFile]);
      const serverPid = server.child.pid!;
      let childPid: number | undefined;
      try {
        await until(
          'the scheduler process to be forked',
          () => {
            const children = readFileSync(`/proc/${serverPid}/task/${serverPid}/children`, 'utf8').trim();
            childPid = children === '' ? undefined : Number(children.split(/\s+/)[0]);
            return childPid !== undefined;
          },
          20_000,
          5,
        );
        if (afterMs > 0) await new Promise((r) => setTimeout(r, afterMs));
        server.child.kill('SIGKILL');
        // 'exit', not 'close': the scheduler shares the server's stdout, so the pipe closes only when it is gone too.
        if (server.child.exitCode === null && server.child.signalCode === null) await once(server.child, 'exit');
        await until(`the scheduler orphaned ${afterMs} ms into its start to exit`, () => !alive(childPid!), 10_000);
      } finally {
        server.child.kill('SIGKILL');
        if (childPid !== undefined && alive(childPid)) process.kill(childPid, 'SIGKILL');
      }
    }
  });
});
