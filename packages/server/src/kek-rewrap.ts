import {
  PadlockError,
  signingKeyWrapInfo,
  unwrapKey,
  unwrapRootKey,
  wrapKey,
  wrappedKid,
  wrapRootKey,
  type KekRing,
} from '@padlock/core';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { holdMacFields, holdVerifies, scheduleMacFields, scheduleVerifies } from './lifecycle-rows.js';
import { macRow, rowMacKid } from './row-mac.js';
import { ServiceWriter } from './service-rows.js';
import type { KeyStore, SealedChange, SealedRecord, SealedTable } from './store/types.js';

/*
 * KEK rotation's re-wrap (DESIGN.md section 11; docs/operations.md, "Rotating
 * the KEK"): every wrapped key and row MAC made under another kid is made
 * again under the active KEK, online, page by page, while servers serve.
 *
 * - Every write is conditional on the bytes it read (store.replaceSealed): a
 *   shred, a hold release, a schedule's finish or another re-wrap that
 *   changed the row first wins, and the row is read again. A shredded key is
 *   never written back.
 * - A row whose wrap or MAC does not verify is left as it is and counted
 *   `failed`: re-sealing it would launder an edit made without the KEK.
 * - Writes are paced to `rate` rows/s so lookups keep their latency, and go
 *   `batch` at a time (SQLite: one transaction, so one fsync, per batch).
 * - After every page the position is saved (a checkpoint file, written
 *   whole and renamed): a re-wrap killed at any point starts again from its
 *   last page; rows already under the active kid are passed over, so a page
 *   done twice changes nothing.
 */

/** The order a re-wrap takes: the few rows first, the keychains (nearly all of them) last. */
export const REWRAP_PHASES = ['services', 'signing_keys', 'holds', 'schedules', 'root_keys'] as const;
export type RewrapPhase = (typeof REWRAP_PHASES)[number];

/**
 * rewrapped: written under the active kid by this run. current: already under it.
 * raced: changed by another writer first (a shred, release, another re-wrap), nothing written.
 * failed: its wrap or MAC did not verify under any loaded KEK; left alone.
 */
export interface RewrapCounts {
  rewrapped: number;
  current: number;
  raced: number;
  failed: number;
}

/** What a checkpoint file holds: where the run is, and what it has done so far. */
export interface RewrapCheckpoint {
  readonly v: 1;
  /** The kid rows are being moved to; a checkpoint for another kid is not resumed. */
  readonly kid: string;
  readonly phase: RewrapPhase | 'done';
  readonly cursor: string | null;
  /** Rows examined in this phase so far (progress when the store gives no fraction). */
  readonly seen: number;
  readonly counts: RewrapCounts;
  readonly startedAt: number;
  readonly updatedAt: number;
  /** Rows written per second over the last page. */
  readonly rate: number;
}

export interface RewrapProgress {
  readonly kid: string;
  readonly phase: RewrapPhase | 'done';
  /** 1-based index of the phase among REWRAP_PHASES. */
  readonly step: number;
  /** How far through this phase, 0-1; null when not known. */
  readonly done: number | null;
  readonly counts: RewrapCounts;
  readonly rate: number;
  readonly elapsedMs: number;
}

export interface RewrapOptions {
  /** Rows written per second, at most. */
  readonly rate: number;
  /** Rows read per page (and per checkpoint). */
  readonly pageSize: number;
  /** Rows written at once (SQLite: one transaction; Cassandra: LWTs in parallel). */
  readonly batch: number;
  /** Where the position is saved; none: not resumable. */
  readonly checkpointFile?: string;
  readonly onProgress?: (progress: RewrapProgress) => void;
  /**
   * A page whose reads or writes failed (a store timeout, a node away) is tried again from its
   * cursor this many times, waiting retryDelayMs, then 2x, 4x... before the error ends the run
   * (default 5 times from 1000 ms). Each retry is reported here.
   */
  readonly pageAttempts?: number;
  readonly retryDelayMs?: number;
  readonly onRetry?: (retry: { readonly phase: RewrapPhase; readonly attempt: number; readonly error: string }) => void;
}

