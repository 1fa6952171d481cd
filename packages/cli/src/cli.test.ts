import { unwrapRootKey } from '@padlock/core';
import {
  loadConfig,
  loadKeks,
  newCredential,
  newServiceRecord,
  ServiceRegistry,
  SqliteKeyStore,
  startPadlock,
  createLogger,
  type Padlock,
} from '@padlock/server';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { issue, makeTestPki, type TestPki } from '../../../scripts/testing/certs.mjs';

/* The compiled CLI, run as a child process the way an operator runs it. */

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['PADLOCK_CONFIG'];
  return env;
}

function padlock(args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env: childEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function json<T>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** Hex, base64 and base64url of the bytes, including the stable middle of each at any alignment. */
function textForms(bytes: Buffer): string[] {
  const forms = [bytes.toString('hex'), bytes.toString('hex').toUpperCase()];
  for (const shift of [0, 1, 2]) {
    const padded = Buffer.concat([Buffer.alloc(shift), bytes, Buffer.alloc(3)]);
    for (const encoding of ['base64', 'base64url'] as const) {
      forms.push(padded.toString(encoding).slice(4, 4 * Math.floor((bytes.length - 2) / 3)));
    }
  }
  return forms;
}

const COMMANDS = [
  'init',
  'migrate',
  'serve',
  'scheduler',
  'dev',
  'service create',
  'service list',
  'service grant',
  'service revoke',
  'service tls-identities',
  'service credential-add',
  'service credential-revoke',
  'keychain create',
  'keychain show',
  'keychain schedule-shred',
  'keychain cancel',
  'keychain hold',
  'keychain release',
  'keychain status',
  'keychain shred',
  'receipt verify',
  'receipt keys',
  'receipt rotate-key',
  'audit verify',
  'audit export',
  'backup create',
  'backup restore',
  'journal replay',
  'journal status',
  'canary',
  'kek add',
  'kek activate',
  'kek rewrap',
  'kek rekey-journal',
  'kek status',
  'kek retire',
];

interface Created {
  serviceId: string;
  permissions: { read: string[]; create: boolean; rotate: boolean; shred: boolean; hold: boolean };
  credentialId: string;
  credential: string;
}

interface Listed {
  serviceId: string;
  permissions: Created['permissions'];
  tlsIdentities: string[];
  createdAt: string;
  credentials: { credentialId: string; createdAt: string; revokedAt: string | null }[];
}

interface Shown {
  userId: string;
  keys: { category: string; version: number; state: string; createdAt: string; shreddedAt: string | null }[];
}

describe('padlock CLI', () => {
  let dir: string;
  let configFile: string;
  const credentials: string[] = [];
  const run = (...args: string[]): Promise<Run> => padlock(args, dir);
  const withConfig = (...args: string[]): Promise<Run> => padlock([...args, '--config', configFile], dir);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-cli-'));
    configFile = join(dir, 'conf', 'padlock.json');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('init writes a config and a 32-byte KEK readable by the owner only, and refuses to overwrite', async () => {
    const out = json<{ config: string; kek: string }>(await run('init', '--dir', 'conf', '--port', '0'));
    assert.equal(out.config, configFile);
    const kek = statSync(out.kek);
    assert.equal(kek.size, 32);
    assert.equal(kek.mode & 0o777, 0o600);
    assert.equal(statSync(configFile).mode & 0o077, 0);
    const config = loadConfig(configFile);
    assert.equal(config.listen.port, 0);
    // The dev config (also what `padlock dev` writes) is plaintext on loopback only.
    assert.equal(config.listen.host, '127.0.0.1');
    assert.equal(config.listen.tls, undefined);
    assert.deepEqual(config.categories, ['profile', 'payments', 'advertising']);
    assert.equal(config.store.kind, 'sqlite');

    const again = await run('init', '--dir', 'conf');
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^padlock: .*already holds a Padlock config or KEK; refusing to overwrite it/);
    assert.equal(readFileSync(out.kek).length, 32);
  });

  it('migrate creates the SQLite store and is idempotent', async () => {
    const db = join(dir, 'conf', 'padlock.db');
    assert.equal(existsSync(db), false);
    for (let i = 0; i < 2; i++) {
      const result = await withConfig('migrate');
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(json<{ store: string; path: string }>(result), {
        store: 'sqlite',
        path: db,
        macs: { sealed: [], resealed: [], unchanged: 0, failed: [] },
      });
    }
    assert.ok(statSync(db).size > 0);
  });

  it('service create prints a pl1 credential once; a second create of the id fails with exit 2', async () => {
    const out = json<Created>(
      await withConfig('service', 'create', 'playlist', '--read', 'profile,payments', '--create'),
    );
    assert.equal(out.serviceId, 'playlist');
    assert.deepEqual(out.permissions, {
      read: ['profile', 'payments'],
      create: true,
      rotate: false,
      shred: false,
      hold: false,
    });
    assert.match(out.credential, /^pl1\.playlist\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    assert.equal(out.credential.split('.')[2], out.credentialId);
    credentials.push(out.credential);
    const ops = json<Created>(await withConfig('service', 'create', 'ops', '--shred', '--rotate'));
    assert.deepEqual(ops.permissions, { read: [], create: false, rotate: true, shred: true, hold: false });
    credentials.push(ops.credential);

    const again = await withConfig('service', 'create', 'playlist');
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^padlock: service "playlist" exists already/);
    assert.equal(again.stdout, '');
  });

  it('service grant and revoke change rights; list shows them, never a secret', async () => {
    const granted = json<{ permissions: Created['permissions'] }>(
      await withConfig('service', 'grant', 'playlist', '--read', 'advertising', '--rotate'),
    );
    assert.deepEqual(granted.permissions, {
      read: ['profile', 'payments', 'advertising'],
      create: true,
      rotate: true,
      shred: false,
      hold: false,
    });
    const revoked = json<{ permissions: Created['permissions'] }>(
      await withConfig('service', 'revoke', 'playlist', '--read', 'payments', '--rotate'),
    );
    assert.deepEqual(revoked.permissions, {
      read: ['profile', 'advertising'],
      create: true,
      rotate: false,
      shred: false,
      hold: false,
    });

    const listing = await withConfig('service', 'list');
    const services = json<Listed[]>(listing);
    assert.deepEqual(
      services.map((s) => [s.serviceId, s.permissions, s.credentials.length]),
      [
        ['ops', { read: [], create: false, rotate: true, shred: true, hold: false }, 1],
        ['playlist', { read: ['profile', 'advertising'], create: true, rotate: false, shred: false, hold: false }, 1],
      ],
    );
    for (const credential of credentials) {
      const secret = credential.split('.')[3] ?? '';
      assert.ok(!listing.stdout.includes(secret), 'service list printed a secret');
      for (const form of textForms(Buffer.from(secret, 'base64url'))) assert.ok(!listing.stdout.includes(form));
    }
    assert.doesNotMatch(listing.stdout, /verifier|pl1\./);
  });

  it('credential-add and credential-revoke rotate a credential', async () => {
    const added = json<Created>(await withConfig('service', 'credential-add', 'playlist'));
    assert.match(added.credential, /^pl1\.playlist\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    assert.notEqual(added.credential, credentials[0]);
    const first = credentials[0]!.split('.')[2]!;
    const revoked = json<{ revoked: boolean }>(await withConfig('service', 'credential-revoke', 'playlist', first));
    assert.equal(revoked.revoked, true);
    const listed = json<Listed[]>(await withConfig('service', 'list')).find((s) => s.serviceId === 'playlist');
    const revokedAt = new Map(listed?.credentials.map((c) => [c.credentialId, c.revokedAt]));
    assert.equal(revokedAt.size, 2);
    assert.ok(typeof revokedAt.get(first) === 'string', 'the revoked credential is not marked revoked');
    assert.equal(revokedAt.get(added.credentialId), null);
    const twice = await withConfig('service', 'credential-revoke', 'playlist', first);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /has no live credential/);

    // The server accepts what the CLI wrote: the new credential with its rights, not the revoked one.
    const server: Padlock = await startPadlock(loadConfig(configFile), { log: createLogger('error', () => {}) });
    try {
      const call = (credential: string, method: string, path: string, body?: unknown) =>
        fetch(`http://127.0.0.1:${server.port}${path}`, {
          method,
          headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      const created = await call(added.credential, 'POST', '/v1/keychains', { userId: 'from-cli-server' });
      assert.equal(created.status, 201);
      const body = (await created.json()) as { categories: { category: string }[] };
      assert.deepEqual(
        body.categories.map((c) => c.category),
        ['profile', 'advertising'],
      );
      assert.equal((await call(credentials[0]!, 'GET', '/v1/keys/from-cli-server')).status, 401);
      assert.equal(
        (await call(credentials[1]!, 'DELETE', '/v1/keychains/from-cli-server/categories/profile')).status,
        200,
      );
      assert.equal((await call(credentials[1]!, 'GET', '/v1/keys/from-cli-server')).status, 403);
    } finally {
      await server.close();
    }
    credentials.push(added.credential);
  });

  it('service create and tls-identities set, replace and clear TLS identities; list shows them', async () => {
    const spiffe = 'spiffe://example.org/ns/a/sa/newsletter';
    const subject = 'CN=newsletter, O=Example Corp';
    const made = json<Created & { tlsIdentities: string[] }>(
      await withConfig(
        'service',
        'create',
        'newsletter',
        '--read',
        'profile',
        '--tls-identity',
        spiffe,
        '--tls-identity',
        subject,
      ),
    );
    assert.deepEqual(made.tlsIdentities, [spiffe, subject]);
    const listed = (): Promise<Listed | undefined> =>
      withConfig('service', 'list').then((r) => json<Listed[]>(r).find((s) => s.serviceId === 'newsletter'));
    assert.deepEqual((await listed())?.tlsIdentities, [spiffe, subject]);
    const replaced = await withConfig('service', 'tls-identities', 'newsletter', '--tls-identity', 'CN=newsletter-2');
    assert.deepEqual(json<{ tlsIdentities: string[] }>(replaced).tlsIdentities, ['CN=newsletter-2']);
    assert.deepEqual((await listed())?.tlsIdentities, ['CN=newsletter-2']);

    // One identity, one service: refused on create and on replace, and nothing changes.
    const taken = await withConfig('service', 'create', 'copycat', '--tls-identity', 'CN=newsletter-2');
    assert.equal(taken.code, 2);
    assert.match(taken.stderr, /^padlock: TLS identity "CN=newsletter-2" belongs to service "newsletter" already/);
    assert.equal((await withConfig('service', 'list')).stdout.includes('copycat'), false);
    const twice = await withConfig(
      'service',
      'tls-identities',
      'newsletter',
      '--tls-identity',
      'CN=x',
      '--tls-identity',
      'CN=x',
    );
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /TLS identity "CN=x" is listed twice/);
    assert.deepEqual((await listed())?.tlsIdentities, ['CN=newsletter-2']);

    assert.deepEqual(
      json<{ tlsIdentities: string[] }>(await withConfig('service', 'tls-identities', 'newsletter')).tlsIdentities,
      [],
    );
    assert.deepEqual((await listed())?.tlsIdentities, []);
  });

  it('keychain create is idempotent; show prints metadata and never key bytes; shred destroys', async () => {
    const created = json<{ created: string[] }>(await withConfig('keychain', 'create', 'alice'));
    assert.deepEqual(created.created, ['profile', 'payments', 'advertising']);
    assert.deepEqual(json<{ created: string[] }>(await withConfig('keychain', 'create', 'alice')).created, []);

    const config = loadConfig(configFile);
    const store = new SqliteKeyStore(config.store.sqlite);
    const secrets: Buffer[] = [];
    try {
      for (const row of await store.getKeychain('alice')) {
        assert.ok(row.wrapped !== null);
        secrets.push(Buffer.from(row.wrapped));
        const root = unwrapRootKey(
          loadKeks(config),
          { userId: 'alice', category: row.category, version: row.version },
          row.wrapped,
        );
        secrets.push(Buffer.from(root.expose()));
        root.wipe();
      }
    } finally {
      await store.close();
    }
    secrets.push(readFileSync(join(dir, 'conf', 'kek-1.bin')));
    assert.equal(secrets.length, 7);

    const show = await withConfig('keychain', 'show', 'alice');
    const shown = json<Shown>(show);
    assert.deepEqual(
      shown.keys.map((k) => [k.category, k.version, k.state, k.shreddedAt]),
      [
        ['advertising', 1, 'active', null],
        ['payments', 1, 'active', null],
        ['profile', 1, 'active', null],
      ],
    );
    for (const k of shown.keys)
      assert.deepEqual(Object.keys(k).sort(), ['category', 'createdAt', 'shreddedAt', 'state', 'version']);
    const printed = show.stdout + show.stderr;
    for (const secret of secrets) {
      assert.ok(!Buffer.from(printed, 'latin1').includes(secret), 'raw key bytes printed');
      for (const form of textForms(secret)) assert.ok(!printed.includes(form), 'key bytes printed');
    }

    const one = json<{ shredded: number; category: string }>(
      await withConfig('keychain', 'shred', 'alice', '--category', 'advertising'),
    );
    assert.deepEqual([one.category, one.shredded], ['advertising', 1]);
    const all = json<{ shredded: number; servedUntilAtMost: string }>(await withConfig('keychain', 'shred', 'alice'));
    assert.equal(all.shredded, 2);
    assert.equal(all.servedUntilAtMost, '30s');
    const after = json<Shown>(await withConfig('keychain', 'show', 'alice'));
    assert.ok(after.keys.every((k) => k.state === 'shredded' && k.shreddedAt !== null));

    const missing = await withConfig('keychain', 'show', 'nobody');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'padlock: user "nobody" has no keychain\n');
  });

  it('receipts and the audit log from the command line: verify, rotate, tamper, export', async () => {
    await withConfig('keychain', 'create', 'carol');
    const shred = await withConfig('keychain', 'shred', 'carol', '--category', 'payments');
    assert.equal(shred.code, 0, shred.stderr);
    const receiptFile = join(dir, 'receipt.json');
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(receiptFile, shred.stdout);
    const keys = await withConfig('receipt', 'keys');
    writeFileSync(jwksFile, keys.stdout);
    const good = await run('receipt', 'verify', receiptFile, '--jwks', jwksFile);
    assert.equal(good.code, 0, good.stderr);
    const claims = json<{ valid: boolean; claims: { sub: string; categories: { category: string }[] } }>(good);
    assert.deepEqual(
      [claims.valid, claims.claims.sub, claims.claims.categories[0]?.category],
      [true, 'carol', 'payments'],
    );

    // The bare JWS with one character of its claims changed: exit 1, and the reason on stderr.
    const jws = (JSON.parse(shred.stdout) as { receipt: { jws: string } }).receipt.jws;
    const at = jws.indexOf('.') + 10;
    writeFileSync(receiptFile, jws.slice(0, at) + (jws[at] === 'A' ? 'B' : 'A') + jws.slice(at + 1));
    const bad = await run('receipt', 'verify', receiptFile, '--jwks', jwksFile);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^padlock: the receipt does not verify: /);

    // After a rotation the old receipt still verifies with the new JWKS, which holds both keys.
    const rotated = json<{ published: string[] }>(await withConfig('receipt', 'rotate-key'));
    assert.equal(rotated.published.length, 2);
    writeFileSync(receiptFile, shred.stdout);
    writeFileSync(jwksFile, (await withConfig('receipt', 'keys')).stdout);
    assert.equal((await run('receipt', 'verify', receiptFile, '--jwks', jwksFile)).code, 0);

    const verified = await withConfig('audit', 'verify');
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(json<{ ok: boolean }>(verified).ok, true);
    const lines = (await withConfig('audit', 'export', '--since', '2020-01-01T00:00:00Z')).stdout.trim().split('\n');
    const exported = lines.map((l) => JSON.parse(l) as { chain: string; seq: number; body: string });
    const types = exported.map((e) => (JSON.parse(e.body) as { event: { type: string } }).event.type);
    for (const t of ['keychain.create', 'category.shred', 'receipt.rotate-key', 'service.create', 'credential.add'])
      assert.ok(types.includes(t), `${t} is in the export`);
    assert.equal((await withConfig('audit', 'export', '--since', String(Date.now() + 60000))).stdout, '');

    // Edit one entry in the database, as someone with write access to it would: verify names it, exit 1.
    const target = exported.find((e) => e.body.includes('"category.shred"') && e.body.includes('"carol"'))!;
    const db = new Database(join(dir, 'conf', 'padlock.db'));
    db.prepare('UPDATE audit_entries SET body = ? WHERE chain_id = ? AND seq = ?').run(
      target.body.replace('"carol"', '"someone-else"'),
      target.chain,
      target.seq,
    );
    db.close();
    const broken = await withConfig('audit', 'verify');
    assert.equal(broken.code, 1);
    assert.equal(
      broken.stderr,
      `padlock: audit chain ${target.chain}, entry ${target.seq}: edited (its body does not match its hash)\n`,
    );

    const badSince = await withConfig('audit', 'export', '--since', 'yesterday');
    assert.equal(badSince.code, 2);
    assert.match(badSince.stderr, /--since "yesterday" is neither an ISO 8601 time nor milliseconds/);
    const noJwks = await run('receipt', 'verify', receiptFile);
    assert.equal(noJwks.code, 2);
    assert.match(noJwks.stderr, /--jwks FILE is required/);
  });

  it('keychain hold stops every CLI shred until release; schedule-shred, cancel and status work on the store', async () => {
    json(await withConfig('keychain', 'create', 'bob'));
    const hold = json<{ holdId: string; placedBy: string; state: string }>(
      await withConfig('keychain', 'hold', 'bob', '--category', 'payments', '--reason', 'case 7'),
    );
    assert.match(hold.placedBy, /^operator:/);
    assert.equal(hold.state, 'in_force');
    for (const args of [['--category', 'payments'], []]) {
      const refused = await withConfig('keychain', 'shred', 'bob', ...args);
      assert.equal(refused.code, 1, refused.stderr);
      assert.equal(refused.stderr, `padlock: legal hold ${hold.holdId} forbids shredding this\n`);
    }
    assert.ok(json<Shown>(await withConfig('keychain', 'show', 'bob')).keys.every((k) => k.state === 'active'));
    const scheduled = json<{ scheduleId: string; state: string; serveDuringGrace: boolean }>(
      await withConfig('keychain', 'schedule-shred', 'bob', '--grace', '3600', '--withhold'),
    );
    assert.deepEqual([scheduled.state, scheduled.serveDuringGrace], ['pending', false]);
    const status = json<{ schedules: { scheduleId: string; verified: boolean }[]; holds: { holdId: string }[] }>(
      await withConfig('keychain', 'status', 'bob'),
    );
    assert.deepEqual(
      status.schedules.map((x) => [x.scheduleId, x.verified]),
      [[scheduled.scheduleId, true]],
    );
    assert.deepEqual(
      status.holds.map((h) => h.holdId),
      [hold.holdId],
    );
    const cancelled = json<{ state: string }>(await withConfig('keychain', 'cancel', 'bob', scheduled.scheduleId));
    assert.equal(cancelled.state, 'cancelled');
    assert.equal((await withConfig('keychain', 'cancel', 'bob', scheduled.scheduleId)).code, 1);
    assert.equal(
      json<{ state: string }>(await withConfig('keychain', 'release', 'bob', hold.holdId)).state,
      'released',
    );
    assert.equal(json<{ shredded: number }>(await withConfig('keychain', 'shred', 'bob')).shredded, 3);
    for (const [args, why] of [
      [['schedule-shred', 'bob'], 'no time'],
      [['schedule-shred', 'bob', '--grace', '5', '--at', '2030-01-01T00:00:00Z'], 'both times'],
      [['schedule-shred', 'bob', '--grace', '-5'], 'negative grace'],
      [['schedule-shred', 'bob', '--at', 'tomorrow'], 'bad time'],
      [['hold', 'bob'], 'no reason'],
      [['hold', 'bob', '--reason', 'x', '--category', 'nope'], 'unknown category'],
    ] as const) {
      assert.equal((await withConfig('keychain', ...args)).code, 2, why);
    }
  });

  it('--version prints the package version, and takes no companions', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const shown = await run('--version');
    assert.deepEqual(shown, { code: 0, stdout: `padlock ${version}\n`, stderr: '' });
    const extra = await run('--version', 'serve');
    assert.equal(extra.code, 2, 'a command after --version is not silently ignored');
  });

  it('--help of every command exits 0 with its usage', async () => {
    const top = await run('--help');
    assert.equal(top.code, 0);
    const listed = top.stdout
      .split('\n')
      .filter((line) => line.startsWith('  '))
      .map((line) => line.trim().split(/\s+(?:<|\s)/)[0]);
    assert.deepEqual(listed, COMMANDS);
    for (const command of COMMANDS) {
      const help = await run(...command.split(' '), '--help');
      assert.equal(help.code, 0, `${command} --help: ${help.stderr}`);
      assert.ok(help.stdout.startsWith(`usage: padlock ${command}`), help.stdout);
      assert.equal(help.stderr, '');
    }
    const bare = await run();
    assert.equal(bare.code, 2, 'no command at all is a usage error');
    assert.match(bare.stdout, /^usage: padlock <command>/);
  });

  // One row per case, unformatted, so it reads as the table it is.
  // prettier-ignore
  const BAD_ARGS: readonly { name: string; args: readonly string[]; config?: boolean; message: RegExp }[] = [
    { name: 'unknown command', args: ['frobnicate'], message: /unknown command "frobnicate"/ },
    { name: 'unknown subcommand', args: ['service', 'explode'], message: /unknown command "service explode"/ },
    { name: 'group without a subcommand', args: ['keychain'], message: /unknown command "keychain"/ },
    { name: 'unknown option', args: ['service', 'list', '--bogus'], config: true, message: /Unknown option '--bogus'/ },
    { name: 'missing service id', args: ['service', 'create'], config: true, message: /expected <serviceId>, got 0 argument/ },
    { name: 'missing service id without any config', args: ['service', 'create'], message: /expected <serviceId>, got 0 argument/ },
    { name: 'extra argument', args: ['keychain', 'show', 'alice', 'bob'], config: true, message: /expected <userId>, got 2 argument/ },
    { name: 'missing credential id', args: ['service', 'credential-revoke', 'playlist'], config: true, message: /expected <serviceId> <credentialId>/ },
    { name: 'bad service id', args: ['service', 'create', 'Bad_ID'], config: true, message: /service id "Bad_ID" must be 2-64 characters/ },
    { name: 'bad user id', args: ['keychain', 'create', '../etc'], config: true, message: /user id "\.\.\/etc" must be 1-128 characters/ },
    { name: 'bad user id on show', args: ['keychain', 'show', 'a b'], message: /user id "a b" must be/ },
    { name: 'unknown category in --read', args: ['service', 'create', 'svc-x', '--read', 'music'], config: true, message: /category "music" is not one of the configured categories/ },
    { name: 'grant without a right', args: ['service', 'grant', 'playlist'], config: true, message: /name at least one right to grant/ },
    { name: 'grant to an unknown service', args: ['service', 'grant', 'ghost', '--shred'], config: true, message: /no service "ghost"/ },
    { name: 'credential for an unknown service', args: ['service', 'credential-add', 'ghost'], config: true, message: /no service "ghost"/ },
    { name: 'two categories to shred', args: ['keychain', 'shred', 'alice', '--category', 'profile,payments'], config: true, message: /--category takes one of the configured categories/ },
    { name: 'empty category to shred', args: ['keychain', 'shred', 'alice', '--category', ''], config: true, message: /--category takes one/ },
    { name: 'bad port', args: ['init', '--dir', 'other', '--port', 'eighty'], message: /--port must be 0-65535/ },
    { name: 'port out of range', args: ['init', '--dir', 'other', '--port', '70000'], message: /--port must be 0-65535/ },
    { name: 'zero workers', args: ['serve', '--workers', '0'], message: /--workers must be 1-64/ },
    { name: 'TLS identity with a newline', args: ['service', 'create', 'svc-z', '--tls-identity', 'CN=a\nCN=b'], config: true, message: /TLS identity "CN=a\\nCN=b" must be 1-1024 characters, no control characters/ },
    { name: 'TLS identity with a trailing space', args: ['service', 'tls-identities', 'playlist', '--tls-identity', 'CN=a '], config: true, message: /TLS identity "CN=a " must be/ },
    { name: 'TLS identities of an unknown service', args: ['service', 'tls-identities', 'ghost', '--tls-identity', 'CN=ghost'], config: true, message: /no service "ghost"/ },
    { name: 'zero re-wrap rate', args: ['kek', 'rewrap', '--rate', '0'], config: true, message: /--rate must be a whole number 1-1000000/ },
    { name: 're-wrap rate not a number', args: ['kek', 'rewrap', '--rate', '1e3'], config: true, message: /--rate must be a whole number/ },
    { name: 're-wrap page too large', args: ['kek', 'rewrap', '--page-size', '10001'], config: true, message: /--page-size must be a whole number 1-10000/ },
    { name: 'activate an unknown kid', args: ['kek', 'activate', 'ghost'], config: true, message: /no KEK with kid "ghost" in the config/ },
    { name: 'retire without a kid', args: ['kek', 'retire'], config: true, message: /expected <kid>, got 0 argument/ },
    { name: 'option missing its value', args: ['service', 'create', 'svc-y', '--read'], config: true, message: /--read/ },
  ];

  for (const c of BAD_ARGS) {
    it(`bad arguments exit 2 with a clear message: ${c.name}`, async () => {
      const result = await (c.config === true ? withConfig(...c.args) : run(...c.args));
      assert.equal(result.code, 2, `exit ${result.code}: ${result.stderr}`);
      assert.match(result.stderr, /^padlock: /);
      assert.match(result.stderr.split('\n')[0] ?? '', c.message);
      assert.equal(result.stdout, '');
    });
  }

  it('the bad arguments changed nothing', async () => {
    const services = json<Listed[]>(await withConfig('service', 'list'));
    assert.deepEqual(
      services.map((s) => s.serviceId),
      ['newsletter', 'ops', 'playlist'],
    );
    assert.throws(() => statSync(join(dir, 'other')), /ENOENT/);
  });

  it('migrate seals rows written before MACs, once; servers refuse them until then', async () => {
    const config = loadConfig(configFile);
    const keks = loadKeks(config);
    const row = newServiceRecord(
      keks,
      'legacy',
      { read: ['profile'], create: false, rotate: false, shred: false, hold: false },
      5,
    );
    const { credential, record } = newCredential('legacy', 6);
    // As a release before row MACs wrote them: no MAC, no generation, no credential list.
    const db = new Database(config.store.sqlite.path);
    db.prepare(
      'INSERT INTO services (service_id, wrapped_key, read_categories, can_create, can_rotate, can_shred, created_at) VALUES (?, ?, ?, 0, 0, 0, ?)',
    ).run('legacy', row.wrappedKey, 'profile', 5);
    db.prepare('INSERT INTO credentials (service_id, credential_id, verifier, created_at) VALUES (?, ?, ?, ?)').run(
      'legacy',
      record.credentialId,
      record.verifier,
      6,
    );
    db.close();
    const authenticates = async (): Promise<{ serviceId?: string; logs: string[] }> => {
      const store = new SqliteKeyStore(config.store.sqlite);
      const logs: string[] = [];
      const registry = new ServiceRegistry(
        store,
        keks,
        createLogger('info', (l) => logs.push(l)),
      );
      await registry.refresh();
      await store.close();
      const service = registry.authenticate(`Bearer ${credential}`);
      return service === undefined ? { logs } : { serviceId: service.serviceId, logs };
    };
    const before = await authenticates();
    assert.equal(before.serviceId, undefined);
    assert.ok(before.logs.some((l) => l.includes('"serviceId":"legacy"') && l.includes('run `padlock migrate`')));

    const first = json<{ macs: { sealed: string[]; unchanged: number; failed: unknown[] } }>(
      await withConfig('migrate'),
    );
    assert.deepEqual(first.macs.sealed, ['legacy']);
    assert.deepEqual(first.macs.failed, []);
    assert.equal((await authenticates()).serviceId, 'legacy');
    const second = json<{ macs: { sealed: string[]; unchanged: number } }>(await withConfig('migrate'));
    assert.deepEqual(second.macs.sealed, []);
    assert.equal(second.macs.unchanged, first.macs.unchanged + 1);
  });

  it('refuses to change or migrate a service whose row was edited without the KEK, with exit 1', async () => {
    const path = loadConfig(configFile).store.sqlite.path;
    const db = new Database(path);
    try {
      const original = db
        .prepare<[], { read_categories: string }>("SELECT read_categories FROM services WHERE service_id = 'legacy'")
        .get();
      db.prepare(
        "UPDATE services SET read_categories = 'profile,payments,advertising' WHERE service_id = 'legacy'",
      ).run();
      const grant = await withConfig('service', 'grant', 'legacy', '--shred');
      assert.equal(grant.code, 1);
      assert.match(grant.stderr, /^padlock: service "legacy" failed its integrity check \(service row: bad-mac\)/);
      const migrate = await withConfig('migrate');
      assert.equal(migrate.code, 1);
      assert.match(
        migrate.stderr,
        /1 service\(s\) failed their integrity check and were left alone: legacy \(service row: bad-mac\)/,
      );
      db.prepare("UPDATE services SET read_categories = ? WHERE service_id = 'legacy'").run(original?.read_categories);
      assert.equal((await withConfig('service', 'grant', 'legacy', '--shred')).code, 0, 'restored: writable again');
    } finally {
      db.close();
    }
  });

  it('serve answers on its port and drains on SIGTERM with exit 0', async () => {
    const child = spawn(process.execPath, [MAIN, 'serve', '--config', configFile], { cwd: dir, env: childEnv() });
    let stdout = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${stdout}`)), 10000);
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        const line = stdout.split('\n').find((l) => l.includes('"padlock listening"'));
        if (line !== undefined) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
    });
    assert.ok(port > 0);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    const keys = await fetch(`http://127.0.0.1:${port}/v1/keys/from-cli-server`, {
      headers: { authorization: `Bearer ${credentials.at(-1) ?? ''}` },
    });
    assert.equal(keys.status, 200);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(stdout, /"msg":"draining","signal":"SIGTERM"/);
    assert.match(stdout, /"msg":"stopped"/);
    for (const credential of credentials) assert.ok(!stdout.includes(credential.split('.')[3] ?? ''));
  });
});

