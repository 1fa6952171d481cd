import { SecretBytes } from '@padlock/core';
import { hash } from 'node:crypto';
import { envelopeAad, sealEnvelopeWithNonce } from '../envelope.js';

/*
 * The envelope test vectors (packages/client/vectors/envelope.json,
 * docs/spec.md "Envelope (client SDK)"). Every input is SHA-256 of a fixed
 * label, so building them twice gives the same bytes.
 */

export interface EnvelopeVector {
  readonly name: string;
  readonly userId: string;
  readonly category: string;
  readonly version: number;
  readonly key: string;
  readonly nonce: string;
  readonly plaintext: string;
  readonly header: string;
  readonly aad: string;
  readonly envelope: string;
}

export interface InvalidEnvelopeVector {
  readonly name: string;
  readonly userId: string;
  /** Every key the decrypting side holds for this user. */
  readonly keys: readonly { readonly category: string; readonly version: number; readonly key: string }[];
  readonly envelope: string;
}

export interface EnvelopeVectorFile {
  readonly description: string;
  readonly vectors: readonly EnvelopeVector[];
  readonly invalid: readonly InvalidEnvelopeVector[];
}

/** `length` deterministic bytes named by `label`. */
function bytesFor(label: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let block = 0; block * 32 < length; block++) {
    hash('sha256', `padlock envelope vector/${label}/${block}`, 'buffer').copy(out, block * 32);
  }
  return out;
}

interface Case {
  readonly name: string;
  readonly userId: string;
  readonly category: string;
  readonly version: number;
  readonly plaintext: Buffer;
  /** Label of the key and nonce; cases sharing one use the same key and nonce. */
  readonly keyLabel?: string;
}

