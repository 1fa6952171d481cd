#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  CATEGORIES,
  cassandraPopulation,
  padlockConfig,
  sqlitePopulation,
  sqlitePreloadSample,
} from './lib/fixtures.mjs';
import { writeBenchCharts } from './lib/charts.mjs';
import { parsePrometheusText } from '../scripts/testing/prometheus-text.mjs';
import { Histogram } from './lib/histogram.mjs';
import {
  atExit,
  cpuPressureUs,
  cpuSeconds,
  machineCpu,
  rssBytes,
  runLoad,
  runLoadGo,
  startNode,
  stop,
} from './lib/processes.mjs';
import { topSelfTime } from './lib/profile.mjs';
import { describeMachine, markdown } from './lib/report.mjs';
import { userId } from './lib/workload.mjs';
import { makeTestPki } from '../scripts/testing/certs.mjs';

/*
 * The benchmark driver: `npm run bench` (quick) and `npm run bench:full`.
 * It starts the bare node:http baseline, each Padlock configuration in its
 * own process (`padlock serve`), and the load generator in another, runs the
 * scenarios, stops everything it started, and writes bench/results/<time>.json
 * and .md, and latest.md. See docs/performance.md.
 */

const HELP = `usage: node bench/run.mjs [options]   (npm run bench -- [options])
  --full               every scenario, longer runs, a 1 M-user population, Cassandra (started and stopped here)
  --profile            only the warm-cache scenario, with the server under node --cpu-prof; top self-time
                       functions go into the results (bench/results/<time>-profile.*, latest-profile.md)
  --only LIST          comma-separated scenarios: bare,warm,batch,mix,l1-off,memcached,workers,tls,derive,
                       memory,cassandra-memcached,cassandra,cassandra-mix,wrk
  --users N            population for the throughput scenarios (default 100000)
  --memory-users N     population for the memory scenario (default 1000000, full runs only)
  --duration S         measured seconds per max-throughput round (default 3 quick, 5 full)
  --rounds N           bare/Padlock rounds per max-throughput row (default 3)
  --connections N      connections for max-throughput runs (default 32)
  --loadgen-procs N    load-generator processes (default 1; the machine has few cores)
  --cassandra-wait S   when a Cassandra node this run did not start is running, wait up to S seconds
                       for it to go away before skipping the Cassandra scenarios (default 0)
  --keep-cassandra     leave the Cassandra node this run started running at the end
  --open-generator G   open-loop rows: go (bench/loadgen-go, built here; the default) or node (bench/loadgen.mjs)
  --spin-sender        open loop (node generator): poll between sends instead of sleeping on 1 ms timers (sends leave within
                       microseconds, but the generator keeps a core busy that the server would otherwise get)
`;

