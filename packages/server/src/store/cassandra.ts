import cassandra from 'cassandra-driver';
import type { CassandraConfig } from '../config.js';
import { Serially } from '../serially.js';
import { connectFailure, connectionSecurity } from './cassandra-security.js';
import { BudgetedHedgePolicy, DEFAULT_HEDGE_SHARE } from './hedge-budget.js';
import { joinCredentialStates, joinIdentities, splitCredentialStates, splitIdentities } from './columns.js';
import type {
  AuditCheckpointRow,
  AuditRow,
  CredentialRecord,
  HoldRecord,
  KeyRow,
  KeyStore,
  NewKeyRow,
  ReadOptions,
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

const { consistencies } = cassandra.types;

/*
 * The distributed store, as the seed runs it (DESIGN.md section 5):
 * - one partition per user, clustered by (category, version); no collections;
 * - a shred overwrites the blob with an empty value and sets shredded_at:
 *   no deletes, so no tombstones;
 * - reads at LOCAL_ONE, and once more at LOCAL_QUORUM when nothing is found,
 *   so a signup written a moment ago is found; `fresh` reads go to LOCAL_QUORUM;
 * - every write to root_keys is a lightweight transaction (LOCAL_SERIAL) at
 *   LOCAL_QUORUM: creates need IF NOT EXISTS, and mixing LWT and plain writes
 *   on the same cells is unsafe, so shreds are conditional too;
 * - the driver never retries (FallthroughRetryPolicy), routes token-aware
 *   within the local datacenter only, and every request has an explicit
 *   timeout: Padlock fails fast and callers decide about retries. The one
 *   second execution it makes is a hedge, not a retry: a keychain read at
 *   LOCAL_ONE not answered after hedgeAfterMs (default 8) is sent to the next
 *   replica too, and the first answer wins (one extra execution; none when
 *   hedgeAfterMs is 0, and never for writes), within a budget: over time at
 *   most hedgeShare of the reads (default 0.1) are hedged (BudgetedHedgePolicy);
 * - a replica that came back less than a minute ago is tried last: it may not
 *   have the writes it missed while down (hints take seconds to arrive), and a
 *   LOCAL_ONE read it answered first would serve a shredded key again.
 */

/** How long a replica that came back up is tried only after the others. */
export const CATCH_UP_MS = 60000;

/** Width of one partition of the schedules_due index, in due time. */
export const DUE_BUCKET_MS = 3_600_000;
/**
 * How far apart the servers' clocks may be. The due cursor stays this far behind the pass's `now`, and a
 * schedule is filed under its due time or its creation time, whichever is later: so a schedule created by
 * a server whose clock is behind, or due in the past, is never filed below a cursor already written.
 */
export const DUE_SKEW_MS = 60_000;
/** A pending schedule filed this far behind `now` (held, or failing) is filed again under `now`. */
const REFILE_AFTER_MS = DUE_SKEW_MS;
/** The cursor is written to the store at most this often per process (it is kept in memory between). */
const DUE_FROM_WRITE_MS = 60_000;

const dueBucket = (at: number): number => Math.floor(at / DUE_BUCKET_MS);

/** The driver's Host, with the time it was last marked up (null when it never went down). */
type TrackedHost = cassandra.Host & { readonly isUpSince?: number | null | undefined };

/**
 * A query plan with the hosts that came back up less than CATCH_UP_MS ago moved after the others
 * (each group in the order it had), so they coordinate only when no other host can.
 */
export function settledFirst<T extends { readonly isUpSince?: number | null | undefined }>(
  plan: readonly T[],
  now: number,
  catchUpMs = CATCH_UP_MS,
): T[] {
  const recent = (h: T): boolean => typeof h.isUpSince === 'number' && now - h.isUpSince < catchUpMs;
  return [...plan.filter((h) => !recent(h)), ...plan.filter(recent)];
}

/**
 * The driver's DefaultLoadBalancingPolicy (token-aware, local datacenter only, steering around
 * replicas that leave requests unanswered), except for nodes that came back up: the driver sends
 * them to the back of the plan three times in four only. The DiRT suite saw the fourth: with one
 * node of three killed, then restarted, a LOCAL_ONE lookup of a user shredded while it was down
 * was answered by it 7 s after it came back, with the key (a key served 30 s past the shred).
 */
class CatchUpAwarePolicy extends cassandra.policies.loadBalancing.DefaultLoadBalancingPolicy {
  constructor(
    localDc: string,
    private readonly catchUpMs: number,
  ) {
    super({ localDc });
  }

  override newQueryPlan(
    keyspace: string,
    executionOptions: cassandra.ExecutionOptions,
    callback: (error: Error, iterator: Iterator<cassandra.Host>) => void,
  ): void {
    super.newQueryPlan(keyspace, executionOptions, (error, iterator) => {
      if (error !== null && error !== undefined) {
        callback(error, iterator);
        return;
      }
      const plan: TrackedHost[] = [];
      for (let next = iterator.next(); next.done !== true; next = iterator.next()) plan.push(next.value);
      callback(error, settledFirst(plan, Date.now(), this.catchUpMs)[Symbol.iterator]());
    });
  }
}

export interface CassandraStoreOptions extends CassandraConfig {
  /** Create the keyspace and tables when they are missing (`padlock migrate` does it explicitly). */
  readonly createSchema: boolean;
  /** How long a node that came back up is tried after the others (default CATCH_UP_MS; tests set 0). */
  readonly catchUpMs?: number;
  /** Observes every request and the host that coordinated it (tests check routing with it). */
  readonly requestTracker?: cassandra.tracker.RequestTracker;
}

/**
 * When a coordinator asks one more replica for a read it is still waiting on (the table option
 * speculative_retry): at the table's p99, but never later than 50 ms. Cassandra's default, the p99
 * alone, starts at half the read timeout on a new table and is dragged up by the very replica that
 * is failing: in the DiRT suite, with one of three replicas killed and not yet convicted by gossip,
 * 13 of 53 holds, schedules and shreds failed at the client's timeout, waiting (as far as the
 * A/B runs show) on quorum reads that had chosen it (docs/operations.md).
 */
export const SPECULATIVE_RETRY = 'MIN(99p,50ms)';

/** The schema, one statement per entry; `{ks}` is the keyspace. Table options are explained in docs/operations.md. */
export function schemaStatements(keyspace: string, replication: Readonly<Record<string, number>>): string[] {
  const dcs = Object.entries(replication)
    .map(([dc, rf]) => `'${dc.replaceAll("'", "''")}': ${rf}`)
    .join(', ');
  const options = `read_repair = 'NONE'
    AND compaction = {'class': 'LeveledCompactionStrategy'}
    AND caching = {'keys': 'ALL', 'rows_per_partition': 'NONE'}
    AND speculative_retry = '${SPECULATIVE_RETRY}'`;
  return [
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', ${dcs}}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.root_keys (
      user_id text, category text, version int,
      wrapped blob, created_at timestamp, shredded_at timestamp,
      PRIMARY KEY ((user_id), category, version)
    ) WITH CLUSTERING ORDER BY (category ASC, version ASC) AND ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.services (
      service_id text PRIMARY KEY, wrapped_key blob, read_categories text,
      can_create boolean, can_rotate boolean, can_shred boolean, created_at timestamp,
      tls_identities text, generation bigint, credential_states text, mac blob, can_hold boolean,
      can_admin boolean
    ) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.holds (
      user_id text, hold_id text, category text, reason text, placed_by text, placed_at bigint,
      released_at bigint, released_by text, mac blob,
      PRIMARY KEY ((user_id), hold_id)
    ) WITH ${options}`,
    // One partition per schedule: claims and cancels are LWTs on it alone. schedules_by_user
    // lists a user's schedule ids; the scheduler pages through schedules (docs/operations.md).
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schedules (
      schedule_id text PRIMARY KEY, user_id text, category text, execute_at bigint,
      serve_during_grace boolean, requested_by text, created_at bigint, state text,
      finished_at bigint, finished_by text, claimed_by text, lease_until bigint, mac blob
    ) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schedules_by_user (
      user_id text, schedule_id text, PRIMARY KEY ((user_id), schedule_id)
    ) WITH ${options}`,
    // The due index: one partition per DUE_BUCKET_MS of due time, so the scheduler reads the
    // buckets from its cursor to now, never the whole table (dueSchedules). due_from holds the
    // cursors the schedulers reached: below the greatest, nothing is pending.
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schedules_due (
      bucket bigint, due_at bigint, schedule_id text, PRIMARY KEY ((bucket), due_at, schedule_id)
    ) WITH CLUSTERING ORDER BY (due_at ASC, schedule_id ASC) AND ${options}`,
    // The pending schedules that withhold keys during their grace period (one small partition; a row is
    // deleted once its schedule is seen finished), read by every scheduler pass instead of the table.
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schedules_withholding (
      id int, schedule_id text, PRIMARY KEY ((id), schedule_id)
    ) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schedules_due_from (
      id int, due_from bigint, PRIMARY KEY ((id), due_from)
    ) WITH CLUSTERING ORDER BY (due_from DESC) AND ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.credentials (
      service_id text, credential_id text, verifier blob, created_at timestamp, revoked_at timestamp, mac blob,
      PRIMARY KEY ((service_id), credential_id)
    ) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.journal_applied (id int PRIMARY KEY, position bigint) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.receipts (
      receipt_id text PRIMARY KEY, user_id text, issued_at timestamp, jws text
    ) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.receipts_by_user (
      user_id text, issued_at timestamp, receipt_id text, jws text,
      PRIMARY KEY ((user_id), issued_at, receipt_id)
    ) WITH ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.signing_keys (
      generation int PRIMARY KEY, kid text, wrapped blob, created_at timestamp
    ) WITH ${options}`,
    // One partition per writer's chain; DISTINCT chain_id lists the chains from the entries themselves,
    // so no separate list of chains can be edited to hide one.
    `CREATE TABLE IF NOT EXISTS ${keyspace}.audit_entries (
      chain_id text, seq int, at timestamp, body text, hash text,
      PRIMARY KEY ((chain_id), seq)
    ) WITH CLUSTERING ORDER BY (seq ASC) AND ${options}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.audit_checkpoints (
      chain_id text, seq int, at timestamp, jws text,
      PRIMARY KEY ((chain_id), seq)
    ) WITH CLUSTERING ORDER BY (seq ASC) AND ${options}`,
  ];
}

