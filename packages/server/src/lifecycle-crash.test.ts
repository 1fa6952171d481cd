import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { receiptScheduleId } from './lifecycle.js';
import { metricValue, startHarness, type Harness } from './testing/harness.js';

/*
 * A node killed with SIGKILL in the middle of a scheduled shred: after its
 * claim but before the shred, and after the shred but before marking it
 * executed. Another server takes the expired claim over and completes it,
 * once. Runs on SQLite, and on Cassandra with PADLOCK_TEST_BACKEND=cassandra.
 */

const CHILD = fileURLToPath(new URL('./testing/scheduler-child.js', import.meta.url));
const LEASE_MS = 1500;

describe('a scheduler killed with -9 mid-execution', () => {
  let h: Harness;
  let n = 0;
  before(async () => {
    // This server only takes requests; the child, then a restarted peer, run the schedules.
    h = await startHarness({ config: { scheduler: { enabled: false, intervalMs: 100, leaseMs: LEASE_MS } } });
  });
  after(async () => {
    await h.close();
  });

  const steps = { shred: 'before the shred', finish: 'after the shred', receipt: 'after its receipt' } as const;
  for (const pause of ['shred', 'finish', 'receipt'] as const) {
    it(`is taken over after its claim expires and completed once, with one receipt (killed ${steps[pause]})`, async () => {
      const userId = `crash-${process.pid}-${n++}`;
      assert.equal((await h.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
      const scheduled = await h.call('POST', `/v1/keychains/${userId}/schedules`, {
        json: { graceSeconds: 0, serveDuringGrace: true },
      });
      assert.equal(scheduled.status, 201, scheduled.text);
      const { scheduleId } = scheduled.body as { scheduleId: string };

      const child = spawn(process.execPath, [CHILD], {
        env: {
          ...process.env,
          PADLOCK_CHILD_CONFIG: JSON.stringify({ ...h.config, scheduler: { ...h.config.scheduler, enabled: true } }),
          PADLOCK_CHILD_PAUSE: pause,
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_, signal) => resolve(signal)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          const said = { shred: 'claimed', finish: 'shredded', receipt: 'receipted' }[pause];
          if (chunk.toString().includes(said)) resolve();
        });
        child.on('exit', () => reject(new Error('the child exited before pausing')));
      });
      const midway = (await h.call('GET', `/v1/keychains/${userId}/schedules/${scheduleId}`)).body as {
        state: string;
      };
      assert.equal(midway.state, 'executing');
      assert.equal((await h.rootKeys(userId)).size, pause === 'shred' ? 3 : 0);
      // A cancel now loses: the execution has started and will complete.
      assert.equal((await h.call('DELETE', `/v1/keychains/${userId}/schedules/${scheduleId}`)).status, 409);
      child.kill('SIGKILL');
      assert.equal(await exited, 'SIGKILL');

      // "Restart": another server with a scheduler on the same store.
      const peer = await h.peer({ config: { scheduler: { intervalMs: 100, leaseMs: LEASE_MS } } });
      try {
        const deadline = Date.now() + 15000;
        let final: { state: string; finishedBy: string | null } | undefined;
        while (Date.now() < deadline) {
          final = (await peer.call('GET', `/v1/keychains/${userId}/schedules/${scheduleId}`)).body as typeof final;
          if (final?.state === 'executed') break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(final?.state, 'executed');
        assert.equal(final?.finishedBy, peer.padlock.scheduler?.nodeId);
        assert.equal((await h.rootKeys(userId)).size, 0);
        const metrics = (await peer.call('GET', '/metrics')).text;
        assert.equal(metricValue(metrics, 'padlock_schedules_executed_total', { outcome: 'executed' }), 1);
        // One deletion, one receipt: a takeover after the receipt was stored must not sign a second one.
        const listed = (await peer.call('GET', `/v1/keychains/${userId}`)).body as { receipts: { id: string }[] };
        const forSchedule: string[] = [];
        for (const { id } of listed.receipts) {
          const { jws } = (await peer.call('GET', `/v1/receipts/${id}`)).body as { jws: string };
          if (receiptScheduleId(jws) === scheduleId) forSchedule.push(id);
        }
        assert.equal(forSchedule.length, 1, `receipts for the schedule: ${forSchedule.join(', ')}`);
      } finally {
        await peer.close();
      }
    });
  }
});
