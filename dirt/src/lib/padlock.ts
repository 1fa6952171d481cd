import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureCommand, rssMiB, signalChild, spawnChild, stopChild, type Child } from './children.js';
import { call, CallError, type Target } from './http.js';
import { metricValue, parsePrometheusText } from '../../../scripts/testing/prometheus-text.mjs';

/** The sum of a metric's samples whose labels include `labels`: the one Prometheus-text reader. */
export const metricSum = metricValue;

/*
 * Padlock under test: real processes of the repository's CLI
 * (`node packages/cli/dist/main.js serve -c <config>`), configured by files
 * the suite writes, with services registered through the CLI too. Config
 * files end in .cfg (they are JSON) so that the formatter's checks skip the
 * scratch directory.
 */

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO, 'packages', 'cli', 'dist', 'main.js');
export const CATEGORIES = ['profile', 'payments', 'advertising'] as const;

export type StoreSpec =
  | { readonly kind: 'sqlite'; readonly path: string }
  | {
      readonly kind: 'cassandra';
      readonly contactPoints: readonly string[];
      readonly localDataCenter: string;
      readonly keyspace: string;
      readonly replication: Readonly<Record<string, number>>;
      readonly readTimeoutMs?: number;
      readonly connectTimeoutMs?: number;
    };

export interface PadlockSpec {
  readonly name: string;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly kekFile: string;
  readonly store: StoreSpec;
  readonly memcached?: {
    readonly servers: readonly string[];
    readonly keyPrefix: string;
    readonly timeoutMs?: number;
    readonly downMs?: number;
  };
  readonly l1?: { readonly enabled: boolean; readonly maxEntries: number };
  readonly limits?: {
    readonly maxBatch?: number;
    readonly maxBodyBytes?: number;
    readonly maxInFlight?: number;
    readonly deadlineMs?: number;
  };
  readonly maxStalenessSeconds: number;
  /** The shred journal file; default: shred-journal/padlock-shreds.journal beside the config. */
  readonly journalPath?: string;
  /**
   * The Cassandra shred journal (journal.kind "cassandra") in a keyspace of its own on the store's
   * cluster, instead of the file: what deployment groups sharing one store need (each group's file
   * would be a journal of its own, and one file shared by two groups is not a deployment).
   */
  readonly cassandraJournal?: { readonly keyspace: string; readonly replication: Readonly<Record<string, number>> };
  readonly drainTimeoutMs?: number;
  readonly logRequests?: boolean;
  /** Scheduled shreds: how long a claim lasts before another node may take it over (default 30 s). */
  readonly scheduler?: { readonly leaseMs?: number };
}

/** Writes a fresh 32-byte KEK file, mode 0600. */
export function writeKek(path: string): void {
  writeFileSync(path, randomBytes(32), { mode: 0o600, flag: 'wx' });
}

export function configJson(spec: PadlockSpec): Record<string, unknown> {
  const store =
    spec.store.kind === 'sqlite'
      ? { kind: 'sqlite', sqlite: { path: spec.store.path } }
      : {
          kind: 'cassandra',
          cassandra: {
            contactPoints: spec.store.contactPoints,
            localDataCenter: spec.store.localDataCenter,
            keyspace: spec.store.keyspace,
            replication: spec.store.replication,
            ...(spec.store.readTimeoutMs === undefined ? {} : { readTimeoutMs: spec.store.readTimeoutMs }),
            ...(spec.store.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: spec.store.connectTimeoutMs }),
          },
        };
  return {
    listen: { host: spec.host, port: spec.port },
    categories: [...CATEGORIES],
    keks: { active: 'kek-dirt', files: [{ kid: 'kek-dirt', path: spec.kekFile }] },
    store,
    maxStalenessSeconds: spec.maxStalenessSeconds,
    cache: {
      l1: spec.l1 ?? { enabled: true, maxEntries: 100000 },
      memcached:
        spec.memcached === undefined
          ? { servers: [] }
          : {
              servers: spec.memcached.servers,
              keyPrefix: spec.memcached.keyPrefix,
              ...(spec.memcached.timeoutMs === undefined ? {} : { timeoutMs: spec.memcached.timeoutMs }),
              ...(spec.memcached.downMs === undefined ? {} : { downMs: spec.memcached.downMs }),
            },
    },
    limits: spec.limits ?? {},
    services: { refreshSeconds: 5 },
    ...(spec.cassandraJournal !== undefined
      ? { journal: { kind: 'cassandra', cassandra: spec.cassandraJournal } }
      : spec.journalPath === undefined
        ? {}
        : { journal: { file: { path: spec.journalPath } } }),
    ...(spec.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: spec.drainTimeoutMs }),
    ...schedulerJson(spec),
    log: { level: 'info', requests: spec.logRequests ?? false },
  };
}

/**
 * The scheduler's settings: the scenario's, and DIRT_SCHEDULER_OWN_PROCESS=true|false for
 * scheduler.ownProcess (unset: the server's default), to compare the two on the same scenarios.
 */
function schedulerJson(spec: PadlockSpec): { scheduler?: Record<string, unknown> } {
  const own = process.env.DIRT_SCHEDULER_OWN_PROCESS;
  if (own !== undefined && own !== 'true' && own !== 'false') {
    throw new Error(`DIRT_SCHEDULER_OWN_PROCESS is "${own}": true or false`);
  }
  const scheduler = { ...spec.scheduler, ...(own === undefined ? {} : { ownProcess: own === 'true' }) };
  return Object.keys(scheduler).length === 0 ? {} : { scheduler };
}