/** Columns added after the first release, as (table, column, type); created with the schema when missing. */
export const ADDED_COLUMNS: readonly (readonly [string, string, string])[] = [
  ['services', 'tls_identities', 'text'],
  ['services', 'generation', 'bigint'],
  ['services', 'credential_states', 'text'],
  ['services', 'mac', 'blob'],
  ['credentials', 'mac', 'blob'],
  ['services', 'can_hold', 'boolean'],
  ['services', 'can_admin', 'boolean'],
];

/**
 * Tables created before SPECULATIVE_RETRY was part of the schema keep Cassandra's default: brings
 * each of the keyspace's tables to it (CREATE TABLE IF NOT EXISTS leaves an existing table alone).
 * Only a table that differs is altered, so a start does not change the schema each time.
 */
export async function alignSpeculativeRetry(client: cassandra.Client, keyspace: string): Promise<void> {
  const tables = await client.execute(
    'SELECT table_name, speculative_retry FROM system_schema.tables WHERE keyspace_name = ?',
    [keyspace],
    { prepare: true, consistency: consistencies.localOne },
  );
  for (const row of tables.rows) {
    if (String(row['speculative_retry']).toUpperCase() === SPECULATIVE_RETRY.toUpperCase()) continue;
    await client.execute(
      `ALTER TABLE ${keyspace}.${String(row['table_name'])} WITH speculative_retry = '${SPECULATIVE_RETRY}'`,
      [],
      { readTimeout: 60000, prepare: false },
    );
  }
}

async function addMissingColumns(client: cassandra.Client, keyspace: string): Promise<void> {
  for (const [table, column, type] of ADDED_COLUMNS) {
    const found = await client.execute(
      'SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?',
      [keyspace, table, column],
      { prepare: true, consistency: consistencies.localOne },
    );
    if (found.rowLength === 0) {
      await client.execute(`ALTER TABLE ${keyspace}.${table} ADD ${column} ${type}`, [], {
        readTimeout: 60000,
        prepare: false,
      });
    }
  }
}

type Row = cassandra.types.Row;

export class CassandraKeyStore implements KeyStore {
  readonly kind = 'cassandra';
  readonly #client: cassandra.Client;
  readonly #ks: string;
  readonly #readTimeout: number;
  /** Holds' and schedules' Paxos (lifecycleSerialConsistency), and the consistency of their commits and deciding reads. */
  readonly #lifecycleSerial: number;
  readonly #lifecycleQuorum: number;
  /** Keychain reads that were hedged (sent to a second replica); the metrics show it. */
  get hedgedReads(): number {
    return this.hedgePolicy?.hedges ?? 0;
  }
  /** The hedge budget, when hedging is on: it counts the reads left unhedged for lack of budget. */
  readonly hedgePolicy: BudgetedHedgePolicy | null;
  /** The due cursor: no schedule filed below it is pending (undefined: not read yet). */
  #dueFrom: number | undefined;
  #dueFromWrittenAt = 0;
  /** Schedules filed at or above the cursor that this process saw finished, by id: not read again. */
  readonly #finishedDue = new Map<string, number>();

  private constructor(
    client: cassandra.Client,
    options: CassandraStoreOptions,
    hedgePolicy: BudgetedHedgePolicy | null,
  ) {
    this.#client = client;
    this.hedgePolicy = hedgePolicy;
    this.#ks = options.keyspace;
    this.#readTimeout = options.readTimeoutMs;
    const local = options.lifecycleSerialConsistency === 'LOCAL_SERIAL';
    this.#lifecycleSerial = local ? consistencies.localSerial : consistencies.serial;
    this.#lifecycleQuorum = local ? consistencies.localQuorum : consistencies.quorum;
  }

