import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { api } from './api.js';

/*
 * Receipts are checked here, in the browser, against the published keys (/v1/receipts/keys):
 * the page does not take the server's word that a shred happened, it checks the signature.
 */

export interface VerifiedReceipt {
  readonly ok: boolean;
  /** The signed claims when the signature holds; the reason when it does not. */
  readonly claims?: Record<string, unknown>;
  readonly kid?: string;
  readonly problem?: string;
}

export async function verifyReceipt(jws: string, expectedUserId: string): Promise<VerifiedReceipt> {
  try {
    const jwks = await api<JSONWebKeySet>('GET', '/v1/receipts/keys');
    const { payload, protectedHeader } = await compactVerify(jws, createLocalJWKSet(jwks), { algorithms: ['EdDSA'] });
    if (protectedHeader.typ !== 'padlock-receipt+jwt') return { ok: false, problem: 'not a deletion receipt (typ)' };
    const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    const subject = claims['sub'];
    if (subject !== expectedUserId) {
      return { ok: false, problem: `the receipt names user ${String(subject)}, not ${expectedUserId}` };
    }
    return { ok: true, claims, ...(protectedHeader.kid === undefined ? {} : { kid: protectedHeader.kid }) };
  } catch (error) {
    return { ok: false, problem: error instanceof Error ? error.message : String(error) };
  }
}
