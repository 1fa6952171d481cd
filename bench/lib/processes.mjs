import { fork, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Histogram } from './histogram.mjs';
import { makeWorkload } from './workload.mjs';

/*
 * Child processes of a run: the servers under test, the baseline, the load
 * generators. Every one is tracked by pid and stopped when the run ends,
 * normally or not; nothing is found or killed by name.
 */

const children = new Set();
const exitHooks = new Set();

/**
 * Registers a synchronous cleanup (e.g. a stop script run with spawnSync) for
 * servers started outside this process tree; runs at exit, also on Ctrl-C.
 * Returns a function that unregisters it (call it after a normal stop).
 */
export function atExit(hook) {
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

export function stopAllSync() {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // best effort
    }
  }
  exitHooks.clear();
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

process.once('exit', stopAllSync);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    stopAllSync();
    process.exit(130);
  });
}

/**
 * Starts a node process and resolves once `ready(line, lines)` returns a
 * value for one of its stdout lines (the value is returned), or rejects after
 * timeoutMs or when the process exits first.
 */
export function startNode(args, { ready, timeoutMs = 60000, env = process.env, cwd } = {}) {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
  children.add(child);
  const output = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + String(d)).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let pending = '';
    let done = false;
    const timer = setTimeout(() => fail(new Error(`not ready within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stop({ child }).finally(() =>
        reject(new Error(`${args.join(' ')}: ${error.message}\n${output.join('\n')}\n${stderr}`)),
      );
    };
    child.once('exit', (code) => fail(new Error(`exited with ${code}`)));
    child.stdout.on('data', (d) => {
      pending += String(d);
      let nl;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (output.length < 200) output.push(line);
        if (done) continue;
        const value = ready(line, output);
        if (value !== undefined) {
          done = true;
          clearTimeout(timer);
          resolve({
            child,
            pid: child.pid,
            value,
            startupMs: performance.now() - started,
            output,
            stderr: () => stderr,
          });
        }
      }
    });
  });
}

/** SIGTERM, then SIGKILL after graceMs; resolves with the exit code or signal. */
export function stop({ child }, graceMs = 15000) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child);
      resolve(child.exitCode ?? child.signalCode);
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve(code ?? signal);
    });
    child.kill('SIGTERM');
  });
}

/** Resident set size in bytes of a process and, with `tree`, its children (cluster workers). */
export function rssBytes(pid, tree = false) {
  const own = (p) => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      return m === null ? 0 : Number(m[1]) * 1024;
    } catch {
      return 0;
    }
  };
  let total = own(pid);
  if (tree) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
        if (c !== '') total += rssBytes(Number(c), true);
      }
    } catch {
      // no children file: no children counted
    }
  }
  return total;
}

let clockTicks;

/** CPU seconds (user + system) a process, and with `tree` its children, have used so far; null if unknown. */
export function cpuSeconds(pid, tree = false) {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    let total = (Number(fields[11]) + Number(fields[12])) / clockTicks;
    if (tree) {
      for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
        if (c !== '') total += cpuSeconds(Number(c), true) ?? 0;
      }
    }
    return total;
  } catch {
    return null;
  }
}

/** Machine-wide CPU counters from /proc/stat, in seconds: { busy, total }; null if unknown. */
export function machineCpu() {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const busy = user + nice + system + irq + softirq + steal;
    return { busy: busy / clockTicks, total: (busy + idle + iowait) / clockTicks };
  } catch {
    return null;
  }
}

/** Microseconds tasks have waited for a CPU so far (Linux PSI, "some"); null if unknown. */
export function cpuPressureUs() {
  try {
    const m = /some avg10=\S+ avg60=\S+ avg300=\S+ total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Kills a generator that outlives its schedule, grace period and 30 s to spare; returns the timer. */
function watchGenerator(child, job, reject) {
  children.add(child);
  const limitMs = (job.warmupS + job.durationS) * 1000 + job.graceMs + 30000;
  return setTimeout(() => {
    child.kill('SIGKILL');
    reject(new Error('load generator did not finish'));
  }, limitMs);
}

/**
 * Runs one load job in `procs` forked generator processes (the offered rate
 * is split between them) and merges their results.
 */
export async function runLoad(loadgenPath, job, procs = 1) {
  const parts = await Promise.all(
    Array.from({ length: procs }, (_, stream) => {
      const child = fork(loadgenPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      return new Promise((resolve, reject) => {
        const timer = watchGenerator(child, job, reject);
        child.once('message', (m) => {
          clearTimeout(timer);
          if (m.error !== undefined) reject(new Error(m.error));
          else resolve(m.result);
        });
        child.once('exit', (code) => {
          children.delete(child);
          clearTimeout(timer);
          if (code !== 0) reject(new Error(`load generator exited with ${code}`));
        });
        child.send({
          ...job,
          stream,
          streams: procs,
          rate: job.rate === undefined ? undefined : job.rate / procs,
          connections: Math.max(1, Math.round(job.connections / procs)),
        });
      });
    }),
  );
  return mergeResults(parts);
}

/**
 * Runs an open-loop job on bench/loadgen-go (built by run.mjs), which sends on time where a
 * Node.js generator sends on 1 ms timer ticks. The requests are made here, by the same workload
 * code as for bench/loadgen.mjs, into `requestsFile`: as many as the schedule needs for writes
 * (creates and shreds must not repeat), and at most 300,000 reads, which the generator cycles
 * through. Resolves to the same result as runLoad.
 */
export async function runLoadGo(binary, job, requestsFile) {
  const needed = Math.ceil(job.rate * (job.warmupS + job.durationS) * 1.05) + 1000;
  const reads = job.workload.kind === 'get' || job.workload.kind === 'batch';
  const count = reads ? Math.min(needed, 300_000) : needed;
  const workload = makeWorkload(job.workload, 0, 1);
  const kinds = [];
  const parts = [];
  for (let i = 0; i < count; i++) {
    const { kind, bytes } = workload.next();
    let k = kinds.indexOf(kind);
    if (k === -1) k = kinds.push(kind) - 1;
    const head = Buffer.alloc(5);
    head[0] = k;
    head.writeUInt32LE(bytes.length, 1);
    parts.push(head, bytes);
  }
  writeFileSync(requestsFile, Buffer.concat(parts));
  const input = JSON.stringify({ ...job, seed: 0x5eed, requestsFile, kinds, cycle: reads });
  try {
    const result = await new Promise((resolve, reject) => {
      const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
      const timer = watchGenerator(child, job, reject);
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => (out += d));
      child.once('error', reject);
      child.once('exit', (code) => {
        children.delete(child);
        clearTimeout(timer);
        if (code !== 0) reject(new Error(`loadgen-go exited with ${code}`));
        else resolve(JSON.parse(out));
      });
      child.stdin.end(input);
    });
    return mergeResults([result]);
  } finally {
    rmSync(requestsFile, { force: true });
  }
}

function mergeResults(parts) {
  const merged = { ...parts[0], parts: parts.length };
  const histo = (key) => parts.map((p) => Histogram.fromJSON(p[key])).reduce((a, b) => a.merge(b));
  merged.latency = histo('latency');
  merged.service = histo('service');
  merged.lag = histo('lag');
  const sum = (key) => parts.reduce((n, p) => n + (p[key] ?? 0), 0);
  for (const key of ['completed', 'ok', 'scheduled', 'sent', 'connectionsOpened', 'offeredRate', 'connections']) {
    if (merged[key] !== undefined) merged[key] = sum(key);
  }
  const add = (key) => {
    const out = {};
    for (const p of parts) for (const [k, v] of Object.entries(p[key])) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  merged.statuses = add('statuses');
  merged.errors = add('errors');
  merged.byKind = {};
  for (const p of parts) {
    for (const [kind, json] of Object.entries(p.byKind)) {
      const h = Histogram.fromJSON(json);
      merged.byKind[kind] = merged.byKind[kind] === undefined ? h : merged.byKind[kind].merge(h);
    }
  }
  merged.loadgenCpuPercent = parts.map((p) => p.loadgenCpuPercent);
  return merged;
}
