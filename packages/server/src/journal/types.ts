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

  /** The last entry, read fresh and verified against its predecessor. */
  head(): Promise<JournalHead>;

  /**
   * Every entry after `position`, oldest first, each verified against the one
   * before (the entry at `position` anchors the chain; the whole chain from
   * position 1 when `position` is 0). Throws JOURNAL_CORRUPT at the first bad one.
   */
  entriesAfter(position: number): AsyncIterable<JournalEntry>;

  close(): Promise<void>;
}
