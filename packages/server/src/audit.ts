import { PadlockError } from '@padlock/core';
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from './log.js';
import { Serially } from './serially.js';
import type { AuditRow, KeyStore } from './store/types.js';

/*
 * The audit log (DESIGN.md section 10): every lifecycle and admin event,
 * appended to a hash chain owned by one writer process. Entry n holds the hash
 * of entry n-1 and its own sequence number, so an entry edited, removed or
 * moved in the store breaks the chain where it happened; signed checkpoints of
 * the chain head (checkpoint.ts) catch a tail cut off or a chain rewritten
 * from some point on. Encoding and hash: docs/spec.md, "Audit entry".
 *
 * Entries carry ids, names, versions and times only: never key bytes,
 * credentials or verifiers. Lookups are not logged (see docs/deleting-a-user.md).
 */

/** What the entry is about; `actor` (a service id, or "operator:<login>") says who asked. */
export type AuditEvent =
  | { type: 'keychain.create'; userId: string; categories: string[] }
  | { type: 'category.rotate'; userId: string; category: string; version: number }
  | {
      type: 'keychain.shred' | 'category.shred';
      userId: string;
      categories: string[];
      /** Versions this call destroyed (0 when it repeated an earlier shred). */
      shredded: number;
      receiptId: string;
      scheduleId: string | null;
    }
  | { type: 'schedule.create'; userId: string; category: string | null; scheduleId: string; executeAt: number }
  | { type: 'schedule.cancel' | 'schedule.execute'; userId: string; category: string | null; scheduleId: string }
  | { type: 'hold.place'; userId: string; category: string | null; holdId: string; reason: string }
  | { type: 'hold.release'; userId: string; category: string | null; holdId: string }
  | {
      type: 'service.create' | 'service.grant' | 'service.revoke';
      serviceId: string;
      /** The permissions after the change. */
      read: string[];
      create: boolean;
      rotate: boolean;
      shred: boolean;
      hold?: boolean;
      /** Present (true) only for operators. */
      admin?: boolean;
    }
  | { type: 'credential.add' | 'credential.revoke'; serviceId: string; credentialId: string }
  | {
      type: 'kek.add' | 'kek.activate' | 'kek.rewrap' | 'kek.retire' | 'kek.rekey-journal';
      kid: string;
      /** kek.rewrap: rows re-wrapped; kek.rekey-journal: journal entries the re-key entry covers. */
      rows?: number;
    }
  | { type: 'receipt.rotate-key'; kid: string };

export type AuditEventType = AuditEvent['type'];

/** An entry as decoded from its body (docs/spec.md, "Audit entry"). */
export interface AuditEntry {
  readonly v: 1;
  readonly chain: string;
  readonly seq: number;
  /** Milliseconds since the epoch. */
  readonly at: number;
  /** Hex SHA-256 of the previous entry of this chain; 64 zeros for the first. */
  readonly prev: string;
  readonly actor: string;
  readonly event: AuditEvent;
}

export const AUDIT_HASH_LABEL = 'padlock/v1/audit';
export const GENESIS = '0'.repeat(64);

/** JSON with object keys sorted at every level and no whitespace: one byte string per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isSafeInteger(value))
      throw new TypeError('only safe integers are encoded');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** SHA-256 over the label, a zero byte and the body's UTF-8 bytes, as hex. */
export function entryHash(body: string): string {
  return createHash('sha256').update(AUDIT_HASH_LABEL).update(Buffer.of(0)).update(body, 'utf8').digest('hex');
}

export function encodeEntry(entry: AuditEntry): AuditRow {
  const body = canonicalJson(entry);
  return { chainId: entry.chain, seq: entry.seq, at: entry.at, body, hash: entryHash(body) };
}

