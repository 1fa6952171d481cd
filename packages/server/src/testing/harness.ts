import { deriveKey, serviceWrapInfo, unwrapKey, unwrapRootKey, type KekRing, type SecretBytes } from '@padlock/core';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type Agent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequestRaw, type Agent as HttpsAgent } from 'node:https';
import type { SecureVersion, TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPadlock, type Padlock } from '../app.js';
import { parseConfig, type PadlockConfig } from '../config.js';
import { loadKeks } from '../kek.js';
import { createLogger } from '../log.js';
import { ServiceWriter } from '../service-rows.js';
import { newCredential, newServiceRecord } from '../services.js';
import { CassandraKeyStore } from '../store/cassandra.js';
import { openStore } from '../store/open.js';
import type {
  AuditCheckpointRow,
  AuditRow,
  CredentialRecord,
  KeyRow,
  KeyStore,
  NewKeyRow,
  HoldRecord,
  ReadOptions,
  ReceiptRecord,
  ScheduleClaim,
  ScheduleRecord,
  ServicePermissions,
  ServiceRecord,
  ServiceRow,
  SealedChange,
  SealedPage,
  SealedRecord,
  SealedTable,
  SigningKeyRecord,
} from '../store/types.js';
import { metricValue } from '../../../../scripts/testing/prometheus-text.mjs';

/** The one Prometheus-text reader (scripts/testing/prometheus-text.mjs), for the tests that import it from here. */
export { metricValue };

/*
 * Test helper: a real server on port 0 over a real SQLite file in a temp
 * directory, with a KEK file (mode 0600) and services written straight into
 * the store. Everything it logs is captured, so tests can scan it.
 */

export const CATEGORIES = ['profile', 'payments', 'advertising'] as const;

export const ALL_RIGHTS: ServicePermissions = {
  read: [...CATEGORIES],
  create: true,
  rotate: true,
  shred: true,
  hold: true,
};

export interface ServiceSpec {
  readonly serviceId: string;
  readonly permissions: ServicePermissions;
  /** TLS client identities mapped to the service (mutual TLS); default none. */
  readonly tlsIdentities?: readonly string[];
}

export interface HarnessOptions {
  /** Services to register; default one "admin" with every right. Ignored for a peer. */
  readonly services?: readonly ServiceSpec[];
  /** Raw config merged over the harness defaults before parseConfig. */
  readonly config?: Record<string, unknown>;
  /** Decorates the store the server uses (e.g. to slow it down or make it fail). */
  readonly wrapStore?: (store: KeyStore) => KeyStore;
}

export interface HttpReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  readonly body: unknown;
}

export interface CallOptions {
  /** The service whose live credential to send; default the first service. */
  readonly as?: string;
  /** A raw Authorization header instead; null sends none. */
  readonly authorization?: string | null;
  /** Serialized as JSON with content-type application/json. */
  readonly json?: unknown;
  /** A raw body, sent as is. */
  readonly body?: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  readonly agent?: Agent;
}

/** A response's derived keys, as served. */
export interface KeysBody {
  readonly userId: string;
  readonly status: string;
  readonly maxAgeSeconds: number;
  readonly created?: boolean;
  /** Absent on batch results whose status is not ok. */
  readonly categories: readonly {
    readonly category: string;
    readonly status: string;
    readonly current?: number;
    readonly keys?: readonly { readonly version: number; readonly key: string }[];
  }[];
}

