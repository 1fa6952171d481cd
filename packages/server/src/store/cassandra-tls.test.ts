/*
 * Cassandra over TLS with password login. The config and file checks run everywhere; the rest
 * runs against the secure node that scripts/cassandra/start-secure.sh starts (scripts/test.sh
 * does, and sets PADLOCK_TEST_CASSANDRA_SECURE and PADLOCK_TEST_CASSANDRA_SECURE_DIR): TLS only on
 * its CQL port, a client certificate required, PasswordAuthenticator and CassandraAuthorizer.
 */
import { PadlockError } from '@padlock/core';
import cassandra from 'cassandra-driver';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { ConfigError, parseConfig, type CassandraAuthConfig, type CassandraTlsConfig } from '../config.js';
import { assertError, servedKeys, startHarness, type KeysBody } from '../testing/harness.js';
import { requiredEnv } from '../testing/services-env.js';
import { connectionSecurity } from './cassandra-security.js';
import { CassandraKeyStore, type CassandraStoreOptions } from './cassandra.js';
import { tamperCassandra } from '../testing/tamper.js';
import { runKeyStoreConformance } from './conformance.js';
import { withoutReceipt } from '../testing/receipts.js';

const KEKS = { active: 'k1', files: [{ kid: 'k1', path: 'kek.bin' }] };

function cassandraConfig(cassandraSection: Record<string, unknown>): ReturnType<typeof parseConfig> {
  return parseConfig({ keks: KEKS, store: { kind: 'cassandra', cassandra: cassandraSection } }, '/etc/padlock');
}

describe('config: store.cassandra.tls and store.cassandra.auth', () => {
  it('accepts both, checks server names by default, and resolves paths against the config directory', () => {
    const config = cassandraConfig({
      tls: { caFile: 'ca.pem', certFile: '/abs/client.pem', keyFile: 'client.key' },
      auth: { username: 'padlock', passwordFile: 'cassandra.password' },
    });
    assert.deepEqual(config.store.cassandra.tls, {
      caFile: '/etc/padlock/ca.pem',
      certFile: '/abs/client.pem',
      keyFile: '/etc/padlock/client.key',
      verifyServerName: true,
    });
    assert.deepEqual(config.store.cassandra.auth, {
      username: 'padlock',
      passwordFile: '/etc/padlock/cassandra.password',
    });
    assert.ok(Object.isFrozen(config.store.cassandra.tls));
  });

  it('leaves both off by default', () => {
    const config = cassandraConfig({});
    assert.equal(config.store.cassandra.tls, undefined);
    assert.equal(config.store.cassandra.auth, undefined);
  });

  const refused: { name: string; section: Record<string, unknown>; message: RegExp }[] = [
    {
      name: 'an inline password, with where the password goes instead',
      section: { auth: { username: 'padlock', password: 'hunter2', passwordFile: 'p' } },
      message: /auth: unknown setting "password": the password is read from passwordFile/,
    },
    {
      name: 'auth without a password file',
      section: { auth: { username: 'padlock' } },
      message: /auth: must have required property 'passwordFile'/,
    },
    {
      name: 'a username with a control character',
      section: { auth: { username: 'pad\u0000lock', passwordFile: 'p' } },
      message: /auth\.username: must match pattern/,
    },
    {
      name: 'tls without a CA file (the system CAs are not trusted)',
      section: { tls: { certFile: 'c', keyFile: 'k' } },
      message: /tls: must have required property 'caFile'/,
    },
    {
      name: 'a certificate without its key',
      section: { tls: { caFile: 'ca.pem', certFile: 'c.pem' } },
      message: /tls: certFile and keyFile go together/,
    },
    {
      name: 'a key without its certificate',
      section: { tls: { caFile: 'ca.pem', keyFile: 'c.key' } },
      message: /tls: certFile and keyFile go together/,
    },
    {
      name: 'a server name that is not a host name',
      section: { tls: { caFile: 'ca.pem', serverName: 'a b' } },
      message: /tls\.serverName: must match pattern/,
    },
    {
      name: 'a server name that would not be checked',
      section: { tls: { caFile: 'ca.pem', serverName: 'db.example', verifyServerName: false } },
      message: /serverName has no effect with verifyServerName false/,
    },
    {
      name: 'a misspelt TLS setting',
      section: { tls: { caFile: 'ca.pem', rejectUnauthorised: false } },
      message: /tls: unknown setting "rejectUnauthorised"/,
    },
  ];
  for (const { name, section, message } of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => cassandraConfig(section),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          assert.doesNotMatch(error.message, /hunter2/);
          return true;
        },
      );
    });
  }
});

