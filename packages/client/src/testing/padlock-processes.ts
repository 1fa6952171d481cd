import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { metricValue } from '../../../../scripts/testing/prometheus-text.mjs';

/** The one Prometheus-text reader (scripts/testing/prometheus-text.mjs), for the tests that import it from here. */
export { metricValue };

/*
 * Test helper: real Padlock processes (`padlock serve`, the CLI the operators
 * run) sharing one SQLite store in a temp directory, with a KEK file (32
 * random bytes, mode 0600) and services created by `padlock service create`.
 * Processes, not in-process servers, so a test can SIGKILL one mid-run, and so
 * the client never loads the server's code. Needs `npm run build` first.
 */

export const CLI = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));
export const CATEGORIES = ['profile', 'payments', 'advertising'] as const;

export interface DeploymentOptions {
  /** The deletion bound; default 2 so tests can wait it out. */
  readonly maxStalenessSeconds?: number;
  readonly maxBatch?: number;
  /** The servers' config.listen.tls: they serve HTTPS, and their URLs are https://127.0.0.1:<port>. */
  readonly tls?: Readonly<Record<string, unknown>>;
  /** What the test itself presents when it scrapes /metrics over HTTPS. */
  readonly scrapeTls?: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
}

export interface PadlockProcess {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** GET /metrics as text. */
  metrics(): Promise<string>;
}

export interface Deployment {
  readonly dir: string;
  readonly configFile: string;
  readonly maxStalenessSeconds: number;
  /** Credentials by service id: "app" reads every category and may create, rotate, shred and hold; "reader" reads profile only. */
  readonly credentials: Readonly<Record<string, string>>;
  start(name: string): Promise<PadlockProcess>;
  /** Runs the padlock CLI on this deployment's config; rejects on a non-zero exit. */
  cli(...args: string[]): Promise<string>;
  close(): Promise<void>;
}

function run(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`padlock ${args.join(' ')} exited with ${code}: ${stderr}`));
    });
  });
}

/** Batch-get requests a process has answered, by its own metrics. */
export async function batchGetCount(padlock: PadlockProcess): Promise<number> {
  return metricValue(await padlock.metrics(), 'padlock_http_requests_total', { route: '/v1/keys/batch-get' });
}

/** GET over HTTPS with a CA and client certificate of the test's own (fetch takes neither). */
function httpsText(url: string, tls: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer }) {
  return new Promise<string>((resolve, reject) => {
    const req = httpsGet(url, { ...tls, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export async function createDeployment(options: DeploymentOptions = {}): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), 'padlock-client-test-'));
  const maxStalenessSeconds = options.maxStalenessSeconds ?? 2;
  const configFile = join(dir, 'padlock.json');
  writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
  const config = {
    listen: { host: '127.0.0.1', port: 0, ...(options.tls === undefined ? {} : { tls: options.tls }) },
    categories: [...CATEGORIES],
    keks: { active: 'test-kek', files: [{ kid: 'test-kek', path: 'kek.bin' }] },
    store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } },
    maxStalenessSeconds,
    limits: { maxBatch: options.maxBatch ?? 500, deadlineMs: 5000 },
    services: { refreshSeconds: 1 },
    drainTimeoutMs: 1000,
    log: { level: 'info', requests: false },
  };
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
  const processes: PadlockProcess[] = [];
  const cli = (...args: string[]): Promise<string> => run([...args, '-c', configFile]);
  const credentials: Record<string, string> = {};
  try {
    for (const [serviceId, rights] of [
      ['app', ['--read', CATEGORIES.join(','), '--create', '--rotate', '--shred', '--hold']],
      ['reader', ['--read', 'profile']],
    ] as const) {
      const out = JSON.parse(await cli('service', 'create', serviceId, ...rights)) as { credential: string };
      credentials[serviceId] = out.credential;
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const start = (name: string): Promise<PadlockProcess> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, 'serve', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<void>((done) =>
        child.once('exit', () => {
          children.delete(child);
          done();
        }),
      );
      const failed = (): void => reject(new Error(`padlock serve (${name}) exited before listening: ${stderr}`));
      child.once('exit', failed);
      createInterface({ input: child.stdout }).on('line', (line) => {
        let entry: { msg?: string; port?: number };
        try {
          entry = JSON.parse(line) as { msg?: string; port?: number };
        } catch {
          return;
        }
        if (entry.msg !== 'padlock listening' || entry.port === undefined) return;
        child.off('exit', failed);
        const url = `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${entry.port}`;
        const padlock: PadlockProcess = {
          name,
          url,
          child,
          exited,
          async kill(signal = 'SIGKILL') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            await exited;
          },
          async metrics() {
            if (options.tls === undefined) return (await fetch(`${url}/metrics`)).text();
            return httpsText(`${url}/metrics`, options.scrapeTls ?? {});
          },
        };
        processes.push(padlock);
        resolve(padlock);
      });
    });

  return {
    dir,
    configFile,
    maxStalenessSeconds,
    credentials,
    start,
    cli,
    async close() {
      await Promise.all(processes.map((p) => p.kill('SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
