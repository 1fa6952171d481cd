import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { CassandraKeyStore } from '../packages/server/dist/index.js';
import { cassandraPopulation, padlockConfig, sqlitePopulation } from './lib/fixtures.mjs';
import { atExit, cpuSeconds, machineCpu, runLoad, startNode, stop } from './lib/processes.mjs';

/*
 * Lookups during a KEK re-wrap (DESIGN.md section 11; docs/performance.md, "KEK re-wrap"):
 * one `padlock serve` over a SQLite store of --users keychains (two KEKs loaded, the new one
 * active), an open-loop GET load at --load req/s (near-uniform (Zipf s = 0.01) over every user, so most reads miss
 * the L1 and go to the store), measured first idle, then while `padlock kek rewrap --rate R`
 * runs in its own process, in the same run. Reports p50/p99 of both windows, and the re-wrap's
 * rows/s over the loaded window and over its whole run (the JSON progress lines it prints).
 * Writes bench/results/<time>-rewrap.json and .md.
 * With --cassandra HOST:PORT the store is a keyspace of its own on that node (loaded with LWT
 * inserts, dropped at the end; the shred journal in a keyspace beside it), paged by token range.
 * Usage: npm run build && node bench/rewrap-bench.mjs [--users N] [--rate R] [--load RPS] [--seconds S]
 *        [--rounds N] [--cassandra HOST:PORT] [--batch N]
 */

const { values: opts } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '2000' },
    // Rows written at once (SQLite: one transaction; Cassandra: LWTs in flight); the CLI's default when absent.
    batch: { type: 'string' },
    load: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    cassandra: { type: 'string' },
  },
});
const users = Number(opts.users);
const rate = Number(opts.rate);
const load = Number(opts.load);
const seconds = Number(opts.seconds);
const rounds = Number(opts.rounds);

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'packages/cli/dist/main.js');
const loadgen = join(root, 'bench/loadgen.mjs');
const resultsDir = join(root, 'bench/results');
const cacheDir = join(resultsDir, 'tmp', 'cache');
const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const runDir = join(resultsDir, 'tmp', `${stamp}-rewrap`);
mkdirSync(runDir, { recursive: true });
mkdirSync(cacheDir, { recursive: true });
const log = (line) => process.stderr.write(`[rewrap-bench] ${line}\n`);
atExit(() => rmSync(join(runDir, 'padlock.db'), { force: true }));

// Cassandra: a keyspace of this run's own (a re-wrap changes every row, so no population is reused).
const cassandra =
  opts.cassandra === undefined
    ? undefined
    : {
        contactPoints: [opts.cassandra],
        localDataCenter: 'dc1',
        keyspace: `padlock_rwb_${stamp.replace(/[^0-9]/g, '').slice(2, 14)}`,
        replication: { dc1: 1 },
        connectTimeoutMs: 5000,
        readTimeoutMs: 2000,
      };
let population;
let store;
let journal;
let dropKeyspaces = async () => {};
if (cassandra === undefined) {
  population = await sqlitePopulation(root, cacheDir, users, 0, log);
  const dbPath = join(runDir, 'padlock.db');
  copyFileSync(population.dbPath, dbPath);
  store = { kind: 'sqlite', sqlite: { path: dbPath, busyTimeoutMs: 5000 } };
  journal = { file: { path: join(runDir, 'journal', 'shreds.journal') } };
} else {
  dropKeyspaces = async () => {
    const s = await CassandraKeyStore.open({ ...cassandra, readTimeoutMs: 60000, createSchema: false });
    try {
      for (const ks of [cassandra.keyspace, `${cassandra.keyspace}_journal`]) {
        await s.driver.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 120000 });
      }
    } finally {
      await s.close();
    }
  };
  atExit(() =>
    log(`if the run was cut short: DROP KEYSPACE ${cassandra.keyspace} (and ${cassandra.keyspace}_journal)`),
  );
  population = await cassandraPopulation(join(runDir, 'population'), cassandra, users, 0, log);
  log(`loaded: ${JSON.stringify(population.built)}`);
  store = { kind: 'cassandra', cassandra: { ...cassandra, createSchema: false } };
  journal = { kind: 'cassandra', cassandra: { keyspace: `${cassandra.keyspace}_journal` } };
}
const newKek = { kid: 'bench-kek-2', path: join(runDir, 'kek-2.bin') };
writeFileSync(newKek.path, randomBytes(32), { mode: 0o600 });
const config = {
  ...padlockConfig({ kek: population.kek, store, l1: false }),
  keks: { active: newKek.kid, files: [population.kek, newKek] },
  journal,
};
const configPath = join(runDir, 'padlock.json');
writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });

