import { PadlockError } from '@padlock/core';
import cassandra from 'cassandra-driver';
import type { CassandraConfig } from '../config.js';
import { connectFailure, connectionSecurity } from '../store/cassandra-security.js';
import { alignSpeculativeRetry, SPECULATIVE_RETRY } from '../store/cassandra.js';
import {
  ChainVerifier,
  GENESIS_MAC,
  rekeyFrom,
  type JournalEntry,
  type JournalKeys,
  type ShredRequest,
} from './entry.js';
import { Serially } from '../serially.js';
import type { JournalHead, ShredJournal } from './types.js';

const { consistencies } = cassandra.types;
const Long = cassandra.types.Long;

/*
 * The Cassandra journal: a keyspace of its own (so a snapshot of the store's
 * keyspace never holds it), optionally on other contact points. One partition
 * (stream 0) clustered by position: shreds are rare next to lookups, and one
 * partition keeps positions gap-free with one conditional insert each:
 * `IF NOT EXISTS` at the next position, retried on a lost race, so servers
 * appending at once never share a position.
 */

/** Conditional inserts tried before an append gives up (each loss means another server appended). */
const APPEND_ATTEMPTS = 32;
const PAGE = 1000;

export function journalSchema(keyspace: string, replication: Readonly<Record<string, number>>): string[] {
  const dcs = Object.entries(replication)
    .map(([dc, rf]) => `'${dc.replaceAll("'", "''")}': ${rf}`)
    .join(', ');
  return [
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', ${dcs}}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.shreds (
      stream int, position bigint, user_id text, category text, at bigint, kid text, mac blob,
      PRIMARY KEY ((stream), position)
    ) WITH CLUSTERING ORDER BY (position ASC) AND speculative_retry = '${SPECULATIVE_RETRY}'`,
    // Re-key entries (journal/entry.ts); added to journals created before them.
    `ALTER TABLE ${keyspace}.shreds ADD IF NOT EXISTS (rekey_from_kid text, rekey_from_mac blob, rekey_digest blob)`,
  ];
}

type Row = cassandra.types.Row;

const COLUMNS = 'position, user_id, category, at, kid, mac, rekey_from_kid, rekey_from_mac, rekey_digest';

function toEntry(row: Row): JournalEntry {
  const fromKid = row['rekey_from_kid'] as string | null;
  const rekey =
    fromKid === null
      ? {}
      : {
          rekey: {
            fromKid,
            fromMac: (row['rekey_from_mac'] as Buffer | null) ?? Buffer.alloc(0),
            digest: (row['rekey_digest'] as Buffer | null) ?? Buffer.alloc(0),
          },
        };
  return {
    ...rekey,
    position: (row['position'] as cassandra.types.Long).toNumber(),
    userId: row['user_id'] as string,
    category: (row['category'] as string | null) ?? null,
    at: (row['at'] as cassandra.types.Long).toNumber(),
    kid: row['kid'] as string,
    mac: (row['mac'] as Buffer | null) ?? Buffer.alloc(0),
  };
}

export class CassandraJournal implements ShredJournal {
  readonly kind = 'cassandra';

  private constructor(
    readonly location: string,
    private readonly client: cassandra.Client,
    private readonly ks: string,
    private readonly keys: JournalKeys,
    private readonly timeoutMs: number,
    private readonly serial: number,
  ) {}

  static async open(
    connection: CassandraConfig,
    journal: {
      readonly keyspace: string;
      readonly replication: Readonly<Record<string, number>>;
      /** Default SERIAL: appends from several datacenters never share a position. */
      readonly serialConsistency?: 'SERIAL' | 'LOCAL_SERIAL';
    },
    keys: JournalKeys,
    createSchema: boolean,
  ): Promise<CassandraJournal> {
    const serial = journal.serialConsistency === 'LOCAL_SERIAL' ? consistencies.localSerial : consistencies.serial;
    const client = new cassandra.Client({
      ...connectionSecurity(connection),
      contactPoints: [...connection.contactPoints],
      localDataCenter: connection.localDataCenter,
      policies: { retry: new cassandra.policies.retry.FallthroughRetryPolicy() },
      socketOptions: { connectTimeout: connection.connectTimeoutMs, readTimeout: connection.readTimeoutMs },
      queryOptions: {
        consistency: consistencies.localQuorum,
        serialConsistency: serial,
        prepare: true,
      },
    });
    try {
      await client.connect().catch((error: unknown) => {
        throw connectFailure(error, connection);
      });
      if (createSchema) {
        for (const statement of journalSchema(journal.keyspace, journal.replication)) {
          await client.execute(statement, [], { readTimeout: 60000, prepare: false });
        }
        await alignSpeculativeRetry(client, journal.keyspace);
      }
      const location = `${journal.keyspace}@${connection.contactPoints.join(',')}`;
      // Shreds wait on a conditional write; give them at least a second even when lookups fail fast.
      return new CassandraJournal(
        location,
        client,
        journal.keyspace,
        keys,
        Math.max(connection.readTimeoutMs, 2000),
        serial,
      );
    } catch (error) {
      await client.shutdown().catch(() => undefined);
      throw error;
    }
  }

  async #exec(
    query: string,
    params: unknown[],
    options: cassandra.QueryOptions = {},
  ): Promise<cassandra.types.ResultSet> {
    try {
      return await this.client.execute(query.replaceAll('{ks}', this.ks), params, {
        prepare: true,
        readTimeout: this.timeoutMs,
        ...options,
      });
    } catch (error) {
      throw new PadlockError(
        'JOURNAL_UNAVAILABLE',
        `the Cassandra shred journal did not answer: ${(error as Error).name}`,
        {
          cause: error,
        },
      );
    }
  }

  /**
   * This process's appends, one at a time. All of them are Paxos rounds on the one partition
   * (stream 0): sent at once (16 scheduled shreds), they contend with each other and each loser
   * sleeps a random while before its next round (16 in flight: p99 321 ms against 9 ms one at a
   * time, on one node). Other processes' appends still race these; that is what the retries are for.
   */
  readonly #serially = new Serially();

  append(shred: ShredRequest): Promise<JournalEntry> {
    return this.#serially.run(() => this.#append(shred));
  }

  async #append(shred: ShredRequest): Promise<JournalEntry> {
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      const head = await this.#last(this.serial);
      const unsigned = { ...shred, position: head.position + 1, kid: this.keys.activeKid };
      const entry: JournalEntry = { ...unsigned, mac: this.keys.mac(unsigned, head.mac) };
      if (await this.#insert(entry)) return entry;
    }
    throw new PadlockError('JOURNAL_UNAVAILABLE', `the shred journal append lost ${APPEND_ATTEMPTS} races in a row`);
  }

  /**
   * The re-key entry needs the digest of the whole chain: it is read and verified from position 1
   * once, then only what other servers appended while the conditional insert lost its race.
   */
  rekey(): Promise<JournalEntry | null> {
    return this.#serially.run(() => this.#rekey());
  }

  async #rekey(): Promise<JournalEntry | null> {
    const chain = new ChainVerifier(this.keys, false);
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      for await (const row of this.#rows(chain.head.position, this.serial)) chain.accept(toEntry(row));
      chain.finish();
      const fromKid = rekeyFrom(chain, this.keys.activeKid);
      if (fromKid === undefined) return null;
      const head = chain.head;
      const entry = this.keys.rekeyEntry(
        { position: head.position + 1, at: Date.now(), kid: this.keys.activeKid, fromKid, digest: chain.digest },
        head.mac,
      );
      if (await this.#insert(entry)) return entry;
    }
    throw new PadlockError('JOURNAL_UNAVAILABLE', `the shred journal re-key lost ${APPEND_ATTEMPTS} races in a row`);
  }

  async #insert(entry: JournalEntry): Promise<boolean> {
    const result = await this.#exec(
      'INSERT INTO {ks}.shreds (stream, position, user_id, category, at, kid, mac, rekey_from_kid, rekey_from_mac, rekey_digest) ' +
        'VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
      [
        Long.fromNumber(entry.position),
        entry.userId,
        entry.category,
        Long.fromNumber(entry.at),
        entry.kid,
        Buffer.from(entry.mac),
        entry.rekey?.fromKid ?? null,
        entry.rekey === undefined ? null : Buffer.from(entry.rekey.fromMac),
        entry.rekey === undefined ? null : Buffer.from(entry.rekey.digest),
      ],
    );
    return result.wasApplied();
  }

  /** Rows after `position`, oldest first, a page at a time. */
  async *#rows(position: number, consistency?: number): AsyncIterable<Row> {
    let pageState: string | undefined;
    do {
      const page = await this.#exec(
        `SELECT ${COLUMNS} FROM {ks}.shreds WHERE stream = 0 AND position > ?`,
        [Long.fromNumber(position)],
        {
          fetchSize: PAGE,
          ...(consistency === undefined ? {} : { consistency }),
          ...(pageState === undefined ? {} : { pageState }),
        },
      );
      yield* page.rows;
      pageState = page.pageState ?? undefined;
    } while (pageState !== undefined);
  }

  head(): Promise<JournalHead> {
    return this.#last(this.serial);
  }

  /** The last entry, verified against the one before it. */
  async #last(consistency: number): Promise<JournalHead> {
    const result = await this.#exec(
      `SELECT ${COLUMNS} FROM {ks}.shreds WHERE stream = 0 ORDER BY position DESC LIMIT 2`,
      [],
      { consistency },
    );
    const [last, before] = result.rows.map(toEntry);
    if (last === undefined) return { position: 0, mac: GENESIS_MAC };
    this.keys.verify(last, before ?? { position: 0, mac: GENESIS_MAC });
    return { position: last.position, mac: last.mac };
  }

  async *entriesAfter(position: number): AsyncIterable<JournalEntry> {
    // From position 1 whatever `position` is: an entry under a retired KEK is verified only by the
    // digest in the re-key entry after it, which covers the chain from its start.
    const chain = new ChainVerifier(this.keys, true);
    for await (const row of this.#rows(0)) {
      for (const entry of chain.accept(toEntry(row))) if (entry.position > position) yield entry;
    }
    chain.finish();
  }

  async close(): Promise<void> {
    await this.client.shutdown();
  }
}
