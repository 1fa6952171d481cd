import { PadlockError, type KekRing } from '@padlock/core';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { AuditLog } from './audit.js';
import { StoreRows, timed, Unwrapper } from './keychain.js';
import { KeyService } from './keys.js';
import { holdVerifies, scheduleVerifies, sealHold, sealSchedule } from './lifecycle-rows.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { ReceiptSigner } from './receipts.js';
import type { HoldRecord, KeyStore, ScheduleClaim, ScheduleRecord } from './store/types.js';
import { traced } from './tracing.js';

/*
 * Legal holds and scheduled shreds (DESIGN.md section 3). Every row is sealed
 * with its MAC before it is written and verified after it is read; a row that
 * fails is refused, counted (padlock_store_integrity_failures_total) and
 * logged by id, never acted on. The shred itself always goes through
 * KeyService.shred, where the hold check lives.
 *
 * A schedule's life: pending -> executed, or pending -> cancelled. Execution
 * first claims it (a conditional write on the claim it read: one racer wins),
 * shreds, then finishes it on the condition that its claim still stands. A
 * cancel succeeds only on a schedule nobody ever claimed: once a node has
 * started, the schedule completes (a node killed mid-way leaves a claim that
 * expires and is taken over), so a cancel wins entirely or loses cleanly.
 */

const NO_CLAIM: ScheduleClaim = { claimedBy: null, leaseUntil: null };

/** The lifecycle's events, as the audit log records them (DESIGN.md section 10). */
export type LifecycleEvent =
  | { type: 'schedule.create'; userId: string; category: string | null; scheduleId: string; executeAt: number }
  | { type: 'schedule.cancel' | 'schedule.execute'; userId: string; category: string | null; scheduleId: string }
  | { type: 'hold.place'; userId: string; category: string | null; holdId: string; reason: string }
  | { type: 'hold.release'; userId: string; category: string | null; holdId: string };

/**
 * Where each completed lifecycle change is appended, by who made it: the audit
 * log (audit.ts) has this shape. An append that fails makes the call fail after
 * the change was made, as a shred's does: the caller retries, and sees the change.
 */
export interface LifecycleEvents {
  append(actor: string, event: LifecycleEvent): Promise<unknown>;
}

export interface ScheduleRequest {
  readonly userId: string;
  /** undefined: the whole keychain. */
  readonly category?: string | undefined;
  readonly executeAt: number;
  readonly serveDuringGrace: boolean;
  readonly requestedBy: string;
}

export interface LifecycleStatus {
  readonly schedules: readonly (ScheduleRecord & { readonly verified: boolean })[];
  readonly holds: readonly (HoldRecord & { readonly verified: boolean })[];
}

/** Reads of a schedule after its finish failed, 250 and 500 ms apart (see #finishedByUs). */
const FINISH_READ_BACKS = 3;

export class Lifecycle {
  constructor(
    private readonly store: KeyStore,
    readonly keks: KekRing,
    private readonly keys: KeyService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly events?: LifecycleEvents,
  ) {}

  async placeHold(userId: string, category: string | undefined, reason: string, placedBy: string): Promise<HoldRecord> {
    await this.keys.metadata(userId); // 404 for a user without a keychain
    const hold = sealHold(this.keks.active, {
      holdId: `hold-${randomUUID()}`,
      userId,
      category: category ?? null,
      reason,
      placedBy,
      placedAt: Date.now(),
      releasedAt: null,
      releasedBy: null,
    });
    if (!(await timed(this.metrics, 'insert_hold', this.store.insertHold(hold))))
      throw new PadlockError('CONCURRENT_UPDATE');
    await this.events?.append(placedBy, {
      type: 'hold.place',
      userId,
      category: hold.category,
      holdId: hold.holdId,
      reason,
    });
    return hold;
  }

  async releaseHold(userId: string, holdId: string, releasedBy: string): Promise<HoldRecord> {
    const holds = await timed(this.metrics, 'list_holds', this.store.listHolds(userId));
    const hold = holds.find((h) => h.holdId === holdId);
    if (hold === undefined) throw new PadlockError('HOLD_NOT_FOUND');
    this.#checkHold(hold);
    if (hold.releasedAt !== null) throw new PadlockError('HOLD_NOT_FOUND', 'the hold was released already');
    const released = sealHold(this.keks.active, { ...hold, releasedAt: Date.now(), releasedBy });
    const done = await timed(
      this.metrics,
      'release_hold',
      this.store.releaseHold(userId, holdId, {
        releasedAt: released.releasedAt!,
        releasedBy,
        mac: released.mac!,
      }),
    );
    if (!done) throw new PadlockError('HOLD_NOT_FOUND', 'the hold was released already');
    await this.events?.append(releasedBy, { type: 'hold.release', userId, category: hold.category, holdId });
    return released;
  }

