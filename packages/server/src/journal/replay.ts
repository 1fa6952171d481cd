import { PadlockError } from '@padlock/core';
import type { KeyStore } from '../store/types.js';
import type { ShredJournal } from './types.js';

/*
 * Replay: every journal entry after the store's applied position is shredded
 * in the store again, oldest first. Shredding is monotonic (a shredded row
 * never comes back), so replaying an entry twice, or one whose first shred
 * failed, changes nothing: replay is idempotent, and a replay killed half-way
 * (kill -9) is simply run again. The applied position is raised every
 * `checkpointEvery` entries, so the rerun starts near where the first stopped.
 */

export interface ReplayResult {
  /** The store's applied position before. */
  readonly from: number;
  /** The journal position the store has applied now. */
  readonly to: number;
  /** Entries replayed. */
  readonly entries: number;
  /** Key versions those entries shredded now (they had come back with a restore). */
  readonly shredded: number;
}

export interface ReplayOptions {
  readonly checkpointEvery?: number;
  /** Called after each entry is applied (the server drops the user's cached keychain). */
  readonly onEntry?: (userId: string) => Promise<void>;
  /** Called at each checkpoint with (position, head). */
  readonly onProgress?: (position: number, head: number) => void;
}

export async function replayJournal(
  journal: ShredJournal,
  store: KeyStore,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const every = options.checkpointEvery ?? 500;
  const from = await store.journalApplied();
  const head = (await journal.head()).position;
  if (from > head) throw aheadOfJournal(from, head);
  let applied = from;
  let entries = 0;
  let shredded = 0;
  for await (const entry of journal.entriesAfter(from)) {
    // Entries appended while this runs are the live path's: it applies them itself.
    if (entry.position > head) break;
    // A re-key entry holds a position and shreds nothing.
    if (entry.rekey === undefined) {
      shredded += await store.shred(entry.userId, entry.category ?? undefined, entry.at);
      await options.onEntry?.(entry.userId);
    }
    entries++;
    if (entries % every === 0) {
      applied = await raiseApplied(store, entry.position);
      options.onProgress?.(entry.position, head);
    }
  }
  if (from + entries < head) {
    throw new PadlockError('JOURNAL_CORRUPT', `the shred journal ends at ${from + entries}, before its head ${head}`);
  }
  applied = await raiseApplied(store, head);
  options.onProgress?.(applied, head);
  return { from, to: applied, entries, shredded };
}

/** Raises the store's applied position to `to` (never lowers it); returns the position now. */
export async function raiseApplied(store: KeyStore, to: number): Promise<number> {
  for (;;) {
    const current = await store.journalApplied();
    if (current >= to) return current;
    if (await store.advanceJournal(current, to)) return to;
  }
}

export function aheadOfJournal(applied: number, head: number): PadlockError {
  return new PadlockError(
    'JOURNAL_CORRUPT',
    `the store has applied shred journal position ${applied}, but the journal ends at ${head}: ` +
      "the journal was truncated or replaced, or it is not this store's journal",
  );
}
