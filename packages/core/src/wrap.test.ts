import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { UnwrapError } from './errors.js';
import { SecretBytes } from './secret-bytes.js';
import {
  KID_PATTERN,
  WRAP_FORMAT,
  kekRing,
  rootWrapInfo,
  serviceWrapInfo,
  unwrapKey,
  unwrapRootKey,
  wrapKey,
  wrapRootKey,
  wrappedKid,
  type Kek,
  type RootKeyRef,
} from './wrap.js';

const kek = (kid: string, fill: number): Kek => ({ kid, key: SecretBytes.copyOf(Buffer.alloc(32, fill)) });
// '1' (0x31) and '3' (0x33) differ in one bit, so a bit flip in the kid can land on another loaded KEK.
const k1 = kek('k1', 0x01);
const k3 = kek('k3', 0x03);
const ring = kekRing([k1, k3], 'k1');
const row: RootKeyRef = { userId: 'user-1', category: 'profile', version: 1 };

/** Asserts that `unwrap` fails with the one UnwrapError, whatever the cause. */
function assertUnwrapFails(unwrap: () => unknown, message?: string): void {
  assert.throws(
    unwrap,
    (error: unknown) => error instanceof UnwrapError && error.message === 'wrapped key failed to authenticate',
    message,
  );
}

void describe('wrapRootKey / unwrapRootKey', () => {
  void it('round-trips a root key', () => {
    const rootKey = SecretBytes.random(32);
    const blob = wrapRootKey(ring.active, row, rootKey);
    assert.ok(unwrapRootKey(ring, row, blob).equals(rootKey));
  });

  void it('uses a fresh nonce per wrap: two blobs of one key differ and both unwrap', () => {
    const rootKey = SecretBytes.random(32);
    const a = wrapRootKey(k1, row, rootKey);
    const b = wrapRootKey(k1, row, rootKey);
    assert.ok(!a.equals(b));
    assert.ok(unwrapRootKey(ring, row, a).equals(rootKey));
    assert.ok(unwrapRootKey(ring, row, b).equals(rootKey));
  });

  void it('unwraps a blob that sits inside a larger buffer at a non-zero offset', () => {
    const rootKey = SecretBytes.random(32);
    const blob = wrapRootKey(k1, row, rootKey);
    const container = Buffer.concat([Buffer.alloc(7, 0xee), blob, Buffer.alloc(5, 0xee)]);
    const view = new Uint8Array(container.buffer, container.byteOffset + 7, blob.length);
    assert.ok(unwrapRootKey(ring, row, view).equals(rootKey));
  });

  void it('leaves the KEK and the root key intact', () => {
    const rootKey = SecretBytes.copyOf(Buffer.alloc(32, 0x77));
    wrapRootKey(k1, row, rootKey);
    assert.deepEqual(rootKey.expose(), Buffer.alloc(32, 0x77));
    assert.deepEqual(k1.key.expose(), Buffer.alloc(32, 0x01));
  });

  void it('round-trips for random rows and keys, and fails for any other row (property)', () => {
    const refs = fc.record({
      userId: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 128 }),
      category: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 32 }),
      version: fc.integer({ min: 1, max: 0x7fffffff }),
    });
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), refs, refs, (bytes, ref, other) => {
        const rootKey = SecretBytes.copyOf(bytes);
        const blob = wrapRootKey(k1, ref, rootKey);
        assert.ok(unwrapRootKey(ring, ref, blob).equals(rootKey));
        fc.pre(JSON.stringify(ref) !== JSON.stringify(other));
        assertUnwrapFails(() => unwrapRootKey(ring, other, blob));
      }),
      { numRuns: 500 },
    );
  });
});

void describe('unwrap failures are all one UnwrapError', () => {
  const rootKey = SecretBytes.random(32);
  const blob = wrapRootKey(k1, row, rootKey);

  const movedRows: [string, RootKeyRef][] = [
    ['another user', { ...row, userId: 'user-2' }],
    ['another category', { ...row, category: 'payments' }],
    ['another version', { ...row, version: 2 }],
    ['a version differing in the high byte', { ...row, version: 1 + 2 ** 24 }],
  ];
  for (const [name, other] of movedRows) {
    void it(`a blob moved to ${name} fails`, () => assertUnwrapFails(() => unwrapRootKey(ring, other, blob)));
  }

  void it('a root-key blob used as a service derivation key fails', () => {
    assertUnwrapFails(() => unwrapKey(ring, serviceWrapInfo('user-1'), blob));
  });

  void it('a blob under a different KEK with the same kid fails', () => {
    assertUnwrapFails(() => unwrapRootKey(kekRing([kek('k1', 0x09)], 'k1'), row, blob));
  });

  void it('a blob naming a kid the ring does not hold fails', () => {
    assertUnwrapFails(() => unwrapRootKey(kekRing([k3], 'k3'), row, blob));
  });

  void it('every single flipped bit fails', () => {
    for (let bit = 0; bit < blob.length * 8; bit++) {
      const flipped = Buffer.from(blob);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      assertUnwrapFails(() => unwrapRootKey(ring, row, flipped), `bit ${bit}`);
    }
  });

  void it('every truncation fails, and so does an appended byte', () => {
    for (let length = 0; length < blob.length; length++) {
      assertUnwrapFails(() => unwrapRootKey(ring, row, blob.subarray(0, length)), `length ${length}`);
    }
    assertUnwrapFails(() => unwrapRootKey(ring, row, Buffer.concat([blob, Buffer.alloc(1)])));
  });

  void it('random byte strings fail (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        assertUnwrapFails(() => unwrapRootKey(ring, row, bytes));
      }),
      { numRuns: 1000 },
    );
  });

  void it('random corruptions of a valid blob fail (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: blob.length - 1 }), fc.integer({ min: 1, max: 255 }), (index, mask) => {
        const corrupted = Buffer.from(blob);
        corrupted[index]! ^= mask;
        assertUnwrapFails(() => unwrapRootKey(ring, row, corrupted));
      }),
      { numRuns: 1000 },
    );
  });
});