  async schedule(request: ScheduleRequest): Promise<ScheduleRecord> {
    await this.keys.metadata(request.userId);
    const schedule = sealSchedule(this.keks.active, {
      scheduleId: `sched-${randomUUID()}`,
      userId: request.userId,
      category: request.category ?? null,
      executeAt: request.executeAt,
      serveDuringGrace: request.serveDuringGrace,
      requestedBy: request.requestedBy,
      createdAt: Date.now(),
      state: 'pending',
      finishedAt: null,
      finishedBy: null,
      claimedBy: null,
      leaseUntil: null,
    });
    if (!(await timed(this.metrics, 'insert_schedule', this.store.insertSchedule(schedule))))
      throw new PadlockError('CONCURRENT_UPDATE');
    await this.events?.append(request.requestedBy, {
      type: 'schedule.create',
      userId: request.userId,
      category: schedule.category,
      scheduleId: schedule.scheduleId,
      executeAt: schedule.executeAt,
    });
    if (!schedule.serveDuringGrace) this.keys.withheld = withholding([...this.keys.withheld.entries()], [schedule]);
    return schedule;
  }

  /** Cancels a schedule nobody has started; SCHEDULE_NOT_PENDING once one has (or it is over). */
  async cancel(userId: string, scheduleId: string, cancelledBy: string): Promise<ScheduleRecord> {
    const schedule = await this.getSchedule(userId, scheduleId);
    if (schedule.state !== 'pending' || schedule.claimedBy !== null) throw new PadlockError('SCHEDULE_NOT_PENDING');
    const cancelled = sealSchedule(this.keks.active, {
      ...schedule,
      state: 'cancelled',
      finishedAt: Date.now(),
      finishedBy: cancelledBy,
    });
    const done = await timed(
      this.metrics,
      'finish_schedule',
      this.store.finishSchedule(scheduleId, NO_CLAIM, {
        state: 'cancelled',
        finishedAt: cancelled.finishedAt!,
        finishedBy: cancelledBy,
        mac: cancelled.mac!,
      }),
    );
    if (!done) throw new PadlockError('SCHEDULE_NOT_PENDING');
    await this.events?.append(cancelledBy, {
      type: 'schedule.cancel',
      userId,
      category: schedule.category,
      scheduleId,
    });
    const withheld = new Map(this.keys.withheld);
    withheld.delete(userId); // refilled from the store by the scheduler's next pass
    this.keys.withheld = withheld;
    return cancelled;
  }

  /** One schedule of `userId`, verified; SCHEDULE_NOT_FOUND when it is not that user's. */
  async getSchedule(userId: string, scheduleId: string): Promise<ScheduleRecord> {
    const schedule = await timed(this.metrics, 'get_schedule', this.store.getSchedule(scheduleId));
    if (schedule === undefined || schedule.userId !== userId) throw new PadlockError('SCHEDULE_NOT_FOUND');
    this.#checkSchedule(schedule);
    return schedule;
  }

