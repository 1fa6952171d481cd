import { PadlockError } from '@padlock/core';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
  constants,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  ChainVerifier,
  decodeLine,
  rekeyFrom,
  encodeLine,
  MAX_LINE_BYTES,
  type JournalEntry,
  type JournalKeys,
  type ShredRequest,
} from './entry.js';
import type { JournalHead, ShredJournal } from './types.js';

/*
 * The file journal for SQLite deployments: one JSON line per shred, appended
 * and fsync'd before the store shreds. Several processes may append (serve
 * --workers, `padlock keychain shred` beside a server): each append holds
 * `<path>.lock` (O_EXCL, holding the pid) for the few milliseconds it takes,
 * reads what others appended since its last look, and writes the next
 * position. A lock left by a dead process (kill -9) is taken over.
 *
 * A crash mid-append leaves a last line without its "\n": that append never
 * returned, so its shred was never acknowledged; readers skip it and the next
 * append cuts it off. Anything else malformed is JOURNAL_CORRUPT.
 *
 * A process that opens the journal for appending also leaves
 * `<path>.writer-<pid>` while it has it open, so `padlock backup restore` can
 * refuse to swap the store file under a running server.
 */

const CHUNK = 64 * 1024;
const LOCK_WAIT_MS = 5000;

interface Known {
  /** The chain through the last complete line (its head, digest, and what it holds back). */
  readonly chain: ChainVerifier;
  /** Bytes of complete, verified lines. */
  readonly offset: number;
}

interface Open {
  journal: FileJournal;
  refs: number;
}

/** Appenders in this process share one instance per file. */
const writers = new Map<string, Open>();

