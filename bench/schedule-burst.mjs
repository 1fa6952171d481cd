import { kekRing, SecretBytes, wrapRootKey } from '@padlock/core';
import { CassandraKeyStore, sealSchedule, SqliteKeyStore } from '@padlock/server';
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, stop } from './lib/processes.mjs';

/*
 * Many scheduled shreds falling due at once, while lookups run: one `padlock
 * serve` (its own process, SQLite store, default cache) with N schedules all
 * due at the same instant, and an open-loop lookup load at a fixed rate
 * (latency from each request's intended send time, so queueing counts).
 * Measures, in one run: lookup p50/p99 while idle (before the schedules fall
 * due) and while they run, each second's lookups (timeline), and schedules
 * executed per second (from the moment they fell due to the last one executed). The scheduler's settings are its
 * rate limit (docs/operations.md): batch per pass, concurrency, pass interval.
 *
 * By default `padlock serve` runs its scheduler in a child process of its own
 * (scheduler.ownProcess); BURST_OWN_PROCESS=false runs it on the serving loop,
 * BURST_MAX_PER_SECOND=N sets scheduler.maxPerSecond. PADLOCK_BENCH_CASSANDRA=host:port
 * runs on a Cassandra node instead of SQLite (a keyspace of its own, dropped after). BURST_MAX_S=S ends
 * the run S seconds after the schedules fell due, all executed or not (the result says how many).
 *
 * Usage: node bench/schedule-burst.mjs [schedules=100000] [concurrency=16] [batch=500] [intervalMs=1000] [rate=300]
 * Writes bench/results/<time>-schedule-burst.json and prints it.
 */

const [count, concurrency, batch, intervalMs, rate] = [100000, 16, 500, 1000, 300].map((d, i) =>
  Number(process.argv[2 + i] ?? d),
);
const IDLE_S = Number(process.env.BURST_IDLE_S ?? 20);
// scheduler.ownProcess (serve runs the scheduler in a child process; the default) and scheduler.maxPerSecond.
const ownProcess = process.env.BURST_OWN_PROCESS !== 'false';
const maxPerSecond = Number(process.env.BURST_MAX_PER_SECOND ?? 0);
// BURST_MAX_S: stop measuring this long after the schedules fell due, executed or not (complete: false).
const MAX_S = Number(process.env.BURST_MAX_S ?? Infinity);
const LOOKUP_USERS = 5000;
const CATEGORIES = ['profile', 'payments', 'advertising'];
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages', 'cli', 'dist', 'main.js');

const dir = mkdtempSync(join(tmpdir(), 'padlock-burst-'));
const kekKey = randomBytes(32);
writeFileSync(join(dir, 'kek.bin'), kekKey, { mode: 0o600 });
const keks = kekRing([{ kid: 'k1', key: SecretBytes.adopt(Buffer.from(kekKey)) }], 'k1');
const dbPath = join(dir, 'padlock.db');
const cassandraAt = process.env.PADLOCK_BENCH_CASSANDRA;
const cassandraStore = {
  contactPoints: [cassandraAt ?? ''],
  localDataCenter: 'dc1',
  keyspace: `padlock_burst_${randomBytes(4).toString('hex')}`,
  replication: { dc1: 1 },
};
const storeConfig =
  cassandraAt === undefined
    ? { kind: 'sqlite', sqlite: { path: dbPath } }
    : { kind: 'cassandra', cassandra: cassandraStore };

function openStore(createSchema = true) {
  return cassandraAt === undefined
    ? Promise.resolve(new SqliteKeyStore({ path: dbPath, busyTimeoutMs: 5000 }))
    : CassandraKeyStore.open({
        ...cassandraStore,
        connectTimeoutMs: 10000,
        readTimeoutMs: 12000,
        hedgeAfterMs: 0,
        createSchema,
      });
}

