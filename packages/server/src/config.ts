import { Ajv, type ErrorObject } from 'ajv';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { TracingConfig } from './tracing.js';

/*
 * One schema, with every default in it, validated once at start and frozen.
 * Unknown keys are an error: a misspelt setting must not silently fall back
 * to its default. Every key's meaning is its schema description: docs/config.md
 * is generated from them (`npm run docs:config`; config-doc.test.ts checks it).
 */

export interface PadlockConfig {
  readonly listen: ListenConfig;
  readonly categories: readonly string[];
  readonly keks: {
    readonly active: string;
    readonly files: readonly { readonly kid: string; readonly path: string }[];
  };
  readonly store: {
    readonly kind: 'sqlite' | 'cassandra';
    readonly sqlite: { readonly path: string; readonly busyTimeoutMs: number; readonly cacheMiB: number };
    readonly cassandra: CassandraConfig;
  };
  /** End-to-end bound, in seconds, on how long a shredded key may still be served by any cache. */
  readonly maxStalenessSeconds: number;
  readonly cache: {
    readonly l1: { readonly enabled: boolean; readonly maxEntries: number };
    readonly memcached: MemcachedConfig;
  };
  readonly limits: {
    readonly maxBatch: number;
    readonly maxBodyBytes: number;
    readonly maxInFlight: number;
    readonly deadlineMs: number;
    /** Open client connections; one more is answered 503 and closed as it arrives. */
    readonly maxConnections: number;
    /** Bytes all unfinished requests may hold together (partial heads, bodies, pipelined bytes); past it 503. */
    readonly maxUnfinishedRequestBytes: number;
  };
  readonly services: { readonly refreshSeconds: number };
  /** Scheduled shreds (DESIGN.md section 3): every node runs the scheduler; a claim in the store picks one. */
  readonly scheduler: {
    readonly enabled: boolean;
    /** How often due schedules are looked for; with the execution time, the bound after executeAt. */
    readonly intervalMs: number;
    /** How long a claim holds; a node killed mid-execution is taken over after it. */
    readonly leaseMs: number;
    /** Schedules claimed per pass, and run at once. */
    readonly batch: number;
    readonly concurrency: number;
    /** At most this many executions started per second (0: no cap); the loop is yielded between them. */
    readonly maxPerSecond: number;
    /** `padlock serve` runs the scheduler in a child process (`padlock scheduler`), not on its serving loop. */
    readonly ownProcess: boolean;
  };
  readonly journal: JournalConfig;
  /** The audit log: a signed checkpoint of this process's chain head at most this often (docs/operations.md). */
  readonly audit: { readonly checkpointSeconds: number };
  /** The operator console at /console/ (docs/console.md): off unless enabled; `padlock dev` enables it. */
  readonly console: {
    readonly enabled: boolean;
    /** A session's life from sign-in; no renewal, sign in again. */
    readonly sessionMinutes: number;
    /** Sessions kept at once by one server; the oldest is dropped past it. */
    readonly maxSessions: number;
  };
  readonly drainTimeoutMs: number;
  readonly log: { readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly requests: boolean };
  /** OpenTelemetry traces (docs/operations.md, "Tracing"); off by default. */
  readonly tracing: TracingConfig;
}

/** The shred journal (DESIGN.md section 11; docs/operations.md, "Backups and the shred journal"). */
export interface JournalConfig {
  /** "file" for SQLite deployments, "cassandra" for a keyspace of its own. */
  readonly kind: 'file' | 'cassandra';
  /** The file journal: never the store's file, nor anything a copy of the store's files would take along. */
  readonly file: { readonly path: string };
  /** The Cassandra journal: its own keyspace; contactPoints [] means the store's cluster and connection settings. */
  readonly cassandra: {
    readonly keyspace: string;
    readonly contactPoints: readonly string[];
    readonly replication: Readonly<Record<string, number>>;
    /** The appends' Paxos: "SERIAL" orders them across datacenters; "LOCAL_SERIAL" only within one. */
    readonly serialConsistency: 'SERIAL' | 'LOCAL_SERIAL';
  };
  /** "auto": serve replays the journal itself when its store is behind; "manual": it waits for `padlock journal replay`. */
  readonly replay: 'auto' | 'manual';
  /** How often a server compares its store's applied position with the journal. */
  readonly checkIntervalMs: number;
}

