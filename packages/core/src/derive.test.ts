import assert from 'node:assert/strict';
import { hkdfSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DERIVE_LABEL, deriveKey, derivationInfo, type DerivationContext } from './derive.js';
import { MAX_VERSION, isCategory, isServiceId, isUserId } from './ids.js';
import { SecretBytes } from './secret-bytes.js';

/*
 * A second implementation of the derivation, sharing no code with derive.ts
 * or encoding.ts: its own framing over TextEncoder and Node's hkdfSync.
 */
const utf8 = new TextEncoder();

function referenceInfo(context: DerivationContext): Buffer {
  const bytes: number[] = [...utf8.encode('padlock/v1/derive')];
  const lp = (text: string): void => {
    const encoded = utf8.encode(text);
    bytes.push(encoded.length >>> 8, encoded.length & 0xff, ...encoded);
  };
  const u32 = (n: number): void => {
    bytes.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  };
  lp(context.serviceId);
  lp(context.category);
  u32(context.version);
  lp(context.userId);
  return Buffer.from(bytes);
}

function referenceDerive(rootKey: Uint8Array, serviceKey: Uint8Array, context: DerivationContext): Buffer {
  return Buffer.from(hkdfSync('sha256', rootKey, serviceKey, referenceInfo(context), 32));
}

/** Strings of `first` then `minRest`-`maxRest` characters of `rest`. */
function idArbitrary(first: string, rest: string, minRest: number, maxRest: number): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom(...first),
      fc.string({ unit: fc.constantFrom(...rest), minLength: minRest, maxLength: maxRest, size: 'max' }),
    )
    .map(([head, tail]) => head + tail);
}

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const ALNUM = LOWER + LOWER.toUpperCase() + DIGITS;
const serviceIds = idArbitrary(LOWER, LOWER + DIGITS + '-', 1, 63);
const categories = idArbitrary(LOWER, LOWER + DIGITS + '_-', 0, 31);
const userIds = idArbitrary(ALNUM, ALNUM + '._:@+=-', 0, 127);
const contexts = fc.record({
  serviceId: serviceIds,
  userId: userIds,
  category: categories,
  version: fc.oneof(fc.integer({ min: 1, max: MAX_VERSION }), fc.constantFrom(1, 255, 256, 65536, MAX_VERSION)),
});
const keys = fc.uint8Array({ minLength: 32, maxLength: 32 });

void describe('derivationInfo: byte layout (DESIGN.md section 2)', () => {
  void it('matches the layout written out by hand for one context', () => {
    const context = { serviceId: 'playlist', userId: 'u-1', category: 'profile', version: 0x01020304 };
    const expected = [
      '7061646c6f636b2f76312f646572697665', // "padlock/v1/derive"
      '0008' + '706c61796c697374', // lp("playlist")
      '0007' + '70726f66696c65', // lp("profile")
      '01020304', // u32(0x01020304), big-endian
      '0003' + '752d31', // lp("u-1")
    ].join('');
    assert.equal(derivationInfo(context).toString('hex'), expected);
    assert.equal(DERIVE_LABEL, 'padlock/v1/derive');
  });

  const utf8Cases = [
    { name: 'two-byte character', userId: 'é', bytes: 'c3a9' },
    { name: 'three-byte character', userId: '€', bytes: 'e282ac' },
    { name: 'four-byte character (two UTF-16 units)', userId: '😀', bytes: 'f09f9880' },
  ];
  for (const { name, userId, bytes } of utf8Cases) {
    void it(`frames a ${name} by its UTF-8 length, not its UTF-16 length`, () => {
      const info = derivationInfo({ serviceId: 'ab', userId, category: 'c', version: 1 });
      const lp = (bytes.length / 2).toString(16).padStart(4, '0') + bytes;
      assert.ok(info.toString('hex').endsWith(lp));
      assert.deepEqual(info, referenceInfo({ serviceId: 'ab', userId, category: 'c', version: 1 }));
    });
  }

  void it('stays within the 1024-byte info limit of hkdfSync for the longest valid ids', () => {
    const longest = { serviceId: 's'.repeat(64), userId: 'u'.repeat(128), category: 'c'.repeat(32), version: 1 };
    assert.ok(isServiceId(longest.serviceId) && isUserId(longest.userId) && isCategory(longest.category));
    assert.equal(derivationInfo(longest).length, 17 + 2 + 64 + 2 + 32 + 4 + 2 + 128);
  });
});

