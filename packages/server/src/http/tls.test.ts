import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { once } from 'node:events';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { issue, makeTestPki, type TestPki } from '../../../../scripts/testing/certs.mjs';
import { ConfigError, parseConfig } from '../config.js';
import { startPadlock } from '../app.js';
import { createLogger } from '../log.js';
import { httpRequest, httpsRequest, metricValue, startHarness, type Harness } from '../testing/harness.js';
import { certificateIdentity, checkPlaintextListener, isLoopback, uriSubjectAltNames } from './tls.js';

/*
 * HTTPS on Padlock's listener, over real TLS connections with certificates made for the test:
 * the protocol floor, reloads that keep open connections, reloads that fail and keep the old
 * certificate, handshake failures in /metrics, and the refusal of plaintext off loopback.
 */

const pkiDir = mkdtempSync(join(tmpdir(), 'padlock-tls-'));
let pki: TestPki;
before(() => {
  pki = makeTestPki(pkiDir);
});
after(() => rmSync(pkiDir, { recursive: true, force: true }));

function scrape(h: Harness, name: string, labels: Readonly<Record<string, string>> = {}): number {
  return metricValue(h.padlock.metrics.render(), name, labels);
}

/** A harness serving HTTPS with certificate and key copied into files the test may rewrite. */
async function tlsHarness(
  tls: Record<string, unknown> = {},
): Promise<{ h: Harness; certFile: string; keyFile: string }> {
  const dir = mkdtempSync(join(pkiDir, 'server-'));
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  copyFileSync(pki.server.cert, certFile);
  copyFileSync(pki.server.key, keyFile);
  chmodSync(keyFile, 0o600);
  const h = await startHarness({ config: { listen: { tls: { certFile, keyFile, ...tls } } } });
  return { h, certFile, keyFile };
}

const fingerprintOf = (file: string): string => new X509Certificate(readFileSync(file)).fingerprint256;

