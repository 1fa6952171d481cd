import {
  createLogger,
  loadConfig,
  loadKeks,
  openStore,
  ReceiptSigner,
  verifyAudit,
  type KeyStore,
} from '@padlock/server';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import { call, type Target } from './http.js';
import { invariant, sleep, type Figure } from './scenario.js';

/*
 * The deletion lifecycle's invariants, checked after every scenario (DESIGN.md
 * sections 3 and 10), from what the workload did and what the store holds:
 * - no held key shredded: every keychain under a hold the run placed (and never
 *   released) still has every row live, and every shred the run sent to a held
 *   keychain was refused;
 * - every due schedule executed exactly once: state "executed", exactly one
 *   receipt and one `schedule.execute` audit entry naming it; a schedule over a
 *   held keychain is still pending;
 * - every receipt the run obtained verifies against GET /v1/receipts/keys
 *   (jose, EdDSA, typ padlock-receipt+jwt), as do the scheduled shreds' receipts;
 * - the audit log verifies (the server's own verifyAudit over the store).
 * The workload (workload.ts) places the holds and schedules and keeps the
 * receipts in a LifecycleLedger; the checks read the store directly, so they
 * need no Padlock process alive at the end.
 */

export interface ScheduleSent {
  readonly scheduleId: string;
  readonly userId: string;
  readonly executeAt: number;
  /** Placed on a keychain under a hold the run placed: it must wait. */
  readonly held: boolean;
}

/** What the workload's lifecycle operations did, for the checks after the scenario. */
export class LifecycleLedger {
  /** Keychains under a hold the run placed (and never releases). */
  readonly held = new Set<string>();
  readonly schedules: ScheduleSent[] = [];
  /** Receipts (compact JWS) returned by immediate shreds. */
  readonly receipts: string[] = [];
  /** Shreds of held keychains that were acknowledged: each is a held key shredded. */
  heldShredsAcked = 0;
  /** Shreds of held keychains refused with LEGAL_HOLD, as they must be. */
  heldShredsRefused = 0;
  /** The JWKS, fetched from GET /v1/receipts/keys when a receipt first arrived (and again at the end). */
  jwks: JSONWebKeySet | undefined;

  get active(): boolean {
    return this.held.size > 0 || this.schedules.length > 0 || this.receipts.length > 0;
  }
}

/** GET /v1/receipts/keys (public); undefined when no target answers. */
export async function fetchJwks(targets: readonly Target[]): Promise<JSONWebKeySet | undefined> {
  for (const target of targets) {
    try {
      const reply = await call(target, { method: 'GET', path: '/v1/receipts/keys', timeoutMs: 3000 });
      if (reply.status === 200) return JSON.parse(reply.body.toString('utf8')) as JSONWebKeySet;
    } catch {
      // the next target
    }
  }
  return undefined;
}

interface ReceiptPayload {
  readonly sub?: unknown;
  readonly scheduleId?: unknown;
}

/** Verifies one receipt with jose; returns its payload, or the reason it failed. */
export async function verifyReceiptJws(
  jws: string,
  jwks: JSONWebKeySet,
): Promise<{ ok: true; payload: ReceiptPayload } | { ok: false; why: string }> {
  try {
    if (decodeProtectedHeader(jws).typ !== 'padlock-receipt+jwt') return { ok: false, why: 'typ' };
    const { payload } = await compactVerify(jws, createLocalJWKSet(jwks), { algorithms: ['EdDSA'] });
    return { ok: true, payload: JSON.parse(Buffer.from(payload).toString('utf8')) as ReceiptPayload };
  } catch (error) {
    return { ok: false, why: error instanceof Error ? error.message : String(error) };
  }
}

/** How long after the load a due schedule may take to be executed (scheduler passes every second). */
const SETTLE_MS = 30000;

/**
 * The four lifecycle invariants as report figures, from the ledgers of the
 * scenario's workloads and the store behind `configFile`.
 */
