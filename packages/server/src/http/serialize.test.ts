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
  it('renders JSON.stringify(keychainJson(derived)), with maxAgeSeconds written right-aligned in its slot', () => {
    fc.assert(
      fc.property(derivedKeychain, fc.integer({ min: 1, max: 6 }), fc.nat(), (derived, width, seed) => {
        const age = seed % 10 ** width;
        const rendered = renderKeys(derived, width);
        assert.equal(rendered.status, derived.status);
        const body = renderedBody(rendered, age).toString('latin1');
        const expected = JSON.stringify(keychainJson({ ...derived, maxAgeSeconds: age }));
        // Only the slot's leading spaces differ from JSON.stringify, and JSON allows them.
        const padding = ' '.repeat(width - String(age).length);
        assert.equal(body, expected.replace('"maxAgeSeconds":', `"maxAgeSeconds":${padding}`));
        assert.deepEqual(JSON.parse(body), JSON.parse(expected));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a maxAgeSeconds wider than its slot instead of writing outside it', () => {
    const rendered = renderKeys(
      { userId: 'u', status: 'ok', maxAgeSeconds: 0, categories: [{ category: 'c', status: 'shredded', keys: [] }] },
      2,
    );
    assert.equal(
      renderedBody(rendered, 99).toString('latin1'),
      '{"userId":"u","status":"ok","maxAgeSeconds":99,"categories":[{"category":"c","status":"shredded"}]}',
    );
    assert.throws(() => renderedBody(rendered, 100), /does not fit/);
  });
});