const LONGEST_USER_ID = ('User.' + 'abcdefghijklmnopqrstuvwxyz.:@+=-' + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')
  .repeat(2)
  .slice(0, 128);
const LONGEST_CATEGORY = 'c' + 'abcdefghijklmnopqrstuvwxyz_-0123456789'.slice(0, 31);

const CASES: readonly Case[] = [
  { name: 'empty plaintext', userId: 'user-1', category: 'profile', version: 1, plaintext: Buffer.alloc(0) },
  {
    name: 'short text',
    userId: 'user-1',
    category: 'profile',
    version: 1,
    plaintext: Buffer.from('hello, padlock'),
    keyLabel: 'shared',
  },
  {
    name: 'same key and nonce, another user',
    userId: 'user-2',
    category: 'profile',
    version: 1,
    plaintext: Buffer.from('hello, padlock'),
    keyLabel: 'shared',
  },
  {
    name: 'unicode text',
    userId: 'alice@example.com',
    category: 'payments',
    version: 1,
    plaintext: Buffer.from('Grüße, 世界 👋', 'utf8'),
  },
  {
    name: 'binary, 100 bytes',
    userId: 'user-1',
    category: 'advertising',
    version: 1,
    plaintext: bytesFor('binary', 100),
  },
  { name: 'key version 2', userId: 'user-1', category: 'profile', version: 2, plaintext: Buffer.from('rotated') },
  {
    name: 'largest key version',
    userId: 'user-1',
    category: 'profile',
    version: 0x7fffffff,
    plaintext: Buffer.from('max'),
  },
  { name: 'shortest ids', userId: '0', category: 'a', version: 1, plaintext: Buffer.from('x') },
  {
    name: 'longest ids',
    userId: LONGEST_USER_ID,
    category: LONGEST_CATEGORY,
    version: 1,
    plaintext: Buffer.from('long ids'),
  },
  { name: '1000 bytes', userId: 'user-3', category: 'profile', version: 3, plaintext: bytesFor('kilobyte', 1000) },
];

function buildVector(c: Case): EnvelopeVector {
  const label = c.keyLabel ?? c.name;
  const key = bytesFor(`${label}/key`, 32);
  const nonce = bytesFor(`${label}/nonce`, 12);
  const envelope = sealEnvelopeWithNonce(
    SecretBytes.copyOf(key),
    c.userId,
    { category: c.category, version: c.version },
    c.plaintext,
    nonce,
  );
  const header = envelope.subarray(0, 2 + c.category.length + 4);
  return {
    name: c.name,
    userId: c.userId,
    category: c.category,
    version: c.version,
    key: key.toString('hex'),
    nonce: nonce.toString('hex'),
    plaintext: c.plaintext.toString('hex'),
    header: header.toString('hex'),
    aad: envelopeAad(header, c.userId).toString('hex'),
    envelope: envelope.toString('hex'),
  };
}

/** Mutations of the "short text" envelope (profile, version 1, user-1); each must fail to decrypt. */
function buildInvalid(base: EnvelopeVector): InvalidEnvelopeVector[] {
  const good = Buffer.from(base.envelope, 'hex');
  const own = [{ category: base.category, version: base.version, key: base.key }];
  const edit = (change: (bytes: Buffer) => Buffer): string => change(Buffer.from(good)).toString('hex');
  const flip = (index: number) => (bytes: Buffer) => {
    const i = index < 0 ? bytes.length + index : index;
    bytes[i] = (bytes[i] ?? 0) ^ 0x01;
    return bytes;
  };
  // 'profile' -> 'payments' changes the length byte and the bytes after it: rebuild the header instead.
  const relabel = (category: string, version: number): string => {
    const header = Buffer.alloc(2 + category.length + 4);
    header[0] = 0x01;
    header[1] = category.length;
    header.write(category, 2, 'latin1');
    header.writeUInt32BE(version, 2 + category.length);
    return Buffer.concat([header, good.subarray(2 + base.category.length + 4)]).toString('hex');
  };
  return [
    { name: 'last tag byte changed', userId: base.userId, keys: own, envelope: edit(flip(-1)) },
    { name: 'first ciphertext byte changed', userId: base.userId, keys: own, envelope: edit(flip(2 + 7 + 4 + 12)) },
    { name: 'nonce byte changed', userId: base.userId, keys: own, envelope: edit(flip(2 + 7 + 4)) },
    {
      name: 'tag truncated to 12 bytes',
      userId: base.userId,
      keys: own,
      envelope: good.subarray(0, -4).toString('hex'),
    },
    { name: 'last byte removed', userId: base.userId, keys: own, envelope: good.subarray(0, -1).toString('hex') },
    {
      name: 'one byte appended',
      userId: base.userId,
      keys: own,
      envelope: Buffer.concat([good, Buffer.from([0])]).toString('hex'),
    },
    {
      name: 'format byte 0x02',
      userId: base.userId,
      keys: own,
      envelope: edit((b) => {
        b[0] = 0x02;
        return b;
      }),
    },
    {
      name: 'category length 0',
      userId: base.userId,
      keys: own,
      envelope: edit((b) => {
        b[1] = 0;
        return b;
      }),
    },
    { name: 'header only', userId: base.userId, keys: own, envelope: good.subarray(0, 13).toString('hex') },
    { name: 'empty', userId: base.userId, keys: own, envelope: '' },
    { name: 'moved to another user holding the same key', userId: 'user-2', keys: own, envelope: base.envelope },
    {
      name: 'relabelled to another category with the same key',
      userId: base.userId,
      keys: [...own, { category: 'payments', version: 1, key: base.key }],
      envelope: relabel('payments', 1),
    },
    {
      name: 'relabelled to another version with the same key',
      userId: base.userId,
      keys: [...own, { category: base.category, version: 2, key: base.key }],
      envelope: relabel(base.category, 2),
    },
    { name: 'unknown key version', userId: base.userId, keys: own, envelope: relabel(base.category, 9) },
    {
      name: 'version 0',
      userId: base.userId,
      keys: [...own, { category: base.category, version: 0, key: base.key }],
      envelope: relabel(base.category, 0),
    },
  ];
}

export function envelopeVectors(): EnvelopeVectorFile {
  const vectors = CASES.map(buildVector);
  const base = vectors.find((v) => v.name === 'short text');
  if (base === undefined) throw new Error('the "short text" case is missing');
  return {
    description:
      'Padlock envelopes (docs/spec.md, "Envelope (client SDK)"): header = u8(1) || u8(len(category)) || category || ' +
      'u32(version); envelope = header || nonce(12) || AES-256-GCM ciphertext || tag(16) under key, with ' +
      'AAD = header || lp(userId). Byte strings are hex. "invalid" envelopes must fail to decrypt for userId holding ' +
      'exactly keys. Generated by packages/client/src/vectors/generate.ts.',
    vectors,
    invalid: buildInvalid(base),
  };
}