describe('Cassandra TLS and password files, read at start', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-cassandra-files-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
  function file(name: string, content: string | Buffer, mode = 0o600): string {
    const path = join(dir, name);
    writeFileSync(path, content);
    chmodSync(path, mode);
    return path;
  }
  const auth = (passwordFile: string): { auth: CassandraAuthConfig } => ({
    auth: { username: 'padlock', passwordFile },
  });
  const tls = (extra: Partial<CassandraTlsConfig>): { tls: CassandraTlsConfig } => ({
    tls: { caFile: join(dir, 'missing-ca.pem'), verifyServerName: true, ...extra },
  });

  function refuses(config: Parameters<typeof connectionSecurity>[0], message: RegExp): void {
    assert.throws(
      () => connectionSecurity(config),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, message);
        assert.ok(!error.message.includes(PASSWORD), 'the message holds the password');
        assert.doesNotMatch(error.message, /PRIVATE KEY|BEGIN/, 'the message holds file contents');
        return true;
      },
    );
  }

  it('builds the SASL PLAIN token from the password file, dropping one trailing newline', async () => {
    const { authProvider } = connectionSecurity(auth(file('ok.password', `${PASSWORD}\r\n`)));
    assert.ok(authProvider instanceof cassandra.auth.PlainTextAuthProvider);
    const token = await new Promise<Buffer>((done, fail) => {
      authProvider
        .newAuthenticator('127.0.0.1:9042', 'org.apache.cassandra.auth.PasswordAuthenticator')
        .initialResponse((error: Error | null, bytes: Buffer) => (error === null ? done(bytes) : fail(error)));
    });
    assert.deepEqual(token, Buffer.from(`\0padlock\0${PASSWORD}`));
    // No string copy of the password on the provider: it prints without it.
    assert.ok(!inspect(authProvider, { showHidden: true, depth: 5 }).includes(PASSWORD));
    assert.ok(!JSON.stringify(authProvider).includes(PASSWORD));
  });

  it('refuses a password file readable by group or others, naming the mode', () => {
    refuses(auth(file('open.password', PASSWORD, 0o644)), /accessible by group or others \(mode 644\); chmod 600 it/);
    refuses(auth(file('group.password', PASSWORD, 0o640)), /mode 640/);
  });

  it('refuses a missing, empty, multi-line or oversized password file without printing it', () => {
    refuses(auth(join(dir, 'nope.password')), /cannot open Cassandra password file at .*nope\.password: ENOENT/);
    refuses(auth(file('empty.password', '\n')), /password file at .* is empty/);
    refuses(auth(file('two.password', `${PASSWORD}\n${PASSWORD}\n`)), /must hold one line/);
    refuses(auth(file('nul.password', `${PASSWORD}\0x`)), /must hold one line/);
    refuses(auth(file('huge.password', 'x'.repeat(1025))), /larger than 1024 bytes/);
    refuses(auth(dir), /is not a regular file|accessible by group or others/);
  });

  it('refuses a missing or non-PEM CA file and certificate', () => {
    refuses(tls({}), /cannot open Cassandra TLS CA file at .*missing-ca\.pem: ENOENT/);
    // A device would never end (or never start, for a FIFO): refused before reading.
    refuses(tls({ caFile: '/dev/zero' }), /CA file at \/dev\/zero is not a regular file/);
    const huge = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(1024 * 1024)}\n`;
    refuses(tls({ caFile: file('huge-ca.pem', huge, 0o644) }), /CA file at .* is larger than 1048576 bytes/);
    refuses(tls({ caFile: file('ca.der', randomBytes(600), 0o644) }), /CA file at .* is not a PEM file of CERTIFICATE/);
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    refuses(tls({ caFile: file('key-as-ca.pem', key) }), /is not a PEM file of CERTIFICATE blocks/);
  });

  it('refuses a client key readable by others, encrypted, or not a key, before anything else is read', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const plain = privateKey.export({ type: 'pkcs8', format: 'pem' });
    const encrypted = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' });
    const cert = file('fake-cert.pem', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 0o644);
    const ca = file('fake-ca.pem', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 0o644);
    refuses(
      tls({ caFile: ca, certFile: cert, keyFile: file('open.key', plain, 0o644) }),
      /client key file at .* accessible by group or others \(mode 644\)/,
    );
    refuses(tls({ caFile: ca, certFile: cert, keyFile: file('enc.key', encrypted) }), /is encrypted/);
    refuses(
      tls({ caFile: ca, certFile: cert, keyFile: file('cert-as.key', '-----BEGIN CERTIFICATE-----\n') }),
      /not a PEM private key/,
    );
    // Files that look right but OpenSSL cannot load: refused at start with OpenSSL's reason.
    refuses(tls({ caFile: ca, certFile: cert, keyFile: file('ok.key', plain) }), /tls: the files cannot be used: /);
  });
});

// ---------------------------------------------------------------------------------------------
// Against the secure node.

const env = requiredEnv('PADLOCK_TEST_CASSANDRA_SECURE');
const clientDir = resolve(process.env['PADLOCK_TEST_CASSANDRA_SECURE_DIR'] ?? '.cassandra/secure/client');
const at = (name: string): string => join(clientDir, name);
const CONNECT_TIMEOUT_MS = 2000;

function secureOptions(keyspace: string, overrides: Partial<CassandraStoreOptions> = {}): CassandraStoreOptions {
  return {
    contactPoints: (env.value ?? '').split(','),
    localDataCenter: 'dc1',
    keyspace,
    replication: { dc1: 1 },
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    readTimeoutMs: 5000,
    hedgeAfterMs: 8,
    createSchema: true,
    tls: { caFile: at('ca.pem'), certFile: at('client.pem'), keyFile: at('client.key'), verifyServerName: true },
    auth: { username: 'padlock', passwordFile: at('padlock.password') },
    ...overrides,
  };
}

async function dropAndClose(store: CassandraKeyStore, keyspace: string): Promise<void> {
  try {
    await store.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 60000 });
  } finally {
    await store.close();
  }
}

if (env.skip === false) {
  const keyspace = `padlock_tls_conformance_${randomBytes(4).toString('hex')}`;
  runKeyStoreConformance('cassandra over TLS with password login', async () => {
    const store = await CassandraKeyStore.open(secureOptions(keyspace));
    const peers: CassandraKeyStore[] = [];
    return {
      store,
      openPeer: async () => {
        const peer = await CassandraKeyStore.open(secureOptions(keyspace, { createSchema: false }));
        peers.push(peer);
        return peer;
      },
      dispose: async () => {
        for (const peer of peers) await peer.close();
        await dropAndClose(store, keyspace);
      },
      tamper: (edit) => tamperCassandra(store, keyspace, edit),
    };
  });
}

describe('Cassandra store over TLS with password login (secure node)', { skip: env.skip }, () => {
  const password = readSecurePassword();
  const base = secureOptions('padlock_unused', { createSchema: false });
  const baseTls = base.tls as CassandraTlsConfig;
  it('creates, reads and shreds a keychain, on a connection that is TLS with the given settings', async () => {
    const ks = `padlock_tls_${randomBytes(4).toString('hex')}`;
    const store = await CassandraKeyStore.open(secureOptions(ks));
    try {
      const o = (store.driver as unknown as { options: cassandra.ClientOptions }).options;
      assert.equal(o.sslOptions?.rejectUnauthorized, true, 'the driver defaults to false: it must be set');
      assert.ok(o.sslOptions?.secureContext !== undefined);
      // The key is inside OpenSSL's context, not in the options as bytes that would print (a Buffer
      // prints its first bytes in hex: "PRIVATE" is 50 52 49 56 41 54 45).
      const printed = inspect(o, { depth: 8 });
      assert.ok(!printed.includes('PRIVATE KEY') && !printed.includes('50 52 49 56 41 54 45'));
      assert.deepEqual(
        Object.keys(o.sslOptions ?? {}).filter((k) => ['key', 'cert', 'ca', 'pfx'].includes(k)),
        [],
      );
      assert.ok(o.authProvider instanceof cassandra.auth.PlainTextAuthProvider);

      const wrapped = randomBytes(70);
      await store.insertKeys('tls-user', [{ category: 'profile', version: 1, wrapped, createdAt: 1 }]);
      const read = await store.getKeychain('tls-user', { fresh: true });
      assert.equal(read.length, 1);
      assert.ok(Buffer.from(read[0]?.wrapped ?? []).equals(wrapped));
      assert.equal(await store.shred('tls-user', undefined, 2), 1);
      const shredded = await store.getKeychain('tls-user', { fresh: true });
      assert.equal(shredded[0]?.shreddedAt, 2);
      assert.equal(shredded[0]?.wrapped, null);

      // The node saw this store's connections as TLS, logged in as padlock (the padlock role may
      // not read system_views: the test node's default superuser does).
      const admin = adminClient();
      try {
        const clients = await admin.execute('SELECT username, ssl_enabled, ssl_protocol FROM system_views.clients');
        const ours = clients.rows.filter((r) => r['username'] === 'padlock');
        assert.ok(ours.length > 0, 'no connection of padlock in system_views.clients');
        for (const row of ours) {
          assert.equal(row['ssl_enabled'], true);
          assert.match(String(row['ssl_protocol']), /^TLSv1\.[23]$/);
        }
      } finally {
        await admin.shutdown();
      }
    } finally {
      await dropAndClose(store, ks);
    }
  });

  it('serves Padlock end to end from its config: create, read and shred a keychain over TLS as padlock', async () => {
    const ks = `padlock_e2e_${randomBytes(4).toString('hex')}`;
    // Through parseConfig, openStore and the HTTP routes; the node speaks nothing but TLS.
    const h = await startHarness({
      config: {
        store: {
          kind: 'cassandra',
          cassandra: {
            contactPoints: base.contactPoints,
            localDataCenter: 'dc1',
            keyspace: ks,
            replication: { dc1: 1 },
            readTimeoutMs: 5000,
            tls: { caFile: at('ca.pem'), certFile: at('client.pem'), keyFile: at('client.key') },
            auth: { username: 'padlock', passwordFile: at('padlock.password') },
          },
        },
      },
    });
    try {
      assert.equal(h.config.store.cassandra.tls?.verifyServerName, true);
      assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'tls-e2e' } })).status, 201);
      const keys = await h.call('GET', '/v1/keys/tls-e2e');
      assert.equal(keys.status, 200, keys.text);
      assert.deepEqual(servedKeys(keys.body as KeysBody), await h.expectedKeys('admin', 'tls-e2e'));
      assert.deepEqual(withoutReceipt((await h.call('DELETE', '/v1/keychains/tls-e2e')).body), {
        userId: 'tls-e2e',
        shredded: 3,
      });
      assertError(await h.call('GET', '/v1/keys/tls-e2e'), 410, 'KEYCHAIN_SHREDDED');
      assert.equal((await h.rootKeys('tls-e2e')).size, 0, 'a root key is still in the store');
      assert.ok(!h.logLines.join('\n').includes(password), 'the password is in the log');
    } finally {
      await h.close();
    }
  });

  it('checks the certificate against serverName when one is given', async () => {
    const store = await CassandraKeyStore.open(
      secureOptions('padlock_unused', {
        createSchema: false,
        tls: {
          caFile: at('ca.pem'),
          certFile: at('client.pem'),
          keyFile: at('client.key'),
          serverName: 'cassandra-secure.padlock.test',
          verifyServerName: true,
        },
      }),
    );
    try {
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('serves as a role with SELECT and MODIFY only when createSchema is false (CREATE is checked first)', async () => {
    const ks = `padlock_roles_${randomBytes(4).toString('hex')}`;
    const role = `padlock_serve_${randomBytes(4).toString('hex')}`;
    const owner = await CassandraKeyStore.open(secureOptions(ks));
    const admin = adminClient();
    const passwordFile = writePasswordFile(`${role}-pw-${randomBytes(8).toString('hex')}`);
    try {
      const rolePassword = readFileSync(passwordFile, 'utf8').trim();
      await admin.execute(`CREATE ROLE ${role} WITH PASSWORD = '${rolePassword}' AND LOGIN = true`);
      await admin.execute(`GRANT SELECT ON KEYSPACE ${ks} TO ${role}`);
      await admin.execute(`GRANT MODIFY ON KEYSPACE ${ks} TO ${role}`);
      const asRole = (createSchema: boolean): CassandraStoreOptions =>
        secureOptions(ks, { createSchema, auth: { username: role, passwordFile } });
      await assert.rejects(CassandraKeyStore.open(asRole(true)), /has no CREATE permission on <all keyspaces>/);
      const serving = await CassandraKeyStore.open(asRole(false));
      try {
        const wrapped = randomBytes(70);
        await serving.insertKeys('role-user', [{ category: 'profile', version: 1, wrapped, createdAt: 1 }]);
        const read = await serving.getKeychain('role-user', { fresh: true });
        assert.ok(Buffer.from(read[0]?.wrapped ?? []).equals(wrapped));
      } finally {
        await serving.close();
      }
    } finally {
      await admin.execute(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await admin.shutdown();
      await dropAndClose(owner, ks);
    }
  });

  it('runs as a role that cannot grant itself more', async () => {
    const store = await CassandraKeyStore.open(secureOptions('padlock_unused', { createSchema: false }));
    try {
      await assert.rejects(
        store.driver.execute('GRANT ALL PERMISSIONS ON ALL KEYSPACES TO padlock', [], { prepare: false }),
        /has no AUTHORIZE permission on <all keyspaces>/,
      );
    } finally {
      await store.close();
    }
  });

  const refused: { name: string; options: () => CassandraStoreOptions; message: RegExp }[] = [
    {
      name: 'a node whose certificate does not chain to the configured CA',
      options: () => ({ ...base, tls: { ...baseTls, caFile: at('other-ca.pem') } }),
      message: /: Error: self-signed certificate in certificate chain \(check store\.cassandra\.tls against/,
    },
    {
      name: 'a node of another CA even with the name check off (the chain is still checked)',
      options: () => ({ ...base, tls: { ...baseTls, caFile: at('other-ca.pem'), verifyServerName: false } }),
      message: /: Error: self-signed certificate in certificate chain \(check store\.cassandra\.tls/,
    },
    {
      name: 'a node whose certificate does not carry serverName',
      options: () => ({ ...base, tls: { ...baseTls, serverName: 'wrong.padlock.test' } }),
      message:
        /: Error: Hostname\/IP does not match certificate's altnames: Host: wrong\.padlock\.test\. is not in the cert's altnames: IP Address:127\.0\.0\.4, DNS:cassandra-secure\.padlock\.test \(check store\.cassandra\.tls/,
    },
    {
      name: 'a wrong password, without the password in the message',
      options: () => ({ ...base, auth: { username: 'padlock', passwordFile: wrongPasswordFile() } }),
      message:
        /: AuthenticationError: Provided username padlock and\/or password are incorrect \(check store\.cassandra\.auth\)$/,
    },
    {
      name: 'no login at all',
      options: () => ({ ...base, auth: undefined }) as unknown as CassandraStoreOptions,
      message:
        /: AuthenticationError: Host 127\.0\.0\.4:9042 requires authentication, but no authenticator found in the options \(check store\.cassandra\.auth\)$/,
    },
    {
      name: 'plaintext against the TLS port, within the connect timeout',
      options: () => ({ ...base, tls: undefined }) as unknown as CassandraStoreOptions,
      message:
        /: Error: read ECONNRESET \(a node that requires TLS resets plaintext: is store\.cassandra\.tls missing\?\)$/,
    },
    {
      name: 'no client certificate (the node requires one)',
      options: () => ({ ...base, tls: { caFile: at('ca.pem'), verifyServerName: true } }),
      message: /: Error: .*alert certificate required/,
    },
    {
      name: 'a client certificate from a CA the node does not trust',
      options: () => ({
        ...base,
        tls: { ...baseTls, certFile: at('other-client.pem'), keyFile: at('other-client.key') },
      }),
      message: /: Error: .*alert (internal error|bad certificate|unknown ca|certificate unknown)/,
    },
  ];
  for (const { name, options, message } of refused) {
    it(`refuses ${name}`, async () => {
      const started = Date.now();
      // A store that opens anyway is closed, so that the failure is reported instead of a hang.
      const outcome = await CassandraKeyStore.open(options()).then(
        async (store) => {
          await store.close();
          return undefined;
        },
        (error: unknown) => error,
      );
      assert.ok(outcome !== undefined, 'the store opened');
      // One clear line: the node, the reason, the setting to check; no inspected objects or stacks.
      assert.ok(outcome instanceof PadlockError && outcome.code === 'STORE_UNAVAILABLE', describeError(outcome));
      assert.match(outcome.message, /^cannot connect to Cassandra: 127\.0\.0\.4:9042: /);
      assert.match(outcome.message, message);
      assert.ok(!outcome.message.includes('\n'), outcome.message);
      const text = describeError(outcome);
      assert.ok(!text.includes(password), 'the error carries the password');
      assert.ok(!text.includes(WRONG_PASSWORD), 'the error carries the password tried');
      const elapsed = Date.now() - started;
      assert.ok(
        elapsed < CONNECT_TIMEOUT_MS + 1500,
        `refused after ${elapsed} ms (connect timeout ${CONNECT_TIMEOUT_MS})`,
      );
    });
  }

  it('refuses a client key that does not match its certificate before connecting', () => {
    assert.throws(
      () => connectionSecurity({ tls: { ...baseTls, keyFile: at('other-client.key') } }),
      (error: unknown) =>
        error instanceof ConfigError && /tls: the files cannot be used: .*key values mismatch/.test(error.message),
    );
  });
});

/** The test node's default superuser (cassandra/cassandra, kept on that node only), over TLS. */
function adminClient(): cassandra.Client {
  const options = secureOptions('padlock_unused');
  return new cassandra.Client({
    contactPoints: options.contactPoints.slice(),
    localDataCenter: 'dc1',
    sslOptions: connectionSecurity(options).sslOptions ?? {},
    authProvider: new cassandra.auth.PlainTextAuthProvider('cassandra', 'cassandra'),
  });
}

let passwordDir: string | undefined;
function writePasswordFile(password: string): string {
  if (passwordDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'padlock-cassandra-passwords-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    passwordDir = dir;
  }
  const path = join(passwordDir, randomBytes(6).toString('hex'));
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return path;
}

const WRONG_PASSWORD = `wrong-${randomBytes(8).toString('hex')}`;
let wrongPasswordPath: string | undefined;
function wrongPasswordFile(): string {
  wrongPasswordPath ??= writePasswordFile(WRONG_PASSWORD);
  return wrongPasswordPath;
}

function readSecurePassword(): string {
  if (env.skip !== false) return '\0never';
  return readFileSync(at('padlock.password'), 'utf8').trim();
}

/** The error's message with its cause's and inner errors' (the driver's NoHostAvailableError). */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const inner = (error as { innerErrors?: Record<string, unknown> }).innerErrors ?? {};
  const nested = [error.cause, ...Object.values(inner)].filter((e) => e !== undefined);
  return [`${error.name}: ${error.message}`, ...nested.map(describeError)].join(' | ');
}
