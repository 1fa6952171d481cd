import type { KekRing } from '@padlock/core';
import { L1Cache } from './cache/l1.js';
import { MemcachedRows } from './cache/memcached.js';
import { MemcachedClient } from './cache/memcached-client.js';
import { ConfigError, type PadlockConfig } from './config.js';
import { AuditLog } from './audit.js';
import type { AppContext, Route } from './http/route.js';
import { PadlockHttpServer } from './http/server.js';
import { JournalGate } from './journal/gate.js';
import { openJournal } from './journal/open.js';
import type { ShredJournal } from './journal/types.js';
import { checkPlaintextListener } from './http/tls.js';
import { loadKeks } from './kek.js';
import { StoreRows, Unwrapper, type KeychainSource, type RowSource } from './keychain.js';
import { KeyService } from './keys.js';
import { Lifecycle, refreshWithheld, Scheduler, type ScheduleOutcome } from './lifecycle.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { ReceiptSigner } from './receipts.js';
import { batchGet } from './routes/batch-get.js';
import { createKeychain } from './routes/create-keychain.js';
import { getKeys } from './routes/get-keys.js';
import { cancelSchedule } from './routes/cancel-schedule.js';
import { getReceipt } from './routes/get-receipt.js';
import { healthz, metrics, openapi, readyz } from './routes/operations.js';
import { keychainMetadata } from './routes/keychain-metadata.js';
import { placeHold } from './routes/place-hold.js';
import { receiptKeys } from './routes/receipt-keys.js';
import { releaseHold } from './routes/release-hold.js';
import { rotateCategory } from './routes/rotate-category.js';
import { scheduleShred } from './routes/schedule-shred.js';
import { scheduleStatus } from './routes/schedule-status.js';
import { shredCategory } from './routes/shred-category.js';
import { shredKeychain } from './routes/shred-keychain.js';
import { ServiceRegistry } from './services.js';
import { ConsoleAssets } from './console/assets.js';
import { ServiceAdmin } from './console/service-admin.js';
import { ConsoleSessions } from './console/sessions.js';
import { addCredential } from './routes/add-credential.js';
import { consolePage } from './routes/console-page.js';
import { consoleSession } from './routes/console-session.js';
import { consoleSignIn } from './routes/console-sign-in.js';
import { consoleSignOut } from './routes/console-sign-out.js';
import { createService } from './routes/create-service.js';
import { listServices } from './routes/list-services.js';
import { revokeCredential } from './routes/revoke-credential.js';
import { setServiceRights } from './routes/set-service-rights.js';
import { CassandraKeyStore } from './store/cassandra.js';
import { SqliteKeyStore } from './store/sqlite.js';
import { openStore } from './store/open.js';
import type { KeyStore } from './store/types.js';
import { startTracing, type Tracing } from './tracing.js';

/** Every route, in the order they are matched and documented. */
export const ROUTES: readonly Route[] = [
  getKeys,
  batchGet,
  createKeychain,
  keychainMetadata,
  shredKeychain,
  shredCategory,
  rotateCategory,
  // Before getReceipt, whose {receiptId} would match "keys".
  receiptKeys,
  getReceipt,
  scheduleShred,
  scheduleStatus,
  cancelSchedule,
  placeHold,
  releaseHold,
  listServices,
  createService,
  setServiceRights,
  addCredential,
  revokeCredential,
  // The operator console (docs/console.md): 404 unless console.enabled.
  consoleSignIn,
  consoleSession,
  consoleSignOut,
  consolePage,
  healthz,
  readyz,
  metrics,
  openapi,
];

export const VERSION = '0.1.0';

/**
 * The lifecycle for a process that does not serve (the CLI): the store read
 * directly, no caches, its own audit chain. Call `audit.checkpoint()` before
 * closing so its chain head is signed.
 */
export async function offlineKeyService(
  store: KeyStore,
  config: PadlockConfig,
  log?: Logger,
): Promise<{ keys: KeyService; receipts: ReceiptSigner; audit: AuditLog }> {
  const keks = loadKeks(config);
  const metrics = new Metrics();
  const receipts = await ReceiptSigner.open(store, keks, log);
  const audit = new AuditLog(store, {
    checkpointEveryMs: config.audit.checkpointSeconds * 1000,
    signer: receipts,
    ...(log === undefined ? {} : { log }),
  });
  const keychains = new Unwrapper(new StoreRows(store, metrics), keks);
  const keys = new KeyService(store, keychains, keks, config.categories, config.maxStalenessSeconds * 1000, metrics, {
    receipts,
    audit,
  });
  return { keys, receipts, audit };
}

