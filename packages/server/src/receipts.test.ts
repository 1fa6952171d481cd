import { kekRing, SecretBytes } from '@padlock/core';
import { CompactSign, compactVerify, createLocalJWKSet } from 'jose';
import assert from 'node:assert/strict';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { canonicalJson } from './audit.js';
import {
  ed25519FromSeed,
  InvalidSignature,
  publicJwk,
  ReceiptSigner,
  RECEIPT_TYP,
  rotateSigningKey,
  signCompact,
  verifyReceipt,
  type JsonWebKeySet,
  type ReceiptClaims,
} from './receipts.js';
import { StoreRows, Unwrapper } from './keychain.js';
import { KeyService } from './keys.js';
import { AuditLog } from './audit.js';
import { Metrics } from './metrics.js';
import { CassandraKeyStore } from './store/cassandra.js';
import { SqliteKeyStore } from './store/sqlite.js';
import type { KeyStore } from './store/types.js';
import { SlowStore, startHarness, type Harness } from './testing/harness.js';
import { requiredEnv } from './testing/services-env.js';

interface VectorFile {
  seed: string;
  jwks: JsonWebKeySet;
  cases: { name: string; typ: string; payload: Record<string, unknown>; jws: string }[];
}

const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL('../vectors/receipt.json', import.meta.url)), 'utf8'),
) as VectorFile;

/** The second verifier: node:crypto's Ed25519 over the JWS signing input, with the JWK's key (kid from the header). */
function nodeVerifies(jws: string, jwks: JsonWebKeySet): boolean {
  const parts = jws.split('.');
  if (parts.length !== 3) return false;
  const [header, payload, signature] = parts as [string, string, string];
  let kid: unknown;
  try {
    kid = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { kid?: unknown }).kid;
  } catch {
    return false;
  }
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (jwk === undefined) return false;
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x! }, format: 'jwk' });
  // A changed character may decode to the same bytes (base64url's unused low bits): compare the text too.
  const sig = Buffer.from(signature, 'base64url');
  if (sig.toString('base64url') !== signature) return false;
  return verify(null, Buffer.from(`${header}.${payload}`, 'ascii'), key, sig);
}

async function joseVerifies(jws: string, jwks: JsonWebKeySet): Promise<boolean> {
  try {
    await verifyReceipt(jws, jwks);
    return true;
  } catch (error) {
    assert.ok(error instanceof InvalidSignature, `a failure is an InvalidSignature, not ${String(error)}`);
    return false;
  }
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('receipt vectors (packages/server/vectors/receipt.json)', () => {
  const key = ed25519FromSeed(SecretBytes.copyOf(Buffer.from(vectors.seed, 'hex')));

  it('jose reproduces RFC 8037 appendix A.4 with the RFC 8032 test key (the signer is standard EdDSA)', async () => {
    const jws = await new CompactSign(Buffer.from('Example of Ed25519 signing'))
      .setProtectedHeader({ alg: 'EdDSA' })
      .sign(key);
    assert.equal(
      jws,
      'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.' +
        'hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg',
    );
  });

  it('the JWKS holds the RFC 8032 public key with its RFC 7638 thumbprint as kid', async () => {
    const jwk = await publicJwk(key);
    assert.deepEqual(vectors.jwks.keys[0], jwk);
    assert.equal(
      Buffer.from(jwk.x!, 'base64url').toString('hex'),
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
  });

  for (const c of vectors.cases) {
    it(`${c.name}: signed byte for byte, payload is the canonical JSON, both verifiers accept`, async () => {
      assert.equal(await signCompact(key, vectors.jwks.keys[0]!.kid!, c.typ, c.payload), c.jws);
      const [header, payload] = c.jws.split('.') as [string, string];
      assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url').toString('utf8')), {
        alg: 'EdDSA',
        kid: vectors.jwks.keys[0]!.kid,
        typ: c.typ,
      });
      assert.equal(Buffer.from(payload, 'base64url').toString('utf8'), canonicalJson(c.payload));
      assert.ok(nodeVerifies(c.jws, vectors.jwks));
      const verified = await compactVerify(c.jws, createLocalJWKSet(vectors.jwks as { keys: [] }));
      assert.equal(verified.protectedHeader.typ, c.typ);
      if (c.typ === RECEIPT_TYP) assert.deepEqual(await verifyReceipt(c.jws, vectors.jwks), c.payload);
    });
  }

  it('every one-character change anywhere in a receipt fails both verifiers', async () => {
    const jws = vectors.cases[0]!.jws;
    let tried = 0;
    for (let i = 0; i < jws.length; i++) {
      const at = jws[i]!;
      const replacement = at === '.' ? 'A' : BASE64URL[(BASE64URL.indexOf(at) + 1) % 64]!;
      const changed = jws.slice(0, i) + replacement + jws.slice(i + 1);
      assert.equal(await joseVerifies(changed, vectors.jwks), false, `jose accepted a change at ${i}`);
      assert.equal(nodeVerifies(changed, vectors.jwks), false, `node:crypto accepted a change at ${i}`);
      tried++;
    }
    assert.equal(tried, jws.length);
  });

  it('refuses a checkpoint passed off as a receipt, a receipt under an unknown key, and alg none', async () => {
    const checkpoint = vectors.cases.find((c) => c.typ !== RECEIPT_TYP)!;
    await assert.rejects(verifyReceipt(checkpoint.jws, vectors.jwks), /typ is not padlock-receipt\+jwt/);
    const other = ed25519FromSeed(SecretBytes.random(32));
    const foreign = await signCompact(other, vectors.jwks.keys[0]!.kid!, RECEIPT_TYP, vectors.cases[0]!.payload);
    await assert.rejects(verifyReceipt(foreign, vectors.jwks), InvalidSignature);
    assert.equal(nodeVerifies(foreign, vectors.jwks), false);
    const [, payload] = vectors.cases[0]!.jws.split('.') as [string, string];
    const none = `${Buffer.from('{"alg":"none","typ":"padlock-receipt+jwt"}').toString('base64url')}.${payload}.`;
    await assert.rejects(verifyReceipt(none, vectors.jwks), InvalidSignature);
    // Signed with a published key but not a receipt's claims.
    const odd = await signCompact(key, vectors.jwks.keys[0]!.kid!, RECEIPT_TYP, { iss: 'padlock' });
    await assert.rejects(verifyReceipt(odd, vectors.jwks), /not a Padlock receipt/);
  });
});

