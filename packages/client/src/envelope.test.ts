import { SecretBytes } from '@padlock/core';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  envelopeAad,
  envelopeOverhead,
  openEnvelope,
  readEnvelopeHeader,
  sealEnvelope,
  sealEnvelopeWithNonce,
  type EnvelopeHeader,
} from './envelope.js';
import { DecryptionFailed, InvalidInput } from './errors.js';
import { envelopeVectors, type EnvelopeVectorFile } from './vectors/envelope-vectors.js';

/*
 * The envelope against its vectors (packages/client/vectors/envelope.json),
 * against a second implementation (WebCrypto, own framing), and under
 * generated inputs: round trips from 0 bytes to 1 MiB, and every single-byte
 * change, truncation or extension failing with the one DecryptionFailed.
 */

const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const VECTORS_PATH = fileURLToPath(new URL('../vectors/envelope.json', import.meta.url));
const file = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as EnvelopeVectorFile;

/** The layout of docs/spec.md, written out independently of envelope.ts. */
function referenceHeader(category: string, version: number): Buffer {
  return Buffer.from([
    0x01,
    category.length,
    ...Buffer.from(category, 'ascii'),
    (version >>> 24) & 0xff,
    (version >>> 16) & 0xff,
    (version >>> 8) & 0xff,
    version & 0xff,
  ]);
}

function referenceAad(header: Buffer, userId: string): Buffer {
  const id = new TextEncoder().encode(userId);
  return Buffer.from([...header, id.length >>> 8, id.length & 0xff, ...id]);
}

async function webCryptoSeal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Promise<Buffer> {
  const cryptoKey = await webcrypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  const sealed = await webcrypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 128 },
    cryptoKey,
    plaintext,
  );
  return Buffer.from(sealed);
}

const keyFor =
  (keys: readonly { category: string; version: number; key: string }[]) =>
  (category: string, version: number): SecretBytes | undefined => {
    const found = keys.find((k) => k.category === category && k.version === version);
    return found === undefined ? undefined : SecretBytes.copyOf(hex(found.key));
  };

void describe('envelope vectors (packages/client/vectors/envelope.json)', () => {
  void it('are what the generator writes (a diff means the format changed)', () => {
    assert.deepEqual(file, JSON.parse(JSON.stringify(envelopeVectors())));
  });

  void it('hold at least 10 valid and 10 invalid vectors with distinct names', () => {
    assert.ok(file.vectors.length >= 10 && file.invalid.length >= 10);
    const names = [...file.vectors, ...file.invalid].map((v) => v.name);
    assert.equal(new Set(names).size, names.length);
  });

  for (const v of file.vectors) {
    void it(`${v.name}: header, AAD and envelope match a second implementation`, async () => {
      const header = referenceHeader(v.category, v.version);
      assert.equal(header.toString('hex'), v.header);
      assert.equal(referenceAad(header, v.userId).toString('hex'), v.aad);
      assert.equal(envelopeAad(header, v.userId).toString('hex'), v.aad);
      const sealed = await webCryptoSeal(hex(v.key), hex(v.nonce), hex(v.aad), hex(v.plaintext));
      assert.equal(Buffer.concat([header, hex(v.nonce), sealed]).toString('hex'), v.envelope);
    });

    void it(`${v.name}: seals to the vector and opens back to the plaintext`, () => {
      const key = SecretBytes.copyOf(hex(v.key));
      const header: EnvelopeHeader = { category: v.category, version: v.version };
      const sealed = sealEnvelopeWithNonce(key, v.userId, header, hex(v.plaintext), hex(v.nonce));
      assert.equal(sealed.toString('hex'), v.envelope);
      assert.deepEqual(readEnvelopeHeader(sealed), header);
      assert.equal(sealed.length, hex(v.plaintext).length + envelopeOverhead(v.category));
      const opened = openEnvelope(v.userId, hex(v.envelope), (c, n) =>
        c === v.category && n === v.version ? key : undefined,
      );
      assert.equal(opened.toString('hex'), v.plaintext);
    });
  }

  for (const v of file.invalid) {
    void it(`invalid: ${v.name} fails with DecryptionFailed`, () => {
      assert.throws(
        () => openEnvelope(v.userId, hex(v.envelope), keyFor(v.keys)),
        (error: unknown) => error instanceof DecryptionFailed && error.message === 'decryption failed',
      );
    });
  }
});

