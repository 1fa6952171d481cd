import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { issue, makeCa, makeTestPki, type TestPki } from '../../../scripts/testing/certs.mjs';
import { PadlockClient } from './client.js';
import { PermissionDenied, Unavailable } from './errors.js';
import type { PadlockClientOptions } from './options.js';
import { createDeployment, metricValue, type Deployment, type PadlockProcess } from './testing/padlock-processes.js';

/*
 * The client over HTTPS against real `padlock serve` processes with certificates made for the
 * test: the server's name verified, keep-alive connections and TLS sessions reused, failover and
 * hedging across groups.
 */

let pki: TestPki;
let ca: Buffer;
let deployment: Deployment;
let primary: PadlockProcess;
let mirror: PadlockProcess;
const clients: PadlockClient[] = [];
const pkiDir = mkdtempSync(join(tmpdir(), 'padlock-client-tls-'));

before(async () => {
  pki = makeTestPki(pkiDir);
  ca = readFileSync(pki.ca.cert);
  deployment = await createDeployment({
    tls: { certFile: pki.server.cert, keyFile: pki.server.key },
    scrapeTls: { ca },
  });
  primary = await deployment.start('primary');
  mirror = await deployment.start('mirror');
});

after(async () => {
  for (const c of clients) await c.close();
  await deployment?.close();
  rmSync(pkiDir, { recursive: true, force: true });
});

function client(urls: readonly (readonly string[])[], options: Partial<PadlockClientOptions> = {}): PadlockClient {
  const created = new PadlockClient({
    groups: urls.map((group, i) => ({ name: `g${i}`, urls: group })),
    credential: deployment.credentials['app']!,
    tls: { ca },
    timeoutMs: 10_000,
    cache: false,
    ...options,
  });
  clients.push(created);
  return created;
}

/** A TLS server that completes handshakes and never answers a request. */
async function tlsServer(files: {
  cert: string;
  key: string;
}): Promise<{ server: Server; port: number; sockets: Set<TLSSocket> }> {
  const server = createServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) });
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.resume();
  });
  server.on('close', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const close = server.close.bind(server);
  server.close = (callback) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  return { server, port, sockets };
}

/** Handshakes a process has completed, from one scrape of /metrics (which is itself one, new, handshake). */
async function handshakes(p: PadlockProcess): Promise<{ fresh: number; resumed: number }> {
  const text = await p.metrics();
  return {
    fresh: metricValue(text, 'padlock_tls_handshakes_total', { session: 'new' }),
    resumed: metricValue(text, 'padlock_tls_handshakes_total', { session: 'resumed' }),
  };
}