describe('receipt signing keys in the store', () => {
  const keks = kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1');
  const claims = (jti: string): ReceiptClaims => ({
    iss: 'padlock',
    jti,
    sub: 'alice',
    iat: 1,
    shreddedAt: 1000,
    scope: 'keychain',
    categories: [],
    requestedBy: 'test',
    scheduleId: null,
  });

  it('two servers starting on an empty store make one key between them', async () => {
    const path = `/tmp/padlock-receipts-${randomBytes(4).toString('hex')}.db`;
    const a = new SqliteKeyStore({ path, busyTimeoutMs: 2000 });
    const b = new SqliteKeyStore({ path, busyTimeoutMs: 2000 });
    try {
      const [sa, sb] = await Promise.all([ReceiptSigner.open(a, keks), ReceiptSigner.open(b, keks)]);
      assert.equal((await a.listSigningKeys()).length, 1);
      assert.equal(sa.activeKid, sb.activeKid);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('after a rotation the new key signs, the old receipt still verifies, and both keys are published', async () => {
    const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 1000 });
    const signer = await ReceiptSigner.open(store, keks);
    const old = await signer.sign(claims('a'.repeat(32)));
    const oldKid = signer.activeKid;
    const rotated = await rotateSigningKey(store, keks);
    await signer.refresh();
    assert.equal(signer.activeKid, rotated.kid);
    assert.notEqual(rotated.kid, oldKid);
    const fresh = await signer.sign(claims('b'.repeat(32)));
    assert.deepEqual(
      signer.jwks.keys.map((k) => k.kid),
      [oldKid, rotated.kid],
    );
    for (const jws of [old, fresh]) {
      assert.ok(await joseVerifies(jws, signer.jwks));
      assert.ok(nodeVerifies(jws, signer.jwks));
    }
    // Only the old key: the new receipt does not verify, the old one does.
    const onlyOld = { keys: signer.jwks.keys.filter((k) => k.kid === oldKid) };
    assert.equal(await joseVerifies(fresh, onlyOld), false);
    assert.ok(await joseVerifies(old, onlyOld));
    await store.close();
  });

  it('a signing key row edited in the store is not used (and a store of only edited keys does not start)', async () => {
    const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 1000 });
    const signer = await ReceiptSigner.open(store, keks);
    const good = signer.activeKid;
    await rotateSigningKey(store, keks);
    // Flip one byte of generation 2's wrapped key, behind the store's back.
    const row = store.database.prepare('SELECT wrapped FROM signing_keys WHERE generation = 2').get() as {
      wrapped: Buffer;
    };
    row.wrapped[row.wrapped.length - 1]! ^= 1;
    store.database.prepare('UPDATE signing_keys SET wrapped = ? WHERE generation = 2').run(row.wrapped);
    await signer.refresh();
    assert.equal(signer.activeKid, good, 'the edited generation 2 does not sign');
    assert.equal(signer.jwks.keys.length, 1);
    store.database.prepare('UPDATE signing_keys SET wrapped = ? WHERE generation = 1').run(row.wrapped);
    await assert.rejects(signer.refresh(), /no receipt signing key could be loaded/);
    await store.close();
  });
});

