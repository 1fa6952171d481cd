import type { CassandraCluster } from './cassandra.js';
import type { LifecycleRegistry } from './lifecycle.js';
import { now, phaseSummaries, recoveryMs, writeRecords, type OpenLoopLoad, type PhaseSummary } from './load.js';
import { round } from './stats.js';

/*
 * A scenario: setup, steady load (recorded as "before"), the fault ("during"),
 * recovery ("after"), then its figures checked. Each returns one report row.
 */

export type Infra = 'none' | 'rf3' | 'twodc';

export interface Timing {
  readonly beforeS: number;
  readonly duringS: number;
  readonly afterS: number;
  /** Operations per second of the steady load. */
  readonly rate: number;
}

export interface Figure {
  readonly name: string;
  readonly target: string;
  readonly value: string;
  readonly pass: boolean;
  /**
   * `invariant`: correctness that holds on any machine, however loaded (no wrong or stale key, no
   * acknowledged write lost, no 5xx, no crash or hang, no leak, and the checks that show a scenario
   * tested what it claims); the CI run fails when one is missed. `target`: a timing or availability
   * figure, which rests on this machine's speed and load as well as on Padlock: the CI run reports
   * it, the full run fails on it.
   */
  readonly kind: 'invariant' | 'target';
}

export interface Totals {
  readonly sent: number;
  readonly answered: number;
  readonly ok: number;
  readonly wrongKeys: number;
  readonly stale: number;
  readonly failed: number;
  readonly byStatus: Record<string, number>;
}

export interface ScenarioReport {
  readonly name: string;
  readonly title: string;
  readonly infra: Infra;
  /** pass: every figure met; fail: a figure missed; error: the scenario did not run to the end. */
  readonly status: 'pass' | 'fail' | 'error';
  /** No invariant missed, and the scenario ran to the end. */
  readonly invariantsHeld: boolean;
  readonly error?: string;
  readonly durationS: number;
  readonly totals: Totals;
  /** before, during, after (in that order when the scenario has them). */
  readonly phases: readonly PhaseSummary[];
  /** Per cent of operations answered correctly from the fault's start to the end. */
  readonly availability: number | null;
  readonly recoveryMs: number | null;
  readonly figures: readonly Figure[];
  readonly notes: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
}

/** What a scenario hands back; the runner adds name, timing and status. */
export interface ScenarioOutcome {
  readonly totals: Totals;
  readonly phases: readonly PhaseSummary[];
  readonly availability: number | null;
  readonly recoveryMs: number | null;
  readonly figures: readonly Figure[];
  readonly notes: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
}

/** Things collected across the run for the final leak scan. */
export class RunState {
  readonly padlockLogs = new Set<string>();
  readonly errorBodies = new Set<string>();
  /** Derived keys (base64url text) of users whose shred was acknowledged. */
  readonly shreddedKeys = new Set<string>();
  /** A sample of every derived key served (base64url text). */
  readonly servedKeys = new Set<string>();
  static readonly LIMIT = 50000;

  addErrorBody(text: string): void {
    if (this.errorBodies.size < RunState.LIMIT) this.errorBodies.add(text);
  }

  addServedKey(key: string): void {
    if (this.servedKeys.size < RunState.LIMIT) this.servedKeys.add(key);
  }

  addShreddedKey(key: string): void {
    if (this.shreddedKeys.size < RunState.LIMIT) this.shreddedKeys.add(key);
  }
}

