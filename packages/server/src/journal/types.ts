import type { JournalEntry, ShredRequest } from './entry.js';

/*
 * The shred journal's contract (DESIGN.md section 11): append-only, kept
 * apart from the store and its backups, every entry MAC'd and chained
 * (journal/entry.ts). Two backends: a file for SQLite deployments
 * (journal/file.ts) and a keyspace of its own for Cassandra (journal/cassandra.ts).
 */

export interface JournalHead {
  /** The last entry's position; 0 when the journal is empty. */
  readonly position: number;
  readonly mac: Uint8Array;
}

export interface ShredJournal {
  /** "file" or "cassandra", for logs and status. */
  readonly kind: string;
  /** Where it lives, for status output (a path, or keyspace@contact points). */
  readonly location: string;

  /**
   * Appends one shred durably (fsync'd, or written at QUORUM) and returns its entry.
   * Called before the store shreds, so no acknowledged shred is missing from the journal.
   */
  append(shred: ShredRequest): Promise<JournalEntry>;

  /**
   * Appends a re-key entry under the active KEK (journal/entry.ts) when any entry since the last
   * re-key is under another KEK, so that KEK can be retired; null when there is nothing to re-key.
   */
  rekey(): Promise<JournalEntry | null>;

  /** The last entry, read fresh and verified against its predecessor. */
  head(): Promise<JournalHead>;

  /**
   * Every entry after `position`, oldest first. The whole chain is verified
   * from position 1 (an entry under a retired KEK only by the re-key entry
   * after it); throws JOURNAL_CORRUPT at the first bad one.
   * Re-key entries are yielded too (they hold a position; they shred nothing).
   */
  entriesAfter(position: number): AsyncIterable<JournalEntry>;

  close(): Promise<void>;
}
