import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchSegments } from './server.js';

/** The plain way to match, which matchSegments replaces: split the path, compare segment by segment. */
function reference(segments: readonly string[], path: string): string[] | undefined {
  const actual = path.split('/').slice(1);
  if (actual.length !== segments.length) return undefined;
  const params: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    if (segments[i]!.startsWith('{')) params.push(actual[i]!);
    else if (segments[i] !== actual[i]) return undefined;
  }
  return params;
}

function matched(segments: readonly string[], path: string): string[] | undefined {
  const captures: number[] = [];
  if (!matchSegments(segments, path, captures)) return undefined;
  const params: string[] = [];
  for (let i = 0; i < captures.length; i += 2) params.push(path.slice(captures[i], captures[i + 1]));
  return params;
}

// Few distinct pieces, so that paths often match templates, or nearly do.
const piece = fc.constantFrom('', 'v1', 'keys', 'k', 'keysx', '%41', 'batch-get', 'a.b');
const templateSegment = fc.oneof(piece, fc.constant('{id}'));

describe('route matching', () => {
  it('matches and captures exactly as splitting the path would', () => {
    fc.assert(
      fc.property(
        fc.array(templateSegment, { minLength: 1, maxLength: 5 }),
        fc.array(piece, { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        (segments, pieces, fromTemplate) => {
          // Half the paths are built from the template itself, so that matches are common.
          const parts = fromTemplate
            ? segments.map((s, i) => (s.startsWith('{') ? pieces[i % pieces.length]! : s))
            : pieces;
          const path = `/${parts.join('/')}`;
          assert.deepEqual(matched(segments, path), reference(segments, path), `${segments.join('/')} vs ${path}`);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('matches the routes Padlock serves', () => {
    const keys = ['v1', 'keys', '{userId}'];
    assert.deepEqual(matched(keys, '/v1/keys/u1'), ['u1']);
    assert.deepEqual(matched(keys, '/v1/keys/'), ['']);
    assert.equal(matched(keys, '/v1/keys'), undefined);
    assert.equal(matched(keys, '/v1/keys/u1/'), undefined);
    assert.equal(matched(keys, '/v1/keysx/u1'), undefined);
    const rotate = ['v1', 'keychains', '{userId}', 'categories', '{category}', 'rotate'];
    assert.deepEqual(matched(rotate, '/v1/keychains/a/categories/b/rotate'), ['a', 'b']);
  });
});
