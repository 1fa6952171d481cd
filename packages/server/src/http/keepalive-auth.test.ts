import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHarness, type Harness } from '../testing/harness.js';
import { ServiceWriter } from '../service-rows.js';

/*
 * A keep-alive connection reuses the verdict on its own earlier Authorization
 * header; a registry refresh must still end it, so a revoked credential stops
 * working on connections that were open before the revocation.
 */
describe('credential verdicts on keep-alive connections', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ config: { services: { refreshSeconds: 1 } } });
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'ka-user' } })).status, 201);
  });
  after(() => h.close());

  it('stops accepting a revoked credential within the refresh interval on an open connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      agent.on('free', (socket) => sockets.add(socket));
      for (let i = 0; i < 5; i++) assert.equal((await h.call('GET', '/v1/keys/ka-user', { agent })).status, 200);
      assert.equal(sockets.size, 1, 'the requests shared one connection');
      // Another header on the same connection is judged on its own.
      const wrong = `${h.credentials['admin']!.slice(0, -2)}AA`;
      assert.equal((await h.call('GET', '/v1/keys/ka-user', { agent, authorization: `Bearer ${wrong}` })).status, 401);
      assert.equal((await h.call('GET', '/v1/keys/ka-user', { agent })).status, 200);

      const service = await h.padlock.store.getService('admin');
      const live = service?.credentials.find(
        (c) => c.revokedAt === null && h.credentials['admin']!.includes(c.credentialId),
      );
      assert.ok(live);
      const writer = new ServiceWriter(h.padlock.store, h.keks);
      assert.equal(await writer.revokeCredential('admin', live.credentialId, Date.now()), true);
      const revokedAt = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - revokedAt < 5000) {
        status = (await h.call('GET', '/v1/keys/ka-user', { agent })).status;
        if (status === 200) await sleep(100);
      }
      assert.equal(status, 401, 'the revoked credential still works on the open connection');
      assert.ok(Date.now() - revokedAt < 3000, `took ${Date.now() - revokedAt} ms with refreshSeconds 1`);
      assert.equal(sockets.size, 1, 'still the same connection');
    } finally {
      agent.destroy();
    }
  });
});
