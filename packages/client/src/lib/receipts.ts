import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';

/*
 * Receipt verification for the SDK (docs/spec.md, "Deletion receipt"): the
 * same checks as the server's verifier, written against the spec, not shared
 * code, so a client never trusts the server's own reading of its receipts.
 */

export const RECEIPT_TYP = 'padlock-receipt+jwt';

/** What a verified receipt attests (docs/spec.md, "Deletion receipt"). */
export interface ReceiptClaims {
  readonly iss: 'padlock';
  readonly jti: string;
  readonly sub: string;
  readonly iat: number;
  readonly shreddedAt: number;
  readonly scope: 'keychain' | 'category';
  readonly categories: readonly {
    readonly category: string;
    readonly versions: readonly { readonly version: number; readonly shreddedAt: number }[];
  }[];
  readonly requestedBy: string;
  readonly scheduleId: string | null;
}

/** The kid a compact JWS names in its protected header, or undefined when it cannot be read. */
export function kidOf(jws: string): string | undefined {
  try {
    const header = JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')) as {
      kid?: unknown;
    };
    return typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    return undefined;
  }
}

/** Verifies a receipt against a JWKS; returns its claims or a reason it is refused. */
export async function checkReceipt(
  jws: string,
  jwks: JSONWebKeySet,
): Promise<{ ok: true; claims: ReceiptClaims } | { ok: false; reason: string }> {
  const parts = jws.split('.');
  // base64url's last character has unused bits decoders ignore: a changed one must not verify.
  if (parts.length !== 3 || parts.some((p) => Buffer.from(p, 'base64url').toString('base64url') !== p)) {
    return { ok: false, reason: 'not a compact JWS in canonical base64url' };
  }
  let verified;
  try {
    verified = await compactVerify(jws, createLocalJWKSet(jwks), { algorithms: ['EdDSA'] });
  } catch {
    return { ok: false, reason: 'the signature does not verify with the published keys' };
  }
  if (verified.protectedHeader.typ !== RECEIPT_TYP) return { ok: false, reason: `typ is not ${RECEIPT_TYP}` };
  let claims: Partial<ReceiptClaims>;
  try {
    claims = JSON.parse(Buffer.from(verified.payload).toString('utf8')) as Partial<ReceiptClaims>;
  } catch {
    return { ok: false, reason: 'the payload is not JSON' };
  }
  if (
    claims.iss !== 'padlock' ||
    typeof claims.jti !== 'string' ||
    typeof claims.sub !== 'string' ||
    typeof claims.shreddedAt !== 'number' ||
    !Array.isArray(claims.categories) ||
    typeof claims.requestedBy !== 'string'
  ) {
    return { ok: false, reason: 'the claims are not a Padlock receipt' };
  }
  return { ok: true, claims: claims as ReceiptClaims };
}