void describe('kekRing', () => {
  void it('unwraps blobs made under each of its KEKs', () => {
    const a = SecretBytes.random(32);
    const b = SecretBytes.random(32);
    const blobA = wrapRootKey(k1, row, a);
    const blobB = wrapRootKey(k3, row, b);
    assert.equal(wrappedKid(blobA), 'k1');
    assert.equal(wrappedKid(blobB), 'k3');
    assert.ok(unwrapRootKey(ring, row, blobA).equals(a));
    assert.ok(unwrapRootKey(ring, row, blobB).equals(b));
  });

  void it('exposes the active KEK and finds every loaded one', () => {
    assert.equal(ring.active, k1);
    assert.equal(kekRing([k1, k3], 'k3').active, k3);
    assert.equal(ring.find('k3'), k3);
    assert.equal(ring.find('k2'), undefined);
  });

  void it('refuses an active kid that is not loaded', () => {
    assert.throws(() => kekRing([k1], 'k3'), RangeError);
  });
});

void describe('wrapped blob layout', () => {
  const kids = ['k', 'k1', 'kek-2026.01_a', 'K'.repeat(64)];
  for (const kid of kids) {
    void it(`format byte, kid length, kid, and 2 + len(kid) + 60 bytes for a ${kid.length}-character kid`, () => {
      const blob = wrapKey(kek(kid, 0x05), serviceWrapInfo('playlist'), SecretBytes.random(32));
      assert.equal(blob.length, 2 + kid.length + 12 + 32 + 16);
      assert.equal(blob[0], WRAP_FORMAT);
      assert.equal(WRAP_FORMAT, 1);
      assert.equal(blob[1], kid.length);
      assert.equal(blob.subarray(2, 2 + kid.length).toString('latin1'), kid);
      assert.equal(wrappedKid(blob), kid);
    });
  }

  const malformed: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['format byte only', Uint8Array.of(1)],
    ['unknown format', Uint8Array.of(2, 1, 0x6b, ...new Uint8Array(60))],
    ['zero-length kid', Uint8Array.of(1, 0, ...new Uint8Array(60))],
    ['one byte short', Uint8Array.of(1, 1, 0x6b, ...new Uint8Array(59))],
    ['one byte long', Uint8Array.of(1, 1, 0x6b, ...new Uint8Array(61))],
  ];
  for (const [name, blob] of malformed) {
    void it(`wrappedKid reads no kid from a blob that is ${name}`, () => assert.equal(wrappedKid(blob), undefined));
  }
  void it('wrappedKid reads the kid of a well-formed blob', () => {
    assert.equal(wrappedKid(Uint8Array.of(1, 1, 0x6b, ...new Uint8Array(60))), 'k');
  });
});

void describe('wrap input validation', () => {
  const invalidKids = ['', 'K'.repeat(65), 'kid with space', 'kid/slash', 'kïd'];
  for (const kid of invalidKids) {
    void it(`refuses kid ${JSON.stringify(kid.length > 20 ? `${kid.slice(0, 8)}... (${kid.length})` : kid)}`, () => {
      assert.ok(!KID_PATTERN.test(kid));
      assert.throws(() => wrapKey(kek(kid, 1), rootWrapInfo(row), SecretBytes.random(32)), RangeError);
    });
  }

  const badLengths: [string, Kek, SecretBytes][] = [
    ['a 16-byte KEK', { kid: 'k1', key: SecretBytes.random(16) }, SecretBytes.random(32)],
    ['a 31-byte key', k1, SecretBytes.random(31)],
    ['a 33-byte key', k1, SecretBytes.random(33)],
  ];
  for (const [name, wrappingKek, key] of badLengths) {
    void it(`refuses ${name}`, () => assert.throws(() => wrapKey(wrappingKek, rootWrapInfo(row), key), RangeError));
  }
});

void describe('wrap info layouts', () => {
  void it('rootWrapInfo is "padlock/v1/wrap" || lp(userId) || lp(category) || u32(version)', () => {
    const expected = [
      Buffer.from('padlock/v1/wrap', 'latin1'),
      Buffer.from([0x00, 0x06]),
      Buffer.from('user-1'),
      Buffer.from([0x00, 0x07]),
      Buffer.from('profile'),
      Buffer.from([0x00, 0x00, 0x01, 0x02]),
    ];
    assert.deepEqual(rootWrapInfo({ ...row, version: 258 }), Buffer.concat(expected));
  });

  void it('serviceWrapInfo is "padlock/v1/wrap-service" || lp(serviceId)', () => {
    const expected = [
      Buffer.from('padlock/v1/wrap-service', 'latin1'),
      Buffer.from([0x00, 0x08]),
      Buffer.from('playlist'),
    ];
    assert.deepEqual(serviceWrapInfo('playlist'), Buffer.concat(expected));
  });

  void it('a service key blob round-trips and is bound to its service', () => {
    const serviceKey = SecretBytes.random(32);
    const blob = wrapKey(k1, serviceWrapInfo('playlist'), serviceKey);
    assert.ok(unwrapKey(ring, serviceWrapInfo('playlist'), blob).equals(serviceKey));
    assertUnwrapFails(() => unwrapKey(ring, serviceWrapInfo('billing'), blob));
  });
});