/** A shred through KeyService on a real store: its receipt verifies both ways, a changed byte fails, rotation keeps it valid. */
function runStoreReceiptCases(name: string, open: () => Promise<{ store: KeyStore; close(): Promise<void> }>): void {
  describe(`receipts on ${name}`, () => {
    const keks = kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1');
    it('a shred signs a receipt that jose and node:crypto verify, that fails with a byte changed, and survives a rotation', async () => {
      const opened = await open();
      const { store } = opened;
      try {
        const receipts = await ReceiptSigner.open(store, keks);
        const audit = new AuditLog(store, { checkpointEveryMs: 60000, signer: receipts });
        const metrics = new Metrics();
        const keys = new KeyService(
          store,
          new Unwrapper(new StoreRows(store, metrics), keks),
          keks,
          ['profile', 'payments'],
          30000,
          metrics,
          { receipts, audit },
        );
        const user = `r-${randomBytes(4).toString('hex')}`;
        await keys.create(user, 'svc');
        const { receipt } = await keys.shred(user, undefined, { requestedBy: 'svc', scheduleId: 'sch-1' });
        assert.deepEqual(await store.getReceipt(receipt.receiptId), {
          receiptId: receipt.receiptId,
          userId: user,
          issuedAt: receipt.claims.shreddedAt,
          jws: receipt.jws,
        });
        const claims = await verifyReceipt(receipt.jws, receipts.jwks);
        assert.equal(claims.scheduleId, 'sch-1');
        assert.ok(nodeVerifies(receipt.jws, receipts.jwks));
        const i = Math.floor(receipt.jws.length / 2);
        const changed = receipt.jws.slice(0, i) + (receipt.jws[i] === 'A' ? 'B' : 'A') + receipt.jws.slice(i + 1);
        assert.equal(await joseVerifies(changed, receipts.jwks), false);
        assert.equal(nodeVerifies(changed, receipts.jwks), false);
        await rotateSigningKey(store, keks);
        await receipts.refresh();
        const { receipt: next } = await keys.shred(user, 'profile', { requestedBy: 'svc' });
        const kidOf = (jws: string): unknown =>
          (JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString('utf8')) as { kid: unknown }).kid;
        assert.notEqual(kidOf(next.jws), kidOf(receipt.jws), 'the rotated key signs');
        for (const jws of [receipt.jws, next.jws]) {
          assert.ok(await joseVerifies(jws, receipts.jwks));
          assert.ok(nodeVerifies(jws, receipts.jwks));
        }
        assert.equal(receipts.jwks.keys.length, (await store.listSigningKeys()).length);
        assert.deepEqual(
          (await store.listReceipts(user)).map((r) => r.receiptId),
          [receipt.receiptId, next.receiptId],
        );
      } finally {
        await opened.close();
      }
    });
  });
}

runStoreReceiptCases('SQLite', () => {
  const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 1000 });
  return Promise.resolve({ store, close: () => store.close() });
});
const cassandraEnv = requiredEnv('PADLOCK_TEST_CASSANDRA');
if (cassandraEnv.skip === false) {
  runStoreReceiptCases('Cassandra', async () => {
    const keyspace = `padlock_receipts_${randomBytes(4).toString('hex')}`;
    const store = await CassandraKeyStore.open({
      contactPoints: cassandraEnv.value!.split(','),
      localDataCenter: 'dc1',
      keyspace,
      replication: { dc1: 1 },
      connectTimeoutMs: 5000,
      readTimeoutMs: 5000,
      hedgeAfterMs: 0,
      createSchema: true,
    });
    return {
      store,
      close: async () => {
        await store.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 60000 });
        await store.close();
      },
    };
  });
}

