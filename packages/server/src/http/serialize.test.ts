import { SecretBytes } from '@padlock/core';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CategoryStatus, DerivedKeychain } from '../keys.js';
import { base64urlLength, keychainJson, renderedBody, renderKeys, writeBase64url } from './serialize.js';

/* The rendered answer must be byte for byte what JSON.stringify makes of the same keychain. */

describe('writeBase64url', () => {
  it('matches Buffer base64url for every length from 0 to 200 bytes', () => {
    for (let n = 0; n <= 200; n++) {
      const bytes = randomBytes(n);
      const out = Buffer.alloc(base64urlLength(n) + 4, 0x2e);
      const end = writeBase64url(bytes, out, 2);
      assert.equal(end, 2 + base64urlLength(n));
      assert.equal(out.toString('latin1', 2, end), bytes.toString('base64url'), `length ${n}`);
      assert.equal(out.toString('latin1', 0, 2) + out.toString('latin1', end), '....', 'wrote outside its range');
    }
  });
});

const status = fc.constantFrom<CategoryStatus>('ok', 'shredded', 'not_found');
const category = fc.stringMatching(/^[a-z][a-z0-9_-]{0,31}$/);
const derivedKeychain: fc.Arbitrary<DerivedKeychain> = fc
  .record({
    userId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$/),
    status,
    maxAgeSeconds: fc.nat({ max: 100000 }),
    categories: fc.array(
      fc.record({
        category,
        status,
        versions: fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 31 }), { minLength: 1, maxLength: 4 }),
      }),
      { maxLength: 6 },
    ),
  })
  .map((d) => ({
    userId: d.userId,
    status: d.status,
    maxAgeSeconds: d.maxAgeSeconds,
    categories: d.categories.map((c) => ({
      category: c.category,
      status: c.status,
      keys: c.status === 'ok' ? c.versions.map((version) => ({ version, key: SecretBytes.random(32) })) : [],
    })),
  }));

describe('renderKeys', () => {
  it('renders exactly JSON.stringify(keychainJson(derived)), with maxAgeSeconds filled in later', () => {
    fc.assert(
      fc.property(derivedKeychain, fc.nat({ max: 1e9 }), (derived, age) => {
        const rendered = renderKeys(derived);
        assert.equal(rendered.status, derived.status);
        const expected = JSON.stringify(keychainJson({ ...derived, maxAgeSeconds: age }));
        assert.equal(renderedBody(rendered, age).toString('latin1'), expected);
      }),
      { numRuns: 2000 },
    );
  });
});
