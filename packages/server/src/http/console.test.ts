import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConsoleSessions, cookieValue } from '../console/sessions.js';
import { createLogger } from '../log.js';
import { ServiceWriteError, ServiceWriter } from '../service-rows.js';
import { newServiceRecord, ServiceRegistry } from '../services.js';
import type { ServicePermissions } from '../store/types.js';
import { ALL_RIGHTS, assertError, startHarness, type Harness, type HttpReply } from '../testing/harness.js';

/*
 * The operator console's server side (docs/console.md), attacked over real HTTP: operators never
 * reach a route that answers with key bytes, whether by credential or session; a session needs
 * its cookie and, to change anything, its CSRF token; a service's credential never signs in.
 */

const NONE: ServicePermissions = { read: [], create: false, rotate: false, shred: false, hold: false };
const OPERATOR: ServicePermissions = { ...NONE, shred: true, hold: true, admin: true };

interface Session {
  readonly cookie: string;
  readonly csrf: string;
  readonly setCookie: string;
}

async function signIn(h: Harness, credential: string): Promise<Session> {
  const reply = await h.call('POST', '/console/api/session', { authorization: null, json: { credential } });
  assert.equal(reply.status, 201, reply.text);
  const setCookie = String(reply.headers['set-cookie']);
  return {
    cookie: setCookie.split(';')[0]!,
    csrf: (reply.body as { csrfToken: string }).csrfToken,
    setCookie,
  };
}

/** The session's cookie, with its CSRF token, another one, or none (null). */
function withSession(s: Session, csrf: string | null = s.csrf): Readonly<Record<string, string>> {
  return csrf === null ? { cookie: s.cookie } : { cookie: s.cookie, 'x-padlock-csrf': csrf };
}

/** Nothing that could be a derived key (43 base64url characters) in an answer to an operator. */
function assertNoKeyBytes(reply: HttpReply, context: string): void {
  assert.doesNotMatch(reply.text, /"key"|[A-Za-z0-9_-]{43}/, `${context}: ${reply.text.slice(0, 200)}`);
}

