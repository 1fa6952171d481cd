import { signingKeyWrapInfo, SecretBytes, unwrapKey, wrapKey, type KekRing } from '@padlock/core';
import { calculateJwkThumbprint, CompactSign, compactVerify, createLocalJWKSet, exportJWK, type JWK } from 'jose';
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { canonicalJson, type CheckpointSigner } from './audit.js';
import type { Logger } from './log.js';
import type { KeyStore, SigningKeyRecord } from './store/types.js';

/*
 * Signed deletion receipts (DESIGN.md section 10): a compact JWS, EdDSA over
 * Ed25519, made with jose, over what one shred destroyed. The claims are fixed
 * in docs/spec.md ("Deletion receipt") with vectors in
 * packages/server/vectors/receipt.json. The same key signs the audit log's
 * checkpoints, under another `typ`, so neither can pass for the other.
 *
 * The private key is a 32-byte Ed25519 seed, stored only wrapped under the
 * KEK, one row per generation; the highest generation signs and every
 * generation's public key stays in the JWKS, so old receipts keep verifying.
 */

export const RECEIPT_TYP = 'padlock-receipt+jwt';
export const CHECKPOINT_TYP = 'padlock-audit-checkpoint+jwt';
export const RECEIPT_ISSUER = 'padlock';

/** What one shred destroyed; the JWS payload (docs/spec.md, "Deletion receipt"). */
export interface ReceiptClaims {
  readonly iss: typeof RECEIPT_ISSUER;
  /** The receipt id: 32 hex characters. */
  readonly jti: string;
  /** The user id. */
  readonly sub: string;
  /** Seconds since the epoch (RFC 7519). */
  readonly iat: number;
  /** Milliseconds since the epoch when this shred completed. */
  readonly shreddedAt: number;
  readonly scope: 'keychain' | 'category';
  /** Every version of the shredded categories, each with the time it was shredded (ms). */
  readonly categories: readonly {
    readonly category: string;
    readonly versions: readonly { readonly version: number; readonly shreddedAt: number }[];
  }[];
  /** The service that asked (or "operator:<login>"). */
  readonly requestedBy: string;
  /** The schedule that ran this shred; null for an immediate one. */
  readonly scheduleId: string | null;
}

export interface JsonWebKeySet {
  readonly keys: readonly JWK[];
}

/** The PKCS#8 (RFC 8410) DER header before a 32-byte Ed25519 seed. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 private key from its 32-byte seed; the DER copy is wiped. */
export function ed25519FromSeed(seed: SecretBytes): KeyObject {
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed.expose()]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** The public JWK of an Ed25519 private key, with its RFC 7638 thumbprint as kid. */
export async function publicJwk(privateKey: KeyObject): Promise<JWK> {
  const jwk = await exportJWK(createPublicKey(privateKey));
  const kid = await calculateJwkThumbprint(jwk);
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x!, kid, alg: 'EdDSA', use: 'sig' };
}

interface LoadedKey {
  readonly generation: number;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
}

/** Makes and wraps a new signing key for `generation`. */
async function newSigningKey(keks: KekRing, generation: number, now: number): Promise<SigningKeyRecord> {
  const seed = SecretBytes.random(32);
  try {
    const { kid } = await publicJwk(ed25519FromSeed(seed));
    return {
      generation,
      kid: kid!,
      wrapped: wrapKey(keks.active, signingKeyWrapInfo(generation), seed),
      createdAt: now,
    };
  } finally {
    seed.wipe();
  }
}

/**
 * Adds the next generation of signing key: it signs from the next refresh on,
 * the earlier ones stay published. Race-safe: two rotations at once make one key.
 */
export async function rotateSigningKey(store: KeyStore, keks: KekRing): Promise<SigningKeyRecord> {
  const existing = await store.listSigningKeys();
  const generation = existing.reduce((max, k) => Math.max(max, k.generation), 0) + 1;
  const record = await newSigningKey(keks, generation, Date.now());
  if (!(await store.insertSigningKey(record))) {
    const winner = (await store.listSigningKeys()).find((k) => k.generation === generation);
    if (winner === undefined) throw new Error('signing key rotation lost a race and found no winner');
    return winner;
  }
  return record;
}

/** Holds the unwrapped signing keys; signs receipts and audit checkpoints. */
export class ReceiptSigner implements CheckpointSigner {
  #keys: LoadedKey[] = [];

  private constructor(
    private readonly store: KeyStore,
    private readonly keks: KekRing,
    private readonly log: Logger | undefined,
  ) {}

  /** Loads the signing keys, creating the first one when there is none (conditional insert: race-safe). */
  static async open(store: KeyStore, keks: KekRing, log?: Logger): Promise<ReceiptSigner> {
    const signer = new ReceiptSigner(store, keks, log);
    if ((await store.listSigningKeys()).length === 0) {
      await store.insertSigningKey(await newSigningKey(keks, 1, Date.now()));
    }
    await signer.refresh();
    return signer;
  }

