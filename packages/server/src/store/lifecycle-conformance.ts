/*
 * Holds and scheduled shreds, for every KeyStore backend (run from
 * conformance.ts): the store's conditional writes, and the lifecycle built on
 * them, with two independent connections racing as two Padlock nodes would.
 */
import { kekRing, PadlockError, SecretBytes, wrapRootKey, type KekRing } from '@padlock/core';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, it } from 'node:test';
import { sealHold, sealSchedule } from '../lifecycle-rows.js';
import { operatorLifecycle, refreshWithheld, Scheduler, type Lifecycle, type LifecycleEvent } from '../lifecycle.js';
import { createLogger } from '../log.js';
import type { KeyService } from '../keys.js';
import { Metrics } from '../metrics.js';
import type { KeyStore, ScheduleClaim, ScheduleRecord } from './types.js';

const CATEGORIES = ['profile', 'payments', 'advertising'];
const NO_CLAIM: ScheduleClaim = { claimedBy: null, leaseUntil: null };
const quiet = createLogger('error', () => undefined);

interface Target {
  readonly store: KeyStore;
  openPeer(): Promise<KeyStore>;
  tamper(
    edit:
      | { table: 'holds'; userId: string; holdId: string; releasedAt: number }
      | { table: 'schedules'; scheduleId: string; executeAt: number },
  ): Promise<void>;
  /** The schedule ids in the store's own index of withholding schedules, for a store that keeps one. */
  readonly withholdingIndex?: () => Promise<string[]>;
}

/** One Padlock node's view: its own store connection, KeyService and Lifecycle, the KEK shared. */
interface Node {
  readonly store: KeyStore;
  readonly keys: KeyService;
  readonly lifecycle: Lifecycle;
  scheduler(nodeId: string): Scheduler;
}

/** Every lifecycle event either node appended, in order (the audit log's place in these tests). */
const appended: { actor: string; event: LifecycleEvent }[] = [];
const recorder = {
  append(actor: string, event: LifecycleEvent): Promise<void> {
    appended.push({ actor, event });
    return Promise.resolve();
  },
};

function eventsOf(scheduleOrHoldId: string): string[] {
  return appended
    .filter(({ event }) => ('scheduleId' in event ? event.scheduleId : event.holdId) === scheduleOrHoldId)
    .map(({ actor, event }) => `${event.type} by ${actor}`);
}

async function node(store: KeyStore, keks: KekRing): Promise<Node> {
  const { keys, lifecycle } = await operatorLifecycle(store, keks, CATEGORIES, quiet, recorder);
  return {
    store,
    keys,
    lifecycle,
    scheduler: (nodeId) =>
      new Scheduler(store, lifecycle, keys, new Metrics(), quiet, {
        intervalMs: 50,
        leaseMs: 5000,
        batch: 1000,
        concurrency: 8,
        nodeId,
      }),
  };
}

async function newUser(store: KeyStore, keks: KekRing): Promise<string> {
  const userId = `life-${randomUUID()}`;
  await store.insertKeys(
    userId,
    CATEGORIES.map((category) => {
      const rootKey = SecretBytes.random(32);
      const wrapped = wrapRootKey(keks.active, { userId, category, version: 1 }, rootKey);
      rootKey.wipe();
      return { category, version: 1, wrapped, createdAt: Date.now() };
    }),
  );
  return userId;
}

async function liveCategories(store: KeyStore, userId: string): Promise<string[]> {
  const rows = await store.getKeychain(userId, { fresh: true });
  return rows.filter((r) => r.wrapped !== null).map((r) => r.category);
}

async function rejectsWith(work: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(work, (error: unknown) => error instanceof PadlockError && error.code === code);
}

/** A sealed, pending, unclaimed schedule (not yet stored). */
export function pendingSchedule(
  keks: KekRing,
  userId: string,
  category: string | null,
  executeAt: number,
): ScheduleRecord {
  return sealSchedule(keks.active, {
    scheduleId: `sched-${randomUUID()}`,
    userId,
    category,
    executeAt,
    serveDuringGrace: true,
    requestedBy: 'conformance',
    createdAt: Date.now(),
    state: 'pending',
    finishedAt: null,
    finishedBy: null,
    claimedBy: null,
    leaseUntil: null,
  });
}