export interface BatchBody {
  readonly results: readonly KeysBody[];
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

export interface MetadataBody {
  readonly userId: string;
  readonly categories: readonly {
    readonly category: string;
    readonly state: string;
    readonly versions: readonly {
      readonly version: number;
      readonly state: string;
      readonly createdAt: string;
      readonly shreddedAt: string | null;
    }[];
  }[];
}

export interface Harness {
  readonly dir: string;
  readonly config: PadlockConfig;
  readonly keks: KekRing;
  /** The running server; replaced by restart(). */
  readonly padlock: Padlock;
  readonly port: number;
  readonly url: string;
  /** A live credential per service id. */
  readonly credentials: Readonly<Record<string, string>>;
  /** A credential per service id that was revoked before the server started. */
  readonly revokedCredentials: Readonly<Record<string, string>>;
  /** Every line the server logged (level debug, requests on), across restarts. */
  readonly logLines: string[];
  call(method: string, path: string, options?: CallOptions): Promise<HttpReply>;
  /** Closes the server and starts it again on the same files. */
  restart(): Promise<void>;
  /** Closes the server only (to work on its files, e.g. restore a backup); start() brings it back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Starts another server (another deployment group, own caches) on the same files. */
  peer(options?: Omit<HarnessOptions, 'services'>): Promise<Harness>;
  /** Root keys of a user, unwrapped from the stored rows with the test's KEK: category -> version -> bytes. */
  rootKeys(userId: string): Promise<Map<string, Map<number, Buffer>>>;
  /** The derived keys a service should receive, computed independently of the server. */
  expectedKeys(serviceId: string, userId: string): Promise<Map<string, Map<number, Buffer>>>;
  /** A service's derivation key, unwrapped from the store. */
  derivationKey(serviceId: string): Promise<Buffer>;
  close(): Promise<void>;
}

type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [name, value] of Object.entries(over)) {
    const below = out[name];
    out[name] = isPlain(below) && isPlain(value) ? merge(below, value) : value;
  }
  return out;
}

/*
 * PADLOCK_TEST_BACKEND=cassandra runs the same tests on the distributed
 * engine: a Cassandra keyspace of its own per harness (on the node named by
 * PADLOCK_TEST_CASSANDRA) with memcached on (PADLOCK_TEST_MEMCACHED).
 * scripts/test.sh runs the HTTP suite a second time that way.
 */
const BACKEND = process.env['PADLOCK_TEST_BACKEND'] ?? 'sqlite';

function env(name: string): string[] {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`PADLOCK_TEST_BACKEND=cassandra needs ${name}`);
  return value.split(',');
}

