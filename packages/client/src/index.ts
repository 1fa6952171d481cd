export {
  PadlockClient,
  type CategoryKeysView,
  type UserKeysView,
  type ShredOutcome,
  type ScheduledShred,
  type LegalHoldRecord,
  type LifecycleStatus,
} from './client.js';
export type { ReceiptClaims } from './lib/receipts.js';
export {
  PadlockClientError,
  KeychainShredded,
  KeychainPendingDeletion,
  LegalHold,
  KeychainNotFound,
  PermissionDenied,
  Unavailable,
  DecryptionFailed,
  InvalidInput,
  ReceiptInvalid,
  type ClientErrorCode,
  type FailedAttempt,
} from './errors.js';
export { readEnvelopeHeader, envelopeOverhead, ENVELOPE_FORMAT, type EnvelopeHeader } from './envelope.js';
export type { ClientStats } from './lib/stats.js';
export type { KeyStatus } from './lib/user-keys.js';
export type {
  PadlockClientOptions,
  EndpointGroup,
  RetryOptions,
  CacheOptions,
  BatchOptions,
  TlsOptions,
} from './options.js';
