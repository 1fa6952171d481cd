import { kekRing, SecretBytes, wrapRootKey } from '@padlock/core';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sealSchedule } from './lifecycle-rows.js';
import { operatorLifecycle, Scheduler, type ScheduleOutcome } from './lifecycle.js';
import { createLogger } from './log.js';
import { Metrics } from './metrics.js';
import { SqliteKeyStore } from './store/sqlite.js';

/*
 * scheduler.maxPerSecond: executions are spaced 1000 / maxPerSecond ms apart
 * over all workers. Checked by count, not by a timing bound that a slow
 * machine could break: N executions under a cap of C per second cannot all
 * have started in less than (N - 1) / C seconds, however fast the machine (a
 * busy one only makes it slower). Without the cap, the same N run on SQLite
 * in a fraction of that.
 */

const CATEGORIES = ['profile', 'payments', 'advertising'];
const quiet = createLogger('error', () => undefined);
const keks = kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1');

describe('scheduler.maxPerSecond', () => {
  let dir: string;
  let store: SqliteKeyStore;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-pacing-'));
    store = new SqliteKeyStore({ path: join(dir, 'padlock.db'), busyTimeoutMs: 2000 });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function dueSchedules(n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const userId = `pace-${randomUUID()}`;
      await store.insertKeys(
        userId,
        CATEGORIES.map((category) => {
          const root = SecretBytes.random(32);
          const wrapped = wrapRootKey(keks.active, { userId, category, version: 1 }, root);
          root.wipe();
          return { category, version: 1, wrapped, createdAt: Date.now() };
        }),
      );
      const schedule = sealSchedule(keks.active, {
        scheduleId: `sched-${randomUUID()}`,
        userId,
        category: null,
        executeAt: Date.now() - 1000,
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
      ids.push(schedule.scheduleId);
    }
    return ids;
  }

  async function scheduler(maxPerSecond: number, outcomes: ScheduleOutcome[]): Promise<Scheduler> {
    const { keys, lifecycle } = await operatorLifecycle(store, keks, CATEGORIES, quiet);
    return new Scheduler(store, lifecycle, keys, new Metrics(), quiet, {
      intervalMs: 50,
      leaseMs: 30_000,
      batch: 1000,
      concurrency: 4,
      maxPerSecond,
      nodeId: `pace-${maxPerSecond}`,
      onOutcome: (o) => outcomes.push(o),
    });
  }

  it('spaces executions so that N of them under a cap of C take at least (N - 1) / C seconds', async () => {
    const cap = 25;
    const n = 30;
    const ids = await dueSchedules(n);
    const outcomes: ScheduleOutcome[] = [];
    const started = performance.now();
    const executed = await (await scheduler(cap, outcomes)).pass();
    const elapsedS = (performance.now() - started) / 1000;
    assert.equal(executed, n);
    assert.equal(outcomes.filter((o) => o.outcome === 'executed').length, n, 'each outcome reported');
    for (const id of ids) assert.equal((await store.getSchedule(id))?.state, 'executed');
    // The rate measured: executions over the time they took. Slots are (N - 1) gaps of 1 / C apart.
    const rate = (n - 1) / elapsedS;
    assert.ok(rate <= cap * 1.02, `${rate.toFixed(1)}/s executed under a cap of ${cap}/s (${elapsedS.toFixed(2)} s)`);
  });

  it('no cap (0): the same work is not spaced out', async () => {
    const n = 30;
    await dueSchedules(n);
    const outcomes: ScheduleOutcome[] = [];
    const executed = await (await scheduler(0, outcomes)).pass();
    assert.equal(executed, n);
    assert.equal(outcomes.length, n);
  });

  it('stop() wakes workers waiting for their slot: the pass ends without running the rest', async () => {
    const ids = await dueSchedules(10);
    const outcomes: ScheduleOutcome[] = [];
    const s = await scheduler(1, outcomes); // one a second: ten would take nine seconds
    const pass = s.pass();
    await new Promise((r) => setTimeout(r, 300));
    await s.stop();
    const executed = await pass;
    assert.ok(executed >= 1 && executed < 10, `${executed} executed`);
    const states = await Promise.all(ids.map((id) => store.getSchedule(id)));
    assert.equal(states.filter((r) => r?.state === 'executed').length, executed);
    assert.equal(states.filter((r) => r?.state === 'pending' && r.claimedBy === null).length, 10 - executed);
  });
});
