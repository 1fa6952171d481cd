import Database from 'better-sqlite3';
import { joinCredentialStates, joinIdentities, splitCredentialStates, splitIdentities } from './columns.js';
import type {
  AuditCheckpointRow,
  AuditRow,
  CredentialRecord,
  HoldRecord,
  KeyRow,
  KeyStore,
  NewKeyRow,
  ReceiptRecord,
  ScheduleClaim,
  ScheduleRecord,
  ScheduleState,
  SealedChange,
  SealedPage,
  SealedRecord,
  SealedTable,
  ServiceRecord,
  ServiceRow,
  SigningKeyRecord,
} from './types.js';

export interface SqliteStoreOptions {
  /** Database file, or ":memory:". */
  readonly path: string;
  /** Milliseconds a write waits for another writer's lock before failing. */
  readonly busyTimeoutMs: number;
  /**
   * SQLite's page cache, in MiB (default 64). Its own default, 2 MiB, made
   * every lookup of a 100,000-user file read pages through system calls.
   */
  readonly cacheMiB?: number;
  /**
   * Told when a shred's checkpoint was held off by a reader (it is retried until it
   * succeeds) and when a retry succeeded. Key bytes are never passed.
   */
  readonly onCheckpoint?: (
    event: 'blocked' | 'settled',
    fields: { readonly pendingMs: number; readonly error?: string },
  ) => void;
}

/** Retries of a blocked post-shred checkpoint: the first after this, doubling up to the cap. */
const CHECKPOINT_RETRY_FIRST_MS = 50;
const CHECKPOINT_RETRY_MAX_MS = 2000;

interface KeyRowSql {
  user_id: string;
  category: string;
  version: number;
  wrapped: Buffer | null;
  created_at: number;
  shredded_at: number | null;
}

interface ServiceSql {
  service_id: string;
  wrapped_key: Buffer;
  read_categories: string;
  can_create: number;
  can_rotate: number;
  can_shred: number;
  can_hold: number;
  can_admin: number;
  created_at: number;
  tls_identities: string;
  generation: number;
  credential_states: string;
  mac: Buffer | null;
}

interface HoldSql {
  hold_id: string;
  user_id: string;
  category: string | null;
  reason: string;
  placed_by: string;
  placed_at: number;
  released_at: number | null;
  released_by: string | null;
  mac: Buffer | null;
}

interface ScheduleSql {
  schedule_id: string;
  user_id: string;
  category: string | null;
  execute_at: number;
  serve_during_grace: number;
  requested_by: string;
  created_at: number;
  state: ScheduleState;
  finished_at: number | null;
  finished_by: string | null;
  claimed_by: string | null;
  lease_until: number | null;
  mac: Buffer | null;
}

