import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServicePermissions } from '../store/types.js';
import {
  ALL_RIGHTS,
  assertError,
  CATEGORIES,
  findSecret,
  servedKeys,
  startHarness,
  type BatchBody,
  type Harness,
  type HttpReply,
  type KeysBody,
  type MetadataBody,
} from '../testing/harness.js';
import { withoutReceipt } from '../testing/receipts.js';

/*
 * The full matrix: every service x every category x every operation. A
 * permitted call succeeds with exactly the keys the spec derives; any other
 * answers 403 PERMISSION_DENIED and carries no key bytes of any category.
 */

const NONE: ServicePermissions = { read: [], create: false, rotate: false, shred: false, hold: false };

const SERVICES: readonly { serviceId: string; permissions: ServicePermissions }[] = [
  { serviceId: 'admin', permissions: ALL_RIGHTS },
  { serviceId: 'profile-reader', permissions: { ...NONE, read: ['profile'] } },
  { serviceId: 'money-reader', permissions: { ...NONE, read: ['payments', 'advertising'] } },
  { serviceId: 'signup', permissions: { ...NONE, create: true } },
  { serviceId: 'rotator', permissions: { ...NONE, read: ['profile'], rotate: true } },
  { serviceId: 'deleter', permissions: { ...NONE, shred: true, hold: false } },
  {
    serviceId: 'creator-reader',
    permissions: { read: ['advertising'], create: true, rotate: false, shred: false, hold: false },
  },
  { serviceId: 'no-rights', permissions: NONE },
];

const SHARED_USER = 'matrix-user';