function backendConfig(dir: string): Plain {
  if (BACKEND !== 'cassandra')
    return { store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } } };
  const keyspace = `padlock_h_${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
  return {
    store: {
      kind: 'cassandra',
      cassandra: {
        contactPoints: env('PADLOCK_TEST_CASSANDRA'),
        localDataCenter: 'dc1',
        keyspace,
        replication: { dc1: 1 },
        readTimeoutMs: 5000,
      },
    },
    // A loaded CI machine stalls the event loop for tens of milliseconds: the
    // production default of 10 ms would time out healthy servers.
    cache: { memcached: { servers: env('PADLOCK_TEST_MEMCACHED'), keyPrefix: `${keyspace}:`, timeoutMs: 500 } },
  };
}

function defaultConfig(dir: string): Plain {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    categories: [...CATEGORIES],
    keks: { active: 'test-kek', files: [{ kid: 'test-kek', path: 'kek.bin' }] },
    ...backendConfig(dir),
    // Generous: the tests run in parallel on shared CI machines.
    limits: { deadlineMs: 5000 },
    log: { level: 'debug', requests: true },
  };
}

/** One HTTP request over node:http (fetch normalizes paths such as "/..", and refuses bodies on GET). */
export function httpRequest(
  port: number,
  method: string,
  path: string,
  headers: Readonly<Record<string, string>> = {},
  body?: string | Buffer,
  agent?: Agent,
): Promise<HttpReply> {
  const names = Object.keys(headers).map((h) => h.toLowerCase());
  if (body !== undefined && !names.includes('content-length') && !names.includes('transfer-encoding')) {
    // node:http frames bodies of GET and DELETE only when told their length.
    headers = { ...headers, 'content-length': String(Buffer.byteLength(body)) };
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, ...(agent === undefined ? { agent: false } : { agent }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          if ((res.headers['content-type'] ?? '').startsWith('application/json')) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = undefined;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export interface HttpsCall {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** PEM file contents: the CA to trust (only it), and a client certificate and key to present. */
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** The DNS name to ask for and verify; default the address 127.0.0.1 is verified against the certificate. */
  readonly servername?: string;
  readonly minVersion?: SecureVersion;
  readonly maxVersion?: SecureVersion;
  /** A keep-alive agent to reuse connections and sessions; default a fresh connection. */
  readonly agent?: HttpsAgent;
}

export interface HttpsReply extends HttpReply {
  /** The server certificate's SHA-256 fingerprint, as node:tls prints it. */
  readonly fingerprint: string;
  /** The connection's local port (which connection answered). */
  readonly localPort: number;
  readonly sessionReused: boolean;
  readonly reusedSocket: boolean;
}

/** One request over HTTPS to 127.0.0.1 (node:https), with what the TLS connection was. */
export function httpsRequest(port: number, path: string, call: HttpsCall = {}): Promise<HttpsReply> {
  const headers: Record<string, string> = { ...call.headers };
  if (call.body !== undefined) headers['content-length'] = String(Buffer.byteLength(call.body));
  return new Promise((resolve, reject) => {
    const req = httpsRequestRaw(
      {
        host: '127.0.0.1',
        port,
        method: call.method ?? 'GET',
        path,
        headers,
        ...(call.servername === undefined ? {} : { servername: call.servername }),
        ...(call.ca === undefined ? {} : { ca: call.ca }),
        ...(call.cert === undefined ? {} : { cert: call.cert }),
        ...(call.key === undefined ? {} : { key: call.key }),
        ...(call.minVersion === undefined ? {} : { minVersion: call.minVersion }),
        ...(call.maxVersion === undefined ? {} : { maxVersion: call.maxVersion }),
        ...(call.agent === undefined ? { agent: false } : { agent: call.agent }),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        const localPort = socket.localPort ?? 0;
        const sessionReused = socket.isSessionReused();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = undefined;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            body,
            fingerprint,
            localPort,
            sessionReused,
            reusedSocket: req.reusedSocket,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(call.body);
  });
}

async function writeServices(config: PadlockConfig, keks: KekRing, services: readonly ServiceSpec[]) {
  const credentials: Record<string, string> = {};
  const revoked: Record<string, string> = {};
  const store = await openStore(
    config,
    createLogger('error', () => undefined),
  );
  try {
    const now = Date.now();
    for (const { serviceId, permissions, tlsIdentities = [] } of services) {
      const writer = new ServiceWriter(store, keks);
      if (!(await writer.create(newServiceRecord(keks, serviceId, permissions, now, tlsIdentities)))) {
        throw new Error(`service ${serviceId} listed twice`);
      }
      const live = newCredential(serviceId, now);
      await writer.addCredential(serviceId, live.record);
      credentials[serviceId] = live.credential;
      const old = newCredential(serviceId, now);
      await writer.addCredential(serviceId, old.record);
      await writer.revokeCredential(serviceId, old.record.credentialId, now);
      revoked[serviceId] = old.credential;
    }
  } finally {
    await store.close();
  }
  return { credentials, revoked };
}

interface Shared {
  readonly dir: string;
  readonly ownsDir: boolean;
  readonly credentials: Record<string, string>;
  readonly revoked: Record<string, string>;
  readonly firstService: string;
}

/** Starts a Padlock on a fresh temp directory. Call close() when done. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'padlock-test-'));
  try {
    writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
    const config = parseConfig(merge(defaultConfig(dir), options.config ?? {}), dir);
    const services = options.services ?? [{ serviceId: 'admin', permissions: ALL_RIGHTS }];
    const { credentials, revoked } = await writeServices(config, loadKeks(config), services);
    return await launch(
      { dir, ownsDir: true, credentials, revoked, firstService: services[0]?.serviceId ?? '' },
      config,
      options,
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

async function launch(shared: Shared, config: PadlockConfig, options: HarnessOptions): Promise<Harness> {
  const keks = loadKeks(config);
  const logLines: string[] = [];
  const start = (): Promise<Padlock> => {
    const log = createLogger('debug', (line) => logLines.push(line));
    if (options.wrapStore === undefined) return startPadlock(config, { log });
    const wrap = options.wrapStore;
    return openStore(config, log).then((store) => startPadlock(config, { log, store: wrap(store) }));
  };
  let padlock = await start();
  let stopped = false;
  let closed = false;
  const peers: Harness[] = [];

  const harness: Harness = {
    dir: shared.dir,
    config,
    keks,
    logLines,
    credentials: shared.credentials,
    revokedCredentials: shared.revoked,
    get padlock() {
      return padlock;
    },
    get port() {
      return padlock.port;
    },
    get url() {
      return `http://127.0.0.1:${padlock.port}`;
    },
    call(method, path, call = {}) {
      const headers: Record<string, string> = { ...call.headers };
      if (call.authorization !== null) {
        const credential = shared.credentials[call.as ?? shared.firstService];
        headers['authorization'] ??= call.authorization ?? `Bearer ${credential ?? 'none'}`;
      }
      let body = call.body;
      if (call.json !== undefined) {
        body = JSON.stringify(call.json);
        headers['content-type'] ??= 'application/json';
      }
      return httpRequest(padlock.port, method, path, headers, body, call.agent);
    },
    async restart() {
      await harness.stop();
      await harness.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await padlock.close();
    },
    async start() {
      if (!stopped) return;
      padlock = await start();
      stopped = false;
    },
    async peer(peerOptions = {}) {
      const peerConfig = parseConfig(merge(defaultConfig(shared.dir), peerOptions.config ?? {}), shared.dir);
      const other = await launch({ ...shared, ownsDir: false }, peerConfig, peerOptions);
      peers.push(other);
      return other;
    },
    async rootKeys(userId) {
      const rows = await padlock.store.getKeychain(userId, { fresh: true });
      const result = new Map<string, Map<number, Buffer>>();
      for (const row of rows) {
        if (row.wrapped === null) continue;
        const key = unwrapRootKey(keks, { userId, category: row.category, version: row.version }, row.wrapped);
        const versions = result.get(row.category) ?? new Map<number, Buffer>();
        versions.set(row.version, Buffer.from(key.expose()));
        key.wipe();
        result.set(row.category, versions);
      }
      return result;
    },
    async derivationKey(serviceId) {
      const key = await unwrappedServiceKey(padlock.store, keks, serviceId);
      try {
        return Buffer.from(key.expose());
      } finally {
        key.wipe();
      }
    },
    async expectedKeys(serviceId, userId) {
      const serviceKey = await unwrappedServiceKey(padlock.store, keks, serviceId);
      const rows = await padlock.store.getKeychain(userId, { fresh: true });
      const result = new Map<string, Map<number, Buffer>>();
      for (const row of rows) {
        if (row.wrapped === null) continue;
        const ref = { userId, category: row.category, version: row.version };
        const rootKey = unwrapRootKey(keks, ref, row.wrapped);
        const derived = deriveKey(rootKey, serviceKey, { serviceId, ...ref });
        const versions = result.get(row.category) ?? new Map<number, Buffer>();
        versions.set(row.version, Buffer.from(derived.expose()));
        rootKey.wipe();
        derived.wipe();
        result.set(row.category, versions);
      }
      serviceKey.wipe();
      return result;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const peer of peers) await peer.close();
      if (!stopped) await padlock.close();
      if (shared.ownsDir) {
        rmSync(shared.dir, { recursive: true, force: true });
        if (config.store.kind === 'cassandra') await dropKeyspace(config);
      }
    },
  };
  return harness;
}

