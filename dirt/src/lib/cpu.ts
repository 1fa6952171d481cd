import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { spawnChild, stopChild, type Child } from './children.js';

/*
 * Where the two cores went: a separate process that reads /proc every 5 s and
 * writes down the CPU seconds each process used since the last read (those
 * that used 50 ms or more), named by what it is: a Cassandra node by its
 * directory, a Node process by its script and first arguments. On this
 * machine every component shares two cores; a phase whose latency grows is
 * explained (or not) by who held them meanwhile. Linux only (/proc); elsewhere
 * it writes nothing.
 */

const SCRIPT = `
const { readdirSync, readFileSync } = require('node:fs');
const tick = 100; // USER_HZ on Linux
const last = new Map();
const name = (pid) => {
  const args = readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0').filter(Boolean);
  const storage = args.find((a) => a.startsWith('-Dcassandra.storagedir='));
  if (storage !== undefined) return 'cassandra ' + storage.split('/').filter(Boolean).pop();
  const exe = (args[0] ?? '').split('/').pop();
  const script = args.findIndex((a, i) => i > 0 && !a.startsWith('-'));
  return [exe, ...(script < 0 ? [] : args.slice(script, script + 4).map((a) => a.split('/').slice(-2).join('/')))].join(' ');
};
const sample = () => {
  const used = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync('/proc/' + entry + '/stat', 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      const before = last.get(entry);
      last.set(entry, ticks);
      const delta = (ticks - (before ?? ticks)) / tick;
      if (delta >= 0.05) used.push({ pid: Number(entry), name: name(entry), cpuS: Math.round(delta * 100) / 100 });
    } catch {}
  }
  used.sort((a, b) => b.cpuS - a.cpuS);
  process.stdout.write(JSON.stringify({ at: Date.now(), used }) + '\\n');
};
sample();
setInterval(sample, 5000);
`;

export interface CpuSample {
  readonly at: number;
  readonly used: readonly { readonly pid: number; readonly name: string; readonly cpuS: number }[];
}

export class CpuMonitor {
  #child: Child | undefined;
  readonly #file: string;

  constructor(dir: string) {
    this.#file = join(dir, 'cpu.jsonl');
  }

  start(): void {
    if (process.platform !== 'linux') return;
    this.#child = spawnChild('cpu-monitor', process.execPath, ['-e', SCRIPT], { logFile: this.#file });
  }

  async stop(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, 'SIGTERM', 2000);
  }

  /** CPU seconds by process name between two epoch times (ms), the largest first. */
  between(from: number, to: number): [string, number][] {
    let text = '';
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch {
      return [];
    }
    const total = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      const sample = JSON.parse(line) as CpuSample;
      if (sample.at < from || sample.at > to) continue;
      for (const p of sample.used) total.set(p.name, (total.get(p.name) ?? 0) + p.cpuS);
    }
    return [...total].sort((a, b) => b[1] - a[1]);
  }
}

/** "cassandra dirt1 41 s, node main.js serve 12 s, ...": the five largest users of CPU, for notes. */
export function describeCpu(used: readonly [string, number][], seconds: number, cores: number): string {
  if (used.length === 0) return 'no CPU samples';
  const top = used
    .slice(0, 5)
    .map(([name, s]) => `${name} ${Math.round(s)} s`)
    .join(', ');
  const all = used.reduce((sum, [, s]) => sum + s, 0);
  return `CPU over ${Math.round(seconds)} s (${cores} cores: ${Math.round(cores * seconds)} s): ${Math.round(all)} s used; most: ${top}`;
}