export async function lifecycleFigures(
  ledgers: readonly LifecycleLedger[],
  configFile: string,
  targets: readonly Target[],
  log: (message: string) => void,
): Promise<{ figures: Figure[]; note: string }> {
  const held = new Set(ledgers.flatMap((l) => [...l.held]));
  const schedules = ledgers.flatMap((l) => l.schedules);
  const immediate = ledgers.flatMap((l) => l.receipts);
  const heldAcked = ledgers.reduce((s, l) => s + l.heldShredsAcked, 0);
  const heldRefused = ledgers.reduce((s, l) => s + l.heldShredsRefused, 0);
  const loaded = loadConfig(configFile);
  // The check is not under the request deadline: a node that came back a moment ago may be slow to answer.
  const config =
    loaded.store.kind === 'cassandra'
      ? { ...loaded, store: { ...loaded.store, cassandra: { ...loaded.store.cassandra, readTimeoutMs: 10000 } } }
      : loaded;
  const store: KeyStore = await openStore(
    config,
    createLogger('error', () => undefined),
  );
  try {
    // 1. No held key shredded.
    let heldRowsShredded = 0;
    for (const userId of held) {
      const rows = await store.getKeychain(userId, { fresh: true });
      heldRowsShredded += rows.filter((r) => r.wrapped === null).length;
    }
    // 2. Every due schedule executed exactly once (a held one still pending). Wait for the last ones.
    const due = schedules.filter((s) => !s.held);
    const deadline = Date.now() + SETTLE_MS;
    let states = new Map<string, string>();
    for (;;) {
      states = new Map();
      for (const s of schedules) states.set(s.scheduleId, (await store.getSchedule(s.scheduleId))?.state ?? 'missing');
      if (due.every((s) => states.get(s.scheduleId) === 'executed') || Date.now() > deadline) break;
      await sleep(1000);
    }
    const auditRows = await allAuditBodies(store);
    const executeEntries = new Map<string, number>();
    for (const body of auditRows) {
      const event = (JSON.parse(body) as { event?: { type?: unknown; scheduleId?: unknown } }).event;
      if (event?.type === 'schedule.execute' && typeof event.scheduleId === 'string')
        executeEntries.set(event.scheduleId, (executeEntries.get(event.scheduleId) ?? 0) + 1);
    }
    // The published keys; with no Padlock answering at the end, the same keys as the store holds them.
    const jwks =
      (await fetchJwks(targets)) ??
      ledgers.find((l) => l.jwks !== undefined)?.jwks ??
      ((await store.listSigningKeys()).length > 0
        ? ((await ReceiptSigner.open(store, loadKeks(config))).jwks as JSONWebKeySet)
        : undefined);
    const scheduledReceipts: string[] = [];
    const problems: string[] = [];
    let notOnce = 0;
    for (const s of due) {
      const receipts = (await store.listReceipts(s.userId)).filter((r) => receiptSchedule(r.jws) === s.scheduleId);
      scheduledReceipts.push(...receipts.map((r) => r.jws));
      const state = states.get(s.scheduleId);
      const entries = executeEntries.get(s.scheduleId) ?? 0;
      if (state !== 'executed' || receipts.length !== 1 || entries !== 1) {
        notOnce++;
        if (problems.length < 5)
          problems.push(`${s.scheduleId}: ${state}, ${receipts.length} receipts, ${entries} execute entries`);
      }
    }
    const heldSchedulesRun = schedules.filter((s) => s.held && states.get(s.scheduleId) !== 'pending').length;
    // 3. Every receipt obtained verifies.
    const allReceipts = [...immediate, ...scheduledReceipts];
    let badReceipts = 0;
    for (const jws of allReceipts) {
      const verdict = jwks === undefined ? { ok: false as const, why: 'no JWKS' } : await verifyReceiptJws(jws, jwks);
      if (!verdict.ok) {
        badReceipts++;
        if (problems.length < 5) problems.push(`receipt does not verify: ${verdict.why}`);
      }
    }
    // 4. The audit log verifies.
    const audit = jwks === undefined ? undefined : await verifyAudit(store, jwks);
    for (const p of problems) log(`lifecycle: ${p}`);
    const figures = [
      invariant(
        'held keys shredded',
        '0',
        `${heldRowsShredded} rows of ${held.size} held keychains; ${heldAcked} shreds of held keychains acknowledged`,
        heldRowsShredded === 0 && heldAcked === 0 && heldSchedulesRun === 0,
      ),
      invariant(
        'due schedules not executed exactly once',
        '0',
        `${notOnce} of ${due.length}${heldSchedulesRun > 0 ? `; ${heldSchedulesRun} held schedules ran` : ''}`,
        notOnce === 0,
      ),
      invariant('receipts that do not verify', '0', `${badReceipts} of ${allReceipts.length}`, badReceipts === 0),
      invariant(
        'audit log verifies after the run',
        'ok',
        audit === undefined
          ? 'no JWKS to check checkpoints with'
          : audit.ok
            ? `ok (${audit.chains} chains, ${audit.entries} entries, ${audit.checkpoints} checkpoints)`
            : `${audit.first?.problem ?? '?'} at ${audit.first?.chain ?? '?'}#${audit.first?.seq ?? '?'}`,
        audit?.ok === true,
      ),
    ];
    const note =
      `lifecycle invariants checked over ${held.size} held keychains (${heldRefused} shreds refused with LEGAL_HOLD), ` +
      `${due.length} due schedules (${schedules.length - due.length} more under a hold), ` +
      `${allReceipts.length} receipts (${immediate.length} immediate, ${scheduledReceipts.length} scheduled), ` +
      `${audit?.entries ?? 0} audit entries` +
      (problems.length > 0 ? `; first problems: ${problems.join('; ')}` : '');
    return { figures, note };
  } finally {
    await store.close();
  }
}