const server = await startNode([cli, 'serve', '-c', configPath], {
  ready: (line) => (line.includes('"msg":"padlock listening"') ? JSON.parse(line).port : undefined),
});
log(
  `server on ${server.value} (pid ${server.pid}), ${users} users${population.bytes === undefined ? '' : `, ${population.bytes} bytes`}`,
);

async function window(name) {
  const machine0 = machineCpu();
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  const r = await runLoad(loadgen, {
    host: '127.0.0.1',
    port: server.value,
    mode: 'open',
    rate: load,
    connections: 16,
    maxConnections: 256,
    graceMs: 3000,
    timeoutMs: 5000,
    warmupS: 2,
    durationS: seconds,
    workload: { kind: 'get', users, zipfS: 0.01, credential: population.credential },
  });
  const wall = (performance.now() - t0) / 1000;
  const machine1 = machineCpu();
  const summary = r.latency.summary();
  const row = {
    name,
    offered: load,
    ok: r.ok,
    statuses: r.statuses,
    errors: r.errors,
    p50Ms: summary.p50Ms,
    p99Ms: summary.p99Ms,
    p999Ms: summary.p999Ms,
    maxMs: summary.maxMs,
    serverCpuPercent: Math.round(((cpuSeconds(server.pid) - cpu0) / wall) * 100),
    machineBusyPercent: Math.round(
      ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * 100 * cpus().length,
    ),
  };
  log(`${name}: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, ${r.ok} ok, statuses ${JSON.stringify(r.statuses)}`);
  return row;
}

// The re-wrap in its own process, as an operator runs it; its JSON progress lines give its rate.
// The machine is shared, so idle and re-wrap windows alternate in rounds (the re-wrap stopped
// with SIGSTOP for the idle ones): each pair sees the same background load.
const progress = [];
const rewrapStarted = performance.now();
const rewrap = spawn(
  process.execPath,
  [
    cli,
    'kek',
    'rewrap',
    '-c',
    configPath,
    '--rate',
    String(rate),
    ...(opts.batch === undefined ? [] : ['--batch', opts.batch]),
  ],
  {
    stdio: ['ignore', 'pipe', 'pipe'],
  },
);
let pending = '';
rewrap.stdout.on('data', (chunk) => {
  pending += chunk;
  const lines = pending.split('\n');
  pending = lines.pop();
  for (const line of lines) {
    if (!line.startsWith('{"progress"')) continue;
    progress.push({ at: performance.now(), ...JSON.parse(line).progress });
  }
});
let rewrapStderr = '';
rewrap.stderr.on('data', (chunk) => (rewrapStderr += chunk));
const exited = new Promise((resolve) => rewrap.on('close', (code, signal) => resolve({ code, signal })));
atExit(() => rewrap.kill('SIGKILL'));
// Into the keychain phase first, so the windows measure the bulk of the work.
while (!progress.some((p) => p.phase === 'root_keys') && rewrap.exitCode === null) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const idleRows = [];
const duringRows = [];
let rewrappedInWindows = 0;
let windowMs = 0;
for (let round = 1; round <= rounds; round++) {
  rewrap.kill('SIGSTOP');
  idleRows.push(await window(`idle ${round}`));
  rewrap.kill('SIGCONT');
  const before = progress.at(-1);
  const loadStart = performance.now();
  duringRows.push(await window(`re-wrap ${round}`));
  windowMs += performance.now() - loadStart;
  rewrappedInWindows += progress.at(-1).counts.rewrapped - before.counts.rewrapped;
}
const stillRunning = rewrap.exitCode === null;
const windowRate = Math.round((rewrappedInWindows * 1000) / windowMs);
const last = progress.at(-1);
const rewrapSeconds = (last.at - rewrapStarted) / 1000;
rewrap.kill('SIGTERM');
const finished = await exited;
const median = (rows, key) => rows.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
const idle = { p50Ms: median(idleRows, 'p50Ms'), p99Ms: median(idleRows, 'p99Ms') };
const during = { p50Ms: median(duringRows, 'p50Ms'), p99Ms: median(duringRows, 'p99Ms') };

