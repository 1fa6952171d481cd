import { isCategory, isUserId, SecretBytes } from '@padlock/core';
import { openEnvelope, readEnvelopeHeader, sealEnvelope } from './envelope.js';
import {
  DecryptionFailed,
  InvalidInput,
  KeychainNotFound,
  KeychainPendingDeletion,
  KeychainShredded,
  LegalHold,
  PermissionDenied,
  ReceiptInvalid,
  Unavailable,
} from './errors.js';
import { checkReceipt, kidOf, type ReceiptClaims } from './lib/receipts.js';
import type { JSONWebKeySet } from 'jose';
import { Endpoints, type EndpointRequest, type Refusal } from './lib/endpoints.js';
import { HttpClient } from './lib/http.js';
import { KeyLookups } from './lib/lookups.js';
import { Counters, type ClientStats } from './lib/stats.js';
import { BadResponse, parseBatch, parseUserKeys, type KeyStatus, type UserKeys } from './lib/user-keys.js';
import { resolveOptions, type PadlockClientOptions, type ResolvedOptions } from './options.js';

/** A scheduled shred, as Padlock shows it (times ISO 8601). */
export interface ScheduledShred {
  readonly scheduleId: string;
  readonly userId: string;
  /** null: the whole keychain. */
  readonly category: string | null;
  readonly state: 'pending' | 'executing' | 'executed' | 'cancelled';
  readonly executeAt: string;
  readonly serveDuringGrace: boolean;
  readonly requestedBy: string;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  readonly finishedBy: string | null;
  /** false when the stored row failed its integrity check (shown, never acted on). */
  readonly verified: boolean;
}

/** A legal hold, as Padlock shows it. */
export interface LegalHoldRecord {
  readonly holdId: string;
  readonly userId: string;
  readonly category: string | null;
  readonly reason: string;
  readonly placedBy: string;
  readonly placedAt: string;
  readonly releasedAt: string | null;
  readonly releasedBy: string | null;
  readonly state: 'in_force' | 'released';
  readonly verified: boolean;
}

/** A keychain's scheduled shreds and holds (from its metadata). */
export interface LifecycleStatus {
  readonly userId: string;
  readonly schedules: readonly ScheduledShred[];
  readonly holds: readonly LegalHoldRecord[];
}

const SCHEDULE_ID = /^sched-[0-9a-f-]{36}$/;
const HOLD_ID = /^hold-[0-9a-f-]{36}$/;

function lifecycleRecord<T>(json: unknown, idField: string, pattern: RegExp): T {
  const id = (json as Record<string, unknown> | null)?.[idField];
  if (typeof id !== 'string' || !pattern.test(id)) throw new BadResponse(`${idField} is missing`);
  return json as T;
}

/** One category of a user's keys, as getKeys returns it. */
export interface CategoryKeysView {
  readonly category: string;
  readonly status: KeyStatus;
  /** The version new data is encrypted with; undefined when the category has no live key. */
  readonly current: number | undefined;
  /** Copies the caller owns (and may wipe), oldest version first. */
  readonly keys: readonly { readonly version: number; readonly key: SecretBytes }[];
}

export interface UserKeysView {
  readonly userId: string;
  readonly categories: readonly CategoryKeysView[];
}

/** A shred's answer: how many key versions it destroyed, and its signed receipt. */
export interface ShredOutcome {
  readonly shredded: number;
  /** The receipt's id and compact JWS; keep the JWS as the proof (verifyReceipt checks it). */
  readonly receipt: { readonly id: string; readonly jws: string };
}

const USER_ID_MESSAGE =
  'userId must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit';
const CATEGORY_MESSAGE =
  'category must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter';

function checkUserId(userId: unknown): string {
  if (!isUserId(userId)) throw new InvalidInput(USER_ID_MESSAGE);
  return userId;
}

function toBytes(plaintext: unknown): Uint8Array {
  if (typeof plaintext === 'string') return Buffer.from(plaintext, 'utf8');
  if (plaintext instanceof Uint8Array) return plaintext;
  throw new InvalidInput('plaintext must be a string, a Buffer or a Uint8Array');
}

