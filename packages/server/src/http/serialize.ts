import type { DerivedKeychain } from '../keys.js';

/*
 * The one place key bytes become text: base64url in a response body. The
 * derived keys themselves stay in the keychain they were derived from (see
 * Keychain.derived) and are never wiped there: a request that still holds a
 * keychain evicted from the cache must not derive from zeroed bytes.
 */

export interface KeysJson {
  userId: string;
  status: string;
  maxAgeSeconds: number;
  categories: {
    category: string;
    status: string;
    current?: number;
    keys?: { version: number; key: string }[];
  }[];
}

export function keychainJson(derived: DerivedKeychain): KeysJson {
  return {
    userId: derived.userId,
    status: derived.status,
    maxAgeSeconds: derived.maxAgeSeconds,
    categories: derived.categories.map((c) =>
      c.status === 'ok'
        ? {
            category: c.category,
            status: c.status,
            current: c.keys[c.keys.length - 1]?.version ?? 0,
            keys: c.keys.map((k) => ({ version: k.version, key: k.key.expose().toString('base64url') })),
          }
        : { category: c.category, status: c.status },
    ),
  };
}
