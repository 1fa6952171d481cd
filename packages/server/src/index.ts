export { startPadlock, offlineKeyService, ROUTES, VERSION, type Padlock, type StartOptions } from './app.js';
export { AuditLog, canonicalJson, entryHash, type AuditEvent, type AuditEntry } from './audit.js';
export { verifyAudit, verifyChain, exportAudit, type AuditReport, type AuditFinding } from './audit-verify.js';
export {
  ReceiptSigner,
  rotateSigningKey,
  verifyReceipt,
  verifySigned,
  InvalidSignature,
  RECEIPT_TYP,
  CHECKPOINT_TYP,
  type ReceiptClaims,
  type JsonWebKeySet,
} from './receipts.js';
export { parseConfig, loadConfig, ConfigError, CONFIG_SCHEMA, type PadlockConfig } from './config.js';
export { loadKek, loadKeks } from './kek.js';
export { createLogger, type Logger, type LogLevel } from './log.js';
export { Metrics, Counter, Gauge, Histogram } from './metrics.js';
export {
  newCredential,
  newServiceRecord,
  credentialVerifier,
  tlsIdentityProblem,
  ServiceRegistry,
  type Service,
} from './services.js';
export { KeyService, type ShredOptions, type ShredResult, type Proofs } from './keys.js';
export {
  Lifecycle,
  Scheduler,
  operatorLifecycle,
  type LifecycleStatus,
  type ScheduleOutcome,
  type ScheduleRequest,
} from './lifecycle.js';
export {
  ServiceWriter,
  ServiceWriteError,
  verifyService,
  sealService,
  sealCredential,
  serviceMacFields,
  credentialMacFields,
  type IntegrityFailure,
  type MacMigration,
  type VerifiedService,
} from './service-rows.js';
export {
  macRow,
  verifyRowMac,
  encodeRow,
  rowMacKid,
  ROW_MAC_LABEL,
  type MacField,
  type RowMacVerdict,
} from './row-mac.js';
export { openStore } from './store/open.js';
export { sealHold, sealSchedule } from './lifecycle-rows.js';
export { SqliteKeyStore, inspectSqliteBackup, type SqliteStoreOptions } from './store/sqlite.js';
export { CassandraKeyStore, schemaStatements, type CassandraStoreOptions } from './store/cassandra.js';
export type * from './store/types.js';
export type { RowSource, RowsRead, KeychainSource, Keychain } from './keychain.js';
export { holdJson, scheduleJson } from './routes/lifecycle-json.js';
export { openJournal } from './journal/open.js';
export { replayJournal, raiseApplied, type ReplayResult } from './journal/replay.js';
export { JournalGate } from './journal/gate.js';
export { FileJournal } from './journal/file.js';
export { CassandraJournal, journalSchema } from './journal/cassandra.js';
export { JournalKeys, type JournalEntry, type ShredRequest } from './journal/entry.js';
export type { ShredJournal, JournalHead } from './journal/types.js';
export {
  rewrapAll,
  rowsPerKid,
  readCheckpoint,
  sealedKid,
  REWRAP_PHASES,
  type RewrapCheckpoint,
  type RewrapCounts,
  type RewrapOptions,
  type RewrapProgress,
  type RewrapResult,
} from './kek-rewrap.js';
