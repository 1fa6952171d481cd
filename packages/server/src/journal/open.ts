import type { KekRing } from '@padlock/core';
import { dirname } from 'node:path';
import type { PadlockConfig } from '../config.js';
import type { Logger } from '../log.js';
import { CassandraJournal } from './cassandra.js';
import { JournalKeys } from './entry.js';
import { FileJournal } from './file.js';
import type { ShredJournal } from './types.js';

/** Opens the configured shred journal: `write` for a server or a CLI shred, else read-only. */
export async function openJournal(
  config: PadlockConfig,
  keks: KekRing,
  log: Logger,
  options: { readonly write: boolean },
): Promise<ShredJournal> {
  const keys = new JournalKeys(keks);
  const journal = config.journal;
  if (journal.kind === 'file') {
    if (config.store.kind === 'sqlite' && dirname(journal.file.path) === dirname(config.store.sqlite.path)) {
      log.warn('the shred journal is in the same directory as the store: a copy of that directory is no backup', {
        journal: journal.file.path,
        store: config.store.sqlite.path,
      });
    }
    return options.write ? FileJournal.writer(journal.file.path, keys) : FileJournal.reader(journal.file.path, keys);
  }
  const store = config.store.cassandra;
  const connection = {
    ...store,
    contactPoints: journal.cassandra.contactPoints.length > 0 ? journal.cassandra.contactPoints : store.contactPoints,
  };
  return CassandraJournal.open(connection, journal.cassandra, keys, store.createSchema);
}