export interface Padlock {
  readonly config: PadlockConfig;
  readonly http: PadlockHttpServer;
  readonly store: KeyStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Runs scheduled shreds; stopped by close(). Undefined when scheduler.enabled is false. */
  readonly scheduler: Scheduler | undefined;
  /** The shred journal's gate: whether keys are served, and why not. */
  readonly journal: JournalGate;
  /** This process's audit chain. */
  readonly audit: AuditLog;
  readonly receipts: ReceiptSigner;
  /** The port actually bound (useful with port 0); 0 when started with listen: false. */
  readonly port: number;
  /** Drops a user's keychain from this process's caches (a shred made by this server's own scheduler process). */
  invalidate(userId: string): Promise<void>;
  /** Reads the TLS certificate, key and CA files again (SIGHUP); false when that failed or TLS is off. */
  reloadTls(): boolean;
  /** Graceful drain, then store close. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly log?: Logger;
  /** A store to use instead of opening the configured one (tests). */
  readonly store?: KeyStore;
  /** Extra layers over the store's rows, e.g. memcached; applied bottom-up. */
  readonly rowLayers?: readonly ((below: RowSource, metrics: Metrics, log: Logger) => RowSource)[];
  /** A shred journal to use instead of opening the configured one (tests). */
  readonly journal?: ShredJournal;
  /** Extra readiness checks, by name. */
  readonly checks?: Readonly<Record<string, () => Promise<string>>>;
  /** false: open no port, run only the scheduler (`padlock scheduler`). Default true. */
  readonly listen?: boolean;
  /** Told of each scheduled shred outcome of this process's scheduler. */
  readonly onScheduleOutcome?: (outcome: ScheduleOutcome) => void;
  /** Awaited after each store shred of this process, before its receipt (KeyService.onShredded). */
  readonly onShredded?: (userId: string) => Promise<void>;
}

