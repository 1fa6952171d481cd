import { SecretBytes } from '@padlock/core';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { internRenderedId, Keychain, RENDERED_PER_KEYCHAIN, type RenderedKeys } from './keychain.js';

/* The packed keychain must give back exactly what it was packed from, and keep rendered answers intact. */

type Model = Map<string, { version: number; key: Buffer | null }[]>;

const model: fc.Arbitrary<Model> = fc
  .uniqueArray(
    fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9_-]{0,31}$/),
      versions: fc.uniqueArray(fc.record({ version: fc.integer({ min: 1, max: 2 ** 32 - 1 }), live: fc.boolean() }), {
        selector: (v) => v.version,
        maxLength: 5,
      }),
    }),
    { selector: (c) => c.name, maxLength: 8 },
  )
  .map(
    (categories) =>
      new Map(
        categories.map((c) => [
          c.name,
          c.versions.map((v) => ({ version: v.version, key: v.live ? randomBytes(32) : null })),
        ]),
      ),
  );

function pack(userId: string, readAt: number, m: Model): Keychain {
  const input = new Map(
    [...m].map(([name, versions]) => [
      name,
      versions.map((v) => ({ version: v.version, rootKey: v.key === null ? null : SecretBytes.copyOf(v.key) })),
    ]),
  );
  return Keychain.pack(userId, readAt, input);
}

function rendered(text: string, status: RenderedKeys['status'] = 'ok'): RenderedKeys {
  // Some bytes before and after, to check that start and length are honoured.
  const bytes = Buffer.from(`<<${text}>>`, 'latin1');
  return { status, bytes, start: 2, length: text.length, slot: 1, width: 3 };
}

function text(r: RenderedKeys | undefined): string | undefined {
  return r === undefined ? undefined : r.bytes.toString('latin1', r.start, r.start + r.length);
}

describe('Keychain', () => {
  it('gives back every live root key by category, oldest version first, and tells shredded from absent', () => {
    fc.assert(
      fc.property(model, fc.stringMatching(/^[a-z][a-z0-9_-]{0,31}$/), (m, other) => {
        const keychain = pack('u-1', 1234, m);
        assert.equal(keychain.userId, 'u-1');
        assert.equal(keychain.readAt, 1234);
        assert.deepEqual(keychain.categoryNames, [...m.keys()]);
        for (const [name, versions] of m) {
          const live = versions.filter((v) => v.key !== null).sort((a, b) => a.version - b.version);
          const got = keychain.versions(name);
          assert.ok(got !== undefined, `category ${name} missing`);
          assert.deepEqual(
            got.map((v) => [v.version, v.rootKey.expose().toString('hex')]),
            live.map((v) => [v.version, v.key!.toString('hex')]),
          );
        }
        if (!m.has(other)) assert.equal(keychain.versions(other), undefined);
      }),
      { numRuns: 500 },
    );
  });

  it('hands out copies of root keys: wiping one leaves the keychain intact', () => {
    const key = randomBytes(32);
    const keychain = pack('u', 0, new Map([['profile', [{ version: 1, key }]]]));
    keychain.versions('profile')![0]!.rootKey.wipe();
    assert.deepEqual(keychain.versions('profile')![0]!.rootKey.expose(), key);
  });

  it('keeps rendered answers by id, at most RENDERED_PER_KEYCHAIN, dropping the oldest', () => {
    const key = randomBytes(32);
    const keychain = pack('u', 0, new Map([['profile', [{ version: 7, key }]]]));
    const ids = Array.from({ length: RENDERED_PER_KEYCHAIN + 2 }, (_, i) => internRenderedId(`test-svc-${i}\nprofile`));
    assert.equal(keychain.rendered(ids[0]!), undefined);
    const first = keychain.keepRendered(ids[0]!, rendered('{"a": 1}', 'shredded'));
    assert.equal(text(first), '{"a": 1}');
    assert.deepEqual([first.status, first.slot, first.width], ['shredded', 1, 3]);
    for (let i = 1; i < ids.length; i++) {
      keychain.keepRendered(ids[i]!, rendered(`answer ${i}`));
      // A view handed out earlier stays readable after the keychain grew.
      assert.equal(text(first), '{"a": 1}');
    }
    const kept = ids.map((id) => text(keychain.rendered(id)));
    assert.deepEqual(kept, [undefined, undefined, 'answer 2', 'answer 3', 'answer 4', 'answer 5']);
    assert.equal(keychain.rendered(ids[5]!)?.status, 'ok');
    // The root keys are untouched by the answers around them.
    assert.deepEqual(keychain.versions('profile')![0]!.rootKey.expose(), key);
    assert.deepEqual(keychain.versions('profile')![0]!.version, 7);
  });

  it('numbers each rendered-answer id once', () => {
    const a = internRenderedId('test-intern\nprofile');
    assert.ok(a >= 0);
    assert.equal(internRenderedId('test-intern\nprofile'), a);
    assert.notEqual(internRenderedId('test-intern\nemail'), a);
  });

  it('prints no key bytes', () => {
    const key = randomBytes(32);
    const keychain = pack('u-9', 0, new Map([['profile', [{ version: 1, key }]]]));
    for (const shown of [String(keychain), JSON.stringify({ keychain }), inspect(keychain, { showHidden: true })]) {
      assert.ok(shown.includes('u-9'), shown);
      for (const form of [key.toString('hex'), key.toString('base64'), key.toString('base64url')]) {
        assert.ok(!shown.includes(form), shown);
      }
    }
  });
});
