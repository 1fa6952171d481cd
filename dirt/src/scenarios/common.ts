import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Agent } from 'node:http';
import { call, newAgent, type Target } from '../lib/http.js';
import { OpenLoopLoad, type OpRecord } from '../lib/load.js';
import { MemcachedServer } from '../lib/memcached.js';
import { KeyOracle, servedKeys, type KeysJson } from '../lib/oracle.js';
import { CATEGORIES, PadlockProcess, writeKek, type PadlockSpec, type StoreSpec } from '../lib/padlock.js';
import { netHost } from '../lib/net.js';
import type { Context, Timing } from '../lib/scenario.js';
import { KeyWorkload, type Mix } from '../lib/workload.js';

/* Building blocks the scenarios share. */

/** Padlock processes listen here (all of 127.0.0.0/8 is loopback): host .10 of DIRT_NET. */
export const PADLOCK_HOST = netHost(10);
export const ALL_RIGHTS = { read: [...CATEGORIES], create: true, rotate: true, shred: true, hold: true };
/** The deletion bound the suite configures (the default). */
export const MAX_STALENESS_S = 30;
/**
 * store.cassandra.readTimeoutMs for the Cassandra scenarios, under the default 500 ms deadline.
 * The default 200 ms is 13 times the p99 of a dedicated cluster; on this shared two-core machine
 * Cassandra's p99 without any fault is 100-300 ms, so 200 ms would fail requests the deadline
 * still allows. The store-fault scenarios set their own.
 */
export const READ_TIMEOUT_MS = 400;

/** The scenario's KEK file, written once; every group of a scenario shares it (they share the store). */
export function kekFile(ctx: Context): string {
  const path = join(ctx.dir, 'kek.bin');
  if (!existsSync(path)) writeKek(path);
  return path;
}

/** Distinguishes this run's keyspaces from an earlier run's on a kept cluster (DIRT_KEEP_CLUSTER). */
const RUN_TOKEN = Date.now().toString(36);

export function keyspaceOf(ctx: Context): string {
  return `dirt_${ctx.name.replaceAll('-', '_')}_${RUN_TOKEN}`;
}

/** The scenario's keyspace on the suite's cluster, seen from `dc`. */
export function cassandraStore(
  ctx: Context,
  options: { dc?: 'dc1' | 'dc2'; contactPoints?: readonly string[]; readTimeoutMs?: number } = {},
): StoreSpec {
  const cluster = ctx.cluster;
  if (cluster === undefined) throw new Error(`${ctx.name} needs the Cassandra cluster`);
  const dc = options.dc ?? 'dc1';
  return {
    kind: 'cassandra',
    contactPoints: options.contactPoints ?? cluster.nodes.filter((n) => n.dc === dc).map((n) => `${n.address}:9042`),
    localDataCenter: dc,
    keyspace: keyspaceOf(ctx),
    replication: cluster.replication,
    readTimeoutMs: options.readTimeoutMs ?? READ_TIMEOUT_MS,
  };
}

/**
 * The Cassandra shred journal for deployment groups that share the scenario's keyspace: its own
 * keyspace beside the store's, with the store's replication (docs/operations.md). Two groups on one
 * store need one journal they both append to, as a real two-group deployment has; the file journal
 * is one process's (or one host's), and two groups writing one file made the store look behind
 * the journal to each other (STORE_BEHIND_JOURNAL 503s in schedules-node-group-kill).
 */
export function sharedJournal(ctx: Context): NonNullable<PadlockSpec['cassandraJournal']> {
  const cluster = ctx.cluster;
  if (cluster === undefined) throw new Error(`${ctx.name} needs the Cassandra cluster`);
  return { keyspace: `${keyspaceOf(ctx)}_journal`, replication: cluster.replication };
}

/** A Padlock process of this scenario, stopped when the scenario ends; its log joins the leak scan. */
export function padlock(
  ctx: Context,
  spec: Omit<PadlockSpec, 'dir' | 'host' | 'port' | 'kekFile' | 'maxStalenessSeconds'> &
    Partial<Pick<PadlockSpec, 'maxStalenessSeconds' | 'port'>>,
): PadlockProcess {
  const process = new PadlockProcess({
    dir: ctx.dir,
    host: PADLOCK_HOST,
    port: spec.port ?? ctx.port(),
    kekFile: kekFile(ctx),
    maxStalenessSeconds: MAX_STALENESS_S,
    ...spec,
  });
  ctx.run.padlockLogs.add(process.logFile);
  ctx.lifecycle.configFiles.push(process.configFile);
  ctx.lifecycle.targets.push(process.target);
  ctx.defer(() => process.stop());
  return process;
}

export async function memcachedServers(ctx: Context, count: number): Promise<MemcachedServer[]> {
  const servers: MemcachedServer[] = [];
  for (let i = 0; i < count; i++) {
    const server = new MemcachedServer(ctx.memcachedPort(), ctx.dir);
    ctx.defer(() => server.stop());
    await server.start();
    servers.push(server);
  }
  return servers;
}

/**
 * Signs users up before the load (setup, not measured): each create's keys go
 * into the oracle. A create that fails is tried again, a few times.
 */