/** The scheduleId claim of a receipt, read without verifying (verification is check 3). */
function receiptSchedule(jws: string): string | null {
  try {
    const payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as ReceiptPayload;
    return typeof payload.scheduleId === 'string' ? payload.scheduleId : null;
  } catch {
    return null;
  }
}

async function allAuditBodies(store: KeyStore): Promise<string[]> {
  const bodies: string[] = [];
  for (const chain of await store.listAuditChains()) {
    for (const row of await store.readAuditChain(chain)) bodies.push(row.body);
  }
  return bodies;
}

/** What a scenario registers for the lifecycle checks: its workloads' ledgers, its stores, its Padlocks. */
export class LifecycleRegistry {
  readonly ledgers: LifecycleLedger[] = [];
  /** Config files of the scenario's Padlock processes (the first one's store is checked). */
  readonly configFiles: string[] = [];
  readonly targets: Target[] = [];
}

/**
 * The lifecycle figures of one finished scenario (main.ts adds them to every
 * report row). A check that cannot run (the store does not answer) is a
 * missed invariant, with the reason.
 */
export async function lifecycleOutcome(ctx: {
  readonly lifecycle: LifecycleRegistry;
  log(message: string): void;
}): Promise<{ figures: Figure[]; note: string }> {
  const { ledgers, configFiles, targets } = ctx.lifecycle;
  const configFile = configFiles[0];
  if (configFile === undefined) return { figures: [], note: 'lifecycle invariants: no Padlock in this scenario' };
  try {
    // Tried a second time after a pause: the store may still be catching up with the fault's end.
    return await lifecycleFigures(ledgers, configFile, targets, (m) => ctx.log(m)).catch(async (error: unknown) => {
      ctx.log(`lifecycle check failed (${error instanceof Error ? error.message : String(error)}); once more in 10 s`);
      await sleep(10000);
      return lifecycleFigures(ledgers, configFile, targets, (m) => ctx.log(m));
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return {
      figures: [invariant('lifecycle invariants checked', 'checked', `could not check: ${why}`, false)],
      note: `lifecycle invariants: the check failed: ${why}`,
    };
  }
}