const { values: opts } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    only: { type: 'string' },
    users: { type: 'string' },
    'memory-users': { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string', default: '32' },
    'loadgen-procs': { type: 'string', default: '1' },
    'cassandra-wait': { type: 'string', default: '0' },
    'keep-cassandra': { type: 'boolean', default: false },
    'spin-sender': { type: 'boolean', default: false },
    'open-generator': { type: 'string', default: 'go' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'packages/cli/dist/main.js');
const loadgen = join(root, 'bench/loadgen.mjs');
const resultsDir = join(root, 'bench/results');
const tmpDir = join(resultsDir, 'tmp');
const cacheDir = join(tmpDir, 'cache');
const full = opts.full;
const startedAt = new Date();
const stamp = startedAt.toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const runDir = join(tmpDir, stamp);
mkdirSync(runDir, { recursive: true });
mkdirSync(cacheDir, { recursive: true });

/**
 * The open-loop generator: bench/loadgen-go, built here when Go is installed (--open-generator go,
 * the default), else bench/loadgen.mjs (--open-generator node), whose 1 ms timers and event loop
 * put a floor of several ms under every p99 it measures on two cores.
 */
function buildGoLoadgen() {
  if (opts['open-generator'] !== 'go') return undefined;
  const out = join(tmpDir, 'loadgen-go');
  const built = spawnSync('go', ['build', '-o', out, '.'], { cwd: join(root, 'bench/loadgen-go'), encoding: 'utf8' });
  if (built.error !== undefined || built.status !== 0) {
    process.stderr.write(
      `bench: cannot build bench/loadgen-go (${built.error?.message ?? built.stderr.trim()}); open-loop rows use bench/loadgen.mjs\n`,
    );
    return undefined;
  }
  return out;
}
const goLoadgen = buildGoLoadgen();
let openJobs = 0;

const S = {
  // The population every throughput scenario draws from; memcached from scripts/memcached/start.sh
  // (64 MB) holds all of it, and so does L1 at its default size (100,000 entries).
  users: Number(opts.users ?? 100_000),
  // The population the memory scenario fills L1 with (full runs only; quick runs measure memory while
  // the warm-cache server fills up).
  memoryUsers: Number(opts['memory-users'] ?? (full ? 1_000_000 : 0)),
  cassandraUsers: full ? 20_000 : 10_000,
  doomed: full ? 5000 : 2000,
  zipfS: 0.99,
  categories: CATEGORIES.length,
  connections: Number(opts.connections),
  batchConnections: 4,
  procs: Number(opts['loadgen-procs']),
  // Max-throughput rows alternate bare and Padlock runs `rounds` times; the ratio is the median
  // of the rounds' ratios, so a burst of load from other processes moves one round, not the row.
  rounds: Number(opts.rounds ?? 3),
  warmupS: full ? 2 : 1,
  roundWarmupS: 0.5,
  maxS: Number(opts.duration ?? (full ? 5 : 3)),
  bareS: full ? 3 : 2,
  openS: full ? 15 : 6,
  openWarmupS: full ? 2 : 1,
  deriveS: full ? 2 : 0.5,
  preloadSample: full ? 5000 : 2000,
  // The warm-cache target: p99 < 2 ms at half of 0.8 x bare.
  warmOpenShareOfBare: 0.4,
};

const allScenarios = [
  'derive',
  'bare',
  'warm',
  'batch',
  'mix',
  'l1-off',
  'memcached',
  'workers',
  'tls',
  ...(full ? ['wrk', 'memory', 'cassandra-memcached', 'cassandra', 'cassandra-mix'] : []),
];
const only = opts.profile ? ['bare', 'warm'] : (opts.only?.split(',').map((s) => s.trim()) ?? allScenarios);
for (const s of only)
  if (![...allScenarios, 'wrk', 'memory', 'cassandra-memcached', 'cassandra', 'cassandra-mix'].includes(s)) {
    process.stderr.write(`unknown scenario "${s}"\n${HELP}`);
    process.exit(2);
  }
const wants = (s) => only.includes(s);

const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const run = {
  startedAt: startedAt.toISOString(),
  command: `npm run bench${full ? ':full' : ''}${
    process.argv.slice(2).filter((a) => a !== '--full').length > 0
      ? ` -- ${process.argv
          .slice(2)
          .filter((a) => a !== '--full')
          .join(' ')}`
      : ''
  }`,
  full,
  profile: opts.profile,
  machine: describeMachine(root),
  settings: S,
  openGenerator: goLoadgen === undefined ? 'node' : 'go',
  rows: [],
  targets: [],
  skipped: [],
  lines: [],
  facts: {},
};

// ---------------------------------------------------------------------------------------------
// Servers

/** The bare node:http server, or bare node:https with `tls` ({ cert, key, caFile }). */
async function startBaseline(tls = undefined) {
  const args = tls === undefined ? [] : ['--tls-cert', tls.cert, '--tls-key', tls.key];
  const server = await startNode([join(root, 'bench/baseline-server.mjs'), ...args], {
    ready: (line) => (line.startsWith('listening ') ? Number(line.split(' ')[1]) : undefined),
  });
  const name = tls === undefined ? 'bare node:http' : 'bare node:https';
  const up = { ...server, port: server.value, name, tree: false, bare: true, tls };
  upServers.add(up);
  return up;
}

/** `padlock serve -c <config> --workers N`, ready once every worker logged "padlock listening". */
async function startPadlock(name, config, { workers = 1, cpuProf = false, tls = undefined } = {}) {
  const configPath = join(runDir, `${name}.config.json`);
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const nodeArgs = cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(runDir, 'profile')}`] : [];
  const server = await startNode([...nodeArgs, cli, 'serve', '-c', configPath, '--workers', String(workers)], {
    ready: (line, lines) => {
      const listening = lines.filter((l) => l.includes('"msg":"padlock listening"'));
      if (listening.length < workers) return undefined;
      return JSON.parse(listening[0]).port;
    },
  });
  log(`${name}: listening on ${server.value} after ${Math.round(server.startupMs)} ms (pid ${server.pid})`);
  const up = { ...server, port: server.value, name, tree: workers > 1, workers, tls };
  upServers.add(up);
  return up;
}

/**
 * One request to a server of this run, over HTTPS (verified against the run's CA) when it serves
 * TLS: fetch takes no CA of its own. Resolves to { status, text }.
 */
function call(server, method, path, { headers = {}, body } = {}) {
  const request = server.tls === undefined ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path,
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        agent:
          server.tls === undefined
            ? httpAgent
            : (server.agent ??= new HttpsAgent({ keepAlive: true, ca: readFileSync(server.tls.caFile) })),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
const httpAgent = new HttpAgent({ keepAlive: true });

/** Padlock's /metrics as { 'name{labels}': value }. */
async function metrics(server) {
  const { text } = await call(server, 'GET', '/metrics');
  const values = {};
  for (const { name, labels, value } of parsePrometheusText(text).samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    values[pairs.length === 0 ? name : `${name}{${pairs.join(',')}}`] = value;
  }
  return values;
}

/**
 * What moved in /metrics between two readings: cache hits and misses by layer, cache failures
 * and shed requests. Deltas of several runs add up (see combine).
 */
function metricsDelta(before, after) {
  const delta = {};
  for (const [key, value] of Object.entries(after)) {
    if (!/^padlock_(cache_(hits|misses|errors)|requests_shed)_total/.test(key)) continue;
    const d = value - (before[key] ?? 0);
    if (d > 0) delta[key] = d;
  }
  return delta;
}

function addDeltas(deltas) {
  const sum = {};
  for (const d of deltas) for (const [k, v] of Object.entries(d)) sum[k] = (sum[k] ?? 0) + v;
  return sum;
}

/** Notes from a metrics delta: hit ratio per cache layer, then every failure count. */
function deltaNotes(delta, tree) {
  const notes = [];
  for (const cache of ['l1', 'memcached']) {
    const hits = delta[`padlock_cache_hits_total{cache="${cache}"}`] ?? 0;
    const misses = delta[`padlock_cache_misses_total{cache="${cache}"}`] ?? 0;
    // With several workers /metrics answers for one of them only.
    if (hits + misses > 0 && !tree) notes.push(`${cache} hit ${((hits / (hits + misses)) * 100).toFixed(1)}%`);
  }
  for (const [key, value] of Object.entries(delta)) {
    if (/^padlock_(cache_errors|requests_shed)_total/.test(key)) {
      notes.push(`${key.replace('padlock_', '').replace('_total', '')} ${value}`);
    }
  }
  return notes;
}

/**
 * Reads every user once through batch-get (100 per call, every category the bench service reads,
 * one call at a time) so the caches hold the whole population, and L1 the answer a lookup of
 * every category gets (rendered once per keychain and service); `onStage` runs after each quarter. A call the server
 * sheds (503) is retried after a pause: the sweep is set-up, not a measurement.
 */
async function sweep(server, credential, users, onStage = async () => {}) {
  const stages = [0.25, 0.5, 0.75, 1].map((f) => Math.round(users * f));
  let done = 0;
  let shed = 0;
  for (const upTo of stages) {
    for (let from = done; from < upTo; from += 100) {
      const ids = [];
      for (let i = from; i < Math.min(upTo, from + 100); i++) ids.push(userId(i));
      for (let attempt = 0; ; attempt++) {
        const res = await call(server, 'POST', '/v1/keys/batch-get', {
          headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
          body: JSON.stringify({ userIds: ids }),
        });
        const body = res.text;
        if (res.status === 200) break;
        if (res.status !== 503 || attempt === 100) {
          throw new Error(`warm-up batch-get answered ${res.status}: ${body.slice(0, 300)}`);
        }
        shed += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    done = upTo;
    await onStage(done);
  }
  if (shed > 0) log(`  (the server shed ${shed} warm-up calls; retried)`);
}

// ---------------------------------------------------------------------------------------------
// Measurements

const workloads = {
  get: (credential, users) => ({ kind: 'get', users, zipfS: S.zipfS, credential }),
  batch: (credential, users) => ({ kind: 'batch', users, zipfS: S.zipfS, credential, batchSize: 100 }),
  mix: (credential, users, tag) => ({
    kind: 'mix',
    users,
    zipfS: S.zipfS,
    credential,
    createShare: 0.0005,
    shredShare: 0.0005,
    doomed: S.doomed,
    tag,
  }),
};

// A response on a connection with no request outstanding is the server's doing, not a failed request.
const isUnsolicited = (kind) => kind.startsWith('unsolicited');

function errorCount(r) {
  let n = 0;
  for (const [status, count] of Object.entries(r.statuses)) if (!status.startsWith('2')) n += count;
  for (const [kind, count] of Object.entries(r.errors)) if (!isUnsolicited(kind)) n += count;
  return n;
}

function statusNotes(r) {
  const notes = [];
  const odd = Object.entries(r.statuses).filter(([s]) => !s.startsWith('2'));
  if (odd.length > 0) notes.push(`statuses ${odd.map(([s, n]) => `${s}×${n}`).join(', ')}`);
  for (const [e, n] of Object.entries(r.errors)) {
    notes.push(isUnsolicited(e) ? `${e}×${n} on idle connections (not counted as errors)` : `${e}×${n}`);
  }
  return notes;
}

/** One load job against `server`, with the server's CPU use over the job. */
/** Servers of this run that are up: the baseline and the Padlock configuration under test. */
const upServers = new Set();

function stopServer(server) {
  upServers.delete(server);
  return stop(server);
}

/**
 * Waits (at most 5 s) until every server of the run is idle, so neither one run's backlog nor
 * the other server's garbage collection (seconds, with a million cached keychains) spills into
 * the next measurement.
 */
async function settle() {
  for (let i = 0; i < 25; i++) {
    const busy = [...upServers].map((s) => cpuSeconds(s.pid, s.tree));
    await new Promise((r) => setTimeout(r, 200));
    const after = [...upServers].map((s) => cpuSeconds(s.pid, s.tree));
    if (busy.every((b, j) => b === null || after[j] === null || after[j] - b < 0.04)) return;
  }
}

async function load(server, job) {
  await settle();
  const padlock = server.bare !== true;
  const before = padlock ? await metrics(server).catch(() => ({})) : {};
  const cpu0 = cpuSeconds(server.pid, server.tree);
  const machine0 = machineCpu();
  const pressure0 = cpuPressureUs();
  const t0 = performance.now();
  // The measured window on the system's monotonic clock (for the CPU profile); the generator starts within ~0.1 s.
  const startUs = Number(process.hrtime.bigint() / 1000n) + Math.round((job.warmupS + 0.15) * 1e6);
  const window = { startUs, endUs: startUs + Math.round(job.durationS * 1e6) };
  const fullJob = {
    host: '127.0.0.1',
    port: server.port,
    graceMs: 3000,
    timeoutMs: 5000,
    maxConnections: 256,
    // Over TLS no connections beyond the first ones: under a backlog the generator would open more,
    // each a full handshake on both sides, and the handshakes would deepen the backlog they answer.
    ...(server.tls === undefined ? {} : { tls: { caFile: server.tls.caFile }, maxConnections: job.connections }),
    ...job,
  };
  // bench/loadgen-go speaks no TLS: open-loop rows over TLS run on bench/loadgen.mjs.
  const result =
    job.mode === 'open' && goLoadgen !== undefined && server.tls === undefined
      ? await runLoadGo(goLoadgen, fullJob, join(runDir, `requests-${openJobs++}.bin`))
      : await runLoad(loadgen, fullJob, S.procs);
  const cpu1 = cpuSeconds(server.pid, server.tree);
  const machine1 = machineCpu();
  const pressure1 = cpuPressureUs();
  const wall = (performance.now() - t0) / 1000;
  result.serverCpuPercent = cpu0 === null || cpu1 === null ? null : Math.round(((cpu1 - cpu0) / wall) * 100);
  // Noise: CPU used by everything but the server and the generator, and how long tasks queued for a CPU.
  if (machine0 !== null && machine1 !== null && result.serverCpuPercent !== null) {
    const busy = ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * 100 * cpus().length;
    const ours = result.serverCpuPercent + result.loadgenCpuPercent.reduce((a, b) => a + b, 0);
    result.otherCpuPercent = Math.max(0, Math.round(busy - ours));
  }
  result.cpuPressurePercent =
    pressure0 === null || pressure1 === null ? null : Math.round((pressure1 - pressure0) / 1e4 / wall);
  result.window = window;
  result.metricsDelta = padlock ? metricsDelta(before, await metrics(server).catch(() => ({}))) : {};
  result.tree = server.tree;
  return result;
}

async function maxRun(
  server,
  workload,
  { connections = S.connections, durationS = S.maxS, warmupS = S.warmupS, reconnect = false } = {},
) {
  const r = await load(server, { mode: 'closed', connections, durationS, warmupS, workload, reconnect });
  r.rps = r.ok / r.windowS;
  return r;
}

async function openRun(server, workload, rate, { durationS = S.openS, warmupS = S.openWarmupS } = {}) {
  const r = await load(server, {
    mode: 'open',
    rate,
    spin: opts['spin-sender'],
    connections: Math.min(64, S.connections * 2),
    durationS,
    warmupS,
    workload,
  });
  r.rps = r.ok / r.windowS;
  return r;
}

let baseline;

/** The bare server's max throughput just now, on the GET workload: the denominator of every ratio. */
async function bareNow() {
  const r = await maxRun(baseline, workloads.get('unused', S.users), { durationS: S.bareS });
  log(`  bare node:http now: ${Math.round(r.rps)} req/s`);
  return r;
}

function addRow(id, title, r, extra = {}) {
  const row = {
    id,
    title,
    mode: r.mode === 'closed' ? 'max' : 'open',
    connections: r.connections,
    offeredRate: r.offeredRate,
    rps: r.rps,
    latency: r.latency.summary(),
    lag: r.mode === 'open' ? r.lag.summary() : undefined,
    byKind: Object.fromEntries(Object.entries(r.byKind).map(([k, h]) => [k, h.summary()])),
    statuses: r.statuses,
    errorsByKind: r.errors,
    errors: errorCount(r),
    serverCpuPercent: r.serverCpuPercent,
    otherCpuPercent: r.otherCpuPercent,
    cpuPressurePercent: r.cpuPressurePercent,
    loadgenCpuPercent: r.loadgenCpuPercent,
    connectionsOpened: r.connectionsOpened,
    notes: [],
    ...extra,
  };
  if (row.mode === 'open') {
    row.notes.push(`generator lag p99 ${row.lag.p99Ms} ms`);
    if (r.completed < r.scheduled * 0.99) row.notes.push(`completed ${r.completed} of ${r.scheduled} scheduled`);
  }
  if (r.serverCpuPercent !== null) row.notes.push(`server CPU ${r.serverCpuPercent}%`);
  row.notes.push(`loadgen CPU ${r.loadgenCpuPercent.join('+')}%`);
  if (r.otherCpuPercent !== undefined) row.notes.push(`other processes ${r.otherCpuPercent}% CPU`);
  if (r.cpuPressurePercent !== null) row.notes.push(`CPU pressure ${r.cpuPressurePercent}%`);
  row.notes.push(...statusNotes(r), ...deltaNotes(r.metricsDelta, r.tree));
  row.notes.push(...(extra.extraNotes ?? []));
  delete row.extraNotes;
  run.rows.push(row);
  log(
    `${title} [${row.mode}${row.mode === 'open' ? ` @${Math.round(r.offeredRate)}/s` : ''}]: ${Math.round(r.rps)} req/s` +
      `${row.ratio === undefined ? '' : ` (${row.ratio.toFixed(2)}x bare)`}, p50 ${row.latency.p50Ms} p99 ${row.latency.p99Ms} ` +
      `p99.9 ${row.latency.p999Ms} max ${row.latency.maxMs} ms, errors ${row.errors}`,
  );
  return row;
}

/** Several load results as one: counts and histograms added, CPU shares averaged. */
function combine(results) {
  const out = { ...results[0] };
  for (const key of ['latency', 'service', 'lag']) {
    out[key] = results.slice(1).reduce((h, r) => h.merge(r[key]), Histogram.fromJSON(results[0][key].toJSON()));
  }
  for (const key of ['completed', 'ok', 'windowS']) out[key] = results.reduce((n, r) => n + r[key], 0);
  const add = (key) => {
    const sum = {};
    for (const r of results) for (const [k, v] of Object.entries(r[key])) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  };
  out.statuses = add('statuses');
  out.errors = add('errors');
  out.byKind = {};
  for (const r of results) {
    for (const [kind, h] of Object.entries(r.byKind)) {
      out.byKind[kind] = out.byKind[kind] === undefined ? Histogram.fromJSON(h.toJSON()) : out.byKind[kind].merge(h);
    }
  }
  const mean = (xs) =>
    xs.some((x) => x === null || x === undefined) ? null : Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  out.serverCpuPercent = mean(results.map((r) => r.serverCpuPercent));
  out.otherCpuPercent = mean(results.map((r) => r.otherCpuPercent));
  out.cpuPressurePercent = mean(results.map((r) => r.cpuPressurePercent));
  out.loadgenCpuPercent = results[0].loadgenCpuPercent.map((_, i) => mean(results.map((r) => r.loadgenCpuPercent[i])));
  out.metricsDelta = addDeltas(results.map((r) => r.metricsDelta));
  out.rps = out.ok / out.windowS;
  out.window = { startUs: results[0].window.startUs, endUs: results.at(-1).window.endUs };
  return out;
}

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Max throughput of `server`, alternating with the bare server `S.rounds` times. The row's ratio
 * and req/s are the medians of the rounds'; its latencies are over all rounds.
 */
async function maxWithBare(
  id,
  title,
  server,
  workload,
  { keysPerRequest, warmupS = S.warmupS, bare: bareServer = baseline, bareOptions = {}, ...options } = {},
) {
  const bares = [];
  const runs = [];
  for (let i = 0; i < S.rounds; i++) {
    bares.push(
      await maxRun(bareServer, workloads.get('unused', S.users), {
        ...bareOptions,
        durationS: S.bareS,
        warmupS: S.roundWarmupS,
      }),
    );
    runs.push(await maxRun(server, workload, { ...options, warmupS: i === 0 ? warmupS : S.roundWarmupS }));
  }
  const per = keysPerRequest ?? 1;
  const ratios = runs.map((r, i) => (r.rps * per) / bares[i].rps);
  const r = combine(runs);
  const bare = combine(bares);
  // Throughput: the median round (one slow round, e.g. a burst of load from other processes, or
  // a first round still settling, does not drag it); latencies: every round's, tails included.
  r.rps = median(runs.map((x) => x.rps));
  bare.rps = median(bares.map((x) => x.rps));
  log(`  rounds: ${runs.map((x, i) => `${Math.round(x.rps)} / bare ${Math.round(bares[i].rps)}`).join(', ')}`);
  const row = addRow(id, title, r, {
    bareName: bareServer.name,
    windows: runs.map((x) => x.window),
    bareRps: bare.rps,
    ratio: median(ratios),
    ratios,
    keysPerSecond: keysPerRequest === undefined ? undefined : r.rps * keysPerRequest,
    extraNotes: [
      ...(bareServer === baseline ? [] : [`bare = ${bareServer.name}`]),
      `× bare per round ${ratios.map((x) => x.toFixed(2)).join(' / ')}`,
    ],
  });
  return row;
}

const NO_LATENCY = { count: 0, meanMs: null, p50Ms: null, p90Ms: null, p99Ms: null, p999Ms: null, maxMs: null };

/**
 * An open-loop run at `rate`, unless the rate is above `maxRps`, the configuration's max throughput
 * measured just before: then latency would only grow for the whole run (and the backlog would spill
 * into the next run), so the row says so instead.
 */
async function openRow(id, title, server, workload, rate, { maxRps, label }) {
  if (maxRps !== undefined && rate > maxRps) {
    const row = {
      id,
      title,
      mode: 'open',
      offeredRate: rate,
      rps: null,
      latency: NO_LATENCY,
      errors: null,
      notes: [`${label}; not run: above its max of ${fmt(maxRps)} req/s, so latency would grow without bound`],
      overloaded: true,
    };
    run.rows.push(row);
    log(`${title} [open @${Math.round(rate)}/s]: not run, above its max of ${Math.round(maxRps)} req/s`);
    return row;
  }
  return addRow(id, title, await openRun(server, workload, rate), { extraNotes: [label] });
}

function kindNotes(row) {
  for (const kind of ['create', 'shred']) {
    const k = row.byKind?.[kind];
    if (k !== undefined) row.notes.push(`${kind}: ${k.count}, p50 ${k.p50Ms} p99 ${k.p99Ms} max ${k.maxMs} ms`);
  }
}

function target(targetText, measured, met) {
  run.targets.push({ target: targetText, measured, verdict: met === null ? 'reported' : met ? 'met' : 'missed' });
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// Scenarios

async function derivation() {
  log('derivation microbenchmark (one process, one core)');
  const out = spawnSync(process.execPath, [join(root, 'bench/derive-bench.mjs'), String(S.deriveS)], {
    encoding: 'utf8',
  });
  if (out.status !== 0) throw new Error(`derive-bench failed: ${out.stderr}`);
  const cases = JSON.parse(out.stdout);
  const hash = cases['crypto.hash sha256 (64 B, one-shot)'];
  const floor = hash.perSecond / 4;
  cases['floor: 4 one-shot SHA-256 calls (HKDF extract + expand = 2 HMACs)'] = {
    perSecond: Math.round(floor),
    usPerOp: Math.round((1e6 / floor) * 1000) / 1000,
  };
  run.derivation = {
    cases,
    note:
      'HKDF-SHA256 with L = 32 is two HMACs, each two SHA-256 compressions over one block: four one-shot hashes is ' +
      'the floor for any implementation in JS calling node:crypto. deriveKey is what every lookup pays per ' +
      'category and version; unwrapRootKey is what every L1 miss pays per row.',
  };
  const d = cases['deriveKey (@padlock/core)'];
  run.facts.derivePerSecond = d.perSecond;
  log(`  deriveKey ${fmt(d.perSecond)}/s, hkdfSync ${fmt(cases['crypto.hkdfSync sha256 (L=32)'].perSecond)}/s`);
}

const runStarted = performance.now();

async function main() {
  if (!existsSync(cli)) throw new Error('packages/cli/dist/main.js is missing: run `npm run build` first');
  log(`run ${stamp}: ${opts.profile ? 'profile' : full ? 'full' : 'quick'}; scenarios ${only.join(', ')}`);
  if (wants('derive')) await attempt('derive', derivation);

  const population = await sqlitePopulation(root, cacheDir, S.users, S.doomed, log);
  run.facts.population = { users: S.users, dbBytes: population.bytes, built: population.built };
  if (!population.reused) {
    log(`  built at ${fmt(population.built.usersPerSecond)} users/s in ${population.built.seconds.toFixed(0)} s`);
  }
  if (!opts.profile && wants('warm')) {
    log(`preload sample on disk: ${S.preloadSample} keychains`);
    run.facts.preloadDisk = await sqlitePreloadSample(runDir, S.preloadSample);
    log(`  ${fmt(run.facts.preloadDisk.usersPerSecond)} users/s`);
  }

  baseline = await startBaseline();
  try {
    await scenarios(population);
  } finally {
    await stopServer(baseline);
  }
}

/** Runs one scenario; a failure is reported and the run goes on with the next one. */
async function attempt(name, scenario) {
  try {
    await scenario();
  } catch (error) {
    log(`${name} failed: ${error?.stack ?? error}`);
    run.skipped.push(`${name}: failed: ${String(error?.message ?? error).split('\n')[0]}`);
  }
  writeResults();
}

async function scenarios(population) {
  const cred = population.credential;
  const sqliteStore = (path) => ({ kind: 'sqlite', sqlite: { path } });

  // Bare server: max, and the open-loop floor at the warm-cache target rate.
  let bare0;
  if (wants('bare')) {
    bare0 = await maxRun(baseline, workloads.get(cred, S.users));
    addRow('bare', 'bare node:http (baseline)', bare0, { bareRps: bare0.rps, ratio: 1 });
    run.facts.bareRps = bare0.rps;
  }
  if (wants('wrk')) await attempt('wrk', wrkCheck);

  // Warm L1 on SQLite: memory while warming, single lookups, batch-get, then the mix (it writes).
  if (['warm', 'batch', 'mix'].some(wants))
    await attempt('warm-cache server', async () => {
      const dbCopy = join(runDir, 'warm.db');
      copyFileSync(population.dbPath, dbCopy);
      const config = padlockConfig({
        kek: population.kek,
        store: sqliteStore(dbCopy),
        l1MaxEntries: Math.max(100000, S.users),
      });
      const server = await startPadlock('warm', config, { cpuProf: opts.profile });
      run.facts.startupSqliteMs = Math.round(server.startupMs);
      try {
        const samples = [{ entries: 0, rssBytes: rssBytes(server.pid) }];
        const sweepStart = performance.now();
        const users = S.users;
        await sweep(server, cred, users, async (n) => {
          const m = await metrics(server);
          samples.push({ entries: m['padlock_l1_cache_entries'] ?? n, rssBytes: rssBytes(server.pid) });
        });
        const sweepS = (performance.now() - sweepStart) / 1000;
        log(
          `  warmed ${users} users in ${sweepS.toFixed(1)} s; RSS ${(samples.at(-1).rssBytes / 2 ** 20).toFixed(0)} MiB`,
        );
        run.facts.startupSqliteMs = Math.round(server.startupMs);
        if (!opts.profile && S.memoryUsers === 0) memoryFacts(samples, sweepS, population, server.startupMs);

        if (wants('warm'))
          await attempt('warm', async () => {
            const warm = await maxWithBare(
              'warm',
              'GET /v1/keys, warm L1 (SQLite)',
              server,
              workloads.get(cred, S.users),
            );
            run.facts.warmRps = warm.rps;
            const rate = warm.bareRps * S.warmOpenShareOfBare;
            if (opts.profile) {
              profileWindow = warm.windows;
            } else {
              const bareRow = addRow(
                'bare-open',
                'bare node:http (baseline)',
                await openRun(baseline, workloads.get(cred, S.users), rate),
                {
                  extraNotes: [`offered = ${S.warmOpenShareOfBare}× bare`],
                },
              );
              const row = await openRow(
                'warm-open',
                'GET /v1/keys, warm L1 (SQLite)',
                server,
                workloads.get(cred, S.users),
                rate,
                {
                  maxRps: warm.rps,
                  label: `offered = ${S.warmOpenShareOfBare}× bare`,
                },
              );
              for (const share of full ? [0.25, 0.5, 0.75] : [0.5]) {
                await openRow(
                  'warm-open',
                  'GET /v1/keys, warm L1 (SQLite)',
                  server,
                  workloads.get(cred, S.users),
                  warm.rps * share,
                  {
                    label: `offered = ${share * 100}% of its max`,
                  },
                );
              }
              target(
                'warm single lookups ≥ 0.8× bare req/s',
                `${fmt(warm.rps)} vs ${fmt(warm.bareRps)} req/s = ${warm.ratio.toFixed(2)}×`,
                warm.ratio >= 0.8,
              );
              target(
                `warm p99 < 2 ms at half of 0.8× bare (= ${fmt(rate)} req/s offered, open loop)`,
                row.overloaded === true
                  ? `not reachable: ${fmt(rate)} req/s is above its max of ${fmt(warm.rps)} req/s; bare node:http at that rate: p99 ${bareRow.latency.p99Ms} ms`
                  : `p99 ${row.latency.p99Ms} ms, ${fmt(row.errors)} errors; bare node:http at the same rate: p99 ${bareRow.latency.p99Ms} ms`,
                row.overloaded !== true && row.latency.p99Ms < 2 && row.errors === 0,
              );
            }
          });
        if (wants('batch'))
          await attempt('batch', async () => {
            const batch = await maxWithBare(
              'batch',
              'batch-get ×100, warm L1 (SQLite)',
              server,
              workloads.batch(cred, S.users),
              {
                connections: S.batchConnections,
                keysPerRequest: 100,
              },
            );
            batch.notes.unshift(`keys/s = users/s; derived keys/s = ${fmt(batch.keysPerSecond * CATEGORIES.length)}`);
            target(
              'batch-get of 100 ≥ 10× bare req/s, counted in keys',
              `${fmt(batch.keysPerSecond)} users/s vs ${fmt(batch.bareRps)} bare req/s = ${batch.ratio.toFixed(2)}× ` +
                `counted in users; ${fmt(batch.keysPerSecond * CATEGORIES.length)} derived keys/s = ` +
                `${(batch.ratio * CATEGORIES.length).toFixed(2)}× counted in keys returned (${CATEGORIES.length} per user); ` +
                'the verdict counts users',
              batch.ratio >= 10,
            );
            await openRow(
              'batch-open',
              'batch-get ×100, warm L1 (SQLite)',
              server,
              workloads.batch(cred, S.users),
              batch.rps * 0.5,
              {
                label: 'offered = 50% of its max',
              },
            );
          });
        if (wants('mix'))
          await attempt('mix', async () => {
            const tag = `q${stamp.replace(/[^0-9]/g, '')}`;
            const title = 'mix 99.9% GET / 0.1% create+shred, L1 (SQLite)';
            const mixMax = await maxWithBare('mix', title, server, workloads.mix(cred, S.users, `${tag}m`));
            kindNotes(mixMax);
            const rate = mixMax.bareRps * S.warmOpenShareOfBare;
            kindNotes(
              await openRow('mix-open', title, server, workloads.mix(cred, S.users, `${tag}o`), rate, {
                maxRps: mixMax.rps,
                label: `offered = ${S.warmOpenShareOfBare}× bare`,
              }),
            );
            kindNotes(
              await openRow('mix-open', title, server, workloads.mix(cred, S.users, `${tag}p`), mixMax.rps * 0.5, {
                label: 'offered = 50% of its max',
              }),
            );
          });
      } finally {
        await stopServer(server);
      }
      if (opts.profile) await profileReport();
    });

  if (wants('l1-off'))
    await attempt('l1-off', async () => {
      const config = padlockConfig({ kek: population.kek, store: sqliteStore(population.dbPath), l1: false });
      const server = await startPadlock('l1-off', config);
      try {
        const r = await maxWithBare(
          'l1-off',
          'GET /v1/keys, L1 off: SQLite read + unwrap',
          server,
          workloads.get(population.credential, S.users),
        );
        target(
          'SQLite with L1 off ≥ 0.5× bare',
          `${fmt(r.rps)} vs ${fmt(r.bareRps)} req/s = ${r.ratio.toFixed(2)}×`,
          r.ratio >= 0.5,
        );
        addRow(
          'l1-off-open',
          'GET /v1/keys, L1 off: SQLite read + unwrap',
          await openRun(server, workloads.get(population.credential, S.users), r.rps * 0.5),
          {
            extraNotes: ['offered = 50% of its max'],
          },
        );
      } finally {
        await stopServer(server);
      }
    });

  if (wants('memcached')) await attempt('memcached', () => memcachedScenario(population));
  if (wants('workers')) await attempt('workers', () => workersScenario(population));
  if (wants('tls')) await attempt('tls', () => tlsScenario(population));
  if (wants('memory')) await attempt('memory', memoryScenario);
  if (['cassandra-memcached', 'cassandra', 'cassandra-mix'].some(wants)) await attempt('cassandra', cassandraScenarios);
}

function memoryFacts(samples, sweepS, population, startupMs) {
  const users = population.users;
  const first = samples[0];
  const last = samples.at(-1);
  // Slope from the first quarter to the full cache: leaves out what the first requests cost
  // once (JIT code, buffers, the HTTP machinery), which is not per entry.
  const from = samples[1] ?? first;
  const perEntry = (last.rssBytes - from.rssBytes) / Math.max(1, last.entries - from.entries);
  const dbPerUser = population.bytes / (population.users + population.doomed);
  const tenM = 10_000_000;
  const disk = run.facts.preloadDisk?.usersPerSecond;
  const tmpfs = population.built?.usersPerSecond;
  const tenMRss = first.rssBytes + tenM * perEntry;
  run.memory = {
    samples,
    bytesPerEntry: Math.round(perEntry),
    lines: [
      `RSS grows by about ${fmt(perEntry)} bytes per cached keychain (${CATEGORIES.length} categories, one version each): ` +
        `(RSS at ${fmt(last.entries)} − RSS at ${fmt(from.entries)} entries) / ${fmt(last.entries - from.entries)}, read ` +
        `right after filling, so it includes garbage not yet collected and V8 heap slack: an upper bound.`,
      `Start-up (spawn of \`padlock serve\` to "listening", SQLite store of ${fmt(users)} users): ${Math.round(startupMs)} ms. ` +
        `Filling L1 with ${fmt(users)} users through batch-get (100 per call): ${sweepS.toFixed(1)} s (${fmt(users / sweepS)} users/s).`,
      `SQLite file: ${(population.bytes / 2 ** 20).toFixed(0)} MiB for ${fmt(users + population.doomed)} users = ${fmt(dbPerUser)} bytes per user.`,
      disk === undefined
        ? 'Preload sample on disk: not measured this run.'
        : `Preload through SqliteKeyStore.insertKeys on disk (synchronous=FULL, one transaction per keychain): ${fmt(disk)} users/s.`,
      tmpfs === undefined
        ? 'Population build speed: not recorded (population built by an older version of the bench).'
        : `Population build ${population.reused ? `(cached; measured when it was built, ${population.built.at.slice(0, 16)})` : 'this run'}, ` +
          `same calls into a store on tmpfs (no fsync cost): ${fmt(tmpfs)} users/s.`,
      `**Extrapolated to 10 M users (not measured):** SQLite file ≈ ${((tenM * dbPerUser) / 2 ** 30).toFixed(1)} GiB; ` +
        (disk === undefined ? '' : `preload ≈ ${(tenM / disk / 60).toFixed(0)} min on disk, `) +
        (tmpfs === undefined ? '' : `≈ ${(tenM / tmpfs / 60).toFixed(0)} min without fsync; `) +
        `RSS with all 10 M in L1 ≈ ${(tenMRss / 2 ** 30).toFixed(1)} GiB (start RSS + 10 M × bytes per entry); ` +
        `start-up does not depend on the store's size (no scan at start).`,
    ],
  };
  target(
    'memory: RSS vs L1 size, 10 M users',
    `${fmt(perEntry)} B per L1 entry (filled to ${fmt(last.entries)}); 10 M entries ≈ ${(tenMRss / 2 ** 30).toFixed(1)} GiB RSS ` +
      `(extrapolated); start-up ${Math.round(startupMs)} ms`,
    null,
  );
}