/** A chain id: the writer's start time (base 36, so ids sort by it) and 8 random bytes. */
export function newChainId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(8).toString('hex')}`;
}

/** Signs a checkpoint of a chain head; returns the compact JWS. */
export interface CheckpointSigner {
  signCheckpoint(head: { chain: string; seq: number; hash: string; at: number }): Promise<string>;
}

export interface AuditLogOptions {
  /** A checkpoint of the chain head is written after an append when this long has passed since the last. */
  readonly checkpointEveryMs: number;
  readonly signer?: CheckpointSigner;
  readonly log?: Logger;
}

/**
 * The writer's side: one chain per process. Appends are serialized; an append
 * resolves once the entry is in the store. A failed append ends the chain (its
 * write may or may not have landed) and the next append starts a new one, so
 * no sequence number is ever written twice.
 */
export class AuditLog {
  #chain = newChainId();
  #seq = 0;
  #prev = GENESIS;
  readonly #serially = new Serially();
  #lastCheckpointAt = Date.now();
  #checkpointedSeq = 0;

  constructor(
    private readonly store: Pick<KeyStore, 'appendAudit' | 'putAuditCheckpoint'>,
    private readonly options: AuditLogOptions,
  ) {}

  /** This process's current chain id. */
  get chainId(): string {
    return this.#chain;
  }

  /**
   * Appends one event. Rejects with AUDIT_UNAVAILABLE when the store does not
   * take it: the caller must not acknowledge the change it describes.
   *
   * @example
   *   await audit.append('billing', { type: 'credential.revoke', serviceId: 'billing', credentialId });
   */
  append(actor: string, event: AuditEvent): Promise<AuditEntry> {
    return this.#serially.run(() => this.#append(actor, event));
  }

  async #append(actor: string, event: AuditEvent): Promise<AuditEntry> {
    const entry: AuditEntry = {
      v: 1,
      chain: this.#chain,
      seq: this.#seq + 1,
      at: Date.now(),
      prev: this.#prev,
      actor,
      event,
    };
    const row = encodeEntry(entry);
    let written: boolean;
    try {
      written = await this.store.appendAudit(row);
    } catch (error) {
      this.#restart();
      throw new PadlockError('AUDIT_UNAVAILABLE', undefined, { cause: error });
    }
    if (!written) {
      this.#restart();
      throw new PadlockError('AUDIT_UNAVAILABLE', 'the audit entry collided with an existing one');
    }
    this.#seq = entry.seq;
    this.#prev = row.hash;
    if (entry.at - this.#lastCheckpointAt >= this.options.checkpointEveryMs) await this.#checkpointNow();
    return entry;
  }

  /**
   * Writes a signed checkpoint of the chain head if anything was appended since
   * the last one: now, or with `onlyIfDue` once checkpointEveryMs has passed.
   */
  checkpoint(onlyIfDue = false): Promise<void> {
    return this.#serially.run(() =>
      onlyIfDue && Date.now() - this.#lastCheckpointAt < this.options.checkpointEveryMs
        ? undefined
        : this.#checkpointNow(),
    );
  }

  async #checkpointNow(): Promise<void> {
    const signer = this.options.signer;
    if (signer === undefined || this.#seq === this.#checkpointedSeq) return;
    const head = { chain: this.#chain, seq: this.#seq, hash: this.#prev, at: Date.now() };
    try {
      const jws = await signer.signCheckpoint(head);
      await this.store.putAuditCheckpoint({ chainId: head.chain, seq: head.seq, at: head.at, jws });
      this.#checkpointedSeq = head.seq;
      this.#lastCheckpointAt = head.at;
    } catch (error) {
      // The entries are written; a checkpoint missed now is made after the next append.
      this.options.log?.warn('audit checkpoint failed', { chain: head.chain, seq: head.seq, error: String(error) });
    }
  }

  #restart(): void {
    const ended = this.#chain;
    this.#chain = newChainId();
    this.#seq = 0;
    this.#prev = GENESIS;
    this.#checkpointedSeq = 0;
    this.options.log?.warn('audit chain ended by a failed append; a new chain starts', {
      ended,
      chain: this.#chain,
    });
  }
}