export async function signUp(
  target: Target,
  credential: string,
  userIds: readonly string[],
  oracle: KeyOracle,
  concurrency = 8,
): Promise<void> {
  const agent = newAgent(concurrency);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < userIds.length) {
      const userId = userIds[next++]!;
      for (let attempt = 1; ; attempt++) {
        const reply = await call(target, {
          method: 'POST',
          path: '/v1/keychains',
          headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
          body: JSON.stringify({ userId }),
          agent,
          timeoutMs: 10000,
        }).catch(() => undefined);
        if (reply !== undefined && (reply.status === 201 || reply.status === 200)) {
          for (const key of servedKeys(JSON.parse(reply.body.toString('utf8')) as KeysJson)) {
            oracle.check(userId, key);
          }
          oracle.state(userId).created = true;
          break;
        }
        if (attempt >= 10) {
          throw new Error(`signing up ${userId} failed: ${reply === undefined ? 'no answer' : reply.status}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  agent.destroy();
}

export function userIds(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

export interface WorkloadSetup {
  readonly targets: readonly Target[];
  readonly credential: string;
  readonly oracle: KeyOracle;
  readonly baseUsers: readonly string[];
  readonly mix: Mix;
  readonly agent?: Agent;
  readonly batchSize?: number;
  readonly timeoutMs?: number;
}

/**
 * The raw-HTTP key workload, round-robin over `targets`, error bodies kept for the leak scan. Each
 * workload of a scenario creates users under a prefix of its own: two workloads counting `-new-0`,
 * `-new-1`... both made one user, and a hold one placed on it stopped the other's schedule there
 * (rightly), which the other's ledger, not knowing the hold, counted as a due schedule not executed.
 */
export function keyWorkload(ctx: Context, setup: WorkloadSetup): KeyWorkload {
  let i = 0;
  const nth = ctx.lifecycle.ledgers.length;
  const agent = setup.agent ?? newAgent(256);
  const workload = new KeyWorkload(
    {
      target: () => setup.targets[i++ % setup.targets.length]!,
      credential: setup.credential,
      agent,
      mix: setup.mix,
      batchSize: setup.batchSize ?? 10,
      timeoutMs: setup.timeoutMs ?? 5000,
      maxStalenessMs: MAX_STALENESS_S * 1000,
      userPrefix: nth === 0 ? `${ctx.name}-new-` : `${ctx.name}-w${nth + 1}-new-`,
      oracle: setup.oracle,
      onErrorBody: (text) => ctx.run.addErrorBody(text),
    },
    setup.baseUsers,
  );
  ctx.lifecycle.ledgers.push(workload.ledger);
  ctx.lifecycle.targets.push(...setup.targets);
  return workload;
}

/** An open-loop load bounded to the scenario's phases plus `slackS` (restarts take time). */
export function openLoad(
  ctx: Context,
  next: () => { kind: string; run: () => Promise<import('../lib/load.js').OpResult> },
  options: { rate?: number; timing?: Timing; slackS?: number; maxOutstanding?: number } = {},
): OpenLoopLoad {
  const timing = options.timing ?? ctx.timing;
  const rate = options.rate ?? timing.rate;
  const seconds = timing.beforeS + timing.duringS + timing.afterS + (options.slackS ?? 120);
  const examples: string[] = [];
  ctx.defer(() => {
    if (examples.length > 0) ctx.log(`first problems:\n  ${examples.join('\n  ')}`);
  });
  return new OpenLoopLoad({
    rate,
    maxOutstanding: options.maxOutstanding ?? 256,
    maxDurationMs: seconds * 1000,
    maxOps: Math.ceil(rate * seconds * 1.5),
    next: () => next(),
    onProblem: (record: OpRecord, detail) => {
      if (examples.length < 10) examples.push(`${record.kind} ${record.label} ${record.outcome} ${detail ?? ''}`);
    },
  });
}

/** Looks every user up once (setup), so that the caches hold them when the load starts. */
export async function warm(
  target: Target,
  credential: string,
  users: readonly string[],
  concurrency = 8,
): Promise<void> {
  const agent = newAgent(concurrency);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < users.length) {
      const batch = users.slice(next, next + 50);
      next += 50;
      await call(target, {
        method: 'POST',
        path: '/v1/keys/batch-get',
        headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userIds: batch }),
        agent,
        timeoutMs: 10000,
      }).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  agent.destroy();
}

/** Hands what the oracle learnt to the run's leak scan. */
export function harvest(ctx: Context, oracle: KeyOracle, workload?: KeyWorkload): void {
  for (const key of oracle.seen) ctx.run.addServedKey(key);
  for (const { userId } of workload?.shredded ?? []) {
    for (const key of oracle.keysOf(userId).values()) ctx.run.addShreddedKey(key);
  }
}

/** The oracle's verdict and the workload's problems, as report notes. */
export function workloadNotes(oracle: KeyOracle, workload: KeyWorkload): string[] {
  const notes: string[] = [];
  if (workload.servedAfterAck > 0) {
    notes.push(
      `${workload.servedAfterAck} answers served keys after their shred was acknowledged, within maxStaleness (allowed)`,
    );
  }
  notes.push(...oracle.wrongExamples.map((e) => `wrong key: ${e}`));
  notes.push(...workload.problems.slice(0, 5));
  return notes;
}
