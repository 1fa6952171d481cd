import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { serviceRow } from '../service-rows.js';
import { runKeyStoreConformance, type RowEdit } from './conformance.js';
import { SqliteKeyStore } from './sqlite.js';

const require = createRequire(import.meta.url);

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'padlock-sqlite-'));
}

runKeyStoreConformance('sqlite', () => {
  const dir = tempDir();
  const path = join(dir, 'padlock.db');
  const peers: SqliteKeyStore[] = [];
  const store = new SqliteKeyStore({ path, busyTimeoutMs: 2000 });
  return Promise.resolve({
    store,
    openPeer: () => {
      const peer = new SqliteKeyStore({ path, busyTimeoutMs: 2000 });
      peers.push(peer);
      return Promise.resolve(peer);
    },
    dispose: async () => {
      await store.close();
      for (const peer of peers) await peer.close();
      rmSync(dir, { recursive: true, force: true });
    },
    tamper: (edit: RowEdit) => {
      // Another program writing the file, as an attacker with the database but not the KEK would.
      const db = new Database(path);
      try {
        if (edit.table === 'holds')
          db.prepare('UPDATE holds SET released_at = ? WHERE user_id = ? AND hold_id = ?').run(
            edit.releasedAt,
            edit.userId,
            edit.holdId,
          );
        else
          db.prepare('UPDATE schedules SET execute_at = ? WHERE schedule_id = ?').run(edit.executeAt, edit.scheduleId);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
  });
});

describe('SQLite shred leaves no bytes behind', () => {
  it('holds none of the shredded wrapped blobs in the database file or WAL after a shred', async () => {
    const dir = tempDir();
    const store = new SqliteKeyStore({ path: join(dir, 'padlock.db'), busyTimeoutMs: 1000 });
    try {
      const blobs = Array.from({ length: 20 }, () => randomBytes(70));
      for (const [i, wrapped] of blobs.entries()) {
        await store.insertKeys(`user-${i}`, [{ category: 'profile', version: 1, wrapped, createdAt: Date.now() }]);
      }
      // A keeper row written after, so the shredded cells are not simply at the end of the page.
      await store.insertKeys('keeper', [{ category: 'profile', version: 1, wrapped: randomBytes(70), createdAt: 1 }]);
      const contents = (): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
      assert.ok(
        blobs.every((b) => contents().includes(b)),
        'the blobs are in the files before the shred (the scan can find them)',
      );
      for (let i = 0; i < blobs.length; i++) await store.shred(`user-${i}`, undefined, Date.now());
      const after = contents();
      const found = blobs.filter((b) => after.includes(b.subarray(0, 16)));
      assert.equal(found.length, 0, `${found.length} of ${blobs.length} shredded blobs still readable`);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite shred under a concurrent reader', () => {
  it('retries a checkpoint a reader held off until the shredded blob has left the database file and the WAL', async () => {
    const dir = tempDir();
    const path = join(dir, 'padlock.db');
    const events: string[] = [];
    const store = new SqliteKeyStore({
      path,
      busyTimeoutMs: 20,
      onCheckpoint: (event) => events.push(event),
    });
    // Another process reading the file (the scheduler beside a server, `serve --workers`):
    // it opens a read transaction on the snapshot before the shred and holds it.
    const reader = spawn(
      process.execPath,
      [
        '-e',
        `const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
         const db = new Database(${JSON.stringify(path)});
         process.stdin.on('data', (d) => {
           const cmd = d.toString().trim();
           if (cmd === 'hold') { db.exec('BEGIN'); db.prepare('SELECT count(*) FROM root_keys').get(); }
           if (cmd === 'release') db.exec('COMMIT');
           process.stdout.write(cmd + '\\n');
         });`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: reader.stdout });
    const tell = async (cmd: string): Promise<void> => {
      const answered = once(lines, 'line');
      reader.stdin.write(`${cmd}\n`);
      const [line] = (await answered) as string[];
      assert.equal(line, cmd);
    };
    try {
      const wrapped = randomBytes(70);
      await store.insertKeys('user-1', [{ category: 'profile', version: 1, wrapped, createdAt: Date.now() }]);
      await store.insertKeys('keeper', [{ category: 'profile', version: 1, wrapped: randomBytes(70), createdAt: 1 }]);
      await store.shred('nobody', undefined, Date.now()); // no change: no checkpoint
      const onDisk = (): boolean =>
        readdirSync(dir).some((f) => readFileSync(join(dir, f)).includes(wrapped.subarray(0, 16)));
      assert.ok(onDisk(), 'the blob is on disk before the shred (the scan can find it)');

      await tell('hold');
      assert.equal(await store.shred('user-1', undefined, Date.now()), 1);
      assert.deepEqual(events, ['blocked'], 'the checkpoint was held off and said so');
      assert.equal(store.checkpointsBlocked, 1);
      assert.notEqual(store.shredResidueSince, null);
      assert.ok(onDisk(), "while the reader's snapshot stands the old page is still in the file");
      await delay(300);
      assert.ok(store.checkpointsBlocked >= 2, 'retried while the reader holds on');
      assert.ok(onDisk());

      await tell('release');
      const deadline = Date.now() + 5000;
      while (store.shredResidueSince !== null && Date.now() < deadline) await delay(25);
      assert.equal(store.shredResidueSince, null, 'a retry completed once the reader let go');
      assert.equal(events.at(-1), 'settled');
      assert.equal(onDisk(), false, 'the shredded blob has left the database file and the WAL');
      assert.deepEqual(await store.getKeychain('keeper').then((rows) => rows.length), 1);
    } finally {
      reader.kill();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite schema migration', () => {
  it('adds the columns a file made before them lacks, keeps its rows, and does it once', async () => {
    const dir = tempDir();
    const path = join(dir, 'padlock.db');
    try {
      // The services table as the first release made it.
      const old = new Database(path);
      old.exec(`CREATE TABLE services (
        service_id TEXT PRIMARY KEY, wrapped_key BLOB NOT NULL, read_categories TEXT NOT NULL,
        can_create INTEGER NOT NULL, can_rotate INTEGER NOT NULL, can_shred INTEGER NOT NULL,
        created_at INTEGER NOT NULL) WITHOUT ROWID`);
      old.prepare('INSERT INTO services VALUES (?, ?, ?, 1, 0, 1, 1234)').run('legacy', randomBytes(70), 'profile');
      old.close();
      for (let open = 0; open < 2; open++) {
        const store = new SqliteKeyStore({ path, busyTimeoutMs: 1000 });
        const read = await store.getService('legacy');
        assert.deepEqual(read?.tlsIdentities, open === 0 ? [] : ['CN=legacy']);
        assert.equal(read?.generation, open);
        assert.equal(read?.mac, null);
        assert.deepEqual(read?.credentialStates, []);
        assert.deepEqual(read?.permissions, {
          read: ['profile'],
          create: true,
          rotate: false,
          shred: true,
          hold: false,
        });
        if (read !== undefined) {
          const row = serviceRow(read);
          assert.equal(
            await store.updateService({ ...row, tlsIdentities: ['CN=legacy'], generation: open + 1 }, open),
            true,
          );
        }
        assert.deepEqual((await store.getService('legacy'))?.tlsIdentities, ['CN=legacy']);
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
