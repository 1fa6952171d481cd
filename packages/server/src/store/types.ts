/*
 * The storage contract. Storage is untrusted: root keys and service
 * derivation keys reach it only wrapped, credentials only as HMAC verifiers.
 * Every backend runs the same conformance suite (store/conformance.ts).
 */

/** One root key row: (user, category, version). `wrapped` is null once shredded. */
export interface KeyRow {
  readonly category: string;
  readonly version: number;
  readonly wrapped: Uint8Array | null;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** Milliseconds since the epoch; null while active. */
  readonly shreddedAt: number | null;
}

export interface NewKeyRow {
  readonly category: string;
  readonly version: number;
  readonly wrapped: Uint8Array;
  readonly createdAt: number;
}

export interface ServicePermissions {
  /** Categories whose derived keys the service may read. */
  readonly read: readonly string[];
  readonly create: boolean;
  readonly rotate: boolean;
  readonly shred: boolean;
  /** May place and release legal holds (DESIGN.md section 3): a right apart from shred. */
  readonly hold: boolean;
  /**
   * An operator (docs/console.md): may call the metadata and service-admin routes, never one that
   * returns key bytes. Never held with read, create or rotate (ServiceWriter refuses it). Absent: false.
   */
  readonly admin?: boolean;
}

/** A legal hold on a keychain (category null) or one category; it blocks every shred of it until released. */
export interface HoldRecord {
  readonly holdId: string;
  readonly userId: string;
  readonly category: string | null;
  readonly reason: string;
  /** A service id, or 'operator:<name>' for the CLI. */
  readonly placedBy: string;
  readonly placedAt: number;
  readonly releasedAt: number | null;
  readonly releasedBy: string | null;
  /** Row MAC (lifecycle-rows.ts); null only on a row that was never sealed. */
  readonly mac: Uint8Array | null;
}

export type ScheduleState = 'pending' | 'executed' | 'cancelled';

/** A scheduled shred of a keychain (category null) or one category, executed once at or after executeAt. */
export interface ScheduleRecord {
  readonly scheduleId: string;
  readonly userId: string;
  readonly category: string | null;
  readonly executeAt: number;
  /** Whether lookups still get keys during the grace period. */
  readonly serveDuringGrace: boolean;
  readonly requestedBy: string;
  readonly createdAt: number;
  readonly state: ScheduleState;
  /** When and by whom it was executed or cancelled; null while pending. */
  readonly finishedAt: number | null;
  readonly finishedBy: string | null;
  /**
   * The node executing it and until when (ms) its claim holds; an expired
   * claim is taken over. Not covered by the MAC: it is coordination, not a
   * decision, and every change to it is a conditional write.
   */
  readonly claimedBy: string | null;
  readonly leaseUntil: number | null;
  /** Row MAC over every field but the claim (lifecycle-rows.ts). */
  readonly mac: Uint8Array | null;
}

/** A claim on a schedule, as conditional writes compare it. */
export interface ScheduleClaim {
  readonly claimedBy: string | null;
  readonly leaseUntil: number | null;
}

export interface CredentialRecord {
  readonly credentialId: string;
  /** HMAC verifier of the secret; the secret itself is never stored. */
  readonly verifier: Uint8Array;
  readonly createdAt: number;
  readonly revokedAt: number | null;
  /** Row MAC (server/src/row-mac.ts) over every field and the service id; null on rows from before MACs. */
  readonly mac: Uint8Array | null;
}

export interface CredentialState {
  readonly credentialId: string;
  readonly revokedAt: number | null;
}

export interface ServiceRecord {
  readonly serviceId: string;
  /** The service's derivation key, wrapped (see docs/spec.md). */
  readonly wrappedKey: Uint8Array;
  readonly permissions: ServicePermissions;
  readonly createdAt: number;
  /**
   * TLS client identities (URI SAN or certificate subject) that mutual TLS maps
   * to this service; [] when none. One identity names at most one service.
   */
  readonly tlsIdentities: readonly string[];
  /**
   * Bumped by every change to the service or its credentials; updates are
   * conditional on it. 0 on rows from before MACs.
   */
  readonly generation: number;
  /**
   * Every credential the service has, with its revocation time, as the last
   * KEK holder to write the row saw them. The row MAC covers this list, so a
   * credential row deleted, revived or added behind its back is noticed.
   */
  readonly credentialStates: readonly CredentialState[];
  /** Row MAC over every field above (see service-rows.ts); null on rows from before MACs. */
  readonly mac: Uint8Array | null;
  readonly credentials: readonly CredentialRecord[];
}

/** A service's own row, without its credentials. */
export type ServiceRow = Omit<ServiceRecord, 'credentials'>;

