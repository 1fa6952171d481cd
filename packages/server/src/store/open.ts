import type { PadlockConfig } from '../config.js';
import type { Logger } from '../log.js';
import { CassandraKeyStore } from './cassandra.js';
import { SqliteKeyStore } from './sqlite.js';
import type { KeyStore } from './types.js';

/** Opens the configured store. */
export async function openStore(config: PadlockConfig, log: Logger): Promise<KeyStore> {
  switch (config.store.kind) {
    case 'sqlite':
      return new SqliteKeyStore({
        ...config.store.sqlite,
        onCheckpoint: (event, fields) => {
          if (event === 'blocked') {
            log.warn(
              'sqlite checkpoint after a shred was held off by a reader; the shredded rows may stay on disk until a retry succeeds',
              fields,
            );
          } else {
            log.info('sqlite checkpoint after a shred completed on retry', fields);
          }
        },
      });
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
