import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { captureCommand, onCleanup, runCommand } from './children.js';
import { JMX_PORT_BASE, netHost } from './net.js';

/*
 * The suite's own three Cassandra nodes, through the repository's scripts, on
 * 127.0.1.1-3 (other work on this machine uses 127.0.0.1-3), or hosts .1-.3 of
 * DIRT_NET (net.ts): node dirs .cassandra/dirt1..3 of this checkout, JMX ports
 * 7519/7529/7539 (DIRT_JMX_PORT_BASE + 10 N), cluster name padlock-dirt-*,
 * seeds hosts .1 and .3. Two layouts, because a keyspace with
 * replication factor 3 in one datacenter needs three nodes there, and a
 * datacenter cut needs two datacenters:
 *   rf3    dirt1, dirt2, dirt3 in dc1            keyspaces {'dc1': 3}
 *   twodc  dirt1, dirt2 in dc1; dirt3 in dc2     keyspaces {'dc1': 2, 'dc2': 1}
 * A node cannot change datacenter once started, so switching layouts wipes
 * the three node dirs (only those three, by name).
 */

export type Layout = 'rf3' | 'twodc';

export interface CassandraNode {
  readonly index: 1 | 2 | 3;
  readonly name: string;
  readonly address: string;
  readonly jmxPort: number;
  readonly dc: string;
}

const SEEDS = `${netHost(1)},${netHost(3)}`;
/**
 * JVM options of the suite's nodes unless DIRT_CASSANDRA_JVM replaces them: the client compiler (C1)
 * only. Three cold JVMs on two cores spend about half their CPU in C2's compiler thread for minutes
 * (top -H), long after the warm-up: "before" phases measured p50s of 55-465 ms and the machine
 * witness 50-78 stalls of 100 ms or more per scenario. With C1 alone the nodes answer the suite's
 * load (a few hundred reads a second) with before-p50s of 3-6 ms (dirt/README.md, "The nodes' JIT").
 */
const SUITE_NODE_JVM = '-XX:TieredStopAtLevel=1';

/** A started node runs at nice 10 for this long after it answers, then at nice 0. */
const RENICE_AFTER_MS = 60000;
const KEEP = process.env['DIRT_KEEP_CLUSTER'] === '1';

export function layoutNodes(layout: Layout): CassandraNode[] {
  return ([1, 2, 3] as const).map((index) => ({
    index,
    name: `dirt${index}`,
    address: netHost(index),
    jmxPort: JMX_PORT_BASE + 10 * index,
    dc: layout === 'twodc' && index === 3 ? 'dc2' : 'dc1',
  }));
}

/** What three nodes take (a 1 GiB heap each, about 1.45 GiB resident): less means another cluster is running. */
const NEEDED_GIB = 3 * 1.5;

/**
 * Refuses to start the suite's three nodes when they would not fit in memory, naming the Cassandra
 * JVMs already running (the test suite's cluster, say: npm test stops its own when it ends).
 */
function checkMemory(): void {
  let availableGiB: number;
  try {
    const kib = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    if (kib === undefined) return;
    availableGiB = Number(kib) / 2 ** 20;
  } catch {
    return;
  }
  if (availableGiB >= NEEDED_GIB) return;
  const others: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmdline.includes('org.apache.cassandra.service.CassandraDaemon')) continue;
      others.push(`${pid} (${/-Dcassandra\.storagedir=([^\0]*)/.exec(cmdline)?.[1] ?? 'unknown dir'})`);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(
    `${availableGiB.toFixed(1)} GiB of memory available, ${NEEDED_GIB} GiB needed for the suite's three Cassandra nodes; ` +
      `Cassandra JVMs running: ${others.length === 0 ? 'none' : others.join(', ')} (scripts/cassandra/stop.sh stops the test suite's)`,
  );
}

export function replicationFor(layout: Layout): Record<string, number> {
  return layout === 'rf3' ? { dc1: 3 } : { dc1: 2, dc2: 1 };
}

export class CassandraCluster {
  readonly nodes: CassandraNode[];
  readonly #scripts: string;
  readonly #nodeRoot: string;
  #removeCleanup: (() => void) | undefined;
  /** Nodes started and not yet back at nice 0: resolves when they are. */
  readonly #settling = new Map<1 | 2 | 3, Promise<void>>();

  constructor(
    readonly layout: Layout,
    readonly repo: string,
    private readonly logFile: string,
  ) {
    this.nodes = layoutNodes(layout);
    this.#scripts = join(repo, 'scripts', 'cassandra');
    this.#nodeRoot = join(repo, '.cassandra');
  }

