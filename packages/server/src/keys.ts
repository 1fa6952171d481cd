import { deriveKey, PadlockError, SecretBytes, wrapRootKey, type KekRing } from '@padlock/core';
import type { AuditLog } from './audit.js';
import { timed, type Keychain, type KeychainSource } from './keychain.js';
import { holdCovers, holdVerifies } from './lifecycle-rows.js';
import type { Logger } from './log.js';
import type { JournalEntry } from './journal/entry.js';
import type { JournalGate } from './journal/gate.js';
import type { Metrics } from './metrics.js';
import type { Service } from './services.js';
import { newReceiptId, type JsonWebKeySet, type ReceiptClaims, type ReceiptSigner } from './receipts.js';
import type { KeyRow, KeyStore, NewKeyRow, ReceiptRecord } from './store/types.js';

/*
 * The keychain lifecycle (DESIGN.md section 3) and the derived keys a service
 * receives. Writes go to the store, then invalidate this group's caches; the
 * fresh read that follows a write refills them.
 */

export type CategoryStatus = 'ok' | 'shredded' | 'not_found';

export interface DerivedCategory {
  readonly category: string;
  readonly status: CategoryStatus;
  /** Derived keys of every live version, oldest first; the last one is current. */
  readonly keys: readonly { readonly version: number; readonly key: SecretBytes }[];
}

export interface DerivedKeychain {
  readonly userId: string;
  readonly status: CategoryStatus;
  readonly categories: readonly DerivedCategory[];
  /** Seconds a caller may cache these keys: maxStaleness less the age of the rows. */
  readonly maxAgeSeconds: number;
}

/** Who asked for a shred, and under which schedule (none for an immediate one). */
export interface ShredOptions {
  readonly requestedBy: string;
  readonly scheduleId?: string;
}

/** What a completed shred returns: how many versions it destroyed, and its signed receipt. */
export interface ShredResult {
  readonly shredded: number;
  readonly receipt: { readonly receiptId: string; readonly jws: string; readonly claims: ReceiptClaims };
}

/** Where every completed change is proven: receipts for shreds, the audit log for everything. */
export interface Proofs {
  readonly receipts: ReceiptSigner;
  readonly audit: AuditLog;
}

export class KeyService {
  /**
   * Users whose keys are withheld during a grace period (a pending schedule
   * with serveDuringGrace false), by user: the categories withheld, or null
   * for the whole keychain. Kept by the Scheduler; empty in most deployments,
   * so a lookup pays one Map.size check.
   */
  withheld: ReadonlyMap<string, ReadonlySet<string> | null> = new Map();