describe('HTTPS listener', () => {
  let h: Harness;
  let ca: Buffer;
  before(async () => {
    ({ h } = await tlsHarness());
    ca = readFileSync(pki.ca.cert);
  });
  after(() => h.close());

  it('answers over TLS 1.3 with the configured certificate, verified for 127.0.0.1 and localhost', async () => {
    const byAddress = await httpsRequest(h.port, '/healthz', { ca });
    assert.equal(byAddress.status, 200);
    assert.equal(byAddress.fingerprint, fingerprintOf(pki.server.cert));
    assert.equal((await httpsRequest(h.port, '/healthz', { ca, servername: 'localhost' })).status, 200);
    const authed = await httpsRequest(h.port, '/v1/keychains', {
      ca,
      method: 'POST',
      headers: { authorization: `Bearer ${h.credentials['admin']!}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'tls-user' }),
    });
    assert.equal(authed.status, 201, authed.text);
  });

  it('is refused by a client that does not trust its CA, or asks for another name', async () => {
    await assert.rejects(httpsRequest(h.port, '/healthz', { ca: readFileSync(pki.otherCa.cert) }), {
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    await assert.rejects(httpsRequest(h.port, '/healthz', { ca, servername: 'padlock.example' }), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('refuses TLS 1.2 by default, and counts the failure', async () => {
    const before = scrape(h, 'padlock_tls_handshake_failures_total', { reason: 'protocol' });
    await assert.rejects(httpsRequest(h.port, '/healthz', { ca, maxVersion: 'TLSv1.2' }), /alert protocol version/);
    assert.equal(scrape(h, 'padlock_tls_handshake_failures_total', { reason: 'protocol' }), before + 1);
  });

  it('counts plaintext HTTP sent to the TLS port as a handshake failure and answers nothing', async () => {
    const before = scrape(h, 'padlock_tls_handshake_failures_total', { reason: 'not_tls' });
    const reply = await new Promise<Buffer>((resolve) => {
      const socket = connect(h.port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'));
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    assert.equal(reply.includes('HTTP/1.1'), false, 'no HTTP answer in the clear');
    assert.equal(scrape(h, 'padlock_tls_handshake_failures_total', { reason: 'not_tls' }), before + 1);
  });

  it('resumes the TLS session on a second connection, and counts it', async () => {
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const resumedBefore = scrape(h, 'padlock_tls_handshakes_total', { session: 'resumed' });
      const first = await httpsRequest(h.port, '/healthz', { agent });
      assert.equal(first.sessionReused, false);
      // Close the connection; the agent keeps the session ticket it received.
      agent.destroy();
      const second = await httpsRequest(h.port, '/healthz', { agent });
      assert.notEqual(second.localPort, first.localPort, 'a new connection');
      assert.equal(second.sessionReused, true, 'the second connection resumed the session');
      assert.equal(scrape(h, 'padlock_tls_handshakes_total', { session: 'resumed' }), resumedBefore + 1);
    } finally {
      agent.destroy();
    }
  });

  it('logs no key material', () => {
    const key = readFileSync(pki.server.key, 'utf8');
    const body = key.split('\n').slice(1, 2)[0]!;
    assert.equal(
      h.logLines.some((l) => l.includes(body) || l.includes('PRIVATE KEY')),
      false,
    );
  });
});

describe('HTTPS listener: minVersion TLSv1.2', () => {
  it('accepts TLS 1.2 and 1.3 when configured, never older', async () => {
    const { h } = await tlsHarness({ minVersion: 'TLSv1.2' });
    try {
      const ca = readFileSync(pki.ca.cert);
      assert.equal((await httpsRequest(h.port, '/healthz', { ca, maxVersion: 'TLSv1.2' })).status, 200);
      assert.equal((await httpsRequest(h.port, '/healthz', { ca })).status, 200);
      await assert.rejects(
        httpsRequest(h.port, '/healthz', { ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }),
        /protocol|no protocols available/i,
      );
    } finally {
      await h.close();
    }
    assert.throws(
      () =>
        parseConfig(
          {
            keks: { active: 'k', files: [{ kid: 'k', path: 'k' }] },
            listen: { tls: { certFile: 'c', keyFile: 'k', minVersion: 'TLSv1.1' } },
          },
          '/',
        ),
      { message: 'invalid configuration:\n  config.listen.tls.minVersion: must be one of "TLSv1.2", "TLSv1.3"' },
    );
  });
});

describe('HTTPS listener: connections that never finish', () => {
  it('refuses TLS 1.2 renegotiation (a connection keeps the certificate of its handshake)', async () => {
    const { h } = await tlsHarness({ minVersion: 'TLSv1.2' });
    try {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: h.port,
        ca: readFileSync(pki.ca.cert),
        maxVersion: 'TLSv1.2',
      });
      await once(socket, 'secureConnect');
      const closed = once(socket, 'close');
      socket.on('error', () => undefined);
      const outcome = await new Promise<Error | null>((resolve) => {
        socket.renegotiate({ rejectUnauthorized: true }, (error) => resolve(error));
        // The server ends the connection when asked to renegotiate; the callback may not come first.
        void closed.then(() => resolve(new Error('closed')));
      });
      assert.ok(outcome instanceof Error, 'the renegotiation was refused');
      await closed;
    } finally {
      await h.close();
    }
  });

  it('bounds connections still in their handshake by limits.maxConnections: the ones past it are closed at accept', async () => {
    const dir = mkdtempSync(join(pkiDir, 'bounded-'));
    const keyFile = join(dir, 'server.key');
    copyFileSync(pki.server.key, keyFile);
    chmodSync(keyFile, 0o600);
    const bounded = await startHarness({
      config: { listen: { tls: { certFile: pki.server.cert, keyFile } }, limits: { maxConnections: 3 } },
    });
    const silent: ReturnType<typeof connect>[] = [];
    try {
      const closedEarly: boolean[] = [];
      for (let i = 0; i < 6; i++) {
        const socket = connect(bounded.port, '127.0.0.1');
        socket.on('error', () => undefined);
        await once(socket, 'connect');
        const index = i;
        closedEarly[index] = false;
        socket.once('close', () => (closedEarly[index] = true));
        silent.push(socket);
      }
      // The server closes what it does not accept as it arrives; give the closes time to land.
      const waitUntil = performance.now() + 2000;
      while (closedEarly.filter(Boolean).length < 3 && performance.now() < waitUntil) await sleepMs(20);
      assert.deepEqual(
        closedEarly,
        [false, false, false, true, true, true],
        'the first three wait; the rest are closed',
      );
      // Reset, not closed: a half-closed handshake keeps its slot until the 10 s handshake timeout.
      for (const socket of silent) socket.resetAndDestroy();
      // Once the silent ones are gone, a real client is served.
      const waitFree = performance.now() + 2000;
      let status = 0;
      while (status !== 200 && performance.now() < waitFree) {
        status = await httpsRequest(bounded.port, '/healthz', { ca: readFileSync(pki.ca.cert) }).then(
          (r) => r.status,
          () => 0,
        );
        if (status !== 200) await sleepMs(50);
      }
      assert.equal(status, 200);
    } finally {
      for (const socket of silent) socket.destroy();
      await bounded.close();
    }
  });

  it('a drain cuts connections still in their handshake instead of waiting for them', async () => {
    const { h } = await tlsHarness();
    const silent = connect(h.port, '127.0.0.1');
    await once(silent, 'connect');
    const closed = once(silent, 'close');
    silent.on('error', () => undefined);
    const started = performance.now();
    await h.close();
    await closed;
    assert.ok(performance.now() - started < 5000, `took ${Math.round(performance.now() - started)} ms`);
  });
});

describe('HTTPS listener: reload', () => {
  it('keeps an open keep-alive connection, and serves the new certificate to new connections', async () => {
    const { h, certFile, keyFile } = await tlsHarness();
    const ca = readFileSync(pki.ca.cert);
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca, maxCachedSessions: 0 });
    try {
      const first = await httpsRequest(h.port, '/healthz', { agent });
      assert.equal(first.fingerprint, fingerprintOf(pki.server.cert));
      const renewed = issue(pkiDir, pki.ca, 'server-renewed', { sans: ['IP:127.0.0.1', 'DNS:localhost'] });
      copyFileSync(renewed.cert, certFile);
      copyFileSync(renewed.key, keyFile);
      assert.equal(h.padlock.reloadTls(), true);

      const same = await httpsRequest(h.port, '/healthz', { agent });
      assert.equal(same.status, 200);
      assert.equal(same.reusedSocket, true, 'the open connection survived the reload');
      assert.equal(same.localPort, first.localPort);
      assert.equal(same.fingerprint, first.fingerprint);

      const fresh = await httpsRequest(h.port, '/healthz', { ca });
      assert.equal(fresh.fingerprint, fingerprintOf(renewed.cert), 'a new connection gets the new certificate');
      assert.equal(scrape(h, 'padlock_tls_reloads_total', { result: 'ok' }), 1);
      const notAfter = Math.floor(new Date(new X509Certificate(readFileSync(renewed.cert)).validTo).getTime() / 1000);
      assert.equal(scrape(h, 'padlock_tls_certificate_not_after_timestamp_seconds'), notAfter);
    } finally {
      agent.destroy();
      await h.close();
    }
  });

  // Each row rewrites the files, reloads, and expects the reload refused with this message in the log.
  // prettier-ignore
  const BAD: readonly [string, (files: { certFile: string; keyFile: string }) => void, RegExp][] = [
    ['a key file that is not PEM', ({ keyFile }) => writeFileSync(keyFile, 'not a key\n'), /cannot be used/],
    ['a certificate file that is not PEM', ({ certFile }) => writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), /does not hold a PEM certificate/],
    ['a certificate whose key is another one', ({ keyFile }) => copyFileSync(pki.otherCa.key, keyFile), /cannot be used: .*key values mismatch/],
    ['a key file readable by others', ({ keyFile }) => chmodSync(keyFile, 0o644), /is accessible by group or others \(mode 644\); chmod 600 it/],
    ['a missing certificate file', ({ certFile }) => rmSync(certFile), /cannot open the TLS certificate file .*: ENOENT/],
  ];
  for (const [name, damage, message] of BAD) {
    it(`keeps the current certificate after a reload with ${name}, and logs why`, async () => {
      const { h, certFile, keyFile } = await tlsHarness();
      const ca = readFileSync(pki.ca.cert);
      try {
        damage({ certFile, keyFile });
        assert.equal(h.padlock.reloadTls(), false);
        const line = h.logLines.find((l) => l.includes('TLS reload failed'));
        assert.ok(line, 'the failed reload is logged');
        assert.match((JSON.parse(line) as { error: string }).error, message);
        assert.equal(line.includes('PRIVATE KEY'), false);
        const fresh = await httpsRequest(h.port, '/healthz', { ca });
        assert.equal(fresh.status, 200);
        assert.equal(fresh.fingerprint, fingerprintOf(pki.server.cert), 'still the old certificate');
        assert.equal(scrape(h, 'padlock_tls_reloads_total', { result: 'failed' }), 1);
      } finally {
        await h.close();
      }
    });
  }
});

describe('HTTPS listener: start', () => {
  it("refuses to start with a key readable by others, or that is not the certificate's", async () => {
    const dir = mkdtempSync(join(pkiDir, 'start-'));
    const keyFile = join(dir, 'open.key');
    copyFileSync(pki.server.key, keyFile);
    chmodSync(keyFile, 0o640);
    await assert.rejects(startHarness({ config: { listen: { tls: { certFile: pki.server.cert, keyFile } } } }), {
      name: 'ConfigError',
      message: `the TLS private key file ${keyFile} is accessible by group or others (mode 640); chmod 600 it`,
    });
    await assert.rejects(
      startHarness({ config: { listen: { tls: { certFile: pki.server.cert, keyFile: pki.otherCa.key } } } }),
      { name: 'ConfigError', message: /^the TLS certificate .* and key .* cannot be used: .*key values mismatch/ },
    );
  });
});

describe('plaintext off loopback', () => {
  // prettier-ignore
  const HOSTS: readonly [string, boolean][] = [
    ['127.0.0.1', true], ['127.255.0.9', true], ['127.0.1.10', true], ['::1', true], ['[::1]', true],
    ['::ffff:127.0.0.1', true], ['localhost', true], ['LOCALHOST', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.1', false], ['128.0.0.1', false], ['126.255.255.255', false],
    ['::2', false], ['::ffff:10.0.0.1', false], ['localhost.example.com', false], ['127.0.0.1.nip.io', false], ['', false],
  ];
  for (const [host, loopback] of HOSTS) {
    it(`${JSON.stringify(host)} is ${loopback ? '' : 'not '}loopback`, () => assert.equal(isLoopback(host), loopback));
  }

  it('refuses a plaintext listener on 0.0.0.0 with a message that names the switch', () => {
    assert.throws(() => checkPlaintextListener({ host: '0.0.0.0', port: 0, insecurePlaintextOffLoopback: false }), {
      name: 'ConfigError',
      message:
        'config.listen.host "0.0.0.0" is not a loopback address and config.listen.tls is not set: configure TLS, ' +
        'or set config.listen.insecurePlaintextOffLoopback to true to serve plaintext HTTP to the network anyway',
    });
    assert.equal(
      checkPlaintextListener({ host: '127.0.0.1', port: 0, insecurePlaintextOffLoopback: false }),
      undefined,
    );
  });

  it('startPadlock refuses before it opens anything, and starts with a loud warning when the switch is set', async () => {
    const dir = mkdtempSync(join(pkiDir, 'plain-'));
    writeFileSync(join(dir, 'kek.bin'), Buffer.alloc(32, 7), { mode: 0o600 });
    const raw = {
      listen: { host: '0.0.0.0', port: 0 },
      keks: { active: 'k', files: [{ kid: 'k', path: 'kek.bin' }] },
      store: { sqlite: { path: 'padlock.db' } },
    };
    await assert.rejects(startPadlock(parseConfig(raw, dir)), ConfigError);
    const lines: string[] = [];
    const padlock = await startPadlock(
      parseConfig({ ...raw, listen: { ...raw.listen, insecurePlaintextOffLoopback: true } }, dir),
      { log: createLogger('info', (line) => lines.push(line)) },
    );
    try {
      const warning = lines.map((l) => JSON.parse(l) as { level: string; msg: string }).find((l) => l.level === 'warn');
      assert.ok(warning?.msg.startsWith('INSECURE: plaintext HTTP on a non-loopback address'), lines.join(''));
      assert.equal((await httpRequest(padlock.port, 'GET', '/healthz')).status, 200);
    } finally {
      await padlock.close();
    }
  });
});

describe('client certificate identity', () => {
  const identityOf = (name: string, options: Parameters<typeof issue>[3]): string | undefined =>
    certificateIdentity(
      new X509Certificate(readFileSync(issue(pkiDir, pki.ca, name, { client: true, ...options }).cert)),
    );

  // prettier-ignore
  const CASES: readonly [string, Parameters<typeof issue>[3], string | undefined][] = [
    ['one URI SAN', { sans: ['URI:spiffe://test/billing', 'DNS:billing.test'] }, 'spiffe://test/billing'],
    ['a URI SAN with a comma, quoted by node', { sans: ['URI:spiffe://test/a,b'] }, 'spiffe://test/a,b'],
    ['a URI SAN that reads as two entries', { sans: ['URI:spiffe://test/billing, URI:spiffe://test/admin'] }, 'spiffe://test/billing, URI:spiffe://test/admin'],
    ['two URI SANs', { sans: ['URI:spiffe://test/billing', 'URI:spiffe://test/admin'] }, undefined],
    ['a URI SAN without a scheme', { sans: ['URI:CN=admin'] }, undefined],
    ['no URI SAN: the subject, RFC 2253 order', { subject: '/O=Example/OU=Payments/CN=billing', sans: ['DNS:billing.test'] }, 'CN=billing,OU=Payments,O=Example'],
    ['a subject value with a comma, escaped', { subject: '/O=Example, Inc/CN=billing' }, 'CN=billing,O=Example\\, Inc'],
    ['a multi-valued RDN', { subject: '/O=Example/CN=billing+OU=x' }, undefined],
  ];
  for (const [name, options, expected] of CASES) {
    it(`${name}: ${JSON.stringify(expected)}`, () =>
      assert.equal(identityOf(name.replace(/\W+/g, '-'), options), expected));
  }

  it('matches what openssl prints with -nameopt RFC2253', () => {
    const file = issue(pkiDir, pki.ca, 'rfc2253', { client: true, subject: '/C=DE/O=Example, Inc/CN=billing' }).cert;
    assert.equal(certificateIdentity(new X509Certificate(readFileSync(file))), 'CN=billing,O=Example\\, Inc,C=DE');
  });

  // prettier-ignore
  const SAN_TEXT: readonly [string, string[] | undefined][] = [
    ['DNS:a, URI:spiffe://x/y', ['spiffe://x/y']],
    ['URI:"spiffe://x/a\\u002c URI:spiffe://x/admin", DNS:b', ['spiffe://x/a, URI:spiffe://x/admin']],
    ['URI:"unterminated', undefined],
    ['URI:"bad \\q escape"', undefined],
    ['URI:a,URI:b', ['a,URI:b']],
    ['no colon', undefined],
    ['URI:a, ', undefined],
    ['', []],
  ];
  for (const [text, expected] of SAN_TEXT) {
    it(`parses node's subjectAltName text ${JSON.stringify(text)}`, () =>
      assert.deepEqual(uriSubjectAltNames(text), expected));
  }
});