  /** Reloads the keys from the store (after a rotation elsewhere). A row that fails to unwrap is skipped. */
  async refresh(): Promise<void> {
    const loaded: LoadedKey[] = [];
    for (const record of await this.store.listSigningKeys()) {
      let seed: SecretBytes;
      try {
        seed = unwrapKey(this.keks, signingKeyWrapInfo(record.generation), record.wrapped);
      } catch {
        this.log?.error('receipt signing key failed to unwrap; not used', { generation: record.generation });
        continue;
      }
      const privateKey = ed25519FromSeed(seed);
      seed.wipe();
      const jwk = await publicJwk(privateKey);
      if (jwk.kid !== record.kid) {
        this.log?.error('receipt signing key does not match its kid; not used', { generation: record.generation });
        continue;
      }
      loaded.push({ generation: record.generation, kid: record.kid, privateKey, jwk });
    }
    if (loaded.length === 0) throw new Error('no receipt signing key could be loaded');
    this.#keys = loaded.sort((a, b) => a.generation - b.generation);
  }

  /** The kid that signs now. */
  get activeKid(): string {
    return this.#active().kid;
  }

  /** Every loaded public key, retired ones included (GET /v1/receipts/keys). */
  get jwks(): JsonWebKeySet {
    return { keys: this.#keys.map((k) => k.jwk) };
  }

  /** Signs receipt claims; returns the compact JWS. */
  sign(claims: ReceiptClaims): Promise<string> {
    return this.#sign(RECEIPT_TYP, claims);
  }

  signCheckpoint(head: { chain: string; seq: number; hash: string; at: number }): Promise<string> {
    return this.#sign(CHECKPOINT_TYP, head);
  }

  #sign(typ: string, payload: object): Promise<string> {
    const key = this.#active();
    return signCompact(key.privateKey, key.kid, typ, payload);
  }

  #active(): LoadedKey {
    const key = this.#keys.at(-1);
    if (key === undefined) throw new Error('no receipt signing key is loaded');
    return key;
  }
}

/**
 * The compact JWS of `payload` (canonical JSON) under the protected header
 * { alg: "EdDSA", kid, typ }. Ed25519 is deterministic, so the vectors in
 * packages/server/vectors/receipt.json pin every byte.
 */
export function signCompact(privateKey: KeyObject, kid: string, typ: string, payload: object): Promise<string> {
  return new CompactSign(Buffer.from(canonicalJson(payload), 'utf8'))
    .setProtectedHeader({ alg: 'EdDSA', kid, typ })
    .sign(privateKey);
}

/** A new receipt id: 16 random bytes, hex. */
export function newReceiptId(): string {
  return randomBytes(16).toString('hex');
}

/** Why a receipt or checkpoint was refused; one message per reason, never the key. */
export class InvalidSignature extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidSignature';
  }
}

/**
 * Verifies a compact JWS of the given `typ` against a JWKS (EdDSA only) and
 * returns its payload, parsed. Any failure is an InvalidSignature.
 */
export async function verifySigned(jws: string, jwks: JsonWebKeySet, typ: string): Promise<unknown> {
  jws = jws.trim();
  // base64url's last character carries unused bits that decoders ignore: without this, four spellings of
  // one signature verify, and a receipt with a changed character would still pass.
  const parts = jws.split('.');
  if (parts.length !== 3 || parts.some((p) => Buffer.from(p, 'base64url').toString('base64url') !== p)) {
    throw new InvalidSignature('the JWS is not three canonical base64url parts');
  }
  let result;
  try {
    result = await compactVerify(jws, createLocalJWKSet({ keys: [...jwks.keys] }), { algorithms: ['EdDSA'] });
  } catch (error) {
    throw new InvalidSignature(`the signature does not verify (${(error as Error).message})`);
  }
  if (result.protectedHeader.typ !== typ) throw new InvalidSignature(`the JWS's typ is not ${typ}`);
  try {
    return JSON.parse(Buffer.from(result.payload).toString('utf8')) as unknown;
  } catch {
    throw new InvalidSignature('the payload is not JSON');
  }
}

/** Verifies a deletion receipt offline and checks its claims' shape. */
export async function verifyReceipt(jws: string, jwks: JsonWebKeySet): Promise<ReceiptClaims> {
  const claims = (await verifySigned(jws, jwks, RECEIPT_TYP)) as Partial<ReceiptClaims> | null;
  if (
    claims === null ||
    typeof claims !== 'object' ||
    claims.iss !== RECEIPT_ISSUER ||
    typeof claims.jti !== 'string' ||
    typeof claims.sub !== 'string' ||
    typeof claims.iat !== 'number' ||
    typeof claims.shreddedAt !== 'number' ||
    (claims.scope !== 'keychain' && claims.scope !== 'category') ||
    !Array.isArray(claims.categories) ||
    typeof claims.requestedBy !== 'string' ||
    (claims.scheduleId !== null && typeof claims.scheduleId !== 'string')
  ) {
    throw new InvalidSignature('the receipt is signed but its claims are not a Padlock receipt');
  }
  return claims as ReceiptClaims;
}
