import {
  createLogger,
  loadConfig,
  startPadlock,
  type Logger,
  type Padlock,
  type ScheduleOutcome,
} from '@padlock/server';
import { fork, type ChildProcess } from 'node:child_process';
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';

/*
 * `padlock serve`: one process, or a primary that forks `workers` processes
 * sharing the listening port (node:cluster), each with its own caches and
 * store connection. SIGTERM or SIGINT drains: in-flight requests finish, new
 * ones are refused with 503 and Connection: close, then the process exits. SIGHUP reloads the
 * TLS files (the primary passes it to every worker).
 *
 * Unless scheduler.ownProcess is false, each serving process runs its
 * scheduler in a child process (`padlock scheduler`, below): on SQLite a
 * scheduled shred is a run of synchronous transactions and fsyncs, and on the
 * serving loop they hold lookups behind them (docs/performance.md). The child
 * is one more node as far as the store knows (its own claims, audit chain and
 * journal appends). Over IPC it has the server drop each keychain it shreds
 * from its caches before it finishes the schedule (ServerLink, below), then
 * reports the outcome for the server's metrics.
 */
export async function serve(configFile: string, workers: number): Promise<number> {
  const config = loadConfig(configFile);
  if (workers > 1 && cluster.isPrimary) return supervise(workers);
  const log = createLogger(config.log.level);
  const apart = config.scheduler.enabled && config.scheduler.ownProcess;
  const padlock = await startPadlock(
    apart ? { ...config, scheduler: { ...config.scheduler, enabled: false } } : config,
    {
      log,
    },
  );
  const child = apart ? new SchedulerProcess(configFile, padlock, log) : undefined;
  log.info('padlock listening', {
    host: config.listen.host,
    port: padlock.port,
    store: config.store.kind,
    pid: process.pid,
    scheduler: apart ? 'own process' : config.scheduler.enabled ? 'in process' : 'off',
  });
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('draining', { signal, inFlight: padlock.http.inFlight });
      Promise.all([padlock.close(), child?.stop()]).then(
        () => {
          log.info('stopped');
          resolve(0);
        },
        (error: unknown) => {
          log.error('drain failed', { error: String(error) });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // SIGHUP reloads the TLS certificate, key and CA from their files (a failure keeps the old ones).
    process.on('SIGHUP', () => {
      if (!stopping) padlock.reloadTls();
    });
  });
}

function supervise(workers: number): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on('exit', (worker, code) => {
      if (!stopping) {
        process.stderr.write(`padlock: worker ${worker.process.pid} exited with ${code}; replacing it\n`);
        cluster.fork();
      } else if (Object.keys(cluster.workers ?? {}).length === 0) {
        resolve(0);
      }
    });
    const stop = (): void => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    });
  });
}

/** How long a stopping scheduler child may take to finish its executions before it is killed. */
const CHILD_STOP_MS = 30_000;