  get replication(): Record<string, number> {
    return replicationFor(this.layout);
  }

  node(index: 1 | 2 | 3): CassandraNode {
    return this.nodes[index - 1]!;
  }

  #env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      CASS_CLUSTER_NAME: `padlock-dirt-${this.layout}`,
      CASS_STOP_SECS: '30',
      // Shorter young-generation pauses: on two shared cores the stock 300 ms target let G1 pause
      // a node for over 200 ms, longer than Padlock's store timeout, every minute or so.
      CASS_JVM_EXTRA:
        '-XX:MaxGCPauseMillis=50' +
        (process.env.DIRT_GC_LOG === undefined ? '' : ` -Xlog:gc:file=${process.env.DIRT_GC_LOG}/cassandra-gc-%p.log`) +
        ` ${process.env.DIRT_CASSANDRA_JVM ?? SUITE_NODE_JVM}`,
    };
  }

  /**
   * Wipes the three node dirs, then starts the nodes one after another and
   * checks they see each other. With DIRT_KEEP_CLUSTER=1 (for working on the
   * suite) a running cluster of the same layout is reused and left running.
   */
  async start(): Promise<void> {
    const marker = join(this.#nodeRoot, 'dirt1', 'dirt-layout');
    if (KEEP && this.nodes.every((n) => this.pid(n.index) !== undefined) && existsSync(marker)) {
      if (readFileSync(marker, 'utf8') === this.layout) return;
    }
    await this.stopAll(true);
    checkMemory();
    if (!KEEP) this.#removeCleanup = onCleanup(() => this.stopAll(true));
    for (const node of this.nodes) await this.startNode(node.index);
    writeFileSync(marker, this.layout);
    for (const node of this.nodes) {
      await captureCommand(
        'python3',
        [join(this.#scripts, 'cql.py'), '--wait', '90', '--wait-peers', '2', '--schema-agreement', node.address],
        { logFile: this.logFile, timeoutMs: 120000 },
      );
    }
  }

  /**
   * Starts (or restarts) one node at nice 10, and puts its threads back to nice 0 a minute after
   * it answers: on two cores shared with Padlock and the load, a starting JVM and its catch-up take
   * both for seconds and starved Padlock (which has machines of its own in production), while a
   * running node at nice 10 would lose the CPU to any other work on this machine.
   */
  async startNode(index: 1 | 2 | 3): Promise<void> {
    const node = this.node(index);
    await runCommand(
      `cassandra:${node.name}`,
      'nice',
      [
        '-n',
        '10',
        'bash',
        join(this.#scripts, 'start-node.sh'),
        String(index),
        '--addr',
        node.address,
        '--name',
        node.name,
        '--jmx-port',
        String(node.jmxPort),
        '--seeds',
        SEEDS,
        '--dc',
        node.dc,
      ],
      { logFile: this.logFile, env: this.#env(), timeoutMs: 240000 },
    );
    // A minute later, when the catch-up after a restart (hints, compactions, a cold JIT) is over.
    const pid = this.pid(index);
    if (pid !== undefined) {
      let finish: () => void = () => undefined;
      const done = new Promise<void>((resolve) => (finish = resolve));
      this.#settling.set(index, done);
      setTimeout(() => {
        const settle = (): void => {
          if (this.#settling.get(index) === done) this.#settling.delete(index);
          finish();
        };
        if (this.pid(index) !== pid) return settle();
        let threads: string[];
        try {
          threads = readdirSync(`/proc/${pid}/task`);
        } catch {
          return settle();
        }
        // A thread may end meanwhile (renice then fails for it alone): not a reason to stop.
        runCommand('renice', 'renice', ['-n', '0', '-p', ...threads], {
          logFile: this.logFile,
          timeoutMs: 10000,
        })
          .catch(() => undefined)
          .finally(settle);
      }, RENICE_AFTER_MS).unref();
    }
  }

  /**
   * Resolves when every node started so far runs at nice 0 again (at once when they all do), with
   * how long it waited. A scenario's "before" phase is its baseline: measured against nodes still
   * at nice 10 and in their first minute, it is not the cluster's steady state (the first scenario
   * after a start measured a lookup p99 several times that of the next).
   */
  async settled(): Promise<number> {
    const t0 = Date.now();
    await Promise.all(this.#settling.values());
    return Date.now() - t0;
  }

  /**
   * Reads (and a few writes) on every node until `until` settles, typically the nodes' first
   * minute (settled()); returns how many reads ran. A fresh JVM compiles its read path during its
   * first thousands of reads: memcached-kill, the first scenario of rf3, measured that instead of
   * the fault, since memcached's outage is when the cluster first gets a hundred reads a second
   * (lookup service p99 52 ms during the fault, 10 ms in memcached-pause right after it). Best
   * effort: a failure ends the warm-up, never the run.
   */
  async warmUp(until: Promise<unknown>): Promise<number> {
    let done = false;
    void until.then(() => (done = true));
    const keyspace = 'dirt_warmup';
    const dcs = Object.entries(this.replication)
      .map(([dc, rf]) => `'${dc}': ${rf}`)
      .join(', ');
    const cql = (node: CassandraNode, extra: readonly string[], statements: readonly string[]): Promise<string> =>
      captureCommand(
        'python3',
        [join(this.#scripts, 'cql.py'), '-q', '--timeout', '10', ...extra, node.address, ...statements],
        { logFile: this.logFile, timeoutMs: 120000 },
      );
    const partitions = 200;
    await cql(
      this.node(1),
      ['--schema-agreement'],
      [
        `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', ${dcs}}`,
        `CREATE TABLE IF NOT EXISTS ${keyspace}.rows (k text, c text, v int, b blob, PRIMARY KEY ((k), c, v))`,
      ],
    );
    await cql(
      this.node(1),
      ['--cl', 'LOCAL_QUORUM'],
      Array.from(
        { length: partitions },
        (_, i) => `INSERT INTO ${keyspace}.rows (k, c, v, b) VALUES ('u${i}', 'profile', 1, 0x${'ab'.repeat(60)})`,
      ),
    );
    let reads = 0;
    const perCall = 300;
    while (!done) {
      await Promise.all(
        this.nodes.map((node) =>
          cql(
            node,
            ['--cl', 'LOCAL_ONE'],
            Array.from(
              { length: perCall },
              () => `SELECT c, v, b FROM ${keyspace}.rows WHERE k = 'u${Math.floor(Math.random() * partitions)}'`,
            ),
          ),
        ),
      );
      reads += perCall * this.nodes.length;
    }
    return reads;
  }

  /** SIGKILL through kill-node.sh: no drain, no flush. */
  async killNode(index: 1 | 2 | 3): Promise<void> {
    await runCommand('kill-node', 'bash', [join(this.#scripts, 'kill-node.sh'), this.node(index).name], {
      logFile: this.logFile,
      env: this.#env(),
      timeoutMs: 30000,
    });
  }

  /** The JVM's pid from its pid file, when it is alive. */
  pid(index: 1 | 2 | 3): number | undefined {
    const file = join(this.#nodeRoot, this.node(index).name, 'cassandra.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes(`-Dcassandra.storagedir=${join(this.#nodeRoot, this.node(index).name)}\0`)
        ? pid
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** SIGSTOP (true) or SIGCONT (false) to a node's JVM: it stops answering anyone, like a cut link. */
  pause(index: 1 | 2 | 3, paused: boolean): void {
    const pid = this.pid(index);
    if (pid === undefined) throw new Error(`${this.node(index).name} is not running`);
    process.kill(pid, paused ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Stops the three nodes (only these, by name); `wipe` deletes their dirs. */
  async stopAll(wipe: boolean): Promise<void> {
    for (const node of this.nodes) {
      const pid = this.pid(node.index);
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // gone
        }
      }
    }
    await runCommand(
      'stop-nodes',
      'bash',
      [join(this.#scripts, 'stop.sh'), ...(wipe ? ['--wipe'] : []), ...this.nodes.map((n) => n.name)],
      { logFile: this.logFile, env: this.#env(), timeoutMs: 120000 },
    );
  }

  async stop(): Promise<void> {
    if (KEEP) return;
    this.#removeCleanup?.();
    this.#removeCleanup = undefined;
    await this.stopAll(true);
  }

  /** Runs CQL on one node with cql.py; returns its JSON output parsed (one array per statement). */
  async cql(index: 1 | 2 | 3, ...statements: string[]): Promise<unknown[]> {
    const out = await captureCommand(
      'python3',
      [join(this.#scripts, 'cql.py'), '--json', '--timeout', '30', this.node(index).address, ...statements],
      { logFile: this.logFile, timeoutMs: 60000 },
    );
    return out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as unknown);
  }

  /** Drops a keyspace (and waits for schema agreement), ignoring a missing one. */
  async dropKeyspace(keyspace: string): Promise<void> {
    await captureCommand(
      'python3',
      [
        join(this.#scripts, 'cql.py'),
        '--schema-agreement',
        '--timeout',
        '60',
        this.node(1).address,
        `DROP KEYSPACE IF EXISTS ${keyspace}`,
      ],
      { logFile: this.logFile, timeoutMs: 90000 },
    );
  }
}
