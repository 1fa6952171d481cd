import { hmacSha256 } from './hmac.js';

const HASH_LENGTH = 32;
const MAX_OUTPUT = 255 * HASH_LENGTH;

/**
 * HKDF-SHA256 (RFC 5869): extract with `salt` (an empty salt means 32 zero
 * bytes, section 2.2), then expand with `info` to `length` bytes. Returns a
 * fresh buffer the caller owns; the pseudorandom key is wiped.
 *
 * @example
 *   const okm = hkdfSha256(ikm, Buffer.alloc(0), Buffer.from('context'), 32);
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  checkLength(length);
  const prk = hkdfExtractSha256(ikm, salt);
  try {
    return hkdfExpandSha256(prk, info, length);
  } finally {
    prk.fill(0);
  }
}

/** HKDF-Extract (RFC 5869 section 2.2): PRK = HMAC-SHA256(salt, IKM); an empty salt means 32 zero bytes. */
export function hkdfExtractSha256(ikm: Uint8Array, salt: Uint8Array): Buffer {
  return hmacSha256(salt.length === 0 ? ZERO_SALT : salt, ikm);
}

/**
 * HKDF-Expand (RFC 5869 section 2.3) from a pseudorandom key, for callers
 * that extract once and expand many times (the per-row wrap keys all share
 * the KEK's PRK). Returns a fresh buffer the caller owns.
 */
export function hkdfExpandSha256(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  checkLength(length);
  const okm = Buffer.allocUnsafe(length);
  const block = Buffer.allocUnsafe(HASH_LENGTH + info.length + 1);
  let previous: Buffer | null = null;
  for (let offset = 0, counter = 1; offset < length; counter++) {
    // T(n) = HMAC(PRK, T(n-1) || info || n), with T(0) empty (RFC 5869 section 2.3).
    let input: Buffer;
    if (previous === null) {
      input = block.subarray(HASH_LENGTH);
    } else {
      previous.copy(block, 0);
      previous.fill(0);
      input = block;
    }
    block.set(info, HASH_LENGTH);
    block[HASH_LENGTH + info.length] = counter;
    previous = hmacSha256(prk, input);
    offset += previous.copy(okm, offset, 0, Math.min(HASH_LENGTH, length - offset));
  }
  previous?.fill(0);
  block.fill(0, 0, HASH_LENGTH);
  return okm;
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > MAX_OUTPUT) {
    throw new RangeError(`HKDF-SHA256 output length must be an integer from 0 to ${MAX_OUTPUT}`);
  }
}

const ZERO_SALT = Buffer.alloc(HASH_LENGTH);
