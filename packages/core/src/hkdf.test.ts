import assert from 'node:assert/strict';
import { hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { hkdfExpandSha256, hkdfExtractSha256, hkdfSha256 } from './hkdf.js';
import { hmacSha256 } from './hmac.js';

const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const range = (from: number, to: number): Buffer =>
  Buffer.from(Array.from({ length: to - from + 1 }, (_, i) => from + i));

// RFC 5869 appendix A, the SHA-256 cases (A.1-A.3), typed in from the RFC.
const RFC_5869 = [
  {
    name: 'A.1: basic test case',
    ikm: Buffer.alloc(22, 0x0b),
    salt: range(0x00, 0x0c),
    info: range(0xf0, 0xf9),
    length: 42,
    prk: '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5',
    okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  },
  {
    name: 'A.2: longer inputs and outputs',
    ikm: range(0x00, 0x4f),
    salt: range(0x60, 0xaf),
    info: range(0xb0, 0xff),
    length: 82,
    prk: '06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244',
    okm:
      'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c' +
      '59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71' +
      'cc30c58179ec3e87c14c01d5c1f3434f1d87',
  },
  {
    name: 'A.3: zero-length salt and info',
    ikm: Buffer.alloc(22, 0x0b),
    salt: Buffer.alloc(0),
    info: Buffer.alloc(0),
    length: 42,
    prk: '19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04',
    okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  },
];

void describe('hkdfSha256: RFC 5869 appendix A (SHA-256)', () => {
  for (const { name, ikm, salt, info, length, prk, okm } of RFC_5869) {
    void it(name, () => {
      // Extract is HMAC(salt, IKM), with an empty salt read as 32 zero bytes (section 2.2).
      const extractKey = salt.length === 0 ? Buffer.alloc(32) : salt;
      assert.equal(hmacSha256(extractKey, ikm).toString('hex'), prk);
      assert.equal(hkdfSha256(ikm, salt, info, length).toString('hex'), okm);
      // The two steps on their own, as the per-row wrap keys use them (extract once per KEK).
      assert.equal(hkdfExtractSha256(ikm, salt).toString('hex'), prk);
      assert.equal(hkdfExpandSha256(hex(prk), info, length).toString('hex'), okm);
    });
  }
});

interface WycheproofHkdfTest {
  tcId: number;
  comment: string;
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface WycheproofHkdfFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: { tests: WycheproofHkdfTest[] }[];
}

/** Reads a Wycheproof file from ../shared/vectors/wycheproof/ beside the repository root. */
function loadWycheproof(name: string): unknown {
  // This file runs as packages/core/dist/hkdf.test.js, three levels below the root.
  const root = new URL('../../../', import.meta.url);
  const path = fileURLToPath(new URL(`../shared/vectors/wycheproof/${name}`, root));
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new Error(`Wycheproof vectors missing or unreadable at ${path}: CI must provide them there`, { cause });
  }
}

void describe('hkdfSha256: Wycheproof hkdf_sha256_test.json', () => {
  const file = loadWycheproof('hkdf_sha256_test.json') as WycheproofHkdfFile;
  const cases = file.testGroups.flatMap((group) => group.tests);

  void it('holds every test case the file declares', () => {
    assert.equal(file.algorithm, 'HKDF-SHA-256');
    assert.equal(cases.length, file.numberOfTests);
  });

  void it('derives every valid output', () => {
    const valid = cases.filter((test) => test.result === 'valid');
    assert.ok(valid.length > 80);
    for (const test of valid) {
      const okm = hkdfSha256(hex(test.ikm), hex(test.salt), hex(test.info), test.size);
      assert.equal(okm.toString('hex'), test.okm, `tcId ${test.tcId} (${test.comment})`);
    }
  });

  void it('throws for every invalid case (all are output sizes above 255 * 32)', () => {
    const invalid = cases.filter((test) => test.result !== 'valid');
    assert.ok(invalid.length > 0);
    for (const test of invalid) {
      assert.equal(test.result, 'invalid', `tcId ${test.tcId}: no acceptable cases expected`);
      assert.throws(() => hkdfSha256(hex(test.ikm), hex(test.salt), hex(test.info), test.size), RangeError);
    }
  });
});

void describe('hkdfSha256: differential against crypto.hkdfSync', () => {
  const reference = (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer =>
    Buffer.from(hkdfSync('sha256', ikm, salt, info, length));

  void it('matches on 3000 random inputs (info up to 1024 bytes, the hkdfSync limit)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100, size: 'max' }),
        fc.uint8Array({ maxLength: 100, size: 'max' }),
        fc.uint8Array({ maxLength: 1024, size: 'max' }),
        fc.integer({ min: 0, max: 600 }),
        (ikm, salt, info, length) => {
          assert.deepEqual(hkdfSha256(ikm, salt, info, length), reference(ikm, salt, info, length));
        },
      ),
      { numRuns: 3000 },
    );
  });

  const lengths = [
    { name: 'zero-length output', length: 0 },
    { name: 'one byte', length: 1 },
    { name: 'exactly one block', length: 32 },
    { name: 'one block and a byte', length: 33 },
    { name: 'the maximum, 255 blocks', length: 8160 },
  ];
  for (const { name, length } of lengths) {
    void it(`${name} (L = ${length})`, () => {
      const ikm = Buffer.alloc(32, 1);
      const salt = Buffer.alloc(32, 2);
      const info = Buffer.from('padlock length edge');
      const okm = hkdfSha256(ikm, salt, info, length);
      assert.equal(okm.length, length);
      assert.deepEqual(okm, reference(ikm, salt, info, length));
    });
  }

  void it('the output of L bytes is a prefix of any longer output (RFC 5869 section 2.3)', () => {
    const ikm = Buffer.alloc(16, 3);
    const long = hkdfSha256(ikm, Buffer.alloc(0), Buffer.alloc(0), 8160);
    for (const length of [0, 1, 31, 32, 33, 64, 100, 8159]) {
      assert.deepEqual(hkdfSha256(ikm, Buffer.alloc(0), Buffer.alloc(0), length), long.subarray(0, length));
    }
  });

  void it('an empty salt equals a salt of 32 zero bytes (RFC 5869 section 2.2)', () => {
    const ikm = Buffer.alloc(32, 4);
    const info = Buffer.from('info');
    assert.deepEqual(hkdfSha256(ikm, Buffer.alloc(0), info, 32), hkdfSha256(ikm, Buffer.alloc(32), info, 32));
  });

  void it('leaves ikm, salt and info unchanged', () => {
    const ikm = Buffer.alloc(32, 5);
    const salt = Buffer.alloc(32, 6);
    const info = Buffer.alloc(40, 7);
    hkdfSha256(ikm, salt, info, 100);
    assert.deepEqual([ikm, salt, info], [Buffer.alloc(32, 5), Buffer.alloc(32, 6), Buffer.alloc(40, 7)]);
  });
});

void describe('hkdfSha256: output length validation', () => {
  const rejected = [
    { name: 'one byte above the maximum', length: 8161 },
    { name: 'negative', length: -1 },
    { name: 'fractional', length: 1.5 },
    { name: 'NaN', length: Number.NaN },
    { name: 'infinite', length: Number.POSITIVE_INFINITY },
  ];
  for (const { name, length } of rejected) {
    void it(`rejects ${name} with a RangeError`, () => {
      assert.throws(() => hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), Buffer.alloc(0), length), RangeError);
    });
  }
});
