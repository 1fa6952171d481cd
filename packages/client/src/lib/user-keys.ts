import { isCategory, isVersion, SecretBytes } from '@padlock/core';

/*
 * A user's derived keys as Padlock serves them (GET /v1/keys, batch-get,
 * create): parsed strictly, since a malformed answer must count as that
 * endpoint failing, never as "no key". Key text is decoded here, once, into
 * SecretBytes.
 */

/** pending_deletion: a user whose keys are withheld during a scheduled shred's grace period (batch answers only). */
export type KeyStatus = 'ok' | 'shredded' | 'not_found' | 'pending_deletion';

export interface CategoryKeys {
  readonly status: KeyStatus;
  /** The newest version: new data is encrypted with it. 0 when the category has no live key. */
  readonly current: number;
  readonly versions: ReadonlyMap<number, SecretBytes>;
}

export interface UserKeys {
  readonly userId: string;
  readonly status: KeyStatus;
  readonly categories: ReadonlyMap<string, CategoryKeys>;
  /** How long these keys may be cached, per the server (maxStaleness less the data's age). */
  readonly maxAgeSeconds: number;
  /** Estimated heap bytes held, for the cache's byte bound. */
  readonly bytes: number;
}

export class BadResponse extends Error {
  constructor(what: string) {
    super(`malformed response: ${what}`);
    this.name = 'BadResponse';
  }
}

const STATUSES: ReadonlySet<string> = new Set(['ok', 'shredded', 'not_found', 'pending_deletion']);
const KEY_TEXT = /^[A-Za-z0-9_-]{43}$/;
// Rough heap costs: a Map entry, a SecretBytes with its 32-byte Buffer, strings at 2 bytes a character.
const ENTRY_BYTES = 200;
const CATEGORY_BYTES = 150;
const KEY_BYTES = 150;

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BadResponse(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function status(value: unknown, what: string): KeyStatus {
  if (typeof value !== 'string' || !STATUSES.has(value)) throw new BadResponse(`${what}.status is unknown`);
  return value as KeyStatus;
}

/**
 * Parses one user's keys. `only`, when given, keeps just those categories (a
 * create answers with every readable category).
 */
export function parseUserKeys(value: unknown, userId: string, only?: readonly string[]): UserKeys {
  const body = record(value, 'result');
  if (body['userId'] !== userId) throw new BadResponse('result for another user');
  const userStatus = status(body['status'], 'result');
  if (userStatus !== 'ok') {
    return { userId, status: userStatus, categories: new Map(), maxAgeSeconds: 0, bytes: ENTRY_BYTES };
  }
  const maxAgeSeconds = body['maxAgeSeconds'];
  if (typeof maxAgeSeconds !== 'number' || !Number.isInteger(maxAgeSeconds) || maxAgeSeconds < 0) {
    throw new BadResponse('maxAgeSeconds is not a non-negative integer');
  }
  const list = body['categories'];
  if (!Array.isArray(list)) throw new BadResponse('categories is not an array');
  const categories = new Map<string, CategoryKeys>();
  let bytes = ENTRY_BYTES + 2 * userId.length;
  for (const item of list) {
    const entry = record(item, 'category');
    const name = entry['category'];
    if (!isCategory(name) || categories.has(name)) throw new BadResponse('category name');
    if (only !== undefined && !only.includes(name)) continue;
    const categoryStatus = status(entry['status'], 'category');
    const versions = new Map<number, SecretBytes>();
    let current = 0;
    if (categoryStatus === 'ok') {
      const keys = entry['keys'];
      current = entry['current'] as number;
      if (!Array.isArray(keys) || keys.length === 0 || !isVersion(current)) throw new BadResponse('category keys');
      for (const k of keys) {
        const key = record(k, 'key');
        const version = key['version'];
        const text = key['key'];
        if (!isVersion(version) || versions.has(version) || typeof text !== 'string' || !KEY_TEXT.test(text)) {
          throw new BadResponse('key entry');
        }
        versions.set(version, SecretBytes.adopt(Buffer.from(text, 'base64url')));
      }
      if (!versions.has(current)) throw new BadResponse('current version has no key');
    }
    bytes += CATEGORY_BYTES + 2 * name.length + versions.size * KEY_BYTES;
    categories.set(name, { status: categoryStatus, current, versions });
  }
  return { userId, status: userStatus, categories, maxAgeSeconds, bytes };
}

/** Parses a batch-get answer: one result per requested user id, in order. */
export function parseBatch(value: unknown, userIds: readonly string[]): UserKeys[] {
  const results = record(value, 'body')['results'];
  if (!Array.isArray(results) || results.length !== userIds.length) {
    throw new BadResponse('results do not match the user ids sent');
  }
  return results.map((result, i) => parseUserKeys(result, userIds[i]!));
}

/** Overwrites the key bytes; used when the client closes. */
export function wipeUserKeys(keys: UserKeys): void {
  for (const category of keys.categories.values()) for (const key of category.versions.values()) key.wipe();
}
