import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { issue, makeCa, makeTestPki, type TestPki } from '../../../../scripts/testing/certs.mjs';
import { ServiceWriter } from '../service-rows.js';
import {
  ALL_RIGHTS,
  httpsRequest,
  metricValue,
  startHarness,
  type Harness,
  type HttpsCall,
} from '../testing/harness.js';

/*
 * Mutual TLS over real TLS connections: client certificates from a CA made for the test, bound to
 * services through their records. In every mode a credential of another service than the
 * certificate's gets the very 401 a wrong credential gets; a certificate no service claims
 * authenticates nothing; in certificate-only mode the certificate alone is enough.
 */

const dir = mkdtempSync(join(tmpdir(), 'padlock-mtls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Pem {
  readonly cert: Buffer;
  readonly key: Buffer;
}
let pki: TestPki;
let serverCa: Buffer;
let clientsCaFile: string;
const certs: Record<string, Pem> = {};

before(() => {
  pki = makeTestPki(dir);
  serverCa = readFileSync(pki.ca.cert);
  const clients = makeCa(dir, 'clients');
  clientsCaFile = clients.cert;
  const made = {
    billing: issue(dir, clients, 'billing', { client: true, sans: ['URI:spiffe://test/billing'] }),
    // No URI SAN: the subject is the identity.
    admin: issue(dir, clients, 'admin', { client: true, subject: '/O=Test/CN=admin' }),
    stranger: issue(dir, clients, 'stranger', { client: true, sans: ['URI:spiffe://test/stranger'] }),
    ambiguous: issue(dir, clients, 'ambiguous', {
      client: true,
      sans: ['URI:spiffe://test/billing', 'URI:spiffe://test/admin'],
    }),
    // The billing identity, from a CA the server does not trust for clients.
    rogue: issue(dir, pki.otherCa, 'rogue', { client: true, sans: ['URI:spiffe://test/billing'] }),
  };
  for (const [name, files] of Object.entries(made)) {
    certs[name] = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
  }
});

const SERVICES = [
  { serviceId: 'admin', permissions: ALL_RIGHTS, tlsIdentities: ['CN=admin,O=Test'] },
  {
    serviceId: 'billing',
    permissions: { read: ['profile'], create: false, rotate: false, shred: false, hold: false },
    tlsIdentities: ['spiffe://test/billing'],
  },
];

async function mtlsHarness(mode: string): Promise<Harness> {
  const h = await startHarness({
    services: SERVICES,
    config: {
      listen: {
        tls: {
          certFile: pki.server.cert,
          keyFile: pki.server.key,
          clientCertificates: { caFile: clientsCaFile, mode },
        },
      },
      services: { refreshSeconds: 1 },
    },
  });
  const created = await httpsRequest(h.port, '/v1/keychains', {
    ...as(h, 'admin', 'admin'),
    method: 'POST',
    headers: { ...as(h, 'admin', 'admin').headers, 'content-type': 'application/json' },
    body: JSON.stringify({ userId: 'mtls-user' }),
  });
  assert.equal(created.status, 201, created.text);
  return h;
}

/** Request options: the named client certificate (or none), and a bearer credential (or none). */
function as(h: Harness, certificate: string | undefined, bearer: string | undefined): HttpsCall {
  const pem = certificate === undefined ? undefined : certs[certificate];
  return {
    ca: serverCa,
    ...(pem === undefined ? {} : { cert: pem.cert, key: pem.key }),
    headers: bearer === undefined ? {} : { authorization: `Bearer ${h.credentials[bearer] ?? bearer}` },
  };
}

function metric(h: Harness, name: string, labels: Readonly<Record<string, string>>): number {
  return metricValue(h.padlock.metrics.render(), name, labels);
}

const WRONG = 'pl1.billing.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

/** [case, client certificate, bearer credential (a service id, or a raw credential), expected status]. */
type Case = readonly [string, string | undefined, string | undefined, number];

// prettier-ignore
const MODES: Readonly<Record<string, readonly Case[]>> = {
  required: [
    ['its certificate and its credential', 'billing', 'billing', 200],
    ['its certificate, another service\'s credential', 'billing', 'admin', 401],
    ['another service\'s certificate, its credential', 'admin', 'billing', 401],
    ['its certificate, no credential', 'billing', undefined, 401],
    ['its certificate, a wrong credential', 'billing', WRONG, 401],
    ['a subject identity and its credential', 'admin', 'admin', 200],
    ['a certificate no service claims', 'stranger', 'billing', 401],
    ['a certificate with two URI SANs', 'ambiguous', 'billing', 401],
  ],
  optional: [
    ['no certificate, a credential', undefined, 'billing', 200],
    ['no certificate, a wrong credential', undefined, WRONG, 401],
    ['its certificate and its credential', 'billing', 'billing', 200],
    ['its certificate, another service\'s credential', 'billing', 'admin', 401],
    ['a certificate no service claims, a good credential', 'stranger', 'billing', 401],
  ],
  'certificate-only': [
    ['its certificate alone', 'billing', undefined, 200],
    ['a subject identity alone', 'admin', undefined, 200],
    ['its certificate and its credential', 'billing', 'billing', 200],
    ['its certificate, another service\'s credential', 'billing', 'admin', 401],
    ['its certificate, a wrong credential', 'billing', WRONG, 401],
    ['a certificate no service claims, alone', 'stranger', undefined, 401],
    ['a certificate no service claims, a good credential', 'stranger', 'billing', 401],
  ],
};

for (const [mode, cases] of Object.entries(MODES)) {
  describe(`mutual TLS, mode ${mode}`, () => {
    let h: Harness;
    let refusal: string;
    before(async () => {
      h = await mtlsHarness(mode);
      // What any bad credential gets, for comparison byte for byte.
      const cert = mode === 'optional' ? undefined : 'billing';
      const wrong = await httpsRequest(h.port, '/v1/keys/mtls-user', as(h, cert, WRONG));
      assert.equal(wrong.status, 401);
      refusal = wrong.text;
    });
    after(() => h.close());

    for (const [name, certificate, bearer, status] of cases) {
      it(`${name}: ${status}`, async () => {
        const reply = await httpsRequest(h.port, '/v1/keys/mtls-user', as(h, certificate, bearer));
        assert.equal(reply.status, status, reply.text);
        if (status === 401) assert.equal(reply.text, refusal, 'the same 401 as a wrong credential');
      });
    }

    it("serves the certificate's service its own keys: the rights are the bound service's", async () => {
      const bearer = mode === 'certificate-only' ? undefined : 'billing';
      const reply = await httpsRequest(h.port, '/v1/keys/mtls-user', as(h, 'billing', bearer));
      const body = reply.body as { categories: { category: string }[] };
      assert.deepEqual(
        body.categories.map((c) => c.category),
        ['profile'],
      );
      const keys = await h.expectedKeys('billing', 'mtls-user');
      assert.ok(keys.get('profile')?.size === 1);
    });

    it('refuses a certificate from a CA it does not trust', async () => {
      const before = metric(h, 'padlock_tls_handshake_failures_total', { reason: 'client_certificate_rejected' });
      await assert.rejects(httpsRequest(h.port, '/v1/keys/mtls-user', as(h, 'rogue', 'billing')));
      assert.equal(
        metric(h, 'padlock_tls_handshake_failures_total', { reason: 'client_certificate_rejected' }),
        before + 1,
      );
    });

    if (mode !== 'optional') {
      it('ends the handshake of a client without a certificate, even for /healthz', async () => {
        await assert.rejects(httpsRequest(h.port, '/healthz', as(h, undefined, undefined)));
        assert.equal((await httpsRequest(h.port, '/healthz', as(h, 'stranger', undefined))).status, 200);
      });
    }
  });
}

describe('mutual TLS: bindings over time', () => {
  let h: Harness;
  before(async () => {
    h = await mtlsHarness('certificate-only');
  });
  after(() => h.close());

  it('counts unmapped certificates and mismatched credentials', async () => {
    const unmapped = metric(h, 'padlock_tls_client_certificate_refusals_total', { reason: 'unmapped' });
    const mismatch = metric(h, 'padlock_tls_client_certificate_refusals_total', { reason: 'mismatch' });
    assert.equal((await httpsRequest(h.port, '/v1/keys/mtls-user', as(h, 'stranger', undefined))).status, 401);
    assert.equal((await httpsRequest(h.port, '/v1/keys/mtls-user', as(h, 'billing', 'admin'))).status, 401);
    assert.equal(metric(h, 'padlock_tls_client_certificate_refusals_total', { reason: 'unmapped' }), unmapped + 1);
    assert.equal(metric(h, 'padlock_tls_client_certificate_refusals_total', { reason: 'mismatch' }), mismatch + 1);
  });

  it('keeps the identity on a resumed session', async () => {
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: serverCa, ...certs['billing'] });
    try {
      assert.equal((await httpsRequest(h.port, '/v1/keys/mtls-user', { agent })).status, 200);
      agent.destroy();
      const resumed = await httpsRequest(h.port, '/v1/keys/mtls-user', { agent });
      assert.equal(resumed.sessionReused, true);
      assert.equal(resumed.status, 200);
    } finally {
      agent.destroy();
    }
  });

  it('stops authenticating an open connection once its identity is taken off the service', async () => {
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: serverCa, ...certs['billing'] });
    try {
      const first = await httpsRequest(h.port, '/v1/keys/mtls-user', { agent });
      assert.equal(first.status, 200);
      assert.equal(await new ServiceWriter(h.padlock.store, h.keks).setTlsIdentities('billing', []), true);
      const changedAt = Date.now();
      let status = 200;
      let last = first;
      while (status === 200 && Date.now() - changedAt < 5000) {
        last = await httpsRequest(h.port, '/v1/keys/mtls-user', { agent });
        status = last.status;
        if (status === 200) await sleep(100);
      }
      assert.equal(status, 401, 'the unbound certificate still authenticates');
      assert.equal(last.localPort, first.localPort, 'on the same connection');
    } finally {
      agent.destroy();
      await new ServiceWriter(h.padlock.store, h.keks).setTlsIdentities('billing', ['spiffe://test/billing']);
    }
  });
});