async function dropKeyspace(config: PadlockConfig): Promise<void> {
  const store = await CassandraKeyStore.open({ ...config.store.cassandra, createSchema: false });
  try {
    await store.driver.execute(`DROP KEYSPACE IF EXISTS ${config.store.cassandra.keyspace}`, [], {
      readTimeout: 60000,
    });
  } finally {
    await store.close();
  }
}

async function unwrappedServiceKey(store: KeyStore, keks: KekRing, serviceId: string): Promise<SecretBytes> {
  const record = await store.getService(serviceId);
  if (record === undefined) throw new Error(`no service ${serviceId}`);
  return unwrapKey(keks, serviceWrapInfo(serviceId), record.wrappedKey);
}

/** Decodes a served key (base64url, 32 bytes). */
export function keyBytes(encoded: string): Buffer {
  const bytes = Buffer.from(encoded, 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== encoded) throw new Error('not a 32-byte base64url key');
  return bytes;
}

/** The served keys of a response: category -> version -> bytes. */
export function servedKeys(body: KeysBody): Map<string, Map<number, Buffer>> {
  const result = new Map<string, Map<number, Buffer>>();
  // Batch results of users without a keychain, or shredded, carry no categories at all.
  for (const c of body.categories ?? []) {
    if (c.keys === undefined) continue;
    result.set(c.category, new Map(c.keys.map((k) => [k.version, keyBytes(k.key)])));
  }
  return result;
}