describe('padlock serve over TLS', () => {
  let dir: string;
  let configFile: string;
  let pki: TestPki;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-cli-tls-'));
    pki = makeTestPki(join(dir, 'pki'));
    assert.equal((await padlock(['init', '--dir', 'conf', '--port', '0'], dir)).code, 0);
    configFile = join(dir, 'conf', 'padlock.json');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const withListen = (listen: Record<string, unknown>): void => {
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { listen: Record<string, unknown> };
    config.listen = { ...config.listen, ...listen };
    writeFileSync(configFile, JSON.stringify(config));
  };

  it('refuses plaintext on 0.0.0.0, naming the switch', async () => {
    withListen({ host: '0.0.0.0' });
    const result = await padlock(['serve', '--config', configFile], dir);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^padlock: config\.listen\.host "0\.0\.0\.0" is not a loopback address .*insecurePlaintextOffLoopback/,
    );
  });

  it('reloads its certificate on SIGHUP without dropping an open connection', async () => {
    const certFile = join(dir, 'conf', 'server.crt');
    const keyFile = join(dir, 'conf', 'server.key');
    copyFileSync(pki.server.cert, certFile);
    copyFileSync(pki.server.key, keyFile);
    withListen({ host: '127.0.0.1', tls: { certFile: 'server.crt', keyFile: 'server.key' } });
    const child = spawn(process.execPath, [MAIN, 'serve', '--config', configFile], { cwd: dir, env: childEnv() });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const waitFor = async (pattern: RegExp): Promise<string> => {
      for (let i = 0; i < 200 && !pattern.test(stdout); i++) await new Promise((r) => setTimeout(r, 50));
      const line = stdout.split('\n').find((l) => pattern.test(l));
      assert.ok(line, `no log line matching ${pattern}: ${stdout}`);
      return line;
    };
    const agent = new HttpsAgent({
      keepAlive: true,
      maxSockets: 1,
      ca: readFileSync(pki.ca.cert),
      maxCachedSessions: 0,
    });
    try {
      const port = (JSON.parse(await waitFor(/"padlock listening"/)) as { port: number }).port;
      const before = await httpsGet(port, agent);
      assert.equal(before.fingerprint, new X509Certificate(readFileSync(pki.server.cert)).fingerprint256);

      const renewed = issue(join(dir, 'pki'), pki.ca, 'renewed', { sans: ['IP:127.0.0.1'] });
      copyFileSync(renewed.cert, certFile);
      copyFileSync(renewed.key, keyFile);
      child.kill('SIGHUP');
      await waitFor(/"msg":"TLS certificate reloaded"/);

      const same = await httpsGet(port, agent);
      assert.equal(same.localPort, before.localPort, 'the open connection survived');
      const fresh = await httpsGet(port, new HttpsAgent({ ca: readFileSync(pki.ca.cert) }));
      assert.equal(fresh.fingerprint, new X509Certificate(readFileSync(renewed.cert)).fingerprint256);
      assert.equal(child.exitCode, null, 'SIGHUP did not end the process');
    } finally {
      agent.destroy();
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  });
});

function httpsGet(port: number, agent: HttpsAgent): Promise<{ fingerprint: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => {
      const socket = res.socket as TLSSocket;
      const seen = { fingerprint: socket.getPeerCertificate().fingerprint256, localPort: socket.localPort ?? 0 };
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(seen) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}