interface CredentialSql {
  service_id: string;
  credential_id: string;
  verifier: Buffer;
  created_at: number;
  revoked_at: number | null;
  mac: Buffer | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS root_keys (
  user_id TEXT NOT NULL,
  category TEXT NOT NULL,
  version INTEGER NOT NULL,
  wrapped BLOB,
  created_at INTEGER NOT NULL,
  shredded_at INTEGER,
  PRIMARY KEY (user_id, category, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS services (
  service_id TEXT PRIMARY KEY,
  wrapped_key BLOB NOT NULL,
  read_categories TEXT NOT NULL,
  can_create INTEGER NOT NULL,
  can_rotate INTEGER NOT NULL,
  can_shred INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  tls_identities TEXT NOT NULL DEFAULT '',
  generation INTEGER NOT NULL DEFAULT 0,
  credential_states TEXT NOT NULL DEFAULT '',
  mac BLOB,
  can_hold INTEGER NOT NULL DEFAULT 0,
  can_admin INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
  user_id TEXT NOT NULL,
  hold_id TEXT NOT NULL,
  category TEXT,
  reason TEXT NOT NULL,
  placed_by TEXT NOT NULL,
  placed_at INTEGER NOT NULL,
  released_at INTEGER,
  released_by TEXT,
  mac BLOB,
  PRIMARY KEY (user_id, hold_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
  schedule_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  category TEXT,
  execute_at INTEGER NOT NULL,
  serve_during_grace INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  finished_at INTEGER,
  finished_by TEXT,
  claimed_by TEXT,
  lease_until INTEGER,
  mac BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedules_by_user ON schedules (user_id, created_at);
CREATE INDEX IF NOT EXISTS schedules_pending ON schedules (execute_at) WHERE state = 'pending';
-- The schedules that withhold keys, read by every server each scheduler.intervalMs (withholdingSchedules):
-- without it that read scans every pending schedule (37 ms per 100,000, synchronous, on the serving loop).
CREATE INDEX IF NOT EXISTS schedules_withholding ON schedules (serve_during_grace)
  WHERE state = 'pending' AND serve_during_grace = 0;
CREATE TABLE IF NOT EXISTS credentials (
  service_id TEXT NOT NULL,
  credential_id TEXT NOT NULL,
  verifier BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER,
  mac BLOB,
  PRIMARY KEY (service_id, credential_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal_applied (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  position INTEGER NOT NULL
);
INSERT OR IGNORE INTO journal_applied (id, position) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS receipts (
  receipt_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  jws TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_by_user ON receipts (user_id, issued_at);
CREATE TABLE IF NOT EXISTS signing_keys (
  generation INTEGER PRIMARY KEY,
  kid TEXT NOT NULL,
  wrapped BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_entries (
  chain_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  body TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (chain_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  chain_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  jws TEXT NOT NULL,
  PRIMARY KEY (chain_id, seq)
) WITHOUT ROWID;
`;

interface ReceiptSql {
  receipt_id: string;
  user_id: string;
  issued_at: number;
  jws: string;
}

/**
 * The embedded store. WAL for concurrent readers; secure_delete so shredded
 * bytes are zeroed in freed space, and a TRUNCATE checkpoint after each shred
 * so the old page images leave the WAL too (an ordinary delete leaves the
 * bytes recoverable from the file).
 */
export class SqliteKeyStore implements KeyStore {
  readonly kind = 'sqlite';
  readonly #db: Database.Database;
  readonly #getKeychain: Database.Statement<[string], KeyRowSql>;
  readonly #insertKey: Database.Statement<[string, string, number, Buffer, number]>;
  readonly #shredAll: Database.Statement<[number, string]>;
  readonly #shredCategory: Database.Statement<[number, string, string]>;
  readonly #insertKeys: Database.Transaction<(userId: string, rows: readonly NewKeyRow[]) => NewKeyRow[]>;
  readonly #multiGet = new Map<number, Database.Statement<string[], KeyRowSql>>();
  /** Rows per table a re-wrap scans, counted once per store (progress only). */
  readonly #sealedTotals = new Map<SealedTable, number>();

  readonly #options: SqliteStoreOptions;

  constructor(options: SqliteStoreOptions) {
    this.#options = options;
    this.#db = new Database(options.path);
    this.#db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs)}`);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('secure_delete = ON');
    this.#db.pragma(`cache_size = -${Math.trunc((options.cacheMiB ?? 64) * 1024)}`);
    this.#db.exec(SCHEMA);
    addMissingColumns(this.#db);
    this.#getKeychain = this.#db.prepare(
      'SELECT user_id, category, version, wrapped, created_at, shredded_at FROM root_keys WHERE user_id = ? ORDER BY category, version',
    );
    this.#insertKey = this.#db.prepare(
      'INSERT OR IGNORE INTO root_keys (user_id, category, version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.#shredAll = this.#db.prepare(
      'UPDATE root_keys SET wrapped = NULL, shredded_at = ? WHERE user_id = ? AND wrapped IS NOT NULL',
    );
    this.#shredCategory = this.#db.prepare(
      'UPDATE root_keys SET wrapped = NULL, shredded_at = ? WHERE user_id = ? AND category = ? AND wrapped IS NOT NULL',
    );
    this.#insertKeys = this.#db.transaction((userId: string, rows: readonly NewKeyRow[]) => {
      const inserted: NewKeyRow[] = [];
      for (const row of rows) {
        const result = this.#insertKey.run(userId, row.category, row.version, Buffer.from(row.wrapped), row.createdAt);
        if (result.changes === 1) inserted.push(row);
      }
      return inserted;
    });
  }

  getKeychain(userId: string): Promise<KeyRow[]> {
    return Promise.resolve(this.#getKeychain.all(userId).map(toKeyRow));
  }

  getKeychains(userIds: readonly string[]): Promise<Map<string, KeyRow[]>> {
    const unique = [...new Set(userIds)];
    const result = new Map<string, KeyRow[]>(unique.map((id) => [id, []]));
    for (let start = 0; start < unique.length; start += MULTI_GET_CHUNK) {
      const chunk = unique.slice(start, start + MULTI_GET_CHUNK);
      for (const row of this.#multiGetStatement(chunk.length).all(...chunk)) {
        result.get(row.user_id)?.push(toKeyRow(row));
      }
    }
    return Promise.resolve(result);
  }

  insertKeys(userId: string, rows: readonly NewKeyRow[]): Promise<NewKeyRow[]> {
    return Promise.resolve(this.#insertKeys.immediate(userId, rows));
  }

  shred(userId: string, category: string | undefined, at: number): Promise<number> {
    const result =
      category === undefined ? this.#shredAll.run(at, userId) : this.#shredCategory.run(at, userId, category);
    if (result.changes > 0) this.#checkpoint();
    return Promise.resolve(result.changes);
  }

  /**
   * Since when a shred's old page images may still be on disk (in the WAL, or in the
   * database file while a reader's snapshot pins them), or null when none may be: a
   * checkpoint held off by readers past the busy timeout returns without error and
   * without moving the pages, so it is retried until one succeeds.
   */
  get shredResidueSince(): number | null {
    return this.#residueSince;
  }

  /** Post-shred checkpoints held off by a reader (each is retried). */
  get checkpointsBlocked(): number {
    return this.#checkpointsBlocked;
  }

  #residueSince: number | null = null;
  #checkpointsBlocked = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = CHECKPOINT_RETRY_FIRST_MS;

  /**
   * Copies every WAL frame into the database file (overwriting the pages that held the
   * shredded bytes; secure_delete zeroed them in the new images) and truncates the WAL.
   * Busy (a reader still on an older snapshot) leaves the old images where they are:
   * counted, reported, and retried with back-off until a checkpoint completes.
   */
  #checkpoint(retry = false): void {
    if (!this.#db.open) return;
    // A retry runs from a timer on the serving loop: it does not wait for readers (the
    // busy handler would block the loop for up to the busy timeout); the next retry will.
    if (retry) this.#db.pragma('busy_timeout = 0');
    let result: { busy: number } | undefined;
    let error: string | undefined;
    try {
      [result] = this.#db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    } catch (e) {
      // The shred itself has committed: a checkpoint that fails (SQLITE_BUSY from another
      // process checkpointing, an I/O error) is reported and retried like a busy one.
      error = (e as { code?: string }).code ?? 'error';
    } finally {
      if (retry) this.#db.pragma(`busy_timeout = ${Math.trunc(this.#options.busyTimeoutMs)}`);
    }
    if (error === undefined && result !== undefined && result.busy === 0) {
      if (this.#residueSince !== null) {
        this.#options.onCheckpoint?.('settled', { pendingMs: Date.now() - this.#residueSince });
      }
      this.#residueSince = null;
      this.#retryMs = CHECKPOINT_RETRY_FIRST_MS;
      if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      return;
    }
    this.#checkpointsBlocked += 1;
    if (this.#residueSince === null) {
      this.#residueSince = Date.now();
      this.#options.onCheckpoint?.('blocked', { pendingMs: 0, ...(error === undefined ? {} : { error }) });
    }
    if (this.#retryTimer === undefined) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#checkpoint(true);
      }, this.#retryMs);
      this.#retryTimer.unref();
      this.#retryMs = Math.min(this.#retryMs * 2, CHECKPOINT_RETRY_MAX_MS);
    }
  }

  insertHold(h: HoldRecord): Promise<boolean> {
    const result = this.#db
      .prepare(
        'INSERT OR IGNORE INTO holds (user_id, hold_id, category, reason, placed_by, placed_at, released_at, released_by, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        h.userId,
        h.holdId,
        h.category,
        h.reason,
        h.placedBy,
        h.placedAt,
        h.releasedAt,
        h.releasedBy,
        blobOrNull(h.mac),
      );
    return Promise.resolve(result.changes === 1);
  }

  listHolds(userId: string): Promise<HoldRecord[]> {
    const rows = this.#db
      .prepare<[string], HoldSql>('SELECT * FROM holds WHERE user_id = ? ORDER BY placed_at, hold_id')
      .all(userId);
    return Promise.resolve(rows.map(toHold));
  }

  releaseHold(
    userId: string,
    holdId: string,
    release: { releasedAt: number; releasedBy: string; mac: Uint8Array },
  ): Promise<boolean> {
    const result = this.#db
      .prepare(
        'UPDATE holds SET released_at = ?, released_by = ?, mac = ? WHERE user_id = ? AND hold_id = ? AND released_at IS NULL',
      )
      .run(release.releasedAt, release.releasedBy, Buffer.from(release.mac), userId, holdId);
    return Promise.resolve(result.changes === 1);
  }

  insertSchedule(s: ScheduleRecord): Promise<boolean> {
    const result = this.#db
      .prepare(
        'INSERT OR IGNORE INTO schedules (schedule_id, user_id, category, execute_at, serve_during_grace, requested_by, created_at, state, finished_at, finished_by, claimed_by, lease_until, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        s.scheduleId,
        s.userId,
        s.category,
        s.executeAt,
        Number(s.serveDuringGrace),
        s.requestedBy,
        s.createdAt,
        s.state,
        s.finishedAt,
        s.finishedBy,
        s.claimedBy,
        s.leaseUntil,
        blobOrNull(s.mac),
      );
    return Promise.resolve(result.changes === 1);
  }

  getSchedule(scheduleId: string): Promise<ScheduleRecord | undefined> {
    const row = this.#db
      .prepare<[string], ScheduleSql>('SELECT * FROM schedules WHERE schedule_id = ?')
      .get(scheduleId);
    return Promise.resolve(row === undefined ? undefined : toSchedule(row));
  }

  listSchedules(userId: string): Promise<ScheduleRecord[]> {
    const rows = this.#db
      .prepare<[string], ScheduleSql>('SELECT * FROM schedules WHERE user_id = ? ORDER BY created_at, schedule_id')
      .all(userId);
    return Promise.resolve(rows.map(toSchedule));
  }

  dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    const rows = this.#db
      .prepare<[number, number], ScheduleSql>(
        "SELECT * FROM schedules WHERE state = 'pending' AND execute_at <= ? ORDER BY execute_at LIMIT ?",
      )
      .all(now, limit);
    return Promise.resolve(rows.map(toSchedule));
  }

  withholdingSchedules(): Promise<ScheduleRecord[]> {
    const rows = this.#db
      .prepare<[], ScheduleSql>(
        // INDEXED BY: the planner otherwise takes schedules_pending and reads every pending schedule.
        "SELECT * FROM schedules INDEXED BY schedules_withholding WHERE state = 'pending' AND serve_during_grace = 0",
      )
      .all();
    return Promise.resolve(rows.map(toSchedule));
  }

  claimSchedule(scheduleId: string, expected: ScheduleClaim, claim: ScheduleClaim): Promise<boolean> {
    const result = this.#db
      .prepare(
        "UPDATE schedules SET claimed_by = ?, lease_until = ? WHERE schedule_id = ? AND state = 'pending' AND claimed_by IS ? AND lease_until IS ?",
      )
      .run(claim.claimedBy, claim.leaseUntil, scheduleId, expected.claimedBy, expected.leaseUntil);
    return Promise.resolve(result.changes === 1);
  }

  finishSchedule(
    scheduleId: string,
    expected: ScheduleClaim,
    finish: { state: 'executed' | 'cancelled'; finishedAt: number; finishedBy: string; mac: Uint8Array },
  ): Promise<boolean> {
    const result = this.#db
      .prepare(
        "UPDATE schedules SET state = ?, finished_at = ?, finished_by = ?, mac = ? WHERE schedule_id = ? AND state = 'pending' AND claimed_by IS ? AND lease_until IS ?",
      )
      .run(
        finish.state,
        finish.finishedAt,
        finish.finishedBy,
        Buffer.from(finish.mac),
        scheduleId,
        expected.claimedBy,
        expected.leaseUntil,
      );
    return Promise.resolve(result.changes === 1);
  }

  journalApplied(): Promise<number> {
    const row = this.#db.prepare<[], { position: number }>('SELECT position FROM journal_applied WHERE id = 0').get();
    return Promise.resolve(row?.position ?? 0);
  }

  advanceJournal(from: number, to: number): Promise<boolean> {
    const result = this.#db
      .prepare('UPDATE journal_applied SET position = ? WHERE id = 0 AND position = ?')
      .run(to, from);
    return Promise.resolve(result.changes === 1);
  }

  /**
   * A consistent copy of the whole database in `file` (SQLite's online backup
   * API: readers and writers go on meanwhile). It holds wrapped rows only and
   * its own journal_applied row: the journal position it covers.
   */
  async backup(file: string): Promise<{ position: number; bytes: number }> {
    const result = await this.#db.backup(file);
    const copy = new Database(file, { readonly: true });
    try {
      const row = copy.prepare<[], { position: number }>('SELECT position FROM journal_applied WHERE id = 0').get();
      return {
        position: row?.position ?? 0,
        bytes: result.totalPages * (this.#db.pragma('page_size', { simple: true }) as number),
      };
    } finally {
      copy.close();
    }
  }

  createService(row: ServiceRow): Promise<boolean> {
    const result = this.#db
      .prepare(
        'INSERT OR IGNORE INTO services (service_id, wrapped_key, read_categories, can_create, can_rotate, can_shred, created_at, tls_identities, generation, credential_states, mac, can_hold, can_admin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(row.serviceId, ...serviceColumns(row));
    return Promise.resolve(result.changes === 1);
  }

  updateService(
    row: ServiceRow,
    expectedGeneration: number,
    credentials: readonly CredentialRecord[] = [],
  ): Promise<boolean> {
    const update = this.#db.transaction(() => {
      const result = this.#db
        .prepare(
          'UPDATE services SET wrapped_key = ?, read_categories = ?, can_create = ?, can_rotate = ?, can_shred = ?, created_at = ?, tls_identities = ?, generation = ?, credential_states = ?, mac = ?, can_hold = ?, can_admin = ? WHERE service_id = ? AND generation = ?',
        )
        .run(...serviceColumns(row), row.serviceId, expectedGeneration);
      if (result.changes !== 1) return false;
      for (const credential of credentials) {
        this.#db
          .prepare(
            'INSERT OR REPLACE INTO credentials (service_id, credential_id, verifier, created_at, revoked_at, mac) VALUES (?, ?, ?, ?, ?, ?)',
          )
          .run(
            row.serviceId,
            credential.credentialId,
            Buffer.from(credential.verifier),
            credential.createdAt,
            credential.revokedAt,
            credential.mac === null ? null : Buffer.from(credential.mac),
          );
      }
      return true;
    });
    return Promise.resolve(update.immediate());
  }

  getService(serviceId: string): Promise<ServiceRecord | undefined> {
    const row = this.#db.prepare<[string], ServiceSql>('SELECT * FROM services WHERE service_id = ?').get(serviceId);
    if (row === undefined) return Promise.resolve(undefined);
    const credentials = this.#db
      .prepare<[string], CredentialSql>(
        'SELECT * FROM credentials WHERE service_id = ? ORDER BY created_at, credential_id',
      )
      .all(serviceId);
    return Promise.resolve(toServiceRecord(row, credentials));
  }

  listServices(): Promise<ServiceRecord[]> {
    const rows = this.#db.prepare<[], ServiceSql>('SELECT * FROM services ORDER BY service_id').all();
    const credentials = this.#db
      .prepare<[], CredentialSql>('SELECT * FROM credentials ORDER BY created_at, credential_id')
      .all();
    return Promise.resolve(
      rows.map((row) =>
        toServiceRecord(
          row,
          credentials.filter((c) => c.service_id === row.service_id),
        ),
      ),
    );
  }

  putReceipt(r: ReceiptRecord): Promise<void> {
    this.#db
      .prepare('INSERT INTO receipts (receipt_id, user_id, issued_at, jws) VALUES (?, ?, ?, ?)')
      .run(r.receiptId, r.userId, r.issuedAt, r.jws);
    return Promise.resolve();
  }

  getReceipt(receiptId: string): Promise<ReceiptRecord | undefined> {
    const row = this.#db.prepare<[string], ReceiptSql>('SELECT * FROM receipts WHERE receipt_id = ?').get(receiptId);
    return Promise.resolve(row === undefined ? undefined : toReceipt(row));
  }

  listReceipts(userId: string): Promise<ReceiptRecord[]> {
    const rows = this.#db
      .prepare<[string], ReceiptSql>('SELECT * FROM receipts WHERE user_id = ? ORDER BY issued_at, receipt_id')
      .all(userId);
    return Promise.resolve(rows.map(toReceipt));
  }

  insertSigningKey(key: SigningKeyRecord): Promise<boolean> {
    const result = this.#db
      .prepare('INSERT OR IGNORE INTO signing_keys (generation, kid, wrapped, created_at) VALUES (?, ?, ?, ?)')
      .run(key.generation, key.kid, Buffer.from(key.wrapped), key.createdAt);
    return Promise.resolve(result.changes === 1);
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    const rows = this.#db
      .prepare<[], { generation: number; kid: string; wrapped: Buffer; created_at: number }>(
        'SELECT * FROM signing_keys ORDER BY generation',
      )
      .all();
    return Promise.resolve(
      rows.map((r) => ({ generation: r.generation, kid: r.kid, wrapped: r.wrapped, createdAt: r.created_at })),
    );
  }

  appendAudit(row: AuditRow): Promise<boolean> {
    const result = this.#db
      .prepare('INSERT OR IGNORE INTO audit_entries (chain_id, seq, at, body, hash) VALUES (?, ?, ?, ?, ?)')
      .run(row.chainId, row.seq, row.at, row.body, row.hash);
    return Promise.resolve(result.changes === 1);
  }

  listAuditChains(): Promise<string[]> {
    const rows = this.#db
      .prepare<[], { chain_id: string }>(
        'SELECT chain_id FROM audit_entries UNION SELECT chain_id FROM audit_checkpoints ORDER BY chain_id',
      )
      .all();
    return Promise.resolve(rows.map((r) => r.chain_id));
  }

  readAuditChain(chainId: string): Promise<AuditRow[]> {
    const rows = this.#db
      .prepare<[string], { chain_id: string; seq: number; at: number; body: string; hash: string }>(
        'SELECT * FROM audit_entries WHERE chain_id = ? ORDER BY seq',
      )
      .all(chainId);
    return Promise.resolve(
      rows.map((r) => ({ chainId: r.chain_id, seq: r.seq, at: r.at, body: r.body, hash: r.hash })),
    );
  }

  putAuditCheckpoint(c: AuditCheckpointRow): Promise<void> {
    this.#db
      .prepare('INSERT OR REPLACE INTO audit_checkpoints (chain_id, seq, at, jws) VALUES (?, ?, ?, ?)')
      .run(c.chainId, c.seq, c.at, c.jws);
    return Promise.resolve();
  }

  listAuditCheckpoints(chainId: string): Promise<AuditCheckpointRow[]> {
    const rows = this.#db
      .prepare<[string], { chain_id: string; seq: number; at: number; jws: string }>(
        'SELECT * FROM audit_checkpoints WHERE chain_id = ? ORDER BY seq',
      )
      .all(chainId);
    return Promise.resolve(rows.map((r) => ({ chainId: r.chain_id, seq: r.seq, at: r.at, jws: r.jws })));
  }

  scanSealed(table: SealedTable, after: string | null, limit: number): Promise<SealedPage> {
    const scan = SEALED_SCANS[table];
    const cursor = after === null ? null : parseCursor(after, scan.key.length);
    const where = cursor === null ? '' : `AND (${scan.key.join(', ')}) > (${scan.key.map(() => '?').join(', ')})`;
    const rows = this.#db
      .prepare<unknown[], Record<string, unknown>>(
        `SELECT * FROM ${table} WHERE ${scan.sealed} IS NOT NULL AND length(${scan.sealed}) > 0 ${where} ORDER BY ${scan.key.join(', ')} LIMIT ?`,
      )
      .all(...(cursor ?? []), limit);
    let total = this.#sealedTotals.get(table);
    if (total === undefined) {
      total = this.#db
        .prepare<[], { n: number }>(
          `SELECT count(*) AS n FROM ${table} WHERE ${scan.sealed} IS NOT NULL AND length(${scan.sealed}) > 0`,
        )
        .get()!.n;
      this.#sealedTotals.set(table, total);
    }
    const last = rows.at(-1);
    return Promise.resolve({
      records: rows.map(scan.record),
      next: rows.length < limit || last === undefined ? null : JSON.stringify(scan.key.map((k) => last[k])),
      done: null,
      total,
    });
  }

  replaceSealedAll(changes: readonly SealedChange[]): Promise<boolean[]> {
    return Promise.resolve(
      this.#db.transaction(() => changes.map((c) => this.#replaceSealed(c.record, c.sealed))).immediate(),
    );
  }

  replaceSealed(record: SealedRecord, sealed: Uint8Array): Promise<boolean> {
    return Promise.resolve(this.#replaceSealed(record, sealed));
  }

  #replaceSealed(record: SealedRecord, sealed: Uint8Array): boolean {
    const next = Buffer.from(sealed);
    let changes: number;
    switch (record.table) {
      case 'root_keys':
        changes = this.#db
          .prepare(
            'UPDATE root_keys SET wrapped = ? WHERE user_id = ? AND category = ? AND version = ? AND wrapped = ? AND shredded_at IS NULL',
          )
          .run(next, record.userId, record.row.category, record.row.version, blobOf(record.row.wrapped)).changes;
        break;
      case 'holds':
        changes = this.#db
          .prepare('UPDATE holds SET mac = ? WHERE user_id = ? AND hold_id = ? AND mac = ?')
          .run(next, record.hold.userId, record.hold.holdId, blobOf(record.hold.mac)).changes;
        break;
      case 'schedules':
        changes = this.#db
          .prepare('UPDATE schedules SET mac = ? WHERE schedule_id = ? AND mac = ?')
          .run(next, record.schedule.scheduleId, blobOf(record.schedule.mac)).changes;
        break;
      case 'signing_keys':
        changes = this.#db
          .prepare('UPDATE signing_keys SET wrapped = ? WHERE generation = ? AND wrapped = ?')
          .run(next, record.key.generation, blobOf(record.key.wrapped)).changes;
        break;
    }
    return changes === 1;
  }

  /** The database handle, for tests that edit rows behind the store's back. */
  get database(): Database.Database {
    return this.#db;
  }

  ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    // The last connection to close checkpoints and removes the WAL itself; an earlier
    // one tries here so a blocked checkpoint does not wait for the other processes.
    if (this.#db.open && this.#residueSince !== null) this.#db.pragma('wal_checkpoint(TRUNCATE)');
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }

  #multiGetStatement(count: number): Database.Statement<string[], KeyRowSql> {
    let statement = this.#multiGet.get(count);
    if (statement === undefined) {
      const marks = new Array<string>(count).fill('?').join(',');
      statement = this.#db.prepare(
        `SELECT user_id, category, version, wrapped, created_at, shredded_at FROM root_keys WHERE user_id IN (${marks}) ORDER BY user_id, category, version`,
      );
      this.#multiGet.set(count, statement);
    }
    return statement;
  }
}

/** Per table: the column a re-wrap rewrites, the primary key it pages by, and the record a row makes. */
const SEALED_SCANS: Record<
  SealedTable,
  { sealed: string; key: readonly string[]; record: (row: Record<string, unknown>) => SealedRecord }
> = {
  root_keys: {
    sealed: 'wrapped',
    key: ['user_id', 'category', 'version'],
    record: (row) => ({
      table: 'root_keys',
      userId: row['user_id'] as string,
      row: toKeyRow(row as unknown as KeyRowSql),
    }),
  },
  holds: {
    sealed: 'mac',
    key: ['user_id', 'hold_id'],
    record: (row) => ({ table: 'holds', hold: toHold(row as unknown as HoldSql) }),
  },
  schedules: {
    sealed: 'mac',
    key: ['schedule_id'],
    record: (row) => ({ table: 'schedules', schedule: toSchedule(row as unknown as ScheduleSql) }),
  },
  signing_keys: {
    sealed: 'wrapped',
    key: ['generation'],
    record: (row) => ({
      table: 'signing_keys',
      key: {
        generation: row['generation'] as number,
        kid: row['kid'] as string,
        wrapped: row['wrapped'] as Buffer,
        createdAt: row['created_at'] as number,
      },
    }),
  },
};

/** A scan cursor as this store writes it: a JSON array of the key's column values. */
function parseCursor(text: string, columns: number): (string | number)[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== columns ||
    !parsed.every((v) => typeof v === 'string' || Number.isSafeInteger(v))
  ) {
    throw new RangeError('not a scan cursor of this store and table');
  }
  return parsed as (string | number)[];
}

