import { kekRing, PadlockError, SecretBytes } from '@padlock/core';
import cassandra from 'cassandra-driver';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requiredEnv } from '../testing/services-env.js';
import { CassandraJournal } from './cassandra.js';
import { decodeLine, encodeLine, JournalKeys, type JournalEntry } from './entry.js';
import { FileJournal } from './file.js';
import type { ShredJournal } from './types.js';

/*
 * Retiring a KEK that MAC'd shred-journal entries (journal/entry.ts, re-key
 * entries), on both journal kinds. A journal written under "old", re-keyed to
 * "new", must verify with only "new" loaded; and with only "new" loaded (the
 * old KEK retired, and in the adversary's hands: it was rotated because it
 * leaked), an entry edited, removed, inserted or reordered before or after
 * the re-key point, a forged re-key entry, or entries appended under the old
 * KEK after the re-key must all be refused. A re-key racing appends from
 * another process (a running server still on the old KEK) leaves a chain that
 * verifies, with the racing entries before it covered and those after it
 * counted as still needing the old KEK.
 */

const OLD = SecretBytes.random(32);
const NEW = SecretBytes.random(32);
const OTHER = SecretBytes.random(32);
const oldOnly = (): JournalKeys => new JournalKeys(kekRing([{ kid: 'old', key: OLD }], 'old'));
const both = (): JournalKeys =>
  new JournalKeys(
    kekRing(
      [
        { kid: 'new', key: NEW },
        { kid: 'old', key: OLD },
      ],
      'new',
    ),
  );
const newOnly = (): JournalKeys => new JournalKeys(kekRing([{ kid: 'new', key: NEW }], 'new'));
/** The adversary's ring: the leaked old KEK under its own kid, and a key of its own called "new". */
const forger = (): JournalKeys =>
  new JournalKeys(
    kekRing(
      [
        { kid: 'new', key: OTHER },
        { kid: 'old', key: OLD },
      ],
      'old',
    ),
  );

/** Raw access to one journal's entries, below the verifying reader: what an attacker edits. */
interface Backend {
  readonly name: string;
  readonly skip: string | false;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A fresh journal (its own file or keyspace) opened for appending under `keys`. */
  fresh(keys: JournalKeys): Promise<{ journal: ShredJournal; id: string }>;
  open(id: string, keys: JournalKeys): Promise<ShredJournal>;
  /** Another process appending `count` shreds under "old", as a server not restarted since kek activate. */
  appendFromAnotherProcess(id: string, count: number): Promise<void>;
  raw(id: string): Promise<JournalEntry[]>;
  replace(id: string, entries: readonly JournalEntry[]): Promise<void>;
}

async function readAll(journal: ShredJournal): Promise<JournalEntry[]> {
  const entries: JournalEntry[] = [];
  for await (const entry of journal.entriesAfter(0)) entries.push(entry);
  return entries;
}

async function rejectsCorrupt(work: () => Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(work(), (error: unknown) => {
    assert.ok(error instanceof PadlockError, String(error));
    assert.equal(error.code, 'JOURNAL_CORRUPT');
    assert.match(error.message, message);
    return true;
  });
}

/** Re-MACs a shred entry's chain from `from` (0-based) on under `keys` (the adversary holds "old"). */
function remac(entries: JournalEntry[], keys: JournalKeys, from: number): JournalEntry[] {
  const out = entries.slice(0, from);
  for (let i = from; i < entries.length; i++) {
    const entry = entries[i]!;
    const previous = i === 0 ? new Uint8Array(32) : out[i - 1]!.mac;
    const unsigned = { position: i + 1, userId: entry.userId, category: entry.category, at: entry.at, kid: entry.kid };
    out.push({ ...unsigned, mac: keys.mac(unsigned, previous) });
  }
  return out;
}

const FILE_CHILD = `
  import { kekRing, SecretBytes } from '@padlock/core';
  import { readFileSync } from 'node:fs';
  import { FileJournal } from './file.js';
  import { JournalKeys } from './entry.js';
  // A server not yet restarted after kek activate: both KEKs loaded, "old" still active.
  const ring = [
    { kid: 'old', key: SecretBytes.adopt(readFileSync(process.argv[1])) },
    { kid: 'new', key: SecretBytes.adopt(readFileSync(process.argv[1].replace(/old\\.kek$/, 'new.kek'))) },
  ];
  const keys = new JournalKeys(kekRing(ring, 'old'));
  const journal = await FileJournal.writer(process.argv[2], keys);
  for (let i = 0; i < Number(process.argv[3]); i++) {
    await journal.append({ userId: 'racer-' + i, category: null, at: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await journal.close();
`;