/** Opens the store, loads KEKs and services, and starts serving. */
export async function startPadlock(config: PadlockConfig, options: StartOptions = {}): Promise<Padlock> {
  const log = options.log ?? createLogger(config.log.level);
  // Before anything is opened: a plaintext listener off loopback is refused unless meant.
  const insecure = checkPlaintextListener(config.listen);
  const metrics = new Metrics();
  metrics.runtime.setBuild(VERSION);
  const keks: KekRing = loadKeks(config);
  const store = options.store ?? (await openStore(config, log));
  let memcached: MemcachedClient | undefined;
  let journal: ShredJournal | undefined;
  let gate: JournalGate | undefined;
  let proofTimer: NodeJS.Timeout | undefined;
  let withheldTimer: NodeJS.Timeout | undefined;
  let tracing: Tracing | undefined;
  try {
    metrics.runtime.observeGc();
    if (config.tracing.enabled) tracing = await startTracing(config.tracing);
    journal = options.journal ?? (await openJournal(config, keks, log, { write: true }));
    const registry = new ServiceRegistry(store, keks, log, metrics);
    metrics.servicesFailingIntegrity.track(() => registry.integrityFailures.size);
    await atStart(log, 'service registry', () => registry.refresh());
    registry.start(config.services.refreshSeconds);

    if (store instanceof CassandraKeyStore) {
      metrics.storeHedgedReads.track(() => store.hedgedReads);
      metrics.storeHedgesOverBudget.track(() => store.hedgePolicy?.unarmed ?? 0);
    }
    if (store instanceof SqliteKeyStore) {
      metrics.sqliteShredResidue.track(() => {
        const since = store.shredResidueSince;
        return since === null ? 0 : (Date.now() - since) / 1000;
      });
      metrics.sqliteCheckpointsBlocked.track(() => store.checkpointsBlocked);
    }
    let rows: RowSource = new StoreRows(store, metrics);
    const extraChecks: Record<string, () => Promise<string>> = { ...options.checks };
    if (config.cache.memcached.servers.length > 0) {
      memcached = new MemcachedClient({
        servers: config.cache.memcached.servers,
        timeoutMs: config.cache.memcached.timeoutMs,
        downMs: config.cache.memcached.downMs,
      });
      const l2 = new MemcachedRows(
        rows,
        memcached,
        keks,
        { keyPrefix: config.cache.memcached.keyPrefix, maxStalenessMs: config.maxStalenessSeconds * 1000 },
        metrics,
        log,
      );
      extraChecks['memcached'] = () => Promise.resolve(l2.status());
      rows = l2;
    }
    for (const layer of options.rowLayers ?? []) rows = layer(rows, metrics, log);
    let keychains: KeychainSource = new Unwrapper(rows, keks);
    const maxStalenessMs = config.maxStalenessSeconds * 1000;
    if (config.cache.l1.enabled) {
      keychains = new L1Cache(keychains, { maxEntries: config.cache.l1.maxEntries, maxStalenessMs }, metrics);
    }
    const cached = keychains;
    gate = new JournalGate(journal, store, log, {
      replay: config.journal.replay,
      checkIntervalMs: config.journal.checkIntervalMs,
      invalidate: (userId) => cached.invalidate(userId),
    });
    const receipts = await atStart(log, 'receipt signing keys', () => ReceiptSigner.open(store, keks, log));
    const audit = new AuditLog(store, {
      checkpointEveryMs: config.audit.checkpointSeconds * 1000,
      signer: receipts,
      log,
    });
    // A rotation made elsewhere (padlock receipt rotate-key) signs here from the next refresh; a quiet chain
    // still gets its head checkpointed.
    proofTimer = setInterval(() => {
      receipts.refresh().catch((error: unknown) => log.warn('receipt key refresh failed', { error: String(error) }));
      audit.checkpoint(true).catch(() => undefined);
    }, config.services.refreshSeconds * 1000);
    proofTimer.unref();
    const keys = new KeyService(
      store,
      keychains,
      keks,
      config.categories,
      maxStalenessMs,
      metrics,
      { receipts, audit },
      gate,
      log,
    );
    keys.onShredded = options.onShredded;
    // Before the port opens: a store behind the journal is replayed (journal.replay "auto") or kept shut.
    await gate.start();
    const journalGate = gate;
    const lifecycle = new Lifecycle(store, keks, keys, metrics, log, audit);
    const scheduler = config.scheduler.enabled
      ? new Scheduler(store, lifecycle, keys, metrics, log, {
          ...config.scheduler,
          ...(options.onScheduleOutcome === undefined ? {} : { onOutcome: options.onScheduleOutcome }),
        })
      : undefined;
    const listening = options.listen !== false;
    if (!listening && scheduler === undefined) throw new ConfigError('nothing to run: no listener and no scheduler');

    let http: PadlockHttpServer | undefined = undefined;
    const document = openApiDocument(ROUTES, VERSION);
    const app: AppContext = {
      keys,
      lifecycle,
      metrics,
      maxBatch: config.limits.maxBatch,
      openapi: () => document,
      services: new ServiceAdmin(store, keks, audit, registry, config.categories),
      ...(config.console.enabled
        ? {
            console: {
              sessions: new ConsoleSessions(registry, {
                ttlMs: config.console.sessionMinutes * 60_000,
                maxSessions: config.console.maxSessions,
                secure: config.listen.tls !== undefined,
              }),
              assets: new ConsoleAssets(),
            },
          }
        : {}),
      async readiness() {
        const checks: Record<string, string> = {};
        let ready = true;
        try {
          await Promise.race([
            store.ping(),
            new Promise((_, reject) =>
              setTimeout(() => reject(new Error('timeout')), config.limits.deadlineMs).unref(),
            ),
          ]);
          checks['store'] = 'ok';
        } catch (error) {
          checks['store'] = `error: ${error instanceof Error ? error.message : 'unknown'}`;
          ready = false;
        }
        const registryAge = Date.now() - registry.loadedAt;
        checks['services'] =
          registryAge < 3 * config.services.refreshSeconds * 1000 ? 'ok' : `stale: ${registryAge} ms`;
        if (checks['services'] !== 'ok') ready = false;
        // Reported, not unready: each failing service runs on its last verified state, and a
        // store writer without the KEK must not be able to take every server out of rotation.
        const failing = [...registry.integrityFailures].map(([id, reason]) => `${id} (${reason})`);
        checks['integrity'] =
          failing.length === 0 ? 'ok' : `failing, last verified state kept: ${failing.sort().join(', ')}`;
        checks['journal'] = journalGate.status();
        if (!journalGate.open) ready = false;
        checks['draining'] = String(http?.draining ?? false);
        if (http?.draining === true) ready = false;
        for (const [name, check] of Object.entries(extraChecks)) checks[name] = await check();
        return { ready, checks };
      },
    };
    http = new PadlockHttpServer(
      ROUTES,
      app,
      registry,
      {
        maxBodyBytes: config.limits.maxBodyBytes,
        maxInFlight: config.limits.maxInFlight,
        deadlineMs: config.limits.deadlineMs,
        maxConnections: config.limits.maxConnections,
        maxUnfinishedRequestBytes: config.limits.maxUnfinishedRequestBytes,
        drainTimeoutMs: config.drainTimeoutMs,
        logRequests: config.log.requests,
      },
      log,
    );
    const { host, port: wanted, tls } = config.listen;
    let port = 0;
    if (listening) {
      port = tls === undefined ? await http.listen(wanted, host) : await http.listenTls(wanted, host, tls);
      if (insecure !== undefined) log.warn(insecure, { host });
    }
    scheduler?.start();
    // The scheduler refreshes which keychains are withheld during a grace period after each pass; with
    // the scheduler elsewhere (its own process, or another node), this server re-reads them itself.
    if (scheduler === undefined) {
      withheldTimer = setInterval(() => {
        refreshWithheld(store, keks, keys, metrics).catch((error: unknown) =>
          log.warn('withheld keychains refresh failed', { error: error instanceof Error ? error.message : 'unknown' }),
        );
      }, config.scheduler.intervalMs);
      withheldTimer.unref();
      await refreshWithheld(store, keks, keys, metrics).catch(() => undefined);
    }
    const server = http;
    return {
      config,
      http: server,
      store,
      metrics,
      log,
      scheduler,
      journal: journalGate,
      audit,
      receipts,
      port,
      reloadTls: () => server.reloadTls(),
      invalidate: (userId) => cached.invalidate(userId),
      async close() {
        // The drain starts in this same turn (callers see draining at once); a scheduler pass finishes meanwhile.
        const stopping = scheduler?.stop();
        clearInterval(withheldTimer);
        if (listening) await server.drain();
        await stopping;
        registry.stop();
        journalGate.stop();
        clearInterval(proofTimer);
        await audit.checkpoint();
        memcached?.close();
        metrics.runtime.stopGc();
        await tracing?.shutdown();
        if (options.journal === undefined) await journalGate.journal.close();
        await store.close();
      },
    };
  } catch (error) {
    metrics.runtime.stopGc();
    await tracing?.shutdown();
    gate?.stop();
    clearInterval(proofTimer);
    clearInterval(withheldTimer);
    memcached?.close();
    if (options.journal === undefined) await journal?.close();
    await store.close();
    throw error;
  }
}

/** Store errors worth another try at start: a request timed out, or too few replicas answered. */
function transient(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'OperationTimedOutError' || error.name === 'NoHostAvailableError') return true;
  const code = (error as { code?: unknown }).code;
  // Cassandra's Unavailable, WriteTimeout, ReadTimeout (native protocol error codes).
  return error.name === 'ResponseError' && (code === 0x1000 || code === 0x1100 || code === 0x1200);
}

/**
 * A start-up read of the store, tried up to START_ATTEMPTS times a second apart when it times out: a
 * server restarted while a Cassandra node catches up (DiRT schedules-node-group-kill: a group restarted
 * beside a node restarted a moment before) otherwise exits on its first 400 ms timeout. Anything else
 * (a KEK that does not unwrap, a bad row) fails at once.
 */
const START_ATTEMPTS = 10;
async function atStart<T>(log: Logger, what: string, step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (attempt >= START_ATTEMPTS || !transient(error)) throw error;
      log.warn(`${what}: the store did not answer at start; trying again`, {
        attempt,
        error: (error as Error).message,
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