describe('permission matrix: services x categories x operations', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ services: SERVICES });
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: SHARED_USER } })).status, 201);
  });
  after(() => h.close());

  const createAsAdmin = async (userId: string): Promise<void> => {
    const reply = await h.call('POST', '/v1/keychains', { json: { userId } });
    assert.equal(reply.status, 201, reply.text);
  };

  /** A denial: 403 in the error shape, and none of this service's keys for the user, in any encoding. */
  const assertDenied = async (reply: HttpReply, serviceId: string, userId: string, context: string) => {
    assertError(reply, 403, 'PERMISSION_DENIED', context);
    assert.doesNotMatch(reply.text, /[A-Za-z0-9_-]{43}/, `${context}: something key-shaped in ${reply.text}`);
    for (const [category, versions] of await h.expectedKeys(serviceId, userId)) {
      for (const key of versions.values()) {
        assert.equal(findSecret(reply.text, key), undefined, `${context}: ${category} key in the denial`);
      }
    }
  };

  /** A permitted read: exactly these categories, each with exactly the spec's keys for this service. */
  const assertServes = async (keys: KeysBody, serviceId: string, categories: readonly string[], context: string) => {
    assert.equal(keys.status, 'ok', context);
    assert.deepEqual(
      keys.categories.map((c) => c.category),
      categories,
      context,
    );
    const expected = await h.expectedKeys(serviceId, keys.userId);
    for (const [category, versions] of servedKeys(keys)) {
      const want = expected.get(category);
      assert.ok(want !== undefined, `${context}: ${category}`);
      assert.deepEqual(
        [...versions].map(([v, k]) => [v, k.toString('hex')]),
        [...want].map(([v, k]) => [v, k.toString('hex')]),
        `${context}: ${category} keys differ from the spec's derivation`,
      );
    }
  };

  for (const { serviceId, permissions } of SERVICES) {
    const readable = CATEGORIES.filter((c) => permissions.read.includes(c));

    for (const category of CATEGORIES) {
      const mayRead = permissions.read.includes(category);

      it(`${serviceId} GET keys of ${category}: ${mayRead ? '200' : '403'}`, async () => {
        const reply = await h.call('GET', `/v1/keys/${SHARED_USER}?categories=${category}`, { as: serviceId });
        if (mayRead) {
          assert.equal(reply.status, 200, reply.text);
          await assertServes(reply.body as KeysBody, serviceId, [category], 'GET');
        } else {
          await assertDenied(reply, serviceId, SHARED_USER, 'GET');
        }
      });

      it(`${serviceId} batch-get of ${category}: ${mayRead ? '200' : '403'}`, async () => {
        const reply = await h.call('POST', '/v1/keys/batch-get', {
          as: serviceId,
          json: { userIds: [SHARED_USER, 'nobody'], categories: [category] },
        });
        if (mayRead) {
          assert.equal(reply.status, 200, reply.text);
          const { results } = reply.body as BatchBody;
          assert.equal(results.length, 2);
          await assertServes(results[0]!, serviceId, [category], 'batch-get');
          assert.deepEqual(results[1], { userId: 'nobody', status: 'not_found' });
        } else {
          await assertDenied(reply, serviceId, SHARED_USER, 'batch-get');
        }
      });

      it(`${serviceId} rotate ${category}: ${permissions.rotate ? '201' : '403'}`, async () => {
        const userId = `rotate-${serviceId}-${category}`;
        await createAsAdmin(userId);
        const reply = await h.call('POST', `/v1/keychains/${userId}/categories/${category}/rotate`, {
          as: serviceId,
        });
        const meta = (await h.call('GET', `/v1/keychains/${userId}`)).body as MetadataBody;
        const versions = meta.categories.find((c) => c.category === category)?.versions.length;
        if (permissions.rotate) {
          assert.equal(reply.status, 201, reply.text);
          assert.deepEqual(reply.body, { userId, category, version: 2 });
          assert.equal(versions, 2);
        } else {
          await assertDenied(reply, serviceId, userId, 'rotate');
          assert.equal(versions, 1, 'a denied rotation still added a version');
        }
      });

      it(`${serviceId} shred ${category}: ${permissions.shred ? '200' : '403'}`, async () => {
        const userId = `shred-${serviceId}-${category}`;
        await createAsAdmin(userId);
        const reply = await h.call('DELETE', `/v1/keychains/${userId}/categories/${category}`, { as: serviceId });
        const after = await h.call('GET', `/v1/keys/${userId}?categories=${category}`);
        if (permissions.shred) {
          assert.equal(reply.status, 200, reply.text);
          assert.deepEqual(withoutReceipt(reply.body), { userId, category, shredded: 1 });
          assertError(after, 410, 'KEYCHAIN_SHREDDED');
        } else {
          await assertDenied(reply, serviceId, userId, 'shred category');
          assert.equal(after.status, 200, 'a denied shred destroyed the key');
        }
      });
    }

    it(`${serviceId} GET keys with no categories named: ${readable.length > 0 ? 'its own' : '403'}`, async () => {
      const reply = await h.call('GET', `/v1/keys/${SHARED_USER}`, { as: serviceId });
      if (readable.length > 0) {
        assert.equal(reply.status, 200, reply.text);
        await assertServes(reply.body as KeysBody, serviceId, readable, 'GET all');
      } else {
        await assertDenied(reply, serviceId, SHARED_USER, 'GET all');
      }
    });

    it(`${serviceId} batch-get with no categories named: ${readable.length > 0 ? 'its own' : '403'}`, async () => {
      const reply = await h.call('POST', '/v1/keys/batch-get', { as: serviceId, json: { userIds: [SHARED_USER] } });
      if (readable.length > 0) {
        assert.equal(reply.status, 200, reply.text);
        await assertServes((reply.body as BatchBody).results[0]!, serviceId, readable, 'batch-get all');
      } else {
        await assertDenied(reply, serviceId, SHARED_USER, 'batch-get all');
      }
    });

    const readsAll = readable.length === CATEGORIES.length;
    it(`${serviceId} asks for every category by name: ${readsAll ? '200' : '403, no key of any category'}`, async () => {
      const get = await h.call('GET', `/v1/keys/${SHARED_USER}?categories=${CATEGORIES.join(',')}`, {
        as: serviceId,
      });
      const batch = await h.call('POST', '/v1/keys/batch-get', {
        as: serviceId,
        json: { userIds: [SHARED_USER], categories: [...CATEGORIES] },
      });
      if (readsAll) {
        assert.equal(get.status, 200);
        assert.equal(batch.status, 200);
      } else {
        await assertDenied(get, serviceId, SHARED_USER, 'GET every category');
        await assertDenied(batch, serviceId, SHARED_USER, 'batch-get every category');
      }
    });

    it(`${serviceId} create: ${permissions.create ? '201 with its readable keys' : '403'}`, async () => {
      const userId = `create-${serviceId}`;
      const reply = await h.call('POST', '/v1/keychains', { as: serviceId, json: { userId } });
      if (permissions.create) {
        assert.equal(reply.status, 201, reply.text);
        const body = reply.body as KeysBody;
        assert.equal(body.created, true);
        assert.deepEqual(
          body.categories.map((c) => c.category),
          readable,
        );
        if (readable.length > 0) await assertServes(body, serviceId, readable, 'create');
        assert.equal((await h.call('GET', `/v1/keychains/${userId}`)).status, 200);
      } else {
        assertError(reply, 403, 'PERMISSION_DENIED');
        assert.doesNotMatch(reply.text, /[A-Za-z0-9_-]{43}/);
        assertError(await h.call('GET', `/v1/keychains/${userId}`), 404, 'KEYCHAIN_NOT_FOUND');
      }
    });

    it(`${serviceId} shred keychain: ${permissions.shred ? '200' : '403'}`, async () => {
      const userId = `delete-${serviceId}`;
      await createAsAdmin(userId);
      const reply = await h.call('DELETE', `/v1/keychains/${userId}`, { as: serviceId });
      const after = await h.call('GET', `/v1/keys/${userId}`);
      if (permissions.shred) {
        assert.equal(reply.status, 200, reply.text);
        assert.deepEqual(withoutReceipt(reply.body), { userId, shredded: CATEGORIES.length });
        assertError(after, 410, 'KEYCHAIN_SHREDDED');
      } else {
        await assertDenied(reply, serviceId, userId, 'shred keychain');
        assert.equal(after.status, 200, 'a denied shred destroyed keys');
      }
    });

    it(`${serviceId} metadata: 200 without key bytes`, async () => {
      const reply = await h.call('GET', `/v1/keychains/${SHARED_USER}`, { as: serviceId });
      assert.equal(reply.status, 200, reply.text);
      assert.equal((reply.body as MetadataBody).categories.length, CATEGORIES.length);
      assert.doesNotMatch(reply.text, /[A-Za-z0-9_-]{43}/);
      for (const versions of (await h.expectedKeys(serviceId, SHARED_USER)).values()) {
        for (const key of versions.values()) assert.equal(findSecret(reply.text, key), undefined);
      }
    });
  }

  it('the shared keychain was never changed by the matrix', async () => {
    const meta = (await h.call('GET', `/v1/keychains/${SHARED_USER}`)).body as MetadataBody;
    assert.deepEqual(
      meta.categories.map((c) => [c.category, c.state, c.versions.length]).sort(),
      CATEGORIES.map((c) => [c, 'active', 1]).sort(),
    );
  });
});
