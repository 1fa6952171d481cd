import { join } from 'node:path';
import { KeyOracle } from '../lib/oracle.js';
import { netHost } from '../lib/net.js';
import { FaultProxy, type ProxyMode } from '../lib/proxy.js';
import { faultOutcome, figure, invariant, runFault, type Context, type Scenario } from '../lib/scenario.js';
import { round } from '../lib/stats.js';
import { READ_ONLY } from '../lib/workload.js';
import { ALL_RIGHTS, cassandraStore, harvest, keyWorkload, openLoad, padlock, signUp, userIds } from './common.js';

/*
 * The store slow or unreachable. On the twodc layout, a Padlock of dc2 reaches
 * its datacenter (dirt3 alone) only through a TCP proxy in the suite: the
 * driver keys the contact point by the address it dialled, and ignores the
 * hosts of dc1 (another datacenter), so every store request crosses the proxy.
 * L1 is off and the load is lookups only, so each request is exactly one CQL
 * EXECUTE: more EXECUTEs than requests would mean someone retried.
 */

type Fault = 'slow' | 'blackhole' | 'reset';

const DEADLINE_MS = 300;
const READ_TIMEOUT_MS = 200;
/** Loopback and scheduling on a loaded machine, on top of the deadline. */
const SLACK_MS = 50;
const DELAY_MS = 1000;
const USERS = 300;

const TITLES: Record<Fault, string> = {
  slow: `the store made slow: every byte to and from it delayed ${DELAY_MS} ms (a TCP proxy)`,
  blackhole: 'the store unreachable: the link stalls, nothing passes either way, connections hang (a TCP proxy)',
  reset: 'the store unreachable: every connection to it reset, new ones reset at once (a TCP proxy)',
};

const MODES: Record<Fault, ProxyMode> = { slow: 'delay', blackhole: 'stall', reset: 'reset' };

function storeScenario(fault: Fault): Scenario {
  return {
    name: `store-${fault}`,
    title: TITLES[fault],
    infra: 'twodc',
    // The stalled link is the slow one taken to the limit: the full run has it.
    ci: fault !== 'blackhole',
    async run(ctx: Context) {
      const cluster = ctx.cluster!;
      const dc2 = cluster.node(3);
      const proxy = new FaultProxy({
        listenHost: netHost(20),
        listenPort: ctx.port(),
        targetHost: dc2.address,
        targetPort: 9042,
        localAddress: netHost(21),
        countCql: true,
      });
      await proxy.start();
      ctx.defer(() => proxy.stop());
      const group = padlock(ctx, {
        name: 'padlock-dc2',
        store: cassandraStore(ctx, { dc: 'dc2', contactPoints: [proxy.address], readTimeoutMs: READ_TIMEOUT_MS }),
        l1: { enabled: false, maxEntries: 1 },
        limits: { deadlineMs: DEADLINE_MS },
      });
      const credential = await group.createService('loadgen', ALL_RIGHTS);
      await group.start();
      const oracle = new KeyOracle();
      const base = userIds(`${ctx.name}-u`, USERS);
      await signUp(group.target, credential, base, oracle, 8);
      const workload = keyWorkload(ctx, {
        targets: [group.target],
        credential,
        oracle,
        baseUsers: base,
        mix: READ_ONLY,
        timeoutMs: 5000,
      });
      const timing = { ...ctx.timing, rate: Math.min(ctx.timing.rate, 100) };
      const load = openLoad(ctx, () => workload.next(), { timing });
      let executesAtInject = 0;
      let executesAtClear = 0;
      const result = await runFault({
        load,
        recordsFile: join(ctx.dir, 'ops.csv'),
        timing,
        log: (m) => ctx.log(m),
        inject: () => {
          executesAtInject = proxy.count('execute');
          proxy.setMode(MODES[fault], DELAY_MS);
          return Promise.resolve();
        },
        clear: () => {
          executesAtClear = proxy.count('execute');
          proxy.setMode('pass');
          return Promise.resolve();
        },
      });
      harvest(ctx, oracle, workload);
      const during = result.phases[1]!;
      const duringRecords = load.records.filter((r) => r.phase === 1);
      const answers = duringRecords.filter((r) => r.answered).map((r) => r.done - r.sent);
      const slowest = answers.length === 0 ? 0 : Math.max(...answers);
      const failed = duringRecords.filter((r) => r.answered && r.label.startsWith('503'));
      const hangs = load.records.filter((r) => !r.answered).length;
      const executes = executesAtClear - executesAtInject;
      // The registry reloads its services every 5 s: two reads each time.
      const allowance = 2 * Math.ceil(during.durationS / 5) + 2;
      const unparsed = proxy.count('unparsed');
      return faultOutcome(result, load, {
        extraFigures: [
          figure(
            'slowest answer during the fault, from sending',
            `<= ${DEADLINE_MS} ms deadline + ${SLACK_MS} ms`,
            `${round(slowest)} ms`,
            slowest <= DEADLINE_MS + SLACK_MS,
          ),
          figure(
            'fast failures (503) during the fault',
            '> 0, all within the deadline',
            failed.length,
            failed.length > 0,
          ),
          invariant('requests left without an answer (hangs)', '0', hangs, hangs === 0),
          invariant(
            'CQL requests sent during the fault',
            `<= lookups sent (${during.sent}) + ${allowance} registry reads: no internal retry`,
            unparsed > 0 ? 'not countable (protocol v5)' : executes,
            unparsed === 0 && executes <= during.sent + allowance,
          ),
        ],
        notes: [
          `Padlock of dc2: store.cassandra.readTimeoutMs ${READ_TIMEOUT_MS}, limits.deadlineMs ${DEADLINE_MS}, L1 off, no memcached`,
          `during the fault: ${JSON.stringify(during.byStatus)}`,
          `proxy: ${proxy.accepted} connections accepted, ${proxy.resets} reset; CQL frames ${JSON.stringify(Object.fromEntries(proxy.cql))}`,
        ],
        details: { slowestDuringMs: round(slowest), executesDuring: executes, lookupsDuring: during.sent },
      });
    },
  };
}

export const storeSlow = storeScenario('slow');
export const storeBlackhole = storeScenario('blackhole');
export const storeReset = storeScenario('reset');