function blobOf(bytes: Uint8Array | null): Buffer {
  return bytes === null ? Buffer.alloc(0) : Buffer.from(bytes);
}

class BackupError extends Error {}

/** Checks `file` is a Padlock SQLite store (tables present, integrity ok) and returns the position it covers. */
export function inspectSqliteBackup(file: string): number {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new BackupError(`cannot open backup ${file}: ${(error as Error).message}`);
  }
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new BackupError(`backup ${file} fails SQLite's quick_check: ${String(check)}`);
    const tables = new Set(
      db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((r) => r.name),
    );
    for (const table of ['root_keys', 'services', 'credentials']) {
      if (!tables.has(table)) throw new BackupError(`backup ${file} is not a Padlock store: no ${table} table`);
    }
    // A store from before the journal existed covers position 0: the whole journal is replayed.
    if (!tables.has('journal_applied')) return 0;
    return (
      db.prepare<[], { position: number }>('SELECT position FROM journal_applied WHERE id = 0').get()?.position ?? 0
    );
  } catch (error) {
    if (error instanceof BackupError) throw error;
    throw new BackupError(`backup ${file} is not a readable SQLite database: ${(error as Error).message}`);
  } finally {
    db.close();
  }
}

/** Columns added after the first release, as (table, column, definition); `padlock migrate` or any open adds them. */
const ADDED_COLUMNS: readonly (readonly [string, string, string])[] = [
  ['services', 'tls_identities', "TEXT NOT NULL DEFAULT ''"],
  ['services', 'generation', 'INTEGER NOT NULL DEFAULT 0'],
  ['services', 'credential_states', "TEXT NOT NULL DEFAULT ''"],
  ['services', 'mac', 'BLOB'],
  ['credentials', 'mac', 'BLOB'],
  ['services', 'can_hold', 'INTEGER NOT NULL DEFAULT 0'],
  ['services', 'can_admin', 'INTEGER NOT NULL DEFAULT 0'],
];