describe('client over HTTPS', () => {
  it('encrypts and decrypts through https URLs, by address and by name', async () => {
    const port = new URL(primary.url).port;
    for (const url of [primary.url, `https://localhost:${port}`]) {
      const padlock = client([[url]]);
      await padlock.createKeychain('tls-alice');
      const sealed = await padlock.encrypt('tls-alice', 'profile', 'over TLS');
      assert.equal(await padlock.decryptText('tls-alice', sealed), 'over TLS');
    }
  });

  it('refuses a server it cannot verify: a CA it was not given, or a name the certificate lacks', async () => {
    const storeOnly = new PadlockClient({
      groups: [{ name: 'g', urls: [primary.url] }],
      credential: deployment.credentials['app']!,
      deadlineMs: 3000,
      timeoutMs: 1000,
    });
    clients.push(storeOnly);
    await assert.rejects(storeOnly.createKeychain('tls-bob'), (error: unknown) => {
      assert.ok(error instanceof Unavailable);
      assert.match(JSON.stringify(error.attempts), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      return true;
    });
    // A server whose certificate, from the trusted CA, names another host than the URL's.
    const other = issue(pkiDir, pki.ca, 'elsewhere', { sans: ['DNS:elsewhere.test'] });
    const { server, port } = await tlsServer(other);
    try {
      const wrongName = client([[`https://127.0.0.1:${port}`]], { deadlineMs: 3000, timeoutMs: 1000 });
      await assert.rejects(wrongName.createKeychain('tls-bob'), (error: unknown) => {
        assert.ok(error instanceof Unavailable);
        assert.match(JSON.stringify(error.attempts), /ERR_TLS_CERT_ALTNAME_INVALID/);
        return true;
      });
    } finally {
      server.close();
    }
  });

  it('reuses one keep-alive connection for sequential calls', async () => {
    const padlock = client([[mirror.url]], { maxSockets: 1 });
    const before = await handshakes(mirror);
    await padlock.createKeychain('tls-carol');
    for (let i = 0; i < 10; i++) await padlock.encrypt('tls-carol', 'profile', `n${i}`);
    const after = await handshakes(mirror);
    // The client's one connection, and the second scrape's own.
    assert.equal(after.fresh + after.resumed - (before.fresh + before.resumed), 2);
  });

  it('resumes the TLS session on its new connections instead of a full handshake', async () => {
    const padlock = client([[primary.url]]);
    await padlock.createKeychain('tls-dave');
    const before = await handshakes(primary);
    // Six writes at once need six connections: five more than the one open.
    await Promise.all(Array.from({ length: 6 }, (_, i) => padlock.createKeychain(`tls-dave-${i}`)));
    const after = await handshakes(primary);
    const resumed = after.resumed - before.resumed;
    const fresh = after.fresh - before.fresh;
    assert.ok(resumed >= 5, `resumed ${resumed}, new ${fresh}`);
    // The only full handshake is the second scrape's (the test's own, without a session cache).
    assert.equal(fresh, 1);
  });

  it('fails over to the next group when a group is killed', async () => {
    const extra = await deployment.start('extra');
    const padlock = client([[extra.url], [mirror.url]]);
    await padlock.createKeychain('tls-erin');
    const sealed = await padlock.encrypt('tls-erin', 'profile', 'still here');
    await extra.kill('SIGKILL');
    assert.equal(await padlock.decryptText('tls-erin', sealed), 'still here');
    assert.ok(padlock.stats().failovers >= 1);
  });

  it('hedges a lookup to the next group when the first completes its handshake and never answers', async () => {
    const { server: stalled, port, sockets } = await tlsServer(pki.server);
    try {
      const writer = client([[mirror.url]]);
      await writer.createKeychain('tls-frank');
      const sealed = await writer.encrypt('tls-frank', 'profile', 'hedged');
      const padlock = client([[`https://127.0.0.1:${port}`], [mirror.url]], { hedgeAfterMs: 50 });
      assert.equal(await padlock.decryptText('tls-frank', sealed), 'hedged');
      assert.equal(padlock.stats().hedges, 1);
      assert.ok(sockets.size >= 1, 'the stalled server completed a handshake');
    } finally {
      stalled.close();
    }
  });
});

describe('client with a certificate, server in certificate-only mode', () => {
  let mtls: Deployment;
  let server: PadlockProcess;
  let app: { cert: Buffer; key: Buffer };
  before(async () => {
    const clientsCa = makeCa(pkiDir, 'clients');
    const files = issue(pkiDir, clientsCa, 'app', { client: true, sans: ['URI:spiffe://test/app'] });
    app = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
    mtls = await createDeployment({
      tls: {
        certFile: pki.server.cert,
        keyFile: pki.server.key,
        clientCertificates: { caFile: clientsCa.cert, mode: 'certificate-only' },
      },
      scrapeTls: { ca, ...app },
    });
    await mtls.cli('service', 'tls-identities', 'app', '--tls-identity', 'spiffe://test/app');
    server = await mtls.start('mtls');
  });
  after(() => mtls?.close());

  it('authenticates with the certificate alone, no credential', async () => {
    const padlock = new PadlockClient({
      groups: [{ name: 'mtls', urls: [server.url] }],
      tls: { ca, ...app },
      timeoutMs: 10_000,
    });
    clients.push(padlock);
    await padlock.createKeychain('cert-only-user');
    const sealed = await padlock.encrypt('cert-only-user', 'payments', 'no bearer needed');
    assert.equal(await padlock.decryptText('cert-only-user', sealed), 'no bearer needed');
  });

  it("is refused with another service's credential next to its certificate", async () => {
    const padlock = new PadlockClient({
      groups: [{ name: 'mtls', urls: [server.url] }],
      credential: mtls.credentials['reader']!,
      tls: { ca, ...app },
      timeoutMs: 10_000,
    });
    clients.push(padlock);
    await assert.rejects(padlock.createKeychain('cert-only-other'), (error: unknown) => {
      assert.ok(error instanceof PermissionDenied);
      assert.equal(error.serverCode, 'UNAUTHENTICATED');
      return true;
    });
  });
});
