import type { PadlockConfig } from '../config.js';
import type { Logger } from '../log.js';
import { CassandraKeyStore } from './cassandra.js';
import { SqliteKeyStore } from './sqlite.js';
import type { KeyStore } from './types.js';

/** Opens the configured store. */
export async function openStore(config: PadlockConfig, log: Logger): Promise<KeyStore> {
  switch (config.store.kind) {
    case 'sqlite':
      return new SqliteKeyStore(config.store.sqlite);
    case 'cassandra': {
      const options = config.store.cassandra;
      const store = await CassandraKeyStore.open(options);
      log.info('connected to cassandra', {
        contactPoints: options.contactPoints.join(','),
        localDataCenter: options.localDataCenter,
        keyspace: options.keyspace,
      });
      return store;
    }
  }
}