  /** Connects, and creates the schema when asked to. Fails fast when no contact point answers. */
  static async open(options: CassandraStoreOptions): Promise<CassandraKeyStore> {
    const hedgePolicy =
      options.hedgeAfterMs > 0
        ? new BudgetedHedgePolicy(options.hedgeAfterMs, options.hedgeShare ?? DEFAULT_HEDGE_SHARE)
        : null;
    const client = new cassandra.Client({
      // TLS and login, when configured: their files are read (and checked) here, before connecting.
      ...connectionSecurity(options),
      contactPoints: [...options.contactPoints],
      localDataCenter: options.localDataCenter,
      policies: {
        retry: new cassandra.policies.retry.FallthroughRetryPolicy(),
        // Token-aware and local-datacenter-only like TokenAware(DCAwareRoundRobin), and it also steers
        // around a replica that is slow (fewer of its requests answered, more in flight) or restarted
        // less than a minute ago (a cold JVM, writes it missed): the DiRT suite saw 503s from both, and
        // a shredded key read from the restarted replica (CatchUpAwarePolicy).
        loadBalancing: new CatchUpAwarePolicy(options.localDataCenter, options.catchUpMs ?? CATCH_UP_MS),
        // Hedged reads: only keychain reads at LOCAL_ONE are marked idempotent, so only they get a
        // second execution, on the next host of the query plan, when the first has not answered
        // after hedgeAfterMs. Whichever answers first completes the read; an error from either
        // fails it at once (there is no retry). On the 3-node DiRT cluster a replica's GC pause
        // otherwise held every read it coordinated for 20-200 ms. The budget keeps a cluster that is
        // slow everywhere from being asked everything twice.
        speculativeExecution: hedgePolicy ?? new cassandra.policies.speculativeExecution.NoSpeculativeExecutionPolicy(),
        reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(1000),
      },
      socketOptions: {
        connectTimeout: options.connectTimeoutMs,
        readTimeout: options.readTimeoutMs,
      },
      ...(options.requestTracker === undefined ? {} : { requestTracker: options.requestTracker }),
      queryOptions: {
        consistency: consistencies.localOne,
        serialConsistency: consistencies.localSerial,
        prepare: true,
      },
    });
    try {
      await client.connect().catch((error: unknown) => {
        throw connectFailure(error, options);
      });
      if (options.createSchema) {
        for (const statement of schemaStatements(options.keyspace, options.replication)) {
          await client.execute(statement, [], { readTimeout: 60000, prepare: false });
        }
        await addMissingColumns(client, options.keyspace);
        await alignSpeculativeRetry(client, options.keyspace);
      }
      return new CassandraKeyStore(client, options, hedgePolicy);
    } catch (error) {
      await client.shutdown().catch(() => undefined);
      throw error;
    }
  }

