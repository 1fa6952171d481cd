import { join } from 'node:path';
import { PadlockClient } from '@padlock/client';
import { call, CallError, newAgent } from '../lib/http.js';
import { now } from '../lib/load.js';
import type { MemcachedServer } from '../lib/memcached.js';
import { KeyOracle } from '../lib/oracle.js';
import type { PadlockProcess } from '../lib/padlock.js';
import { parsePrometheusText } from '../../../scripts/testing/prometheus-text.mjs';
import { faultOutcome, figure, invariant, runFault, sleep, type Context, type Scenario } from '../lib/scenario.js';
import { SdkWorkload } from '../lib/sdk-workload.js';
import { replyLabel } from '../lib/workload.js';
import {
  ALL_RIGHTS,
  cassandraStore,
  harvest,
  memcachedServers,
  openLoad,
  padlock,
  sharedJournal,
  signUp,
  userIds,
  warm,
} from './common.js';

/*
 * Two deployment groups, `padlock` and `padlock-mirror`, each with its own
 * memcached, sharing the Cassandra cluster (rf3 layout); clients use both
 * through the SDK, `padlock` first. One group is killed (kill -9, its
 * memcached too), or drained (SIGTERM): the clients must not see one failed
 * operation.
 */

const USERS = 1000;

interface Groups {
  readonly primary: PadlockProcess;
  readonly mirror: PadlockProcess;
  readonly primaryCache: MemcachedServer;
  readonly credential: string;
  readonly oracle: KeyOracle;
  readonly base: readonly string[];
  readonly client: PadlockClient;
  readonly workload: SdkWorkload;
}

async function twoGroups(ctx: Context, drainTimeoutMs?: number): Promise<Groups> {
  const [primaryCache, mirrorCache] = (await memcachedServers(ctx, 2)) as [MemcachedServer, MemcachedServer];
  const common = {
    store: cassandraStore(ctx),
    cassandraJournal: sharedJournal(ctx),
    l1: { enabled: true, maxEntries: 200 },
  };
  const primary = padlock(ctx, {
    name: 'padlock',
    ...common,
    memcached: { servers: [primaryCache.address], keyPrefix: 'padlock:' },
    ...(drainTimeoutMs === undefined ? {} : { drainTimeoutMs }),
  });
  const mirror = padlock(ctx, {
    name: 'padlock-mirror',
    ...common,
    memcached: { servers: [mirrorCache.address], keyPrefix: 'padlock-mirror:' },
  });
  const credential = await primary.createService('loadgen', ALL_RIGHTS);
  await primary.start();
  await mirror.start();
  const oracle = new KeyOracle();
  const base = userIds(`${ctx.name}-u`, USERS);
  await signUp(primary.target, credential, base, oracle, 16);
  await warm(mirror.target, credential, base);
  ctx.log(`${base.length} users signed up`);
  const client = new PadlockClient({
    groups: [
      { name: 'padlock', urls: [`http://${primary.target.host}:${primary.target.port}`] },
      { name: 'padlock-mirror', urls: [`http://${mirror.target.host}:${mirror.target.port}`] },
    ],
    credential,
    cache: false,
    timeoutMs: 1000,
    deadlineMs: 3000,
    downMs: 1000,
  });
  ctx.defer(() => client.close());
  const workload = new SdkWorkload(client, oracle, base, { read: 0.97, create: 0.02, shred: 0.01 }, `${ctx.name}-new-`);
  return { primary, mirror, primaryCache, credential, oracle, base, client, workload };
}

function sdkNotes(groups: Groups): string[] {
  const stats = groups.client.stats() as unknown as Record<string, number>;
  const counters = ['requests', 'batches', 'failovers', 'hedges', 'retries']
    .filter((k) => typeof stats[k] === 'number')
    .map((k) => `${k} ${stats[k]}`);
  return [`SDK counters: ${counters.join(', ')}`, ...groups.workload.problems.slice(0, 5)];
}

export const groupKill: Scenario = {
  name: 'group-kill',
  title: 'one of two deployment groups killed (kill -9, and its memcached) while clients use both through the SDK',
  infra: 'rf3',
  ci: true,
  async run(ctx: Context) {
    const groups = await twoGroups(ctx);
    const load = openLoad(ctx, () => groups.workload.next());
    const result = await runFault({
      load,
      recordsFile: join(ctx.dir, 'ops.csv'),
      timing: ctx.timing,
      log: (m) => ctx.log(m),
      inject: async () => {
        await groups.primary.kill9();
        await groups.primaryCache.kill();
      },
      clear: async () => {
        await groups.primaryCache.start();
        await groups.primary.start();
      },
    });
    harvest(ctx, groups.oracle);
    // From the fault on, as availability: a failure before it is the machine's, not the fault's.
    const failed = result.phases.slice(1).reduce((s, p) => s + p.failed, 0);
    const afterPrimary = await primaryRequests(groups.primary);
    return faultOutcome(result, load, {
      minAvailability: 99.95,
      extraFigures: [
        figure('failed SDK operations from the fault on', '0', failed, failed === 0),
        figure('the restarted group takes traffic again', '> 0 requests after restart', afterPrimary, afterPrimary > 0),
      ],
      notes: sdkNotes(groups),
    });
  },
};

