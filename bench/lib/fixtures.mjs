import { SecretBytes, wrapRootKey } from '@padlock/core';
import { CassandraKeyStore, newCredential, newServiceRecord, ServiceWriter, SqliteKeyStore } from '@padlock/server';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { doomedId, userId } from './workload.mjs';

/*
 * What the servers under test start from: a KEK file, a service with every
 * right and its credential, and a user population preloaded straight through
 * the store (KeyStore.insertKeys with wrapRootKey, as KeyService.create does),
 * not through HTTP. A SQLite population is built once per (size, store code)
 * and reused by later runs, since building 1 M keychains takes minutes.
 */

export const CATEGORIES = ['profile', 'payments', 'advertising'];
export const SERVICE_ID = 'bench';
const KID = 'bench-kek-1';

export function writeKek(dir) {
  const path = join(dir, 'kek.bin');
  if (!existsSync(path)) writeFileSync(path, randomBytes(32), { mode: 0o600 });
  return { kid: KID, path };
}

export function readKek(kekFile) {
  return { kid: kekFile.kid, key: SecretBytes.adopt(readFileSync(kekFile.path)) };
}

/** A Padlock config object for the bench (validated by the server itself at start). */
export function padlockConfig({
  kek,
  store,
  l1 = true,
  l1MaxEntries = 100000,
  memcached = [],
  maxStalenessSeconds = 600,
}) {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    categories: CATEGORIES,
    keks: { active: kek.kid, files: [{ kid: kek.kid, path: kek.path }] },
    store,
    maxStalenessSeconds,
    cache: {
      l1: { enabled: l1, maxEntries: l1MaxEntries },
      memcached: { servers: memcached, timeoutMs: 50, downMs: 1000, keyPrefix: 'bench:' },
    },
    limits: { maxBatch: 500, maxBodyBytes: 1048576, maxInFlight: 4096, deadlineMs: 2000 },
    log: { level: 'info', requests: false },
  };
}

function rowsFor(kek, user, now) {
  return CATEGORIES.map((category) => {
    const rootKey = SecretBytes.random(32);
    const wrapped = wrapRootKey(kek, { userId: user, category, version: 1 }, rootKey);
    rootKey.wipe();
    return { category, version: 1, wrapped, createdAt: now };
  });
}

async function addService(store, kek) {
  const now = Date.now();
  const ring = { active: kek, find: (kid) => (kid === kek.kid ? kek : undefined) };
  const permissions = { read: CATEGORIES, create: true, rotate: true, shred: true, hold: false };
  const writer = new ServiceWriter(store, ring);
  await writer.create(newServiceRecord(ring, SERVICE_ID, permissions, now));
  const { credential, record } = newCredential(SERVICE_ID, now);
  await writer.addCredential(SERVICE_ID, record);
  return credential;
}

/**
 * Inserts users first..last-1 (ids from `idOf`) with up to `concurrency`
 * keychains in flight; returns keychains per second.
 */