export interface RewrapResult {
  readonly kid: string;
  readonly counts: RewrapCounts;
  /** Whether this run took up a checkpoint of an earlier one. */
  readonly resumed: boolean;
  readonly elapsedMs: number;
}

/** The kid that made a record's wrapped key or MAC; undefined when it is malformed. */
export function sealedKid(record: SealedRecord): string | undefined {
  switch (record.table) {
    case 'root_keys':
      return record.row.wrapped === null ? undefined : wrappedKid(record.row.wrapped);
    case 'holds':
      return record.hold.mac === null ? undefined : rowMacKid(record.hold.mac);
    case 'schedules':
      return record.schedule.mac === null ? undefined : rowMacKid(record.schedule.mac);
    case 'signing_keys':
      return wrappedKid(record.key.wrapped);
  }
}

/** The record's wrapped key or MAC made again under the active KEK; undefined when the old one does not verify. */
export function reseal(keks: KekRing, record: SealedRecord): Uint8Array | undefined {
  const active = keks.active;
  try {
    switch (record.table) {
      case 'root_keys': {
        if (record.row.wrapped === null) return undefined;
        const ref = { userId: record.userId, category: record.row.category, version: record.row.version };
        const key = unwrapRootKey(keks, ref, record.row.wrapped);
        try {
          return wrapRootKey(active, ref, key);
        } finally {
          key.wipe();
        }
      }
      case 'holds':
        return holdVerifies(keks, record.hold) ? macRow(active, holdMacFields(record.hold)) : undefined;
      case 'schedules':
        return scheduleVerifies(keks, record.schedule) ? macRow(active, scheduleMacFields(record.schedule)) : undefined;
      case 'signing_keys': {
        const info = signingKeyWrapInfo(record.key.generation);
        const seed = unwrapKey(keks, info, record.key.wrapped);
        try {
          return wrapKey(active, info, seed);
        } finally {
          seed.wipe();
        }
      }
    }
  } catch {
    // UnwrapError: one answer for every failure (unknown kid, edited blob, moved row).
    return undefined;
  }
}

/** The record as the store holds it now; undefined when it is gone or shredded. */
async function reread(store: KeyStore, record: SealedRecord): Promise<SealedRecord | undefined> {
  switch (record.table) {
    case 'root_keys': {
      const { category, version } = record.row;
      const row = (await store.getKeychain(record.userId, { fresh: true })).find(
        (r) => r.category === category && r.version === version,
      );
      return row === undefined || row.wrapped === null ? undefined : { ...record, row };
    }
    case 'holds': {
      const hold = (await store.listHolds(record.hold.userId)).find((h) => h.holdId === record.hold.holdId);
      return hold === undefined ? undefined : { table: 'holds', hold };
    }
    case 'schedules': {
      const schedule = await store.getSchedule(record.schedule.scheduleId);
      return schedule === undefined ? undefined : { table: 'schedules', schedule };
    }
    case 'signing_keys': {
      const key = (await store.listSigningKeys()).find((k) => k.generation === record.key.generation);
      return key === undefined ? undefined : { table: 'signing_keys', key };
    }
  }
}

/** Paces writes to `perSecond`: each caller waits for its own slot. */
class Pace {
  #next = 0;
  constructor(private readonly perSecond: number) {}

  async take(rows: number): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.#next);
    this.#next = at + (rows * 1000) / this.perSecond;
    if (at - now >= 1) await new Promise((resolve) => setTimeout(resolve, at - now));
  }
}

/** A row changed by other writers this many times in a row is reported, not fought over. */
const ATTEMPTS = 5;