  async #exec(
    query: string,
    params: unknown[],
    consistency: number,
    extra: cassandra.QueryOptions = {},
  ): Promise<cassandra.types.ResultSet> {
    return this.#client.execute(query.replaceAll('{ks}', this.#ks), params, {
      prepare: true,
      consistency,
      readTimeout: this.#readTimeout,
      ...extra,
    });
  }

  async getKeychain(userId: string, options: ReadOptions = {}): Promise<KeyRow[]> {
    const query = 'SELECT category, version, wrapped, created_at, shredded_at FROM {ks}.root_keys WHERE user_id = ?';
    if (options.fresh !== true) {
      const fast = await this.#exec(query, [userId], consistencies.localOne, { isIdempotent: true });
      if (fast.rows.length > 0) return fast.rows.map(toKeyRow);
    }
    // Not found at LOCAL_ONE (or asked to be fresh): a signup may not have reached this replica yet.
    const strong = await this.#exec(query, [userId], consistencies.localQuorum);
    return strong.rows.map(toKeyRow);
  }

  async getKeychains(userIds: readonly string[]): Promise<Map<string, KeyRow[]>> {
    const unique = [...new Set(userIds)];
    const rows = await Promise.all(unique.map((id) => this.getKeychain(id)));
    return new Map(unique.map((id, i) => [id, rows[i] ?? []]));
  }

  async insertKeys(userId: string, rows: readonly NewKeyRow[]): Promise<NewKeyRow[]> {
    if (rows.length === 0) return [];
    // One conditional batch (one Paxos round) for the whole partition. When it
    // is not applied, Cassandra returns the rows that exist; the others are
    // tried again, so a category added to the config later still gets created.
    const statements = rows.map((row) => ({
      query: `INSERT INTO ${this.#ks}.root_keys (user_id, category, version, wrapped, created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`,
      params: [userId, row.category, row.version, Buffer.from(row.wrapped), new Date(row.createdAt)],
    }));
    const result = await this.#client.batch(statements, {
      prepare: true,
      consistency: consistencies.localQuorum,
      serialConsistency: consistencies.localSerial,
      readTimeout: this.#readTimeout,
    });
    if (result.wasApplied()) return [...rows];
    const existing = new Set(result.rows.map((r) => `${String(r['category'])}/${String(r['version'])}`));
    const remaining = rows.filter((r) => !existing.has(`${r.category}/${r.version}`));
    return remaining.length === rows.length ? [] : this.insertKeys(userId, remaining);
  }

  async journalApplied(): Promise<number> {
    const result = await this.#exec(
      'SELECT position FROM {ks}.journal_applied WHERE id = 0',
      [],
      consistencies.localSerial,
    );
    const position = result.first()?.['position'] as cassandra.types.Long | null | undefined;
    return position === null || position === undefined ? 0 : position.toNumber();
  }

  /** This process's journal-position writes, one at a time (one partition: see advanceJournal). */
  readonly #journalWrites = new Serially();

  advanceJournal(from: number, to: number): Promise<boolean> {
    // One row every shred moves: sent at once (a scheduler's concurrent shreds) the Paxos rounds
    // contend and the losers sleep before trying again, so this process sends them one at a time.
    return this.#journalWrites.run(() => this.#advanceJournal(from, to));
  }

  async #advanceJournal(from: number, to: number): Promise<boolean> {
    // Conditional, as every write the journal position races (two servers, a replay).
    const options = { serialConsistency: consistencies.localSerial };
    if (from === 0) {
      const inserted = await this.#exec(
        'INSERT INTO {ks}.journal_applied (id, position) VALUES (0, ?) IF NOT EXISTS',
        [cassandra.types.Long.fromNumber(to)],
        consistencies.localQuorum,
        options,
      );
      if (inserted.wasApplied()) return true;
    }
    const result = await this.#exec(
      'UPDATE {ks}.journal_applied SET position = ? WHERE id = 0 IF position = ?',
      [cassandra.types.Long.fromNumber(to), cassandra.types.Long.fromNumber(from)],
      consistencies.localQuorum,
      options,
    );
    return result.wasApplied();
  }

  async shred(userId: string, category: string | undefined, at: number, known?: readonly KeyRow[]): Promise<number> {
    const rows = (known ?? (await this.getKeychain(userId, { fresh: true }))).filter(
      (r) => r.wrapped !== null && (category === undefined || r.category === category),
    );
    if (rows.length === 0) return 0;
    // One conditional batch, one Paxos round for the partition, as in insertKeys. One LWT per row
    // in parallel made the rounds contend on the partition: measured on a 3-node cluster, 9 % of
    // whole-keychain shreds failed with a LOCAL_SERIAL write timeout, p50 90 ms (batch: 0 %, 6 ms).
    const result = await this.#client.batch(
      rows.map((row) => ({
        query: `UPDATE ${this.#ks}.root_keys SET wrapped = ?, shredded_at = ? WHERE user_id = ? AND category = ? AND version = ? IF shredded_at = null`,
        params: [EMPTY, new Date(at), userId, row.category, row.version],
      })),
      {
        prepare: true,
        consistency: consistencies.localQuorum,
        serialConsistency: consistencies.localSerial,
        readTimeout: this.#readTimeout,
      },
    );
    if (result.wasApplied()) return rows.length;
    // A concurrent shred took some of the rows first (the batch then applies none): shred the rest.
    return this.shred(userId, category, at);
  }

  /*
   * Holds and schedules: every write is a lightweight transaction at SERIAL whose
   * commit is at QUORUM (lifecycleSerialConsistency; LOCAL_SERIAL and
   * LOCAL_QUORUM when one datacenter alone runs the lifecycle). Reads that
   * decide something are at SERIAL (a schedule, before a claim) or QUORUM
   * (holds, before a shred): both see every round that returned, in any
   * datacenter. At LOCAL_SERIAL each DC's Paxos sees only its own replicas:
   * in the DiRT datacenter cut, dc1 executed schedules while dc2 was cut off
   * and dc2's scheduler claimed and executed them again once it was back
   * (two receipts each; store/lifecycle-dc.cluster.test).
   */
  async insertHold(h: HoldRecord): Promise<boolean> {
    const result = await this.#lifecycleLwt(
      'INSERT INTO {ks}.holds (user_id, hold_id, category, reason, placed_by, placed_at, released_at, released_by, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
      [h.userId, h.holdId, h.category, h.reason, h.placedBy, h.placedAt, h.releasedAt, h.releasedBy, h.mac],
    );
    return result.wasApplied();
  }

  // QUORUM (LOCAL_QUORUM), not a serial read: a hold's insert returns once its Paxos commit reached a
  // quorum, which every quorum read of the same scope meets, so a hold placed before the read began is seen.
  // Every shred and every due schedule reads the holds; in the DiRT node kill the LOCAL_SERIAL read was the
  // shred path's most failed store call (85 of 170 errors), a Paxos round of its own before any write.
  async listHolds(userId: string): Promise<HoldRecord[]> {
    const result = await this.#exec('SELECT * FROM {ks}.holds WHERE user_id = ?', [userId], this.#lifecycleQuorum);
    return result.rows.map(toHold).sort((a, b) => a.placedAt - b.placedAt || a.holdId.localeCompare(b.holdId));
  }

  // `placed_at >= 0` stands for IF EXISTS, which Cassandra does not combine with other conditions;
  // `released_at = null` alone would be met by a missing row, and the update would create one.
  async releaseHold(
    userId: string,
    holdId: string,
    release: { releasedAt: number; releasedBy: string; mac: Uint8Array },
  ): Promise<boolean> {
    const result = await this.#lifecycleLwt(
      'UPDATE {ks}.holds SET released_at = ?, released_by = ?, mac = ? WHERE user_id = ? AND hold_id = ? IF placed_at >= 0 AND released_at = null',
      [release.releasedAt, release.releasedBy, Buffer.from(release.mac), userId, holdId],
    );
    return result.wasApplied();
  }

  async insertSchedule(s: ScheduleRecord): Promise<boolean> {
    // The index rows first: a schedule is never in `schedules` without being listable by its user and due time.
    await Promise.all([
      this.#exec(
        'INSERT INTO {ks}.schedules_by_user (user_id, schedule_id) VALUES (?, ?)',
        [s.userId, s.scheduleId],
        consistencies.localQuorum,
      ),
      this.#fileDue(s.scheduleId, Math.max(s.executeAt, s.createdAt)),
      s.serveDuringGrace ? undefined : this.#fileWithholding(s.scheduleId),
    ]);
    const result = await this.#lifecycleLwt(
      'INSERT INTO {ks}.schedules (schedule_id, user_id, category, execute_at, serve_during_grace, requested_by, created_at, state, finished_at, finished_by, claimed_by, lease_until, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
      [
        s.scheduleId,
        s.userId,
        s.category,
        s.executeAt,
        s.serveDuringGrace,
        s.requestedBy,
        s.createdAt,
        s.state,
        s.finishedAt,
        s.finishedBy,
        s.claimedBy,
        s.leaseUntil,
        s.mac,
      ],
    );
    return result.wasApplied();
  }

  async getSchedule(scheduleId: string): Promise<ScheduleRecord | undefined> {
    const result = await this.#exec(
      'SELECT * FROM {ks}.schedules WHERE schedule_id = ?',
      [scheduleId],
      this.#lifecycleSerial,
    );
    const row = result.first() as Row | null;
    return row === null ? undefined : toSchedule(row);
  }

  async listSchedules(userId: string): Promise<ScheduleRecord[]> {
    const ids = await this.#exec(
      'SELECT schedule_id FROM {ks}.schedules_by_user WHERE user_id = ?',
      [userId],
      consistencies.localQuorum,
    );
    const found = await Promise.all(ids.rows.map((r) => this.getSchedule(r['schedule_id'] as string)));
    return found
      .filter((s): s is ScheduleRecord => s !== undefined)
      .sort((a, b) => a.createdAt - b.createdAt || a.scheduleId.localeCompare(b.scheduleId));
  }

  /*
   * Due schedules by time bucket: the buckets from the cursor to `now`, each a
   * clustering range (due_at from the cursor to now), at LOCAL_QUORUM, then
   * each schedule's row; the claim that follows is a lifecycle LWT (SERIAL). The
   * cursor then moves to the first schedule still pending, and never past
   * now - DUE_SKEW_MS. A pending one filed long ago (under a hold, or whose
   * shred keeps failing) is filed again under now, so it cannot hold the
   * cursor back. A pass reads what fell due since the cursor, not the table.
   */
  async dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    const from = this.#dueFrom ?? (await this.#readDueFrom(now));
    const found: ScheduleRecord[] = [];
    const refile: ScheduleRecord[] = [];
    let firstPending: number | undefined;
    let scannedTo = now;
    scan: for (let bucket = dueBucket(from); bucket <= dueBucket(now); bucket++) {
      let pageState: string | undefined;
      do {
        const page = await this.#exec(
          'SELECT due_at, schedule_id FROM {ks}.schedules_due WHERE bucket = ? AND due_at >= ? AND due_at <= ?',
          [
            cassandra.types.Long.fromNumber(bucket),
            cassandra.types.Long.fromNumber(from),
            cassandra.types.Long.fromNumber(now),
          ],
          consistencies.localQuorum,
          { fetchSize: Math.max(100, Math.min(1000, limit)), ...(pageState === undefined ? {} : { pageState }) },
        );
        const rows = page.rows
          .map((r) => ({ dueAt: (r['due_at'] as cassandra.types.Long).toNumber(), id: r['schedule_id'] as string }))
          .filter((r) => !this.#finishedDue.has(r.id));
        const schedules = await Promise.all(rows.map((r) => this.#scheduleRow(r.id)));
        for (let i = 0; i < rows.length; i++) {
          const { dueAt, id } = rows[i]!;
          const schedule = schedules[i];
          if (schedule === undefined && dueAt >= now - DUE_SKEW_MS) {
            // Filed, but its row is not there (yet): the insert may still be in flight. Keep the cursor below it.
            firstPending ??= dueAt;
            continue;
          }
          if (schedule === undefined || schedule.state !== 'pending') {
            this.#finishedDue.set(id, dueAt);
            continue;
          }
          if (dueAt < now - REFILE_AFTER_MS) refile.push(schedule);
          else firstPending ??= dueAt;
          if (schedule.executeAt <= now) found.push(schedule);
          if (found.length >= limit) {
            scannedTo = dueAt;
            break scan;
          }
        }
        pageState = page.pageState ?? undefined;
      } while (pageState !== undefined);
    }
    await Promise.all(refile.map((s) => this.#fileDue(s.scheduleId, now)));
    await this.#moveDueFrom(Math.min(firstPending ?? scannedTo, scannedTo, now - DUE_SKEW_MS), now);
    return found.sort((a, b) => a.executeAt - b.executeAt);
  }

  async #fileDue(scheduleId: string, dueAt: number): Promise<void> {
    await this.#exec(
      'INSERT INTO {ks}.schedules_due (bucket, due_at, schedule_id) VALUES (?, ?, ?)',
      [cassandra.types.Long.fromNumber(dueBucket(dueAt)), cassandra.types.Long.fromNumber(dueAt), scheduleId],
      consistencies.localQuorum,
    );
  }

  /** One schedule at LOCAL_QUORUM (the scheduler's read; what it decides is decided by the claim's LWT). */
  async #scheduleRow(scheduleId: string): Promise<ScheduleRecord | undefined> {
    const result = await this.#exec(
      'SELECT * FROM {ks}.schedules WHERE schedule_id = ?',
      [scheduleId],
      consistencies.localQuorum,
    );
    const row = result.first() as Row | null;
    return row === null ? undefined : toSchedule(row);
  }

  /**
   * The greatest cursor any scheduler wrote. None yet (a keyspace whose schedules predate the index): the
   * schedules table is read once, every pending schedule filed, and the cursor set below them all.
   */
  async #readDueFrom(now: number): Promise<number> {
    const result = await this.#exec(
      'SELECT due_from FROM {ks}.schedules_due_from WHERE id = 0 LIMIT 1',
      [],
      consistencies.localQuorum,
    );
    const found = result.first()?.['due_from'] as cassandra.types.Long | undefined;
    if (found !== undefined) {
      this.#dueFrom = found.toNumber();
      return this.#dueFrom;
    }
    const pending = await this.#scanSchedules((s) => s.state === 'pending');
    await Promise.all(pending.map((s) => this.#fileDue(s.scheduleId, Math.max(s.executeAt, s.createdAt))));
    await Promise.all(pending.filter((s) => !s.serveDuringGrace).map((s) => this.#fileWithholding(s.scheduleId)));
    const from = Math.min(now - DUE_SKEW_MS, ...pending.map((s) => Math.max(s.executeAt, s.createdAt)));
    await this.#writeDueFrom(from);
    this.#dueFrom = from;
    return from;
  }

  /** Moves this process's cursor forward (never back), and writes it at most every DUE_FROM_WRITE_MS. */
  async #moveDueFrom(to: number, now: number): Promise<void> {
    if (this.#dueFrom !== undefined && to <= this.#dueFrom) return;
    this.#dueFrom = to;
    for (const [id, dueAt] of this.#finishedDue) if (dueAt < to) this.#finishedDue.delete(id);
    if (now - this.#dueFromWrittenAt >= DUE_FROM_WRITE_MS) {
      await this.#writeDueFrom(to);
      this.#dueFromWrittenAt = now;
    }
  }

  /** One row per cursor written (plain inserts, no LWT): the greatest is the one read. */
  async #writeDueFrom(from: number): Promise<void> {
    await this.#exec(
      'INSERT INTO {ks}.schedules_due_from (id, due_from) VALUES (0, ?)',
      [cassandra.types.Long.fromNumber(from)],
      consistencies.localQuorum,
    );
  }

  async withholdingSchedules(): Promise<ScheduleRecord[]> {
    if (this.#dueFrom === undefined) await this.#readDueFrom(Date.now()); // indexes an unindexed keyspace
    const ids = await this.#exec(
      'SELECT schedule_id FROM {ks}.schedules_withholding WHERE id = 0',
      [],
      consistencies.localQuorum,
      { fetchSize: 5000 },
    );
    const found = await Promise.all(ids.rows.map((r) => this.#scheduleRow(r['schedule_id'] as string)));
    const withholding: ScheduleRecord[] = [];
    const over: string[] = [];
    ids.rows.forEach((r, i) => {
      const schedule = found[i];
      if (schedule?.state === 'pending') withholding.push(schedule);
      // Finished: no longer listed. A row whose schedule is missing stays: its insert may be in flight.
      else if (schedule !== undefined) over.push(r['schedule_id'] as string);
    });
    await Promise.all(
      over.map((id) =>
        this.#exec(
          'DELETE FROM {ks}.schedules_withholding WHERE id = 0 AND schedule_id = ?',
          [id],
          consistencies.localQuorum,
        ),
      ),
    );
    return withholding;
  }

  async #fileWithholding(scheduleId: string): Promise<void> {
    await this.#exec(
      'INSERT INTO {ks}.schedules_withholding (id, schedule_id) VALUES (0, ?)',
      [scheduleId],
      consistencies.localQuorum,
    );
  }

  /** Pages through every schedule at LOCAL_QUORUM; the claim that follows decides (a lifecycle LWT). */
  async #scanSchedules(keep: (s: ScheduleRecord) => boolean): Promise<ScheduleRecord[]> {
    const kept: ScheduleRecord[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.#exec('SELECT * FROM {ks}.schedules', [], consistencies.localQuorum, {
        fetchSize: 1000,
        ...(pageState === undefined ? {} : { pageState }),
      });
      for (const row of page.rows) {
        const schedule = toSchedule(row);
        if (keep(schedule)) kept.push(schedule);
      }
      pageState = page.pageState ?? undefined;
    } while (pageState !== undefined);
    return kept;
  }

  async claimSchedule(scheduleId: string, expected: ScheduleClaim, claim: ScheduleClaim): Promise<boolean> {
    const result = await this.#lifecycleLwt(
      "UPDATE {ks}.schedules SET claimed_by = ?, lease_until = ? WHERE schedule_id = ? IF state = 'pending' AND claimed_by = ? AND lease_until = ?",
      [claim.claimedBy, claim.leaseUntil, scheduleId, expected.claimedBy, expected.leaseUntil],
    );
    return result.wasApplied();
  }

  async finishSchedule(
    scheduleId: string,
    expected: ScheduleClaim,
    finish: { state: 'executed' | 'cancelled'; finishedAt: number; finishedBy: string; mac: Uint8Array },
  ): Promise<boolean> {
    const result = await this.#lifecycleLwt(
      "UPDATE {ks}.schedules SET state = ?, finished_at = ?, finished_by = ?, mac = ? WHERE schedule_id = ? IF state = 'pending' AND claimed_by = ? AND lease_until = ?",
      [
        finish.state,
        finish.finishedAt,
        finish.finishedBy,
        Buffer.from(finish.mac),
        scheduleId,
        expected.claimedBy,
        expected.leaseUntil,
      ],
    );
    return result.wasApplied();
  }

  #lwt(query: string, params: unknown[]): Promise<cassandra.types.ResultSet> {
    return this.#exec(query, params, consistencies.localQuorum, { serialConsistency: consistencies.localSerial });
  }

  /** A hold's or schedule's lightweight transaction: SERIAL, committed at QUORUM (or both local). */
  #lifecycleLwt(query: string, params: unknown[]): Promise<cassandra.types.ResultSet> {
    return this.#exec(query, params, this.#lifecycleQuorum, { serialConsistency: this.#lifecycleSerial });
  }

  async createService(row: ServiceRow): Promise<boolean> {
    const result = await this.#exec(
      'INSERT INTO {ks}.services (wrapped_key, read_categories, can_create, can_rotate, can_shred, created_at, tls_identities, generation, credential_states, mac, can_hold, can_admin, service_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
      [...serviceColumns(row), row.serviceId],
      consistencies.localQuorum,
    );
    return result.wasApplied();
  }

  /*
   * Two partitions in two tables: no atomic write covers both. The credential
   * row goes first; until the conditional service update lists it, no service
   * MAC names it and the registry ignores it, and a revocation written first
   * only takes a right away. Credential rows are only ever written plainly
   * (no LWT), so plain and conditional writes never mix on the same cells.
   */
  async updateService(
    row: ServiceRow,
    expectedGeneration: number,
    credentials: readonly CredentialRecord[] = [],
  ): Promise<boolean> {
    if (credentials.length > 0 && (await this.getService(row.serviceId)) === undefined) return false;
    for (const credential of credentials) {
      await this.#exec(
        'INSERT INTO {ks}.credentials (service_id, credential_id, verifier, created_at, revoked_at, mac) VALUES (?, ?, ?, ?, ?, ?)',
        [
          row.serviceId,
          credential.credentialId,
          Buffer.from(credential.verifier),
          new Date(credential.createdAt),
          credential.revokedAt === null ? null : new Date(credential.revokedAt),
          credential.mac === null ? null : Buffer.from(credential.mac),
        ],
        consistencies.localQuorum,
      );
    }
    // Rows from before MACs have no generation (null); written generations start at 1. The condition
    // on created_at (never changed by an update) keeps a missing row missing: `generation = null`
    // alone holds for a row that does not exist, and the update would create a partial one.
    const result = await this.#exec(
      `UPDATE {ks}.services SET wrapped_key = ?, read_categories = ?, can_create = ?, can_rotate = ?, can_shred = ?, created_at = ?, tls_identities = ?, generation = ?, credential_states = ?, mac = ?, can_hold = ?, can_admin = ? WHERE service_id = ? IF created_at = ? AND ${expectedGeneration === 0 ? 'generation = null' : 'generation = ?'}`,
      [
        ...serviceColumns(row),
        row.serviceId,
        new Date(row.createdAt),
        ...(expectedGeneration === 0 ? [] : [cassandra.types.Long.fromNumber(expectedGeneration)]),
      ],
      consistencies.localQuorum,
    );
    return result.wasApplied();
  }

  async getService(serviceId: string): Promise<ServiceRecord | undefined> {
    const [service, credentials] = await Promise.all([
      this.#exec('SELECT * FROM {ks}.services WHERE service_id = ?', [serviceId], consistencies.localQuorum),
      this.#exec('SELECT * FROM {ks}.credentials WHERE service_id = ?', [serviceId], consistencies.localQuorum),
    ]);
    const row = service.first() as Row | null;
    return row === null ? undefined : toServiceRecord(row, credentials.rows);
  }

  async listServices(): Promise<ServiceRecord[]> {
    // Small tables read whole: the registry is reloaded every few seconds.
    const [services, credentials] = await Promise.all([
      this.#exec('SELECT * FROM {ks}.services', [], consistencies.localQuorum, { fetchSize: 5000 }),
      this.#exec('SELECT * FROM {ks}.credentials', [], consistencies.localQuorum, { fetchSize: 5000 }),
    ]);
    return services.rows
      .map((row) =>
        toServiceRecord(
          row,
          credentials.rows.filter((c) => c['service_id'] === row['service_id']),
        ),
      )
      .sort((a, b) => a.serviceId.localeCompare(b.serviceId));
  }

  async ping(): Promise<void> {
    await this.#client.execute('SELECT release_version FROM system.local', [], {
      prepare: true,
      consistency: consistencies.localOne,
      readTimeout: this.#readTimeout,
    });
  }

  /*
   * Two plain writes side by side, not a logged batch: a logged batch first
   * writes the batchlog to two other nodes and needs both, so for the seconds
   * before the cluster marks a killed node down every receipt it coordinated
   * failed (the DiRT node kill: shreds answered 503). Both writes are
   * idempotent; the shred's call fails when either does, and its retry writes
   * the receipt again.
   */
  async putReceipt(r: ReceiptRecord): Promise<void> {
    const issuedAt = new Date(r.issuedAt);
    await Promise.all([
      this.#exec(
        'INSERT INTO {ks}.receipts (receipt_id, user_id, issued_at, jws) VALUES (?, ?, ?, ?)',
        [r.receiptId, r.userId, issuedAt, r.jws],
        this.#lifecycleQuorum,
      ),
      this.#exec(
        'INSERT INTO {ks}.receipts_by_user (user_id, issued_at, receipt_id, jws) VALUES (?, ?, ?, ?)',
        [r.userId, issuedAt, r.receiptId, r.jws],
        this.#lifecycleQuorum,
      ),
    ]);
  }

  async getReceipt(receiptId: string): Promise<ReceiptRecord | undefined> {
    const result = await this.#exec(
      'SELECT receipt_id, user_id, issued_at, jws FROM {ks}.receipts WHERE receipt_id = ?',
      [receiptId],
      this.#lifecycleQuorum,
    );
    const row = result.first() as Row | null;
    return row === null ? undefined : toReceipt(row);
  }

  async listReceipts(userId: string): Promise<ReceiptRecord[]> {
    const result = await this.#exec(
      'SELECT receipt_id, user_id, issued_at, jws FROM {ks}.receipts_by_user WHERE user_id = ?',
      [userId],
      this.#lifecycleQuorum,
    );
    return result.rows.map(toReceipt);
  }

  async insertSigningKey(key: SigningKeyRecord): Promise<boolean> {
    const result = await this.#exec(
      'INSERT INTO {ks}.signing_keys (generation, kid, wrapped, created_at) VALUES (?, ?, ?, ?) IF NOT EXISTS',
      [key.generation, key.kid, Buffer.from(key.wrapped), new Date(key.createdAt)],
      consistencies.localQuorum,
    );
    return result.first()?.['[applied]'] === true;
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    // SERIAL, so a key another server inserted with IF NOT EXISTS a moment ago is seen.
    const result = await this.#exec(
      'SELECT generation, kid, wrapped, created_at FROM {ks}.signing_keys',
      [],
      consistencies.localSerial,
    );
    return result.rows
      .map((r) => ({
        generation: r['generation'] as number,
        kid: r['kid'] as string,
        wrapped: r['wrapped'] as Buffer,
        createdAt: time(r['created_at']) ?? 0,
      }))
      .sort((a, b) => a.generation - b.generation);
  }

  async appendAudit(row: AuditRow): Promise<boolean> {
    const result = await this.#exec(
      'INSERT INTO {ks}.audit_entries (chain_id, seq, at, body, hash) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS',
      [row.chainId, row.seq, new Date(row.at), row.body, row.hash],
      consistencies.localQuorum,
    );
    return result.first()?.['[applied]'] === true;
  }

  async listAuditChains(): Promise<string[]> {
    const [entries, checkpoints] = await Promise.all([
      this.#exec('SELECT DISTINCT chain_id FROM {ks}.audit_entries', [], consistencies.localQuorum, {
        fetchSize: 5000,
      }),
      this.#exec('SELECT DISTINCT chain_id FROM {ks}.audit_checkpoints', [], consistencies.localQuorum, {
        fetchSize: 5000,
      }),
    ]);
    const ids = new Set([...entries.rows, ...checkpoints.rows].map((r) => r['chain_id'] as string));
    return [...ids].sort();
  }

  async readAuditChain(chainId: string): Promise<AuditRow[]> {
    const rows: AuditRow[] = [];
    const query = `SELECT chain_id, seq, at, body, hash FROM ${this.#ks}.audit_entries WHERE chain_id = ?`;
    for await (const r of this.#client.stream(query, [chainId], {
      prepare: true,
      consistency: consistencies.localQuorum,
      readTimeout: this.#readTimeout,
      fetchSize: 1000,
    }) as unknown as AsyncIterable<Row>) {
      rows.push({
        chainId: r['chain_id'] as string,
        seq: r['seq'] as number,
        at: time(r['at']) ?? 0,
        body: r['body'] as string,
        hash: r['hash'] as string,
      });
    }
    return rows;
  }

  async putAuditCheckpoint(c: AuditCheckpointRow): Promise<void> {
    await this.#exec(
      'INSERT INTO {ks}.audit_checkpoints (chain_id, seq, at, jws) VALUES (?, ?, ?, ?)',
      [c.chainId, c.seq, new Date(c.at), c.jws],
      consistencies.localQuorum,
    );
  }

  async listAuditCheckpoints(chainId: string): Promise<AuditCheckpointRow[]> {
    const result = await this.#exec(
      'SELECT chain_id, seq, at, jws FROM {ks}.audit_checkpoints WHERE chain_id = ?',
      [chainId],
      consistencies.localQuorum,
      { fetchSize: 5000 },
    );
    return result.rows.map((r) => ({
      chainId: r['chain_id'] as string,
      seq: r['seq'] as number,
      at: time(r['at']) ?? 0,
      jws: r['jws'] as string,
    }));
  }

  /*
   * A re-wrap pages through a table by token range: rows come in token order,
   * so `token(pk) > cursor` resumes after the last partition a page finished.
   * A full page may end inside a partition (or a token two keys share): that
   * last token is left for the next page, so every partition is read whole.
   */
  async scanSealed(table: SealedTable, after: string | null, limit: number): Promise<SealedPage> {
    const scan = SEALED_SCANS[table];
    const from = after === null ? cassandra.types.Long.MIN_VALUE : parseToken(after);
    for (let fetch = limit; ; fetch *= 2) {
      const page = await this.#exec(
        `SELECT token(${scan.partition}) AS t, ${scan.columns} FROM {ks}.${table} WHERE token(${scan.partition}) > ? LIMIT ?`,
        [from, fetch],
        consistencies.localQuorum,
      );
      const rows = page.rows;
      const last = rows.at(-1)?.['t'] as cassandra.types.Long | undefined;
      if (rows.length < fetch || last === undefined) {
        return { records: sealedOnly(rows, scan.record), next: null, done: 1, total: null };
      }
      const whole = rows.filter((r) => !(r['t'] as cassandra.types.Long).equals(last));
      // One token filled the page: read a bigger page rather than split it.
      if (whole.length === 0) continue;
      const cursor = whole.at(-1)!['t'] as cassandra.types.Long;
      return {
        records: sealedOnly(whole, scan.record),
        next: cursor.toString(),
        done: tokenFraction(cursor),
        total: null,
      };
    }
  }

  /**
   * Partitions in parallel, the rows of one partition one after another: Paxos runs per partition,
   * and a keychain's three rows sent at once contend, each loser sleeping a random while before its
   * next round (32 rows at once measured ~100 ms a chunk, 312 rows/s; grouped, see
   * docs/performance.md, "KEK re-wrap").
   */
  async replaceSealedAll(changes: readonly SealedChange[]): Promise<boolean[]> {
    const results = new Array<boolean>(changes.length).fill(false);
    const byPartition = new Map<string, number[]>();
    changes.forEach((change, i) => {
      const key = sealedPartition(change.record);
      const group = byPartition.get(key);
      if (group === undefined) byPartition.set(key, [i]);
      else group.push(i);
    });
    await Promise.all(
      [...byPartition.values()].map(async (group) => {
        for (const i of group) results[i] = await this.replaceSealed(changes[i]!.record, changes[i]!.sealed);
      }),
    );
    return results;
  }

  async replaceSealed(record: SealedRecord, sealed: Uint8Array): Promise<boolean> {
    const next = Buffer.from(sealed);
    let result: cassandra.types.ResultSet;
    switch (record.table) {
      case 'root_keys':
        result = await this.#lwt(
          'UPDATE {ks}.root_keys SET wrapped = ? WHERE user_id = ? AND category = ? AND version = ? IF wrapped = ?',
          [next, record.userId, record.row.category, record.row.version, Buffer.from(record.row.wrapped ?? EMPTY)],
        );
        break;
      case 'holds':
        result = await this.#lifecycleLwt(
          'UPDATE {ks}.holds SET mac = ? WHERE user_id = ? AND hold_id = ? IF mac = ?',
          [next, record.hold.userId, record.hold.holdId, Buffer.from(record.hold.mac ?? EMPTY)],
        );
        break;
      case 'schedules':
        result = await this.#lifecycleLwt('UPDATE {ks}.schedules SET mac = ? WHERE schedule_id = ? IF mac = ?', [
          next,
          record.schedule.scheduleId,
          Buffer.from(record.schedule.mac ?? EMPTY),
        ]);
        break;
      case 'signing_keys':
        result = await this.#lwt('UPDATE {ks}.signing_keys SET wrapped = ? WHERE generation = ? IF wrapped = ?', [
          next,
          record.key.generation,
          Buffer.from(record.key.wrapped),
        ]);
        break;
    }
    return result.wasApplied();
  }

  async close(): Promise<void> {
    await this.#client.shutdown();
  }

  /** The driver, for tests that inspect routing (which hosts were queried). */
  get driver(): cassandra.Client {
    return this.#client;
  }
}

