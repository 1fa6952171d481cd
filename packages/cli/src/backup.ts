import { PadlockError } from '@padlock/core';
import {
  SqliteKeyStore,
  createLogger,
  FileJournal,
  inspectSqliteBackup,
  loadKeks,
  openJournal,
  openStore,
  replayJournal,
  type KeyStore,
  type PadlockConfig,
  type ReplayResult,
  type ShredJournal,
} from '@padlock/server';
import { closeSync, copyFileSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/*
 * `padlock backup create|restore` and `padlock journal replay|status`
 * (docs/operations.md, "Backups and the shred journal"). A backup is a copy
 * of the SQLite store made with SQLite's online backup API: wrapped rows only,
 * and the journal position it covers in its own journal_applied row. A
 * restore replays the journal from that position into a copy beside the
 * store, and only then puts the copy in the store's place: the store path
 * never holds a file behind the journal, and a restore killed half-way leaves
 * the store as it was (run it again).
 */

export class BackupUsageError extends Error {}

const stderrLog = () => createLogger('warn', (l) => process.stderr.write(l));

function sqliteOnly(config: PadlockConfig, what: string): string {
  if (config.store.kind !== 'sqlite' || config.store.sqlite.path === ':memory:') {
    throw new BackupUsageError(
      `${what} works on a SQLite store file; for Cassandra use nodetool snapshot and \`padlock journal replay\` (docs/operations.md)`,
    );
  }
  return config.store.sqlite.path;
}

export async function createBackup(config: PadlockConfig, file: string): Promise<Record<string, unknown>> {
  const storePath = sqliteOnly(config, 'backup create');
  const target = resolve(file);
  if (target === storePath || target.startsWith(`${storePath}-`))
    throw new BackupUsageError('the backup cannot be the store file');
  if (config.journal.kind === 'file' && target === config.journal.file.path) {
    throw new BackupUsageError('the backup cannot be the shred journal');
  }
  // Owner-only, and never over an existing file: an old backup is not silently lost.
  try {
    writeFileSync(target, '', { mode: 0o600, flag: 'wx' });
  } catch (error) {
    throw new BackupUsageError(
      `cannot create ${target}: ${(error as NodeJS.ErrnoException).code ?? 'error'} (it must not exist)`,
    );
  }
  const store = new SqliteKeyStore(config.store.sqlite);
  try {
    const { position, bytes } = await store.backup(target);
    const fd = openSync(target, 'r');
    fsyncSync(fd);
    closeSync(fd);
    return { backup: target, journalPosition: position, bytes };
  } catch (error) {
    rmSync(target, { force: true });
    throw error;
  } finally {
    await store.close();
  }
}

export async function restoreBackup(
  config: PadlockConfig,
  file: string,
  checkpointEvery: number,
): Promise<Record<string, unknown>> {
  const storePath = sqliteOnly(config, 'backup restore');
  const source = resolve(file);
  if (source === storePath) throw new BackupUsageError('the backup is the store file itself');
  let covered: number;
  try {
    covered = inspectSqliteBackup(source);
  } catch (error) {
    throw new BackupUsageError((error as Error).message);
  }
  const keks = loadKeks(config);
  if (config.journal.kind === 'file') {
    // A server would go on with the old file (and lose what it writes): stop it first.
    const pids = FileJournal.liveWriters(config.journal.file.path);
    if (pids.length > 0) {
      throw new PadlockError(
        'JOURNAL_UNAVAILABLE',
        `the shred journal is held by process ${pids.join(', ')} (a running server?): stop it before restoring`,
      );
    }
  }
  const journal = await openJournal(config, keks, stderrLog(), { write: false });
  const staging = `${storePath}.restoring`;
  try {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${staging}${suffix}`, { force: true });
    copyFileSync(source, staging);
    const store = new SqliteKeyStore({ ...config.store.sqlite, path: staging });
    let result: ReplayResult;
    try {
      result = await replayJournal(journal, store, { onProgress: progress, checkpointEvery });
    } finally {
      await store.close();
    }
    // The old store's WAL must not be applied to the restored file: remove it, then swap the file in.
    for (const suffix of ['-wal', '-shm', '-journal']) rmSync(`${storePath}${suffix}`, { force: true });
    renameSync(staging, storePath);
    const dir = openSync(dirname(storePath), 'r');
    fsyncSync(dir);
    closeSync(dir);
    return {
      restored: storePath,
      from: source,
      backupPosition: covered,
      journalPosition: result.to,
      replayed: result.entries,
      shreddedAgain: result.shredded,
    };
  } finally {
    await journal.close();
  }
}

function progress(position: number, head: number): void {
  process.stderr.write(`${JSON.stringify({ replay: { position, head } })}\n`);
}

async function withJournal<T>(
  config: PadlockConfig,
  work: (journal: ShredJournal, store: KeyStore) => Promise<T>,
): Promise<T> {
  const keks = loadKeks(config);
  const store = await openStore(config, stderrLog());
  try {
    const journal = await openJournal(config, keks, stderrLog(), { write: false });
    try {
      return await work(journal, store);
    } finally {
      await journal.close();
    }
  } finally {
    await store.close();
  }
}

export function replayCommand(config: PadlockConfig, checkpointEvery: number): Promise<Record<string, unknown>> {
  return withJournal(config, async (journal, store) => {
    const result = await replayJournal(journal, store, { onProgress: progress, checkpointEvery });
    return { journal: journal.location, ...result };
  });
}

export function statusCommand(config: PadlockConfig): Promise<Record<string, unknown>> {
  return withJournal(config, async (journal, store) => {
    // Reading every entry verifies the whole chain; JOURNAL_CORRUPT names the first bad entry.
    let entries = 0;
    let lastAt: number | null = null;
    for await (const entry of journal.entriesAfter(0)) {
      entries++;
      if (entry.rekey === undefined) lastAt = entry.at;
    }
    const head = (await journal.head()).position;
    const applied = await store.journalApplied();
    const state = applied === head ? 'caught-up' : applied < head ? 'behind' : 'ahead';
    if (state === 'ahead') {
      throw new PadlockError(
        'JOURNAL_CORRUPT',
        `the store has applied position ${applied}, but the journal ends at ${head}: truncated, replaced, or not this store's journal`,
      );
    }
    return {
      journal: journal.location,
      kind: journal.kind,
      verified: entries,
      head,
      lastShredAt: lastAt === null ? null : new Date(lastAt).toISOString(),
      storeApplied: applied,
      state,
      ...(state === 'behind' ? { next: 'padlock journal replay' } : {}),
    };
  });
}

/** Opens the journal for one CLI shred: journal first, then the store, as a server does. */
export async function journaledShred<T>(
  config: PadlockConfig,
  store: KeyStore,
  userId: string,
  category: string | undefined,
  shred: () => Promise<T>,
): Promise<T> {
  const journal = await openJournal(config, loadKeks(config), stderrLog(), { write: true });
  try {
    const entry = await journal.append({ userId, category: category ?? null, at: Date.now() });
    const result = await shred();
    await store.advanceJournal(entry.position - 1, entry.position);
    return result;
  } finally {
    await journal.close();
  }
}
