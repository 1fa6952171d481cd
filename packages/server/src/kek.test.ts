import { SecretBytes } from '@padlock/core';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, describe, it } from 'node:test';
import { ConfigError } from './config.js';
import { loadKek } from './kek.js';

const dir = mkdtempSync(join(tmpdir(), 'padlock-kek-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kekFile(name: string, bytes: Buffer, mode: number): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  chmodSync(path, mode);
  return path;
}

describe('loadKek', () => {
  it('loads exactly 32 bytes from an owner-only file (0600 and 0400), and never prints them', () => {
    const bytes = randomBytes(32);
    for (const mode of [0o600, 0o400]) {
      const kek = loadKek('k1', kekFile(`ok-${mode.toString(8)}`, bytes, mode));
      assert.equal(kek.kid, 'k1');
      assert.ok(kek.key.equals(SecretBytes.copyOf(bytes)), 'the key is the file');
      const shown = `${inspect(kek)} ${JSON.stringify(kek)} ${String(kek.key)}`;
      assert.ok(!shown.includes(bytes.toString('hex')) && !shown.includes(bytes.toString('base64')));
    }
  });

  const refused: [string, () => string, RegExp][] = [
    [
      'readable by the group',
      () => kekFile('group', randomBytes(32), 0o640),
      /accessible by group or others \(mode 640\)/,
    ],
    [
      'readable by others',
      () => kekFile('others', randomBytes(32), 0o604),
      /accessible by group or others \(mode 604\)/,
    ],
    ['31 bytes', () => kekFile('short', randomBytes(31), 0o600), /must hold exactly 32 bytes/],
    ['33 bytes', () => kekFile('long', randomBytes(33), 0o600), /must hold exactly 32 bytes/],
    ['empty', () => kekFile('empty', Buffer.alloc(0), 0o600), /must hold exactly 32 bytes/],
    [
      'a 64-character hex text instead of raw bytes',
      () => kekFile('hex', Buffer.from(randomBytes(32).toString('hex')), 0o600),
      /must hold exactly 32 bytes/,
    ],
    ['missing', () => join(dir, 'nothing-here'), /cannot open KEK file for kid "k1" at .*: ENOENT/],
    [
      'a symlink to a group-readable file (checked through the opened descriptor)',
      () => {
        const target = kekFile('target', randomBytes(32), 0o644);
        const link = join(dir, 'link');
        symlinkSync(target, link);
        return link;
      },
      /accessible by group or others \(mode 644\)/,
    ],
  ];
  for (const [name, make, message] of refused) {
    it(`refuses a KEK file that is ${name}, with a ConfigError naming the kid and path`, () => {
      const path = make();
      assert.throws(
        () => loadKek('k1', path),
        (error: unknown) => error instanceof ConfigError && message.test(error.message) && error.message.includes(path),
      );
    });
  }
});