void describe('envelope', () => {
  const key = SecretBytes.random(32);
  const header = { category: 'profile', version: 3 };
  const own = (c: string, v: number): SecretBytes | undefined =>
    c === header.category && v === header.version ? key : undefined;

  void it('round-trips random plaintexts from 0 bytes to 1 MiB', () => {
    const sizes = fc.oneof(
      fc.integer({ min: 0, max: 64 }),
      fc.integer({ min: 65, max: 70_000 }),
      fc.integer({ min: 70_001, max: 1024 * 1024 }),
      fc.constantFrom(0, 1, 15, 16, 17, 65535, 65536, 65537, 1024 * 1024),
    );
    fc.assert(
      fc.property(sizes, fc.nat(), (size, seed) => {
        const plaintext = Buffer.alloc(size, seed & 0xff);
        if (size > 0) plaintext.set(randomBytes(Math.min(size, 4096)));
        const sealed = sealEnvelope(key, 'user-1', header, plaintext);
        assert.equal(sealed.length, size + envelopeOverhead('profile'));
        assert.ok(openEnvelope('user-1', sealed, own).equals(plaintext));
      }),
      { numRuns: 60 },
    );
  });

  void it('opens envelopes that are views into larger buffers (Uint8Array offsets)', () => {
    const sealed = sealEnvelope(key, 'user-1', header, Buffer.from('inside'));
    const outer = new Uint8Array(sealed.length + 20);
    outer.set(sealed, 7);
    const view = outer.subarray(7, 7 + sealed.length);
    assert.equal(openEnvelope('user-1', view, own).toString(), 'inside');
    assert.deepEqual(readEnvelopeHeader(view), header);
  });

  void it('fails with DecryptionFailed after any single-byte change', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (plaintext, where, delta) => {
          const sealed = sealEnvelope(key, 'user-1', header, plaintext);
          const index = where % sealed.length;
          sealed[index] = (sealed[index]! + delta) & 0xff;
          assert.throws(() => openEnvelope('user-1', sealed, own), DecryptionFailed);
        },
      ),
      { numRuns: 2000 },
    );
  });

  void it('fails with DecryptionFailed when truncated to any length, or extended', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 20 }),
        (plaintext, cut, extra) => {
          const sealed = sealEnvelope(key, 'user-1', header, plaintext);
          const truncated = sealed.subarray(0, cut % sealed.length);
          assert.throws(() => openEnvelope('user-1', truncated, own), DecryptionFailed);
          assert.throws(() => openEnvelope('user-1', Buffer.concat([sealed, extra]), own), DecryptionFailed);
        },
      ),
      { numRuns: 1000 },
    );
  });

  void it('fails with DecryptionFailed for another user, and for arbitrary bytes', () => {
    const sealed = sealEnvelope(key, 'user-1', header, Buffer.from('secret'));
    assert.throws(() => openEnvelope('user-2', sealed, own), DecryptionFailed);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        assert.throws(() => openEnvelope('user-1', bytes, own), DecryptionFailed);
      }),
      { numRuns: 500 },
    );
  });

  void it('uses a fresh nonce for every seal', () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const sealed = sealEnvelope(key, 'user-1', header, Buffer.alloc(0));
      nonces.add(sealed.subarray(13, 25).toString('hex'));
    }
    assert.equal(nonces.size, 2000);
  });

  void it('reads headers without authenticating, and refuses malformed ones', () => {
    const sealed = sealEnvelope(key, 'user-1', { category: 'payments', version: 7 }, Buffer.from('x'));
    assert.deepEqual(readEnvelopeHeader(sealed), { category: 'payments', version: 7 });
    for (const bad of [Buffer.alloc(0), Buffer.from([2]), sealed.subarray(0, 20), Buffer.from('not an envelope')]) {
      assert.equal(readEnvelopeHeader(bad), undefined);
    }
    assert.equal(readEnvelopeHeader('text' as unknown as Uint8Array), undefined);
  });

  void it('refuses to seal with bad arguments (InvalidInput, nothing encrypted)', () => {
    const cases: [string, () => unknown][] = [
      ['key must be 32 bytes', () => sealEnvelope(SecretBytes.random(16), 'u', header, Buffer.alloc(1))],
      ['userId does not match the user id grammar', () => sealEnvelope(key, 'é', header, Buffer.alloc(1))],
      [
        'category does not match the category grammar',
        () => sealEnvelope(key, 'u', { category: 'Profile', version: 1 }, Buffer.alloc(1)),
      ],
      [
        'version must be an integer from 1 to 2147483647',
        () => sealEnvelope(key, 'u', { category: 'profile', version: 0 }, Buffer.alloc(1)),
      ],
      ['nonce must be 12 bytes', () => sealEnvelopeWithNonce(key, 'u', header, Buffer.alloc(1), Buffer.alloc(8))],
    ];
    for (const [message, run] of cases) {
      assert.throws(run, (error: unknown) => error instanceof InvalidInput && error.message === message, message);
    }
  });
});
