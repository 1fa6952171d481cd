import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { spawnChild, stopChild, type Child } from './children.js';

/*
 * A witness of the machine: a separate, idle Node process that wakes every
 * 10 ms and writes down every time it woke more than 50 ms late. On a shared
 * two-core machine every process, Padlock and Cassandra included, can be left
 * unscheduled for that long; a timeout that fires then is the machine's, and
 * the report shows these stalls next to each scenario's failures.
 */

const SCRIPT = `
let last = performance.now();
setInterval(() => {
  const t = performance.now();
  const late = t - last - 10;
  if (late > 50) process.stdout.write(JSON.stringify({ at: Date.now(), lateMs: Math.round(late) }) + '\\n');
  last = t;
}, 10);
`;

export interface Stall {
  readonly at: number;
  readonly lateMs: number;
}

export class StallMonitor {
  #child: Child | undefined;
  readonly #file: string;

  constructor(dir: string) {
    this.#file = join(dir, 'stalls.jsonl');
  }

  start(): void {
    this.#child = spawnChild('stall-monitor', process.execPath, ['-e', SCRIPT], { logFile: this.#file });
  }

  async stop(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, 'SIGTERM', 2000);
  }

  /** Stalls seen between two epoch times (ms). */
  between(from: number, to: number): Stall[] {
    let text = '';
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Stall)
      .filter((s) => s.at >= from && s.at <= to);
  }
}

/** "3 stalls over 100 ms (max 412 ms)", for notes. */
export function describeStalls(stalls: readonly Stall[]): string {
  const big = stalls.filter((s) => s.lateMs >= 100);
  if (big.length === 0) return 'the machine witness saw no stall of 100 ms or more';
  return `the machine witness (an idle process) was left unscheduled ${big.length} times for 100 ms or more (max ${Math.max(
    ...big.map((s) => s.lateMs),
  )} ms): timeouts at those moments are the machine's`;
}
