import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/*
 * Every process the suite starts is registered here, so that it is stopped on
 * every way out: normal end, a thrown error, SIGINT/SIGTERM, or process exit.
 * Only these pids are ever signalled; nothing is found by name.
 */

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly logFile: string;
  /** True once the process has exited. */
  readonly done: boolean;
}

const live = new Set<Child>();
const cleanups: (() => Promise<void>)[] = [];
let registryFile: string | undefined;

/*
 * The live children are also written to a file, so that a run killed with
 * SIGKILL (no handler runs) leaves a list the next run can clean up: a pid is
 * only signalled when its command line is still the one recorded.
 */
interface Registry {
  readonly runner: { pid: number; cmdline: string };
  readonly children: { pid: number; cmdline: string }[];
}

function saveRegistry(): void {
  if (registryFile === undefined) return;
  const registry: Registry = {
    runner: { pid: process.pid, cmdline: cmdlineOf(process.pid) },
    children: [...live].map((c) => ({ pid: c.pid, cmdline: cmdlineOf(c.pid) })),
  };
  writeFileSync(registryFile, JSON.stringify(registry));
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Kills what a previous, interrupted run left running (from its registry file), then records ours
 * there. Throws when the run that wrote the file is still going: two runs would share ports and nodes.
 */
export function useRegistry(file: string): string[] {
  const killed: string[] = [];
  if (existsSync(file)) {
    let registry: Registry | undefined;
    try {
      registry = JSON.parse(readFileSync(file, 'utf8')) as Registry;
    } catch {
      registry = undefined;
    }
    const runner = registry?.runner;
    if (
      runner !== undefined &&
      runner.pid !== process.pid &&
      runner.cmdline !== '' &&
      cmdlineOf(runner.pid) === runner.cmdline
    ) {
      throw new Error(`another DiRT run (pid ${runner.pid}) is still running; wait for it, or stop it`);
    }
    try {
      for (const { pid, cmdline } of registry?.children ?? []) {
        if (cmdline !== '' && cmdlineOf(pid) === cmdline) {
          process.kill(pid, 'SIGKILL');
          killed.push(`${pid} ${cmdline.replaceAll('\0', ' ').slice(0, 120)}`);
        }
      }
    } catch {
      // unreadable: nothing to clean
    }
  }
  registryFile = file;
  saveRegistry();
  return killed;
}

export interface SpawnOptions {
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Starts a process with stdout and stderr appended to `logFile`. */
export function spawnChild(name: string, command: string, args: readonly string[], options: SpawnOptions): Child {
  const fd = openSync(options.logFile, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(command, [...args], {
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
  } finally {
    closeSync(fd);
  }
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      saveRegistry();
      resolve({ code, signal });
    });
    proc.once('error', () => {
      done = true;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  const child: Child = {
    name,
    pid: proc.pid,
    process: proc,
    exited,
    logFile: options.logFile,
    get done() {
      return done;
    },
  };
  live.add(child);
  saveRegistry();
  return child;
}

/** Signals a child and waits for it to exit; SIGKILL after `graceMs`. */
export async function stopChild(child: Child, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10000): Promise<void> {
  if (child.done) return;
  try {
    process.kill(child.pid, 'SIGCONT');
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    if (!child.done) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Sends a signal to a child that is still running; false when it has exited. */
export function signalChild(child: Child, signal: NodeJS.Signals): boolean {
  if (child.done) return false;
  try {
    process.kill(child.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Registers async cleanup work (e.g. stopping Cassandra nodes) to run at the end or on interruption. */
export function onCleanup(work: () => Promise<void>): () => void {
  cleanups.push(work);
  return () => {
    const i = cleanups.indexOf(work);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** Runs registered cleanups (newest first), then stops every child still running. */
export async function cleanupAll(): Promise<void> {
  while (cleanups.length > 0) {
    const work = cleanups.pop()!;
    try {
      await work();
    } catch (error) {
      process.stderr.write(`dirt: cleanup failed: ${String(error)}\n`);
    }
  }
  await Promise.all([...live].map((child) => stopChild(child, 'SIGTERM', 5000)));
}

function killAllNow(): void {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let installed = false;

/** Stops children on SIGINT/SIGTERM (after the async cleanups) and on any exit (SIGKILL, synchronously). */
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  let interrupted = false;
  const interrupt = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      killAllNow();
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`dirt: ${signal}: stopping everything this run started\n`);
    void cleanupAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
}

/** Resident set size of a pid in MiB, or 0 when it is gone. */
export async function rssMiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match === null ? 0 : Number(match[1]) / 1024;
  } catch {
    return 0;
  }
}

/** Runs a command to completion, output appended to `logFile`; rejects on a non-zero exit. */
export async function runCommand(
  name: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions & { readonly timeoutMs?: number },
): Promise<void> {
  const child = spawnChild(name, command, args, options);
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => signalChild(child, 'SIGKILL'), options.timeoutMs).unref();
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`${name} failed (${code === null ? `signal ${signal}` : `exit ${code}`}); see ${options.logFile}`);
  }
}

/** Runs a command and returns its stdout (stderr to `logFile`). */
export function captureCommand(
  command: string,
  args: readonly string[],
  options: { readonly logFile: string; readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const fd = openSync(options.logFile, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(command, [...args], { stdio: ['ignore', 'pipe', fd], env: options.env ?? process.env });
    } finally {
      closeSync(fd);
    }
    const chunks: Buffer[] = [];
    proc.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs);
    proc.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      const out = Buffer.concat(chunks).toString('utf8');
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ').slice(0, 200)} exited with ${code}: ${out.slice(0, 500)}`));
    });
  });
}
