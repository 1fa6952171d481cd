import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UnwrapError } from './errors.js';
import { SecretBytes } from './secret-bytes.js';
import { kekRing, unwrapKey, wrapKey } from './wrap.js';

/*
 * wrap.ts uses AES-256-GCM with a 12-byte nonce, a 16-byte tag and
 * `authTagLength: 16`. These tests hold Node's GCM, used exactly that way, to
 * the Wycheproof vectors, and check that shortened tags never authenticate.
 */

const hex = (text: string): Buffer => Buffer.from(text, 'hex');

interface WycheproofAeadTest {
  tcId: number;
  comment: string;
  flags: string[];
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface WycheproofAeadFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: { keySize: number; ivSize: number; tagSize: number; tests: WycheproofAeadTest[] }[];
}

/** Reads a Wycheproof file from ../shared/vectors/wycheproof/ beside the repository root. */
function loadWycheproof(name: string): unknown {
  // This file runs as packages/core/dist/aes-gcm.test.js, three levels below the root.
  const root = new URL('../../../', import.meta.url);
  const path = fileURLToPath(new URL(`../shared/vectors/wycheproof/${name}`, root));
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new Error(`Wycheproof vectors missing or unreadable at ${path}: CI must provide them there`, { cause });
  }
}

/** Decrypts the way unwrapKey does; throws when the case does not authenticate. */
function openLikeWrap(test: WycheproofAeadTest): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', hex(test.key), hex(test.iv), { authTagLength: 16 });
  decipher.setAAD(hex(test.aad));
  decipher.setAuthTag(hex(test.tag));
  const plaintext = decipher.update(hex(test.ct));
  decipher.final();
  return plaintext;
}

void describe('AES-256-GCM as wrap.ts uses it: Wycheproof aes_gcm_test.json', () => {
  const file = loadWycheproof('aes_gcm_test.json') as WycheproofAeadFile;
  const all = file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
  const wrapShaped = all
    .filter(({ group }) => group.keySize === 256 && group.ivSize === 96 && group.tagSize === 128)
    .map(({ test }) => test);
  const valid = wrapShaped.filter((test) => test.result === 'valid');
  const invalid256 = all.filter(({ group, test }) => group.keySize === 256 && test.result !== 'valid');

  void it('holds the cases this suite relies on', () => {
    assert.equal(file.algorithm, 'AES-GCM');
    assert.equal(all.length, file.numberOfTests);
    assert.ok(valid.length >= 30, `valid 256-bit/96-bit-iv cases: ${valid.length}`);
    assert.ok(invalid256.length >= 25, `invalid 256-bit cases: ${invalid256.length}`);
  });

  void it('decrypts every valid 256-bit key, 12-byte nonce, 16-byte tag case', () => {
    for (const test of valid) {
      assert.equal(openLikeWrap(test).toString('hex'), test.msg, `tcId ${test.tcId} (${test.comment})`);
    }
  });

  void it('encrypts every valid case to the published ciphertext and tag', () => {
    for (const test of valid) {
      const cipher = createCipheriv('aes-256-gcm', hex(test.key), hex(test.iv), { authTagLength: 16 });
      cipher.setAAD(hex(test.aad));
      const ct = Buffer.concat([cipher.update(hex(test.msg)), cipher.final()]);
      assert.equal(ct.toString('hex'), test.ct, `tcId ${test.tcId}`);
      assert.equal(cipher.getAuthTag().toString('hex'), test.tag, `tcId ${test.tcId}`);
    }
  });

  void it('rejects every invalid case with a 256-bit key (modified tags, zero-length nonces)', () => {
    for (const { test } of invalid256) {
      assert.equal(test.result, 'invalid', `tcId ${test.tcId}: no acceptable cases expected`);
      assert.throws(() => openLikeWrap(test), `tcId ${test.tcId} (${test.comment}) must not decrypt`);
    }
  });
});

void describe('AES-256-GCM: shortened tags never authenticate', () => {
  const key = Buffer.alloc(32, 0x42);
  const nonce = Buffer.alloc(12, 0x24);
  const aad = Buffer.from('k1');
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(Buffer.alloc(32, 0x11)), cipher.final()]);
  const tag = cipher.getAuthTag();

  const kek = { kid: 'k1', key: SecretBytes.copyOf(key) };
  const info = Buffer.from('padlock/v1/wrap truncation test');
  const blob = wrapKey(kek, info, SecretBytes.random(32));
  const ring = kekRing([kek], 'k1');

  for (const tagLength of [4, 8, 12]) {
    void it(`a decipher with authTagLength 16 refuses a ${tagLength}-byte tag`, () => {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
      decipher.setAAD(aad);
      assert.throws(() => {
        decipher.setAuthTag(tag.subarray(0, tagLength));
        decipher.update(body);
        decipher.final();
      });
    });

    void it(`unwrapKey rejects a blob whose tag is cut to ${tagLength} bytes`, () => {
      const truncated = blob.subarray(0, blob.length - (16 - tagLength));
      assert.throws(() => unwrapKey(ring, info, truncated), UnwrapError);
    });
  }

  void it('the untruncated blob unwraps, so the rejections above are about the tag', () => {
    assert.equal(unwrapKey(ring, info, blob).length, 32);
  });
});
