import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { metricValue, SlowStore, startHarness, type Harness } from './testing/harness.js';

/*
 * A schedule's finish that lands in the store but fails on the way back (a timed-out conditional
 * write on Cassandra: the client never hears it applied). The shred is done and the row says
 * executed; the scheduler must still append the schedule's one schedule.execute audit entry, or
 * every later pass sees the schedule over and skips it (found by DiRT schedules-node-group-kill).
 * Runs on SQLite, and on Cassandra with PADLOCK_TEST_BACKEND=cassandra.
 */

describe('a schedule finish that landed but timed out', () => {
  let h: Harness;
  let slow: SlowStore | undefined;
  before(async () => {
    h = await startHarness({
      config: { scheduler: { intervalMs: 100, leaseMs: 2000 } },
      wrapStore: (store) => (slow = new SlowStore(store)),
    });
  });
  after(async () => {
    await h.close();
  });

  async function executeEntries(scheduleId: string): Promise<number> {
    const store = h.padlock.store;
    let n = 0;
    for (const chain of await store.listAuditChains()) {
      for (const row of await store.readAuditChain(chain)) {
        const event = (JSON.parse(row.body) as { event?: { type?: string; scheduleId?: string } }).event;
        if (event?.type === 'schedule.execute' && event.scheduleId === scheduleId) n++;
      }
    }
    return n;
  }

  it('is read back as ours: executed, one receipt, one schedule.execute entry', async () => {
    const userId = `finish-${process.pid}`;
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
    slow!.finishLandsThenFails = 1;
    const scheduled = await h.call('POST', `/v1/keychains/${userId}/schedules`, {
      json: { graceSeconds: 0, serveDuringGrace: true },
    });
    assert.equal(scheduled.status, 201, scheduled.text);
    const { scheduleId } = scheduled.body as { scheduleId: string };
    const deadline = Date.now() + 20_000;
    let state = '';
    while (Date.now() < deadline) {
      state = ((await h.call('GET', `/v1/keychains/${userId}/schedules/${scheduleId}`)).body as { state: string })
        .state;
      if (state === 'executed' && (await executeEntries(scheduleId)) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(slow!.finishLandsThenFails, 0, 'the failing finish was not reached');
    assert.equal(state, 'executed');
    assert.equal((await h.rootKeys(userId)).size, 0);
    // A few more passes: nothing appends a second entry.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await executeEntries(scheduleId), 1);
    const metadata = (await h.call('GET', `/v1/keychains/${userId}`)).body as { receipts: unknown[] };
    assert.equal(metadata.receipts.length, 1);
  });
});

/*
 * A scheduled shred that fails (here the keychain read fails, as the store or the journal
 * unavailable would) lets its claim expire at once: the next pass retries it, instead of waiting out
 * the lease (60 s here). DiRT's datacenter cut found a schedule still pending at the end of the run,
 * its claim held by an attempt that had failed with JOURNAL_UNAVAILABLE.
 */
describe('a scheduled shred that failed', () => {
  let h: Harness;
  let slow: SlowStore | undefined;
  before(async () => {
    h = await startHarness({
      config: { scheduler: { intervalMs: 100, leaseMs: 60_000 } },
      wrapStore: (store) => (slow = new SlowStore(store)),
    });
  });
  after(async () => {
    await h.close();
  });

  it('is retried on the next pass, not after its lease', async () => {
    const userId = `retried-${process.pid}`;
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
    // Due in a second: scheduling reads the keychain too, so the store fails only once it is scheduled.
    const scheduled = await h.call('POST', `/v1/keychains/${userId}/schedules`, {
      json: { graceSeconds: 1, serveDuringGrace: true },
    });
    assert.equal(scheduled.status, 201, scheduled.text);
    const { scheduleId } = scheduled.body as { scheduleId: string };
    slow!.failing.add(userId);
    const failed = (): Promise<number> =>
      h
        .call('GET', '/metrics', { authorization: null })
        .then((r) => metricValue(r.text, 'padlock_schedules_executed_total', { outcome: 'failed' }) ?? 0);
    const failDeadline = Date.now() + 10_000;
    while ((await failed()) < 1) {
      assert.ok(Date.now() < failDeadline, 'the scheduler never tried the schedule');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const stored = await h.padlock.store.getSchedule(scheduleId);
    assert.equal(stored?.state, 'pending');
    assert.ok(stored.leaseUntil !== null && stored.leaseUntil <= Date.now(), 'the failed attempt kept its claim');
    slow!.failing.delete(userId);
    const deadline = Date.now() + 5000;
    let state = '';
    while (state !== 'executed') {
      assert.ok(Date.now() < deadline, `still ${state} 5 s after the store came back (lease 60 s)`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = ((await h.call('GET', `/v1/keychains/${userId}/schedules/${scheduleId}`)).body as { state: string })
        .state;
    }
    assert.equal((await h.rootKeys(userId)).size, 0);
    const metadata = (await h.call('GET', `/v1/keychains/${userId}`)).body as { receipts: unknown[] };
    assert.equal(metadata.receipts.length, 1);
  });
});