/** The scheduler child of one serving process: started at once, restarted when it dies, stopped with the server. */
class SchedulerProcess {
  #child: ChildProcess | undefined;
  #stopping = false;
  #restartMs = 1000;
  #restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly configFile: string,
    private readonly padlock: Padlock,
    private readonly log: Logger,
  ) {
    this.#start();
  }

  #start(): void {
    const started = Date.now();
    const child = fork(fileURLToPath(new URL('./main.js', import.meta.url)), ['scheduler', '-c', this.configFile], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child = child;
    child.on('message', (message: unknown) => this.#outcome(message));
    child.on('exit', (code, signal) => {
      this.#child = undefined;
      if (this.#stopping) return;
      // A child that ran a while is restarted at once; one that keeps dying at start, less and less often.
      this.#restartMs = Date.now() - started > 60_000 ? 1000 : Math.min(this.#restartMs * 2, 60_000);
      this.log.warn('the scheduler process exited; restarting it', { code, signal, inMs: this.#restartMs });
      this.#restartTimer = setTimeout(() => this.#start(), this.#restartMs);
    });
  }

  #outcome(message: unknown): void {
    const m = message as Partial<ScheduleOutcome> & { type?: unknown; seq?: unknown };
    if (m === null || typeof m !== 'object') return;
    if (m.type === 'shredded') {
      // The child waits for the answer before it writes the receipt and finishes the schedule.
      const { userId, seq } = m;
      if (typeof userId !== 'string' || typeof seq !== 'number') return;
      void this.padlock
        .invalidate(userId)
        .catch(() => undefined)
        .then(() => {
          const child = this.#child;
          if (child?.connected === true) child.send({ type: 'dropped', seq }, () => undefined);
        });
      return;
    }
    if (m.type !== 'schedule-outcome') return;
    if (m.outcome !== 'executed' && m.outcome !== 'held' && m.outcome !== 'failed') return;
    if (m.outcome !== 'failed') this.padlock.metrics.schedulesExecuted.inc({ outcome: m.outcome });
    if (m.outcome === 'executed') {
      // Dropped at once; a failure (memcached down) leaves the deletion bound of docs/operations.md.
      // Dropped when the child shredded it (above); again here, for a child that stopped waiting for it.
      if (typeof m.userId === 'string') this.padlock.invalidate(m.userId).catch(() => undefined);
      if (typeof m.delaySeconds === 'number') this.padlock.metrics.scheduleDelay.observe({}, m.delaySeconds);
    }
  }

  /** SIGTERM: the child finishes the executions it started (up to CHILD_STOP_MS), then exits. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.log.warn('the scheduler process did not stop in time; killing it', { afterMs: CHILD_STOP_MS });
      child.kill('SIGKILL');
    }, CHILD_STOP_MS);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * `padlock scheduler`: runs scheduled shreds and nothing else (no port). Started by `padlock serve`
 * (scheduler.ownProcess), it reports outcomes to its server and exits when the server is gone (a
 * server killed with -9 takes its scheduler with it; claims it held expire and are taken over).
 * Started alone, it is one more node running the scheduler beside any number of servers.
 */
export async function runScheduler(configFile: string): Promise<number> {
  const config = loadConfig(configFile);
  const log = createLogger(config.log.level);
  const send = process.send?.bind(process);
  const gone = (): never => {
    log.warn('the server is gone; the scheduler exits');
    process.exit(1);
  };
  if (send !== undefined) {
    // Watched before anything is awaited, so a server killed while this process starts (or while its store
    // is unreachable) takes it along. One that died before this line has disconnected already: the event is
    // gone, the state is not (a clean-clone CI run hung on a scheduler orphaned so, its output pipe held open).
    if (!process.connected) gone();
    process.once('disconnect', gone);
  }
  const server = send === undefined ? undefined : new ServerLink(send);
  const padlock = await startPadlock(
    { ...config, scheduler: { ...config.scheduler, enabled: true } },
    {
      log,
      listen: false,
      ...(send === undefined || server === undefined
        ? {}
        : {
            onScheduleOutcome: (outcome: ScheduleOutcome) => void send({ type: 'schedule-outcome', ...outcome }),
            onShredded: (userId: string) => server.shredded(userId),
          }),
    },
  );
  log.info('padlock scheduler running', {
    nodeId: padlock.scheduler?.nodeId,
    store: config.store.kind,
    pid: process.pid,
  });
  // Nothing else keeps the process alive (the scheduler's timers are unref'd, SQLite holds no handle, and the
  // IPC channel only while a listener is on it): this does, until SIGTERM.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(keepAlive);
      log.info('scheduler stopping', { signal });
      void padlock
        .close()
        .then(
          () => 0,
          (error: unknown) => {
            log.error('scheduler stop failed', { error: String(error) });
            return 1;
          },
        )
        .then((code) => {
          // A 'disconnect' listener holds the IPC channel, and with it this process, open: without this
          // line a stopped scheduler lived on until its server, waiting for it, killed it 30 s later.
          process.off('disconnect', gone);
          server?.close();
          resolve(code);
          // Stopped is stopped: exit even if a handle is left. One scheduler was seen alive 15 minutes after
          // its stop (exitCode 0 set, its server gone), holding three Cassandra driver connections that only
          // sent heartbeats; where they came from was not found. Logs are written synchronously (pipes, files).
          setImmediate(() => process.exit(code));
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** How long a scheduler child waits for its server to drop a keychain it shredded before going on. */
const DROP_WAIT_MS = 1000;

/**
 * The scheduler child's side of its link to the server: after each store shred it tells the server, which
 * drops the keychain from its cache, and waits for the answer (at most DROP_WAIT_MS) before the receipt and
 * the finish. So a schedule seen executed is never one whose keys this server still serves from its cache.
 */
class ServerLink {
  #seq = 0;
  readonly #waiting = new Map<number, () => void>();
  readonly #listener = (message: unknown): void => {
    const m = message as { type?: unknown; seq?: unknown } | null;
    if (m === null || typeof m !== 'object' || m.type !== 'dropped' || typeof m.seq !== 'number') return;
    this.#waiting.get(m.seq)?.();
  };

  constructor(private readonly send: (message: unknown, callback: (error: Error | null) => void) => boolean) {
    process.on('message', this.#listener);
  }

  shredded(userId: string): Promise<void> {
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiting.delete(seq);
        resolve();
      };
      const timer = setTimeout(done, DROP_WAIT_MS);
      this.#waiting.set(seq, done);
      // A channel closed meanwhile: the server is gone, and this process exits on 'disconnect'.
      this.send({ type: 'shredded', userId, seq }, () => undefined);
    });
  }

  /** Lets the IPC channel go (a 'message' listener holds it, and with it the process, open). */
  close(): void {
    process.off('message', this.#listener);
    for (const done of [...this.#waiting.values()]) done();
  }
}
