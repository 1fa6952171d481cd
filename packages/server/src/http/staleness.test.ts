import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import {
  assertError,
  startHarness,
  type BatchBody,
  type Harness,
  type HttpReply,
  type KeysBody,
  type MetadataBody,
} from '../testing/harness.js';

/*
 * The deletion bound (DESIGN.md section 6): after a successful shred no node
 * of any group hands out the key for longer than maxStalenessSeconds. Server A
 * caches; server B, another deployment group on the same store, shreds, so
 * nothing invalidates A's cache. A must keep serving from its cache for a
 * while (or this would test invalidation, not the bound) and stop within it.
 */

const MAX_STALENESS_S = 2;
const BOUND_MS = MAX_STALENESS_S * 1000;
/** Polling interval plus scheduling noise on a loaded machine. */
const SLACK_MS = 250;

describe(`deletion bound: maxStalenessSeconds = ${MAX_STALENESS_S}`, () => {
  let a: Harness;
  let b: Harness;
  before(async () => {
    a = await startHarness({ config: { maxStalenessSeconds: MAX_STALENESS_S } });
    b = await a.peer({ config: { maxStalenessSeconds: MAX_STALENESS_S } });
  });
  after(() => a.close());

  it('a shred through another group stops this group serving within the bound, after serving from cache', async () => {
    for (const userId of ['leaving', 'opting-out']) {
      assert.equal((await a.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
    }
    // Prime A's cache for both users.
    assert.equal((await a.call('GET', '/v1/keys/leaving')).status, 200);
    const primed = await a.call('POST', '/v1/keys/batch-get', { json: { userIds: ['leaving', 'opting-out'] } });
    assert.equal(primed.status, 200);

    const shredStarted = Date.now();
    assert.equal((await b.call('DELETE', '/v1/keychains/leaving')).status, 200);
    assert.equal((await b.call('DELETE', '/v1/keychains/opting-out/categories/advertising')).status, 200);
    const shredDone = Date.now();

    // The store has it at once: B and A's uncached metadata read both say shredded.
    assertError(await b.call('GET', '/v1/keys/leaving'), 410, 'KEYCHAIN_SHREDDED');
    const meta = (await a.call('GET', '/v1/keychains/leaving')).body as MetadataBody;
    assert.ok(meta.categories.every((c) => c.state === 'shredded'));

    // A's cache still holds the keys: this is what the bound is about.
    const stale = await a.call('GET', '/v1/keys/leaving');
    const staleAt = Date.now();
    assert.equal(stale.status, 200, 'A did not serve from its cache; the test would prove nothing');
    const staleBody = stale.body as KeysBody;
    assert.ok(staleBody.maxAgeSeconds <= MAX_STALENESS_S);
    // A client caching for maxAgeSeconds stays within the bound too.
    assert.ok(staleAt + staleBody.maxAgeSeconds * 1000 <= shredDone + BOUND_MS + SLACK_MS, 'maxAgeSeconds too long');
    const staleBatch = (await a.call('POST', '/v1/keys/batch-get', { json: { userIds: ['leaving', 'opting-out'] } }))
      .body as BatchBody;
    assert.equal(staleBatch.results[0]?.status, 'ok');
    assert.equal(staleBatch.results[1]?.categories.find((c) => c.category === 'advertising')?.status, 'ok');

    // Then A stops, within the bound.
    let single: HttpReply | undefined;
    let batch: BatchBody | undefined;
    let goneAt = 0;
    while (Date.now() - shredStarted < BOUND_MS + 2 * SLACK_MS) {
      single = await a.call('GET', '/v1/keys/leaving');
      batch = (await a.call('POST', '/v1/keys/batch-get', { json: { userIds: ['leaving', 'opting-out'] } }))
        .body as BatchBody;
      const advertising = batch.results[1]?.categories.find((c) => c.category === 'advertising');
      if (single.status === 410 && batch.results[0]?.status === 'shredded' && advertising?.status === 'shredded') {
        goneAt = Date.now();
        break;
      }
      await sleep(50);
    }
    assert.ok(goneAt > 0, `A still served the keys ${Date.now() - shredDone} ms after the shred`);
    assert.ok(goneAt - shredDone <= BOUND_MS + SLACK_MS, `A served ${goneAt - shredDone} ms after the shred`);
    assertError(single!, 410, 'KEYCHAIN_SHREDDED');
    assert.deepEqual(batch!.results[0], { userId: 'leaving', status: 'shredded' });
    const kept = batch!.results[1]!;
    assert.equal(kept.status, 'ok', 'the other categories of opting-out must stay');
    assert.deepEqual(
      kept.categories.map((c) => [c.category, c.status]),
      [
        ['profile', 'ok'],
        ['payments', 'ok'],
        ['advertising', 'shredded'],
      ],
    );
    assert.doesNotMatch(JSON.stringify(kept.categories[2]), /"keys"/);
  });

  it('a shred through the same server is immediate, also for keys it has cached', async () => {
    assert.equal((await a.call('POST', '/v1/keychains', { json: { userId: 'local' } })).status, 201);
    assert.equal((await a.call('GET', '/v1/keys/local')).status, 200);
    assert.equal((await a.call('POST', '/v1/keys/batch-get', { json: { userIds: ['local'] } })).status, 200);

    assert.equal((await a.call('DELETE', '/v1/keychains/local/categories/profile')).status, 200);
    assertError(await a.call('GET', '/v1/keys/local?categories=profile'), 410, 'KEYCHAIN_SHREDDED');
    const partly = (await a.call('GET', '/v1/keys/local')).body as KeysBody;
    assert.equal(partly.categories.find((c) => c.category === 'profile')?.status, 'shredded');

    assert.equal((await a.call('DELETE', '/v1/keychains/local')).status, 200);
    assertError(await a.call('GET', '/v1/keys/local'), 410, 'KEYCHAIN_SHREDDED');
    const batch = (await a.call('POST', '/v1/keys/batch-get', { json: { userIds: ['local'] } })).body as BatchBody;
    assert.deepEqual(batch.results, [{ userId: 'local', status: 'shredded' }]);
  });

  it('a rotation through another group is served by this group within the bound', async () => {
    assert.equal((await a.call('POST', '/v1/keychains', { json: { userId: 'rotating' } })).status, 201);
    assert.equal((await a.call('GET', '/v1/keys/rotating')).status, 200);
    assert.equal((await b.call('POST', '/v1/keychains/rotating/categories/profile/rotate')).status, 201);
    const rotatedAt = Date.now();
    let current = 1;
    while (current !== 2 && Date.now() - rotatedAt < BOUND_MS + 2 * SLACK_MS) {
      const body = (await a.call('GET', '/v1/keys/rotating?categories=profile')).body as KeysBody;
      current = body.categories[0]?.current ?? 0;
      if (current !== 2) await sleep(50);
    }
    assert.equal(current, 2, 'A never served the new version');
    assert.ok(Date.now() - rotatedAt <= BOUND_MS + SLACK_MS);
  });

  it('every response says how long its keys may be cached, never beyond the bound', async () => {
    assert.equal((await a.call('POST', '/v1/keychains', { json: { userId: 'ages' } })).status, 201);
    const first = (await a.call('GET', '/v1/keys/ages')).body as KeysBody;
    assert.ok(first.maxAgeSeconds >= 0 && first.maxAgeSeconds <= MAX_STALENESS_S);
    await sleep(1100);
    const later = (await a.call('GET', '/v1/keys/ages')).body as KeysBody;
    assert.ok(later.maxAgeSeconds < first.maxAgeSeconds || later.maxAgeSeconds === 0, 'age did not count down');
  });
});
