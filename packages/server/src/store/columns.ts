import type { CredentialState } from './types.js';

/*
 * TLS identities are stored one per line: an identity holds no control
 * character (isTlsIdentity), and any text parses, so an edited cell reaches
 * the registry's checks instead of failing the whole read.
 */
export function joinIdentities(identities: readonly string[]): string {
  return identities.join('\n');
}

export function splitIdentities(text: string | null | undefined): string[] {
  return text === null || text === undefined || text === '' ? [] : text.split('\n');
}

/** Credential states are stored as JSON `[[id, revokedAt or null], ...]`. */
export function joinCredentialStates(states: readonly CredentialState[]): string {
  return JSON.stringify(states.map((s) => [s.credentialId, s.revokedAt]));
}

/**
 * Parses a stored list; anything malformed reads as one impossible entry,
 * which no MAC covers, so an edited cell fails the row's check instead of the
 * whole read.
 */
export function splitCredentialStates(text: string | null | undefined): CredentialState[] {
  if (text === null || text === undefined || text === '') return [];
  try {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new TypeError('not a list');
    return parsed.map((entry: unknown) => {
      if (!Array.isArray(entry) || entry.length !== 2) throw new TypeError('not a pair');
      const [credentialId, revokedAt] = entry as unknown[];
      if (typeof credentialId !== 'string') throw new TypeError('id not a string');
      if (revokedAt !== null && !(typeof revokedAt === 'number' && Number.isSafeInteger(revokedAt) && revokedAt >= 0)) {
        throw new TypeError('bad time');
      }
      return { credentialId, revokedAt };
    });
  } catch {
    return [{ credentialId: MALFORMED, revokedAt: null }];
  }
}

/** Not a credential id any writer makes (ids are hex), so a MAC over it never verifies. */
export const MALFORMED = '\u0000malformed';