export interface ReadOptions {
  /**
   * Read at the strongest local consistency (Cassandra LOCAL_QUORUM) instead
   * of the fast path; used right after a write.
   */
  readonly fresh?: boolean;
}

/** One audit entry as stored: its canonical body and that body's hash (docs/spec.md, "Audit entry"). */
export interface AuditRow {
  readonly chainId: string;
  readonly seq: number;
  /** Milliseconds since the epoch (also inside the body; kept apart for export by time). */
  readonly at: number;
  readonly body: string;
  /** Hex SHA-256, see audit.ts entryHash. */
  readonly hash: string;
}

/** A signed checkpoint of a chain head: a compact JWS over { chain, seq, hash, at }. */
export interface AuditCheckpointRow {
  readonly chainId: string;
  readonly seq: number;
  readonly at: number;
  readonly jws: string;
}

/** A signed deletion receipt, as stored. */
export interface ReceiptRecord {
  readonly receiptId: string;
  readonly userId: string;
  /** Milliseconds since the epoch. */
  readonly issuedAt: number;
  /** The compact JWS (docs/spec.md, "Deletion receipt"). */
  readonly jws: string;
}

/** A receipt signing key: an Ed25519 private key (32-byte seed) wrapped under the KEK. */
export interface SigningKeyRecord {
  /** 1 for the first key, one more per rotation; the highest signs, every one stays published. */
  readonly generation: number;
  /** The JWK thumbprint (RFC 7638) of the public key. */
  readonly kid: string;
  readonly wrapped: Uint8Array;
  readonly createdAt: number;
}

/**
 * A row a KEK re-wrap rewrites (server/src/kek-rewrap.ts): a wrapped key or a
 * row MAC, each naming the kid that made it. Services are re-sealed through
 * ServiceWriter (conditional on their generation) and are not listed here.
 */
export type SealedRecord =
  | { readonly table: 'root_keys'; readonly userId: string; readonly row: KeyRow }
  | { readonly table: 'holds'; readonly hold: HoldRecord }
  | { readonly table: 'schedules'; readonly schedule: ScheduleRecord }
  | { readonly table: 'signing_keys'; readonly key: SigningKeyRecord };

export type SealedTable = SealedRecord['table'];

/** A re-wrap's write: the record as read, and its new wrapped key or MAC. */
export interface SealedChange {
  readonly record: SealedRecord;
  readonly sealed: Uint8Array;
}

/** One page of a scan for a re-wrap, and where the next starts (null: the table is done). */
export interface SealedPage {
  readonly records: SealedRecord[];
  readonly next: string | null;
  /** How far through the table `next` is, 0-1, when the cursor tells (Cassandra: by token); else null. */
  readonly done: number | null;
  /** How many such rows the table holds, when that is cheap to know (SQLite); else null. */
  readonly total: number | null;
}

export interface KeyStore {
  /** Short name for metrics and logs, e.g. "sqlite". */
  readonly kind: string;

  /** Every row of a user's keychain, ordered by category then version; [] when the user has none. */
  getKeychain(userId: string, options?: ReadOptions): Promise<KeyRow[]>;

  /** getKeychain for many users at once; every requested id is a key of the result. */
  getKeychains(userIds: readonly string[]): Promise<Map<string, KeyRow[]>>;

  /**
   * Inserts each row unless a row with the same (category, version) exists,
   * atomically per row; concurrent callers race safely. Returns the rows this
   * call inserted.
   */
  insertKeys(userId: string, rows: readonly NewKeyRow[]): Promise<NewKeyRow[]>;

  /**
   * Shreds every version of `category`, or of every category when omitted: the
   * wrapped bytes are overwritten, a marker row stays. Returns how many rows
   * this call shredded (already shredded rows do not count).
   *
   * `known`: the user's rows as the caller read them fresh a moment before. A
   * store whose shred is a conditional write may build it from them instead of
   * reading again (one round trip less on the shred path); the condition makes
   * a stale list safe: a row shredded meanwhile fails it, and the store reads
   * again and shreds what is left.
   */
  shred(userId: string, category: string | undefined, at: number, known?: readonly KeyRow[]): Promise<number>;

  /** Inserts a hold unless one with its id exists; false then. */
  insertHold(hold: HoldRecord): Promise<boolean>;
  /** Every hold of a user, released ones too, oldest first; read at the strongest local consistency. */
  listHolds(userId: string): Promise<HoldRecord[]>;
  /** Records a release (releasedAt, releasedBy, mac) if the hold is still in force; false otherwise. */
  releaseHold(
    userId: string,
    holdId: string,
    release: { releasedAt: number; releasedBy: string; mac: Uint8Array },
  ): Promise<boolean>;