function keyRows(userId, now) {
  return CATEGORIES.map((category) => {
    const root = SecretBytes.random(32);
    const wrapped = wrapRootKey(keks.active, { userId, category, version: 1 }, root);
    root.wipe();
    return { category, version: 1, wrapped, createdAt: now };
  });
}

/** The users looked up, and `count` users with schedules due at `executeAt()`, written straight into the store. */
async function populate(executeAt) {
  const store = await openStore();
  let now = Date.now();
  // SQLite writes are synchronous anyway; on Cassandra 32 at a time.
  const parallel = cassandraAt === undefined ? 1 : 32;
  for (let i = 0; i < LOOKUP_USERS; i += parallel)
    await Promise.all(
      Array.from({ length: Math.min(parallel, LOOKUP_USERS - i) }, (_, j) =>
        store.insertKeys(`look-${i + j}`, keyRows(`look-${i + j}`, now)),
      ),
    );
  // A keyspace whose scheduler never ran has no due cursor: the first pass (and the server's first withholding
  // read) would scan the whole schedules table and file each one again. Written now, while it is empty, as a
  // deployment's schedulers have it long before a mass deletion.
  if (cassandraAt !== undefined) await store.dueSchedules(Date.now(), 1);
  now = Date.now();
  const due = executeAt();
  for (let i = 0; i < count; i += parallel)
    await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, (_, j) => doomed(store, i + j, now, due)));
  await store.close();
  return due;
}

/** One user to shred and its schedule. */
async function doomed(store, i, now, executeAt) {
  const userId = `doomed-${i}`;
  await store.insertKeys(userId, keyRows(userId, now));
  const schedule = sealSchedule(keks.active, {
    scheduleId: `sched-${randomUUID()}`,
    userId,
    category: null,
    executeAt,
    serveDuringGrace: true,
    requestedBy: 'bench',
    createdAt: now,
    state: 'pending',
    finishedAt: null,
    finishedBy: null,
    claimedBy: null,
    leaseUntil: null,
  });
  if (!(await store.insertSchedule(schedule))) throw new Error('schedule insert failed');
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
function get(port, path, credential) {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent, headers: credential ? { authorization: `Bearer ${credential}` } : {} },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.setTimeout(10000, () => req.destroy());
    req.end();
  });
}

function percentiles(values) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q) =>
    v.length === 0 ? null : Math.round(v[Math.min(v.length - 1, Math.floor(q * v.length))] * 100) / 100;
  return { n: v.length, p50: at(0.5), p99: at(0.99), max: at(1) };
}

async function executed(port) {
  const text = (await get(port, '/metrics')).body;
  const line = text
    .split('\n')
    .find((l) => l.startsWith('padlock_schedules_executed_total{') && l.includes('outcome="executed"'));
  return line === undefined ? 0 : Number(line.split(/\s+/).at(-1));
}

const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
const setupStarted = Date.now();
// Due after the schedules are written, the server has started and the idle phase has run (setup time is
// estimated generously; BURST_SETUP_MS is the estimate per schedule: raise it on a busy machine).
const executeAt = await populate(
  () => Date.now() + count * Number(process.env.BURST_SETUP_MS ?? 3) + 10000 + IDLE_S * 1000,
);
const setupS = (Date.now() - setupStarted) / 1000;
if (Date.now() + IDLE_S * 1000 + 3000 > executeAt)
  throw new Error('setup took longer than planned; raise BURST_SETUP_MS');
