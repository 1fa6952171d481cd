import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deriveKey, derivationInfo } from './derive.js';
import { hkdfSha256 } from './hkdf.js';
import { isCategory, isServiceId, isUserId, isVersion } from './ids.js';
import { SecretBytes } from './secret-bytes.js';
import { KID_PATTERN, kekRing, rootWrapInfo, serviceWrapInfo, unwrapKey, wrapKeyWithNonce } from './wrap.js';
import type { DeriveVector, VectorFile, WrapVector } from './vectors/generate.js';

/*
 * Checks packages/core/vectors/*.json twice: against the code, and against a
 * second implementation here (own framing, hkdfSync, raw AES-GCM), so the
 * files hold what docs/spec.md says and not merely what the code does.
 */

const hex = (text: string): Buffer => Buffer.from(text, 'hex');

function loadVectors<T>(name: string): VectorFile<T> {
  // This file runs as packages/core/dist/vectors.test.js; the files are in packages/core/vectors/.
  const path = fileURLToPath(new URL(`../vectors/${name}`, import.meta.url));
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as VectorFile<T>;
  } catch (cause) {
    throw new Error(`test vectors missing at ${path}: run node packages/core/dist/vectors/generate.js`, { cause });
  }
}

/** label || fields, strings as lp() (2-byte big-endian UTF-8 length) and numbers as u32() (4 bytes big-endian). */
function referenceFrame(label: string, fields: (string | number)[]): Buffer {
  const out: number[] = [...Buffer.from(label, 'latin1')];
  for (const field of fields) {
    if (typeof field === 'number') {
      out.push((field >>> 24) & 0xff, (field >>> 16) & 0xff, (field >>> 8) & 0xff, field & 0xff);
    } else {
      const bytes = new TextEncoder().encode(field);
      out.push(bytes.length >>> 8, bytes.length & 0xff, ...bytes);
    }
  }
  return Buffer.from(out);
}

const derive = loadVectors<DeriveVector>('derive.json');
const wrap = loadVectors<WrapVector>('wrap.json');

void describe('derivation vectors (packages/core/vectors/derive.json)', () => {
  void it('holds at least 10 vectors with distinct names and valid ids', () => {
    assert.ok(derive.vectors.length >= 10);
    assert.equal(new Set(derive.vectors.map((v) => v.name)).size, derive.vectors.length);
    for (const v of derive.vectors) {
      assert.ok(
        isServiceId(v.serviceId) && isUserId(v.userId) && isCategory(v.category) && isVersion(v.version),
        v.name,
      );
      assert.equal(hex(v.rootKey).length, 32, v.name);
      assert.equal(hex(v.serviceKey).length, 32, v.name);
    }
  });

  void it('covers the shortest and longest ids and the largest version', () => {
    const lengths = (pick: (v: DeriveVector) => string): number[] => derive.vectors.map((v) => pick(v).length);
    assert.deepEqual([Math.min(...lengths((v) => v.userId)), Math.max(...lengths((v) => v.userId))], [1, 128]);
    assert.deepEqual([Math.min(...lengths((v) => v.category)), Math.max(...lengths((v) => v.category))], [1, 32]);
    assert.deepEqual([Math.min(...lengths((v) => v.serviceId)), Math.max(...lengths((v) => v.serviceId))], [2, 64]);
    assert.ok(derive.vectors.some((v) => v.version === 0x7fffffff));
  });

  for (const v of derive.vectors) {
    void it(`${v.name}: the code reproduces info and derived key`, () => {
      assert.equal(derivationInfo(v).toString('hex'), v.info);
      const derived = deriveKey(SecretBytes.copyOf(hex(v.rootKey)), SecretBytes.copyOf(hex(v.serviceKey)), v);
      assert.equal(derived.expose().toString('hex'), v.derivedKey);
    });

    void it(`${v.name}: an independent hkdfSync implementation agrees`, () => {
      const info = referenceFrame('padlock/v1/derive', [v.serviceId, v.category, v.version, v.userId]);
      assert.equal(info.toString('hex'), v.info);
      const okm = Buffer.from(hkdfSync('sha256', hex(v.rootKey), hex(v.serviceKey), info, 32));
      assert.equal(okm.toString('hex'), v.derivedKey);
    });
  }

  void it('gives different derived keys for every vector', () => {
    assert.equal(new Set(derive.vectors.map((v) => v.derivedKey)).size, derive.vectors.length);
  });
});

void describe('wrap vectors (packages/core/vectors/wrap.json)', () => {
  void it('holds root-key and service-key vectors with valid kids', () => {
    assert.ok(wrap.vectors.some((v) => v.kind === 'root'));
    assert.ok(wrap.vectors.some((v) => v.kind === 'service'));
    for (const v of wrap.vectors) assert.match(v.kid, KID_PATTERN);
  });

  for (const v of wrap.vectors) {
    const infoFromCode = (): Buffer => (v.kind === 'root' ? rootWrapInfo(v) : serviceWrapInfo(v.serviceId));

    void it(`${v.name}: the code reproduces info, wrap key and blob, and unwraps the blob`, () => {
      const info = infoFromCode();
      assert.equal(info.toString('hex'), v.info);
      assert.equal(hkdfSha256(hex(v.kek), Buffer.alloc(0), info, 32).toString('hex'), v.wrapKey);
      const kek = { kid: v.kid, key: SecretBytes.copyOf(hex(v.kek)) };
      const blob = wrapKeyWithNonce(kek, info, SecretBytes.copyOf(hex(v.key)), hex(v.nonce));
      assert.equal(blob.toString('hex'), v.blob);
      assert.equal(
        unwrapKey(kekRing([kek], v.kid), info, hex(v.blob))
          .expose()
          .toString('hex'),
        v.key,
      );
    });

    void it(`${v.name}: an independent hkdfSync and AES-256-GCM implementation agrees`, () => {
      const info =
        v.kind === 'root'
          ? referenceFrame('padlock/v1/wrap', [v.userId, v.category, v.version])
          : referenceFrame('padlock/v1/wrap-service', [v.serviceId]);
      assert.equal(info.toString('hex'), v.info);
      const wrapKey = Buffer.from(hkdfSync('sha256', hex(v.kek), Buffer.alloc(0), info, 32));
      assert.equal(wrapKey.toString('hex'), v.wrapKey);

      const kid = Buffer.from(v.kid, 'latin1');
      const cipher = createCipheriv('aes-256-gcm', wrapKey, hex(v.nonce), { authTagLength: 16 });
      cipher.setAAD(kid);
      const body = Buffer.concat([cipher.update(hex(v.key)), cipher.final()]);
      const expected = Buffer.concat([Buffer.from([1, kid.length]), kid, hex(v.nonce), body, cipher.getAuthTag()]);
      assert.equal(expected.toString('hex'), v.blob);

      const blob = hex(v.blob);
      const offset = 2 + blob[1]!;
      const decipher = createDecipheriv('aes-256-gcm', wrapKey, blob.subarray(offset, offset + 12), {
        authTagLength: 16,
      });
      decipher.setAAD(blob.subarray(2, offset));
      decipher.setAuthTag(blob.subarray(offset + 44));
      const key = Buffer.concat([decipher.update(blob.subarray(offset + 12, offset + 44)), decipher.final()]);
      assert.equal(key.toString('hex'), v.key);
    });
  }
});
