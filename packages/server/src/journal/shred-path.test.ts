import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { assertError, startHarness, type Harness, type KeysBody } from '../testing/harness.js';

/*
 * The live shred path: journal first, then the store. A shred whose journal
 * append fails is not acknowledged and not done (the key is still served, so
 * the caller's retry is honest); a journal replaced under a running server is
 * noticed at the next append.
 */

describe('shred path: journal before store', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: {
        store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } },
        journal: { file: { path: 'journal/shreds.journal' } },
      },
    });
  });
  after(() => h.close());

  it('a failed journal append answers 503 JOURNAL_UNAVAILABLE and shreds nothing', async () => {
    for (const userId of ['kept', 'first']) {
      assert.equal((await h.call('POST', '/v1/keychains', { json: { userId } })).status, 201);
    }
    assert.equal((await h.call('DELETE', '/v1/keychains/first')).status, 200);
    const path = h.config.journal.file.path;
    rmSync(path);
    mkdirSync(path); // the journal's name now names a directory: every append fails
    assertError(await h.call('DELETE', '/v1/keychains/kept'), 503, 'JOURNAL_UNAVAILABLE');
    assertError(await h.call('DELETE', '/v1/keychains/kept/categories/profile'), 503, 'JOURNAL_UNAVAILABLE');
    const still = await h.call('GET', '/v1/keys/kept');
    assert.equal(still.status, 200, still.text);
    assert.deepEqual(
      (still.body as KeysBody).categories.map((c) => [c.category, c.status]),
      [
        ['profile', 'ok'],
        ['payments', 'ok'],
        ['advertising', 'ok'],
      ],
    );
    assert.equal(await h.padlock.store.journalApplied(), 1);
  });

  it('a journal replaced by a shorter one under a running server: the next append is JOURNAL_CORRUPT', async () => {
    const path = h.config.journal.file.path;
    rmSync(path, { recursive: true });
    assertError(await h.call('DELETE', '/v1/keychains/kept'), 503, 'JOURNAL_CORRUPT');
    assert.equal((await h.call('GET', '/v1/keys/kept')).status, 200);
  });
});
