/*
 * What the suite knows to be true, learnt from Padlock's own answers:
 * - the first key seen for (user, category, version), from the create that
 *   made it or the first read, is that key; any other key served later for
 *   the same (user, category, version) is a wrong key;
 * - a shred acknowledged at time T means no request sent after
 *   T + maxStaleness may receive that user's keys (DESIGN.md section 6).
 * Users are in one of these states, so that each answer can be judged.
 */

export interface UserState {
  /** The create was acknowledged (or the user was made before the load). */
  created: boolean;
  /** A create was sent but its answer never came: the keychain may or may not exist. */
  uncertain: boolean;
  shredSentAt?: number;
  shredAckAt?: number;
}

export interface ServedKey {
  readonly category: string;
  readonly version: number;
  readonly key: string;
}

export interface KeysJson {
  readonly userId?: unknown;
  readonly status?: unknown;
  readonly categories?: unknown;
}

export class KeyOracle {
  readonly #keys = new Map<string, string>();
  readonly users = new Map<string, UserState>();
  wrong = 0;
  readonly wrongExamples: string[] = [];
  /** Every derived key text seen (bounded), for the leak scan. */
  readonly seen: string[] = [];
  static readonly SEEN_LIMIT = 20000;

  /** Records or checks one served key; false when it differs from the key first seen. */
  check(userId: string, served: ServedKey): boolean {
    const id = `${userId}/${served.category}/${served.version}`;
    const known = this.#keys.get(id);
    if (known === undefined) {
      this.#keys.set(id, served.key);
      if (this.seen.length < KeyOracle.SEEN_LIMIT) this.seen.push(served.key);
      return true;
    }
    if (known === served.key) return true;
    this.wrong++;
    if (this.wrongExamples.length < 20) this.wrongExamples.push(`${id}: served a key different from the first seen`);
    return false;
  }

  /** The key first seen, if any. */
  known(userId: string, category: string, version: number): string | undefined {
    return this.#keys.get(`${userId}/${category}/${version}`);
  }

  /** Every known key of a user, as "category/version" -> key text. */
  keysOf(userId: string): Map<string, string> {
    const out = new Map<string, string>();
    const prefix = `${userId}/`;
    for (const [id, key] of this.#keys) if (id.startsWith(prefix)) out.set(id.slice(prefix.length), key);
    return out;
  }

  state(userId: string): UserState {
    let state = this.users.get(userId);
    if (state === undefined) {
      state = { created: false, uncertain: false };
      this.users.set(userId, state);
    }
    return state;
  }

  get knownKeys(): number {
    return this.#keys.size;
  }
}

/** The keys in one user's JSON result (GET /v1/keys, create, or one batch-get result). */
export function servedKeys(result: KeysJson): ServedKey[] {
  const out: ServedKey[] = [];
  if (!Array.isArray(result.categories)) return out;
  for (const c of result.categories as unknown[]) {
    const category = (c as { category?: unknown }).category;
    const keys = (c as { keys?: unknown }).keys;
    if (typeof category !== 'string' || !Array.isArray(keys)) continue;
    for (const k of keys as unknown[]) {
      const version = (k as { version?: unknown }).version;
      const key = (k as { key?: unknown }).key;
      if (typeof version === 'number' && typeof key === 'string') out.push({ category, version, key });
    }
  }
  return out;
}