function childDone(args: string[], script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
}

function fileBackend(): Backend {
  let dir = '';
  let n = 0;
  return {
    name: 'file',
    skip: false,
    setup() {
      dir = mkdtempSync(join(tmpdir(), 'padlock-rekey-'));
      writeFileSync(join(dir, 'old.kek'), OLD.expose(), { mode: 0o600 });
      writeFileSync(join(dir, 'new.kek'), NEW.expose(), { mode: 0o600 });
      return Promise.resolve();
    },
    teardown() {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
    async fresh(keys) {
      const id = join(dir, `journal-${n++}`);
      return { journal: await FileJournal.writer(id, keys), id };
    },
    open: (id, keys) => FileJournal.reader(id, keys),
    appendFromAnotherProcess: (id, count) => childDone([join(dir, 'old.kek'), id, String(count)], FILE_CHILD),
    raw(id) {
      const lines = readFileSync(id, 'utf8').split('\n').slice(0, -1);
      return Promise.resolve(lines.map((line, i) => decodeLine(line, `line ${i + 1}`)));
    },
    replace(id, entries) {
      writeFileSync(id, entries.map(encodeLine).join(''));
      return Promise.resolve();
    },
  };
}

const cassandraEnv = requiredEnv('PADLOCK_TEST_CASSANDRA');

const CASSANDRA_CHILD = `
  import { kekRing, SecretBytes } from '@padlock/core';
  import { readFileSync } from 'node:fs';
  import { CassandraJournal } from './cassandra.js';
  import { JournalKeys } from './entry.js';
  // A server not yet restarted after kek activate: both KEKs loaded, "old" still active.
  const ring = [
    { kid: 'old', key: SecretBytes.adopt(readFileSync(process.argv[1])) },
    { kid: 'new', key: SecretBytes.adopt(readFileSync(process.argv[1].replace(/old\\.kek$/, 'new.kek'))) },
  ];
  const keys = new JournalKeys(kekRing(ring, 'old'));
  const options = JSON.parse(process.argv[2]);
  const journal = await CassandraJournal.open(options, { keyspace: process.argv[3], replication: { dc1: 1 } }, keys, false);
  for (let i = 0; i < Number(process.argv[4]); i++) {
    await journal.append({ userId: 'racer-' + i, category: null, at: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await journal.close();
`;

function cassandraBackend(): Backend {
  const suffix = randomBytes(4).toString('hex');
  const options = {
    contactPoints: (cassandraEnv.value ?? '').split(','),
    localDataCenter: 'dc1',
    keyspace: 'unused',
    replication: { dc1: 1 },
    connectTimeoutMs: 5000,
    readTimeoutMs: 10000,
    hedgeAfterMs: 0,
    createSchema: true,
  };
  let client: cassandra.Client;
  let dir = '';
  const keyspaces: string[] = [];
  const columns = 'position, user_id, category, at, kid, mac, rekey_from_kid, rekey_from_mac, rekey_digest';
  return {
    name: 'cassandra',
    skip: cassandraEnv.skip,
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'padlock-rekey-'));
      writeFileSync(join(dir, 'old.kek'), OLD.expose(), { mode: 0o600 });
      writeFileSync(join(dir, 'new.kek'), NEW.expose(), { mode: 0o600 });
      client = new cassandra.Client({ contactPoints: options.contactPoints, localDataCenter: 'dc1' });
      await client.connect();
    },
    async teardown() {
      for (const ks of keyspaces) await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 60000 });
      await client.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
    async fresh(keys) {
      // One keyspace for every case (creating one takes seconds): each case starts on an empty partition.
      const id = `padlock_rekey_${suffix}`;
      if (keyspaces.length === 0) keyspaces.push(id);
      else await client.execute(`DELETE FROM ${id}.shreds WHERE stream = 0`);
      const journal = await CassandraJournal.open(options, { keyspace: id, replication: { dc1: 1 } }, keys, true);
      return { journal, id };
    },
    open: (id, keys) => CassandraJournal.open(options, { keyspace: id, replication: { dc1: 1 } }, keys, false),
    appendFromAnotherProcess: (id, count) =>
      childDone([join(dir, 'old.kek'), JSON.stringify(options), id, String(count)], CASSANDRA_CHILD),
    async raw(id) {
      const result = await client.execute(`SELECT ${columns} FROM ${id}.shreds WHERE stream = 0`, [], {
        fetchSize: 10_000,
      });
      return result.rows.map((row) => ({
        position: (row['position'] as cassandra.types.Long).toNumber(),
        userId: row['user_id'] as string,
        category: (row['category'] as string | null) ?? null,
        at: (row['at'] as cassandra.types.Long).toNumber(),
        kid: row['kid'] as string,
        mac: row['mac'] as Buffer,
        ...(row['rekey_from_kid'] === null
          ? {}
          : {
              rekey: {
                fromKid: row['rekey_from_kid'] as string,
                fromMac: row['rekey_from_mac'] as Buffer,
                digest: row['rekey_digest'] as Buffer,
              },
            }),
      }));
    },
    async replace(id, entries) {
      await client.execute(`DELETE FROM ${id}.shreds WHERE stream = 0`);
      for (const e of entries) {
        await client.execute(
          `INSERT INTO ${id}.shreds (stream, ${columns}) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            cassandra.types.Long.fromNumber(e.position),
            e.userId,
            e.category,
            cassandra.types.Long.fromNumber(e.at),
            e.kid,
            Buffer.from(e.mac),
            e.rekey?.fromKid ?? null,
            e.rekey === undefined ? null : Buffer.from(e.rekey.fromMac),
            e.rekey === undefined ? null : Buffer.from(e.rekey.digest),
          ],
          { prepare: true },
        );
      }
    },
  };
}

for (const backend of [fileBackend(), cassandraBackend()]) {
  describe(`shred journal re-key (${backend.name})`, { skip: backend.skip, timeout: 300_000 }, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    /**
     * Positions 1-4 under "old", 5 under "new" (a server restarted after activate), 6 the re-key
     * entry, 7-8 under "new". Returns the journal's id and its raw entries.
     */
    async function rekeyed(): Promise<{ id: string; entries: JournalEntry[] }> {
      const first = await backend.fresh(oldOnly());
      for (let i = 1; i <= 4; i++) await first.journal.append({ userId: `u${i}`, category: null, at: 1000 + i });
      await first.journal.close();
      const writer = await writerFor(first.id, both());
      await writer.append({ userId: 'u5', category: 'payments', at: 1005 });
      const entry = await writer.rekey();
      assert.ok(entry !== null);
      assert.equal(entry.position, 6);
      assert.equal(entry.kid, 'new');
      assert.equal(entry.rekey?.fromKid, 'old');
      for (let i = 7; i <= 8; i++) await writer.append({ userId: `u${i}`, category: null, at: 1000 + i });
      await writer.close();
      return { id: first.id, entries: await backend.raw(first.id) };
    }

    /** A writer on an existing journal (the file backend: FileJournal.writer; Cassandra: open). */
    function writerFor(id: string, keys: JournalKeys): Promise<ShredJournal> {
      return backend.name === 'file' ? FileJournal.writer(id, keys) : backend.open(id, keys);
    }

    async function verifyWithNewOnly(id: string): Promise<JournalEntry[]> {
      const journal = await backend.open(id, newOnly());
      try {
        return await readAll(journal);
      } finally {
        await journal.close();
      }
    }

    it('without a re-key entry, entries under a KEK that is not loaded are refused', async () => {
      const { journal, id } = await backend.fresh(oldOnly());
      await journal.append({ userId: 'u1', category: null, at: 1 });
      await journal.close();
      await rejectsCorrupt(() => verifyWithNewOnly(id), /names KEK "old", which is not loaded/);
    });

    it('after the re-key entry the whole chain verifies with only the new KEK loaded, and appends go on', async () => {
      const { id, entries } = await rekeyed();
      const read = await verifyWithNewOnly(id);
      assert.deepEqual(
        read.map((e) => [e.position, e.userId, e.kid, e.rekey === undefined ? 'shred' : 'rekey']),
        [
          [1, 'u1', 'old', 'shred'],
          [2, 'u2', 'old', 'shred'],
          [3, 'u3', 'old', 'shred'],
          [4, 'u4', 'old', 'shred'],
          [5, 'u5', 'new', 'shred'],
          [6, '', 'new', 'rekey'],
          [7, 'u7', 'new', 'shred'],
          [8, 'u8', 'new', 'shred'],
        ],
      );
      assert.equal(entries.length, 8);
      // A server with only the new KEK appends and reads the head.
      const writer = await writerFor(id, newOnly());
      const next = await writer.append({ userId: 'u9', category: null, at: 1009 });
      assert.equal(next.position, 9);
      assert.equal((await writer.head()).position, 9);
      await writer.close();
      assert.equal((await verifyWithNewOnly(id)).length, 9);
      // Nothing left to re-key: every entry since the re-key is under the active KEK.
      const again = await writerFor(id, newOnly());
      assert.equal(await again.rekey(), null);
      await again.close();
    });

    const attacks: {
      name: string;
      edit: (entries: JournalEntry[]) => JournalEntry[];
      message: RegExp;
    }[] = [
      {
        name: 'an entry before the re-key edited (its old MAC kept)',
        edit: (e) => e.map((x) => (x.position === 2 ? { ...x, userId: 'someone-else' } : x)),
        message: /re-key entry at position 6 does not match/,
      },
      {
        name: 'an entry before the re-key replaced, the chain re-MACd with the leaked old KEK',
        edit: (e) => {
          const prefix = e.slice(0, 4).map((x) => (x.position === 3 ? { ...x, userId: 'someone-else' } : x));
          const forged = remac(prefix, forger(), 2);
          // Entry 5 is under "new": its MAC covers entry 4's MAC, which changed; keep it as it was.
          return [...forged, ...e.slice(4)];
        },
        message: /position 5 does not authenticate|re-key entry at position 6 does not match/,
      },
      {
        name: 'an entry before the re-key removed, the prefix renumbered and re-MACd with the old KEK',
        edit: (e) => {
          const prefix = remac(
            e.slice(0, 4).filter((x) => x.position !== 2),
            forger(),
            0,
          );
          return [...prefix, ...e.slice(4)];
        },
        message: /follows position 3|missing or out of order/,
      },
      {
        name: 'an entry before the re-key removed (a gap)',
        edit: (e) => e.filter((x) => x.position !== 2),
        message: /missing or out of order/,
      },
      {
        name: 'two entries before the re-key swapped (positions kept)',
        edit: (e) =>
          e.map((x) =>
            x.position === 1 ? { ...e[1]!, position: 1 } : x.position === 2 ? { ...e[0]!, position: 2 } : x,
          ),
        message: /re-key entry at position 6 does not match/,
      },
      {
        name: 'an entry inserted before the re-key, re-MACd with the old KEK, positions shifted',
        edit: (e) => {
          const prefix = remac([...e.slice(0, 2), { ...e[0]!, userId: 'inserted' }, ...e.slice(2, 4)], forger(), 0);
          return [...prefix, ...e.slice(4)];
        },
        message: /missing or out of order|does not authenticate/,
      },
      {
        name: 'an entry after the re-key edited',
        edit: (e) => e.map((x) => (x.position === 7 ? { ...x, userId: 'someone-else' } : x)),
        message: /position 7 does not authenticate/,
      },
      {
        name: 'an entry after the re-key removed',
        edit: (e) => e.filter((x) => x.position !== 7),
        message: /missing or out of order/,
      },
      {
        name: 'two entries after the re-key swapped (positions kept)',
        edit: (e) =>
          e.map((x) =>
            x.position === 7 ? { ...e[7]!, position: 7 } : x.position === 8 ? { ...e[6]!, position: 8 } : x,
          ),
        message: /position 7 does not authenticate/,
      },
      {
        name: 'the re-key entry removed and the rest renumbered',
        edit: (e) => e.filter((x) => x.rekey === undefined).map((x, i) => ({ ...x, position: i + 1 })),
        message: /does not authenticate|not loaded/,
      },
      {
        name: 'the journal cut back to before the re-key entry',
        edit: (e) => e.slice(0, 5),
        message: /names KEK "old", which is not loaded, and no re-key entry after it covers it/,
      },
      {
        name: 'a forged re-key entry under "new" made with a key of its own over an edited prefix',
        edit: (e) => {
          const prefix = e.slice(0, 5).map((x) => (x.position === 1 ? { ...x, userId: 'forged' } : x));
          return [...prefix, { ...e[5]!, mac: forger().rekeyEntry(unsignedOf(e[5]!), e[4]!.mac).mac }, ...e.slice(6)];
        },
        message: /position 6 does not authenticate|re-key entry at position 6 does not match/,
      },
      {
        name: 'a re-key entry under the leaked old KEK',
        edit: (e) => [...e.slice(0, 5), forger().rekeyEntry({ ...unsignedOf(e[5]!), kid: 'old' }, e[4]!.mac)],
        message: /position 6 names KEK "old", which is not loaded/,
      },
      {
        name: 'an entry appended under the leaked old KEK after the re-key',
        edit: (e) => {
          const last = e[e.length - 1]!;
          const unsigned = { position: last.position + 1, userId: 'late', category: null, at: 2000, kid: 'old' };
          return [...e, { ...unsigned, mac: forger().mac(unsigned, last.mac) }];
        },
        message: /position 9 names KEK "old", which is not loaded/,
      },
    ];

    for (const attack of attacks) {
      it(`refuses ${attack.name}, with only the new KEK loaded`, async () => {
        const { id, entries } = await rekeyed();
        await backend.replace(id, attack.edit(entries));
        await rejectsCorrupt(() => verifyWithNewOnly(id), attack.message);
      });
    }

    it('checks the re-key entry under the old KEK too while it is loaded', async () => {
      const { id, entries } = await rekeyed();
      const tampered = entries.map((x) =>
        x.rekey === undefined ? x : { ...x, rekey: { ...x.rekey, fromMac: randomBytes(32) } },
      );
      await backend.replace(id, tampered);
      await rejectsCorrupt(async () => {
        const journal = await backend.open(id, both());
        try {
          await readAll(journal);
        } finally {
          await journal.close();
        }
      }, /position 6 does not authenticate/);
    });

    it('a re-key racing appends from another process: the chain verifies; late old-KEK entries need a second re-key', async () => {
      const { journal, id } = await backend.fresh(oldOnly());
      for (let i = 0; i < 3; i++) await journal.append({ userId: `before-${i}`, category: null, at: i });
      await journal.close();
      const racer = backend.appendFromAnotherProcess(id, 60);
      const writer = await writerFor(id, both());
      // Re-key while the other process appends (one every 10 ms): once 10 of its entries are in,
      // so some land before the re-key entry and the rest after it.
      const deadline = Date.now() + 30_000;
      while ((await backend.raw(id)).length < 13 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const first = await writer.rekey();
      await racer;
      assert.ok(first !== null);
      assert.ok(first.position > 13, `re-key at ${first.position}`);
      const raw = await backend.raw(id);
      assert.equal(raw.length, 64);
      assert.deepEqual(
        raw.map((e) => e.position),
        Array.from({ length: 64 }, (_, i) => i + 1),
      );
      const lateOld = raw.filter((e) => e.position > first.position && e.kid === 'old').length;
      assert.ok(lateOld > 0, 'the other process appended after the re-key');
      // A server still on the old KEK appended after the re-key: those entries still need it.
      await rejectsCorrupt(() => verifyWithNewOnly(id), /names KEK "old", which is not loaded/);
      const second = await writer.rekey();
      assert.ok(second !== null && second.position === 65);
      await writer.close();
      const read = await verifyWithNewOnly(id);
      assert.equal(read.filter((e) => e.rekey === undefined).length, 63);
      assert.equal(read.filter((e) => e.userId.startsWith('racer-')).length, 60);
    });
  });
}

function unsignedOf(entry: JournalEntry): {
  position: number;
  at: number;
  kid: string;
  fromKid: string;
  digest: Uint8Array;
} {
  assert.ok(entry.rekey !== undefined);
  return {
    position: entry.position,
    at: entry.at,
    kid: entry.kid,
    fromKid: entry.rekey.fromKid,
    digest: entry.rekey.digest,
  };
}
