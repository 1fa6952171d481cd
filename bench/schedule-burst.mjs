import { kekRing, SecretBytes, wrapRootKey } from '@padlock/core';
import { sealSchedule, SqliteKeyStore } from '@padlock/server';
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, stop } from './lib/processes.mjs';

/*
 * Many scheduled shreds falling due at once, while lookups run: one `padlock
 * serve` (its own process, SQLite store, default cache) with N schedules all
 * due at the same instant, and an open-loop lookup load at a fixed rate
 * (latency from each request's intended send time, so queueing counts).
 * Measures, in one run: lookup p50/p99 while idle (before the schedules fall
 * due) and while they run, and schedules executed per second (from the moment
 * they fell due to the last one executed). The scheduler's settings are its
 * rate limit (docs/operations.md): batch per pass, concurrency, pass interval.
 *
 * Usage: node bench/schedule-burst.mjs [schedules=100000] [concurrency=16] [batch=500] [intervalMs=1000] [rate=300]
 * Writes bench/results/<time>-schedule-burst.json and prints it.
 */

const [count, concurrency, batch, intervalMs, rate] = [100000, 16, 500, 1000, 300].map((d, i) =>
  Number(process.argv[2 + i] ?? d),
);
const IDLE_S = Number(process.env.BURST_IDLE_S ?? 20);
const LOOKUP_USERS = 5000;
const CATEGORIES = ['profile', 'payments', 'advertising'];
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages', 'cli', 'dist', 'main.js');

const dir = mkdtempSync(join(tmpdir(), 'padlock-burst-'));
const kekKey = randomBytes(32);
writeFileSync(join(dir, 'kek.bin'), kekKey, { mode: 0o600 });
const keks = kekRing([{ kid: 'k1', key: SecretBytes.adopt(Buffer.from(kekKey)) }], 'k1');
const dbPath = join(dir, 'padlock.db');

function keyRows(userId, now) {
  return CATEGORIES.map((category) => {
    const root = SecretBytes.random(32);
    const wrapped = wrapRootKey(keks.active, { userId, category, version: 1 }, root);
    root.wipe();
    return { category, version: 1, wrapped, createdAt: now };
  });
}

/** Users, a service, and `count` schedules due at `executeAt`, written straight into the store. */
async function populate(executeAt) {
  const store = new SqliteKeyStore({ path: dbPath });
  const now = Date.now();
  for (let i = 0; i < LOOKUP_USERS; i++) await store.insertKeys(`look-${i}`, keyRows(`look-${i}`, now));
  for (let i = 0; i < count; i++) {
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
  await store.close();
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

const setupStarted = Date.now();
// Due after the server has started and the idle phase has run (setup time is estimated generously).
const executeAt = setupStarted + count * 1.5 + 10000 + IDLE_S * 1000;
await populate(executeAt);
const setupS = (Date.now() - setupStarted) / 1000;
if (Date.now() + IDLE_S * 1000 + 3000 > executeAt) throw new Error('setup took longer than planned; fewer schedules');
const config = {
  listen: { host: '127.0.0.1', port: 0 },
  categories: CATEGORIES,
  keks: { active: 'k1', files: [{ kid: 'k1', path: join(dir, 'kek.bin') }] },
  store: { kind: 'sqlite', sqlite: { path: dbPath } },
  scheduler: { intervalMs, batch, concurrency },
  log: { level: 'info', requests: false },
};
writeFileSync(join(dir, 'padlock.json'), JSON.stringify(config));
const created = execFileSync(
  process.execPath,
  [CLI, 'service', 'create', 'bench', '--read', CATEGORIES.join(','), '-c', join(dir, 'padlock.json')],
  { stdio: ['ignore', 'pipe', 'ignore'] },
);
const { credential } = JSON.parse(String(created));
const server = await startNode([CLI, 'serve', '-c', join(dir, 'padlock.json')], {
  ready: (line) => {
    try {
      const entry = JSON.parse(line);
      return entry.msg === 'padlock listening' ? entry.port : undefined;
    } catch {
      return undefined;
    }
  },
  timeoutMs: 60000,
});
try {
  const port = server.value;
  const lookups = { idle: [], burst: [] };
  const failures = { idle: 0, burst: 0 };
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
        } else lookups[p].push(performance.now() - due);
        inFlight.delete(op);
      });
      inFlight.add(op);
    }
  })();
  await new Promise((r) => setTimeout(r, Math.max(0, executeAt - Date.now())));
  phase = 'burst';
  let done = 0;
  let lastChange = Date.now();
  while (done < count) {
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
    store: 'sqlite',
    schedules: count,
    scheduler: { intervalMs, batch, concurrency },
    setupS: Math.round(setupS),
    executedPerSecond: Math.round(count / burstS),
    burstS: Math.round(burstS * 10) / 10,
    lookupRate: rate,
    lookupMs: { idle, burst },
    p99Ratio: idle.p99 && burst.p99 ? Math.round((burst.p99 / idle.p99) * 100) / 100 : null,
    lookupFailures: failures,
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
  rmSync(dir, { recursive: true, force: true });
}
