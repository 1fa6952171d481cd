import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { hmacSha256 } from './hmac.js';

const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');

// RFC 4231 section 4, HMAC-SHA-256 results typed in from the RFC. Test case 5
// publishes only the first 128 bits of the MAC.
const RFC_4231 = [
  {
    name: 'test case 1: 20-byte key',
    key: Buffer.alloc(20, 0x0b),
    data: ascii('Hi There'),
    mac: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
  },
  {
    name: 'test case 2: key shorter than the output',
    key: ascii('Jefe'),
    data: ascii('what do ya want for nothing?'),
    mac: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  },
  {
    name: 'test case 3: 50 bytes of 0xdd',
    key: Buffer.alloc(20, 0xaa),
    data: Buffer.alloc(50, 0xdd),
    mac: '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe',
  },
  {
    name: 'test case 4: 25-byte key 0x01..0x19',
    key: hex('0102030405060708090a0b0c0d0e0f10111213141516171819'),
    data: Buffer.alloc(50, 0xcd),
    mac: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
  },
  {
    name: 'test case 5: truncated to 128 bits',
    key: Buffer.alloc(20, 0x0c),
    data: ascii('Test With Truncation'),
    mac: 'a3b6167473100ee06e0c796c2955552b',
  },
  {
    name: 'test case 6: 131-byte key, hashed first',
    key: Buffer.alloc(131, 0xaa),
    data: ascii('Test Using Larger Than Block-Size Key - Hash Key First'),
    mac: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
  },
  {
    name: 'test case 7: 131-byte key and data longer than a block',
    key: Buffer.alloc(131, 0xaa),
    data: ascii(
      'This is a test using a larger than block-size key and a larger than block-size data. ' +
        'The key needs to be hashed before being used by the HMAC algorithm.',
    ),
    mac: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
  },
];

void describe('hmacSha256: RFC 4231 HMAC-SHA-256 test cases', () => {
  for (const { name, key, data, mac } of RFC_4231) {
    void it(name, () => {
      const expected = hex(mac);
      assert.equal(hmacSha256(key, data).subarray(0, expected.length).toString('hex'), mac);
    });
  }
});

interface WycheproofMacTest {
  tcId: number;
  comment: string;
  key: string;
  msg: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface WycheproofMacFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: { keySize: number; tagSize: number; tests: WycheproofMacTest[] }[];
}

/** Reads a Wycheproof file from ../shared/vectors/wycheproof/ beside the repository root. */
function loadWycheproof(name: string): unknown {
  // This file runs as packages/core/dist/hmac.test.js, three levels below the root.
  const root = new URL('../../../', import.meta.url);
  const path = fileURLToPath(new URL(`../shared/vectors/wycheproof/${name}`, root));
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new Error(`Wycheproof vectors missing or unreadable at ${path}: CI must provide them there`, { cause });
  }
}

void describe('hmacSha256: Wycheproof hmac_sha256_test.json', () => {
  const file = loadWycheproof('hmac_sha256_test.json') as WycheproofMacFile;
  const cases = file.testGroups.flatMap((group) => group.tests.map((test) => ({ ...test, tagSize: group.tagSize })));

  void it('holds every test case the file declares', () => {
    assert.equal(file.algorithm, 'HMACSHA256');
    assert.equal(cases.length, file.numberOfTests);
    assert.ok(cases.some((test) => test.result === 'valid') && cases.some((test) => test.result === 'invalid'));
  });

  void it('matches every valid tag and rejects every invalid one (truncated tags compare the first tagSize/8 bytes)', () => {
    for (const test of cases) {
      const tag = hex(test.tag);
      assert.equal(tag.length, test.tagSize / 8, `tcId ${test.tcId}: tag length`);
      const ours = hmacSha256(hex(test.key), hex(test.msg)).subarray(0, test.tagSize / 8);
      assert.notEqual(test.result, 'acceptable', `tcId ${test.tcId}: no acceptable cases expected`);
      assert.equal(ours.equals(tag), test.result === 'valid', `tcId ${test.tcId} (${test.comment}): ${test.result}`);
    }
  });
});

void describe('hmacSha256: differential against createHmac', () => {
  const reference = (key: Uint8Array, message: Uint8Array): Buffer =>
    createHmac('sha256', key).update(message).digest();

  // Block-size boundaries: keys longer than 64 bytes are hashed first (RFC 2104 section 2).
  const boundaries = [0, 1, 31, 32, 33, 63, 64, 65, 128, 200];
  for (const keyLength of boundaries) {
    void it(`key of ${keyLength} bytes, messages of 0, 1, 55, 56, 63, 64, 65 and 500 bytes`, () => {
      const key = Buffer.alloc(keyLength, 0xa5);
      for (const messageLength of [0, 1, 55, 56, 63, 64, 65, 500]) {
        const message = Buffer.alloc(messageLength, 0x3c);
        assert.deepEqual(hmacSha256(key, message), reference(key, message), `message ${messageLength}`);
      }
    });
  }

  void it('matches on 5000 random keys (0-200 bytes) and messages (0-500 bytes)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200, size: 'max' }),
        fc.uint8Array({ maxLength: 500, size: 'max' }),
        (key, message) => {
          assert.deepEqual(hmacSha256(key, message), reference(key, message));
        },
      ),
      { numRuns: 5000 },
    );
  });

  void it('leaves its inputs unchanged and returns a fresh 32-byte buffer', () => {
    const key = Buffer.alloc(100, 7);
    const message = Buffer.alloc(100, 9);
    const first = hmacSha256(key, message);
    assert.deepEqual(key, Buffer.alloc(100, 7));
    assert.deepEqual(message, Buffer.alloc(100, 9));
    assert.equal(first.length, 32);
    first.fill(0);
    assert.deepEqual(hmacSha256(key, message), reference(key, message));
  });
});
