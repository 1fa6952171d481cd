import { join } from 'node:path';
import { newAgent } from '../lib/http.js';
import { OpenLoopLoad, phaseSummaries } from '../lib/load.js';
import { KeyOracle } from '../lib/oracle.js';
import { storeErrorsNote } from '../lib/padlock.js';
import { faultOutcome, figure, invariant, runFault, type Context, type Scenario } from '../lib/scenario.js';
import { MIXED, READ_ONLY } from '../lib/workload.js';
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
 * Cassandra faults. The node kill runs on the rf3 layout (three nodes in dc1,
 * keyspace {'dc1': 3}): LOCAL_QUORUM needs two of the three replicas, so one
 * node down must cost nothing. The datacenter cut runs on the twodc layout
 * (dirt1, dirt2 in dc1; dirt3 alone in dc2; keyspace {'dc1': 2, 'dc2': 1}):
 * dc2 stops answering anyone (SIGSTOP, as a partitioned link looks to its
 * peers), and the clients of dc1, whose reads and writes stay in dc1, must not
 * notice.
 */

const USERS = 1000;

export const cassandraNodeKill: Scenario = {
  name: 'cassandra-node-kill',
  title: 'one of three Cassandra nodes (RF 3 in its datacenter) SIGKILLed under load, then restarted',
  infra: 'rf3',
  ci: true,
  async run(ctx: Context) {
    const cluster = ctx.cluster!;
    // L1 small and no memcached: lookups reach Cassandra.
    const group = padlock(ctx, { name: 'padlock', store: cassandraStore(ctx), l1: { enabled: true, maxEntries: 100 } });
    const credential = await group.createService('loadgen', ALL_RIGHTS);
    await group.start();
    const oracle = new KeyOracle();
    const base = userIds(`${ctx.name}-u`, USERS);
    await signUp(group.target, credential, base, oracle, 16);
    ctx.log(`${base.length} users signed up`);
    const workload = keyWorkload(ctx, { targets: [group.target], credential, oracle, baseUsers: base, mix: MIXED });
    const load = openLoad(ctx, () => workload.next(), { slackS: 300 });
    // Long enough for the other nodes to mark the killed one down (about 20 s), and for what comes before.
    const timing = { ...ctx.timing, duringS: Math.max(ctx.timing.duringS, 25) };
    const result = await runFault({
      load,
      recordsFile: join(ctx.dir, 'ops.csv'),
      timing,
      log: (m) => ctx.log(m),
      inject: () => cluster.killNode(2),
      clear: () => cluster.startNode(2),
    });
    harvest(ctx, oracle, workload);
    const storeErrors = await storeErrorsNote(group);
    return faultOutcome(result, load, {
      minAvailability: 99.95,
      notes: [
        storeErrors,
        `dirt2 (${cluster.node(2).address}) was killed, then restarted with start-node.sh, which took ${Math.round(result.clearMs / 1000)} s (part of "during")`,
        ...workloadNotes(oracle, workload),
      ],
      details: { users: USERS, servedAfterShredAck: workload.servedAfterAck },
    });
  },
};

export const datacenterCut: Scenario = {
  name: 'datacenter-cut',
  title: 'a whole datacenter (dc2) cut off under load; the clients of dc1 use dc1 only',
  infra: 'twodc',
  ci: false,
  async run(ctx: Context) {
    const cluster = ctx.cluster!;
    const dc1 = padlock(ctx, {
      name: 'padlock-dc1',
      store: cassandraStore(ctx, { dc: 'dc1' }),
      // One shred journal for both datacenters' Padlocks, as a two-DC deployment has (its appends
      // at SERIAL: dc1's two replicas are a quorum of three, so dc1 keeps shredding while dc2 is cut).
      cassandraJournal: sharedJournal(ctx),
      l1: { enabled: true, maxEntries: 100 },
    });
    const dc2 = padlock(ctx, {
      name: 'padlock-dc2',
      store: cassandraStore(ctx, { dc: 'dc2' }),
      cassandraJournal: sharedJournal(ctx),
      l1: { enabled: true, maxEntries: 100 },
      limits: { deadlineMs: 500 },
    });
    const credential = await dc1.createService('loadgen', ALL_RIGHTS);
    await dc1.start();
    await dc2.start();
    const oracle = new KeyOracle();
    const base = userIds(`${ctx.name}-u`, USERS);
    await signUp(dc1.target, credential, base, oracle, 16);
    await warm(dc2.target, credential, base);
    ctx.log(`${base.length} users signed up`);
    const workload = keyWorkload(ctx, { targets: [dc1.target], credential, oracle, baseUsers: base, mix: MIXED });
    const load = openLoad(ctx, () => workload.next());
    // Clients of dc2 keep asking their own Padlock: it must answer (503) within its deadline, not hang.
    const remote = keyWorkload(ctx, {
      targets: [dc2.target],
      credential,
      oracle,
      baseUsers: base,
      mix: READ_ONLY,
      agent: newAgent(64),
    });
    const remoteLoad: OpenLoopLoad = openLoad(ctx, () => remote.next(), { rate: 20 });
    remoteLoad.start('before');
    let remoteMarks = 0;
    const result = await runFault({
      load,
      recordsFile: join(ctx.dir, 'ops.csv'),
      timing: ctx.timing,
      log: (m) => ctx.log(m),
      inject: () => {
        remoteLoad.mark('during');
        remoteMarks++;
        cluster.pause(3, true);
        return Promise.resolve();
      },
      clear: () => {
        cluster.pause(3, false);
        remoteLoad.mark('after');
        remoteMarks++;
        return Promise.resolve();
      },
    });
    await remoteLoad.stop();
    const remotePhases = phaseSummaries(remoteLoad);
    harvest(ctx, oracle, workload);
    const remoteDuring = remotePhases[1];
    const remoteMax = remoteDuring === undefined ? 0 : remoteDuring.serviceMax;
    const hung = remotePhases.reduce((s, p) => s + (p.byStatus['TIMEOUT'] ?? 0), 0);
    return faultOutcome(result, load, {
      minAvailability: 99.95,
      extraFigures: [
        figure(
          'dc2 clients: slowest answer while cut off',
          '<= 500 ms deadline + 100 ms',
          `${remoteMax} ms`,
          remoteMax <= 600,
        ),
        invariant('dc2 clients: requests without an answer (hangs)', '0', hung, hung === 0 && remoteMarks === 2),
      ],
      notes: [
        'dirt3 (dc2) was SIGSTOPped: it stops answering Padlock and its peers alike, then SIGCONT',
        `dc2's own Padlock, whose store is cut off, answered during the cut: ${JSON.stringify(remoteDuring?.byStatus ?? {})}`,
        ...workloadNotes(oracle, workload),
      ],
      details: { users: USERS, dc2Phases: remotePhases },
    });
  },
};