/**
 * Every textual form secret bytes could take in a log or a body: hex (both
 * cases), base64 and base64url, the latter two also as they appear when the
 * bytes sit at any offset inside a longer encoded buffer (the stable middle of
 * the encoding at each of the three alignments).
 */
export function textForms(secret: Uint8Array): string[] {
  const bytes = Buffer.from(secret);
  const forms = new Set([bytes.toString('hex'), bytes.toString('hex').toUpperCase()]);
  for (const shift of [0, 1, 2]) {
    const padded = Buffer.concat([Buffer.alloc(shift), bytes, Buffer.alloc(3)]);
    for (const encoding of ['base64', 'base64url'] as const) {
      const text = padded.toString(encoding);
      // Only the 4-character groups made of secret bytes alone, at every shift: bytes 3 .. 3*floor((n-2)/3)-1.
      forms.add(text.slice(4, 4 * Math.floor((bytes.length - 2) / 3)));
    }
  }
  return [...forms];
}

/** Names the first form of `secret` (raw, hex, base64, base64url) found in `haystack`, or undefined. */
export function findSecret(haystack: string, secret: Uint8Array): string | undefined {
  for (const raw of [Buffer.from(haystack, 'utf8'), Buffer.from(haystack, 'latin1')]) {
    if (raw.includes(Buffer.from(secret))) return 'raw bytes';
  }
  return textForms(secret).find((form) => haystack.includes(form));
}

/** Wraps a store so chosen calls take longer (to open race windows or keep requests in flight) or fail. */
export class SlowStore implements KeyStore {
  readonly kind: string;
  /** Extra milliseconds per call (reads wait after reading, inserts before writing); change at any time. */
  delays: { getKeychain?: number; getKeychains?: number; insertKeys?: number } = {};
  /** User ids whose reads fail as a broken backend would. */
  readonly failing = new Set<string>();

  constructor(private readonly inner: KeyStore) {
    this.kind = inner.kind;
  }

  async #wait(ms: number | undefined): Promise<void> {
    if (ms !== undefined && ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /* Reads wait after reading, so what they return is already stale when it arrives (a race window). */
  async getKeychain(userId: string, options?: ReadOptions): Promise<KeyRow[]> {
    if (this.failing.has(userId)) throw new Error('SQLITE_IOERR: disk I/O error');
    const rows = await this.inner.getKeychain(userId, options);
    await this.#wait(this.delays.getKeychain);
    return rows;
  }

  async getKeychains(userIds: readonly string[]): Promise<Map<string, KeyRow[]>> {
    if (userIds.some((id) => this.failing.has(id))) throw new Error('SQLITE_IOERR: disk I/O error');
    const rows = await this.inner.getKeychains(userIds);
    await this.#wait(this.delays.getKeychains);
    return rows;
  }

  async insertKeys(userId: string, rows: readonly NewKeyRow[]): Promise<NewKeyRow[]> {
    await this.#wait(this.delays.insertKeys);
    return this.inner.insertKeys(userId, rows);
  }

  shred(userId: string, category: string | undefined, at: number, known?: readonly KeyRow[]): Promise<number> {
    return this.inner.shred(userId, category, at, known);
  }
  insertHold(hold: HoldRecord): Promise<boolean> {
    return this.inner.insertHold(hold);
  }
  listHolds(userId: string): Promise<HoldRecord[]> {
    return this.inner.listHolds(userId);
  }
  releaseHold(
    userId: string,
    holdId: string,
    release: { releasedAt: number; releasedBy: string; mac: Uint8Array },
  ): Promise<boolean> {
    return this.inner.releaseHold(userId, holdId, release);
  }
  insertSchedule(schedule: ScheduleRecord): Promise<boolean> {
    return this.inner.insertSchedule(schedule);
  }
  getSchedule(scheduleId: string): Promise<ScheduleRecord | undefined> {
    return this.inner.getSchedule(scheduleId);
  }
  listSchedules(userId: string): Promise<ScheduleRecord[]> {
    return this.inner.listSchedules(userId);
  }
  dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    return this.inner.dueSchedules(now, limit);
  }
  withholdingSchedules(): Promise<ScheduleRecord[]> {
    return this.inner.withholdingSchedules();
  }
  claimSchedule(scheduleId: string, expected: ScheduleClaim, claim: ScheduleClaim): Promise<boolean> {
    return this.inner.claimSchedule(scheduleId, expected, claim);
  }
  finishSchedule(
    scheduleId: string,
    expected: ScheduleClaim,
    finish: { state: 'executed' | 'cancelled'; finishedAt: number; finishedBy: string; mac: Uint8Array },
  ): Promise<boolean> {
    if (this.finishLandsThenFails > 0) {
      this.finishLandsThenFails--;
      return this.inner.finishSchedule(scheduleId, expected, finish).then(() => {
        throw Object.assign(new Error('Operation timed out'), { name: 'OperationTimedOutError' });
      });
    }
    return this.inner.finishSchedule(scheduleId, expected, finish);
  }
  journalApplied(): Promise<number> {
    return this.inner.journalApplied();
  }
  advanceJournal(from: number, to: number): Promise<boolean> {
    return this.inner.advanceJournal(from, to);
  }
  createService(row: ServiceRow): Promise<boolean> {
    return this.inner.createService(row);
  }
  updateService(
    row: ServiceRow,
    expectedGeneration: number,
    credentials?: readonly CredentialRecord[],
  ): Promise<boolean> {
    return this.inner.updateService(row, expectedGeneration, credentials);
  }
  getService(serviceId: string): Promise<ServiceRecord | undefined> {
    return this.inner.getService(serviceId);
  }
  listServices(): Promise<ServiceRecord[]> {
    return this.inner.listServices();
  }
  putReceipt(receipt: ReceiptRecord): Promise<void> {
    return this.inner.putReceipt(receipt);
  }
  getReceipt(receiptId: string): Promise<ReceiptRecord | undefined> {
    return this.inner.getReceipt(receiptId);
  }
  listReceipts(userId: string): Promise<ReceiptRecord[]> {
    return this.inner.listReceipts(userId);
  }
  insertSigningKey(key: SigningKeyRecord): Promise<boolean> {
    return this.inner.insertSigningKey(key);
  }
  scanSealed(table: SealedTable, after: string | null, limit: number): Promise<SealedPage> {
    return this.inner.scanSealed(table, after, limit);
  }