const EMPTY = Buffer.alloc(0);

/** A sealed record's table and partition key: rows that share it share a Paxos instance. */
function sealedPartition(record: SealedRecord): string {
  switch (record.table) {
    case 'root_keys':
      return `root_keys\n${record.userId}`;
    case 'holds':
      return `holds\n${record.hold.userId}`;
    case 'schedules':
      return `schedules\n${record.schedule.scheduleId}`;
    case 'signing_keys':
      return `signing_keys\n${record.key.generation}`;
  }
}

/** Per table: its partition key, the columns a record needs, and the record a row makes. */
const SEALED_SCANS: Record<SealedTable, { partition: string; columns: string; record: (row: Row) => SealedRecord }> = {
  root_keys: {
    partition: 'user_id',
    columns: 'user_id, category, version, wrapped, created_at, shredded_at',
    record: (row) => ({ table: 'root_keys', userId: row['user_id'] as string, row: toKeyRow(row) }),
  },
  holds: {
    partition: 'user_id',
    columns: 'user_id, hold_id, category, reason, placed_by, placed_at, released_at, released_by, mac',
    record: (row) => ({ table: 'holds', hold: toHold(row) }),
  },
  schedules: {
    partition: 'schedule_id',
    columns:
      'schedule_id, user_id, category, execute_at, serve_during_grace, requested_by, created_at, state, finished_at, finished_by, claimed_by, lease_until, mac',
    record: (row) => ({ table: 'schedules', schedule: toSchedule(row) }),
  },
  signing_keys: {
    partition: 'generation',
    columns: 'generation, kid, wrapped, created_at',
    record: (row) => ({
      table: 'signing_keys',
      key: {
        generation: row['generation'] as number,
        kid: row['kid'] as string,
        wrapped: row['wrapped'] as Buffer,
        createdAt: time(row['created_at']) ?? 0,
      },
    }),
  },
};