void describe('deriveKey: differential against hkdfSync with independent framing', () => {
  void it('the generators produce ids of the grammar (so the next test covers valid contexts)', () => {
    fc.assert(
      fc.property(contexts, (context) => {
        assert.ok(isServiceId(context.serviceId), context.serviceId);
        assert.ok(isUserId(context.userId), context.userId);
        assert.ok(isCategory(context.category), context.category);
      }),
      { numRuns: 1000 },
    );
  });

  void it('matches on 3000 random contexts and keys', () => {
    fc.assert(
      fc.property(keys, keys, contexts, (root, service, context) => {
        assert.deepEqual(derivationInfo(context), referenceInfo(context));
        const derived = deriveKey(SecretBytes.copyOf(root), SecretBytes.copyOf(service), context);
        assert.deepEqual(derived.expose(), referenceDerive(root, service, context));
      }),
      { numRuns: 3000 },
    );
  });

  void it('matches at every length of each id', () => {
    const root = Buffer.alloc(32, 0x11);
    const service = Buffer.alloc(32, 0x22);
    const check = (context: DerivationContext): void => {
      const derived = deriveKey(SecretBytes.copyOf(root), SecretBytes.copyOf(service), context);
      assert.deepEqual(derived.expose(), referenceDerive(root, service, context), JSON.stringify(context));
    };
    for (let n = 1; n <= 128; n++) check({ serviceId: 'svc', userId: 'u'.repeat(n), category: 'c', version: 1 });
    for (let n = 1; n <= 32; n++) check({ serviceId: 'svc', userId: 'u', category: 'c'.repeat(n), version: 1 });
    for (let n = 2; n <= 64; n++) check({ serviceId: 's'.repeat(n), userId: 'u', category: 'c', version: 1 });
  });

  void it('leaves the root key and service key intact', () => {
    const root = SecretBytes.copyOf(Buffer.alloc(32, 0x33));
    const service = SecretBytes.copyOf(Buffer.alloc(32, 0x44));
    const context = { serviceId: 'svc', userId: 'u1', category: 'profile', version: 1 };
    const first = deriveKey(root, service, context);
    assert.deepEqual(root.expose(), Buffer.alloc(32, 0x33));
    assert.deepEqual(service.expose(), Buffer.alloc(32, 0x44));
    assert.ok(deriveKey(root, service, context).equals(first));
    assert.equal(first.length, 32);
  });
});

void describe('deriveKey: separation', () => {
  const root = SecretBytes.copyOf(Buffer.alloc(32, 0x55));
  const service = SecretBytes.copyOf(Buffer.alloc(32, 0x66));
  const base = { serviceId: 'playlist', userId: 'user-1', category: 'profile', version: 1 };

  void it('gives different keys when any one field changes, and when fields shift across a boundary', () => {
    const variants: [string, DerivationContext][] = [
      ['base', base],
      ['other service', { ...base, serviceId: 'billing' }],
      ['other user', { ...base, userId: 'user-2' }],
      ['other category', { ...base, category: 'payments' }],
      ['other version', { ...base, version: 2 }],
      ['version 256 (byte order)', { ...base, version: 256 }],
      ['service/category split 1', { ...base, serviceId: 'ab', category: 'cd' }],
      ['service/category split 2', { ...base, serviceId: 'abc', category: 'd' }],
      ['user id prefix', { ...base, userId: 'user-' }],
    ];
    const seen = new Map<string, string>();
    for (const [name, context] of variants) {
      const key = deriveKey(root, service, context).expose().toString('hex');
      assert.equal(seen.get(key), undefined, `${name} collides with ${seen.get(key)}`);
      seen.set(key, name);
    }
  });

  void it('gives different keys for a different root key or service derivation key', () => {
    const reference = deriveKey(root, service, base);
    assert.ok(!deriveKey(SecretBytes.copyOf(Buffer.alloc(32, 0x56)), service, base).equals(reference));
    assert.ok(!deriveKey(root, SecretBytes.copyOf(Buffer.alloc(32, 0x67)), base).equals(reference));
    assert.ok(!deriveKey(service, root, base).equals(reference));
  });

  void it('gives pairwise different keys for random distinct contexts (property)', () => {
    fc.assert(
      fc.property(contexts, contexts, (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        assert.ok(!deriveKey(root, service, a).equals(deriveKey(root, service, b)));
      }),
      { numRuns: 500 },
    );
  });
});
