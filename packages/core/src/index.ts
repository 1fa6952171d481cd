export { SecretBytes } from './secret-bytes.js';
export { hmacSha256 } from './hmac.js';
export { hkdfSha256 } from './hkdf.js';
export { frame } from './encoding.js';
export { deriveKey, derivationInfo, DERIVE_LABEL, type DerivationContext } from './derive.js';
export {
  wrapKey,
  unwrapKey,
  wrapRootKey,
  unwrapRootKey,
  wrappedKid,
  rootWrapInfo,
  serviceWrapInfo,
  kekRing,
  KID_PATTERN,
  WRAP_FORMAT,
  WRAP_ROOT_LABEL,
  WRAP_SERVICE_LABEL,
  type Kek,
  type KekRing,
  type RootKeyRef,
} from './wrap.js';
export { ERRORS, PadlockError, UnwrapError, type ErrorCode } from './errors.js';
export {
  USER_ID_PATTERN,
  CATEGORY_PATTERN,
  SERVICE_ID_PATTERN,
  TLS_IDENTITY_PATTERN,
  MAX_VERSION,
  isUserId,
  isCategory,
  isServiceId,
  isTlsIdentity,
  isVersion,
} from './ids.js';