  replaceSealed(record: SealedRecord, sealed: Uint8Array): Promise<boolean> {
    return this.inner.replaceSealed(record, sealed);
  }

  replaceSealedAll(changes: readonly SealedChange[]): Promise<boolean[]> {
    return this.inner.replaceSealedAll(changes);
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.inner.listSigningKeys();
  }
  /**
   * How many schedule finishes land in the store and then fail as a timed-out write does (Cassandra:
   * a conditional write whose outcome the client never heard).
   */
  finishLandsThenFails = 0;
  /** Set to make audit appends fail as a store that is down would. */
  auditFailing = false;
  appendAudit(row: AuditRow): Promise<boolean> {
    if (this.auditFailing) return Promise.reject(new Error('SQLITE_IOERR: disk I/O error'));
    return this.inner.appendAudit(row);
  }
  listAuditChains(): Promise<string[]> {
    return this.inner.listAuditChains();
  }
  readAuditChain(chainId: string): Promise<AuditRow[]> {
    return this.inner.readAuditChain(chainId);
  }
  putAuditCheckpoint(checkpoint: AuditCheckpointRow): Promise<void> {
    return this.inner.putAuditCheckpoint(checkpoint);
  }
  listAuditCheckpoints(chainId: string): Promise<AuditCheckpointRow[]> {
    return this.inner.listAuditCheckpoints(chainId);
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Asserts the error contract: this status and code, and exactly {"error":{"code","message"}}. */
export function assertError(reply: HttpReply, status: number, code: string, context = ''): void {
  const where = `${context === '' ? '' : `${context}: `}${reply.status} ${reply.text.slice(0, 300)}`;
  assert.equal(reply.status, status, where);
  assert.match(String(reply.headers['content-type']), /^application\/json/, where);
  const body = reply.body as ErrorBody | undefined;
  assert.ok(body !== undefined && typeof body === 'object', where);
  assert.deepEqual(Object.keys(body), ['error'], where);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message'], where);
  assert.equal(body.error.code, code, where);
  assert.equal(typeof body.error.message, 'string', where);
  assert.ok(body.error.message.length > 0, where);
}
