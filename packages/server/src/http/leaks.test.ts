import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ALL_RIGHTS,
  assertError,
  CATEGORIES,
  findSecret,
  servedKeys,
  SlowStore,
  startHarness,
  textForms,
  type Harness,
  type HttpReply,
  type KeysBody,
} from '../testing/harness.js';

/*
 * Runs every route, successes and failures, then scans every log line and
 * every response for secret material in raw, hex, base64 or base64url form.
 * Derived keys may appear only in the 2xx bodies of the key routes, and only
 * the caller's own; root keys, KEK, service derivation keys and credential
 * secrets may appear nowhere.
 */

interface Secret {
  readonly what: string;
  readonly bytes: Buffer;
}

const KEY_ROUTES = /^(GET \/v1\/keys\/|POST \/v1\/keys\/batch-get|POST \/v1\/keychains$)/;

describe('no secret in any log line or response', () => {
  let h: Harness;
  let slow: SlowStore;
  /** Every exchange: who asked, what, and the answer. */
  const exchanges: { as: string; request: string; reply: HttpReply }[] = [];
  const secrets: Secret[] = [];
  const credentialTexts: string[] = [];

  const call = async (
    method: string,
    path: string,
    options: Parameters<Harness['call']>[2] = {},
  ): Promise<HttpReply> => {
    const reply = await h.call(method, path, options);
    exchanges.push({ as: options.as ?? 'admin', request: `${method} ${path}`, reply });
    return reply;
  };

  const collectRootKeys = async (userId: string): Promise<void> => {
    for (const [category, versions] of await h.rootKeys(userId)) {
      for (const [version, bytes] of versions) secrets.push({ what: `root ${userId}/${category}/v${version}`, bytes });
    }
  };

  before(async () => {
    h = await startHarness({
      services: [
        { serviceId: 'admin', permissions: ALL_RIGHTS },
        {
          serviceId: 'reader',
          permissions: { read: ['profile'], create: false, rotate: false, shred: false, hold: false },
        },
        { serviceId: 'nobody', permissions: { read: [], create: false, rotate: false, shred: false, hold: false } },
      ],
      config: { limits: { deadlineMs: 1000 } },
      wrapStore: (store) => {
        slow = new SlowStore(store);
        return slow;
      },
    });
    const users = ['leak-a', 'leak-b', 'leak-c', 'tampered'];
    for (const userId of users) await call('POST', '/v1/keychains', { json: { userId } });
    await call('POST', '/v1/keychains', { json: { userId: 'leak-a' } });
    await call('POST', '/v1/keychains/leak-a/categories/profile/rotate');
    // Root keys are captured before anything is shredded, so the scan knows them.
    for (const userId of users) await collectRootKeys(userId);
    for (const as of ['admin', 'reader', 'nobody']) {
      for (const userId of users) {
        for (const [category, versions] of await h.expectedKeys(as, userId)) {
          for (const [version, bytes] of versions) {
            secrets.push({ what: `derived ${as}/${userId}/${category}/v${version}`, bytes });
          }
        }
      }
      secrets.push({ what: `derivation key ${as}`, bytes: await h.derivationKey(as) });
    }
    secrets.push({ what: 'KEK', bytes: readFileSync(join(h.dir, 'kek.bin')) });
    for (const [serviceId, credential] of [
      ...Object.entries(h.credentials),
      ...Object.entries(h.revokedCredentials).map(([s, c]) => [`${s} (revoked)`, c] as const),
    ]) {
      const secret = credential.split('.')[3] ?? '';
      secrets.push({ what: `credential secret ${serviceId}`, bytes: Buffer.from(secret, 'base64url') });
      credentialTexts.push(credential, secret);
    }

    // Successes on every route.
    for (const as of ['admin', 'reader']) {
      await call('GET', '/v1/keys/leak-a', { as });
      await call('GET', '/v1/keys/leak-a?categories=profile', { as });
      await call('POST', '/v1/keys/batch-get', { as, json: { userIds: ['leak-a', 'leak-b', 'missing'] } });
      await call('GET', '/v1/keychains/leak-a', { as });
    }
    await call('DELETE', '/v1/keychains/leak-b/categories/payments');
    await call('DELETE', '/v1/keychains/leak-c');
    await call('POST', '/v1/keychains/leak-b/categories/payments/rotate');
    await collectRootKeys('leak-b');
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      await call('GET', path, { authorization: null });
    }

    // Failures of every kind.
    const [, , credentialId, secret] = (h.credentials['admin'] ?? '').split('.');
    await call('GET', '/v1/keys/leak-c');
    await call('GET', '/v1/keys/missing');
    await call('GET', '/v1/keys/leak-a', { as: 'nobody' });
    await call('GET', '/v1/keys/leak-a?categories=payments', { as: 'reader' });
    await call('POST', '/v1/keys/batch-get', { as: 'reader', json: { userIds: ['leak-a'], categories: ['payments'] } });
    await call('POST', '/v1/keychains', { as: 'reader', json: { userId: 'leak-d' } });
    await call('DELETE', '/v1/keychains/leak-a', { as: 'reader' });
    await call('POST', '/v1/keychains/leak-a/categories/profile/rotate', { as: 'reader' });
    await call('GET', '/v1/keys/leak-a', { authorization: `Bearer pl1.admin.0000000000000000.${secret ?? ''}` });
    await call('GET', '/v1/keys/leak-a', { authorization: `Bearer pl1.reader.${credentialId ?? ''}.${secret ?? ''}` });
    await call('GET', '/v1/keys/leak-a', { authorization: `Bearer ${h.credentials['admin'] ?? ''}xyz` });
    await call('GET', '/v1/keys/leak-a', { authorization: `Bearer ${h.revokedCredentials['admin'] ?? ''}` });
    await call('GET', '/v1/keys/leak-a', { authorization: null });
    await call('POST', '/v1/keychains', { body: '{"userId":', headers: { 'content-type': 'application/json' } });
    await call('POST', '/v1/keychains', { json: { userId: 'x', extra: true } });
    await call('POST', '/v1/keys/batch-get', { json: { userIds: Array.from({ length: 501 }, (_, i) => `u${i}`) } });
    await call('GET', '/v1/keys/a%2Fb');
    await call('GET', '/v1/keys/leak-a?categories=music');
    await call('PUT', '/v1/keys/leak-a');
    await call('GET', '/nowhere');
    await call('POST', '/v1/keychains', { body: 'x'.repeat(70000), headers: { 'content-type': 'application/json' } });

    // A backend failure (503, logged with its cause), a deadline, and a tampered row (500, logged).
    slow.failing.add('leak-broken');
    await call('GET', '/v1/keys/leak-broken');
    slow.delays = { getKeychain: 1500 };
    await call('GET', '/v1/keys/leak-slow');
    slow.delays = {};
    const db = new Database(join(h.dir, 'padlock.db'));
    try {
      const row = db.prepare<[], { wrapped: Buffer }>("SELECT wrapped FROM root_keys WHERE user_id = 'tampered'").get();
      const corrupt = Buffer.from(row?.wrapped ?? Buffer.alloc(0));
      corrupt[corrupt.length - 1] = (corrupt.at(-1) ?? 0) ^ 1;
      db.prepare("UPDATE root_keys SET wrapped = ? WHERE user_id = 'tampered' AND category = 'profile'").run(corrupt);
    } finally {
      db.close();
    }
    // The restart empties the cache, so the tampered row is read.
    await h.restart();
    await call('GET', '/v1/keys/tampered');
  });
  after(() => h.close());

  it('produced the failures it meant to', () => {
    const statuses = new Set(exchanges.map((e) => e.reply.status));
    for (const status of [200, 201, 400, 401, 403, 404, 405, 410, 413, 500, 503]) {
      assert.ok(statuses.has(status), `no ${status} in the run`);
    }
    const codes = new Set(
      exchanges.map((e) => (e.reply.body as { error?: { code: string } } | undefined)?.error?.code),
    );
    for (const code of ['STORE_UNAVAILABLE', 'DEADLINE_EXCEEDED', 'INTERNAL', 'PERMISSION_DENIED', 'UNAUTHENTICATED']) {
      assert.ok(codes.has(code), `no ${code} in the run`);
    }
    const tampered = exchanges.at(-1)!.reply;
    assertError(tampered, 500, 'INTERNAL');
    assert.equal((tampered.body as { error: { message: string } }).error.message, 'Internal error');
    assert.ok(
      h.logLines.some((l) => /"level":"warn".*STORE_UNAVAILABLE/.test(l)),
      'backend failure not logged',
    );
    assert.ok(
      h.logLines.some((l) => /"level":"error","msg":"request failed"/.test(l)),
      'internal error not logged',
    );
    assert.ok(h.logLines.filter((l) => /"msg":"request"/.test(l)).length >= exchanges.length - 1);
  });

  it('the scanner finds a secret in every form it looks for', () => {
    const key = secrets[0]!.bytes;
    const served = exchanges.find((e) => e.reply.status === 201)!.reply;
    assert.ok(
      findSecret(
        served.text,
        servedKeys(served.body as KeysBody)
          .get('profile')!
          .get(1)!,
      ),
    );
    assert.equal(findSecret('nothing here', key), undefined);
    for (const shift of [0, 1, 2]) {
      const embedded = Buffer.concat([Buffer.alloc(shift, 7), key, Buffer.from('tail')]);
      for (const encoding of ['hex', 'base64', 'base64url'] as const) {
        assert.ok(findSecret(`x ${embedded.toString(encoding)} y`, key), `${encoding} at offset ${shift}`);
      }
    }
    assert.ok(findSecret(`{"k":"${key.toString('hex').toUpperCase()}"}`, key));
    assert.ok(findSecret(Buffer.concat([Buffer.from('raw:'), key]).toString('latin1'), key));
    assert.ok(textForms(key).every((form) => form.length >= 36));
  });

  it('no log line holds a key, a KEK or a credential secret', () => {
    assert.ok(h.logLines.length >= exchanges.length, `${h.logLines.length} log lines`);
    const log = h.logLines.join('');
    for (const secret of secrets) assert.equal(findSecret(log, secret.bytes), undefined, `${secret.what} in the log`);
    for (const text of credentialTexts) assert.ok(!log.includes(text), 'a credential in the log');
    assert.doesNotMatch(log, /pl1\.[a-z]/, 'something credential-shaped in the log');
  });

  it('no error response and no operations response holds any secret', () => {
    const others = exchanges.filter((e) => e.reply.status >= 300 || !KEY_ROUTES.test(e.request));
    assert.ok(others.length > 30);
    for (const { request, reply } of others) {
      for (const secret of secrets) {
        assert.equal(findSecret(reply.text, secret.bytes), undefined, `${secret.what} in ${request} ${reply.status}`);
      }
      for (const text of credentialTexts) assert.ok(!reply.text.includes(text), `a credential in ${request}`);
    }
  });

  it("key responses hold only the caller's own derived keys", () => {
    const keyed = exchanges.filter((e) => e.reply.status < 300 && KEY_ROUTES.test(e.request));
    assert.ok(keyed.length >= 8);
    for (const { as, request, reply } of keyed) {
      for (const secret of secrets) {
        if (secret.what.startsWith(`derived ${as}/`)) continue;
        assert.equal(findSecret(reply.text, secret.bytes), undefined, `${secret.what} in ${as}'s ${request}`);
      }
      for (const text of credentialTexts) assert.ok(!reply.text.includes(text));
    }
  });

  it('served keys are exactly those the scan knows, so the scan covered them', () => {
    const known = new Set(secrets.map((s) => s.bytes.toString('hex')));
    let count = 0;
    for (const { reply, request } of exchanges) {
      if (reply.status >= 300 || !KEY_ROUTES.test(request)) continue;
      const bodies = request.startsWith('POST /v1/keys/batch-get')
        ? (reply.body as { results: KeysBody[] }).results
        : [reply.body as KeysBody];
      for (const body of bodies) {
        for (const versions of servedKeys(body).values()) {
          for (const key of versions.values()) {
            count++;
            assert.ok(known.has(key.toString('hex')), `${request}: an unknown key was served`);
          }
        }
      }
    }
    assert.ok(count >= CATEGORIES.length * 3);
  });
});