/** The records of rows that still hold a wrapped key or MAC (shredded rows hold an empty blob). */
function sealedOnly(rows: Row[], record: (row: Row) => SealedRecord): SealedRecord[] {
  return rows
    .filter((r) => {
      const bytes = (r['wrapped'] ?? r['mac']) as Buffer | null | undefined;
      return bytes !== null && bytes !== undefined && bytes.length > 0;
    })
    .map(record);
}

function parseToken(text: string): cassandra.types.Long {
  if (!/^-?\d{1,19}$/.test(text)) throw new RangeError('not a scan cursor of this store');
  return cassandra.types.Long.fromString(text);
}

/** How far a Murmur3 token is through the ring, 0-1. */
function tokenFraction(token: cassandra.types.Long): number {
  return (Number(BigInt(token.toString())) + 2 ** 63) / 2 ** 64;
}

function serviceColumns(row: ServiceRow): unknown[] {
  const p = row.permissions;
  return [
    Buffer.from(row.wrappedKey),
    p.read.join(','),
    p.create,
    p.rotate,
    p.shred,
    new Date(row.createdAt),
    joinIdentities(row.tlsIdentities),
    // Generation 0 is a row from before generations: null, as those rows have it.
    row.generation === 0 ? null : cassandra.types.Long.fromNumber(row.generation),
    joinCredentialStates(row.credentialStates),
    row.mac === null ? null : Buffer.from(row.mac),
    p.hold,
    p.admin === true,
  ];
}

