import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

/* The machine a run measured, and the markdown form of a run's results. */

export function describeMachine(root) {
  const git = (args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' }).stdout?.trim() ?? '';
  let memAvailable = null;
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m !== null) memAvailable = Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryBytes: totalmem(),
    memoryAvailableBytes: memAvailable,
    node: process.version,
    kernel: release(),
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    commit: git(['rev-parse', '--short', 'HEAD']),
    uncommittedChanges: git(['status', '--porcelain', '--untracked-files=no', 'packages']) !== '',
  };
}

const num = (x, digits = 0) =>
  x === null || x === undefined || Number.isNaN(x)
    ? '-'
    : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ms = (x) => (x === null || x === undefined ? '-' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const gib = (b) => `${(b / 2 ** 30).toFixed(1)} GiB`;
const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;

function table(head, rows) {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

export function markdown(run) {
  const m = run.machine;
  const out = [];
  out.push(`# Padlock benchmark, ${run.startedAt}`);
  out.push('');
  if (run.partial) {
    out.push('**Partial: the run stopped (or is still running) before its last scenario.**');
    out.push('');
  }
  out.push(
    `Command: \`${run.command}\` (${run.profile ? 'profile run' : run.full ? 'full run' : 'quick run'}, ` +
      `${num(run.elapsedS)} s). Commit ${m.commit}${m.uncommittedChanges ? ' with uncommitted changes under packages/' : ''}.`,
  );
  out.push('');
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${gib(m.memoryBytes)} memory, Node ${m.node}, Linux ${m.kernel}; ` +
      `load average at start ${m.loadAverageAtStart.join(' / ')} (1/5/15 min). Server, load generator and ` +
      `baseline share these cores; nothing is pinned.`,
  );
  out.push('');
  out.push(
    `Population: ${num(run.settings.users)} users with ${run.settings.categories} categories each ` +
      `(Zipf s=${run.settings.zipfS} over ranks, spread over ids by a fixed permutation). Max-throughput rows: ` +
      `closed loop, ${run.settings.connections} keep-alive connections unless noted, ${run.settings.rounds} rounds of ` +
      `${run.settings.maxS} s, each right after ${run.settings.bareS} s of the bare node:http server on the same request ` +
      `bytes; req/s and "× bare" are the medians of the rounds, latencies are over all rounds. Max-throughput rows use ` +
      `bench/loadgen.mjs; open-loop rows ${
        run.openGenerator === 'go'
          ? 'bench/loadgen-go (sends leave on time, within about 0.1 ms)'
          : 'bench/loadgen.mjs (sends leave on 1 ms timer ticks)'
      }: Poisson ` +
      `arrivals at the offered rate, latency from the intended send time, ${run.settings.openS} s measured after ` +
      `${run.settings.openWarmupS} s. req/s counts 2xx answers only. The notes give each run's noise: CPU used by ` +
      `other processes and CPU pressure (share of the time some task waited for a CPU).`,
  );
  out.push('');
  out.push('## Throughput and latency');
  out.push('');
  out.push(
    table(
      [
        'scenario',
        'mode',
        'req/s',
        'keys/s',
        '× bare',
        'bare req/s',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'p99.9 ms',
        'max ms',
        'errors',
        'notes',
      ],
      run.rows.map((r) => [
        r.title,
        r.mode === 'max' ? `max, ${r.connections} conn` : `open @ ${num(r.offeredRate)}/s`,
        num(r.rps),
        r.keysPerSecond === undefined ? '' : num(r.keysPerSecond),
        r.ratio === undefined ? '' : `${num(r.ratio, 2)}×`,
        r.bareRps === undefined ? '' : num(r.bareRps),
        ms(r.latency.p50Ms),
        ms(r.latency.p90Ms),
        ms(r.latency.p99Ms),
        ms(r.latency.p999Ms),
        ms(r.latency.maxMs),
        num(r.errors),
        r.notes.join('; '),
      ]),
    ),
  );
  if (run.derivation !== undefined) {
    out.push('');
    out.push('## Derivation, one core');
    out.push('');
    out.push(
      table(
        ['operation', 'per second', 'µs each'],
        Object.entries(run.derivation.cases).map(([name, r]) => [name, num(r.perSecond), r.usPerOp.toFixed(2)]),
      ),
    );
    out.push('');
    out.push(run.derivation.note);
  }
  if (run.memory !== undefined) {
    const mem = run.memory;
    out.push('');
    out.push('## Memory, start-up and preload');
    out.push('');
    out.push(
      table(
        ['L1 entries', 'RSS'],
        mem.samples.map((s) => [num(s.entries), mib(s.rssBytes)]),
      ),
    );
    out.push('');
    for (const line of mem.lines) out.push(`- ${line}`);
  }
  if (run.lines.length > 0) {
    out.push('');
    out.push('## Other measurements');
    out.push('');
    for (const line of run.lines) out.push(`- ${line}`);
  }
  if (run.targets.length > 0) {
    out.push('');
    out.push('## Targets (issue 5)');
    out.push('');
    out.push(
      table(
        ['target', 'measured', 'verdict'],
        run.targets.map((t) => [t.target, t.measured, t.verdict]),
      ),
    );
  }
  if (run.cpuProfile !== undefined) {
    const p = run.cpuProfile;
    out.push('');
    out.push('## Where the warm-cache path spends its time (CPU profile of the server)');
    out.push('');
    out.push(
      `Samples from ${p.window}: ${num(p.busyMs)} ms busy, ${num(p.idleMs)} ms idle. ` +
        `Profile file: \`${p.file}\` (open it in Chrome DevTools > Performance).`,
    );
    out.push('');
    out.push(
      table(
        ['area', 'self %'],
        p.areas.map((a) => [a.area, a.selfPercent.toFixed(1)]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['function', 'where', 'self ms', 'self %'],
        p.functions.map((f) => [
          `\`${f.function}\``,
          f.where === '' ? '' : `\`${f.where}\``,
          num(f.selfMs),
          f.selfPercent.toFixed(1),
        ]),
      ),
    );
  }
  if (run.skipped.length > 0) {
    out.push('');
    out.push('## Not run');
    out.push('');
    for (const s of run.skipped) out.push(`- ${s}`);
  }
  out.push('');
  return out.join('\n');
}
