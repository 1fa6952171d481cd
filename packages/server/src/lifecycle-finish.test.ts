import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SlowStore, startHarness, type Harness } from './testing/harness.js';

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