/**
 * Full runs: L1 filled with a large population (1 M by default) for RSS per entry, then lookups
 * against that heap; and L1 at its default size (100,000) over the same population, where Zipf
 * decides the hit ratio.
 */
async function memoryScenario() {
  const big = await sqlitePopulation(root, cacheDir, S.memoryUsers, S.doomed, log);
  if (!big.reused) {
    log(`  built at ${fmt(big.built.usersPerSecond)} users/s in ${big.built.seconds.toFixed(0)} s`);
  }
  const store = { kind: 'sqlite', sqlite: { path: big.dbPath } };
  const server = await startPadlock('memory', padlockConfig({ kek: big.kek, store, l1MaxEntries: S.memoryUsers }));
  try {
    const samples = [{ entries: 0, rssBytes: rssBytes(server.pid) }];
    const started = performance.now();
    await sweep(server, big.credential, S.memoryUsers, async (n) => {
      const m = await metrics(server);
      samples.push({ entries: m['padlock_l1_cache_entries'] ?? n, rssBytes: rssBytes(server.pid) });
    });
    const sweepS = (performance.now() - started) / 1000;
    log(
      `  filled L1 with ${S.memoryUsers} users in ${sweepS.toFixed(1)} s; RSS ${(samples.at(-1).rssBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    memoryFacts(samples, sweepS, big, server.startupMs);
    const row = await maxWithBare(
      'memory',
      `GET /v1/keys, L1 holding ${fmt(S.memoryUsers)} keychains`,
      server,
      workloads.get(big.credential, S.memoryUsers),
    );
    row.notes.unshift(`RSS ${(rssBytes(server.pid) / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    await stopServer(server);
  }
  const partial = await startPadlock('l1-default', padlockConfig({ kek: big.kek, store }));
  try {
    const row = await maxWithBare(
      'l1-default',
      `GET /v1/keys, L1 at its default 100,000 entries, ${fmt(S.memoryUsers)} users`,
      partial,
      workloads.get(big.credential, S.memoryUsers),
      { warmupS: 8 },
    );
    row.notes.unshift('warmed by 8 s of the same load');
  } finally {
    await stopServer(partial);
  }
}

async function memcachedScenario(population) {
  const port = 11411;
  const haveBinary = spawnSync('bash', ['-c', 'command -v memcached']).status === 0;
  if (!haveBinary && !full) {
    run.skipped.push('memcached: not installed (`npm run bench:full` installs it through scripts/memcached/start.sh)');
    return;
  }
  const started = spawnSync('bash', [join(root, 'scripts/memcached/start.sh'), String(port)], { encoding: 'utf8' });
  if (started.status !== 0) {
    run.skipped.push(`memcached: scripts/memcached/start.sh failed: ${started.stderr.trim()}`);
    return;
  }
  const ours = !started.stderr.includes('already running');
  const stopMemcached = () => spawnSync('bash', [join(root, 'scripts/memcached/stop.sh'), String(port)]);
  const forget = ours ? atExit(stopMemcached) : () => {};
  try {
    const config = padlockConfig({
      kek: population.kek,
      store: { kind: 'sqlite', sqlite: { path: population.dbPath } },
      l1: false,
      memcached: [`127.0.0.1:${port}`],
    });
    config.cache.memcached.keyPrefix = `bench-${stamp.replace(/[^0-9]/g, '')}:`;
    const server = await startPadlock('memcached', config);
    try {
      await sweep(server, population.credential, S.users);
      const r = await maxWithBare(
        'memcached',
        'GET /v1/keys, L1 off, memcached hit (SQLite below)',
        server,
        workloads.get(population.credential, S.users),
      );
      addRow(
        'memcached-open',
        'GET /v1/keys, L1 off, memcached hit (SQLite below)',
        await openRun(server, workloads.get(population.credential, S.users), r.rps * 0.5),
        {
          extraNotes: ['offered = 50% of its max'],
        },
      );
    } finally {
      await stopServer(server);
    }
  } finally {
    forget();
    if (ours) stopMemcached();
  }
}

async function workersScenario(population) {
  // Both servers warm up the same way (Zipf load for a few seconds), since each worker has its own L1.
  const results = {};
  for (const workers of [1, 2]) {
    const config = padlockConfig({
      kek: population.kek,
      store: { kind: 'sqlite', sqlite: { path: population.dbPath } },
      l1MaxEntries: Math.max(100000, S.users),
    });
    const server = await startPadlock(`workers-${workers}`, config, { workers });
    try {
      results[workers] = await maxWithBare(
        `workers-${workers}`,
        `GET /v1/keys, L1, \`serve --workers ${workers}\``,
        server,
        workloads.get(population.credential, S.users),
        {
          warmupS: full ? 8 : 4,
        },
      );
      results[workers].notes.unshift(`warmed by ${full ? 8 : 4} s of the same load, not a sweep`);
    } finally {
      await stopServer(server);
    }
  }
  target(
    '`padlock serve --workers 2` vs 1',
    `${fmt(results[2].rps)} vs ${fmt(results[1].rps)} req/s = ${(results[2].rps / results[1].rps).toFixed(2)}× (× bare: ${results[2].ratio.toFixed(2)} vs ${results[1].ratio.toFixed(2)})`,
    null,
  );
}

/**
 * TLS: Padlock with listen.tls against bare node:https, both TLS 1.3 with the same certificate (EC
 * P-256, made for this run by scripts/testing/certs.mjs), the generator verifying it. Warm lookups
 * on keep-alive connections (alternating rounds), new connections per second (one full handshake
 * and one request each, no session resumption), and latency at half of Padlock's max.
 */
async function tlsScenario(population) {
  const pki = makeTestPki(join(runDir, 'pki'));
  const tls = { cert: pki.server.cert, key: pki.server.key, caFile: pki.ca.cert };
  const bareTls = await startBaseline(tls);
  try {
    const dbCopy = join(runDir, 'tls.db');
    copyFileSync(population.dbPath, dbCopy);
    const config = padlockConfig({
      kek: population.kek,
      store: { kind: 'sqlite', sqlite: { path: dbCopy } },
      l1MaxEntries: Math.max(100000, S.users),
    });
    config.listen.tls = { certFile: tls.cert, keyFile: tls.key };
    const server = await startPadlock('tls', config, { tls });
    try {
      await sweep(server, population.credential, S.users);
      const warm = await maxWithBare(
        'tls-warm',
        'GET /v1/keys over TLS 1.3, warm L1 (SQLite)',
        server,
        workloads.get(population.credential, S.users),
        { bare: bareTls },
      );
      target(
        'warm lookups over TLS ≥ 1.0× bare node:https req/s',
        `${fmt(warm.rps)} vs ${fmt(warm.bareRps)} req/s = ${warm.ratio.toFixed(2)}×`,
        warm.ratio >= 1,
      );
      // Handshakes cost far more than requests: fewer connections keep the generator from being the limit.
      const handshakes = await maxWithBare(
        'tls-handshakes',
        'new TLS connections: full handshake + one GET /v1/keys each',
        server,
        workloads.get(population.credential, S.users),
        { bare: bareTls, reconnect: true, connections: 8, bareOptions: { reconnect: true, connections: 8 } },
      );
      target(
        'new TLS connections per second vs bare node:https (reported)',
        `${fmt(handshakes.rps)} vs ${fmt(handshakes.bareRps)} connections/s = ${handshakes.ratio.toFixed(2)}×`,
        null,
      );
      const rate = warm.rps * 0.5;
      const bareRow = addRow(
        'tls-bare-open',
        'bare node:https (baseline)',
        await openRun(bareTls, workloads.get(population.credential, S.users), rate),
        {
          extraNotes: ['offered = 50% of Padlock-over-TLS max', 'generator: bench/loadgen.mjs (no TLS in loadgen-go)'],
        },
      );
      const row = addRow(
        'tls-open',
        'GET /v1/keys over TLS 1.3, warm L1 (SQLite)',
        await openRun(server, workloads.get(population.credential, S.users), rate),
        { extraNotes: ['offered = 50% of its max', 'generator: bench/loadgen.mjs (no TLS in loadgen-go)'] },
      );
      target(
        `p99 over TLS at half of its max (${fmt(rate)} req/s offered, open loop)`,
        `p99 ${row.latency.p99Ms} ms, ${fmt(row.errors)} errors; bare node:https at the same rate: p99 ${bareRow.latency.p99Ms} ms`,
        null,
      );
    } finally {
      await stopServer(server);
    }
  } finally {
    await stopServer(bareTls);
  }
}

// Cassandra: a real single node from scripts/cassandra, in keyspace padlock_bench.
async function cassandraScenarios() {
  const running = () => spawnSync('pgrep', ['-f', 'CassandraDaemon']).status === 0;
  const waitS = Number(opts['cassandra-wait']);
  const deadline = Date.now() + waitS * 1000;
  let waited = 0;
  while (running() && Date.now() < deadline) {
    if (waited % 6 === 0) log(`a Cassandra node this run did not start is running; waiting (up to ${waitS} s)`);
    waited += 1;
    await new Promise((r) => setTimeout(r, 10000));
  }
  if (running()) {
    run.skipped.push(
      'Cassandra scenarios: another Cassandra node (not started by this run) is running; only one can run on this ' +
        'machine and this run does not stop what it did not start. Re-run with --cassandra-wait 900, or later.',
    );
    return;
  }
  log('starting Cassandra (scripts/cassandra/start-single.sh)');
  const stopCassandra = () =>
    spawnSync('bash', [join(root, 'scripts/cassandra/stop.sh'), 'single'], { stdio: 'ignore' });
  const forgetCassandra = opts['keep-cassandra'] ? () => {} : atExit(stopCassandra);
  const t = performance.now();
  const started = spawnSync('bash', [join(root, 'scripts/cassandra/start-single.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (started.status !== 0) {
    run.skipped.push(
      `Cassandra scenarios: start-single.sh failed: ${started.stderr.trim().split('\n').slice(-3).join(' ')}`,
    );
    forgetCassandra();
    stopCassandra();
    return;
  }
  run.facts.cassandraStartS = (performance.now() - t) / 1000;
  run.lines.push(
    `Cassandra node start (scripts/cassandra/start-single.sh until CQL answers): ${run.facts.cassandraStartS.toFixed(0)} s.`,
  );
  try {
    const cassandra = {
      contactPoints: ['127.0.0.1:9042'],
      localDataCenter: 'dc1',
      keyspace: 'padlock_bench',
      replication: { dc1: 1 },
      connectTimeoutMs: 5000,
      readTimeoutMs: 200,
    };
    const pop = await cassandraPopulation(cacheDir, cassandra, S.cassandraUsers, S.doomed, log);
    if (pop.built !== null) {
      run.facts.cassandraPreload = pop.built;
      run.lines.push(
        `Cassandra preload through CassandraKeyStore.insertKeys (one LWT batch per keychain, 64 in flight): ` +
          `${fmt(pop.built.usersPerSecond)} users/s.`,
      );
    }
    const store = { kind: 'cassandra', cassandra: { ...cassandra, createSchema: false } };
    const users = S.cassandraUsers;
    const memcachedPort = 11412;
    const mc = spawnSync('bash', [join(root, 'scripts/memcached/start.sh'), String(memcachedPort)], {
      encoding: 'utf8',
    });
    const mcOurs = mc.status === 0 && !mc.stderr.includes('already running');
    const stopMemcached = () => spawnSync('bash', [join(root, 'scripts/memcached/stop.sh'), String(memcachedPort)]);
    const forgetMemcached = mcOurs ? atExit(stopMemcached) : () => {};
    try {
      if (wants('cassandra-memcached') && mc.status === 0) {
        const config = padlockConfig({ kek: pop.kek, store, l1: false, memcached: [`127.0.0.1:${memcachedPort}`] });
        config.cache.memcached.keyPrefix = `bench-${stamp.replace(/[^0-9]/g, '')}:`;
        const server = await startPadlock('cassandra-memcached', config);
        run.facts.startupCassandraMs = Math.round(server.startupMs);
        run.lines.push(
          `Start-up of \`padlock serve\` on the Cassandra store (connect, load services): ${run.facts.startupCassandraMs} ms.`,
        );
        try {
          await sweep(server, pop.credential, users);
          const r = await maxWithBare(
            'cassandra-memcached',
            'GET /v1/keys, Cassandra, L1 off, memcached hit',
            server,
            workloads.get(pop.credential, users),
          );
          let best;
          for (const share of [0.1, 0.25, 0.5]) {
            const row = addRow(
              'cassandra-memcached-open',
              'GET /v1/keys, Cassandra, L1 off, memcached hit',
              await openRun(server, workloads.get(pop.credential, users), r.rps * share),
              {
                extraNotes: [`offered = ${share * 100}% of its max`],
              },
            );
            if (row.latency.p99Ms <= 15 && row.errors === 0) best = row;
          }
          target(
            'Cassandra + memcached: p99 within 15 ms at a stated rate',
            best === undefined
              ? `p99 above 15 ms (or errors) at 10%, 25% and 50% of its max ${fmt(r.rps)} req/s`
              : `p99 ${best.latency.p99Ms} ms at ${fmt(best.offeredRate)} req/s offered (open loop; max ${fmt(r.rps)} req/s)`,
            best !== undefined,
          );
        } finally {
          await stopServer(server);
        }
      } else if (wants('cassandra-memcached')) {
        run.skipped.push(`Cassandra + memcached: memcached did not start: ${mc.stderr.trim()}`);
      }
      if (wants('cassandra')) {
        const config = padlockConfig({ kek: pop.kek, store, l1: false });
        const server = await startPadlock('cassandra', config);
        run.facts.startupCassandraMs ??= Math.round(server.startupMs);
        try {
          const r = await maxWithBare(
            'cassandra',
            'GET /v1/keys, Cassandra, L1 off, no memcached (every read at LOCAL_ONE)',
            server,
            workloads.get(pop.credential, users),
          );
          for (const share of [0.25, 0.5]) {
            addRow(
              'cassandra-open',
              'GET /v1/keys, Cassandra, L1 off, no memcached (every read at LOCAL_ONE)',
              await openRun(server, workloads.get(pop.credential, users), r.rps * share),
              {
                extraNotes: [`offered = ${share * 100}% of its max`],
              },
            );
          }
        } finally {
          await stopServer(server);
        }
      }
      if (wants('cassandra-mix') && mc.status === 0) {
        const config = padlockConfig({ kek: pop.kek, store, memcached: [`127.0.0.1:${memcachedPort}`] });
        config.cache.memcached.keyPrefix = `bench-${stamp.replace(/[^0-9]/g, '')}:`;
        const server = await startPadlock('cassandra-mix', config);
        try {
          const tag = `c${stamp.replace(/[^0-9]/g, '')}`;
          await sweep(server, pop.credential, users);
          const title = 'mix 99.9% GET / 0.1% create+shred, Cassandra + memcached + L1';
          const m = await maxWithBare('cassandra-mix', title, server, workloads.mix(pop.credential, users, `${tag}m`));
          kindNotes(m);
          for (const share of [0.25, 0.5]) {
            kindNotes(
              await openRow(
                'cassandra-mix-open',
                title,
                server,
                workloads.mix(pop.credential, users, `${tag}${share * 100}`),
                m.rps * share,
                {
                  label: `offered = ${share * 100}% of its max`,
                },
              ),
            );
          }
        } finally {
          await stopServer(server);
        }
      }
    } finally {
      forgetMemcached();
      if (mcOurs) stopMemcached();
    }
  } finally {
    forgetCassandra();
    if (!opts['keep-cassandra']) {
      log('stopping Cassandra (scripts/cassandra/stop.sh single)');
      stopCassandra();
    }
  }
}

/** wrk -t1 against the bare server: a cross-check that our generator is not what limits max throughput. */
async function wrkCheck() {
  if (spawnSync('bash', ['-c', 'command -v wrk']).status !== 0) {
    run.skipped.push('wrk cross-check: wrk is not installed');
    return;
  }
  const out = spawnSync(
    'wrk',
    ['-t1', `-c${S.connections}`, `-d${S.maxS}s`, `http://127.0.0.1:${baseline.port}/v1/keys/u1`],
    {
      encoding: 'utf8',
    },
  );
  const m = /Requests\/sec:\s+([0-9.]+)/.exec(out.stdout);
  if (m === null) {
    run.skipped.push(`wrk cross-check: could not parse wrk output: ${out.stdout.slice(0, 200)}`);
    return;
  }
  const bare = await bareNow();
  run.facts.wrkBareRps = Number(m[1]);
  run.targets.push({
    target: 'generator check: wrk -t1 vs this generator on bare node:http (max throughput)',
    measured: `wrk ${fmt(Number(m[1]))} req/s, ours ${fmt(bare.rps)} req/s`,
    verdict: 'reported',
  });
}

let profileWindow;

async function profileReport() {
  const dir = join(runDir, 'profile');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0) {
    run.skipped.push('CPU profile: the server wrote no .cpuprofile (did it exit cleanly?)');
    return;
  }
  const file = join(dir, files[0]);
  const kept = join(resultsDir, `${stamp}-server.cpuprofile`);
  copyFileSync(file, kept);
  const result = topSelfTime(file, root, 30, profileWindow);
  run.cpuProfile = { file: `bench/results/${stamp}-server.cpuprofile`, ...result };
}

/**
 * Writes the results so far; called after every scenario, so a run that is killed (this machine
 * is shared) still leaves what it measured, marked partial.
 */
function writeResults(final = false) {
  run.partial = !final;
  run.elapsedS = (performance.now() - runStarted) / 1000;
  const json = JSON.stringify(run, null, 2);
  const suffix = opts.profile ? '-profile' : '';
  writeFileSync(join(resultsDir, `${stamp}${suffix}.json`), `${json}\n`);
  const md = markdown(run);
  writeFileSync(join(resultsDir, `${stamp}${suffix}.md`), md);
  writeFileSync(join(resultsDir, `latest${suffix}.md`), md);
  writeFileSync(join(resultsDir, `latest${suffix}.json`), `${json}\n`);
  if (final) {
    const charts = writeBenchCharts(run, join(resultsDir, `${stamp}${suffix}-charts`));
    log(`results: bench/results/${stamp}${suffix}.json, .md and latest${suffix}.md; ${charts.length} charts`);
    process.stdout.write(md);
  }
}

main()
  .then(() => writeResults(true))
  .then(
    () => {
      rmSync(runDir, { recursive: true, force: true });
      process.exit(0);
    },
    (error) => {
      process.stderr.write(`bench failed: ${error?.stack ?? error}\n`);
      if (run.rows.length > 0) writeResults(true);
      process.exit(1);
    },
  );
