import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_VERSION, isCategory, isServiceId, isTlsIdentity, isUserId, isVersion } from './ids.js';

type Case = [name: string, value: unknown];

const notStrings: Case[] = [
  ['a number', 42],
  ['null', null],
  ['undefined', undefined],
  ['an array holding a valid id', ['abc']],
  ['a String object', new String('abc')],
];

const grammars: {
  name: string;
  check: (value: unknown) => boolean;
  valid: Case[];
  invalid: Case[];
}[] = [
  {
    name: 'user id: 1-128 of [A-Za-z0-9._:@+=-], first a letter or digit',
    check: isUserId,
    valid: [
      ['one letter', 'u'],
      ['one digit', '7'],
      ['upper case', 'User42'],
      ['every punctuation character', 'a._:@+=-'],
      ['an email address', 'alice+tag@example.com'],
      ['a UUID', '0f8fad5b-d9cb-469f-a165-70867728950e'],
      ['a URN-like id', 'urn:user:123'],
      ['base64 padding', 'YWJj=='],
      ['128 characters', 'u'.repeat(128)],
    ],
    invalid: [
      ['empty', ''],
      ['129 characters', 'u'.repeat(129)],
      ['starting with a dot', '.hidden'],
      ['starting with a dash', '-u'],
      ['starting with @', '@alice'],
      ['a slash', 'a/b'],
      ['a space', 'a b'],
      ['a percent sign', 'a%20b'],
      ['a trailing newline', 'alice\n'],
      ['a NUL byte', 'a\u0000'],
      ['a non-ASCII letter', 'josé'],
      ['a fullwidth digit', '１'],
      ['an emoji', 'a😀'],
      ...notStrings,
    ],
  },
  {
    name: 'category: 1-32 of [a-z0-9_-], first a lower-case letter',
    check: isCategory,
    valid: [
      ['one letter', 'p'],
      ['a word', 'profile'],
      ['underscore and dash', 'ad_targeting-v2'],
      ['32 characters', 'c'.repeat(32)],
    ],
    invalid: [
      ['empty', ''],
      ['33 characters', 'c'.repeat(33)],
      ['upper case', 'Profile'],
      ['starting with a digit', '1profile'],
      ['starting with an underscore', '_profile'],
      ['a dot', 'pro.file'],
      ['a colon', 'a:b'],
      ['a trailing newline', 'profile\n'],
      ['a non-ASCII letter', 'catégorie'],
      ...notStrings,
    ],
  },
  {
    name: 'service id: 2-64 of [a-z0-9-], first a lower-case letter',
    check: isServiceId,
    valid: [
      ['two characters', 'ab'],
      ['a letter and a digit', 'a1'],
      ['with dashes', 'playlist-service'],
      ['trailing dash', 'ab-'],
      ['64 characters', 's'.repeat(64)],
    ],
    invalid: [
      ['empty', ''],
      ['one character', 'a'],
      ['65 characters', 's'.repeat(65)],
      ['upper case', 'Playlist'],
      ['starting with a digit', '1ab'],
      ['starting with a dash', '-ab'],
      ['an underscore', 'play_list'],
      ['a dot', 'play.list'],
      ['a trailing newline', 'playlist\n'],
      ...notStrings,
    ],
  },
  {
    name: 'TLS identity: 1-1024 characters, no control characters, no space at either end',
    check: isTlsIdentity,
    valid: [
      ['a SPIFFE URI SAN', 'spiffe://example.org/ns/a/sa/b'],
      ['a subject with commas and spaces', 'CN=newsletter, O=Example Corp'],
      ['one character', 'x'],
      ['non-ASCII', 'CN=Zürich'],
      ['1024 characters', 'x'.repeat(1024)],
    ],
    invalid: [
      ['empty', ''],
      ['1025 characters', 'x'.repeat(1025)],
      ['a leading space', ' CN=a'],
      ['a trailing space', 'CN=a '],
      ['one space', ' '],
      ['a trailing newline', 'CN=a\n'],
      ['a NUL inside', 'CN=a\u0000O=b'],
      ['DEL', 'CN=a\u007f'],
      ...notStrings,
    ],
  },
  {
    name: 'version: an integer from 1 to 2^31-1',
    check: isVersion,
    valid: [
      ['1', 1],
      ['2', 2],
      ['2^31-1', MAX_VERSION],
      ['1.0 (an integer)', 1.0],
    ],
    invalid: [
      ['0', 0],
      ['-1', -1],
      ['2^31', 2 ** 31],
      ['2^32', 2 ** 32],
      ['1.5', 1.5],
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['a numeric string', '1'],
      ['a bigint', 1n],
      ['null', null],
      ['undefined', undefined],
    ],
  },
];

for (const { name, check, valid, invalid } of grammars) {
  void describe(name, () => {
    for (const [caseName, value] of valid) {
      void it(`accepts ${caseName}`, () => assert.equal(check(value), true));
    }
    for (const [caseName, value] of invalid) {
      void it(`rejects ${caseName}`, () => assert.equal(check(value), false));
    }
  });
}

void describe('MAX_VERSION', () => {
  void it('is 2^31-1, so versions fit u32 and signed 32-bit columns', () => {
    assert.equal(MAX_VERSION, 2 ** 31 - 1);
  });
});