export interface Context {
  readonly name: string;
  /** Scratch directory of this scenario (configs, logs, stores). */
  readonly dir: string;
  readonly ci: boolean;
  readonly timing: Timing;
  readonly cluster: CassandraCluster | undefined;
  readonly run: RunState;
  /** A fresh TCP port for a listener of this scenario (from DIRT_PORT_BASE, or one the kernel picks: net.ts). */
  port(): number;
  /** A fresh memcached port (DIRT_MEMCACHED_PORT, default 11400, and up). */
  memcachedPort(): number;
  log(message: string): void;
  /** Work to run when the scenario ends, however it ends (newest first). */
  defer(work: () => Promise<void> | void): void;
  /** Workloads and Padlocks register here; the lifecycle invariants are checked after every scenario. */
  readonly lifecycle: LifecycleRegistry;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly infra: Infra;
  /** Part of the CI subset. */
  readonly ci: boolean;
  run(ctx: Context): Promise<ScenarioOutcome>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A timing or availability figure (see Figure.kind). */
export function figure(name: string, target: string, value: string | number, pass: boolean): Figure {
  return { name, target, value: typeof value === 'number' ? String(round(value)) : value, pass, kind: 'target' };
}

/** A correctness figure that must hold on any machine (see Figure.kind). */
export function invariant(name: string, target: string, value: string | number, pass: boolean): Figure {
  return { ...figure(name, target, value, pass), kind: 'invariant' };
}

export function sumTotals(phases: readonly PhaseSummary[]): Totals {
  const byStatus: Record<string, number> = {};
  for (const p of phases) for (const [k, v] of Object.entries(p.byStatus)) byStatus[k] = (byStatus[k] ?? 0) + v;
  return {
    sent: phases.reduce((s, p) => s + p.sent, 0),
    answered: phases.reduce((s, p) => s + p.answered, 0),
    ok: phases.reduce((s, p) => s + p.ok, 0),
    wrongKeys: phases.reduce((s, p) => s + p.wrong, 0),
    stale: phases.reduce((s, p) => s + p.stale, 0),
    failed: phases.reduce((s, p) => s + p.failed, 0),
    byStatus,
  };
}

/** Per cent answered correctly over the given phases (null when none were sent). */
export function availabilityOf(phases: readonly PhaseSummary[]): number | null {
  const sent = phases.reduce((s, p) => s + p.sent, 0);
  if (sent === 0) return null;
  return (100 * phases.reduce((s, p) => s + p.ok, 0)) / sent;
}

export interface FaultRun {
  readonly load: OpenLoopLoad;
  /** Where to write every operation (CSV) when the run ends. */
  readonly recordsFile?: string;
  readonly timing: Timing;
  /**
   * Seconds of the same load before the "before" phase, not reported: the first seconds on a
   * freshly started process (JIT, connections, Cassandra's caches) are not the steady state the
   * fault is compared against. Its operations still go through the oracle's checks.
   */
  readonly warmS?: number;
  /** Injects the fault (the "during" phase starts just before). */
  inject(): Promise<void>;
  /** Clears it; returns when the component is back (the "after" phase starts then). */
  clear(): Promise<void>;
  log(message: string): void;
}

export interface FaultRunResult {
  /** before, during, after. */
  readonly phases: PhaseSummary[];
  /** The unreported warm-up phase, when there was one: its operations count in the totals and invariants. */
  readonly warmUp?: PhaseSummary;
  readonly clearedAt: number;
  readonly endAt: number;
  /** How long clear() took (e.g. a restart). */
  readonly clearMs: number;
}

/** before -> inject -> during -> clear -> after, with the load running throughout; stops the load. */
export async function runFault(run: FaultRun): Promise<FaultRunResult> {
  const { load, timing } = run;
  const warmS = run.warmS ?? 0;
  if (warmS > 0) {
    load.start('warm-up');
    await sleep(warmS * 1000);
    load.mark('before');
  } else {
    load.start('before');
  }
  await sleep(timing.beforeS * 1000);
  load.mark('during');
  run.log('fault injected');
  await run.inject();
  await sleep(timing.duringS * 1000);
  const clearing = now();
  await run.clear();
  const clearedAt = now();
  run.log(`fault cleared in ${Math.round(clearedAt - clearing)} ms`);
  load.mark('after');
  await sleep(timing.afterS * 1000);
  const endAt = now();
  await load.stop();
  if (run.recordsFile !== undefined) writeRecords(run.recordsFile, load);
  const all = phaseSummaries(load, endAt);
  const phases = all.filter((p) => p.phase !== 'warm-up');
  const warmUp = all.find((p) => p.phase === 'warm-up');
  return { phases, ...(warmUp === undefined ? {} : { warmUp }), clearedAt, endAt, clearMs: clearedAt - clearing };
}

/** The standard figures of a single-component fault, and the outcome fields they come from. */
export function faultOutcome(
  result: FaultRunResult,
  load: OpenLoopLoad,
  options: {
    readonly minAvailability?: number;
    readonly p99DuringLimitMs?: number;
    readonly extraFigures?: readonly Figure[];
    readonly notes?: readonly string[];
    readonly details?: Readonly<Record<string, unknown>>;
  } = {},
): ScenarioOutcome {
  const [before, during, after] = result.phases as [PhaseSummary, PhaseSummary, PhaseSummary];
  // Invariants and totals count every operation, the warm-up's too; the phase figures do not.
  const counted = result.warmUp === undefined ? result.phases : [result.warmUp, ...result.phases];
  const totals = sumTotals(counted);
  const availability = availabilityOf([during, after]);
  // Back to normal, judged on the median: on this machine single stalls of 100-300 ms come and go
  // and move a p99 of a few seconds' load by themselves (the p99 is reported all the same).
  const limit = Math.max(2 * before.p50, before.p50 + 5);
  const recovery = recoveryMs(load.records, result.clearedAt, result.endAt);
  const figures: Figure[] = [
    invariant('wrong keys served', '0', totals.wrongKeys, totals.wrongKeys === 0),
    invariant('keys served past the deletion bound', '0', totals.stale, totals.stale === 0),
  ];
  if (options.minAvailability !== undefined) {
    figures.push(
      figure(
        'answered correctly from fault to end',
        `>= ${options.minAvailability} %`,
        availability === null ? 'n/a' : `${availability.toFixed(3)} %`,
        availability !== null && availability >= options.minAvailability,
      ),
    );
  }
  if (options.p99DuringLimitMs !== undefined) {
    figures.push(
      figure(
        'p99 during the fault',
        `<= ${options.p99DuringLimitMs} ms`,
        `${during.p99} ms`,
        during.p99 <= options.p99DuringLimitMs,
      ),
    );
  }
  figures.push(
    figure(
      'recovers by itself',
      `no failure in the last 2 s; p50 after <= ${round(limit)} ms (2 x before, or +5 ms)`,
      recovery === null ? 'still failing' : `last failure ${recovery} ms after clearing; p50 after ${after.p50} ms`,
      recovery !== null && after.p50 <= limit,
    ),
  );
  const notes = [...(options.notes ?? [])];
  if (result.warmUp !== undefined) {
    const w = result.warmUp;
    notes.push(
      `warm-up: ${Math.round(w.durationS)} s of the same load before "before", not in the phase figures but in the totals and invariants (${w.sent} sent, p50 ${w.p50} ms, p99 ${w.p99} ms)`,
    );
  }
  const notSent = counted.reduce((s, p) => s + p.notSent, 0);
  if (notSent > 0) notes.push(`${notSent} operations could not be sent (too many outstanding): counted as failed`);
  return {
    totals,
    phases: [before, during, after],
    availability,
    recoveryMs: recovery,
    figures: [...figures, ...(options.extraFigures ?? [])],
    notes,
    details: { clearMs: Math.round(result.clearMs), maxOutstanding: load.maxOutstandingSeen, ...options.details },
  };
}
