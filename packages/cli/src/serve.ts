import { createLogger, loadConfig, startPadlock } from '@padlock/server';
import cluster from 'node:cluster';

/*
 * `padlock serve`: one process, or a primary that forks `workers` processes
 * sharing the listening port (node:cluster), each with its own caches and
 * store connection. SIGTERM or SIGINT drains: in-flight requests finish, new
 * ones are refused with 503 and Connection: close, then the process exits. SIGHUP reloads the
 * TLS files (the primary passes it to every worker).
 */
export async function serve(configFile: string, workers: number): Promise<number> {
  const config = loadConfig(configFile);
  if (workers > 1 && cluster.isPrimary) return supervise(workers);
  const log = createLogger(config.log.level);
  const padlock = await startPadlock(config, { log });
  log.info('padlock listening', {
    host: config.listen.host,
    port: padlock.port,
    store: config.store.kind,
    pid: process.pid,
  });
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('draining', { signal, inFlight: padlock.http.inFlight });
      padlock.close().then(
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