/** Reads a checkpoint file; undefined when there is none. A damaged one is an error, not a fresh start. */
export function readCheckpoint(file: string): RewrapCheckpoint | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = JSON.parse(text) as RewrapCheckpoint;
  const phases: readonly string[] = [...REWRAP_PHASES, 'done'];
  if (parsed.v !== 1 || typeof parsed.kid !== 'string' || !phases.includes(parsed.phase)) {
    throw new RangeError(`${file} is not a re-wrap checkpoint`);
  }
  return parsed;
}

/** Writes the checkpoint whole beside its place, fsyncs it and renames it in: a crash leaves the old or the new one. */
function writeCheckpoint(file: string, checkpoint: RewrapCheckpoint): void {
  const temporary = `${file}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(checkpoint)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/**
 * Re-wraps every row under the active KEK.
 *
 * @example
 *   const result = await rewrapAll(store, keks, { rate: 2000, pageSize: 500, batch: 32, checkpointFile });
 *   result.counts.failed; // 0 when every row verified
 */
export async function rewrapAll(store: KeyStore, keks: KekRing, options: RewrapOptions): Promise<RewrapResult> {
  const kid = keks.active.kid;
  const started = Date.now();
  const saved = options.checkpointFile === undefined ? undefined : readCheckpoint(options.checkpointFile);
  const resume = saved !== undefined && saved.kid === kid && saved.phase !== 'done' ? saved : undefined;
  const counts: RewrapCounts =
    resume === undefined ? { rewrapped: 0, current: 0, raced: 0, failed: 0 } : { ...resume.counts };
  const startedAt = resume?.startedAt ?? started;
  const pace = new Pace(options.rate);
  let rate = 0;

  const save = (phase: RewrapPhase | 'done', cursor: string | null, seen: number): void => {
    if (options.checkpointFile === undefined) return;
    writeCheckpoint(options.checkpointFile, {
      v: 1,
      kid,
      phase,
      cursor,
      seen,
      counts: { ...counts },
      startedAt,
      updatedAt: Date.now(),
      rate,
    });
  };
  const report = (phase: RewrapPhase | 'done', done: number | null): void =>
    options.onProgress?.({
      kid,
      phase,
      step: phase === 'done' ? REWRAP_PHASES.length : REWRAP_PHASES.indexOf(phase) + 1,
      done,
      counts: { ...counts },
      rate,
      elapsedMs: Date.now() - startedAt,
    });

  /** A row whose conditional write lost: read it again and try again, until it is current, gone or written. */
  const retry = async (lost: SealedRecord): Promise<keyof RewrapCounts> => {
    let record = await reread(store, lost);
    for (let attempt = 1; attempt < ATTEMPTS; attempt++) {
      if (record === undefined || sealedKid(record) === kid) return 'raced';
      const sealed = reseal(keks, record);
      if (sealed === undefined) return 'failed';
      await pace.take(1);
      if (await store.replaceSealed(record, sealed)) return 'rewrapped';
      record = await reread(store, record);
    }
    return 'failed';
  };

  /** One page: rows under the active kid passed over, the rest re-sealed and written `batch` at a time. */
  const page = async (records: readonly SealedRecord[]): Promise<void> => {
    const changes: SealedChange[] = [];
    for (const record of records) {
      if (sealedKid(record) === kid) counts.current++;
      else {
        const sealed = reseal(keks, record);
        if (sealed === undefined) counts.failed++;
        else changes.push({ record, sealed });
      }
    }
    for (let start = 0; start < changes.length; start += options.batch) {
      const chunk = changes.slice(start, start + options.batch);
      await pace.take(chunk.length);
      const written = await store.replaceSealedAll(chunk);
      const lost = chunk.filter((_, i) => written[i] !== true);
      counts.rewrapped += chunk.length - lost.length;
      for (const outcome of await Promise.all(lost.map((c) => retry(c.record)))) counts[outcome]++;
    }
  };

  const attempts = options.pageAttempts ?? 5;
  const delayMs = options.retryDelayMs ?? 1000;
  /** Store errors a wait can cure; a PadlockError of any other code (bad data, a bug) ends the run at once. */
  const transient = (error: unknown): boolean => !(error instanceof PadlockError) || error.code === 'STORE_UNAVAILABLE';
  const withRetries = async <T>(phase: RewrapPhase, work: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt > attempts || !transient(error)) throw error;
        options.onRetry?.({ phase, attempt, error: error instanceof Error ? error.name : 'error' });
        await new Promise((resolve) => setTimeout(resolve, delayMs * 2 ** (attempt - 1)));
      }
    }
  };

  const firstPhase = resume === undefined ? 0 : REWRAP_PHASES.indexOf(resume.phase as RewrapPhase);
  for (let p = firstPhase; p < REWRAP_PHASES.length; p++) {
    const phase = REWRAP_PHASES[p]!;
    report(phase, 0);
    if (phase === 'services') {
      const result = await new ServiceWriter(store, keks).migrate({ sealUnmigrated: false });
      counts.rewrapped += result.resealed.length;
      counts.current += result.unchanged;
      counts.failed += result.failed.length;
      save(REWRAP_PHASES[p + 1] ?? 'done', null, 0);
      continue;
    }
    const table: SealedTable = phase;
    let cursor = resume !== undefined && p === firstPhase ? resume.cursor : null;
    let seen = resume !== undefined && p === firstPhase ? resume.seen : 0;
    for (;;) {
      const pageStart = performance.now();
      const before = counts.rewrapped;
      const scanned = await withRetries(phase, async () => {
        // A page redone after a failure counts from where it began: rows it wrote count as current.
        const countsBefore = { ...counts };
        try {
          const read = await store.scanSealed(table, cursor, options.pageSize);
          await page(read.records);
          return read;
        } catch (error) {
          Object.assign(counts, countsBefore);
          throw error;
        }
      });
      seen += scanned.records.length;
      rate = Math.round(((counts.rewrapped - before) * 1000) / Math.max(1, performance.now() - pageStart));
      cursor = scanned.next;
      const done =
        scanned.next === null ? 1 : (scanned.done ?? (scanned.total ? Math.min(1, seen / scanned.total) : null));
      if (cursor === null) break;
      save(phase, cursor, seen);
      report(phase, done);
    }
    save(REWRAP_PHASES[p + 1] ?? 'done', null, 0);
    report(phase, 1);
  }
  report('done', 1);
  return { kid, counts, resumed: resume !== undefined, elapsedMs: Date.now() - started };
}

/** Rows per kid in every table a re-wrap covers (services: the row, its wrapped key and its credentials). */
export async function rowsPerKid(store: KeyStore, pageSize = 1000): Promise<Record<string, Record<string, number>>> {
  const perKid: Record<string, Record<string, number>> = {};
  const add = (kid: string | undefined, table: string): void => {
    const key = kid ?? '(unreadable)';
    const tables = (perKid[key] ??= {});
    tables[table] = (tables[table] ?? 0) + 1;
  };
  for (const service of await store.listServices()) {
    add(wrappedKid(service.wrappedKey), 'service_keys');
    add(service.mac === null || service.mac.length === 0 ? '(no mac)' : rowMacKid(service.mac), 'services');
    for (const credential of service.credentials) {
      add(
        credential.mac === null || credential.mac.length === 0 ? '(no mac)' : rowMacKid(credential.mac),
        'credentials',
      );
    }
  }
  for (const table of ['signing_keys', 'holds', 'schedules', 'root_keys'] as const) {
    let cursor: string | null = null;
    do {
      const page = await store.scanSealed(table, cursor, pageSize);
      for (const record of page.records) add(sealedKid(record), table);
      cursor = page.next;
    } while (cursor !== null);
  }
  return perKid;
}