describe('console: operators and sessions', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      services: [
        { serviceId: 'app', permissions: ALL_RIGHTS },
        { serviceId: 'operator', permissions: OPERATOR },
        { serviceId: 'second-operator', permissions: OPERATOR },
      ],
      config: { console: { enabled: true } },
    });
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'ann' } })).status, 201);
  });
  after(() => h.close());

  const asOperator = { as: 'operator' } as const;

  // Every route that can answer with key bytes, refused to an operator before its handler runs.
  const KEY_ROUTES: readonly [string, string, unknown][] = [
    ['GET', '/v1/keys/ann', undefined],
    ['GET', '/v1/keys/ann?categories=profile', undefined],
    ['POST', '/v1/keys/batch-get', { userIds: ['ann'] }],
    ['POST', '/v1/keychains', { userId: 'ann' }],
    ['POST', '/v1/keychains/ann/categories/profile/rotate', undefined],
  ];

  for (const [method, path, json] of KEY_ROUTES) {
    it(`refuses ${method} ${path} to an operator credential`, async () => {
      const reply = await h.call(method, path, { ...asOperator, ...(json === undefined ? {} : { json }) });
      assertError(reply, 403, 'OPERATOR_ROUTE_DENIED');
      assertNoKeyBytes(reply, path);
    });

    it(`refuses ${method} ${path} to a console session, CSRF token or not`, async () => {
      const session = await signIn(h, h.credentials['operator']!);
      for (const csrf of [session.csrf, null]) {
        const reply = await h.call(method, path, {
          authorization: null,
          headers: withSession(session, csrf),
          ...(json === undefined ? {} : { json }),
        });
        // A state-changing request without the token fails its CSRF check first; either way no keys.
        const code = csrf === null && method !== 'GET' ? 'CSRF_TOKEN_INVALID' : 'OPERATOR_ROUTE_DENIED';
        assertError(reply, 403, code, `${path} csrf=${String(csrf !== null)}`);
        assertNoKeyBytes(reply, path);
      }
    });
  }

  it('lets an operator read metadata and the service list, with no key bytes', async () => {
    const metadata = await h.call('GET', '/v1/keychains/ann', asOperator);
    assert.equal(metadata.status, 200, metadata.text);
    assertNoKeyBytes(metadata, 'metadata');
    const services = await h.call('GET', '/v1/services', asOperator);
    assert.equal(services.status, 200, services.text);
    const list = (services.body as { services: { serviceId: string; permissions: { admin: boolean } }[] }).services;
    assert.deepEqual(
      list.map((s) => [s.serviceId, s.permissions.admin]),
      [
        ['app', false],
        ['operator', true],
        ['second-operator', true],
      ],
    );
    assert.doesNotMatch(services.text, /pl1\.|verifier|wrapped/);
  });

  it('signs in only with an operator credential', async () => {
    const app = await h.call('POST', '/console/api/session', {
      authorization: null,
      json: { credential: h.credentials['app'] },
    });
    assertError(app, 403, 'PERMISSION_DENIED', 'a service credential');
    assert.equal(app.headers['set-cookie'], undefined);
    const cases: [string, unknown][] = [
      ['wrong secret', `${h.credentials['operator']!.slice(0, -4)}AAAA`],
      ['revoked', h.revokedCredentials['operator']],
      ['garbage', 'not-a-credential'],
      ['bearer prefix', `Bearer ${h.credentials['operator']}`],
    ];
    for (const [name, credential] of cases) {
      const reply = await h.call('POST', '/console/api/session', { authorization: null, json: { credential } });
      assertError(reply, 401, 'UNAUTHENTICATED', name);
      assert.equal(reply.headers['set-cookie'], undefined, name);
    }
    const tooLong = await h.call('POST', '/console/api/session', {
      authorization: null,
      json: { credential: 'x'.repeat(257) },
    });
    assertError(tooLong, 400, 'INVALID_REQUEST');
  });

  it('sets an HttpOnly, SameSite=Strict cookie with an expiry, and no Secure flag on plaintext loopback', async () => {
    const session = await signIn(h, h.credentials['operator']!);
    assert.match(
      session.setCookie,
      /^padlock-console=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=1800; HttpOnly; SameSite=Strict$/,
    );
    assert.match(session.csrf, /^[A-Za-z0-9_-]{43}$/);
    const who = await h.call('GET', '/console/api/session', { authorization: null, headers: withSession(session) });
    assert.equal(who.status, 200, who.text);
    assert.equal((who.body as { serviceId: string }).serviceId, 'operator');
  });

  it('refuses a state-changing session request without the session’s own CSRF token', async () => {
    const session = await signIn(h, h.credentials['operator']!);
    const other = await signIn(h, h.credentials['second-operator']!);
    const hold = { json: { reason: 'csrf test' }, authorization: null } as const;
    for (const [name, csrf] of [
      ['none', null],
      ['empty', ''],
      ['another session’s', other.csrf],
      ['one character off', `${session.csrf.slice(0, -1)}${session.csrf.endsWith('A') ? 'B' : 'A'}`],
      ['longer', `${session.csrf}A`],
    ] as const) {
      const reply = await h.call('POST', '/v1/keychains/ann/holds', { ...hold, headers: withSession(session, csrf) });
      assertError(reply, 403, 'CSRF_TOKEN_INVALID', name);
    }
    const metadata = await h.call('GET', '/v1/keychains/ann', { authorization: null, headers: withSession(session) });
    assert.deepEqual((metadata.body as { holds: unknown[] }).holds, [], 'no hold was placed by a refused request');
    const placed = await h.call('POST', '/v1/keychains/ann/holds', { ...hold, headers: withSession(session) });
    assert.equal(placed.status, 201, placed.text);
    const holdId = (placed.body as { holdId: string }).holdId;
    const released = await h.call('DELETE', `/v1/keychains/ann/holds/${holdId}`, {
      authorization: null,
      headers: withSession(session),
    });
    assert.equal(released.status, 200, released.text);
  });

  it('finds no session in a forged, repeated or malformed cookie', async () => {
    const session = await signIn(h, h.credentials['operator']!);
    const token = session.cookie.split('=')[1]!;
    const cookies = [
      `padlock-console=${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      `padlock-console=${token}; padlock-console=${token}`,
      `padlock-console=${token}x`,
      `__Host-padlock-console=${token}`,
      `padlock-console="${token}"`,
      'padlock-console=',
    ];
    for (const cookie of cookies) {
      const reply = await h.call('GET', '/v1/keychains/ann', { authorization: null, headers: { cookie } });
      assertError(reply, 401, 'UNAUTHENTICATED', cookie);
    }
    // Other cookies beside it are fine.
    const mixed = await h.call('GET', '/v1/keychains/ann', {
      authorization: null,
      headers: { cookie: `theme=dark; ${session.cookie}; x=1` },
    });
    assert.equal(mixed.status, 200, mixed.text);
  });

  it('ends a session at sign-out, and when its credential is revoked', async () => {
    const session = await signIn(h, h.credentials['operator']!);
    const out = await h.call('DELETE', '/console/api/session', { authorization: null, headers: withSession(session) });
    assert.equal(out.status, 200, out.text);
    assert.match(
      String(out.headers['set-cookie']),
      /^padlock-console=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/,
    );
    const after = await h.call('GET', '/v1/keychains/ann', { authorization: null, headers: withSession(session) });
    assertError(after, 401, 'UNAUTHENTICATED');

    // A second credential for the operator, a session on it, then that credential revoked.
    const added = await h.call('POST', '/v1/services/operator/credentials', asOperator);
    assert.equal(added.status, 201, added.text);
    const { credential, credentialId } = added.body as { credential: string; credentialId: string };
    const second = await signIn(h, credential);
    assert.equal(
      (await h.call('GET', '/v1/keychains/ann', { authorization: null, headers: withSession(second) })).status,
      200,
    );
    const revoked = await h.call('DELETE', `/v1/services/operator/credentials/${credentialId}`, asOperator);
    assert.equal(revoked.status, 200, revoked.text);
    const gone = await h.call('GET', '/v1/keychains/ann', { authorization: null, headers: withSession(second) });
    assertError(gone, 401, 'UNAUTHENTICATED', 'a session outlives its revoked credential');
  });

  it('serves the page with a strict CSP, and no file outside the built assets', async () => {
    const page = await h.call('GET', '/console/', { authorization: null });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.doesNotMatch(page.text, /<script>|<style>| on[a-z]+=/i, 'no inline script or style');
    assert.equal((await h.call('GET', '/console/app.js', { authorization: null })).status, 200);
    for (const path of [
      '/console/..%2F..%2Fpackage.json',
      '/console/%2E%2E',
      '/console/app.ts',
      '/console/index.html%00',
    ]) {
      assertError(await h.call('GET', path, { authorization: null }), 404, 'ROUTE_NOT_FOUND', path);
    }
  });

  it('creates a service whose credential works at once, and audits it', async () => {
    const created = await h.call('POST', '/v1/services', {
      ...asOperator,
      json: { serviceId: 'newsletter', rights: ['read:profile', 'create'] },
    });
    assert.equal(created.status, 201, created.text);
    const { credential } = created.body as { credential: string };
    assert.equal(created.headers['cache-control'], 'no-store', 'every answer is no-store (answer.ts)');
    const keys = await h.call('GET', '/v1/keys/ann?categories=profile', { authorization: `Bearer ${credential}` });
    assert.equal(keys.status, 200, keys.text);
    const twice = await h.call('POST', '/v1/services', {
      ...asOperator,
      json: { serviceId: 'newsletter', rights: [] },
    });
    assertError(twice, 409, 'SERVICE_EXISTS');
    const revoke = await h.call('POST', '/v1/services/newsletter/rights', {
      ...asOperator,
      json: { action: 'revoke', rights: ['read:profile'] },
    });
    assert.equal(revoke.status, 200, revoke.text);
    assertError(
      await h.call('GET', '/v1/keys/ann?categories=profile', { authorization: `Bearer ${credential}` }),
      403,
      'PERMISSION_DENIED',
    );
    const chains = await h.padlock.store.listAuditChains();
    const bodies = (await Promise.all(chains.map((c) => h.padlock.store.readAuditChain(c)))).flat().map((r) => r.body);
    for (const type of ['service.create', 'credential.add', 'service.revoke']) {
      assert.ok(
        bodies.some((b) => b.includes(`"${type}"`) && b.includes('"newsletter"') && b.includes('"operator"')),
        type,
      );
    }
    assert.ok(!bodies.some((b) => b.includes(credential.split('.')[3]!)), 'no credential secret in the audit log');
  });

  it('never lets an operator hold a right that returns key bytes', async () => {
    const cases: [string, string, unknown][] = [
      ['POST', '/v1/services', { serviceId: 'bad-op', rights: ['admin', 'read:profile'] }],
      ['POST', '/v1/services', { serviceId: 'bad-op', rights: ['admin', 'create'] }],
      ['POST', '/v1/services', { serviceId: 'bad-op', rights: ['admin', 'rotate'] }],
      ['POST', '/v1/services/app/rights', { action: 'grant', rights: ['admin'] }],
      ['POST', '/v1/services/operator/rights', { action: 'grant', rights: ['read:payments'] }],
    ];
    for (const [method, path, json] of cases) {
      assertError(
        await h.call(method, path, { ...asOperator, json }),
        400,
        'INVALID_PERMISSIONS',
        JSON.stringify(json),
      );
    }
    assertError(
      await h.call('POST', '/v1/services', { ...asOperator, json: { serviceId: 'x-y', rights: ['read:nope'] } }),
      400,
      'UNKNOWN_CATEGORY',
    );
    assertError(
      await h.call('POST', '/v1/services', { ...asOperator, json: { serviceId: 'x-y', rights: ['root'] } }),
      400,
      'INVALID_REQUEST',
    );
    // The writer under the CLI refuses it too.
    const writer = new ServiceWriter(h.padlock.store, h.keks);
    await assert.rejects(
      writer.create(newServiceRecord(h.keks, 'cli-op', { ...ALL_RIGHTS, admin: true }, Date.now())),
      ServiceWriteError,
    );
    assert.equal(await h.padlock.store.getService('cli-op'), undefined);
  });

  it('keeps service admin to operators', async () => {
    for (const [method, path, json] of [
      ['GET', '/v1/services', undefined],
      ['POST', '/v1/services', { serviceId: 'sneaky', rights: ['admin'] }],
      ['POST', '/v1/services/app/credentials', undefined],
      ['POST', '/v1/services/operator/rights', { action: 'revoke', rights: ['admin'] }],
    ] as const) {
      const reply = await h.call(method, path, { as: 'app', ...(json === undefined ? {} : { json }) });
      assertError(reply, 403, 'PERMISSION_DENIED', `${method} ${path}`);
    }
    assertError(await h.call('POST', '/v1/services/ghost/credentials', asOperator), 404, 'SERVICE_NOT_FOUND');
    assertError(
      await h.call('DELETE', '/v1/services/app/credentials/0123456789abcdef', asOperator),
      404,
      'CREDENTIAL_NOT_FOUND',
    );
  });
});

describe('console: sessions expire', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ services: [{ serviceId: 'operator', permissions: OPERATOR }] });
  });
  after(() => h.close());

  it('forgets a session at its expiry, and keeps at most maxSessions', async () => {
    const registry = new ServiceRegistry(h.padlock.store, h.keks, createLogger('error'));
    await registry.refresh();
    let now = 1_000_000;
    const sessions = new ConsoleSessions(registry, { ttlMs: 60_000, maxSessions: 2, secure: true }, () => now);
    assert.equal(sessions.cookieName, '__Host-padlock-console');
    const { token } = sessions.signIn(h.credentials['operator']!);
    const cookie = sessions.cookie(token, now + 60_000);
    assert.match(cookie, /; Max-Age=60; HttpOnly; SameSite=Strict; Secure$/);
    const headers = new Map([['cookie', `__Host-padlock-console=${token}`]]);
    assert.ok(sessions.authenticate(headers, 'GET'));
    now += 59_999;
    assert.ok(sessions.authenticate(headers, 'GET'));
    now += 1;
    assert.equal(sessions.authenticate(headers, 'GET'), undefined, 'expired');
    assert.equal(sessions.size, 0);
    const first = sessions.signIn(h.credentials['operator']!);
    sessions.signIn(h.credentials['operator']!);
    sessions.signIn(h.credentials['operator']!);
    assert.equal(sessions.size, 2);
    const dropped = new Map([['cookie', `__Host-padlock-console=${first.token}`]]);
    assert.equal(sessions.authenticate(dropped, 'GET'), undefined, 'the oldest was dropped');
  });

  it('reads one cookie out of a header exactly', () => {
    const cases: [string | undefined, string | undefined][] = [
      [undefined, undefined],
      ['a=1', '1'],
      ['b=2; a=1', '1'],
      ['a=1, a=2', undefined],
      ['aa=1', undefined],
      [' a = 1 ', '1'],
      ['a', undefined],
    ];
    for (const [header, want] of cases) assert.equal(cookieValue(header, 'a'), want, String(header));
  });

  it('is off unless enabled: no page, no sign-in', async () => {
    assertError(await h.call('GET', '/console/', { authorization: null }), 404, 'ROUTE_NOT_FOUND');
    const signIn = await h.call('POST', '/console/api/session', {
      authorization: null,
      json: { credential: h.credentials['operator'] },
    });
    assertError(signIn, 404, 'ROUTE_NOT_FOUND');
  });
});