function generation(value: unknown): number {
  return value instanceof cassandra.types.Long ? value.toNumber() : 0;
}

function time(value: unknown): number | null {
  return value instanceof Date ? value.getTime() : null;
}

function toKeyRow(row: Row): KeyRow {
  const wrapped = row['wrapped'] as Buffer | null;
  return {
    category: row['category'] as string,
    version: row['version'] as number,
    wrapped: wrapped === null || wrapped.length === 0 ? null : wrapped,
    createdAt: time(row['created_at']) ?? 0,
    shreddedAt: time(row['shredded_at']),
  };
}

function toReceipt(row: Row): ReceiptRecord {
  return {
    receiptId: row['receipt_id'] as string,
    userId: row['user_id'] as string,
    issuedAt: time(row['issued_at']) ?? 0,
    jws: row['jws'] as string,
  };
}

function bigintMs(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  return value instanceof cassandra.types.Long ? value.toNumber() : Number(value);
}

function toHold(row: Row): HoldRecord {
  return {
    holdId: row['hold_id'] as string,
    userId: row['user_id'] as string,
    category: (row['category'] as string | null) ?? null,
    reason: row['reason'] as string,
    placedBy: row['placed_by'] as string,
    placedAt: bigintMs(row['placed_at']) ?? 0,
    releasedAt: bigintMs(row['released_at']),
    releasedBy: (row['released_by'] as string | null) ?? null,
    mac: (row['mac'] as Buffer | null) ?? null,
  };
}

