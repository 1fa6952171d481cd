import { join } from 'node:path';
import { KeyOracle } from '../lib/oracle.js';
import { storeErrorsNote } from '../lib/padlock.js';
import { faultOutcome, figure, invariant, runFault, type Context, type Scenario } from '../lib/scenario.js';
import { MIXED } from '../lib/workload.js';
import {
  ALL_RIGHTS,
  cassandraStore,
  harvest,
  keyWorkload,
  openLoad,
  padlock,
  sharedJournal,
  signUp,
  userIds,
  warm,
  workloadNotes,
} from './common.js';

/*
 * Scheduled shreds falling due while the store and the servers fail at once:
 * two deployment groups share the rf3 cluster and both run the scheduler;
 * schedules (some over held keychains) fall due throughout the fault, in which
 * one Cassandra node is killed with -9 and the `padlock` group is killed with
 * -9 too, mid-pass. The other group must execute every due schedule exactly
 * once (taking over the claims the dead group held once their lease ends),
 * never one under a hold, with one receipt each; the lifecycle invariants
 * (lifecycle.ts, checked after every scenario) judge it. The load goes to the
 * surviving group only: the clients of a lost group fail over (group-kill).
 */

const USERS = 300;
const SCHEDULED = 40;
const HELD = 6;
/** A short lease, so the dead group's claims are taken over within the scenario. */
const LEASE_MS = 5000;

export const schedulesUnderFailure: Scenario = {
  name: 'schedules-node-group-kill',
  title: 'schedules fall due while a Cassandra node and a deployment group are killed with -9',
  infra: 'rf3',
  ci: false,
  async run(ctx: Context) {
    const cluster = ctx.cluster!;
    const common = {
      store: cassandraStore(ctx),
      cassandraJournal: sharedJournal(ctx),
      l1: { enabled: true, maxEntries: 100 },
      scheduler: { leaseMs: LEASE_MS },
    };
    const primary = padlock(ctx, { name: 'padlock', ...common });
    const mirror = padlock(ctx, { name: 'padlock-mirror', ...common });
    const credential = await primary.createService('loadgen', ALL_RIGHTS);
    await primary.start();
    await mirror.start();
    const oracle = new KeyOracle();
    const base = userIds(`${ctx.name}-u`, USERS);
    await signUp(primary.target, credential, base, oracle, 16);
    await warm(mirror.target, credential, base);

    // Schedules placed through both groups, due across the fault window; holds first, so some wait.
    const setup = keyWorkload(ctx, {
      targets: [primary.target, mirror.target],
      credential,
      oracle,
      baseUsers: [],
      mix: MIXED,
    });
    for (let i = 0; i < SCHEDULED + HELD; i++) await setup.create().run();
    for (let i = 0; i < HELD; i++) await setup.placeHold().run();
    const timing = { ...ctx.timing, duringS: Math.max(ctx.timing.duringS, 25) };
    const windowMs = timing.duringS * 1000;
    const startMs = timing.beforeS * 1000 + 1000;
    for (let i = 0; i < SCHEDULED; i++) {
      // Placing takes time itself: each one's delay is counted from when it is sent.
      await setup.scheduleShred(startMs + (i * windowMs) / SCHEDULED, i % 8 === 0).run();
    }
    const placed = setup.ledger.schedules.length;
    ctx.log(`${base.length} users signed up; ${placed} schedules and ${setup.ledger.held.size} holds placed`);

    const workload = keyWorkload(ctx, { targets: [mirror.target], credential, oracle, baseUsers: base, mix: MIXED });
    const load = openLoad(ctx, () => workload.next(), { slackS: 300 });
    const result = await runFault({
      load,
      recordsFile: join(ctx.dir, 'ops.csv'),
      timing,
      log: (m) => ctx.log(m),
      inject: async () => {
        await primary.kill9();
        await cluster.killNode(2);
      },
      clear: async () => {
        await cluster.startNode(2);
        await primary.start();
      },
    });
    harvest(ctx, oracle, workload);
    const storeErrors = await storeErrorsNote(mirror);
    return faultOutcome(result, load, {
      minAvailability: 99.9,
      extraFigures: [
        invariant('schedules placed before the fault', `${SCHEDULED}`, placed, placed === SCHEDULED),
        figure(
          'the killed group serves again',
          'ready after restart',
          primary.running ? 'ready' : 'down',
          primary.running,
        ),
      ],
      notes: [
        `dirt2 (${cluster.node(2).address}) and the padlock group were killed with -9 together; restart took ${Math.round(result.clearMs / 1000)} s`,
        `${SCHEDULED} schedules due from ${startMs / 1000} s to ${(startMs + windowMs) / 1000} s after the load began (${Math.ceil(SCHEDULED / 8)} over held keychains); scheduler lease ${LEASE_MS} ms`,
        storeErrors,
        ...workloadNotes(oracle, workload),
      ],
    });
  },
};