await stop(server);
await dropKeyspaces();
const result = {
  at: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  users,
  rows: users * 3,
  store:
    cassandra === undefined
      ? 'sqlite (WAL, synchronous=FULL), L1 off, no memcached (every GET reads the store and unwraps)'
      : `cassandra 5.0, one node (${opts.cassandra}), RF 1, L1 off, no memcached (every GET reads the store and unwraps); ` +
        're-wrap writes are LWTs paged by token range',
  load: loadavg().map((l) => Math.round(l * 100) / 100),
  ...(cassandra === undefined ? {} : { preload: population.built }),
  loadReqPerS: load,
  windowSeconds: seconds,
  rewrapRateLimit: rate,
  rounds,
  idle,
  during,
  windows: [...idleRows, ...duringRows],
  p99Ratio: Math.round((during.p99Ms / idle.p99Ms) * 100) / 100,
  rewrap: {
    rowsPerSecondDuringWindow: windowRate,
    rowsRewrapped: last.counts.rewrapped,
    seconds: Math.round(rewrapSeconds),
    runningThroughWindows: stillRunning,
    exit: finished,
    stderr: rewrapStderr.slice(-500),
  },
};
const md = [
  `# KEK re-wrap under load, ${result.at}`,
  '',
  `\`node bench/rewrap-bench.mjs --users ${users} --rate ${rate} --load ${load} --seconds ${seconds} --rounds ${rounds}` +
    `${cassandra === undefined ? '' : ` --cassandra ${opts.cassandra}`}${opts.batch === undefined ? '' : ` --batch ${opts.batch}`}\`:`,
  `${result.store}; ${users} keychains (${result.rows} rows), open-loop GET at ${load} req/s, Zipf s = 0.01 over`,
  `every user, ${seconds} s per window; idle and re-wrap windows alternate (the re-wrap SIGSTOPped while idle).`,
  '',
  '| window | p50 ms | p99 ms | p99.9 ms | max ms | ok | server CPU % | machine busy % |',
  '| ------ | ------ | ------ | -------- | ------ | -- | ------------ | -------------- |',
  ...[...idleRows, ...duringRows].map(
    (r) =>
      `| ${r.name} | ${r.p50Ms} | ${r.p99Ms} | ${r.p999Ms} | ${r.maxMs} | ${r.ok} | ${r.serverCpuPercent} | ${r.machineBusyPercent} |`,
  ),
  '',
  `Median p99 of the rounds: idle ${idle.p99Ms} ms, during the re-wrap ${during.p99Ms} ms: ${result.p99Ratio}x.`,
  `Re-wrap (--rate ${rate}): ${windowRate} rows/s over the re-wrap windows (${result.rewrap.rowsRewrapped} rows re-wrapped by the end;`,
  `${stillRunning ? 'it ran through every window' : 'it finished before the last window ended'}).`,
  `Load average at the end (1, 5, 15 min): ${result.load.join(', ')}.`,
  '',
];
writeFileSync(join(resultsDir, `${stamp}-rewrap.json`), `${JSON.stringify(result, null, 2)}\n`);
writeFileSync(join(resultsDir, `${stamp}-rewrap.md`), md.join('\n'));
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
