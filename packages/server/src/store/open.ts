import type { PadlockConfig } from '../config.js';
import type { Logger } from '../log.js';
import { SqliteKeyStore } from './sqlite.js';
import type { KeyStore } from './types.js';

/** Opens the configured store. */
export function openStore(config: PadlockConfig, _log: Logger): Promise<KeyStore> {
  switch (config.store.kind) {
    case 'sqlite':
      return Promise.resolve(new SqliteKeyStore(config.store.sqlite));
    case 'cassandra':
      return Promise.reject(new Error('store.kind "cassandra" is not built yet'));
  }
}