/** Maps a refusal (a 4xx with Padlock's error body) to the SDK's errors. */
function refusalError(refusal: Refusal): Error {
  switch (refusal.code) {
    case 'KEYCHAIN_NOT_FOUND':
      return new KeychainNotFound();
    case 'KEYCHAIN_SHREDDED':
      return new KeychainShredded();
    case 'KEYCHAIN_PENDING_DELETION':
      return new KeychainPendingDeletion();
    case 'LEGAL_HOLD':
      return new LegalHold(`Padlock refused: ${refusal.message}`);
    case 'UNAUTHENTICATED':
      return new PermissionDenied('Padlock refused the credential', refusal.code);
    case 'PERMISSION_DENIED':
      return new PermissionDenied(`Padlock refused: ${refusal.message}`, refusal.code);
    default:
      return new InvalidInput(`Padlock refused the request (${refusal.code}): ${refusal.message}`);
  }
}

/**
 * The Padlock client: encrypts and decrypts a user's data with that user's
 * derived keys, which it fetches, batches, caches (within the server's
 * deletion bound) and never hands out unless asked.
 *
 * @example
 *   const padlock = new PadlockClient({
 *     groups: [
 *       { name: 'padlock', urls: ['http://padlock-1:8700', 'http://padlock-2:8700'] },
 *       { name: 'padlock-mirror', urls: ['http://padlock-mirror:8700'] },
 *     ],
 *     credential: process.env.PADLOCK_CREDENTIAL!,
 *   });
 *   const sealed = await padlock.encrypt('alice', 'profile', JSON.stringify({ email: 'a@example.com' }));
 *   const text = await padlock.decryptText('alice', sealed);
 */
export class PadlockClient {
  readonly #options: ResolvedOptions;
  readonly #counters = new Counters();
  readonly #http: HttpClient;
  readonly #endpoints: Endpoints;
  readonly #lookups: KeyLookups;
  #closed = false;
  /** Receipt verification keys, as last fetched. */
  #jwks: JSONWebKeySet | undefined;

  constructor(options: PadlockClientOptions) {
    this.#options = resolveOptions(options);
    this.#http = new HttpClient(this.#options.maxSockets, this.#options.tls);
    this.#endpoints = new Endpoints(this.#options, this.#http, this.#counters);
    this.#lookups = new KeyLookups((userIds) => this.#fetchBatch(userIds), this.#options, this.#counters);
  }

  /**
   * Encrypts `plaintext` (a string as UTF-8, or bytes) for the user under the
   * current key of `category`. Returns the envelope to store.
   *
   * @throws KeychainNotFound, KeychainShredded (the user opted out or is
   *   deleted: do not store the data), PermissionDenied, Unavailable, InvalidInput
   * @example
   *   const sealed = await padlock.encrypt('alice', 'payments', cardNumber);
   */
  async encrypt(userId: string, category: string, plaintext: string | Uint8Array): Promise<Buffer> {
    checkUserId(userId);
    this.#checkCategory(category);
    const bytes = toBytes(plaintext);
    const keys = await this.#keysOf(userId);
    const entry = keys.categories.get(category);
    if (entry === undefined) {
      throw new PermissionDenied(`the service may not read category "${category}", or Padlock does not have it`);
    }
    if (entry.status === 'shredded') throw new KeychainShredded(category);
    const key = entry.versions.get(entry.current);
    if (entry.status === 'not_found' || key === undefined) throw new KeychainNotFound(category);
    return sealEnvelope(key, userId, { category, version: entry.current }, bytes);
  }

  /**
   * Decrypts an envelope made by encrypt for this user, under whichever key
   * version it names.
   *
   * @throws DecryptionFailed (tampered, truncated, another user's or
   *   service's, unknown key version: one error for all), KeychainShredded
   *   (treat the data as deleted), KeychainNotFound, PermissionDenied, Unavailable, InvalidInput
   * @example
   *   const plaintext = await padlock.decrypt('alice', sealed);
   */
  async decrypt(userId: string, ciphertext: Uint8Array): Promise<Buffer> {
    checkUserId(userId);
    if (!(ciphertext instanceof Uint8Array)) throw new InvalidInput('ciphertext must be a Buffer or a Uint8Array');
    // A malformed envelope fails before any lookup: the header is public, so this tells nothing new.
    const header = readEnvelopeHeader(ciphertext);
    if (header === undefined) throw new DecryptionFailed();
    const keys = await this.#keysOf(userId);
    const entry = keys.categories.get(header.category);
    if (entry?.status === 'shredded') throw new KeychainShredded(header.category);
    return openEnvelope(userId, ciphertext, (category, version) =>
      category === header.category ? entry?.versions.get(version) : undefined,
    );
  }

  /** decrypt, then UTF-8 decoding. */
  async decryptText(userId: string, ciphertext: Uint8Array): Promise<string> {
    const plaintext = await this.decrypt(userId, ciphertext);
    try {
      return plaintext.toString('utf8');
    } finally {
      plaintext.fill(0);
    }
  }