/** Key requests the (restarted) process has answered, from its metrics. */
async function primaryRequests(process: PadlockProcess): Promise<number> {
  try {
    const { samples } = parsePrometheusText(await process.metrics());
    let sum = 0;
    for (const sample of samples) {
      if (sample.name === 'padlock_http_requests_total' && sample.labels['route']?.startsWith('/v1/keys')) {
        sum += sample.value;
      }
    }
    return sum;
  } catch {
    return 0;
  }
}

export const sigtermDrain: Scenario = {
  name: 'sigterm-drain',
  title: 'one deployment group drained with SIGTERM under load: in-flight requests complete, new ones go to the other',
  infra: 'rf3',
  ci: true,
  async run(ctx: Context) {
    const groups = await twoGroups(ctx, 10000);
    // Requests sent straight to the drained process just before the signal: each must be answered in full.
    const agent = newAgent(64);
    const inflight: Promise<{ label: string; sentAt: number }>[] = [];
    let signalAt = 0;
    const burst = (): void => {
      for (let i = 0; i < 32; i++) {
        const ids = Array.from({ length: 200 }, () => groups.base[Math.floor(Math.random() * groups.base.length)]!);
        const sentAt = now();
        inflight.push(
          call(groups.primary.target, {
            method: 'POST',
            path: '/v1/keys/batch-get',
            headers: { authorization: `Bearer ${groups.credential}`, 'content-type': 'application/json' },
            body: JSON.stringify({ userIds: ids }),
            agent,
            timeoutMs: 15000,
          }).then(
            (reply) => ({ label: replyLabel(reply), sentAt }),
            (error: unknown) => ({ label: error instanceof CallError ? error.label : String(error), sentAt }),
          ),
        );
      }
    };
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let exitedAfterMs = 0;
    const load = openLoad(ctx, () => groups.workload.next());
    const result = await runFault({
      load,
      recordsFile: join(ctx.dir, 'ops.csv'),
      timing: ctx.timing,
      log: (m) => ctx.log(m),
      inject: async () => {
        // Connections opened (and accepted) beforehand: a connection still in the kernel's accept
        // queue when the listener closes is reset by the kernel, before any request is in flight.
        await Promise.all(
          Array.from({ length: 32 }, () =>
            call(groups.primary.target, { method: 'GET', path: '/healthz', agent, timeoutMs: 5000 }).catch(
              () => undefined,
            ),
          ),
        );
        burst();
        await sleep(15);
        signalAt = now();
        groups.primary.sigterm();
        void groups.primary.exited().then((e) => {
          exit = e;
          exitedAfterMs = now() - signalAt;
        });
        await sleep(5);
        burst();
      },
      clear: () => groups.primary.start(),
    });
    const bursts = await Promise.all(inflight);
    agent.destroy();
    harvest(ctx, groups.oracle);
    const first = bursts.slice(0, 32);
    const cut = first.filter((b) => !/^\d/.test(b.label));
    const completed = first.filter((b) => b.label === '200').length;
    const second = bursts.slice(32);
    // From the fault on, as availability: a failure before it is the machine's, not the fault's.
    const failed = result.phases.slice(1).reduce((s, p) => s + p.failed, 0);
    const labels = (list: { label: string }[]): string =>
      JSON.stringify(list.reduce<Record<string, number>>((m, b) => ({ ...m, [b.label]: (m[b.label] ?? 0) + 1 }), {}));
    return faultOutcome(result, load, {
      minAvailability: 99.95,
      extraFigures: [
        figure('failed SDK operations from the fault on', '0', failed, failed === 0),
        figure(
          'requests in flight at SIGTERM cut off (no complete answer)',
          '0',
          `${cut.length} of 32 (${completed} answered 200)`,
          cut.length === 0,
        ),
        invariant(
          'drained process exits by itself',
          'exit 0 within drainTimeoutMs (10 s)',
          exit === undefined
            ? 'did not exit'
            : `exit ${exit.code ?? exit.signal} after ${Math.round(exitedAfterMs)} ms`,
          exit?.code === 0 && exitedAfterMs <= 10500,
        ),
      ],
      notes: [
        `32 batch-gets of 200 users each sent straight to the drained process, on open connections, 15 ms before SIGTERM: ${labels(first)}`,
        `32 more sent 5 ms after it: ${labels(second)} (a 503 or a closed connection is the expected answer to new requests)`,
        ...sdkNotes(groups),
      ],
    });
  },
};
