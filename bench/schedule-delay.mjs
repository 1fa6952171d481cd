import { createLogger, loadKeks, operatorLifecycle, parseConfig, startPadlock } from '@padlock/server';
import { SecretBytes, wrapRootKey } from '@padlock/core';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Scheduled shreds falling due at once, with two Padlock servers (each its own
 * scheduler, default settings unless given) racing for them on one store:
 * how long after executeAt each one was executed (p50, p99, max), and how many
 * executed per second. Prints one JSON object.
 * Usage: node bench/schedule-delay.mjs [schedules=1000] [intervalMs=1000]
 *   PADLOCK_BENCH_CASSANDRA=host:port runs it on Cassandra (a fresh keyspace) instead of SQLite.
 */

const count = Number(process.argv[2] ?? 1000);
const intervalMs = Number(process.argv[3] ?? 1000);
const cassandra = process.env['PADLOCK_BENCH_CASSANDRA'];
const dir = mkdtempSync(join(tmpdir(), 'padlock-sched-bench-'));
writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
const keyspace = `padlock_sched_bench_${randomBytes(4).toString('hex')}`;
const config = parseConfig(
  {
    listen: { host: '127.0.0.1', port: 0 },
    categories: ['profile', 'payments', 'advertising'],
    keks: { active: 'k1', files: [{ kid: 'k1', path: 'kek.bin' }] },
    store:
      cassandra === undefined
        ? { kind: 'sqlite', sqlite: { path: 'padlock.db' } }
        : {
            kind: 'cassandra',
            cassandra: { contactPoints: [cassandra], localDataCenter: 'dc1', keyspace, replication: { dc1: 1 } },
          },
    scheduler: { intervalMs },
    log: { level: 'error' },
  },
  dir,
);
const quiet = createLogger('error', () => undefined);
const servers = [await startPadlock(config, { log: quiet }), await startPadlock(config, { log: quiet })];
try {
  const store = servers[0].store;
  const keks = loadKeks(config);
  const { lifecycle } = await operatorLifecycle(store, keks, config.categories, quiet);
  const executeAt = Date.now() + 5000 + count * 2;
  const ids = [];
  for (let i = 0; i < count; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, count - i) }, async (_, j) => {
        const userId = `bench-${i + j}`;
        await store.insertKeys(
          userId,
          config.categories.map((category) => {
            const root = SecretBytes.random(32);
            const wrapped = wrapRootKey(keks.active, { userId, category, version: 1 }, root);
            root.wipe();
            return { category, version: 1, wrapped, createdAt: Date.now() };
          }),
        );
        const s = await lifecycle.schedule({ userId, executeAt, serveDuringGrace: true, requestedBy: 'bench' });
        ids.push(s.scheduleId);
      }),
    );
  }
  if (Date.now() > executeAt) throw new Error('setting up took longer than the lead time; lower the count');
  let done = [];
  while (done.length < count) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Read in small chunks, so that watching does not load the store that is being measured.
    const all = [];
    for (let i = 0; i < ids.length; i += 20) {
      all.push(...(await Promise.all(ids.slice(i, i + 20).map((id) => store.getSchedule(id)))));
    }
    done = all.filter((s) => s?.state === 'executed');
    if (Date.now() - executeAt > 600_000) throw new Error(`only ${done.length} of ${count} executed after 10 min`);
  }
  const delays = done.map((s) => s.finishedAt - executeAt).sort((a, b) => a - b);
  const at = (q) => delays[Math.min(delays.length - 1, Math.floor(q * delays.length))];
  const byNode = {};
  for (const s of done) byNode[s.finishedBy] = (byNode[s.finishedBy] ?? 0) + 1;
  const spanMs = delays.at(-1) - delays[0];
  console.log(
    JSON.stringify({
      store: store.kind,
      schedules: count,
      intervalMs,
      delayMs: { min: delays[0], p50: at(0.5), p99: at(0.99), max: delays.at(-1) },
      executedPerSecond: spanMs > 0 ? Math.round((count / spanMs) * 1000) : null,
      byServer: Object.values(byNode),
    }),
  );
} finally {
  for (const s of servers) await s.close();
  if (cassandra !== undefined) {
    const { CassandraKeyStore } = await import('@padlock/server');
    const admin = await CassandraKeyStore.open({ ...config.store.cassandra, createSchema: false });
    await admin.driver.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 60000 });
    await admin.close();
  }
  rmSync(dir, { recursive: true, force: true });
}
