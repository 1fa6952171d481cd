import { deriveKey, serviceWrapInfo, unwrapKey, unwrapRootKey, type KekRing, type SecretBytes } from '@padlock/core';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPadlock, type Padlock } from '../app.js';
import { MemcachedClient } from '../cache/memcached-client.js';
import { parseConfig } from '../config.js';
import { loadKeks } from '../kek.js';
import { createLogger } from '../log.js';
import { ServiceWriter } from '../service-rows.js';
import { newCredential, newServiceRecord } from '../services.js';
import { SqliteKeyStore } from '../store/sqlite.js';
import { metricValue } from '../../../../scripts/testing/prometheus-text.mjs';

/** The one Prometheus-text reader (scripts/testing/prometheus-text.mjs), for the tests that import it from here. */
export { metricValue };

/*
 * Test helpers for memcached: which servers the tests may use, private
 * memcached processes to kill or pause, a proxy that corrupts values in
 * flight, a dump of every item a server holds, and a small Padlock fixture
 * (temp dir, KEK file, SQLite file, one service) whose instances share one
 * store and, when configured, one memcached.
 */

// ---------------------------------------------------------------------------
// Which memcached the tests may use

export const MEMCACHED_ENV = 'PADLOCK_TEST_MEMCACHED';

/** What a test needing a resource does when it is missing: run, skip with a reason, or fail. */
export type Availability =
  { readonly run: true } | { readonly run: false; readonly reason: string; readonly fail: boolean };

/**
 * The policy for a missing resource: skip with the reason, except in CI
 * (CI=true), where a missing test server is a broken pipeline and must fail.
 */
export function availability(present: boolean, reason: string, env: NodeJS.ProcessEnv = process.env): Availability {
  if (present) return { run: true };
  return { run: false, reason, fail: env['CI'] === 'true' };
}

/** node:test options: a skip reason, or none (run; in CI a missing resource then fails the test when it is used). */
export function testOptions(available: Availability): { skip?: string } {
  return available.run || available.fail ? {} : { skip: available.reason };
}

function sharedAvailability(env: NodeJS.ProcessEnv = process.env): Availability {
  return availability((env[MEMCACHED_ENV] ?? '').trim() !== '', `${MEMCACHED_ENV} is not set`, env);
}

/** Options for tests that use the shared servers of PADLOCK_TEST_MEMCACHED. */
export function sharedMemcachedOptions(): { skip?: string } {
  return testOptions(sharedAvailability());
}

/**
 * The shared servers ("host:port" each), from PADLOCK_TEST_MEMCACHED. Throws
 * when it is unset: only reached in CI, where the test must fail.
 */