function toSchedule(row: Row): ScheduleRecord {
  return {
    scheduleId: row['schedule_id'] as string,
    userId: row['user_id'] as string,
    category: (row['category'] as string | null) ?? null,
    executeAt: bigintMs(row['execute_at']) ?? 0,
    serveDuringGrace: row['serve_during_grace'] === true,
    requestedBy: row['requested_by'] as string,
    createdAt: bigintMs(row['created_at']) ?? 0,
    state: row['state'] as ScheduleState,
    finishedAt: bigintMs(row['finished_at']),
    finishedBy: (row['finished_by'] as string | null) ?? null,
    claimedBy: (row['claimed_by'] as string | null) ?? null,
    leaseUntil: bigintMs(row['lease_until']),
    mac: (row['mac'] as Buffer | null) ?? null,
  };
}

function toServiceRecord(row: Row, credentials: Row[]): ServiceRecord {
  const read = (row['read_categories'] as string | null) ?? '';
  return {
    serviceId: row['service_id'] as string,
    wrappedKey: row['wrapped_key'] as Buffer,
    permissions: {
      read: read === '' ? [] : read.split(','),
      create: row['can_create'] === true,
      rotate: row['can_rotate'] === true,
      shred: row['can_shred'] === true,
      hold: row['can_hold'] === true,
      ...(row['can_admin'] === true ? { admin: true } : {}),
    },
    createdAt: time(row['created_at']) ?? 0,
    tlsIdentities: splitIdentities(row['tls_identities'] as string | null | undefined),
    generation: generation(row['generation']),
    credentialStates: splitCredentialStates(row['credential_states'] as string | null | undefined),
    mac: (row['mac'] as Buffer | null | undefined) ?? null,
    credentials: credentials
      .map((c) => ({
        credentialId: c['credential_id'] as string,
        verifier: c['verifier'] as Buffer,
        createdAt: time(c['created_at']) ?? 0,
        revokedAt: time(c['revoked_at']),
        mac: (c['mac'] as Buffer | null | undefined) ?? null,
      }))
      .sort((a, b) => a.createdAt - b.createdAt || a.credentialId.localeCompare(b.credentialId)),
  };
}
