import { writeFileSync } from 'node:fs';
import { round, summarize } from './stats.js';

/*
 * Open-loop load: operations are due at a fixed rate, and each one's latency
 * is measured from the moment it was due, not from when it was sent, so
 * queueing anywhere (here included) shows up in the numbers (a closed loop
 * would hide it). The loop is bounded in operations, in time and in
 * operations outstanding; whatever cannot be sent because too many are
 * outstanding is counted as not sent, never silently dropped.
 */

export type Outcome = 'ok' | 'wrong' | 'stale' | 'failed';

export interface OpResult {
  /** HTTP status, or an error label (ECONNRESET, TIMEOUT, Unavailable, ...). */
  readonly label: string;
  readonly outcome: Outcome;
  /** True when Padlock answered (any HTTP status); false for connection errors and timeouts. */
  readonly answered: boolean;
  readonly detail?: string;
}

export interface Operation {
  readonly kind: string;
  run(): Promise<OpResult>;
}

export interface OpRecord {
  readonly kind: string;
  /** When it was due, sent and answered (ms since the epoch, fractional). */
  readonly intended: number;
  readonly sent: number;
  readonly done: number;
  readonly phase: number;
  readonly label: string;
  readonly outcome: Outcome;
  readonly answered: boolean;
}

export interface LoadOptions {
  readonly rate: number;
  readonly maxOutstanding: number;
  /** Hard limits: the load stops by itself at whichever comes first. */
  readonly maxDurationMs: number;
  readonly maxOps: number;
  readonly next: (i: number) => Operation;
  /** Called for each failed, wrong or stale operation (to keep examples). */
  readonly onProblem?: (record: OpRecord, detail: string | undefined) => void;
}

export const now = (): number => performance.timeOrigin + performance.now();

export class OpenLoopLoad {
  readonly records: OpRecord[] = [];
  readonly phases: { name: string; at: number }[] = [];
  readonly notSent: number[] = [];
  #rate: number;
  #issued = 0;
  #outstanding = 0;
  #queue: number[] = [];
  #nextDue = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #idle: (() => void) | undefined;
  #maxOutstandingSeen = 0;

  constructor(private readonly options: LoadOptions) {
    this.#rate = options.rate;
  }

  get outstanding(): number {
    return this.#outstanding;
  }

  get maxOutstandingSeen(): number {
    return this.#maxOutstandingSeen;
  }

  get rate(): number {
    return this.#rate;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  start(phase = 'before'): void {
    this.#startedAt = now();
    this.#nextDue = this.#startedAt;
    this.mark(phase);
    this.#tick();
  }

  /** Starts a new phase now; operations due from now on belong to it. */
  mark(phase: string): void {
    this.phases.push({ name: phase, at: now() });
    this.notSent.push(0);
  }

  setRate(rate: number): void {
    this.#rate = rate;
    this.#nextDue = Math.max(this.#nextDue, now());
  }

  /** Stops issuing, then waits for every operation outstanding (each has its own timeout). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#queue = [];
    if (this.#outstanding > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
  }

  #tick(): void {
    if (this.#stopped) return;
    const t = now();
    if (t - this.#startedAt > this.options.maxDurationMs) {
      void this.stop();
      return;
    }
    const interval = 1000 / this.#rate;
    const maxQueue = Math.max(50, Math.ceil(this.#rate));
    while (this.#nextDue <= t && this.#issued < this.options.maxOps) {
      this.#issued++;
      if (this.#queue.length >= maxQueue) this.notSent[this.notSent.length - 1]! += 1;
      else this.#queue.push(this.#nextDue);
      this.#nextDue += interval;
    }
    this.#drain();
    if (this.#issued >= this.options.maxOps && this.#queue.length === 0) {
      void this.stop();
      return;
    }
    this.#timer = setTimeout(() => this.#tick(), Math.max(1, Math.min(5, this.#nextDue - now())));
  }

  #drain(): void {
    while (!this.#stopped && this.#outstanding < this.options.maxOutstanding && this.#queue.length > 0) {
      const intended = this.#queue.shift()!;
      this.#launch(intended);
    }
  }

  #launch(intended: number): void {
    const index = this.records.length + this.#outstanding;
    const operation = this.options.next(index);
    const phase = this.phases.length - 1;
    this.#outstanding++;
    this.#maxOutstandingSeen = Math.max(this.#maxOutstandingSeen, this.#outstanding);
    const sent = now();
    const finish = (result: OpResult): void => {
      const record: OpRecord = {
        kind: operation.kind,
        intended,
        sent,
        done: now(),
        phase,
        label: result.label,
        outcome: result.outcome,
        answered: result.answered,
      };
      this.records.push(record);
      if (result.outcome !== 'ok') this.options.onProblem?.(record, result.detail);
      this.#outstanding--;
      if (this.#stopped && this.#outstanding === 0) this.#idle?.();
      else this.#drain();
    };
    operation
      .run()
      .then(finish, (error: unknown) =>
        finish({ label: 'EXCEPTION', outcome: 'failed', answered: false, detail: String(error) }),
      );
  }
}

export interface PhaseSummary {
  readonly phase: string;
  readonly durationS: number;
  readonly sent: number;
  readonly notSent: number;
  readonly answered: number;
  readonly ok: number;
  readonly wrong: number;
  readonly stale: number;
  readonly failed: number;
  readonly byStatus: Record<string, number>;
  /** Per operation kind: how many were sent, and how many of them were not answered correctly. */
  readonly byKind: Record<string, { sent: number; notOk: number }>;
  /** Lookups' latency from the time each was due, answered lookups only (ms). */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** The same for writes (creates, shreds): Paxos rounds in Cassandra, so slower by design. */
  readonly writeP50: number;
  readonly writeP99: number;
  /** Time from sending to the answer, answered operations only (ms). */
  readonly serviceP99: number;
  readonly serviceMax: number;
  /** Operations answered correctly per second. */
  readonly goodput: number;
}

