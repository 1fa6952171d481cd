/*
 * Identifier grammars. They keep ids safe in URL paths, logs and CQL, and keep
 * every HKDF info string far below the 1024-byte limit of Node's hkdfSync, the
 * second implementation the derivation is checked against.
 */

/** 1-128 characters: letters, digits and `._:@+=-`, starting with a letter or digit. */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$/;
/** 1-32 characters: lower-case letters, digits, `_` and `-`, starting with a letter. */
export const CATEGORY_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
/** 2-64 characters: lower-case letters, digits and `-`, starting with a letter. */
export const SERVICE_ID_PATTERN = /^[a-z][a-z0-9-]{1,63}$/;
/**
 * A TLS client identity as mutual TLS names it: a URI SAN
 * (`spiffe://example.org/ns/a/sa/b`) or a certificate subject
 * (`CN=newsletter,O=Example`). 1-1024 characters, no control characters, no
 * space at either end: it is compared byte for byte with what the
 * certificate says, so a stray space would silently never match.
 */
// eslint-disable-next-line no-control-regex
export const TLS_IDENTITY_PATTERN = /^(?! )[^\u0000-\u001f\u007f]{1,1024}(?<! )$/u;
/** Key versions are positive 31-bit integers. */
export const MAX_VERSION = 0x7fffffff;

export function isUserId(value: unknown): value is string {
  return typeof value === 'string' && USER_ID_PATTERN.test(value);
}

export function isCategory(value: unknown): value is string {
  return typeof value === 'string' && CATEGORY_PATTERN.test(value);
}

export function isServiceId(value: unknown): value is string {
  return typeof value === 'string' && SERVICE_ID_PATTERN.test(value);
}

export function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_VERSION;
}

export function isTlsIdentity(value: unknown): value is string {
  return typeof value === 'string' && TLS_IDENTITY_PATTERN.test(value);
}