function serviceColumns(
  row: ServiceRow,
): [Buffer, string, number, number, number, number, string, number, string, Buffer | null, number, number] {
  const p = row.permissions;
  return [
    Buffer.from(row.wrappedKey),
    p.read.join(','),
    Number(p.create),
    Number(p.rotate),
    Number(p.shred),
    row.createdAt,
    joinIdentities(row.tlsIdentities),
    row.generation,
    joinCredentialStates(row.credentialStates),
    row.mac === null ? null : Buffer.from(row.mac),
    Number(p.hold),
    Number(p.admin === true),
  ];
}

function addMissingColumns(db: Database.Database): void {
  for (const [table, column, definition] of ADDED_COLUMNS) {
    const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all();
    if (!columns.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
  }
}

/** SQLite's default limit on bound parameters is 32766; stay well below it. */
const MULTI_GET_CHUNK = 500;

function toKeyRow(row: KeyRowSql): KeyRow {
  return {
    category: row.category,
    version: row.version,
    wrapped: row.wrapped,
    createdAt: row.created_at,
    shreddedAt: row.shredded_at,
  };
}

function toReceipt(row: ReceiptSql): ReceiptRecord {
  return { receiptId: row.receipt_id, userId: row.user_id, issuedAt: row.issued_at, jws: row.jws };
}

function blobOrNull(bytes: Uint8Array | null): Buffer | null {
  return bytes === null ? null : Buffer.from(bytes);
}

function toHold(row: HoldSql): HoldRecord {
  return {
    holdId: row.hold_id,
    userId: row.user_id,
    category: row.category,
    reason: row.reason,
    placedBy: row.placed_by,
    placedAt: row.placed_at,
    releasedAt: row.released_at,
    releasedBy: row.released_by,
    mac: row.mac,
  };
}

function toSchedule(row: ScheduleSql): ScheduleRecord {
  return {
    scheduleId: row.schedule_id,
    userId: row.user_id,
    category: row.category,
    executeAt: row.execute_at,
    serveDuringGrace: row.serve_during_grace === 1,
    requestedBy: row.requested_by,
    createdAt: row.created_at,
    state: row.state,
    finishedAt: row.finished_at,
    finishedBy: row.finished_by,
    claimedBy: row.claimed_by,
    leaseUntil: row.lease_until,
    mac: row.mac,
  };
}

function toServiceRecord(row: ServiceSql, credentials: CredentialSql[]): ServiceRecord {
  return {
    serviceId: row.service_id,
    wrappedKey: row.wrapped_key,
    permissions: {
      read: row.read_categories === '' ? [] : row.read_categories.split(','),
      create: row.can_create === 1,
      rotate: row.can_rotate === 1,
      shred: row.can_shred === 1,
      hold: row.can_hold === 1,
      ...(row.can_admin === 1 ? { admin: true } : {}),
    },
    createdAt: row.created_at,
    tlsIdentities: splitIdentities(row.tls_identities),
    generation: row.generation,
    credentialStates: splitCredentialStates(row.credential_states),
    mac: row.mac,
    credentials: credentials.map((c) => ({
      credentialId: c.credential_id,
      verifier: c.verifier,
      createdAt: c.created_at,
      revokedAt: c.revoked_at,
      mac: c.mac,
    })),
  };
}