describe('receipts over HTTP', () => {
  let h: Harness;
  let slow: SlowStore | undefined;
  before(async () => {
    h = await startHarness({
      wrapStore: (store) => {
        slow = new SlowStore(store);
        return slow;
      },
    });
  });
  after(async () => {
    await h.close();
  });

  async function jwks(): Promise<JsonWebKeySet> {
    const reply = await h.call('GET', '/v1/receipts/keys', { authorization: null });
    assert.equal(reply.status, 200);
    return reply.body as JsonWebKeySet;
  }

  it('a shred answers with a receipt that verifies, names what was destroyed, is stored and listed', async () => {
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'rita' } })).status, 201);
    await h.call('POST', '/v1/keychains/rita/categories/profile/rotate');
    const reply = await h.call('DELETE', '/v1/keychains/rita/categories/profile');
    assert.equal(reply.status, 200);
    const { receipt } = reply.body as { receipt: { id: string; jws: string } };
    const keys = await jwks();
    const claims = await verifyReceipt(receipt.jws, keys);
    assert.ok(nodeVerifies(receipt.jws, keys));
    assert.equal(claims.jti, receipt.id);
    assert.equal(claims.sub, 'rita');
    assert.equal(claims.scope, 'category');
    assert.equal(claims.requestedBy, 'admin');
    assert.equal(claims.scheduleId, null);
    assert.deepEqual(
      claims.categories.map((c) => [c.category, c.versions.map((v) => v.version)]),
      [['profile', [1, 2]]],
    );
    const stored = await h.call('GET', `/v1/receipts/${receipt.id}`);
    assert.equal(stored.status, 200);
    assert.equal((stored.body as { jws: string }).jws, receipt.jws);
    const meta = (await h.call('GET', '/v1/keychains/rita')).body as { receipts: { id: string }[] };
    assert.deepEqual(
      meta.receipts.map((r) => r.id),
      [receipt.id],
    );
  });

  it('a keychain shred covers every category; a repeated one destroys nothing and covers the same versions', async () => {
    await h.call('POST', '/v1/keychains', { json: { userId: 'sam' } });
    const first = (await h.call('DELETE', '/v1/keychains/sam')).body as { receipt: { jws: string } };
    const again = (await h.call('DELETE', '/v1/keychains/sam')).body as { shredded: number; receipt: { jws: string } };
    assert.equal(again.shredded, 0);
    const keys = await jwks();
    const a = await verifyReceipt(first.receipt.jws, keys);
    const b = await verifyReceipt(again.receipt.jws, keys);
    assert.deepEqual(
      a.categories.map((c) => c.category),
      ['advertising', 'payments', 'profile'],
    );
    assert.deepEqual(a.categories, b.categories, 'the repeat attests the same versions and times');
    assert.notEqual(a.jti, b.jti);
  });

  it('GET /v1/receipts/{id}: 404 RECEIPT_NOT_FOUND for an unknown id, 400 for a malformed one, 401 without a credential', async () => {
    const unknown = await h.call('GET', `/v1/receipts/${'0'.repeat(32)}`);
    assert.equal(unknown.status, 404);
    assert.equal((unknown.body as { error: { code: string } }).error.code, 'RECEIPT_NOT_FOUND');
    for (const bad of ['xyz', 'A'.repeat(32), '0'.repeat(33)]) {
      const reply = await h.call('GET', `/v1/receipts/${bad}`);
      assert.equal(reply.status, 400, bad);
    }
    assert.equal((await h.call('GET', `/v1/receipts/${'0'.repeat(32)}`, { authorization: null })).status, 401);
  });

  it('when the audit log does not take the entry the shred is not acknowledged (503); the retry issues receipt and entry', async () => {
    await h.call('POST', '/v1/keychains', { json: { userId: 'tom' } });
    slow!.auditFailing = true;
    const refused = await h.call('DELETE', '/v1/keychains/tom/categories/payments');
    slow!.auditFailing = false;
    assert.equal(refused.status, 503);
    assert.equal((refused.body as { error: { code: string } }).error.code, 'AUDIT_UNAVAILABLE');
    assert.equal((await h.call('GET', '/v1/keys/tom?categories=payments')).status, 410, 'the keys are gone already');
    const retry = await h.call('DELETE', '/v1/keychains/tom/categories/payments');
    assert.equal(retry.status, 200);
    const claims = await verifyReceipt((retry.body as { receipt: { jws: string } }).receipt.jws, await jwks());
    assert.deepEqual(
      claims.categories.map((c) => [c.category, c.versions.length]),
      [['payments', 1]],
    );
    const exported = await h.padlock.store.listAuditChains();
    const bodies = (await Promise.all(exported.map((c) => h.padlock.store.readAuditChain(c))))
      .flat()
      .map((r) => r.body);
    assert.ok(bodies.some((b) => b.includes(claims.jti) && b.includes('"category.shred"')));
  });
});