  /**
   * The user's derived keys, for code that must encrypt itself (another
   * format, a stream). Copies: wipe them when done. Prefer encrypt/decrypt.
   *
   * @example
   *   const { categories } = await padlock.getKeys('alice');
   */
  async getKeys(userId: string): Promise<UserKeysView> {
    checkUserId(userId);
    const keys = await this.#keysOf(userId);
    return {
      userId,
      categories: [...keys.categories].map(([category, entry]) => ({
        category,
        status: entry.status,
        current: entry.status === 'ok' ? entry.current : undefined,
        keys: [...entry.versions]
          .sort(([a], [b]) => a - b)
          .map(([version, key]) => ({ version, key: SecretBytes.copyOf(key.expose()) })),
      })),
    };
  }

  /**
   * Creates the user's keychain at signup (idempotent; needs the create
   * right) and caches the keys it answers with.
   *
   * @example
   *   const { created } = await padlock.createKeychain('alice');
   */
  async createKeychain(userId: string): Promise<{ created: boolean }> {
    checkUserId(userId);
    const sentAt = Date.now();
    const body = Buffer.from(JSON.stringify({ userId }));
    const keys = await this.#call({ method: 'POST', path: '/v1/keychains', body, hedge: false }, (_status, json) => {
      const created = (json as { created?: unknown }).created;
      if (typeof created !== 'boolean') throw new BadResponse('created is not a boolean');
      return { created, keys: parseUserKeys(json, userId, this.#options.categories) };
    });
    if (!this.#closed) this.#lookups.prime(keys.keys, sentAt);
    return { created: keys.created };
  }

  /**
   * Shreds every category of the user (account deletion; needs the shred
   * right). This client forgets the keys at once; every other client and
   * Padlock node within maxStalenessSeconds.
   */
  async shredKeychain(userId: string): Promise<ShredOutcome> {
    checkUserId(userId);
    return this.#shred(userId, `/v1/keychains/${encodeURIComponent(userId)}`);
  }

  /** Shreds one category of the user (an opt-out); the others stay readable. */
  async shredCategory(userId: string, category: string): Promise<ShredOutcome> {
    checkUserId(userId);
    if (!isCategory(category)) throw new InvalidInput(CATEGORY_MESSAGE);
    return this.#shred(userId, `/v1/keychains/${encodeURIComponent(userId)}/categories/${category}`);
  }

  /**
   * Verifies a deletion receipt with the keys Padlock publishes
   * (GET /v1/receipts/keys, fetched once and again when a receipt names a kid
   * not yet seen, e.g. after a rotation) and returns what it attests.
   * Throws ReceiptInvalid when it does not verify.
   *
   * @example
   *   const { receipt } = await padlock.shredKeychain('alice');
   *   const claims = await padlock.verifyReceipt(receipt.jws); // claims.sub === 'alice'
   */
  async verifyReceipt(jws: string): Promise<ReceiptClaims> {
    if (typeof jws !== 'string' || jws.length > 65536) throw new InvalidInput('jws must be a string of at most 64 KiB');
    const kid = kidOf(jws);
    let jwks = this.#jwks;
    if (jwks === undefined || (kid !== undefined && !jwks.keys.some((k) => k.kid === kid))) {
      jwks = await this.#call({ method: 'GET', path: '/v1/receipts/keys', hedge: true }, (_status, json) => {
        const keys = (json as { keys?: unknown }).keys;
        if (!Array.isArray(keys)) throw new BadResponse('the JWKS has no keys array');
        return json as JSONWebKeySet;
      });
      this.#jwks = jwks;
    }
    const result = await checkReceipt(jws.trim(), jwks);
    if (!result.ok) throw new ReceiptInvalid(result.reason);
    return result.claims;
  }

  /**
   * Schedules the shred of the user's keychain (or one category) after a grace
   * period; needs the shred right. Give `graceSeconds` or `executeAt`. With
   * `serveDuringGrace: false` the keys are withheld meanwhile (lookups fail
   * with KeychainPendingDeletion).
   *
   * @example
   *   const s = await padlock.scheduleShred('alice', { graceSeconds: 30 * 86400, serveDuringGrace: true });
   *   await padlock.cancelScheduledShred('alice', s.scheduleId); // the user changed their mind
   */
  async scheduleShred(
    userId: string,
    request: {
      readonly category?: string;
      readonly graceSeconds?: number;
      readonly executeAt?: Date;
      readonly serveDuringGrace: boolean;
    },
  ): Promise<ScheduledShred> {
    checkUserId(userId);
    if (request.category !== undefined && !isCategory(request.category)) throw new InvalidInput(CATEGORY_MESSAGE);
    if ((request.graceSeconds === undefined) === (request.executeAt === undefined))
      throw new InvalidInput('give exactly one of graceSeconds and executeAt');
    if (request.graceSeconds !== undefined && (!Number.isInteger(request.graceSeconds) || request.graceSeconds < 0))
      throw new InvalidInput('graceSeconds must be a whole number of seconds >= 0');
    if (request.executeAt !== undefined && Number.isNaN(request.executeAt.getTime()))
      throw new InvalidInput('executeAt is not a valid Date');
    const body = Buffer.from(
      JSON.stringify({
        serveDuringGrace: request.serveDuringGrace,
        ...(request.category === undefined ? {} : { category: request.category }),
        ...(request.graceSeconds === undefined ? {} : { graceSeconds: request.graceSeconds }),
        ...(request.executeAt === undefined ? {} : { executeAt: request.executeAt.toISOString() }),
      }),
    );
    const path = `/v1/keychains/${encodeURIComponent(userId)}/schedules`;
    return this.#call({ method: 'POST', path, body, hedge: false }, (_status, json) =>
      lifecycleRecord<ScheduledShred>(json, 'scheduleId', SCHEDULE_ID),
    );
  }

  /** Cancels a scheduled shred no node has started; refused (SCHEDULE_NOT_PENDING) once one has. */
  async cancelScheduledShred(userId: string, scheduleId: string): Promise<ScheduledShred> {
    checkUserId(userId);
    if (!SCHEDULE_ID.test(scheduleId)) throw new InvalidInput('scheduleId must look like sched-<uuid>');
    const path = `/v1/keychains/${encodeURIComponent(userId)}/schedules/${scheduleId}`;
    return this.#call({ method: 'DELETE', path, hedge: false }, (_status, json) =>
      lifecycleRecord<ScheduledShred>(json, 'scheduleId', SCHEDULE_ID),
    );
  }

  /** One scheduled shred's state: pending, executing, executed or cancelled. */
  async getScheduledShred(userId: string, scheduleId: string): Promise<ScheduledShred> {
    checkUserId(userId);
    if (!SCHEDULE_ID.test(scheduleId)) throw new InvalidInput('scheduleId must look like sched-<uuid>');
    const path = `/v1/keychains/${encodeURIComponent(userId)}/schedules/${scheduleId}`;
    return this.#call({ method: 'GET', path, hedge: true }, (_status, json) =>
      lifecycleRecord<ScheduledShred>(json, 'scheduleId', SCHEDULE_ID),
    );
  }

  /**
   * Places a legal hold on the user's keychain (or one category): no shred of
   * it runs until it is released. Needs the hold right.
   *
   * @example
   *   const hold = await padlock.placeHold('alice', { reason: 'case 2026-114' });
   *   await padlock.releaseHold('alice', hold.holdId);
   */
  async placeHold(
    userId: string,
    request: { readonly reason: string; readonly category?: string },
  ): Promise<LegalHoldRecord> {
    checkUserId(userId);
    if (request.category !== undefined && !isCategory(request.category)) throw new InvalidInput(CATEGORY_MESSAGE);
    if (typeof request.reason !== 'string' || request.reason.length === 0 || request.reason.length > 1000)
      throw new InvalidInput('reason must be 1-1000 characters');
    const body = Buffer.from(JSON.stringify(request));
    const path = `/v1/keychains/${encodeURIComponent(userId)}/holds`;
    return this.#call({ method: 'POST', path, body, hedge: false }, (_status, json) =>
      lifecycleRecord<LegalHoldRecord>(json, 'holdId', HOLD_ID),
    );
  }

  /** Releases a legal hold; schedules that fell due under it then run. Needs the hold right. */
  async releaseHold(userId: string, holdId: string): Promise<LegalHoldRecord> {
    checkUserId(userId);
    if (!HOLD_ID.test(holdId)) throw new InvalidInput('holdId must look like hold-<uuid>');
    const path = `/v1/keychains/${encodeURIComponent(userId)}/holds/${holdId}`;
    return this.#call({ method: 'DELETE', path, hedge: false }, (_status, json) =>
      lifecycleRecord<LegalHoldRecord>(json, 'holdId', HOLD_ID),
    );
  }

  /** The user's scheduled shreds and legal holds, from the keychain's metadata. */
  async lifecycleStatus(userId: string): Promise<LifecycleStatus> {
    checkUserId(userId);
    return this.#call(
      { method: 'GET', path: `/v1/keychains/${encodeURIComponent(userId)}`, hedge: true },
      (_s, json) => {
        const body = json as { schedules?: unknown; holds?: unknown };
        if (!Array.isArray(body.schedules) || !Array.isArray(body.holds))
          throw new BadResponse('schedules or holds is not an array');
        return {
          userId,
          schedules: body.schedules.map((s) => lifecycleRecord<ScheduledShred>(s, 'scheduleId', SCHEDULE_ID)),
          holds: body.holds.map((h) => lifecycleRecord<LegalHoldRecord>(h, 'holdId', HOLD_ID)),
        };
      },
    );
  }

  /** Drops this client's cached keys of the user; the next operation asks Padlock again. */
  forget(userId: string): void {
    this.#lookups.invalidate(userId);
  }

  /** Counters since creation, and the cache's size. */
  stats(): ClientStats {
    return {
      ...this.#counters.snapshot(),
      cacheEntries: this.#lookups.cacheEntries,
      cacheBytes: this.#lookups.cacheBytes,
    };
  }

  /** Cancels requests in flight (their operations fail with Unavailable), wipes cached keys, closes sockets. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#endpoints.close();
      this.#lookups.close();
      this.#http.close();
    }
    return Promise.resolve();
  }

  #checkCategory(category: unknown): void {
    if (!isCategory(category)) throw new InvalidInput(CATEGORY_MESSAGE);
    const only = this.#options.categories;
    if (only !== undefined && !only.includes(category)) {
      throw new InvalidInput(`category "${category}" is not among options.categories`);
    }
  }

  async #keysOf(userId: string): Promise<UserKeys> {
    if (this.#closed) throw new Unavailable('the client is closed');
    const found = this.#lookups.get(userId);
    const keys = found instanceof Promise ? await found : found;
    // close() wipes cached keys: never use them after it, even if this lookup began before.
    if (this.#closed) throw new Unavailable('the client is closed');
    if (keys.status === 'not_found') throw new KeychainNotFound();
    if (keys.status === 'shredded') throw new KeychainShredded();
    if (keys.status === 'pending_deletion') throw new KeychainPendingDeletion();
    return keys;
  }

  async #shred(userId: string, path: string): Promise<ShredOutcome> {
    const result = await this.#call({ method: 'DELETE', path, hedge: false }, (_status, json) => {
      const { shredded, receipt } = json as { shredded?: unknown; receipt?: { id?: unknown; jws?: unknown } };
      if (typeof shredded !== 'number') throw new BadResponse('shredded is not a number');
      if (typeof receipt?.id !== 'string' || typeof receipt.jws !== 'string') {
        throw new BadResponse('the shred answer has no receipt');
      }
      return { shredded, receipt: { id: receipt.id, jws: receipt.jws } };
    });
    this.#lookups.invalidate(userId);
    return result;
  }

  async #fetchBatch(userIds: string[]): Promise<UserKeys[]> {
    const categories = this.#options.categories;
    const body = Buffer.from(JSON.stringify(categories === undefined ? { userIds } : { userIds, categories }));
    if (this.#closed) throw new Unavailable('the client is closed');
    const outcome = await this.#endpoints.call(
      { method: 'POST', path: '/v1/keys/batch-get', body, hedge: true },
      (_status, json) => parseBatch(json, userIds),
    );
    if (outcome.ok) return outcome.value;
    const { code } = outcome.refusal;
    if ((code === 'BATCH_TOO_LARGE' || code === 'BODY_TOO_LARGE') && userIds.length > 1) {
      // The server's limits are below this client's batch options: halve, and remember for later batches.
      const half = Math.ceil(userIds.length / 2);
      this.#lookups.lowerLimits(
        code === 'BATCH_TOO_LARGE' ? { maxUsers: half } : { maxBodyBytes: Math.floor(body.length / 2) },
      );
      const [first, second] = await Promise.all([
        this.#fetchBatch(userIds.slice(0, half)),
        this.#fetchBatch(userIds.slice(half)),
      ]);
      return [...first, ...second];
    }
    throw refusalError(outcome.refusal);
  }

  async #call<T>(request: EndpointRequest, parse: (status: number, body: unknown) => T): Promise<T> {
    if (this.#closed) throw new Unavailable('the client is closed');
    const outcome = await this.#endpoints.call(request, parse);
    if (!outcome.ok) throw refusalError(outcome.refusal);
    return outcome.value;
  }
}