  /** Inserts a schedule unless one with its id exists; false then. */
  insertSchedule(schedule: ScheduleRecord): Promise<boolean>;
  getSchedule(scheduleId: string): Promise<ScheduleRecord | undefined>;
  /** Every schedule of a user, oldest first. */
  listSchedules(userId: string): Promise<ScheduleRecord[]>;
  /** Pending schedules whose executeAt is at or before `now`, at most `limit`, earliest first. */
  dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]>;
  /** Pending schedules that withhold keys during their grace period (serveDuringGrace false). */
  withholdingSchedules(): Promise<ScheduleRecord[]>;
  /**
   * Sets the claim if the schedule is pending and its claim is still `expected`
   * (a conditional write: two racers, one winner). True when this call won.
   */
  claimSchedule(scheduleId: string, expected: ScheduleClaim, claim: ScheduleClaim): Promise<boolean>;
  /**
   * Moves a pending schedule to `executed` or `cancelled` (finishedAt, finishedBy,
   * mac) if its claim is still `expected`. True when this call did it.
   */
  finishSchedule(
    scheduleId: string,
    expected: ScheduleClaim,
    finish: { state: 'executed' | 'cancelled'; finishedAt: number; finishedBy: string; mac: Uint8Array },
  ): Promise<boolean>;
  /**
   * The shred journal position this store has applied: every journal entry up
   * to it is shredded here (journal/replay.ts). 0 for a new store. A store
   * restored from a backup reports the backup's position.
   */
  journalApplied(): Promise<number>;
  /**
   * Moves the applied position from `from` to `to` if it is still `from`
   * (compare-and-set, so it never passes an entry not yet applied); false otherwise.
   */
  advanceJournal(from: number, to: number): Promise<boolean>;

  /** Creates a service; false when one with that id exists already. */
  createService(row: ServiceRow): Promise<boolean>;
  /**
   * Replaces a service's row with `row` when its stored generation is still
   * `expectedGeneration`, and writes `credentials` (insert or replace) with it.
   * False when there is no such service or another writer changed it first;
   * then nothing the caller can observe through the service row changed (a
   * backend without multi-row transactions may have written the credential
   * rows, which no service MAC then lists as live, so they grant nothing).
   */
  updateService(
    row: ServiceRow,
    expectedGeneration: number,
    credentials?: readonly CredentialRecord[],
  ): Promise<boolean>;
  getService(serviceId: string): Promise<ServiceRecord | undefined>;
  listServices(): Promise<ServiceRecord[]>;

  /** Stores a receipt; receipt ids are random, a collision is an error. */
  putReceipt(receipt: ReceiptRecord): Promise<void>;
  getReceipt(receiptId: string): Promise<ReceiptRecord | undefined>;
  /** A user's receipts, oldest first. */
  listReceipts(userId: string): Promise<ReceiptRecord[]>;

  /** Inserts a signing key unless that generation exists (two servers starting at once both try). */
  insertSigningKey(key: SigningKeyRecord): Promise<boolean>;
  /** Every signing key, by generation. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;

  /** Appends an audit entry unless (chainId, seq) exists; false when it does. */
  appendAudit(row: AuditRow): Promise<boolean>;
  /** Every chain id that has entries or checkpoints, sorted. */
  listAuditChains(): Promise<string[]>;
  /** A chain's entries, by seq, as stored (nothing checked). */
  readAuditChain(chainId: string): Promise<AuditRow[]>;
  putAuditCheckpoint(checkpoint: AuditCheckpointRow): Promise<void>;
  /** A chain's checkpoints, by seq. */
  listAuditCheckpoints(chainId: string): Promise<AuditCheckpointRow[]>;

  /**
   * Rows of `table` that carry a wrapped key or a MAC, from the opaque cursor
   * `after` (null: the start), about `limit` at a time. Root keys come whole
   * keychain by keychain on Cassandra (paged by token range) and in key order
   * on SQLite; shredded rows are left out. The cursor survives a restart.
   */
  scanSealed(table: SealedTable, after: string | null, limit: number): Promise<SealedPage>;
  /**
   * Writes `sealed` (the new wrapped key, or MAC) over the record's if the row
   * still holds the record's bytes: a conditional write (Cassandra LWT, a
   * SQLite statement), so a shred, release, finish or another re-wrap that
   * changed the row first wins and this call returns false.
   */
  replaceSealed(record: SealedRecord, sealed: Uint8Array): Promise<boolean>;
  /**
   * replaceSealed for several rows at once, each conditional on its own bytes:
   * SQLite in one transaction (one fsync), Cassandra as one LWT per row in
   * parallel. Returns, per change, whether it was written.
   */
  replaceSealedAll(changes: readonly SealedChange[]): Promise<boolean[]>;

  /** Resolves when the store answers a trivial read. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