  /**
   * Awaited after each store shred, before its receipt, audit entry and (for a schedule) its finish: a
   * scheduler in its own process tells its server here, which drops the keychain from its cache, so a
   * schedule seen executed is never one whose keys that server still serves. Its failure fails nothing.
   */
  onShredded: ((userId: string) => Promise<void>) | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly keychains: KeychainSource,
    private readonly keks: KekRing,
    readonly categories: readonly string[],
    private readonly maxStalenessMs: number,
    private readonly metrics: Metrics,
    private readonly proofs: Proofs,
    /** The shred journal and the gate that keeps keys from being served out of a store behind it. */
    private readonly journal?: JournalGate,
    private readonly log?: Logger,
  ) {}

  /** Creates a user's keychain (version 1 of every configured category) unless present; race-free. */
  async create(
    userId: string,
    requestedBy: string,
  ): Promise<{ created: boolean; keychain: Keychain; inserted: string[] }> {
    this.journal?.assertOpen();
    const now = Date.now();
    const rows: NewKeyRow[] = this.categories.map((category) => {
      const rootKey = SecretBytes.random(32);
      const wrapped = wrapRootKey(this.keks.active, { userId, category, version: 1 }, rootKey);
      rootKey.wipe();
      return { category, version: 1, wrapped, createdAt: now };
    });
    const inserted = await timed(this.metrics, 'insert', this.store.insertKeys(userId, rows));
    if (inserted.length > 0) {
      await this.keychains.invalidate(userId);
      await this.proofs.audit.append(requestedBy, {
        type: 'keychain.create',
        userId,
        categories: inserted.map((r) => r.category),
      });
    }
    const keychain = await this.keychains.get(userId, true);
    if (keychain === null)
      throw new PadlockError('STORE_UNAVAILABLE', 'the keychain was written but could not be read back');
    return { created: inserted.length > 0, keychain, inserted: inserted.map((r) => r.category) };
  }

  /** Adds a new version of one category; the old versions stay readable until shredded. */
  async rotate(userId: string, category: string, requestedBy: string): Promise<{ version: number }> {
    const rows = await timed(this.metrics, 'get_fresh', this.store.getKeychain(userId, { fresh: true }));
    if (rows.length === 0) throw new PadlockError('KEYCHAIN_NOT_FOUND');
    const latest = rows.filter((r) => r.category === category).reduce((max, r) => Math.max(max, r.version), 0);
    const version = latest + 1;
    const rootKey = SecretBytes.random(32);
    const wrapped = wrapRootKey(this.keks.active, { userId, category, version }, rootKey);
    rootKey.wipe();
    const inserted = await timed(
      this.metrics,
      'insert',
      this.store.insertKeys(userId, [{ category, version, wrapped, createdAt: Date.now() }]),
    );
    await this.keychains.invalidate(userId);
    if (inserted.length === 0) throw new PadlockError('CONCURRENT_UPDATE');
    await this.proofs.audit.append(requestedBy, { type: 'category.rotate', userId, category, version });
    return { version };
  }

  /**
   * THE shred path: every shred, immediate or scheduled, from a route, the CLI
   * or the scheduler, comes through here, so none can pass a legal hold.
   * Shreds one category, or the whole keychain. Once the keys are destroyed it
   * signs and stores a receipt and appends the audit entry; only then is the
   * shred acknowledged. If either fails the call rejects (the keys stay
   * destroyed): a repeated shred destroys nothing more and issues the receipt
   * and entry (idempotent, so a schedule taken over after a crash completes
   * without harm).
   *
   * A hold whose place call returned before this call began is always seen
   * (on Cassandra the hold's Paxos commit reached a quorum, and holds are read
   * at LOCAL_QUORUM). A hold row that fails its MAC blocks the shred too.
   */
  async shred(userId: string, category: string | undefined, options: ShredOptions): Promise<ShredResult> {
    // The keychain and its holds side by side: both must answer before anything is written, and a
    // shred's store round trips in sequence are what a node's failure costs it (DiRT cassandra-node-kill).
    const [rows] = await Promise.all([
      timed(this.metrics, 'get_fresh', this.store.getKeychain(userId, { fresh: true })),
      this.refuseIfHeld(userId, category),
    ]);
    if (rows.length === 0) throw new PadlockError('KEYCHAIN_NOT_FOUND');
    const at = Date.now();
    // Journal first: once the caller hears "shredded", the shred is on disk apart from the store, so no
    // restore can bring the key back. An entry whose store shred then fails is harmless: replay only shreds.
    const entry = await this.journal?.append({ userId, category: category ?? null, at });
    const shredded = await timed(this.metrics, 'shred', this.store.shred(userId, category, at, rows));
    // Moving the store's applied journal position is a compare-and-set on one row every shred shares:
    // it runs beside the receipt and audit writes, and its failure fails nothing (journal/gate.ts: a
    // lagging position is replayed at the next check). Awaited below, so a shred's caller sees it moved.
    const applied = entry === undefined ? undefined : this.#applied(entry);
    await this.keychains.invalidate(userId);
    await this.onShredded?.(userId).catch(() => undefined);
    const after = await timed(this.metrics, 'get_fresh', this.store.getKeychain(userId, { fresh: true }));
    const byCategory = new Map<string, { version: number; shreddedAt: number }[]>();
    for (const row of after) {
      if (category !== undefined && row.category !== category) continue;
      const versions = byCategory.get(row.category) ?? [];
      // A row a shred raced with (a rotate's new version) may still be live: the receipt names only shredded ones.
      if (row.wrapped === null) versions.push({ version: row.version, shreddedAt: row.shreddedAt ?? at });
      byCategory.set(row.category, versions);
    }
    const claims: ReceiptClaims = {
      iss: 'padlock',
      jti: newReceiptId(),
      sub: userId,
      iat: Math.floor(at / 1000),
      shreddedAt: at,
      scope: category === undefined ? 'keychain' : 'category',
      categories: [...byCategory].map(([name, versions]) => ({ category: name, versions })),
      requestedBy: options.requestedBy,
      scheduleId: options.scheduleId ?? null,
    };
    const jws = await this.proofs.receipts.sign(claims);
    // The receipt and the audit entry are independent writes: side by side, and both must land.
    await Promise.all([
      timed(this.metrics, 'receipt', this.store.putReceipt({ receiptId: claims.jti, userId, issuedAt: at, jws })),
      this.proofs.audit.append(options.requestedBy, {
        type: category === undefined ? 'keychain.shred' : 'category.shred',
        userId,
        categories: claims.categories.map((c) => c.category),
        shredded,
        receiptId: claims.jti,
        scheduleId: claims.scheduleId,
      }),
    ]);
    await applied;
    this.log?.info('shred', {
      userId,
      category: category ?? null,
      shredded,
      requestedBy: options.requestedBy,
      scheduleId: options.scheduleId ?? null,
    });
    return { shredded, receipt: { receiptId: claims.jti, jws, claims } };
  }

  /** The journal's applied position moved past `entry`; a failure is counted and logged, never thrown. */
  async #applied(entry: JournalEntry): Promise<void> {
    try {
      await timed(this.metrics, 'journal_applied', this.journal!.applied(entry));
    } catch (error) {
      this.log?.warn('shred journal position not moved; the next check replays it', {
        position: entry.position,
        error:
          error instanceof PadlockError ? (error.cause instanceof Error ? error.cause.message : error.code) : 'unknown',
      });
    }
  }

  /**
   * This process's audit log, for the paths that change more than keys
   * (schedules, holds): `app.keys.audit.append(actor, event)`.
   */
  get audit(): AuditLog {
    return this.proofs.audit;
  }

  /** A stored receipt by id, or undefined. */
  getReceipt(receiptId: string): Promise<ReceiptRecord | undefined> {
    return timed(this.metrics, 'receipt', this.store.getReceipt(receiptId));
  }

  /** A user's receipts, oldest first. */
  receiptsOf(userId: string): Promise<ReceiptRecord[]> {
    return timed(this.metrics, 'receipt', this.store.listReceipts(userId));
  }

  /** Every published receipt verification key (JWKS), retired ones included. */
  get receiptKeys(): JsonWebKeySet {
    return this.proofs.receipts.jwks;
  }

  /** True when a pending schedule withholds any of `categories` of this user during its grace period. */
  isWithheld(userId: string, categories: readonly string[]): boolean {
    if (this.withheld.size === 0) return false;
    const withheld = this.withheld.get(userId);
    if (withheld === undefined) return false;
    return withheld === null || categories.some((c) => withheld.has(c));
  }

  /** Throws LEGAL_HOLD when a hold in force covers a shred of `category` (undefined: the keychain). */
  async refuseIfHeld(userId: string, category: string | undefined): Promise<void> {
    const holds = await timed(this.metrics, 'list_holds', this.store.listHolds(userId));
    for (const hold of holds) {
      if (!holdCovers(hold.category, category)) continue;
      if (!holdVerifies(this.keks, hold)) {
        this.metrics.integrityFailures.inc({ row: 'hold', reason: 'bad-mac' });
        this.log?.error('a hold row failed its MAC; shreds it may cover are refused', { userId, holdId: hold.holdId });
        throw new PadlockError('ROW_INTEGRITY');
      }
      if (hold.releasedAt === null)
        throw new PadlockError('LEGAL_HOLD', `legal hold ${hold.holdId} forbids shredding this`);
    }
  }

  /** Every row's metadata, never key bytes. */
  async metadata(userId: string): Promise<KeyRow[]> {
    const rows = await timed(this.metrics, 'get_fresh', this.store.getKeychain(userId, { fresh: true }));
    if (rows.length === 0) throw new PadlockError('KEYCHAIN_NOT_FOUND');
    return rows;
  }

  get(userId: string): Promise<Keychain | null> {
    if (this.journal?.open === false) return Promise.reject(this.#closed());
    return this.keychains.get(userId);
  }

  /** True when keychains are kept in process (L1): what is rendered from one is worth keeping with it. */
  get cachesKeychains(): boolean {
    return this.keychains.peek !== undefined;
  }

  /** The keychain if the in-process cache holds it now (no waiting), else undefined: then use get(). */
  peek(userId: string): Keychain | undefined {
    if (this.journal?.open === false) return undefined;
    return this.keychains.peek?.(userId);
  }

  /** peek() for many users: index i holds users[i]'s keychain if the in-process cache holds it now. */
  peekMany(userIds: readonly string[]): (Keychain | undefined)[] {
    if (this.journal?.open === false) return userIds.map(() => undefined);
    return this.keychains.peekMany?.(userIds) ?? userIds.map(() => undefined);
  }

  getMany(userIds: readonly string[]): Promise<Map<string, Keychain | null>> {
    if (this.journal?.open === false) return Promise.reject(this.#closed());
    return this.keychains.getMany(userIds);
  }

  /** Drops one user's cached keychain (after a replayed shred). */
  invalidate(userId: string): Promise<void> {
    return this.keychains.invalidate(userId);
  }

  #closed(): Error {
    try {
      this.journal?.assertOpen();
    } catch (error) {
      return error as Error;
    }
    return new PadlockError('STORE_BEHIND_JOURNAL');
  }

  /** The service's derived keys for `categories` of one keychain. */
  derive(service: Service, userId: string, keychain: Keychain | null, categories: readonly string[]): DerivedKeychain {
    if (keychain === null) return { userId, status: 'not_found', categories: [], maxAgeSeconds: 0 };
    const result: DerivedCategory[] = [];
    let anyLive = false;
    let anyShredded = false;
    let derivedNow = 0;
    for (const category of categories) {
      const versions = keychain.versions(category);
      if (versions === undefined) {
        result.push({ category, status: 'not_found', keys: [] });
        continue;
      }
      if (versions.length === 0) {
        anyShredded = true;
        result.push({ category, status: 'shredded', keys: [] });
        continue;
      }
      anyLive = true;
      const keys = versions.map(({ version, rootKey }) => {
        derivedNow++;
        const key = deriveKey(rootKey, service.derivationKey, {
          serviceId: service.serviceId,
          userId,
          category,
          version,
        });
        rootKey.wipe();
        return { version, key };
      });
      result.push({ category, status: 'ok', keys });
    }
    if (derivedNow > 0) this.metrics.keysDerived.inc({}, derivedNow);
    const status: CategoryStatus = anyLive ? 'ok' : anyShredded ? 'shredded' : 'not_found';
    return { userId, status, categories: result, maxAgeSeconds: this.maxAgeSeconds(keychain) };
  }

  /** Digits of the largest maxAgeSeconds (maxStaleness): the width of its slot in a rendered answer. */
  get maxAgeWidth(): number {
    return String(Math.floor(this.maxStalenessMs / 1000)).length;
  }

  /** Seconds a caller may cache keys derived from this keychain: maxStaleness less the age of its rows. */
  maxAgeSeconds(keychain: Keychain, now = Date.now()): number {
    return Math.max(0, Math.floor((this.maxStalenessMs - (now - keychain.readAt)) / 1000));
  }
}
