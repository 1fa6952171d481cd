import { PadlockError } from '@padlock/core';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
  constants,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  decodeLine,
  encodeLine,
  GENESIS_MAC,
  MAX_LINE_BYTES,
  type JournalEntry,
  type JournalKeys,
  type ShredRequest,
} from './entry.js';
import type { JournalHead, ShredJournal } from './types.js';

/*
 * The file journal for SQLite deployments: one JSON line per shred, appended
 * and fsync'd before the store shreds. One writer at a time: the writer holds
 * `<path>.lock` (its pid); a lock left by a dead process (kill -9) is taken
 * over. Readers (`padlock journal status`, replay, restore) take no lock.
 *
 * A crash mid-append leaves a last line without its "\n": that append never
 * returned, so its shred was never acknowledged; readers skip it and the next
 * writer cuts it off. Anything else malformed is JOURNAL_CORRUPT.
 */

const CHUNK = 64 * 1024;

interface Open {
  journal: FileJournal;
  refs: number;
}

/** Writers in this process share one instance per file (two would fork the chain). */
const writers = new Map<string, Open>();

export class FileJournal implements ShredJournal {
  readonly kind = 'file';
  #fd: number | undefined;
  #head: JournalHead;

  private constructor(
    readonly location: string,
    private readonly keys: JournalKeys,
    fd: number | undefined,
    head: JournalHead,
  ) {
    this.#fd = fd;
    this.#head = head;
  }

  /** Opens for reading only: no lock, no writes; head() reads the file each time. */
  static async reader(path: string, keys: JournalKeys): Promise<FileJournal> {
    const head = await scan(path, keys);
    return new FileJournal(path, keys, undefined, head.head);
  }

  /** Opens for appending: takes the lock, verifies the whole chain, cuts off a torn last line. */
  static async writer(path: string, keys: JournalKeys): Promise<FileJournal> {
    const shared = writers.get(path);
    if (shared !== undefined) {
      shared.refs++;
      return shared.journal;
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    takeLock(path);
    try {
      const { head, validBytes } = await scan(path, keys);
      const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
      if (fstatSync(fd).size > validBytes) {
        ftruncateSync(fd, validBytes);
        fsyncSync(fd);
      }
      syncDirectory(path);
      const journal = new FileJournal(path, keys, fd, head);
      writers.set(path, { journal, refs: 1 });
      return journal;
    } catch (error) {
      releaseLock(path);
      throw error;
    }
  }

  append(shred: ShredRequest): Promise<JournalEntry> {
    if (this.#fd === undefined)
      return Promise.reject(new PadlockError('JOURNAL_UNAVAILABLE', 'the journal is open for reading only'));
    const unsigned = { ...shred, position: this.#head.position + 1, kid: this.keys.activeKid };
    const entry: JournalEntry = { ...unsigned, mac: this.keys.mac(unsigned, this.#head.mac) };
    const line = Buffer.from(encodeLine(entry), 'utf8');
    if (line.length > MAX_LINE_BYTES)
      return Promise.reject(new PadlockError('INVALID_REQUEST', 'the shred does not fit a journal line'));
    try {
      // Synchronous on purpose: appends are ordered by the event loop, and the entry is on disk before the store is touched.
      let written = 0;
      while (written < line.length) written += writeSync(this.#fd, line, written);
      fsyncSync(this.#fd);
    } catch (error) {
      return Promise.reject(
        new PadlockError(
          'JOURNAL_UNAVAILABLE',
          `cannot append to the shred journal: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        ),
      );
    }
    this.#head = { position: entry.position, mac: entry.mac };
    return Promise.resolve(entry);
  }

  async head(): Promise<JournalHead> {
    if (this.#fd !== undefined) return this.#head;
    return (await scan(this.location, this.keys)).head;
  }

  async *entriesAfter(position: number): AsyncIterable<JournalEntry> {
    for await (const entry of readEntries(this.location, this.keys)) {
      if (entry.position > position) yield entry;
    }
  }

  close(): Promise<void> {
    if (this.#fd === undefined) return Promise.resolve();
    const shared = writers.get(this.location);
    if (shared !== undefined && --shared.refs > 0) return Promise.resolve();
    writers.delete(this.location);
    closeSync(this.#fd);
    this.#fd = undefined;
    releaseLock(this.location);
    return Promise.resolve();
  }
}

/** Every complete line's entry, verified from position 1; `validBytes` ends the last complete line. */
async function* readEntriesWithOffsets(
  path: string,
  keys: JournalKeys,
): AsyncGenerator<{ entry: JournalEntry; end: number }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new PadlockError(
      'JOURNAL_UNAVAILABLE',
      `cannot read the shred journal: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  try {
    let previous = { position: 0, mac: GENESIS_MAC };
    let pending = Buffer.alloc(0);
    let offset = 0;
    let lineNumber = 0;
    const buffer = Buffer.alloc(CHUNK);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      pending = Buffer.concat([pending, buffer.subarray(0, bytesRead)]);
      let newline: number;
      while ((newline = pending.indexOf(0x0a)) !== -1) {
        lineNumber++;
        const where = `shred journal ${path}, line ${lineNumber}`;
        const entry = decodeLine(pending.subarray(0, newline).toString('utf8'), where);
        try {
          keys.verify(entry, previous);
        } catch (error) {
          throw new PadlockError('JOURNAL_CORRUPT', `${where}: ${(error as Error).message}`);
        }
        previous = entry;
        offset += newline + 1;
        pending = pending.subarray(newline + 1);
        yield { entry, end: offset };
      }
      if (pending.length > MAX_LINE_BYTES) {
        throw new PadlockError(
          'JOURNAL_CORRUPT',
          `shred journal ${path}, line ${lineNumber + 1}: longer than ${MAX_LINE_BYTES} bytes`,
        );
      }
    }
  } finally {
    await handle.close();
  }
}

async function* readEntries(path: string, keys: JournalKeys): AsyncGenerator<JournalEntry> {
  for await (const { entry } of readEntriesWithOffsets(path, keys)) yield entry;
}

async function scan(path: string, keys: JournalKeys): Promise<{ head: JournalHead; validBytes: number }> {
  let head: JournalHead = { position: 0, mac: GENESIS_MAC };
  let validBytes = 0;
  for await (const { entry, end } of readEntriesWithOffsets(path, keys)) {
    head = { position: entry.position, mac: entry.mac };
    validBytes = end;
  }
  return { head, validBytes };
}

function lockPath(path: string): string {
  return `${path}.lock`;
}

function takeLock(path: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath(path), 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new PadlockError(
          'JOURNAL_UNAVAILABLE',
          `cannot lock the shred journal: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
    }
    const holder = Number.parseInt(safeRead(lockPath(path)), 10);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new PadlockError(
        'JOURNAL_UNAVAILABLE',
        `the shred journal ${path} is held by process ${holder} (a running server?); shred through its API, or stop it`,
      );
    }
    // Left by a dead process (kill -9): take it over.
    try {
      unlinkSync(lockPath(path));
    } catch {
      // Someone else took it over first; the next attempt says who holds it.
    }
  }
  throw new PadlockError('JOURNAL_UNAVAILABLE', `the shred journal ${path} is locked by another process`);
}

function releaseLock(path: string): void {
  try {
    if (Number.parseInt(safeRead(lockPath(path)), 10) === process.pid) unlinkSync(lockPath(path));
  } catch {
    // Already gone.
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** fsync the directory so a newly created journal file's name survives a crash too. */
function syncDirectory(path: string): void {
  const fd = openSync(dirname(path), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