export class FileJournal implements ShredJournal {
  readonly kind = 'file';
  #known: Known;
  #writer: boolean;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly location: string,
    private readonly keys: JournalKeys,
    writer: boolean,
    known: Known,
  ) {
    this.#writer = writer;
    this.#known = known;
  }

  /** Opens for reading only: head() follows what writers append. */
  static async reader(path: string, keys: JournalKeys): Promise<FileJournal> {
    const { chain, validBytes } = await scan(path, keys);
    return new FileJournal(path, keys, false, { chain, offset: validBytes });
  }

  /** Opens for appending: verifies the whole chain and marks this process as a writer. */
  static async writer(path: string, keys: JournalKeys): Promise<FileJournal> {
    const shared = writers.get(path);
    if (shared !== undefined) {
      shared.refs++;
      return shared.journal;
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const { chain, validBytes } = await scan(path, keys);
    const journal = new FileJournal(path, keys, true, { chain, offset: validBytes });
    writeFileSync(writerMarker(path, process.pid), `${process.pid}\n`, { mode: 0o600 });
    writers.set(path, { journal, refs: 1 });
    return journal;
  }

  /** Pids of other live processes that have this journal open for appending (servers, mostly). */
  static liveWriters(path: string): number[] {
    const prefix = `${basename(path)}.writer-`;
    let names: string[];
    try {
      names = readdirSync(dirname(path));
    } catch {
      return [];
    }
    const pids: number[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const pid = Number.parseInt(name.slice(prefix.length), 10);
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      if (alive(pid)) pids.push(pid);
      else rmSync(join(dirname(path), name), { force: true });
    }
    return pids;
  }

  append(shred: ShredRequest): Promise<JournalEntry> {
    if (!this.#writer) {
      return Promise.reject(new PadlockError('JOURNAL_UNAVAILABLE', 'the journal is open for reading only'));
    }
    // One append at a time in this process; the lock orders them across processes.
    const run = this.#queue.then(() => this.#append(shred));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Appends a re-key entry (journal/entry.ts) when any entry since the last one is under a KEK
   * other than the active one; null when there is none. Appended under the lock like a shred, so
   * appends racing it land before it (covered by its digest) or after it (under the active KEK).
   */
  rekey(): Promise<JournalEntry | null> {
    if (!this.#writer) {
      return Promise.reject(new PadlockError('JOURNAL_UNAVAILABLE', 'the journal is open for reading only'));
    }
    const run = this.#queue.then(() => this.#append(null));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #append(shred: ShredRequest): Promise<JournalEntry>;
  async #append(shred: null): Promise<JournalEntry | null>;
  async #append(shred: ShredRequest | null): Promise<JournalEntry | null> {
    let fd: number | undefined;
    try {
      // Waiting for the lock yields to the event loop; once held, the write and fsync are
      // synchronous, so the lock is never held across an await.
      await takeLock(this.location);
      try {
        fd = openSync(this.location, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
        const known = this.#catchUp(fd, true);
        const head = known.chain.head;
        let entry: JournalEntry;
        if (shred === null) {
          const fromKid = rekeyFrom(known.chain, this.keys.activeKid);
          if (fromKid === undefined) return null;
          entry = this.keys.rekeyEntry(
            {
              position: head.position + 1,
              at: Date.now(),
              kid: this.keys.activeKid,
              fromKid,
              digest: known.chain.digest,
            },
            head.mac,
          );
        } else {
          const unsigned = { ...shred, position: head.position + 1, kid: this.keys.activeKid };
          entry = { ...unsigned, mac: this.keys.mac(unsigned, head.mac) };
        }
        const line = Buffer.from(encodeLine(entry), 'utf8');
        if (line.length > MAX_LINE_BYTES)
          throw new PadlockError('INVALID_REQUEST', 'the shred does not fit a journal line');
        let written = 0;
        while (written < line.length) written += writeSync(fd, line, written);
        fsyncSync(fd);
        // The first entry created the file: its name must survive a crash too.
        if (known.offset === 0) syncDirectory(this.location);
        const chain = known.chain.copy();
        chain.accept(entry);
        this.#known = { chain, offset: known.offset + line.length };
        return entry;
      } finally {
        if (fd !== undefined) closeSync(fd);
        releaseLock(this.location);
      }
    } catch (error) {
      if (error instanceof PadlockError) throw error;
      throw new PadlockError(
        'JOURNAL_UNAVAILABLE',
        `cannot append to the shred journal: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }

  head(): Promise<JournalHead> {
    let fd: number;
    try {
      fd = openSync(this.location, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve(this.#known.chain.head);
      return Promise.reject(
        new PadlockError(
          'JOURNAL_UNAVAILABLE',
          `cannot read the shred journal: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        ),
      );
    }
    try {
      const known = this.#catchUp(fd, false);
      return Promise.resolve(known.chain.head);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Reads and verifies the lines appended since the last look. With `cutTorn`
   * (only under the lock, when no one else can be mid-write) a partial last
   * line is a dead writer's and is cut off.
   */
  #catchUp(fd: number, cutTorn: boolean): Known {
    const base = this.#known.offset;
    let known = this.#known;
    const chain = known.chain.copy();
    const size = fstatSync(fd).size;
    if (size < known.offset) {
      throw new PadlockError(
        'JOURNAL_CORRUPT',
        `shred journal ${this.location} is shorter than the ${known.offset} bytes already verified`,
      );
    }
    if (size === known.offset) return known;
    const tail = Buffer.alloc(size - known.offset);
    let read = 0;
    while (read < tail.length) {
      const n = readSync(fd, tail, read, tail.length - read, known.offset + read);
      if (n === 0) break;
      read += n;
    }
    let at = 0;
    let newline: number;
    while ((newline = tail.indexOf(0x0a, at)) !== -1) {
      const where = `shred journal ${this.location}, entry after position ${chain.head.position}`;
      const entry = decodeLine(tail.subarray(at, newline).toString('utf8'), where);
      try {
        chain.accept(entry);
      } catch (error) {
        throw new PadlockError('JOURNAL_CORRUPT', `${where}: ${(error as Error).message}`);
      }
      at = newline + 1;
      known = { chain, offset: base + at };
    }
    chain.finish();
    if (at < tail.length && tail.length - at > MAX_LINE_BYTES) {
      throw new PadlockError(
        'JOURNAL_CORRUPT',
        `shred journal ${this.location}: a line longer than ${MAX_LINE_BYTES} bytes`,
      );
    }
    if (cutTorn && at < tail.length) {
      ftruncateSync(fd, known.offset);
      fsyncSync(fd);
    }
    this.#known = known;
    return known;
  }

  async *entriesAfter(position: number): AsyncIterable<JournalEntry> {
    for await (const entry of readEntries(this.location, this.keys)) {
      if (entry.position > position) yield entry;
    }
  }

  close(): Promise<void> {
    if (!this.#writer) return Promise.resolve();
    const shared = writers.get(this.location);
    if (shared !== undefined && --shared.refs > 0) return Promise.resolve();
    writers.delete(this.location);
    this.#writer = false;
    rmSync(writerMarker(this.location, process.pid), { force: true });
    return Promise.resolve();
  }
}

function writerMarker(path: string, pid: number): string {
  return `${path}.writer-${pid}`;
}

/**
 * Reads every complete line into `chain` from position 1; yields after each line the entries it
 * verified (none while entries under a retired KEK wait for their re-key entry) and where it ends.
 */
async function* readEntriesWithOffsets(
  path: string,
  chain: ChainVerifier,
): AsyncGenerator<{ released: JournalEntry[]; end: number }> {
  const released: JournalEntry[] = [];
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
          chain.accept(entry).forEach((verified) => released.push(verified));
        } catch (error) {
          throw new PadlockError('JOURNAL_CORRUPT', `${where}: ${(error as Error).message}`);
        }
        offset += newline + 1;
        pending = pending.subarray(newline + 1);
        yield { released: released.splice(0), end: offset };
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
  const chain = new ChainVerifier(keys, true);
  for await (const { released } of readEntriesWithOffsets(path, chain)) yield* released;
  chain.finish();
}

async function scan(path: string, keys: JournalKeys): Promise<{ chain: ChainVerifier; validBytes: number }> {
  const chain = new ChainVerifier(keys, false);
  let validBytes = 0;
  for await (const { end } of readEntriesWithOffsets(path, chain)) validBytes = end;
  chain.finish();
  return { chain, validBytes };
}

function lockPath(path: string): string {
  return `${path}.lock`;
}

async function takeLock(path: string): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
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
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      // Left by a dead process (kill -9): take it over.
      rmSync(lockPath(path), { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new PadlockError(
        'JOURNAL_UNAVAILABLE',
        `the shred journal ${path} stayed locked by process ${Number.isInteger(holder) ? holder : 'unknown'} for ${LOCK_WAIT_MS} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function releaseLock(path: string): void {
  if (Number.parseInt(safeRead(lockPath(path)), 10) === process.pid) rmSync(lockPath(path), { force: true });
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

function syncDirectory(path: string): void {
  const fd = openSync(dirname(path), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
