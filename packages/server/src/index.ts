export { SqliteKeyStore, type SqliteStoreOptions } from './store/sqlite.js';
export type * from './store/types.js';