export class PadlockProcess {
  readonly configFile: string;
  readonly logFile: string;
  readonly target: Target;
  #child: Child | undefined;
  /** How many times it was started. */
  starts = 0;

  constructor(readonly spec: PadlockSpec) {
    this.configFile = join(spec.dir, `${spec.name}.cfg`);
    this.logFile = join(spec.dir, `${spec.name}.log`);
    this.target = { host: spec.host, port: spec.port };
    writeFileSync(this.configFile, `${JSON.stringify(configJson(spec), null, 2)}\n`, { mode: 0o600 });
  }

  get pid(): number | undefined {
    return this.#child === undefined || this.#child.done ? undefined : this.#child.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && !this.#child.done;
  }

  get child(): Child | undefined {
    return this.#child;
  }

  /** Starts the process and waits until /readyz answers 200. */
  async start(timeoutMs = 60000): Promise<void> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    this.starts++;
    // DIRT_GC_LOG=<dir>: every GC of Padlock (in its log) and of the Cassandra nodes (in <dir>).
    const flags = process.env.DIRT_GC_LOG === undefined ? [] : ['--trace-gc'];
    this.#child = spawnChild(this.spec.name, process.execPath, [...flags, CLI, 'serve', '-c', this.configFile], {
      logFile: this.logFile,
    });
    const child = this.#child;
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (child.done) throw new Error(`${this.spec.name} exited during startup; see ${this.logFile}`);
      try {
        const reply = await call(this.target, { method: 'GET', path: '/readyz', timeoutMs: 2000 });
        if (reply.status === 200) return;
        last = `${reply.status} ${reply.body.toString('utf8').slice(0, 300)}`;
      } catch (error) {
        last = error instanceof CallError ? error.label : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${this.spec.name} not ready within ${timeoutMs} ms (last: ${last}); see ${this.logFile}`);
  }

  /** kill -9: no drain, no cleanup. */
  async kill9(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, 'SIGKILL');
  }

  /** Sends SIGTERM and returns at once (the drain runs in the process). */
  sigterm(): boolean {
    return this.#child !== undefined && signalChild(this.#child, 'SIGTERM');
  }

  async exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    return this.#child === undefined ? undefined : this.#child.exited;
  }

  async stop(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, 'SIGTERM', 15000);
  }

  async rss(): Promise<number> {
    const pid = this.pid;
    return pid === undefined ? 0 : rssMiB(pid);
  }

  /**
   * Registers a service through the CLI on this config's store; returns its credential. A fresh
   * cluster can time the first writes out: then, since the service may exist already (the write
   * that timed out may have applied), a credential is added to it instead, or the create is tried
   * again.
   */
  async createService(
    serviceId: string,
    rights: { read: readonly string[]; create?: boolean; rotate?: boolean; shred?: boolean; hold?: boolean },
  ): Promise<string> {
    const args = [CLI, 'service', 'create', serviceId, '-c', this.configFile];
    if (rights.read.length > 0) args.push('--read', rights.read.join(','));
    if (rights.create === true) args.push('--create');
    if (rights.rotate === true) args.push('--rotate');
    if (rights.shred === true) args.push('--shred');
    if (rights.hold === true) args.push('--hold');
    const cli = async (cliArgs: string[]): Promise<string> => {
      const out = await captureCommand(process.execPath, cliArgs, {
        logFile: join(this.spec.dir, 'cli.log'),
        timeoutMs: 120000,
      });
      const credential = (JSON.parse(out) as { credential?: unknown }).credential;
      if (typeof credential !== 'string') throw new Error(`${cliArgs.slice(1, 4).join(' ')} printed no credential`);
      return credential;
    };
    for (let attempt = 1; ; attempt++) {
      try {
        return await cli(args);
      } catch (error) {
        try {
          return await cli([CLI, 'service', 'credential-add', serviceId, '-c', this.configFile]);
        } catch {
          if (attempt >= 4) throw error;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
    }
  }

  /** GET /metrics as text. */
  async metrics(): Promise<string> {
    const reply = await call(this.target, { method: 'GET', path: '/metrics', timeoutMs: 5000 });
    return reply.body.toString('utf8');
  }
}

/** The samples of one metric summed by the value of one label, e.g. store errors by `op`. */
export function metricByLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const sample of parsePrometheusText(text).samples) {
    const value = sample.labels[label];
    if (sample.name === name && value !== undefined) out[value] = (out[value] ?? 0) + sample.value;
  }
  return out;
}

/** Key store call failures by operation (padlock_store_errors_total), as one report note. */
export async function storeErrorsNote(process: PadlockProcess): Promise<string> {
  const text = await process.metrics().catch(() => '');
  let byOp: [string, number][];
  try {
    byOp = Object.entries(metricByLabel(text, 'padlock_store_errors_total', 'op')).filter(([, n]) => n > 0);
  } catch {
    return 'store errors by operation: /metrics unreadable';
  }
  return byOp.length === 0
    ? 'store errors by operation: none'
    : `store errors by operation: ${byOp.map(([op, n]) => `${op} ${n}`).join(', ')}`;
}