export function sharedMemcachedServers(env: NodeJS.ProcessEnv = process.env): string[] {
  const available = sharedAvailability(env);
  if (!available.run) throw new Error(`${available.reason}, and CI=true: tests that need memcached must run in CI`);
  return (env[MEMCACHED_ENV] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function binaryAvailability(): Availability {
  if (process.env['PADLOCK_TEST_SERVICES'] === 'none') {
    return availability(false, 'PADLOCK_TEST_SERVICES=none: no test servers are started');
  }
  const found = spawnSync('memcached', ['-V'], { stdio: 'ignore' }).status === 0;
  return availability(found, 'the memcached binary is not installed (apt-get install memcached)');
}

/** Options for tests that spawn private memcached processes. */
export function privateMemcachedOptions(): { skip?: string } {
  return testOptions(binaryAvailability());
}

// ---------------------------------------------------------------------------
// Private memcached processes

export interface SpawnedMemcached {
  /** "127.0.0.1:port" */
  readonly address: string;
  readonly port: number;
  readonly pid: number;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
  /** SIGSTOP, resolved once every thread has stopped: the port still accepts connections, nothing answers. */
  pause(): Promise<void>;
  /** SIGCONT. */
  resume(): void;
  /** Ends the process if it still runs (paused or not). */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (free when asked; another process may take it before use). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/**
 * One command over a fresh connection, answered when the reply ends with
 * `terminator` (a whole line, e.g. "END\r\n"), or rejected after `timeoutMs`.
 */
export function memcachedCommand(
  address: string,
  command: string,
  terminator: RegExp,
  timeoutMs = 2000,
): Promise<string> {
  const [host, port] = splitAddress(address);
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`memcached ${address} did not answer "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // The terminators are short and anchored at the end: test the tail, join once at the end.
      const tail = Buffer.concat(chunks.slice(-2)).toString('latin1');
      if (terminator.test(tail)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Buffer.concat(chunks).toString('latin1'));
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(`${command}\r\n`);
  });
}

function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}

/**
 * Starts a private `memcached -l 127.0.0.1 -p <port> -U 0 -m 16` (on a free
 * port unless one is given) and resolves once it answers `version`.
 */
export async function spawnMemcached(options: { readonly port?: number } = {}): Promise<SpawnedMemcached> {
  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      return await startOne(port);
    } catch (error) {
      // Another process may have taken a port we found free; a given port is not retried.
      if (options.port !== undefined || attempt >= 4) throw error;
    }
  }
}

async function startOne(port: number): Promise<SpawnedMemcached> {
  const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '16'];
  if (process.getuid?.() === 0) args.push('-u', 'root');
  const child = spawn('memcached', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let spawnError = false;
  const exited = new Promise<void>((resolve) => {
    const done = (): void => {
      running.delete(child);
      resolve();
    };
    child.once('exit', done);
    // ENOENT and the like: no 'exit' follows.
    child.once('error', (error) => {
      spawnError = true;
      stderr += error.message;
      done();
    });
  });
  const gone = (): boolean => spawnError || child.exitCode !== null || child.signalCode !== null;
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + 5000;
  for (;;) {
    if (gone()) throw new Error(`memcached on port ${port} exited at start: ${stderr.trim()}`);
    try {
      const reply = await memcachedCommand(address, 'version', /\r\n$/, 500);
      if (reply.startsWith('VERSION')) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`memcached on port ${port} did not answer within 5 s: ${stderr.trim()}`);
    }
    await sleep(20);
  }
  if (child.pid === undefined) throw new Error('memcached has no pid');
  const pid = child.pid;
  return {
    address,
    port,
    pid,
    async kill() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
    async pause() {
      process.kill(pid, 'SIGSTOP');
      // The signal is delivered asynchronously: a worker thread may still answer a request sent now.
      await waitFor(() => allThreadsStopped(pid), 2000);
    },
    resume() {
      process.kill(pid, 'SIGCONT');
    },
    async stop() {
      if (gone()) return;
      // A stopped process acts on SIGTERM only once continued.
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Linux: every thread of `pid` is in state T (stopped). Without /proc, true at once. */
function allThreadsStopped(pid: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  return threads.every((tid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    } catch {
      return true;
    }
  });
}

// ---------------------------------------------------------------------------
// A proxy that corrupts values in flight

export interface CorruptingProxy {
  /** "127.0.0.1:port" to give the client instead of the server's address. */
  readonly address: string;
  /** While true, one byte inside the data block of every VALUE reply is flipped. */
  corrupt: boolean;
  /** How many values were corrupted so far. */
  readonly corrupted: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy to one memcached. Requests pass unchanged; replies are parsed
 * just enough to find each VALUE line and its data block, so the corruption
 * lands inside the value and never in the framing (a framing error would be a
 * protocol failure, not the seed's silently corrupt data).
 */
export async function startCorruptingProxy(target: string): Promise<CorruptingProxy> {
  const [host, port] = splitAddress(target);
  const sockets = new Set<Socket>();
  let corrupted = 0;
  const proxy: { corrupt: boolean } = { corrupt: false };
  const server: Server = createServer((downstream) => {
    const upstream = createConnection({ host, port });
    sockets.add(downstream).add(upstream);
    const end = (): void => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    downstream.on('data', (chunk: Buffer) => upstream.write(chunk));
    let pending = Buffer.alloc(0);
    /** Bytes of the current data block (with its CRLF) still to pass, and where in it to flip. */
    let blockLeft = 0;
    let blockAt = 0;
    let flipAt = -1;
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      for (;;) {
        if (blockLeft > 0) {
          if (pending.length === 0) break;
          const take = Buffer.from(pending.subarray(0, Math.min(blockLeft, pending.length)));
          pending = pending.subarray(take.length);
          if (flipAt >= blockAt && flipAt < blockAt + take.length) {
            take[flipAt - blockAt]! ^= 0xff;
            corrupted++;
          }
          blockAt += take.length;
          blockLeft -= take.length;
          out.push(take);
          continue;
        }
        const lineEnd = pending.indexOf('\r\n');
        if (lineEnd === -1) break;
        const line = pending.subarray(0, lineEnd + 2);
        pending = pending.subarray(lineEnd + 2);
        out.push(line);
        const text = line.toString('latin1');
        if (text.startsWith('VALUE ')) {
          const bytes = Number(text.trimEnd().split(' ')[3]);
          blockLeft = bytes + 2;
          blockAt = 0;
          flipAt = proxy.corrupt && bytes > 0 ? Math.floor(bytes / 2) : -1;
        }
      }
      if (out.length > 0) downstream.write(Buffer.concat(out));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('proxy has no port');
  return {
    address: `127.0.0.1:${address.port}`,
    get corrupt() {
      return proxy.corrupt;
    },
    set corrupt(value: boolean) {
      proxy.corrupt = value;
    },
    get corrupted() {
      return corrupted;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------
// Every item of a server

/** Every key a server holds (`lru_crawler metadump all`; keys come URL-encoded). */
export async function listMemcachedKeys(address: string): Promise<string[]> {
  for (let attempt = 0; ; attempt++) {
    const text = await memcachedCommand(
      address,
      'lru_crawler metadump all',
      /(^|\r?\n)(END|BUSY[^\n]*|ERROR[^\n]*)\r?\n$/,
      10000,
    );
    // One crawl at a time per server: another test's dump may be running.
    if (/(^|\n)BUSY/.test(text) && attempt < 50) {
      await sleep(50);
      continue;
    }
    if (!/(^|\n)END\r?\n$/.test(text)) throw new Error(`metadump failed: ${text.slice(-200)}`);
    const keys: string[] = [];
    for (const line of text.split('\n')) {
      const match = /^key=(\S+)/.exec(line);
      if (match !== null) keys.push(decodeURIComponent(match[1]!));
    }
    return keys;
  }
}

/** Every item a server holds, key -> value (items that expire between listing and fetching are absent). */
export async function dumpMemcached(address: string): Promise<Map<string, Buffer>> {
  const keys = await listMemcachedKeys(address);
  const client = new MemcachedClient({ servers: [address], timeoutMs: 5000, downMs: 1 });
  try {
    const items = new Map<string, Buffer>();
    for (let i = 0; i < keys.length; i += 100) {
      const { values, failures } = await client.getMany(keys.slice(i, i + 100));
      if (failures.length > 0) throw failures[0]!;
      for (const [key, value] of values) items.set(key, value);
    }
    return items;
  } finally {
    client.close();
  }
}

/** The ways a secret may show up in a cache value: raw, hex, base64 (padded or not), base64url. */
export function secretForms(secret: Buffer): Buffer[] {
  const base64 = secret.toString('base64');
  return [
    secret,
    Buffer.from(secret.toString('hex')),
    Buffer.from(secret.toString('hex').toUpperCase()),
    Buffer.from(base64),
    Buffer.from(base64.replace(/=+$/, '')),
    Buffer.from(secret.toString('base64url')),
  ];
}

// ---------------------------------------------------------------------------
// A small Padlock fixture

export const CATEGORIES = ['profile', 'payments', 'advertising'] as const;

export interface InstanceOptions {
  /** memcached servers; none by default (store only). */
  readonly memcached?: readonly string[];
  readonly l1?: boolean;
  readonly timeoutMs?: number;
  readonly downMs?: number;
  readonly deadlineMs?: number;
  readonly maxStalenessSeconds?: number;
}

export interface Instance {
  readonly padlock: Padlock;
  readonly port: number;
  /** Every line it logged. */
  readonly lines: string[];
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
  /** Wall time of the request, in ms. */
  readonly ms: number;
}

interface KeysBody {
  readonly status?: string;
  readonly categories?: readonly {
    readonly category: string;
    readonly status: string;
    readonly keys?: readonly { readonly version: number; readonly key: string }[];
  }[];
}

/** Derived keys by "category/version". */
export type KeyMap = Map<string, Buffer>;

/**
 * A temp dir with a KEK file (32 random bytes, mode 0600), a SQLite store and
 * one service with every right. Instances started from it share the store; a
 * random memcached key prefix keeps them apart from other tests on shared
 * servers.
 */
export class PadlockFixture {
  readonly serviceId = 'tester';
  readonly keyPrefix = `t${randomBytes(6).toString('hex')}:`;
  readonly agent = new Agent({ keepAlive: true, maxSockets: 32 });
  readonly #instances: Instance[] = [];

  private constructor(
    readonly dir: string,
    readonly keks: KekRing,
    readonly kek: Buffer,
    readonly credential: string,
    /** A connection of the test's own to the store, to read rows as they are. */
    readonly store: SqliteKeyStore,
  ) {}

  static async create(): Promise<PadlockFixture> {
    const dir = mkdtempSync(join(tmpdir(), 'padlock-memcached-'));
    const kek = randomBytes(32);
    writeFileSync(join(dir, 'kek.bin'), kek, { mode: 0o600 });
    const keks = loadKeks(parseConfig(baseConfig(dir, ''), dir));
    const store = new SqliteKeyStore({ path: join(dir, 'padlock.db'), busyTimeoutMs: 5000 });
    const serviceId = 'tester';
    const now = Date.now();
    const rights = { read: [...CATEGORIES], create: true, rotate: true, shred: true, hold: true };
    const writer = new ServiceWriter(store, keks);
    await writer.create(newServiceRecord(keks, serviceId, rights, now));
    const { credential, record } = newCredential(serviceId, now);
    await writer.addCredential(serviceId, record);
    return new PadlockFixture(dir, keks, kek, credential, store);
  }

  /** Starts another Padlock instance on the shared store. */
  async start(options: InstanceOptions = {}): Promise<Instance> {
    const raw = {
      ...baseConfig(this.dir, this.keyPrefix),
      cache: {
        l1: { enabled: options.l1 ?? true },
        memcached: {
          servers: [...(options.memcached ?? [])],
          // Generous unless a test is about timeouts: a loaded CI machine must not turn hits into misses.
          timeoutMs: options.timeoutMs ?? 1000,
          downMs: options.downMs ?? 1000,
          keyPrefix: this.keyPrefix,
        },
      },
      limits: { deadlineMs: options.deadlineMs ?? 5000 },
      ...(options.maxStalenessSeconds === undefined ? {} : { maxStalenessSeconds: options.maxStalenessSeconds }),
    };
    const lines: string[] = [];
    const padlock = await startPadlock(parseConfig(raw, this.dir), {
      log: createLogger('debug', (line) => lines.push(line)),
    });
    const instance = { padlock, port: padlock.port, lines };
    this.#instances.push(instance);
    return instance;
  }

  /** An authenticated request as the fixture's service. */
  call(instance: Instance, method: string, path: string, json?: unknown): Promise<Reply> {
    return httpCall(instance.port, method, path, {
      authorization: `Bearer ${this.credential}`,
      json,
      agent: this.agent,
    });
  }

  /** Creates keychains through an instance; fails unless each answers 201. */
  async createUsers(instance: Instance, userIds: readonly string[]): Promise<void> {
    for (const userId of userIds) {
      const reply = await this.call(instance, 'POST', '/v1/keychains', { userId });
      if (reply.status !== 201) throw new Error(`create ${userId}: ${reply.status} ${reply.text}`);
    }
  }

  /** Root keys of a user, unwrapped from the stored rows with the test's own KEK ring: "category/version" -> bytes. */
  async rootKeys(userId: string): Promise<KeyMap> {
    const keys: KeyMap = new Map();
    for (const row of await this.store.getKeychain(userId)) {
      if (row.wrapped === null) continue;
      const root = unwrapRootKey(this.keks, { userId, category: row.category, version: row.version }, row.wrapped);
      keys.set(`${row.category}/${row.version}`, Buffer.from(root.expose()));
      root.wipe();
    }
    return keys;
  }

  /** The derived keys the service must receive, computed here from the store and the KEK, not by the server. */
  async expectedKeys(userId: string): Promise<KeyMap> {
    const service = await this.store.getService(this.serviceId);
    if (service === undefined) throw new Error('no service');
    const derivationKey: SecretBytes = unwrapKey(this.keks, serviceWrapInfo(this.serviceId), service.wrappedKey);
    const keys: KeyMap = new Map();
    for (const row of await this.store.getKeychain(userId)) {
      if (row.wrapped === null) continue;
      const context = { serviceId: this.serviceId, userId, category: row.category, version: row.version };
      const root = unwrapRootKey(this.keks, context, row.wrapped);
      const derived = deriveKey(root, derivationKey, context);
      keys.set(`${row.category}/${row.version}`, Buffer.from(derived.expose()));
      root.wipe();
      derived.wipe();
    }
    derivationKey.wipe();
    return keys;
  }

  async close(): Promise<void> {
    for (const instance of this.#instances.splice(0)) await instance.padlock.close();
    this.agent.destroy();
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function baseConfig(dir: string, keyPrefix: string): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    categories: [...CATEGORIES],
    keks: { active: 'test-kek', files: [{ kid: 'test-kek', path: join(dir, 'kek.bin') }] },
    store: { kind: 'sqlite', sqlite: { path: join(dir, 'padlock.db'), busyTimeoutMs: 5000 } },
    cache: { memcached: { keyPrefix } },
    log: { level: 'debug', requests: false },
  };
}

/** One HTTP request; JSON bodies are parsed. */
export function httpCall(
  port: number,
  method: string,
  path: string,
  options: { readonly authorization?: string; readonly json?: unknown; readonly agent?: Agent } = {},
): Promise<Reply> {
  const started = performance.now();
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string> = {};
  if (options.authorization !== undefined) headers['authorization'] = options.authorization;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = undefined;
        if ((res.headers['content-type'] ?? '').startsWith('application/json')) parsed = JSON.parse(text);
        resolve({ status: res.statusCode ?? 0, body: parsed, text, ms: performance.now() - started });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The derived keys in a getKeys or create answer: "category/version" -> bytes. */
export function servedKeys(body: unknown): KeyMap {
  const keys: KeyMap = new Map();
  for (const category of (body as KeysBody).categories ?? []) {
    for (const { version, key } of category.keys ?? []) {
      keys.set(`${category.category}/${version}`, Buffer.from(key, 'base64url'));
    }
  }
  return keys;
}

/** True when two key maps hold the same keys with the same bytes. */
export function sameKeys(a: KeyMap, b: KeyMap): boolean {
  if (a.size !== b.size) return false;
  for (const [name, key] of a) {
    const other = b.get(name);
    if (other === undefined || !other.equals(key)) return false;
  }
  return true;
}

/** Scrapes an instance's /metrics and reads the named samples. */
export async function scrape(
  instance: Instance,
): Promise<(name: string, labels?: Readonly<Record<string, string>>) => number> {
  const reply = await httpCall(instance.port, 'GET', '/metrics');
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}`);
  return (name, labels = {}) => metricValue(reply.text, name, labels);
}

/** memcached hits, misses and corrupt values of an instance, and its store reads. */
export async function cacheCounters(
  instance: Instance,
): Promise<{ hits: number; misses: number; corrupt: number; storeReads: number }> {
  const read = await scrape(instance);
  return {
    hits: read('padlock_cache_hits_total', { cache: 'memcached' }),
    misses: read('padlock_cache_misses_total', { cache: 'memcached' }),
    corrupt: read('padlock_cache_errors_total', { cache: 'memcached', kind: 'corrupt' }),
    storeReads:
      read('padlock_store_duration_seconds_count', { op: 'get' }) +
      read('padlock_store_duration_seconds_count', { op: 'get_many' }),
  };
}

/** Polls `check` every 10 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
}

export interface LoadResult {
  readonly total: number;
  /** Answers by HTTP status. */
  readonly statuses: ReadonlyMap<number, number>;
  /** 200 answers whose keys differ from the expected ones. */
  readonly wrong: number;
  readonly maxMs: number;
}

/**
 * Closed-loop lookups (GET /v1/keys/{userId}) of users whose keys are known,
 * by `concurrency` workers, until `maxRequests` are sent or `durationMs` passes.
 * Every 200 answer is compared with the expected keys.
 */
export async function lookupLoad(
  fixture: PadlockFixture,
  instance: Instance,
  expected: ReadonlyMap<string, KeyMap>,
  options: { readonly durationMs: number; readonly maxRequests: number; readonly concurrency: number },
): Promise<LoadResult> {
  const users = [...expected.keys()];
  const statuses = new Map<number, number>();
  const end = Date.now() + options.durationMs;
  let sent = 0;
  let wrong = 0;
  let maxMs = 0;
  const worker = async (): Promise<void> => {
    while (sent < options.maxRequests && Date.now() < end) {
      const userId = users[sent++ % users.length]!;
      const reply = await fixture.call(instance, 'GET', `/v1/keys/${userId}`);
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      maxMs = Math.max(maxMs, reply.ms);
      if (reply.status === 200 && !sameKeys(servedKeys(reply.body), expected.get(userId)!)) wrong++;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { total: sent, statuses, wrong, maxMs };
}