const config = {
  listen: { host: '127.0.0.1', port: 0 },
  categories: CATEGORIES,
  keks: { active: 'k1', files: [{ kid: 'k1', path: join(dir, 'kek.bin') }] },
  store: storeConfig,
  scheduler: { intervalMs, batch, concurrency, maxPerSecond, ownProcess },
  log: { level: 'info', requests: false },
};
writeFileSync(join(dir, 'padlock.json'), JSON.stringify(config));
const created = execFileSync(
  process.execPath,
  [CLI, 'service', 'create', 'bench', '--read', CATEGORIES.join(','), '-c', join(dir, 'padlock.json')],
  { stdio: ['ignore', 'pipe', 'ignore'] },
);
const { credential } = JSON.parse(String(created));
const server = await startNode(
  [...(process.env.BURST_NODE_ARGS ?? '').split(' ').filter(Boolean), CLI, 'serve', '-c', join(dir, 'padlock.json')],
  {
    ready: (line) => {
      try {
        const entry = JSON.parse(line);
        return entry.msg === 'padlock listening' ? entry.port : undefined;
      } catch {
        return undefined;
      }
    },
    timeoutMs: 60000,
  },
);
try {
  const port = server.value;
  const lookups = { idle: [], burst: [] };
  const failures = { idle: 0, burst: 0 };
  const perSecond = new Map();
  let phase = 'idle';
  let firstFailure;
  let stopLoad = false;
  const started = performance.now();
  let sent = 0;
  const inFlight = new Set();
  const load = (async () => {
    while (!stopLoad) {
      const due = started + (sent * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const user = `look-${Math.floor(Math.random() * LOOKUP_USERS)}`;
      const p = phase;
      sent++;
      const op = get(port, `/v1/keys/${user}`, credential).then((reply) => {
        if (reply.status !== 200) {
          failures[p]++;
          firstFailure ??= `${reply.status} ${reply.body.slice(0, 200)}`;
        } else {
          const ms = performance.now() - due;
          lookups[p].push(ms);
          // By the second the request was due in, counted from the schedules' due instant (negative: idle).
          const second = Math.floor((performance.timeOrigin + due - executeAt) / 1000);
          (perSecond.get(second) ?? perSecond.set(second, []).get(second)).push(ms);
        }
        inFlight.delete(op);
      });
      inFlight.add(op);
    }
  })();
  await new Promise((r) => setTimeout(r, Math.max(0, executeAt - Date.now())));
  phase = 'burst';
  let done = 0;
  let lastChange = Date.now();
  while (done < count && Date.now() - executeAt < MAX_S * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await executed(port);
    if (now !== done) lastChange = Date.now();
    done = now;
    if (Date.now() - lastChange > 60000) throw new Error(`stuck at ${done} of ${count} executed`);
  }
  const burstS = (Date.now() - executeAt) / 1000;
  stopLoad = true;
  await load;
  await Promise.all(inFlight);
  const idle = percentiles(lookups.idle.slice(Math.floor(lookups.idle.length / 4))); // past the warm-up
  const burst = percentiles(lookups.burst);
  const result = {
    bench: 'schedule-burst',
    at: new Date().toISOString(),
    store: cassandraAt === undefined ? 'sqlite' : 'cassandra (one node)',
    loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
    schedules: count,
    scheduler: { intervalMs, batch, concurrency, maxPerSecond, ownProcess },
    setupS: Math.round(setupS),
    executed: done,
    complete: done >= count,
    executedPerSecond: Math.round(done / burstS),
    burstS: Math.round(burstS * 10) / 10,
    lookupRate: rate,
    lookupMs: { idle, burst },
    p99Ratio: idle.p99 && burst.p99 ? Math.round((burst.p99 / idle.p99) * 100) / 100 : null,
    lookupFailures: failures,
    // Each second's lookups (from the due instant; negative: idle): where the slow ones fall in time.
    timeline: [...perSecond].sort(([a], [b]) => a - b).map(([second, values]) => ({ second, ...percentiles(values) })),
    firstFailure: firstFailure ?? null,
  };
  const out = join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `${result.at.slice(0, 19).replaceAll(':', '-')}-schedule-burst.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
} finally {
  await stop(server);
  agent.destroy();
  if (cassandraAt !== undefined) {
    const admin = await openStore(false);
    await admin.driver.execute(`DROP KEYSPACE IF EXISTS ${cassandraStore.keyspace}`, [], { readTimeout: 120000 });
    await admin.close();
  }
  rmSync(dir, { recursive: true, force: true });
}