export interface ListenConfig {
  readonly host: string;
  readonly port: number;
  /** HTTPS instead of plaintext HTTP; required off loopback unless insecurePlaintextOffLoopback. */
  readonly tls?: TlsConfig;
  /** Serve plaintext HTTP on an address that is not loopback: credentials and keys cross the network in the clear. */
  readonly insecurePlaintextOffLoopback: boolean;
}

export interface TlsConfig {
  /** PEM: the server's certificate, then any intermediates. */
  readonly certFile: string;
  /** PEM: its private key, readable by the owner only (mode 0600 or 0400). */
  readonly keyFile: string;
  /** The oldest protocol version accepted; TLS 1.3 is always the newest. */
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** Mutual TLS: client certificates checked against this CA and bound to a service. */
  readonly clientCertificates?: ClientCertificatesConfig;
}

export interface ClientCertificatesConfig {
  /** PEM: the CA (or CAs) that issue client certificates; the system's CAs are not trusted for clients. */
  readonly caFile: string;
  /**
   * optional: a client may present a certificate; one that does is bound to its service.
   * required: every client presents one, and its bearer credential must name the same service.
   * certificate-only: every client presents one, and it authenticates on its own (a bearer
   * credential, if sent, must still be valid and name the same service).
   */
  readonly mode: 'optional' | 'required' | 'certificate-only';
}

export interface CassandraConfig {
  readonly contactPoints: readonly string[];
  readonly localDataCenter: string;
  readonly keyspace: string;
  readonly replication: Readonly<Record<string, number>>;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  /**
   * A keychain read not answered after this many ms is sent to a second replica as well, and the
   * first answer wins (a hedge, not a retry: nothing is sent again after a failure). 0: never.
   */
  readonly hedgeAfterMs: number;
  /**
   * The share of keychain reads that may be hedged over time (a token bucket of 100 hedges refilled
   * by this much per read); default 0.1. A cluster slow everywhere is not asked everything twice.
   */
  readonly hedgeShare?: number;
  /**
   * The Paxos of holds and schedules (placed, released; filed, claimed, finished, cancelled), and the
   * consistency of the reads that decide on them: "SERIAL" (the default) across every datacenter, so two
   * deployment groups in different DCs never both claim one schedule and a hold placed in one DC is
   * seen by a shred in another; "LOCAL_SERIAL" only when a single datacenter ever runs the lifecycle.
   */
  readonly lifecycleSerialConsistency?: 'SERIAL' | 'LOCAL_SERIAL';
  /** Create the keyspace and tables at start when missing. */
  readonly createSchema: boolean;
  /** Client-to-node TLS; absent: plaintext (docs/operations.md, "Cassandra over TLS"). */
  readonly tls?: CassandraTlsConfig;
  /** Password login (PasswordAuthenticator); absent: none. */
  readonly auth?: CassandraAuthConfig;
}

export interface CassandraTlsConfig {
  /** PEM CA certificates the nodes' certificates must chain to (the system CAs are not trusted). */
  readonly caFile: string;
  /** PEM client certificate and its unencrypted key (mode 0600), for nodes that require one. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** The name the nodes' certificates must carry; default: the address connected to (an IP SAN). */
  readonly serverName?: string;
  /** Check the name in the node's certificate (default true); the chain is checked either way. */
  readonly verifyServerName: boolean;
}

export interface CassandraAuthConfig {
  readonly username: string;
  /** A file holding the password on one line, readable by its owner only; never the password inline. */
  readonly passwordFile: string;
}