export async function insertUsers(store, kek, idOf, first, last, concurrency = 1, onProgress = () => {}) {
  const started = performance.now();
  let next = first;
  const insert = async (i, attempt = 0) => {
    try {
      await store.insertKeys(idOf(i), rowsFor(kek, idOf(i), Date.now()));
    } catch (error) {
      if (attempt >= 5) throw error;
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      await insert(i, attempt + 1);
    }
  };
  const worker = async () => {
    while (next < last) {
      const i = next++;
      await insert(i);
      if (i % 50000 === 0 && i > first) onProgress(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (last - first) / ((performance.now() - started) / 1000);
}

/** A key for cached populations: changes when the store's or core's code changes. */
function codeHash(root) {
  const h = createHash('sha256');
  for (const f of ['packages/server/dist/store/sqlite.js', 'packages/core/dist/wrap.js']) {
    h.update(readFileSync(join(root, f)));
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * A SQLite store with `users` readers and `doomed` users for the mix's shreds,
 * built in tmpfs (one fsync-free transaction per keychain through the store)
 * and copied to disk, or reused from an earlier run.
 * Returns { dbPath, kek, credential, users, doomed, bytes, built: { usersPerSecond, seconds, at } | null, reused }.
 */
export async function sqlitePopulation(root, cacheDir, users, doomed, log) {
  const name = `sqlite-${users}-${doomed}-${codeHash(root)}`;
  const dir = join(cacheDir, name);
  const meta = join(dir, 'population.json');
  if (existsSync(meta)) {
    const saved = JSON.parse(readFileSync(meta, 'utf8'));
    if (existsSync(saved.dbPath)) return { built: null, ...saved, reused: true };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const kekFile = writeKek(dir);
  const kek = readKek(kekFile);
  const scratchDir = existsSync('/dev/shm') ? '/dev/shm' : dir;
  const scratch = join(scratchDir, `padlock-bench-${process.pid}-${name}.db`);
  const store = new SqliteKeyStore({ path: scratch, busyTimeoutMs: 1000 });
  const started = performance.now();
  try {
    const credential = await addService(store, kek);
    log(`building ${users} + ${doomed} users in ${scratchDir} (once; reused by later runs)`);
    const usersPerSecond = await insertUsers(store, kek, userId, 0, users, 1, (i) => log(`  ${i} users`));
    await insertUsers(store, kek, doomedId, 0, doomed);
    await store.close();
    const dbPath = join(dir, 'population.db');
    copyFileSync(scratch, dbPath);
    const seconds = (performance.now() - started) / 1000;
    const built = { usersPerSecond: Math.round(usersPerSecond), seconds, scratchDir, at: new Date().toISOString() };
    const saved = { dbPath, kek: kekFile, credential, users, doomed, bytes: statSync(dbPath).size, built };
    writeFileSync(meta, JSON.stringify(saved));
    return { ...saved, reused: false };
  } finally {
    for (const suffix of ['', '-wal', '-shm']) rmSync(scratch + suffix, { force: true });
  }
}

/**
 * Preload speed on disk, as a deployment would see it: a fresh store file
 * (WAL, synchronous=FULL, so one fsync per keychain), `n` keychains one after
 * the other.
 */
export async function sqlitePreloadSample(dir, n) {
  const path = join(dir, 'preload-sample.db');
  const kek = readKek(writeKek(dir));
  const store = new SqliteKeyStore({ path, busyTimeoutMs: 1000 });
  try {
    const rate = await insertUsers(store, kek, (i) => `s${i}`, 0, n);
    return { users: n, usersPerSecond: Math.round(rate) };
  } finally {
    await store.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  }
}

/** The Cassandra population, in its own keyspace; reused when a previous run left it complete. */
export async function cassandraPopulation(cacheDir, cassandra, users, doomed, log) {
  const dir = join(cacheDir, `cassandra-${cassandra.keyspace}-${users}-${doomed}`);
  mkdirSync(dir, { recursive: true });
  const meta = join(dir, 'population.json');
  // The preload is set-up, not a measurement: generous timeouts, and a failed insert is tried again.
  const store = await CassandraKeyStore.open({ ...cassandra, readTimeoutMs: 10000, createSchema: true });
  try {
    if (existsSync(meta)) {
      const saved = JSON.parse(readFileSync(meta, 'utf8'));
      const service = await store.getService(SERVICE_ID);
      const last = await store.getKeychain(userId(users - 1));
      const lastDoomed = await store.getKeychain(doomedId(doomed - 1));
      if (service !== undefined && last.length > 0 && lastDoomed.length > 0) return { ...saved, built: null };
    }
    const kekFile = writeKek(dir);
    const kek = readKek(kekFile);
    let credential;
    if ((await store.getService(SERVICE_ID)) === undefined) {
      credential = await addService(store, kek);
    } else {
      const now = Date.now();
      const made = newCredential(SERVICE_ID, now);
      const ring = { active: kek, find: (kid) => (kid === kek.kid ? kek : undefined) };
      const writer = new ServiceWriter(store, ring);
      // A keyspace kept from a run before row MACs: seal its rows first, as `padlock migrate` would.
      await writer.migrate();
      await writer.addCredential(SERVICE_ID, made.record);
      credential = made.credential;
    }
    log(`loading ${users} + ${doomed} users into Cassandra keyspace ${cassandra.keyspace} (LWT inserts, 64 in flight)`);
    const started = performance.now();
    const usersPerSecond = await insertUsers(store, kek, userId, 0, users, 64, (i) => log(`  ${i} users`));
    await insertUsers(store, kek, doomedId, 0, doomed, 64);
    const saved = { kek: kekFile, credential, users, doomed };
    writeFileSync(meta, JSON.stringify(saved));
    return {
      ...saved,
      built: { usersPerSecond: Math.round(usersPerSecond), seconds: (performance.now() - started) / 1000 },
    };
  } finally {
    await store.close();
  }
}
