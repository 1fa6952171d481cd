import { Ajv, type ErrorObject } from 'ajv';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

/*
 * One schema, with every default in it, validated once at start and frozen.
 * Unknown keys are an error: a misspelt setting must not silently fall back
 * to its default.
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
      properties: {
        host: { type: 'string', minLength: 1, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8700 },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['certFile', 'keyFile'],
          properties: {
            certFile: { type: 'string', minLength: 1 },
            keyFile: { type: 'string', minLength: 1 },
            minVersion: { enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.3' },
            clientCertificates: {
              type: 'object',
              additionalProperties: false,
              required: ['caFile'],
              properties: {
                caFile: { type: 'string', minLength: 1 },
                mode: { enum: ['optional', 'required', 'certificate-only'], default: 'required' },
              },
            },
          },
        },
        insecurePlaintextOffLoopback: { type: 'boolean', default: false },
      },
    },
    categories: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$' },
      default: ['profile', 'payments', 'advertising'],
    },
    keks: {
      type: 'object',
      additionalProperties: false,
      required: ['active', 'files'],
      properties: {
        active: ID,
        files: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['kid', 'path'],
            properties: { kid: ID, path: { type: 'string', minLength: 1 } },
          },
        },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        kind: { enum: ['sqlite', 'cassandra'], default: 'sqlite' },
        sqlite: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            path: { type: 'string', minLength: 1, default: 'padlock.db' },
            busyTimeoutMs: { type: 'integer', minimum: 0, maximum: 10000, default: 200 },
            cacheMiB: { type: 'integer', minimum: 1, maximum: 65536, default: 64 },
          },
        },
        cassandra: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            contactPoints: { type: 'array', items: { type: 'string', minLength: 1 }, default: ['127.0.0.1:9042'] },
            localDataCenter: { type: 'string', minLength: 1, default: 'dc1' },
            keyspace: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,47}$', default: 'padlock' },
            replication: {
              type: 'object',
              additionalProperties: { type: 'integer', minimum: 1, maximum: 9 },
              minProperties: 1,
              default: { dc1: 1 },
            },
            connectTimeoutMs: { ...POSITIVE, maximum: 60000, default: 5000 },
            readTimeoutMs: { ...POSITIVE, maximum: 60000, default: 200 },
            hedgeAfterMs: { type: 'integer', minimum: 0, maximum: 60000, default: 8 },
            createSchema: { type: 'boolean', default: true },
            tls: {
              type: 'object',
              additionalProperties: false,
              required: ['caFile'],
              properties: {
                caFile: PATH,
                certFile: PATH,
                keyFile: PATH,
                serverName: { type: 'string', pattern: '^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$' },
                verifyServerName: { type: 'boolean', default: true },
              },
            },
            auth: {
              type: 'object',
              additionalProperties: false,
              required: ['username', 'passwordFile'],
              properties: {
                username: { type: 'string', pattern: '^[^\\x00-\\x1f\\x7f]{1,256}$' },
                passwordFile: PATH,
              },
            },
          },
        },
      },
    },
    maxStalenessSeconds: { type: 'integer', minimum: 1, maximum: 86400, default: 30 },
    cache: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        l1: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: true },
            maxEntries: { ...POSITIVE, default: 100000 },
          },
        },
        memcached: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            servers: { type: 'array', items: { type: 'string', pattern: '^[^\\s:]+:[0-9]{1,5}$' }, default: [] },
            timeoutMs: { ...POSITIVE, maximum: 10000, default: 10 },
            downMs: { ...POSITIVE, maximum: 60000, default: 1000 },
            keyPrefix: { type: 'string', pattern: '^[\\x21-\\x7e]{0,64}$', default: 'padlock:' },
          },
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxBatch: { ...POSITIVE, maximum: 10000, default: 500 },
        maxBodyBytes: { ...POSITIVE, maximum: 16777216, default: 65536 },
        maxInFlight: { ...POSITIVE, default: 1024 },
        deadlineMs: { ...POSITIVE, maximum: 60000, default: 500 },
        maxConnections: { ...POSITIVE, maximum: 1000000, default: 10000 },
        maxUnfinishedRequestBytes: { type: 'integer', minimum: 65536, default: 134217728 },
      },
    },
    services: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { refreshSeconds: { ...POSITIVE, maximum: 3600, default: 5 } },
    },
    scheduler: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: true },
        intervalMs: { type: 'integer', minimum: 50, maximum: 3600000, default: 1000 },
        leaseMs: { type: 'integer', minimum: 1000, maximum: 3600000, default: 30000 },
        batch: { ...POSITIVE, maximum: 100000, default: 500 },
        concurrency: { ...POSITIVE, maximum: 1024, default: 16 },
      },
    },
    journal: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        kind: { enum: ['file', 'cassandra'], default: 'file' },
        file: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: { path: { ...PATH, default: 'shred-journal/padlock-shreds.journal' } },
        },
        cassandra: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            keyspace: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,47}$', default: 'padlock_journal' },
            contactPoints: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
            replication: {
              type: 'object',
              additionalProperties: { type: 'integer', minimum: 1, maximum: 9 },
              minProperties: 1,
              default: { dc1: 1 },
            },
          },
        },
        replay: { enum: ['auto', 'manual'], default: 'auto' },
        checkIntervalMs: { type: 'integer', minimum: 100, maximum: 60000, default: 1000 },
      },
    },
    console: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: false },
        sessionMinutes: { ...POSITIVE, maximum: 1440, default: 30 },
        maxSessions: { ...POSITIVE, maximum: 100000, default: 1000 },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { checkpointSeconds: { ...POSITIVE, maximum: 86400, default: 60 } },
    },
    drainTimeoutMs: { type: 'integer', minimum: 0, maximum: 600000, default: 10000 },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['debug', 'info', 'warn', 'error'], default: 'info' },
        requests: { type: 'boolean', default: false },
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