export interface MemcachedConfig {
  readonly servers: readonly string[];
  readonly timeoutMs: number;
  readonly downMs: number;
  readonly keyPrefix: string;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' } as const;
const POSITIVE = { type: 'integer', minimum: 1 } as const;
const PATH = { type: 'string', minLength: 1 } as const;

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['keks'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Where the HTTP API listens, and how.',
      properties: {
        host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'Address to listen on.' },
        port: {
          type: 'integer',
          minimum: 0,
          maximum: 65535,
          default: 8700,
          description: 'TCP port; 0 picks a free one (tests).',
        },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['certFile', 'keyFile'],
          description:
            'HTTPS instead of plaintext HTTP; required off loopback unless insecurePlaintextOffLoopback. Files are reloaded on SIGHUP.',
          properties: {
            certFile: {
              type: 'string',
              minLength: 1,
              description: "PEM: the server's certificate, then any intermediates. Relative to the config file.",
            },
            keyFile: {
              type: 'string',
              minLength: 1,
              description: 'PEM: its private key, readable by the owner only (mode 0600 or 0400).',
            },
            minVersion: {
              enum: ['TLSv1.2', 'TLSv1.3'],
              default: 'TLSv1.3',
              description: 'The oldest protocol version accepted; TLS 1.3 is always the newest.',
            },
            clientCertificates: {
              type: 'object',
              additionalProperties: false,
              required: ['caFile'],
              description: 'Mutual TLS: client certificates checked against a CA and bound to a service.',
              properties: {
                caFile: {
                  type: 'string',
                  minLength: 1,
                  description: "PEM: the CA (or CAs) that issue client certificates; the system's CAs are not trusted.",
                },
                mode: {
                  enum: ['optional', 'required', 'certificate-only'],
                  default: 'required',
                  description:
                    'optional: a certificate presented is bound to its service. required: every client presents one and its bearer credential names the same service. certificate-only: the certificate authenticates on its own.',
                },
              },
            },
          },
        },
        insecurePlaintextOffLoopback: {
          type: 'boolean',
          default: false,
          description:
            'Serve plaintext HTTP on an address that is not loopback: credentials and keys cross the network in the clear.',
        },
      },
    },
    categories: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$' },
      default: ['profile', 'payments', 'advertising'],
      description: 'The data categories: every keychain has one root key per category.',
    },
    keks: {
      type: 'object',
      additionalProperties: false,
      required: ['active', 'files'],
      description: 'Key-encryption keys: 32-byte files (mode 0600) that wrap every root key in the store.',
      properties: {
        active: { ...ID, description: 'The kid new root keys are wrapped with; must be one of files.' },
        files: {
          type: 'array',
          minItems: 1,
          description: 'Every KEK this process may unwrap with: the active one and those being rotated away from.',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['kid', 'path'],
            properties: {
              kid: { ...ID, description: "The KEK's id, stored beside every root key it wraps." },
              path: {
                type: 'string',
                minLength: 1,
                description: 'The file holding its 32 bytes, readable by the owner only. Relative to the config file.',
              },
            },
          },
        },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Where keychains, services and audit entries are kept.',
      properties: {
        kind: {
          enum: ['sqlite', 'cassandra'],
          default: 'sqlite',
          description: 'sqlite: one file on one machine. cassandra: a cluster, for several processes and regions.',
        },
        sqlite: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The SQLite store (store.kind "sqlite").',
          properties: {
            path: {
              type: 'string',
              minLength: 1,
              default: 'padlock.db',
              description: 'The database file, relative to the config file; ":memory:" for tests.',
            },
            busyTimeoutMs: {
              type: 'integer',
              minimum: 0,
              maximum: 10000,
              default: 200,
              description: 'How long a write waits for another process holding the database lock.',
            },
            cacheMiB: {
              type: 'integer',
              minimum: 1,
              maximum: 65536,
              default: 64,
              description: "SQLite's page cache per connection.",
            },
          },
        },
        cassandra: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The Cassandra store (store.kind "cassandra"); docs/operations.md.',
          properties: {
            contactPoints: {
              type: 'array',
              items: { type: 'string', minLength: 1 },
              default: ['127.0.0.1:9042'],
              description: 'host:port of some nodes; the driver discovers the rest.',
            },
            localDataCenter: {
              type: 'string',
              minLength: 1,
              default: 'dc1',
              description: "This process's region: requests go to replicas in this datacenter only.",
            },
            keyspace: {
              type: 'string',
              pattern: '^[a-z][a-z0-9_]{0,47}$',
              default: 'padlock',
              description: 'The keyspace holding the tables.',
            },
            replication: {
              type: 'object',
              additionalProperties: { type: 'integer', minimum: 1, maximum: 9 },
              minProperties: 1,
              default: { dc1: 1 },
              description:
                'Replicas per datacenter (NetworkTopologyStrategy) when the keyspace is created; must name localDataCenter.',
            },
            connectTimeoutMs: {
              ...POSITIVE,
              maximum: 60000,
              default: 5000,
              description: 'Connecting to a node.',
            },
            readTimeoutMs: {
              ...POSITIVE,
              maximum: 60000,
              default: 200,
              description: "A node's answer to one request; no retry after it.",
            },
            hedgeAfterMs: {
              type: 'integer',
              minimum: 0,
              maximum: 60000,
              default: 8,
              description:
                'A keychain read not answered after this long is sent to a second replica too, and the first answer wins. 0: never.',
            },
            hedgeShare: {
              type: 'number',
              exclusiveMinimum: 0,
              maximum: 1,
              default: 0.1,
              description:
                'The share of keychain reads (above 0, at most 1) that may be hedged over time, plus a burst of 100: a cluster that is slow everywhere is not asked everything twice.',
            },
            lifecycleSerialConsistency: {
              enum: ['SERIAL', 'LOCAL_SERIAL'],
              default: 'SERIAL',
              description:
                "The Paxos of holds and schedules, and the reads that decide on them (holds before a shred, receipts before a schedule's takeover: QUORUM). SERIAL: across every datacenter, so two DCs' schedulers never both execute one schedule and a hold placed in one DC stops a shred in another, at the cost of a cross-DC round trip for each and of holds, schedules and shreds refused in a DC cut off from the others' quorum. LOCAL_SERIAL only when a single datacenter ever runs the lifecycle.",
            },
            createSchema: {
              type: 'boolean',
              default: true,
              description: 'Create the keyspace and tables at start when missing.',
            },
            tls: {
              type: 'object',
              additionalProperties: false,
              required: ['caFile'],
              description: 'Client-to-node TLS; absent: plaintext (docs/operations.md, "Cassandra over TLS").',
              properties: {
                caFile: {
                  ...PATH,
                  description:
                    "PEM CA certificates the nodes' certificates must chain to (the system CAs are not trusted).",
                },
                certFile: { ...PATH, description: 'PEM client certificate, for nodes that require one; with keyFile.' },
                keyFile: { ...PATH, description: 'Its unencrypted private key (mode 0600); with certFile.' },
                serverName: {
                  type: 'string',
                  pattern: '^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$',
                  description:
                    "The name the nodes' certificates must carry; absent: the address connected to (an IP SAN).",
                },
                verifyServerName: {
                  type: 'boolean',
                  default: true,
                  description: "Check the name in the node's certificate; the chain is checked either way.",
                },
              },
            },
            auth: {
              type: 'object',
              additionalProperties: false,
              required: ['username', 'passwordFile'],
              description: 'Password login (PasswordAuthenticator); absent: none.',
              properties: {
                username: {
                  type: 'string',
                  pattern: '^[^\\x00-\\x1f\\x7f]{1,256}$',
                  description: 'The Cassandra role.',
                },
                passwordFile: {
                  ...PATH,
                  description: 'A file holding the password on one line, owner-only; never the password inline.',
                },
              },
            },
          },
        },
      },
    },
    maxStalenessSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 86400,
      default: 30,
      description:
        'The deletion bound: how long a shredded key may still be served by any cache, in any group or client.',
    },
    cache: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The caches in front of the store; neither serves a row past maxStalenessSeconds.',
      properties: {
        l1: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The in-process cache of unwrapped keychains.',
          properties: {
            enabled: { type: 'boolean', default: true, description: 'Use it.' },
            maxEntries: {
              ...POSITIVE,
              default: 100000,
              description: 'Keychains held; the least recently used go first.',
            },
          },
        },
        memcached: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: "The group's shared cache of wrapped rows (docs/memcached.md).",
          properties: {
            servers: {
              type: 'array',
              items: { type: 'string', pattern: '^[^\\s:]+:[0-9]{1,5}$' },
              default: [],
              description: 'host:port of each server; [] turns memcached off.',
            },
            timeoutMs: {
              ...POSITIVE,
              maximum: 10000,
              default: 10,
              description: 'An answer not in by then is a miss; the store is read instead.',
            },
            downMs: {
              ...POSITIVE,
              maximum: 60000,
              default: 1000,
              description: 'A server that failed is skipped this long before it is tried again.',
            },
            keyPrefix: {
              type: 'string',
              pattern: '^[\\x21-\\x7e]{0,64}$',
              default: 'padlock:',
              description: 'Prefix of every memcached key; give each deployment group its own.',
            },
          },
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'What one process accepts before it answers 413 or 503 (docs/operations.md, "Limits").',
      properties: {
        maxBatch: { ...POSITIVE, maximum: 10000, default: 500, description: 'User ids in one batch-get.' },
        maxBodyBytes: {
          ...POSITIVE,
          maximum: 16777216,
          default: 65536,
          description: 'Bytes in one request body (413 above).',
        },
        maxInFlight: { ...POSITIVE, default: 1024, description: 'Requests handled at once (503 OVERLOADED above).' },
        deadlineMs: {
          ...POSITIVE,
          maximum: 60000,
          default: 500,
          description: "A request's deadline (503 DEADLINE_EXCEEDED past it); an event loop behind half of it sheds.",
        },
        maxConnections: {
          ...POSITIVE,
          maximum: 1000000,
          default: 10000,
          description: 'Open client connections; one more is answered 503 and closed as it arrives.',
        },
        maxUnfinishedRequestBytes: {
          type: 'integer',
          minimum: 65536,
          default: 134217728,
          description:
            'Bytes all unfinished requests may hold together (partial heads, bodies, pipelined bytes); past it 503.',
        },
      },
    },
    services: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The services (callers) and their credentials, read from the store.',
      properties: {
        refreshSeconds: {
          ...POSITIVE,
          maximum: 3600,
          default: 5,
          description: 'How often they are re-read: a new or revoked credential takes effect within this.',
        },
      },
    },
    scheduler: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Scheduled shreds: every node runs the scheduler; a claim in the store picks one.',
      properties: {
        enabled: { type: 'boolean', default: true, description: 'Run the scheduler in this process.' },
        intervalMs: {
          type: 'integer',
          minimum: 50,
          maximum: 3600000,
          default: 1000,
          description: 'How often due schedules are looked for; with the execution time, the bound after executeAt.',
        },
        leaseMs: {
          type: 'integer',
          minimum: 1000,
          maximum: 3600000,
          default: 30000,
          description: 'How long a claim holds; a node killed mid-execution is taken over after it.',
        },
        batch: { ...POSITIVE, maximum: 100000, default: 500, description: 'Schedules claimed per pass.' },
        concurrency: { ...POSITIVE, maximum: 1024, default: 16, description: 'Schedules executed at once.' },
        maxPerSecond: {
          type: 'integer',
          minimum: 0,
          maximum: 100000,
          default: 0,
          description:
            'At most this many executions started per second by this process, spaced evenly (0: no cap). The event loop is yielded between executions either way.',
        },
        ownProcess: {
          type: 'boolean',
          default: true,
          description:
            'True: `padlock serve` runs the scheduler in a child process of its own (`padlock scheduler`), so its synchronous store work, fsyncs and signing never hold the serving loop (the default). False runs it on the serving loop, yielding between executions. Library callers (startPadlock) always run it in-process.',
        },
      },
    },
    journal: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The shred journal (docs/operations.md, "Backups and the shred journal").',
      properties: {
        kind: {
          enum: ['file', 'cassandra'],
          default: 'file',
          description: 'file: for SQLite deployments. cassandra: a keyspace of its own.',
        },
        file: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The file journal (journal.kind "file").',
          properties: {
            path: {
              ...PATH,
              default: 'shred-journal/padlock-shreds.journal',
              description:
                "Relative to the config file; never the store's file nor named after it, best on another volume.",
            },
          },
        },
        cassandra: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The Cassandra journal (journal.kind "cassandra").',
          properties: {
            keyspace: {
              type: 'string',
              pattern: '^[a-z][a-z0-9_]{0,47}$',
              default: 'padlock_journal',
              description: "Its keyspace; must differ from the store's: a snapshot of the store must not hold it.",
            },
            contactPoints: {
              type: 'array',
              items: { type: 'string', minLength: 1 },
              default: [],
              description: "Another cluster's contact points; []: the store's cluster and connection settings.",
            },
            replication: {
              type: 'object',
              additionalProperties: { type: 'integer', minimum: 1, maximum: 9 },
              minProperties: 1,
              default: { dc1: 1 },
              description: "Replicas per datacenter, as the store's; give it the same.",
            },
            serialConsistency: {
              enum: ['SERIAL', 'LOCAL_SERIAL'],
              default: 'SERIAL',
              description:
                "The Paxos consistency of appends and of the head read before each. SERIAL orders appends from every datacenter (two DCs at LOCAL_SERIAL can both write one position), at the cost of a cross-DC round trip per shred and of shreds refused (503 JOURNAL_UNAVAILABLE) in a DC cut off from the others' quorum. LOCAL_SERIAL only when a single datacenter ever shreds.",
            },
          },
        },
        replay: {
          enum: ['auto', 'manual'],
          default: 'auto',
          description:
            'auto: serve replays the journal itself when its store is behind. manual: it waits for `padlock journal replay`.',
        },
        checkIntervalMs: {
          type: 'integer',
          minimum: 100,
          maximum: 60000,
          default: 1000,
          description: "How often a server compares its store's applied position with the journal.",
        },
      },
    },
    console: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The operator console at /console/ (docs/console.md).',
      properties: {
        enabled: {
          type: 'boolean',
          default: false,
          description: 'Serve the console and its session routes; `padlock dev` turns it on.',
        },
        sessionMinutes: {
          ...POSITIVE,
          maximum: 1440,
          default: 30,
          description: "A console session's life from sign-in; there is no renewal: sign in again.",
        },
        maxSessions: {
          ...POSITIVE,
          maximum: 100000,
          default: 1000,
          description: 'Console sessions one server keeps at once; the oldest is dropped past it.',
        },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The audit log (docs/deleting-a-user.md).',
      properties: {
        checkpointSeconds: {
          ...POSITIVE,
          maximum: 86400,
          default: 60,
          description: "A signed checkpoint of this process's chain head at most this often, and at stop.",
        },
      },
    },
    drainTimeoutMs: {
      type: 'integer',
      minimum: 0,
      maximum: 600000,
      default: 10000,
      description: 'On SIGTERM: /readyz goes 503, in-flight requests finish, and the process exits after this at most.',
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'JSON log lines on stdout.',
      properties: {
        level: {
          enum: ['debug', 'info', 'warn', 'error'],
          default: 'info',
          description: 'The least severe level written.',
        },
        requests: {
          type: 'boolean',
          default: false,
          description: 'One info line per request (method, route, status, milliseconds).',
        },
      },
    },
    tracing: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'OpenTelemetry traces (docs/operations.md, "Tracing"); the SDK is loaded only when enabled.',
      properties: {
        enabled: {
          type: 'boolean',
          default: false,
          description: 'Export spans; off costs one boolean test per request.',
        },
        endpoint: {
          type: 'string',
          pattern: '^https?://[^\\s]{1,2000}$',
          default: 'http://127.0.0.1:4318/v1/traces',
          description: 'The OTLP/HTTP traces endpoint spans are sent to.',
        },
        serviceName: {
          type: 'string',
          minLength: 1,
          maxLength: 128,
          default: 'padlock',
          description: 'The `service.name` resource attribute of every span.',
        },
        sampleRatio: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          default: 1,
          description: "Share of new traces sampled; a request carrying `traceparent` follows its caller's decision.",
        },
        exportDelayMs: {
          type: 'integer',
          minimum: 10,
          maximum: 60000,
          default: 5000,
          description: 'Spans are batched and exported this often.',
        },
      },
    },
  },
} as const;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const validate = new Ajv({ useDefaults: true, allErrors: true, strict: true }).compile(CONFIG_SCHEMA);