/** Operation kinds that write; every other kind is a lookup. */
export const WRITE_KINDS: ReadonlySet<string> = new Set(['create', 'shred', 'rotate']);

export function summarizeRecords(
  phase: string,
  records: readonly OpRecord[],
  durationMs: number,
  notSent = 0,
): PhaseSummary {
  const byStatus: Record<string, number> = {};
  const byKind: Record<string, { sent: number; notOk: number }> = {};
  let ok = 0;
  let wrong = 0;
  let stale = 0;
  let failed = 0;
  const latencies: number[] = [];
  const writes: number[] = [];
  const service: number[] = [];
  for (const r of records) {
    byStatus[r.label] = (byStatus[r.label] ?? 0) + 1;
    const kind = (byKind[r.kind] ??= { sent: 0, notOk: 0 });
    kind.sent++;
    if (r.outcome !== 'ok') kind.notOk++;
    if (r.outcome === 'ok') ok++;
    else if (r.outcome === 'wrong') wrong++;
    else if (r.outcome === 'stale') stale++;
    else failed++;
    if (r.answered) {
      (WRITE_KINDS.has(r.kind) ? writes : latencies).push(r.done - r.intended);
      service.push(r.done - r.sent);
    }
  }
  const l = summarize(latencies);
  const w = summarize(writes);
  const s = summarize(service);
  return {
    phase,
    durationS: round(durationMs / 1000),
    sent: records.length + notSent,
    notSent,
    answered: latencies.length + writes.length,
    ok,
    wrong,
    stale,
    failed: failed + notSent,
    byStatus,
    byKind,
    p50: round(l.p50),
    p99: round(l.p99),
    max: round(l.max),
    writeP50: round(w.p50),
    writeP99: round(w.p99),
    serviceP99: round(s.p99),
    serviceMax: round(s.max),
    goodput: durationMs > 0 ? round((ok * 1000) / durationMs) : 0,
  };
}

/** Per-phase summaries of a finished load, in phase order. */
export function phaseSummaries(load: OpenLoopLoad, endAt: number = now()): PhaseSummary[] {
  return load.phases.map((p, i) => {
    const until = load.phases[i + 1]?.at ?? endAt;
    return summarizeRecords(
      p.name,
      load.records.filter((r) => r.phase === i),
      until - p.at,
      load.notSent[i] ?? 0,
    );
  });
}

/**
 * Time from `clearedAt` until operations stopped failing: the answer time of
 * the last failed, wrong or stale operation due after it (0 when there was
 * none). Null when one still failed in the last 2 seconds of the load (not
 * seen recovered). Latency is judged separately, on the whole "after" phase:
 * on a shared machine single seconds have stalls that are not the fault's.
 */
export function recoveryMs(records: readonly OpRecord[], clearedAt: number, endAt: number): number | null {
  let lastBad = 0;
  for (const r of records) {
    if (r.intended >= clearedAt && r.outcome !== 'ok') lastBad = Math.max(lastBad, r.done - clearedAt);
  }
  if (endAt - clearedAt - lastBad < 2000) return null;
  return round(lastBad);
}

/** Every operation as CSV (ms relative to the load's start), for looking into a run afterwards. */
export function writeRecords(path: string, load: OpenLoopLoad): void {
  const t0 = load.phases[0]?.at ?? 0;
  const lines = ['due_ms,sent_ms,done_ms,phase,kind,label,outcome'];
  for (const r of load.records) {
    lines.push(
      [
        (r.intended - t0).toFixed(1),
        (r.sent - t0).toFixed(1),
        (r.done - t0).toFixed(1),
        load.phases[r.phase]?.name ?? r.phase,
        r.kind,
        JSON.stringify(r.label),
        r.outcome,
      ].join(','),
    );
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
}
