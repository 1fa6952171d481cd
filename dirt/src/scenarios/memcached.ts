import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import type { MemcachedServer } from '../lib/memcached.js';
import { KeyOracle } from '../lib/oracle.js';
import { metricSum } from '../lib/padlock.js';
import { faultOutcome, invariant, runFault, sleep, type Context, type Scenario } from '../lib/scenario.js';
import { MIXED, type KeyWorkload } from '../lib/workload.js';
import {
  ALL_RIGHTS,
  cassandraStore,
  harvest,
  keyWorkload,
  memcachedServers,
  openLoad,
  padlock,
  signUp,
  userIds,
  warm,
  workloadNotes,
} from './common.js';

/*
 * memcached under load: killed then restarted (empty), paused (SIGSTOP, so
 * requests time out instead of being refused) then resumed, and returning
 * corrupted values. Padlock reads through L1 (kept small, so most lookups
 * reach memcached) -> memcached (two servers) -> Cassandra (RF 3).
 */

type Fault = 'kill' | 'pause' | 'corrupt';

const USERS = 1000;
const KEY_PREFIX = 'padlock:';

const DESCRIPTIONS: Record<Fault, string> = {
  kill: 'both memcached servers of the group SIGKILLed under load, then restarted empty',
  pause: 'both memcached servers SIGSTOPped under load (requests to them time out), then resumed',
  corrupt: 'memcached values overwritten with damaged bytes (bit flips, truncation, other users’ values, garbage)',
};

/** Overwrites cached values with damaged copies, ~500 a second, until stopped. */
class Corrupter {
  corrupted = 0;
  readonly byKind: Record<string, number> = {};
  #running = true;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly servers: readonly MemcachedServer[],
    private readonly workload: KeyWorkload,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const keys = new Set<string>();
      for (let i = 0; i < 50; i++) {
        const user = this.workload.readable.pick();
        if (user !== undefined) keys.add(`${KEY_PREFIX}${user}`);
      }
      for (const server of this.servers) {
        try {
          const values = await server.get([...keys]);
          const all = [...values.values()];
          for (const [key, value] of values) {
            const [kind, damaged] = damage(value, all);
            await server.set(key, damaged, 30);
            this.corrupted++;
            this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
          }
        } catch {
          // a value changed under us, or memcached was busy: skip this round
        }
      }
      await sleep(100);
    }
  }
}

function damage(value: Buffer, others: readonly Buffer[]): [string, Buffer] {
  const copy = Buffer.from(value);
  switch (randomInt(6)) {
    case 0: {
      const i = randomInt(copy.length);
      copy[i] = copy[i]! ^ (1 << randomInt(8));
      return ['bit flip', copy];
    }
    case 1:
      return ['truncated', copy.subarray(0, randomInt(copy.length))];
    case 2: {
      const other = others.find((o) => !o.equals(value));
      return other === undefined ? ['garbage', randomBytes(copy.length)] : ['another user’s value', Buffer.from(other)];
    }
    case 3:
      return ['garbage', randomBytes(copy.length)];
    case 4:
      return ['extended', Buffer.concat([copy, randomBytes(1 + randomInt(64))])];
    default:
      copy.fill(0, Math.max(0, copy.length - 32));
      return ['zeroed MAC', copy];
  }
}

function memcachedScenario(fault: Fault): Scenario {
  return {
    name: `memcached-${fault}`,
    title: DESCRIPTIONS[fault],
    infra: 'rf3',
    // A pause is the kill's slower cousin (timeouts instead of refusals): the full run has it.
    ci: fault !== 'pause',
    async run(ctx: Context) {
      const servers = await memcachedServers(ctx, 2);
      const group = padlock(ctx, {
        name: 'padlock',
        store: cassandraStore(ctx),
        memcached: { servers: servers.map((s) => s.address), keyPrefix: KEY_PREFIX },
        l1: { enabled: true, maxEntries: 200 },
      });
      const credential = await group.createService('loadgen', ALL_RIGHTS);
      await group.start();
      const oracle = new KeyOracle();
      const base = userIds(`${ctx.name}-u`, USERS);
      await signUp(group.target, credential, base, oracle);
      await warm(group.target, credential, base);
      ctx.log(`${base.length} users signed up`);
      const workload = keyWorkload(ctx, { targets: [group.target], credential, oracle, baseUsers: base, mix: MIXED });
      const load = openLoad(ctx, () => workload.next());
      const metricsBefore = await group.metrics();
      const corrupter = new Corrupter(servers, workload);
      const result = await runFault({
        load,
        recordsFile: join(ctx.dir, 'ops.csv'),
        timing: ctx.timing,
        // On nodes a minute old the first scenario's "before" p99 was 62 ms without this,
        // against ~5 ms once warm.
        warmS: 2 * ctx.timing.beforeS,
        log: (m) => ctx.log(m),
        inject: async () => {
          if (fault === 'kill') for (const s of servers) await s.kill();
          else if (fault === 'pause') for (const s of servers) s.pause();
          else corrupter.start();
        },
        clear: async () => {
          if (fault === 'kill') for (const s of servers) await s.start();
          else if (fault === 'pause') for (const s of servers) s.resume();
          else await corrupter.stop();
        },
      });
      const metricsAfter = await group.metrics();
      harvest(ctx, oracle, workload);
      const counter = (kind: string): number =>
        metricSum(metricsAfter, 'padlock_cache_errors_total', { cache: 'memcached', kind }) -
        metricSum(metricsBefore, 'padlock_cache_errors_total', { cache: 'memcached', kind });
      const hits =
        metricSum(metricsAfter, 'padlock_cache_hits_total', { cache: 'memcached' }) -
        metricSum(metricsBefore, 'padlock_cache_hits_total', { cache: 'memcached' });
      const extra = [];
      const notes = workloadNotes(oracle, workload);
      if (fault === 'corrupt') {
        const detected = counter('corrupt');
        extra.push(
          invariant(
            'damaged values detected (MAC or parse failure)',
            '> 0',
            detected,
            detected > 0 && corrupter.corrupted > 0,
          ),
        );
        notes.push(
          `${corrupter.corrupted} values damaged (${Object.entries(corrupter.byKind)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}); Padlock counted ${detected} corrupt reads`,
        );
      }
      const hedged =
        metricSum(metricsAfter, 'padlock_store_hedged_reads_total') -
        metricSum(metricsBefore, 'padlock_store_hedged_reads_total');
      const overBudget =
        metricSum(metricsAfter, 'padlock_store_hedges_over_budget_total') -
        metricSum(metricsBefore, 'padlock_store_hedges_over_budget_total');
      notes.push(
        `memcached hits over the run: ${hits}; Cassandra reads hedged: ${hedged}, left unhedged (budget spent): ${overBudget}`,
      );
      return faultOutcome(result, load, {
        minAvailability: 99.95,
        ...(fault === 'corrupt' ? {} : { p99DuringLimitMs: 15 }),
        extraFigures: extra,
        notes,
        details: {
          users: USERS,
          memcachedHits: hits,
          memcachedErrors: Object.fromEntries(
            ['get_timeout', 'get_down', 'get_connection', 'set_down', 'delete_down', 'corrupt'].map((k) => [
              k,
              counter(k),
            ]),
          ),
          corrupted: corrupter.corrupted,
        },
      });
    },
  };
}

export const memcachedKill = memcachedScenario('kill');
export const memcachedPause = memcachedScenario('pause');
export const memcachedCorrupt = memcachedScenario('corrupt');
