import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { frame } from './encoding.js';
import { UnwrapError } from './errors.js';
import { hkdfExpandSha256, hkdfExtractSha256 } from './hkdf.js';
import { SecretBytes } from './secret-bytes.js';

/** A key-encryption key and its id. */
export interface Kek {
  readonly kid: string;
  readonly key: SecretBytes;
}

/** The KEKs a server holds: one active for wrapping, all of them for unwrapping. */
export interface KekRing {
  readonly active: Kek;
  find(kid: string): Kek | undefined;
}

/** The row a root key belongs to; the wrap is bound to it. */
export interface RootKeyRef {
  readonly userId: string;
  readonly category: string;
  readonly version: number;
}

export const KID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const WRAP_FORMAT = 1;
export const WRAP_ROOT_LABEL = 'padlock/v1/wrap';
export const WRAP_SERVICE_LABEL = 'padlock/v1/wrap-service';
export const WRAP_SIGNING_LABEL = 'padlock/v1/wrap-signing';
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const KEY_LENGTH = 32;

/** HKDF info binding a wrapped root key to its row (docs/spec.md, "Wrapped key"). */
export function rootWrapInfo(ref: RootKeyRef): Buffer {
  return frame(WRAP_ROOT_LABEL, [ref.userId, ref.category, ref.version]);
}

/** HKDF info binding a wrapped service derivation key to its service. */
export function serviceWrapInfo(serviceId: string): Buffer {
  return frame(WRAP_SERVICE_LABEL, [serviceId]);
}

/** HKDF info binding a wrapped receipt signing key (Ed25519 seed) to its generation. */
export function signingKeyWrapInfo(generation: number): Buffer {
  return frame(WRAP_SIGNING_LABEL, [generation]);
}

/**
 * Wraps 32 key bytes under a per-row key: HKDF-SHA256(IKM = KEK, salt = "",
 * info), then AES-256-GCM with a random 12-byte nonce and AAD = kid. The
 * per-row key keeps every GCM key far below NIST SP 800-38D's 2^32
 * random-nonce invocations, and a blob copied to another row fails.
 *
 * Layout: u8 format (1) || u8 len(kid) || kid || nonce(12) || ciphertext(32) || tag(16).
 */
export function wrapKey(kek: Kek, info: Uint8Array, key: SecretBytes): Buffer {
  return wrapKeyWithNonce(kek, info, key, randomBytes(NONCE_LENGTH));
}

/** @internal Deterministic wrap for test vectors; a repeated nonce breaks GCM. */
export function wrapKeyWithNonce(kek: Kek, info: Uint8Array, key: SecretBytes, nonce: Uint8Array): Buffer {
  if (!KID_PATTERN.test(kek.kid)) throw new RangeError('kid must be 1-64 characters of [A-Za-z0-9._-]');
  if (kek.key.length !== KEY_LENGTH || key.length !== KEY_LENGTH) throw new RangeError('keys must be 32 bytes');
  if (nonce.length !== NONCE_LENGTH) throw new RangeError('nonce must be 12 bytes');
  const kid = Buffer.from(kek.kid, 'latin1');
  const wrapping = hkdfExpandSha256(wrapPrk(kek), info, KEY_LENGTH);
  try {
    const cipher = createCipheriv('aes-256-gcm', wrapping, nonce, { authTagLength: TAG_LENGTH });
    cipher.setAAD(kid);
    const body = cipher.update(key.expose());
    cipher.final();
    const out = Buffer.allocUnsafe(2 + kid.length + NONCE_LENGTH + KEY_LENGTH + TAG_LENGTH);
    out[0] = WRAP_FORMAT;
    out[1] = kid.length;
    let offset = 2 + kid.copy(out, 2);
    offset += Buffer.from(nonce).copy(out, offset);
    offset += body.copy(out, offset);
    cipher.getAuthTag().copy(out, offset);
    return out;
  } finally {
    wrapping.fill(0);
  }
}

/** The kid a wrapped blob names, or undefined when the blob is malformed. */
export function wrappedKid(blob: Uint8Array): string | undefined {
  const kidLength = blob[1];
  if (blob[0] !== WRAP_FORMAT || kidLength === undefined || kidLength === 0) return undefined;
  if (blob.length !== 2 + kidLength + NONCE_LENGTH + KEY_LENGTH + TAG_LENGTH) return undefined;
  return Buffer.from(blob.buffer, blob.byteOffset + 2, kidLength).toString('latin1');
}

/** Unwraps a blob made by wrapKey for the same `info`; any failure is one UnwrapError. */
export function unwrapKey(keks: KekRing, info: Uint8Array, blob: Uint8Array): SecretBytes {
  const kid = wrappedKid(blob);
  const kek = kid === undefined ? undefined : keks.find(kid);
  if (kid === undefined || kek === undefined) throw new UnwrapError();
  const view = Buffer.from(blob.buffer, blob.byteOffset, blob.length);
  let offset = 2 + kid.length;
  const nonce = view.subarray(offset, (offset += NONCE_LENGTH));
  const body = view.subarray(offset, (offset += KEY_LENGTH));
  const tag = view.subarray(offset, offset + TAG_LENGTH);
  const wrapping = hkdfExpandSha256(wrapPrk(kek), info, KEY_LENGTH);
  try {
    const decipher = createDecipheriv('aes-256-gcm', wrapping, nonce, { authTagLength: TAG_LENGTH });
    decipher.setAAD(view.subarray(2, 2 + kid.length));
    decipher.setAuthTag(tag);
    const key = decipher.update(body);
    try {
      decipher.final();
    } catch {
      key.fill(0);
      throw new UnwrapError();
    }
    return SecretBytes.adopt(key);
  } finally {
    wrapping.fill(0);
  }
}

/** Wraps a root key for its row. */
export function wrapRootKey(kek: Kek, ref: RootKeyRef, rootKey: SecretBytes): Buffer {
  return wrapKey(kek, rootWrapInfo(ref), rootKey);
}

/** Unwraps a root key for its row; a blob from another row fails. */
export function unwrapRootKey(keks: KekRing, ref: RootKeyRef, blob: Uint8Array): SecretBytes {
  return unwrapKey(keks, rootWrapInfo(ref), blob);
}

/** Builds a KekRing from loaded KEKs and the id of the active one. */
export function kekRing(keks: readonly Kek[], activeKid: string): KekRing {
  const byKid = new Map(keks.map((kek) => [kek.kid, kek]));
  const active = byKid.get(activeKid);
  if (active === undefined) throw new RangeError(`active kid ${activeKid} is not among the loaded KEKs`);
  return { active, find: (kid) => byKid.get(kid) };
}

const EMPTY = Buffer.alloc(0);

/**
 * HKDF-Extract of each KEK with the empty salt, computed once: every per-row
 * wrap key is HKDF(IKM = KEK, salt = "", info), whose extract step is the
 * same for all rows, so a wrap or unwrap pays for the expand step only. The
 * PRK is as secret as the KEK and lives as long as it.
 */
const prks = new WeakMap<Kek, Buffer>();

function wrapPrk(kek: Kek): Buffer {
  let prk = prks.get(kek);
  if (prk === undefined) {
    prk = hkdfExtractSha256(kek.key.expose(), EMPTY);
    prks.set(kek, prk);
  }
  return prk;
}
