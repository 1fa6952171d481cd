import { kekRing, PadlockError, SecretBytes } from '@padlock/core';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../log.js';
import { SqliteKeyStore } from '../store/sqlite.js';
import { JournalKeys } from './entry.js';
import { FileJournal } from './file.js';
import { JournalGate } from './gate.js';

/*
 * The gate in a running server: a store whose applied position goes down (a
 * restore under it) shuts key serving at the next check; in "auto" it replays
 * and opens again, shredding what had come back; in "manual" it stays shut.
 */

const CATEGORIES = ['profile', 'payments', 'advertising'];

describe('journal gate', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-gate-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function setUp(mode: 'auto' | 'manual') {
    const store = new SqliteKeyStore({ path: join(dir, `${mode}.db`), busyTimeoutMs: 1000 });
    const keys = new JournalKeys(kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1'));
    const journal = await FileJournal.writer(join(dir, `${mode}.journal`), keys);
    const gate = new JournalGate(
      journal,
      store,
      createLogger('error', () => undefined),
      {
        replay: mode,
        checkIntervalMs: 60_000,
      },
    );
    await gate.start();
    for (const userId of ['a', 'b', 'c', 'd']) {
      const rows = CATEGORIES.map((category) => ({ category, version: 1, wrapped: randomBytes(70), createdAt: 1 }));
      await store.insertKeys(userId, rows);
    }
    const shred = async (userId: string): Promise<void> => {
      const entry = await gate.append({ userId, category: null, at: Date.now() });
      await store.shred(userId, undefined, entry.at);
      await gate.applied(entry);
    };
    for (const userId of ['a', 'b', 'c']) await shred(userId);
    await gate.check(false);
    assert.equal(gate.open, true);
    assert.equal(await store.journalApplied(), 3);
    // A restore under the running server: c's keys are back, and the store says it applied 1.
    const restored = CATEGORIES.map((category) => ({ category, version: 2, wrapped: randomBytes(70), createdAt: 1 }));
    await store.insertKeys('c', restored);
    assert.equal(await store.advanceJournal(3, 1), true);
    return { store, journal, gate };
  }

  it('auto: finds the position went down, shuts, replays, shreds what came back, opens', async () => {
    const { store, journal, gate } = await setUp('auto');
    await gate.check(false);
    assert.equal(gate.open, false);
    assert.throws(
      () => gate.assertOpen(),
      (error: unknown) => error instanceof PadlockError && error.code === 'STORE_BEHIND_JOURNAL',
    );
    for (let waited = 0; !gate.open; waited += 20) {
      assert.ok(waited < 5000, gate.status());
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await store.journalApplied(), 3);
    assert.deepEqual(
      (await store.getKeychain('c')).filter((r) => r.wrapped !== null),
      [],
    );
    assert.equal((await store.getKeychain('d')).filter((r) => r.wrapped !== null).length, 3);
    gate.stop();
    await journal.close();
    await store.close();
  });

  it('manual: stays shut, and /readyz text says what to run, until someone replays', async () => {
    const { store, journal, gate } = await setUp('manual');
    await gate.check(false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(gate.open, false);
    assert.match(
      gate.status(),
      /behind: the store has applied shred journal position 1 of 3 .*went down from 3.*run `padlock journal replay`/,
    );
    await gate.replay();
    assert.equal(gate.open, true, gate.status());
    gate.stop();
    await journal.close();
    await store.close();
  });

  it('a store ahead of the journal (journal cut short or replaced) is JOURNAL_CORRUPT', async () => {
    const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 1000 });
    const keys = new JournalKeys(kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1'));
    const journal = await FileJournal.writer(join(dir, 'empty.journal'), keys);
    await store.advanceJournal(0, 7);
    const gate = new JournalGate(
      journal,
      store,
      createLogger('error', () => undefined),
      { replay: 'auto', checkIntervalMs: 60_000 },
    );
    await gate.start();
    assert.equal(gate.open, false);
    assert.throws(
      () => gate.assertOpen(),
      (error: unknown) => error instanceof PadlockError && error.code === 'JOURNAL_CORRUPT',
    );
    assert.match(gate.status(), /corrupt: the store has applied shred journal position 7, but the journal ends at 0/);
    gate.stop();
    await journal.close();
    await store.close();
  });

  it('a live shred whose position lands while a check reads it is not a position gone down', async () => {
    const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 1000 });
    const keys = new JournalKeys(kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1'));
    const journal = await FileJournal.writer(join(dir, 'race.journal'), keys);
    const gate = new JournalGate(
      journal,
      store,
      createLogger('error', () => undefined),
      { replay: 'manual', checkIntervalMs: 60_000 },
    );
    await gate.start();
    const shred = async (userId: string): Promise<void> => {
      const rows = CATEGORIES.map((category) => ({ category, version: 1, wrapped: randomBytes(70), createdAt: 1 }));
      await store.insertKeys(userId, rows);
      const entry = await gate.append({ userId, category: null, at: Date.now() });
      await store.shred(userId, undefined, entry.at);
      await gate.applied(entry);
    };
    await shred('a');
    // A slow read of the applied position (a Cassandra node down): its value is read at once, returned later.
    const read = store.journalApplied.bind(store);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    store.journalApplied = async () => {
      const position = await read();
      await held;
      return position;
    };
    const checking = gate.check(false);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await shred('b'); // its compare-and-set moves the position from 1 to 2 while the check's read is out
    assert.equal(await read(), 2);
    release();
    await checking;
    assert.equal(gate.open, true, gate.status());
    gate.stop();
    await journal.close();
    await store.close();
  });
});