export function lifecycleConformance(target: () => Target): void {
  const keks = kekRing([{ kid: 'conf-kek', key: SecretBytes.random(32) }], 'conf-kek');
  let a: Node;
  let b: Node;
  before(async () => {
    a = await node(target().store, keks);
    b = await node(await target().openPeer(), keks);
  });

  it('stores a hold, lists it, and releases it once', async () => {
    const user = await newUser(a.store, keks);
    const hold = await a.lifecycle.placeHold(user, 'payments', 'case 2026-114', 'legal-svc');
    const listed = await b.store.listHolds(user);
    assert.deepEqual(
      listed.map((h) => [h.holdId, h.category, h.reason, h.placedBy, h.releasedAt]),
      [[hold.holdId, 'payments', 'case 2026-114', 'legal-svc', null]],
    );
    assert.ok(Buffer.from(listed[0]!.mac!).equals(Buffer.from(hold.mac!)));
    const released = await b.lifecycle.releaseHold(user, hold.holdId, 'legal-svc');
    assert.equal(typeof released.releasedAt, 'number');
    await rejectsWith(a.lifecycle.releaseHold(user, hold.holdId, 'legal-svc'), 'HOLD_NOT_FOUND');
    const raw = { releasedAt: Date.now(), releasedBy: 'x', mac: released.mac! };
    assert.equal(await a.store.releaseHold(user, hold.holdId, raw), false, 'a second release is not applied');
    assert.equal(await a.store.insertHold(hold), false, 'a hold id is inserted once');
    assert.deepEqual(eventsOf(hold.holdId), ['hold.place by legal-svc', 'hold.release by legal-svc']);
  });

  it('a hold on the keychain or on a category blocks every shred it covers, from either node, until released', async () => {
    const user = await newUser(a.store, keks);
    const onPayments = await a.lifecycle.placeHold(user, 'payments', 'regulator inquiry', 'legal-svc');
    // Seen by the other node at once: the check reads at the store's strongest consistency.
    await rejectsWith(b.keys.shred(user, 'payments', { requestedBy: 'svc' }), 'LEGAL_HOLD');
    await rejectsWith(b.keys.shred(user, undefined, { requestedBy: 'svc' }), 'LEGAL_HOLD');
    assert.deepEqual((await b.keys.shred(user, 'advertising', { requestedBy: 'svc' })).shredded, 1);
    const onKeychain = await b.lifecycle.placeHold(user, undefined, 'litigation hold', 'legal-svc');
    await rejectsWith(a.keys.shred(user, 'profile', { requestedBy: 'svc' }), 'LEGAL_HOLD');
    assert.deepEqual((await liveCategories(a.store, user)).sort(), ['payments', 'profile']);
    await a.lifecycle.releaseHold(user, onKeychain.holdId, 'legal-svc');
    assert.equal((await a.keys.shred(user, 'profile', { requestedBy: 'svc' })).shredded, 1);
    await rejectsWith(a.keys.shred(user, 'payments', { requestedBy: 'svc' }), 'LEGAL_HOLD');
    await b.lifecycle.releaseHold(user, onPayments.holdId, 'legal-svc');
    assert.equal((await a.keys.shred(user, undefined, { requestedBy: 'svc' })).shredded, 1);
    assert.deepEqual(await liveCategories(a.store, user), []);
  });

  it('lists due schedules only, and a user its schedules', async () => {
    const user = await newUser(a.store, keks);
    const due = pendingSchedule(keks, user, null, Date.now() - 1000);
    const later = pendingSchedule(keks, user, 'profile', Date.now() + 3_600_000);
    assert.equal(await a.store.insertSchedule(due), true);
    assert.equal(await a.store.insertSchedule(later), true);
    assert.equal(await a.store.insertSchedule(due), false);
    const dueIds = (await b.store.dueSchedules(Date.now(), 100_000)).map((s) => s.scheduleId);
    assert.ok(dueIds.includes(due.scheduleId));
    assert.ok(!dueIds.includes(later.scheduleId));
    const mine = await b.store.listSchedules(user);
    assert.deepEqual(mine.map((s) => s.scheduleId).sort(), [due.scheduleId, later.scheduleId].sort());
    const read = await b.store.getSchedule(later.scheduleId);
    assert.deepEqual({ ...read, mac: null }, { ...later, mac: null });
    // Leave nothing due behind for the racing cases below.
    assert.equal(await a.lifecycle.cancel(user, due.scheduleId, 'conformance').then((s) => s.state), 'cancelled');
  });

  it('two racers claiming one schedule: exactly one wins, every time', async () => {
    for (let i = 0; i < 20; i++) {
      const user = await newUser(a.store, keks);
      const s = pendingSchedule(keks, user, null, Date.now());
      await a.store.insertSchedule(s);
      const results = await Promise.all([
        a.store.claimSchedule(s.scheduleId, NO_CLAIM, { claimedBy: 'node-a', leaseUntil: Date.now() + 5000 }),
        b.store.claimSchedule(s.scheduleId, NO_CLAIM, { claimedBy: 'node-b', leaseUntil: Date.now() + 5000 }),
      ]);
      assert.equal(results.filter(Boolean).length, 1, `round ${i}: ${String(results)}`);
      const winner = results[0] ? 'node-a' : 'node-b';
      assert.equal((await a.store.getSchedule(s.scheduleId))?.claimedBy, winner);
      // Clean up: the winner finishes it (cancel is refused on a claimed schedule).
      await rejectsWith(a.lifecycle.cancel(user, s.scheduleId, 'x'), 'SCHEDULE_NOT_PENDING');
    }
  });

  it('two schedulers racing over the same due schedules execute each exactly once', async () => {
    const schedules: ScheduleRecord[] = [];
    for (let i = 0; i < 30; i++) {
      const user = await newUser(a.store, keks);
      const s = await (i % 2 === 0 ? a : b).lifecycle.schedule({
        userId: user,
        category: i % 3 === 0 ? 'advertising' : undefined,
        executeAt: Date.now() - 10,
        serveDuringGrace: true,
        requestedBy: 'conformance',
      });
      schedules.push(s);
    }
    const [ranA, ranB] = await Promise.all([a.scheduler('node-a').pass(), b.scheduler('node-b').pass()]);
    // A pass also meets older due schedules still claimed by the race above: count only ours.
    for (const s of schedules) {
      const after = await a.store.getSchedule(s.scheduleId);
      assert.equal(after?.state, 'executed', s.scheduleId);
      assert.ok(after?.finishedBy === 'node-a' || after?.finishedBy === 'node-b');
      const live = await liveCategories(a.store, s.userId);
      assert.deepEqual(live.sort(), s.category === null ? [] : ['payments', 'profile']);
    }
    assert.ok(ranA + ranB >= schedules.length, `${ranA} + ${ranB}`);
    const byA = (await Promise.all(schedules.map((s) => a.store.getSchedule(s.scheduleId)))).filter(
      (s) => s?.finishedBy === 'node-a',
    ).length;
    assert.ok(byA <= ranA && schedules.length - byA <= ranB, 'each executed schedule is counted by its node only');
    for (const s of schedules) {
      const finishedBy = (await a.store.getSchedule(s.scheduleId))?.finishedBy;
      assert.deepEqual(eventsOf(s.scheduleId), [
        `schedule.create by conformance`,
        `schedule.execute by ${String(finishedBy)}`,
      ]);
    }
  });

  it('cancel racing execution: one wins whole, the other loses cleanly', async () => {
    let cancelled = 0;
    let executed = 0;
    for (let i = 0; i < 20; i++) {
      const user = await newUser(a.store, keks);
      const s = await a.lifecycle.schedule({
        userId: user,
        executeAt: Date.now() - 1,
        serveDuringGrace: true,
        requestedBy: 'conformance',
      });
      const [cancel, run] = await Promise.allSettled([
        b.lifecycle.cancel(user, s.scheduleId, 'user-changed-mind'),
        a.lifecycle.execute(s, 'node-a', 5000),
      ]);
      const final = await a.store.getSchedule(s.scheduleId);
      const live = await liveCategories(a.store, user);
      if (cancel.status === 'fulfilled') {
        cancelled++;
        assert.equal(final?.state, 'cancelled');
        assert.equal(run.status === 'fulfilled' && run.value, 'taken');
        assert.equal(live.length, 3, 'a cancel that won leaves every key');
        assert.deepEqual(eventsOf(s.scheduleId), [
          'schedule.create by conformance',
          'schedule.cancel by user-changed-mind',
        ]);
      } else {
        executed++;
        assert.ok(cancel.reason instanceof PadlockError && cancel.reason.code === 'SCHEDULE_NOT_PENDING');
        assert.equal(final?.state, 'executed');
        assert.deepEqual(live, [], 'a cancel that lost leaves nothing half done');
        assert.deepEqual(eventsOf(s.scheduleId), ['schedule.create by conformance', 'schedule.execute by node-a']);
      }
    }
    assert.equal(cancelled + executed, 20);
  });

  it('a schedule due under a hold waits, and runs after the release', async () => {
    const user = await newUser(a.store, keks);
    const hold = await a.lifecycle.placeHold(user, 'profile', 'audit', 'legal-svc');
    const s = await a.lifecycle.schedule({
      userId: user,
      executeAt: Date.now() - 1,
      serveDuringGrace: true,
      requestedBy: 'conformance',
    });
    assert.equal(await b.lifecycle.execute(s, 'node-b', 5000), 'held');
    assert.equal(
      await a
        .scheduler('node-a')
        .pass()
        .then(() => a.store.getSchedule(s.scheduleId))
        .then((x) => x?.state),
      'pending',
    );
    assert.equal((await liveCategories(a.store, user)).length, 3);
    await b.lifecycle.releaseHold(user, hold.holdId, 'legal-svc');
    await b.scheduler('node-b').pass();
    assert.equal((await a.store.getSchedule(s.scheduleId))?.state, 'executed');
    assert.deepEqual(await liveCategories(a.store, user), []);
  });

  it('an expired claim (a node killed mid-execution) is taken over and completed once', async () => {
    const user = await newUser(a.store, keks);
    const s = await a.lifecycle.schedule({
      userId: user,
      executeAt: Date.now() - 1,
      serveDuringGrace: true,
      requestedBy: 'conformance',
    });
    // Node a claims and shreds, then "dies" before finishing: its claim stays, then expires.
    const deadClaim = { claimedBy: 'node-dead', leaseUntil: Date.now() + 300 };
    assert.equal(await a.store.claimSchedule(s.scheduleId, NO_CLAIM, deadClaim), true);
    await a.keys.shred(user, undefined, { requestedBy: 'conformance', scheduleId: s.scheduleId });
    const claimed = (await b.store.getSchedule(s.scheduleId))!;
    assert.equal(await b.lifecycle.execute(claimed, 'node-b', 5000), 'taken', 'a live claim is left alone');
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal(await b.lifecycle.execute(claimed, 'node-b', 5000), 'executed');
    const final = await a.store.getSchedule(s.scheduleId);
    assert.equal(final?.state, 'executed');
    assert.equal(final?.finishedBy, 'node-b');
    assert.deepEqual(eventsOf(s.scheduleId), ['schedule.create by conformance', 'schedule.execute by node-b']);
    assert.equal(
      await a.store.finishSchedule(s.scheduleId, deadClaim, {
        state: 'executed',
        finishedAt: 1,
        finishedBy: 'node-dead',
        mac: final.mac!,
      }),
      false,
    );
  });

  it('withholds keys only for pending schedules that asked to', async () => {
    const user = await newUser(a.store, keks);
    const s = await a.lifecycle.schedule({
      userId: user,
      category: 'advertising',
      executeAt: Date.now() + 3_600_000,
      serveDuringGrace: false,
      requestedBy: 'conformance',
    });
    const withholding = await b.store.withholdingSchedules();
    assert.ok(withholding.some((w) => w.scheduleId === s.scheduleId));
    await b.scheduler('node-b').pass();
    assert.equal(b.keys.isWithheld(user, ['advertising']), true);
    assert.equal(b.keys.isWithheld(user, ['profile']), false);
    await a.lifecycle.cancel(user, s.scheduleId, 'conformance');
    await b.scheduler('node-b').pass();
    assert.equal(b.keys.isWithheld(user, ['advertising']), false);
  });

  // The withholding index (Cassandra: schedules_withholding, one partition read by every pass; SQLite: a
  // query over the schedules table). Node c below is a third node that never made a schedule itself: what
  // it withholds comes from the store alone, as on a server whose scheduler runs in another process.
  it('withholding: listed from any connection while pending, consulted by a node that did not make it, dropped on cancel', async () => {
    const c = await node(await target().openPeer(), keks);
    const user = await newUser(a.store, keks);
    const served = await newUser(a.store, keks);
    const withheld = await a.lifecycle.schedule({
      userId: user,
      executeAt: Date.now() + 3_600_000,
      serveDuringGrace: false,
      requestedBy: 'conformance',
    });
    const notWithheld = await a.lifecycle.schedule({
      userId: served,
      executeAt: Date.now() + 3_600_000,
      serveDuringGrace: true,
      requestedBy: 'conformance',
    });
    const index = target().withholdingIndex;
    if (index !== undefined) {
      const ids = await index();
      assert.ok(ids.includes(withheld.scheduleId), 'the withholding schedule is in the index');
      assert.ok(!ids.includes(notWithheld.scheduleId), 'a schedule that serves during grace is not');
    }
    const listed = (await c.store.withholdingSchedules()).map((s) => s.scheduleId);
    assert.ok(listed.includes(withheld.scheduleId));
    assert.ok(!listed.includes(notWithheld.scheduleId));
    assert.equal(c.keys.isWithheld(user, CATEGORIES), false, 'nothing read yet');
    await refreshWithheld(c.store, keks, c.keys, new Metrics());
    for (const category of CATEGORIES) assert.equal(c.keys.isWithheld(user, [category]), true, category);
    assert.equal(c.keys.isWithheld(served, CATEGORIES), false);

    await b.lifecycle.cancel(user, withheld.scheduleId, 'conformance');
    assert.ok(!(await c.store.withholdingSchedules()).some((s) => s.scheduleId === withheld.scheduleId));
    if (index !== undefined) assert.ok(!(await index()).includes(withheld.scheduleId), 'dropped from the index');
    await refreshWithheld(c.store, keks, c.keys, new Metrics());
    assert.equal(c.keys.isWithheld(user, CATEGORIES), false, 'served again after the cancel');
    await a.lifecycle.cancel(served, notWithheld.scheduleId, 'conformance');
  });

  it('withholding: a category withheld until its schedule executes, then dropped from the index', async () => {
    const c = await node(await target().openPeer(), keks);
    const user = await newUser(a.store, keks);
    const s = await a.lifecycle.schedule({
      userId: user,
      category: 'payments',
      executeAt: Date.now() + 400,
      serveDuringGrace: false,
      requestedBy: 'conformance',
    });
    await refreshWithheld(c.store, keks, c.keys, new Metrics());
    assert.equal(c.keys.isWithheld(user, ['payments']), true);
    assert.equal(c.keys.isWithheld(user, ['profile', 'advertising']), false, 'only the scheduled category');
    await new Promise((resolve) => setTimeout(resolve, 500));
    // b executes it; c learns from the store alone.
    const due = (await b.store.getSchedule(s.scheduleId))!;
    assert.equal(await b.lifecycle.execute(due, 'node-b', 5000), 'executed');
    assert.deepEqual((await liveCategories(a.store, user)).sort(), ['advertising', 'profile']);
    assert.ok(!(await c.store.withholdingSchedules()).some((w) => w.scheduleId === s.scheduleId));
    const index = target().withholdingIndex;
    if (index !== undefined) assert.ok(!(await index()).includes(s.scheduleId), 'dropped from the index');
    await refreshWithheld(c.store, keks, c.keys, new Metrics());
    assert.equal(c.keys.isWithheld(user, ['payments']), false);
  });

  it('an edited hold or schedule row is refused: the hold still blocks, the schedule never runs', async () => {
    const user = await newUser(a.store, keks);
    const hold = await a.lifecycle.placeHold(user, undefined, 'litigation', 'legal-svc');
    // Someone with database access but no KEK "releases" the hold by setting released_at.
    await target().tamper({ table: 'holds', userId: user, holdId: hold.holdId, releasedAt: Date.now() });
    await rejectsWith(b.keys.shred(user, undefined, { requestedBy: 'svc' }), 'ROW_INTEGRITY');
    await rejectsWith(b.lifecycle.releaseHold(user, hold.holdId, 'legal-svc'), 'ROW_INTEGRITY');
    assert.equal((await b.lifecycle.status(user)).holds[0]?.verified, false);
    assert.equal((await liveCategories(a.store, user)).length, 3);

    const other = await newUser(a.store, keks);
    const later = await a.lifecycle.schedule({
      userId: other,
      executeAt: Date.now() + 3_600_000,
      serveDuringGrace: true,
      requestedBy: 'conformance',
    });
    // ... or brings a schedule's time forward.
    await target().tamper({ table: 'schedules', scheduleId: later.scheduleId, executeAt: Date.now() - 1000 });
    const edited = (await b.store.getSchedule(later.scheduleId))!;
    assert.equal(await b.lifecycle.execute(edited, 'node-b', 5000), 'refused');
    await b.scheduler('node-b').pass();
    assert.equal((await a.store.getSchedule(later.scheduleId))?.state, 'pending');
    assert.equal((await liveCategories(a.store, other)).length, 3);
    await rejectsWith(b.lifecycle.cancel(other, later.scheduleId, 'x'), 'ROW_INTEGRITY');
    await rejectsWith(b.lifecycle.getSchedule(other, later.scheduleId), 'ROW_INTEGRITY');
    // A hold forged whole (no KEK) is refused too, and blocks (the safe direction).
    const third = await newUser(a.store, keks);
    const forged = sealHold(
      { kid: 'conf-kek', key: SecretBytes.random(32) },
      {
        holdId: `hold-${randomUUID()}`,
        userId: third,
        category: null,
        reason: 'forged',
        placedBy: 'attacker',
        placedAt: Date.now(),
        releasedAt: null,
        releasedBy: null,
      },
    );
    await a.store.insertHold(forged);
    await rejectsWith(a.keys.shred(third, 'profile', { requestedBy: 'svc' }), 'ROW_INTEGRITY');
  });

  // Last: it moves the due cursor (Cassandra's schedules_due_from) hours ahead of the real clock.
  it('finds due schedules by due time however far the clock moves, until they finish, from any connection', async () => {
    const peer = await target().openPeer(); // closed with the other peers
    const user = await newUser(a.store, keks);
    const t = Date.now();
    const hour = 3_600_000;
    const past = pendingSchedule(keks, user, 'profile', t - 2 * hour); // due two hours before it was made
    const soon = pendingSchedule(keks, user, 'payments', t + hour);
    const later = pendingSchedule(keks, user, 'advertising', t + 5 * hour);
    for (const s of [later, soon, past]) assert.equal(await a.store.insertSchedule(s), true);
    const mine = new Set([past, soon, later].map((s) => s.scheduleId));
    const due = async (store: KeyStore, now: number): Promise<string[]> =>
      (await store.dueSchedules(now, 100_000)).map((s) => s.scheduleId).filter((id) => mine.has(id));
    // A schedule due already is filed under its creation time, which can be a millisecond after t: a
    // pass at t could not see it yet (the clean-clone CI run failed so), a pass at the real clock always does.
    assert.deepEqual(await due(peer, Math.max(t, past.createdAt)), [past.scheduleId]);
    assert.deepEqual(await due(peer, t + hour), [past.scheduleId, soon.scheduleId], 'due at its time, in due order');
    // Still pending hours later (as under a hold): found in every pass, not left behind the cursor.
    assert.deepEqual(await due(peer, t + 3 * hour), [past.scheduleId, soon.scheduleId]);
    await a.lifecycle.cancel(user, soon.scheduleId, 'conformance');
    assert.deepEqual(await due(peer, t + 4 * hour), [past.scheduleId], 'a finished schedule is not due');
    assert.deepEqual(await due(peer, t + 6 * hour), [past.scheduleId, later.scheduleId]);
    // A new connection (a restarted server) starts from the stored cursor and finds the same.
    const restarted = await target().openPeer(); // closed with the other peers
    assert.deepEqual(await due(restarted, t + 6 * hour), [past.scheduleId, later.scheduleId]);
    for (const s of [past, later]) await a.lifecycle.cancel(user, s.scheduleId, 'conformance');
    assert.deepEqual(await due(restarted, t + 7 * hour), []);
  });
}
