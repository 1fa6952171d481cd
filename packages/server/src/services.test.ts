import { kekRing, SecretBytes, type KekRing } from '@padlock/core';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from './log.js';
import { ServiceWriter } from './service-rows.js';
import { newServiceRecord, ServiceRegistry, tlsIdentityProblem } from './services.js';
import { SqliteKeyStore } from './store/sqlite.js';

const NONE = { read: [], create: false, rotate: false, shred: false, hold: false };

function ring(): KekRing {
  return kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1');
}

describe('ServiceRegistry.byTlsIdentity', () => {
  it('maps each identity to its service, exactly, and an identity two services claim to neither', async () => {
    const keks = ring();
    const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 100 });
    const lines: string[] = [];
    const registry = new ServiceRegistry(
      store,
      keks,
      createLogger('info', (l) => lines.push(l)),
    );
    const writer = new ServiceWriter(store, keks);
    try {
      const now = Date.now();
      await writer.create(newServiceRecord(keks, 'alpha', NONE, now, ['spiffe://x/alpha', 'CN=alpha,O=Example']));
      await writer.create(newServiceRecord(keks, 'beta', NONE, now, ['CN=beta']));
      // Written past the CLI's check, as a race between two CLIs would.
      await writer.create(newServiceRecord(keks, 'gamma', NONE, now, ['CN=beta', 'CN=gamma']));
      await registry.refresh();

      assert.equal(registry.byTlsIdentity('spiffe://x/alpha')?.serviceId, 'alpha');
      assert.equal(registry.byTlsIdentity('CN=alpha,O=Example')?.serviceId, 'alpha');
      assert.deepEqual(registry.byTlsIdentity('CN=alpha,O=Example')?.tlsIdentities, [
        'spiffe://x/alpha',
        'CN=alpha,O=Example',
      ]);
      assert.equal(registry.byTlsIdentity('CN=gamma')?.serviceId, 'gamma');
      assert.equal(registry.byTlsIdentity('CN=beta'), undefined, 'contested identity');
      assert.ok(lines.some((l) => l.includes('claimed by several services') && l.includes('beta,gamma')));
      for (const near of ['spiffe://x/alpha/', 'SPIFFE://x/alpha', 'CN=alpha, O=Example', 'cn=gamma', '', 'alpha']) {
        assert.equal(registry.byTlsIdentity(near), undefined, near);
      }

      await writer.setTlsIdentities('beta', ['CN=beta2']);
      await registry.refresh();
      assert.equal(registry.byTlsIdentity('CN=beta2')?.serviceId, 'beta');
      assert.equal(registry.byTlsIdentity('CN=beta')?.serviceId, 'gamma', 'uncontested once beta let it go');
    } finally {
      await store.close();
    }
  });
});

describe('tlsIdentityProblem', () => {
  const services = [
    { serviceId: 'alpha', tlsIdentities: ['CN=alpha'] },
    { serviceId: 'beta', tlsIdentities: [] },
  ];
  const cases: [name: string, serviceId: string, identities: string[], problem: RegExp | undefined][] = [
    ['no identities', 'beta', [], undefined],
    ['a free identity', 'beta', ['CN=beta'], undefined],
    ['its own identity again', 'alpha', ['CN=alpha', 'CN=alpha2'], undefined],
    ["another service's identity", 'beta', ['CN=alpha'], /belongs to service "alpha" already/],
    ['a repeated identity', 'beta', ['CN=b', 'CN=b'], /is listed twice/],
    ['an empty identity', 'beta', [''], /must be 1-1024 characters/],
    ['a control character', 'beta', ['CN=a\tb'], /no control characters/],
  ];
  for (const [name, serviceId, identities, problem] of cases) {
    it(name, () => {
      const found = tlsIdentityProblem(serviceId, identities, services);
      if (problem === undefined) assert.equal(found, undefined);
      else assert.match(found ?? '', problem);
    });
  }
});
