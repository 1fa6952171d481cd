import { kekRing, PadlockError, SecretBytes } from '@padlock/core';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SqliteKeyStore } from '../store/sqlite.js';
import { encodeLine, JournalKeys, type JournalEntry } from './entry.js';
import { FileJournal } from './file.js';
import { replayJournal } from './replay.js';

/*
 * The file journal against hostile files: a torn last line after a crash, an
 * edited, removed, inserted, reordered or forged entry, a journal cut short
 * behind the store, and a lock held by another process.
 */

function keysFor(...kids: string[]): JournalKeys {
  const keks = kids.map((kid) => ({ kid, key: SecretBytes.random(32) }));
  return new JournalKeys(kekRing(keks, kids[0]!));
}

async function readAll(path: string, keys: JournalKeys): Promise<JournalEntry[]> {
  const journal = await FileJournal.reader(path, keys);
  const entries: JournalEntry[] = [];
  for await (const entry of journal.entriesAfter(0)) entries.push(entry);
  await journal.close();
  return entries;
}

async function rejectsCorrupt(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PadlockError, String(error));
    assert.equal(error.code, 'JOURNAL_CORRUPT');
    assert.match(error.message, message);
    return true;
  });
}

describe('file shred journal', () => {
  let dir: string;
  let n = 0;
  const keys = keysFor('k1', 'k0');
  /** A fresh journal with `count` entries; returns its path and lines. */
  const written = async (count: number): Promise<{ path: string; lines: string[] }> => {
    const path = join(dir, `journal-${n++}`);
    const journal = await FileJournal.writer(path, keys);
    for (let i = 0; i < count; i++) {
      await journal.append({
        userId: `user-${i}`,
        category: i % 2 === 0 ? null : 'payments',
        at: 1_700_000_000_000 + i,
      });
    }
    await journal.close();
    return { path, lines: readFileSync(path, 'utf8').split('\n').slice(0, -1) };
  };
  const rewrite = (path: string, lines: readonly string[]): void => {
    writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-journal-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('appends entries with positions 1..n that read back and verify', async () => {
    const { path } = await written(5);
    const entries = await readAll(path, keys);
    assert.deepEqual(
      entries.map((e) => [e.position, e.userId, e.category]),
      [
        [1, 'user-0', null],
        [2, 'user-1', 'payments'],
        [3, 'user-2', null],
        [4, 'user-3', 'payments'],
        [5, 'user-4', null],
      ],
    );
    const reopened = await FileJournal.writer(path, keys);
    assert.equal((await reopened.append({ userId: 'next', category: null, at: 1 })).position, 6);
    await reopened.close();
    assert.equal((await readAll(path, keys)).length, 6);
  });

  it('skips a torn last line (a crash mid-append), and the next writer cuts it off and goes on', async () => {
    const { path, lines } = await written(3);
    appendFileSync(path, lines[2]!.slice(0, 40)); // no "\n": the append never returned
    assert.equal((await readAll(path, keys)).length, 3);
    const journal = await FileJournal.writer(path, keys);
    assert.equal((await journal.append({ userId: 'after-crash', category: null, at: 2 })).position, 4);
    await journal.close();
    const entries = await readAll(path, keys);
    assert.deepEqual(
      entries.map((e) => e.userId),
      ['user-0', 'user-1', 'user-2', 'after-crash'],
    );
  });

  const hostile: readonly { name: string; edit: (lines: string[]) => string[]; message: RegExp }[] = [
    {
      name: 'an edited user id',
      edit: (l) => [l[0]!, l[1]!.replace('user-1', 'user-9'), ...l.slice(2)],
      message: /line 2: .*does not authenticate/,
    },
    {
      name: 'a category changed to the whole keychain',
      edit: (l) => [l[0]!, l[1]!.replace('"payments"', 'null'), ...l.slice(2)],
      message: /line 2: .*does not authenticate/,
    },
    {
      name: 'an edited time',
      edit: (l) => [l[0]!, l[1]!.replace('1700000000001', '1700000000002'), ...l.slice(2)],
      message: /does not authenticate/,
    },
    { name: 'a removed entry', edit: (l) => [l[0]!, l[2]!, l[3]!], message: /position 3 follows position 1/ },
    { name: 'a removed first entry', edit: (l) => l.slice(1), message: /position 2 follows position 0/ },
    {
      name: 'two entries swapped',
      edit: (l) => [l[0]!, l[2]!, l[1]!, l[3]!],
      message: /position 3 follows position 1/,
    },
    { name: 'an entry repeated', edit: (l) => [l[0]!, l[1]!, l[1]!, l[2]!], message: /position 2 follows position 2/ },
    {
      name: 'an entry renumbered into a gap',
      edit: (l) => [l[0]!, l[2]!.replace('"position":3', '"position":2'), l[3]!],
      message: /does not authenticate/,
    },
    {
      name: 'a MAC in non-canonical base64url',
      edit: (l) => {
        const mac = /"mac":"([^"]+)"/.exec(l[1]!)![1]!;
        const last = mac.at(-1)!;
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const twin = alphabet[alphabet.indexOf(last) ^ 1]!; // same 4 high bits, other spare bits
        return [l[0]!, l[1]!.replace(mac, mac.slice(0, -1) + twin), ...l.slice(2)];
      },
      message: /canonical/,
    },
    {
      name: 'a truncated MAC',
      edit: (l) => [l[0]!, l[1]!.replace(/"mac":"(.{10})[^"]*"/, '"mac":"$1"'), ...l.slice(2)],
      message: /mac is not 32 bytes/,
    },
    {
      name: 'an extra field',
      edit: (l) => [l[0]!, l[1]!.replace('{', '{"note":1,'), ...l.slice(2)],
      message: /unexpected fields/,
    },
    {
      name: 'a line that is not JSON',
      edit: (l) => [l[0]!, 'shred user-1', ...l.slice(2)],
      message: /line 2: not a JSON entry/,
    },
    { name: 'an empty line', edit: (l) => [l[0]!, '', ...l.slice(1)], message: /line 2: not a JSON entry/ },
    {
      name: 'a line of 2 KiB',
      edit: (l) => [l[0]!, 'x'.repeat(2048), ...l.slice(1)],
      message: /longer than 1024 bytes/,
    },
    {
      name: 'an entry that names an unknown KEK',
      edit: (l) => [l[0]!, l[1]!.replace('"kid":"k1"', '"kid":"k9"'), ...l.slice(2)],
      message: /KEK "k9", which is not loaded/,
    },
  ];
  for (const { name, edit, message } of hostile) {
    it(`refuses ${name} (JOURNAL_CORRUPT), to readers and writers alike`, async () => {
      const { path, lines } = await written(4);
      rewrite(path, edit(lines));
      await rejectsCorrupt(readAll(path, keys), message);
      await rejectsCorrupt(FileJournal.writer(path, keys), message);
    });
  }

  it('refuses an entry forged under another KEK with the same kid', async () => {
    const { path, lines } = await written(2);
    const forger = keysFor('k1');
    const unsigned = { position: 3, userId: 'victim', category: null, at: 5, kid: 'k1' };
    const previousMac = Buffer.from(/"mac":"([^"]+)"/.exec(lines[1]!)![1]!, 'base64url');
    appendFileSync(path, encodeLine({ ...unsigned, mac: forger.mac(unsigned, previousMac) }));
    await rejectsCorrupt(readAll(path, keys), /line 3: .*does not authenticate/);
  });

  it("verifies entries MAC'd under an older KEK after the active one changed, and not without it", async () => {
    const k1 = { kid: 'k1', key: SecretBytes.random(32) };
    const k2 = { kid: 'k2', key: SecretBytes.random(32) };
    const path = join(dir, 'rotated');
    const before = await FileJournal.writer(path, new JournalKeys(kekRing([k1], 'k1')));
    await before.append({ userId: 'old', category: null, at: 1 });
    await before.close();
    const after = await FileJournal.writer(path, new JournalKeys(kekRing([k1, k2], 'k2')));
    assert.equal((await after.append({ userId: 'new', category: null, at: 2 })).kid, 'k2');
    await after.close();
    const both = new JournalKeys(kekRing([k1, k2], 'k2'));
    assert.deepEqual(
      (await readAll(path, both)).map((e) => [e.userId, e.kid]),
      [
        ['old', 'k1'],
        ['new', 'k2'],
      ],
    );
    await rejectsCorrupt(readAll(path, new JournalKeys(kekRing([k2], 'k2'))), /KEK "k1", which is not loaded/);
  });

  it('any changed byte in a complete line is refused (property)', async () => {
    const { path, lines } = await written(3);
    const original = lines.map((l) => `${l}\n`).join('');
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: original.length - 2 }), fc.integer({ min: 1, max: 255 }), async (at, xor) => {
        if (original[at] === '\n') return; // a changed line break is a changed line count: covered above
        const bytes = Buffer.from(original, 'latin1');
        bytes[at] = bytes[at]! ^ xor;
        if (bytes[at] === 0x0a) return;
        writeFileSync(path, bytes);
        await assert.rejects(readAll(path, keys), (error: unknown) => {
          assert.ok(error instanceof PadlockError && error.code === 'JOURNAL_CORRUPT', String(error));
          return true;
        });
      }),
      { numRuns: 300 },
    );
  });

  it('replay refuses a journal cut short behind the store (whole entries removed from the end)', async () => {
    const { path, lines } = await written(4);
    const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 100 });
    try {
      const journal = await FileJournal.reader(path, keys);
      assert.deepEqual(await replayJournal(journal, store), { from: 0, to: 4, entries: 4, shredded: 0 });
      rewrite(path, lines.slice(0, 2));
      await rejectsCorrupt(
        replayJournal(await FileJournal.reader(path, keys), store),
        /applied .* position 4, but the journal ends at 2/,
      );
    } finally {
      await store.close();
    }
  });

  it("an append waits for a lock held by a live process, takes over a dead one's, and gives up after 5 s", async () => {
    const path = join(dir, 'locked');
    const journal = await FileJournal.writer(path, keys);
    // A process that is not this one's child (a child that exits stays a zombie, alive to kill(0), until reaped).
    const holder = async (ms: number): Promise<number> => {
      const { stdout } = await promisify(execFile)('sh', ['-c', `sleep ${ms / 1000} >/dev/null 2>&1 & echo $!`]);
      return Number(stdout.trim());
    };
    writeFileSync(`${path}.lock`, `${await holder(400)}\n`);
    const started = Date.now();
    assert.equal((await journal.append({ userId: 'u', category: null, at: 1 })).position, 1);
    assert.ok(Date.now() - started >= 150, `waited ${Date.now() - started} ms for the holder to exit`);
    const stuck = await holder(30000);
    writeFileSync(`${path}.lock`, `${stuck}\n`);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 100);
    await assert.rejects(journal.append({ userId: 'v', category: null, at: 2 }), (error: unknown) => {
      assert.ok(error instanceof PadlockError && error.code === 'JOURNAL_UNAVAILABLE');
      assert.match(error.message, new RegExp(`stayed locked by process ${stuck} for 5000 ms`));
      return true;
    });
    clearInterval(ticker);
    assert.ok(ticks >= 30, `the event loop ran ${ticks} 100-ms timers while the append waited 5 s`);
    process.kill(stuck, 'SIGKILL');
    rmSync(`${path}.lock`);
    assert.equal((await journal.append({ userId: 'w', category: null, at: 3 })).position, 2);
    await journal.close();
  });

  it('appends from several processes at once interleave into one valid chain', async () => {
    const path = join(dir, 'shared');
    const kekFile = join(dir, 'shared.kek');
    const kek = randomBytes(32);
    writeFileSync(kekFile, kek, { mode: 0o600 });
    const script = `
      const { FileJournal, JournalKeys } = await import(${JSON.stringify(new URL('../index.js', import.meta.url).href)});
      const { kekRing, SecretBytes } = await import('@padlock/core');
      const { readFileSync } = await import('node:fs');
      const keys = new JournalKeys(kekRing([{ kid: 'k1', key: SecretBytes.adopt(readFileSync(process.argv[1])) }], 'k1'));
      const journal = await FileJournal.writer(process.argv[2], keys);
      for (let i = 0; i < 50; i++) await journal.append({ userId: process.argv[3] + '-' + i, category: null, at: i });
      await journal.close();
    `;
    const runs = ['a', 'b', 'c'].map(
      (name) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', script, kekFile, path, name], {
            stdio: ['ignore', 'ignore', 'inherit'],
            cwd: fileURLToPath(new URL('.', import.meta.url)),
          });
          child.on('exit', resolve);
        }),
    );
    assert.deepEqual(await Promise.all(runs), [0, 0, 0]);
    const shared = new JournalKeys(kekRing([{ kid: 'k1', key: SecretBytes.adopt(Buffer.from(kek)) }], 'k1'));
    const entries = await readAll(path, shared);
    assert.deepEqual(
      entries.map((e) => e.position),
      Array.from({ length: 150 }, (_, i) => i + 1),
    );
    for (const name of ['a', 'b', 'c']) {
      assert.deepEqual(
        entries.filter((e) => e.userId.startsWith(`${name}-`)).map((e) => e.userId),
        Array.from({ length: 50 }, (_, i) => `${name}-${i}`),
        "each process's entries in its order",
      );
    }
  });
});
