import { frame } from './encoding.js';
import { hkdfSha256 } from './hkdf.js';
import { SecretBytes } from './secret-bytes.js';

/** What a derived key is bound to: one service, one user, one category, one version. */
export interface DerivationContext {
  readonly serviceId: string;
  readonly userId: string;
  readonly category: string;
  readonly version: number;
}

export const DERIVE_LABEL = 'padlock/v1/derive';

/** The HKDF info of a derived key (docs/spec.md, "Derived key"). */
export function derivationInfo(context: DerivationContext): Buffer {
  return frame(DERIVE_LABEL, [context.serviceId, context.category, context.version, context.userId]);
}

/**
 * The key a service receives: HKDF-SHA256(IKM = root key, salt = the service's
 * derivation key, info = derivationInfo(context), L = 32). Services get
 * unrelated keys for the same user, and a derived key reveals nothing about the
 * root key or other services' keys.
 *
 * @example
 *   const key = deriveKey(rootKey, serviceKey, { serviceId: 'playlist', userId: 'u1', category: 'profile', version: 1 });
 */
export function deriveKey(rootKey: SecretBytes, serviceKey: SecretBytes, context: DerivationContext): SecretBytes {
  return SecretBytes.adopt(hkdfSha256(rootKey.expose(), serviceKey.expose(), derivationInfo(context), 32));
}
