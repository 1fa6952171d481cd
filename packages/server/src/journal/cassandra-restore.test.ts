import { kekRing, SecretBytes } from '@padlock/core';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLogger } from '../log.js';
import { CassandraKeyStore, type CassandraStoreOptions } from '../store/cassandra.js';
import { requiredEnv } from '../testing/services-env.js';
import { CassandraJournal } from './cassandra.js';
import { JournalKeys } from './entry.js';
import { JournalGate } from './gate.js';
import { replayJournal } from './replay.js';

/*
 * docs/operations.md's Cassandra restore, on a real node: shred some users,
 * snapshot the store's keyspace with nodetool, shred more (whole keychains
 * and single categories), restore the snapshot (TRUNCATE, then nodetool
 * import of the snapshot's SSTables), and check that the restore brought the
 * later shreds back, that a server would refuse to serve (the gate), and that
 * replaying the journal (its own keyspace, never in the snapshot) shreds them
 * all again.
 *
 * The node: PADLOCK_TEST_CASSANDRA_RESTORE (e.g. 127.0.0.6:9042, the node of
 * scripts/cassandra/start-journal.sh) with PADLOCK_TEST_CASSANDRA_RESTORE_NODE
 * (its name for nodetool.sh and its directory under .cassandra/, e.g. journal);
 * otherwise the single test node (PADLOCK_TEST_CASSANDRA, "single").
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const own = process.env['PADLOCK_TEST_CASSANDRA_RESTORE'];
const env =
  own !== undefined && own !== '' ? { value: own, skip: false as const } : requiredEnv('PADLOCK_TEST_CASSANDRA');
const NODE =
  own !== undefined && own !== '' ? (process.env['PADLOCK_TEST_CASSANDRA_RESTORE_NODE'] ?? 'journal') : 'single';
const CASS_DIR = process.env['CASS_DIR'] ?? join(ROOT, '.cassandra');
const TABLES = ['root_keys', 'services', 'credentials', 'journal_applied'];
const CATEGORIES = ['profile', 'payments', 'advertising'];

async function nodetool(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [join(ROOT, 'scripts/cassandra/nodetool.sh'), NODE, ...args], {
    timeout: 120_000,
  });
  return stdout;
}

describe(
  'Cassandra: a restored snapshot is replayed from the shred journal',
  { skip: env.skip, timeout: 600_000 },
  () => {
    const suffix = randomBytes(4).toString('hex');
    const keyspace = `padlock_restore_${suffix}`;
    const journalKeyspace = `padlock_restore_${suffix}_journal`;
    const options: CassandraStoreOptions = {
      contactPoints: (env.value ?? '').split(','),
      localDataCenter: 'dc1',
      keyspace,
      replication: { dc1: 1 },
      connectTimeoutMs: 5000,
      readTimeoutMs: 10000,
      hedgeAfterMs: 0,
      createSchema: true,
    };
    const keks = kekRing([{ kid: 'k1', key: SecretBytes.random(32) }], 'k1');
    let store: CassandraKeyStore;
    let journal: CassandraJournal;
    let gate: JournalGate;
    const log = createLogger('error', () => undefined);
    const users = Array.from({ length: 160 }, (_, i) => `user-${i}`);
    const beforeSnapshot = users.slice(0, 20);
    const afterSnapshot = users.slice(20, 100);
    const categoryAfter = users.slice(100, 130); // "payments" only
    const kept = users.slice(130);

    before(async () => {
      store = await CassandraKeyStore.open(options);
      journal = await CassandraJournal.open(
        options,
        { keyspace: journalKeyspace, replication: { dc1: 1 } },
        new JournalKeys(keks),
        true,
      );
      gate = new JournalGate(journal, store, log, { replay: 'manual', checkIntervalMs: 60_000 });
      for (const userId of users) {
        const rows = CATEGORIES.map((category) => ({
          category,
          version: 1,
          wrapped: randomBytes(70),
          createdAt: Date.now(),
        }));
        assert.equal((await store.insertKeys(userId, rows)).length, 3);
      }
    });
    after(async () => {
      gate?.stop();
      await store?.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 60000 });
      await store?.driver.execute(`DROP KEYSPACE IF EXISTS ${journalKeyspace}`, [], { readTimeout: 60000 });
      await journal?.close();
      await store?.close();
    });

    /** The server's shred order (KeyService.shred): journal, store, applied position. */
    async function shred(userId: string, category: string | null): Promise<void> {
      const entry = await gate.append({ userId, category, at: Date.now() });
      await store.shred(userId, category ?? undefined, entry.at);
      await gate.applied(entry);
    }

    async function liveRows(ids: readonly string[], category?: string): Promise<number> {
      let live = 0;
      for (const userId of ids) {
        for (const row of await store.getKeychain(userId, { fresh: true })) {
          if (row.wrapped !== null && (category === undefined || row.category === category)) live++;
        }
      }
      return live;
    }

    it('snapshot, shred, restore the snapshot with nodetool: the later shreds are back; replay shreds them again', async () => {
      for (const userId of beforeSnapshot) await shred(userId, null);
      assert.equal(await store.journalApplied(), beforeSnapshot.length);

      const tag = `padlock-${suffix}`;
      await nodetool('flush', keyspace);
      await nodetool('snapshot', '-t', tag, keyspace);

      for (const userId of afterSnapshot) await shred(userId, null);
      for (const userId of categoryAfter) await shred(userId, 'payments');
      const head = beforeSnapshot.length + afterSnapshot.length + categoryAfter.length;
      assert.equal(await store.journalApplied(), head);
      assert.equal(await liveRows(afterSnapshot), 0);

      // The restore of docs/operations.md: empty each table, then import the snapshot's SSTables.
      const keyspaceDir = join(CASS_DIR, NODE, 'data', keyspace);
      const tableDirs = readdirSync(keyspaceDir);
      for (const table of TABLES) {
        await store.driver.execute(`TRUNCATE ${keyspace}.${table}`, [], { readTimeout: 60000 });
        const dir = tableDirs.find((d) => d.startsWith(`${table}-`));
        assert.ok(dir !== undefined, `no data directory for ${table} in ${keyspaceDir}: ${tableDirs.join(', ')}`);
        await nodetool('import', '--copy-data', keyspace, table, join(keyspaceDir, dir, 'snapshots', tag));
      }

      assert.equal(await store.journalApplied(), beforeSnapshot.length, 'the snapshot holds the position it covers');
      assert.equal(
        await liveRows(afterSnapshot),
        afterSnapshot.length * 3,
        'the restore brought the shredded keys back',
      );
      assert.equal(await liveRows(categoryAfter, 'payments'), categoryAfter.length);
      assert.equal(await liveRows(beforeSnapshot), 0);

      await gate.check(true);
      assert.equal(gate.open, false);
      assert.match(gate.status(), new RegExp(`behind: .*position ${beforeSnapshot.length} of ${head}`));

      const replayed = await replayJournal(journal, store);
      assert.deepEqual(replayed, {
        from: beforeSnapshot.length,
        to: head,
        entries: afterSnapshot.length + categoryAfter.length,
        shredded: afterSnapshot.length * 3 + categoryAfter.length,
      });
      assert.equal(await liveRows(afterSnapshot), 0);
      assert.equal(await liveRows(categoryAfter, 'payments'), 0);
      assert.equal(await liveRows(categoryAfter), categoryAfter.length * 2, 'other categories stay');
      assert.equal(await liveRows(kept), kept.length * 3);
      await gate.check(false);
      assert.equal(gate.open, true, gate.status());

      const again = await replayJournal(journal, store);
      assert.deepEqual([again.entries, again.shredded], [0, 0], 'a second replay has nothing to do');
      await nodetool('clearsnapshot', '-t', tag, '--', keyspace);
    });

    it('two servers appending at once get distinct positions in one valid chain (conditional inserts)', async () => {
      const other = await CassandraJournal.open(
        options,
        { keyspace: journalKeyspace, replication: { dc1: 1 } },
        new JournalKeys(keks),
        false,
      );
      try {
        const start = (await journal.head()).position;
        const appended = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 === 0 ? journal : other).append({ userId: `race-${i}`, category: null, at: i }),
          ),
        );
        assert.deepEqual(
          appended.map((e) => e.position).sort((a, b) => a - b),
          Array.from({ length: 40 }, (_, i) => start + i + 1),
        );
        const read: string[] = [];
        for await (const entry of journal.entriesAfter(start)) read.push(entry.userId);
        assert.deepEqual(read.sort(), appended.map((e) => e.userId).sort());
      } finally {
        await other.close();
      }
    });

    it('the journal refuses an edited entry: JOURNAL_CORRUPT', async () => {
      await store.driver.execute(
        `UPDATE ${journalKeyspace}.shreds SET user_id = 'someone-else' WHERE stream = 0 AND position = 3`,
      );
      await assert.rejects(
        async () => {
          for await (const entry of journal.entriesAfter(0)) void entry;
        },
        { code: 'JOURNAL_CORRUPT' },
      );
    });
  },
);
