import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PadlockClient } from './client.js';
import { InvalidInput, KeychainPendingDeletion, KeychainShredded, LegalHold } from './errors.js';
import { createDeployment, type Deployment, type PadlockProcess } from './testing/padlock-processes.js';

/* The SDK's schedule and hold methods against a real `padlock serve` on SQLite. */

let deployment: Deployment;
let server: PadlockProcess;
let padlock: PadlockClient;

before(async () => {
  deployment = await createDeployment({ maxStalenessSeconds: 2 });
  server = await deployment.start('padlock');
  padlock = new PadlockClient({
    groups: [{ name: server.name, urls: [server.url] }],
    credential: deployment.credentials['app']!,
    timeoutMs: 10_000,
  });
});

after(async () => {
  await padlock?.close();
  await deployment?.close();
});

void describe('SDK: scheduled shreds and legal holds', () => {
  void it('schedules, shows, cancels; withheld keys fail with KeychainPendingDeletion', async () => {
    await padlock.createKeychain('sdk-grace');
    const sealed = await padlock.encrypt('sdk-grace', 'profile', 'hello');
    const s = await padlock.scheduleShred('sdk-grace', { graceSeconds: 3600, serveDuringGrace: false });
    assert.equal(s.state, 'pending');
    assert.equal(s.requestedBy, 'app');
    padlock.forget('sdk-grace');
    await assert.rejects(padlock.decrypt('sdk-grace', sealed), KeychainPendingDeletion);
    const status = await padlock.lifecycleStatus('sdk-grace');
    assert.deepEqual(
      status.schedules.map((x) => [x.scheduleId, x.state, x.verified]),
      [[s.scheduleId, 'pending', true]],
    );
    assert.equal((await padlock.cancelScheduledShred('sdk-grace', s.scheduleId)).state, 'cancelled');
    assert.equal((await padlock.getScheduledShred('sdk-grace', s.scheduleId)).state, 'cancelled');
    padlock.forget('sdk-grace');
    assert.equal((await padlock.decrypt('sdk-grace', sealed)).toString(), 'hello');
  });

  void it('a hold makes shreds fail with LegalHold until released; a due schedule then runs', async () => {
    await padlock.createKeychain('sdk-held');
    const hold = await padlock.placeHold('sdk-held', { reason: 'case 2026-114' });
    assert.equal(hold.state, 'in_force');
    await assert.rejects(padlock.shredKeychain('sdk-held'), LegalHold);
    const s = await padlock.scheduleShred('sdk-held', { executeAt: new Date(), serveDuringGrace: true });
    assert.equal((await padlock.releaseHold('sdk-held', hold.holdId)).state, 'released');
    const deadline = Date.now() + 15000;
    while ((await padlock.getScheduledShred('sdk-held', s.scheduleId)).state !== 'executed') {
      assert.ok(Date.now() < deadline, 'the schedule ran after the release');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    padlock.forget('sdk-held');
    await assert.rejects(padlock.encrypt('sdk-held', 'profile', 'x'), KeychainShredded);
  });

  void it('checks its input before sending anything', async () => {
    await assert.rejects(padlock.scheduleShred('u', { serveDuringGrace: true }), InvalidInput);
    await assert.rejects(
      padlock.scheduleShred('u', { graceSeconds: 1, executeAt: new Date(), serveDuringGrace: true }),
      InvalidInput,
    );
    await assert.rejects(padlock.scheduleShred('u', { graceSeconds: 1.5, serveDuringGrace: true }), InvalidInput);
    await assert.rejects(padlock.cancelScheduledShred('u', '../../x'), InvalidInput);
    await assert.rejects(padlock.releaseHold('u', 'hold-x'), InvalidInput);
    await assert.rejects(padlock.placeHold('u', { reason: '' }), InvalidInput);
  });
});