function describe(error: ErrorObject): string {
  const at = error.instancePath === '' ? 'config' : `config${error.instancePath.replaceAll('/', '.')}`;
  if (error.keyword === 'additionalProperties') {
    const key = String(error.params['additionalProperty']);
    if (at === 'config.store.cassandra.auth' && key === 'password') {
      return `${at}: unknown setting "password": the password is read from passwordFile (mode 0600), never from the config`;
    }
    return `${at}: unknown setting "${key}"`;
  }
  if (error.keyword === 'enum') {
    return `${at}: must be one of ${(error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${at}: ${error.message ?? 'is invalid'}`;
}

/**
 * Validates a parsed config object, fills in defaults, resolves relative paths
 * against `baseDir`, and returns it deeply frozen.
 *
 * @example
 *   const config = parseConfig(JSON.parse(text), '/etc/padlock');
 */
export function parseConfig(raw: unknown, baseDir: string): PadlockConfig {
  const copy: unknown = structuredClone(raw);
  if (!validate(copy)) {
    throw new ConfigError(`invalid configuration:\n  ${(validate.errors ?? []).map(describe).join('\n  ')}`);
  }
  const config = copy as unknown as PadlockConfig;
  const problems: string[] = [];
  if (!config.keks.files.some((f) => f.kid === config.keks.active)) {
    problems.push(`config.keks.active: "${config.keks.active}" is not the kid of any entry in config.keks.files`);
  }
  const kids = config.keks.files.map((f) => f.kid);
  if (new Set(kids).size !== kids.length) problems.push('config.keks.files: two entries have the same kid');
  if (config.store.kind === 'cassandra') {
    if (config.store.cassandra.contactPoints.length === 0) {
      problems.push('config.store.cassandra.contactPoints: at least one contact point is required');
    }
    if (!(config.store.cassandra.localDataCenter in config.store.cassandra.replication)) {
      problems.push('config.store.cassandra.replication: must name the local datacenter');
    }
    const tls = config.store.cassandra.tls;
    if (tls !== undefined && (tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      problems.push('config.store.cassandra.tls: certFile and keyFile go together');
    }
    if (tls?.serverName !== undefined && !tls.verifyServerName) {
      problems.push('config.store.cassandra.tls: serverName has no effect with verifyServerName false');
    }
  }
  const at = (path: string): string => (isAbsolute(path) ? path : resolve(baseDir, path));
  if (config.journal.kind === 'file' && config.store.kind === 'sqlite' && config.store.sqlite.path !== ':memory:') {
    const journal = at(config.journal.file.path);
    const store = at(config.store.sqlite.path);
    // SQLite's own files are the store's name plus -wal, -shm, -journal: a copy of "padlock.db*" takes them all.
    if (journal === store || journal.startsWith(store)) {
      problems.push(
        `config.journal.file.path: ${journal} is the store's file or named after it (${store}*); a backup of the store would take the journal with it`,
      );
    }
  }
  if (config.journal.kind === 'cassandra') {
    const sameCluster = config.journal.cassandra.contactPoints.length === 0;
    if (config.store.kind !== 'cassandra' && sameCluster) {
      problems.push('config.journal.cassandra.contactPoints: required when the store is not Cassandra');
    }
    if (
      config.store.kind === 'cassandra' &&
      sameCluster &&
      config.journal.cassandra.keyspace === config.store.cassandra.keyspace
    ) {
      problems.push(
        "config.journal.cassandra.keyspace: must differ from the store's keyspace: a snapshot of the store must not hold the journal",
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  const tls = config.listen.tls;
  const resolved = {
    ...config,
    listen:
      tls === undefined
        ? config.listen
        : {
            ...config.listen,
            tls: {
              ...tls,
              certFile: at(tls.certFile),
              keyFile: at(tls.keyFile),
              ...(tls.clientCertificates === undefined
                ? {}
                : { clientCertificates: { ...tls.clientCertificates, caFile: at(tls.clientCertificates.caFile) } }),
            },
          },
    keks: { ...config.keks, files: config.keks.files.map((f) => ({ ...f, path: at(f.path) })) },
    store: {
      ...config.store,
      sqlite: {
        ...config.store.sqlite,
        path: config.store.sqlite.path === ':memory:' ? ':memory:' : at(config.store.sqlite.path),
      },
      cassandra: resolveCassandraPaths(config.store.cassandra, at),
    },
    journal: { ...config.journal, file: { path: at(config.journal.file.path) } },
  };
  return deepFreeze(resolved);
}

function resolveCassandraPaths(cassandra: CassandraConfig, at: (path: string) => string): CassandraConfig {
  const { tls, auth } = cassandra;
  return {
    ...cassandra,
    ...(tls === undefined
      ? {}
      : {
          tls: {
            ...tls,
            caFile: at(tls.caFile),
            ...(tls.certFile === undefined ? {} : { certFile: at(tls.certFile) }),
            ...(tls.keyFile === undefined ? {} : { keyFile: at(tls.keyFile) }),
          },
        }),
    ...(auth === undefined ? {} : { auth: { ...auth, passwordFile: at(auth.passwordFile) } }),
  };
}

/** Reads, parses and validates a JSON config file. */
export function loadConfig(path: string): PadlockConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  return parseConfig(raw, dirname(resolve(path)));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