  /** Every schedule and hold of a user, each marked verified or not (an edited row is shown, never acted on). */
  async status(userId: string): Promise<LifecycleStatus> {
    const [schedules, holds] = await Promise.all([
      timed(this.metrics, 'list_schedules', this.store.listSchedules(userId)),
      timed(this.metrics, 'list_holds', this.store.listHolds(userId)),
    ]);
    return {
      schedules: schedules.map((s) => ({ ...s, verified: this.#verifiedSchedule(s) })),
      holds: holds.map((h) => ({ ...h, verified: this.#verifiedHold(h) })),
    };
  }

  #verifiedHold(hold: HoldRecord): boolean {
    if (holdVerifies(this.keks, hold)) return true;
    this.#integrityFailure('hold', hold.holdId);
    return false;
  }

  #verifiedSchedule(schedule: ScheduleRecord): boolean {
    if (scheduleVerifies(this.keks, schedule)) return true;
    this.#integrityFailure('schedule', schedule.scheduleId);
    return false;
  }

  #checkHold(hold: HoldRecord): void {
    if (!this.#verifiedHold(hold)) throw new PadlockError('ROW_INTEGRITY');
  }

  #checkSchedule(schedule: ScheduleRecord): void {
    if (!this.#verifiedSchedule(schedule)) throw new PadlockError('ROW_INTEGRITY');
  }

  async #receiptExists(schedule: ScheduleRecord): Promise<boolean> {
    const receipts = await this.keys.receiptsOf(schedule.userId);
    return receipts.some((r) => receiptScheduleId(r.jws) === schedule.scheduleId);
  }

  #integrityFailure(row: 'hold' | 'schedule', id: string): void {
    this.metrics.integrityFailures.inc({ row, reason: 'bad-mac' });
    this.log.error(`a ${row} row failed its MAC and is refused`, { row, id });
  }

  /**
   * Executes one due schedule if this node wins its claim. Returns what
   * happened: 'executed', 'held' (a hold in force: it waits), 'taken' (another
   * node holds it, or it is over), 'refused' (its row failed its MAC).
   */
  async execute(
    schedule: ScheduleRecord,
    nodeId: string,
    leaseMs: number,
    now = Date.now(),
  ): Promise<'executed' | 'held' | 'taken' | 'refused'> {
    if (!this.#verifiedSchedule(schedule)) return 'refused';
    if (schedule.state !== 'pending' || schedule.executeAt > now) return 'taken';
    // A claim in force is left alone; one that lies further ahead than any real lease was
    // written by someone else than a node (it would block the schedule forever) and is taken over.
    const lease = schedule.leaseUntil;
    if (schedule.claimedBy !== null && lease !== null && lease > now && lease <= now + 2 * leaseMs) return 'taken';
    try {
      await this.keys.refuseIfHeld(schedule.userId, schedule.category ?? undefined);
    } catch (error) {
      if (error instanceof PadlockError && error.code === 'LEGAL_HOLD') return 'held';
      throw error;
    }
    const claim: ScheduleClaim = { claimedBy: nodeId, leaseUntil: now + leaseMs };
    const expected: ScheduleClaim = { claimedBy: schedule.claimedBy, leaseUntil: schedule.leaseUntil };
    if (!(await timed(this.metrics, 'claim_schedule', this.store.claimSchedule(schedule.scheduleId, expected, claim))))
      return 'taken';
    try {
      // Claimed before (a node killed mid-way, or a finish that failed): if that run got as far as its
      // receipt, the shred is complete (receipts are written after the store shred), and shredding again
      // would issue a second, different receipt for one deletion. Finish it with the one there is.
      const receipted = schedule.claimedBy !== null && (await this.#receiptExists(schedule));
      if (!receipted) {
        await this.keys.shred(schedule.userId, schedule.category ?? undefined, {
          requestedBy: schedule.requestedBy,
          scheduleId: schedule.scheduleId,
        });
      }
    } catch (error) {
      // A hold placed between the check and the shred: give the claim back, wait for the release.
      if (error instanceof PadlockError && error.code === 'LEGAL_HOLD') {
        await this.store.claimSchedule(schedule.scheduleId, claim, NO_CLAIM);
        return 'held';
      }
      // Nothing to shred: the keychain is gone from the store (it never is in normal operation).
      if (!(error instanceof PadlockError && error.code === 'KEYCHAIN_NOT_FOUND')) {
        // Failed (the store or the journal unavailable): the claim is let go, so the next pass of any node
        // retries at once rather than after the lease. It stays this node's, expired, so the next claimer
        // checks for a receipt before shredding (the shred may have got that far). DiRT's datacenter cut
        // found a schedule left pending past the end of the run, its claim held 30 s by a failed attempt.
        await this.store
          .claimSchedule(schedule.scheduleId, claim, { claimedBy: nodeId, leaseUntil: Date.now() })
          .catch(() => false);
        throw error;
      }
    }
    const finishedAt = Date.now();
    const executed = sealSchedule(this.keks.active, {
      ...schedule,
      state: 'executed',
      finishedAt,
      finishedBy: nodeId,
    });
    let finished: boolean;
    try {
      finished = await timed(
        this.metrics,
        'finish_schedule',
        this.store.finishSchedule(schedule.scheduleId, claim, {
          state: 'executed',
          finishedAt,
          finishedBy: nodeId,
          mac: executed.mac!,
        }),
      );
    } catch (error) {
      finished = await this.#finishedByUs(schedule.scheduleId, nodeId, finishedAt, error);
    }
    // Not finished: our lease ran out and another node took over; it finishes (the shred is idempotent).
    if (!finished) return 'taken';
    await this.events?.append(nodeId, {
      type: 'schedule.execute',
      userId: schedule.userId,
      category: schedule.category,
      scheduleId: schedule.scheduleId,
    });
    this.metrics.scheduleDelay.observe({}, Math.max(0, finishedAt - schedule.executeAt) / 1000);
    return 'executed';
  }

  /**
   * Whether a finish that failed (a timeout: on Cassandra a conditional write whose outcome is unknown)
   * landed after all, as this node's: read back at the store's serial consistency, which also completes
   * a Paxos round left half-way. Without it a finish that landed but timed out left the schedule
   * executed with no schedule.execute audit entry: every later pass sees it over and skips it (DiRT
   * schedules-node-group-kill found one). A finish that did not land rethrows the error: the claim
   * stays, and the schedule is taken over once the lease runs out. When the read-backs fail too, the
   * error is rethrown and the entry can still be missing (the schedule's own row says who finished it).
   */
  async #finishedByUs(scheduleId: string, nodeId: string, finishedAt: number, error: unknown): Promise<boolean> {
    for (let attempt = 1; attempt <= FINISH_READ_BACKS; attempt++) {
      try {
        const now = await this.store.getSchedule(scheduleId);
        if (now === undefined || now.state === 'pending') throw error;
        return now.state === 'executed' && now.finishedBy === nodeId && now.finishedAt === finishedAt;
      } catch (readError) {
        if (readError === error || attempt === FINISH_READ_BACKS) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
      }
    }
    throw error;
  }
}

/** The scheduleId claim of a stored receipt (our own store's row: read, not verified), or null. */
export function receiptScheduleId(jws: string): string | null {
  try {
    const claims = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      scheduleId?: unknown;
    };
    return typeof claims.scheduleId === 'string' ? claims.scheduleId : null;
  } catch {
    return null;
  }
}

/**
 * The lifecycle straight on the store (no cache), with the same shred path, hold
 * check, receipts and audit chain as the server's; for tests and tools that run
 * no server. The CLI builds its own from offlineKeyService.
 */
export async function operatorLifecycle(
  store: KeyStore,
  keks: KekRing,
  categories: readonly string[],
  log: Logger,
  events?: LifecycleEvents,
): Promise<{ keys: KeyService; lifecycle: Lifecycle; audit: AuditLog }> {
  const metrics = new Metrics();
  const receipts = await ReceiptSigner.open(store, keks, log);
  const audit = new AuditLog(store, { checkpointEveryMs: 60_000, signer: receipts, log });
  const keys = new KeyService(
    store,
    new Unwrapper(new StoreRows(store, metrics), keks),
    keks,
    categories,
    0,
    metrics,
    { receipts, audit },
    undefined,
    log,
  );
  return { keys, lifecycle: new Lifecycle(store, keks, keys, metrics, log, events ?? audit), audit };
}

/** The withheld map for these pending schedules with serveDuringGrace false, over `base`. */
function withholding(
  base: [string, ReadonlySet<string> | null][],
  schedules: readonly ScheduleRecord[],
): Map<string, ReadonlySet<string> | null> {
  const map = new Map(base);
  for (const s of schedules) {
    if (s.serveDuringGrace || s.state !== 'pending') continue;
    const current = map.get(s.userId);
    if (s.category === null || current === null) map.set(s.userId, null);
    else map.set(s.userId, new Set([...(current ?? []), s.category]));
  }
  return map;
}

export interface SchedulerOptions {
  readonly intervalMs: number;
  readonly leaseMs: number;
  readonly batch: number;
  readonly concurrency: number;
  /**
   * At most this many executions started per second (0: no cap). Executions are spaced evenly
   * (1000 / maxPerSecond ms apart, over all `concurrency` workers), and the event loop is yielded
   * between them whatever the cap, so requests queued behind one shred go before the next.
   */
  readonly maxPerSecond?: number;
  /** This process's name in claims; unique per process. */
  readonly nodeId?: string;
  /** Told of each outcome (a scheduler in its own process reports them to the server's metrics). */
  readonly onOutcome?: (outcome: ScheduleOutcome) => void;
}

/** What became of one due schedule this node tried, as the scheduler reports it. */
export interface ScheduleOutcome {
  readonly outcome: 'executed' | 'held' | 'failed';
  readonly userId: string;
  /** Seconds from executeAt to the finish, for 'executed'. */
  readonly delaySeconds?: number;
}

/**
 * Re-reads which keychains are withheld during their grace period (pending schedules with
 * serveDuringGrace false), keeping only rows that pass their MAC. The scheduler does it after each
 * pass; a server whose scheduler runs elsewhere does it on a timer of its own.
 */
export async function refreshWithheld(
  store: KeyStore,
  keks: KekRing,
  keys: KeyService,
  metrics: Metrics,
): Promise<void> {
  const withholdingNow = await timed(metrics, 'withholding_schedules', store.withholdingSchedules());
  keys.withheld = withholding(
    [],
    withholdingNow.filter((s) => scheduleVerifies(keks, s)),
  );
}

const yieldLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs on every node: each pass reads the due schedules and executes those it
 * wins, then refreshes which keychains are withheld during their grace period.
 * A pass never overlaps the previous one.
 */
export class Scheduler {
  readonly nodeId: string;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  /** The earliest time the next execution may start under maxPerSecond. */
  #nextSlot = 0;
  /** Workers waiting for their slot: stop() wakes them. */
  readonly #sleeps = new Set<{ resolve: () => void; timer: NodeJS.Timeout }>();

  constructor(
    private readonly store: KeyStore,
    private readonly lifecycle: Lifecycle,
    private readonly keys: KeyService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: SchedulerOptions,
  ) {
    this.nodeId = options.nodeId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  }

  start(): void {
    const loop = (): void => {
      if (this.#stopped) return;
      this.#running = traced('scheduler pass', {}, () => this.pass(), true)
        .then(() => undefined)
        .catch((error: unknown) => {
          this.log.warn('scheduler pass failed', { error: error instanceof Error ? error.message : 'unknown' });
        })
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(loop, this.options.intervalMs).unref();
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer);
      sleep.resolve();
    }
    await this.#running;
  }

  /** One pass; returns how many schedules this node executed. */
  async pass(): Promise<number> {
    const now = Date.now();
    const due = await timed(this.metrics, 'due_schedules', this.store.dueSchedules(now, this.options.batch));
    let executed = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length && !this.#stopped) {
        await this.#pace();
        if (this.#stopped || next >= due.length) break;
        const schedule = due[next++]!;
        try {
          const outcome = await traced('scheduled shred', { 'padlock.schedule_id': schedule.scheduleId }, () =>
            this.lifecycle.execute(schedule, this.nodeId, this.options.leaseMs),
          );
          if (outcome === 'executed') executed++;
          if (outcome === 'executed' || outcome === 'held') {
            this.metrics.schedulesExecuted.inc({ outcome });
            this.options.onOutcome?.({
              outcome,
              userId: schedule.userId,
              ...(outcome === 'executed' ? { delaySeconds: Math.max(0, Date.now() - schedule.executeAt) / 1000 } : {}),
            });
          }
        } catch (error) {
          this.metrics.schedulesExecuted.inc({ outcome: 'failed' });
          this.options.onOutcome?.({ outcome: 'failed', userId: schedule.userId });
          this.log.warn('a scheduled shred failed; it is retried', {
            scheduleId: schedule.scheduleId,
            error: error instanceof PadlockError ? error.code : error instanceof Error ? error.message : 'unknown',
          });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, due.length) }, worker));
    await refreshWithheld(this.store, this.lifecycle.keks, this.keys, this.metrics);
    return executed;
  }

  /**
   * Waits for this execution's slot under maxPerSecond (slots are shared by the workers, one every
   * 1000 / maxPerSecond ms), and always yields the event loop once: a shred's store calls are
   * synchronous on SQLite, and without a yield the next would start before queued requests ran.
   */
  async #pace(): Promise<void> {
    const cap = this.options.maxPerSecond ?? 0;
    if (cap > 0) {
      const now = performance.now();
      const slot = Math.max(now, this.#nextSlot);
      this.#nextSlot = slot + 1000 / cap;
      if (slot > now) {
        let sleep: { resolve: () => void; timer: NodeJS.Timeout } | undefined;
        await new Promise<void>((resolve) => {
          sleep = { resolve, timer: setTimeout(resolve, slot - now) };
          this.#sleeps.add(sleep);
        });
        this.#sleeps.delete(sleep!);
        return;
      }
    }
    await yieldLoop();
  }
}
