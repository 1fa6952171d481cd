import { kekRing, SecretBytes } from '@padlock/core';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { encodeRow, macRow, ROW_MAC_LABEL, rowMacKid, verifyRowMac, type MacField } from './row-mac.js';
import { vectorFields, type RowMacVector } from './vectors/generate.js';

const file = new URL('../vectors/row-mac.json', import.meta.url);
const { vectors } = JSON.parse(readFileSync(file, 'utf8')) as { vectors: RowMacVector[] };
const hex = (text: string): Buffer => Buffer.from(text, 'hex');

/** A second encoder, written from docs/spec.md alone, for the differential checks. */
function specEncode(field: MacField): Buffer {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  if (field === null) return Buffer.from([0]);
  if (typeof field === 'boolean') return Buffer.from([1, field ? 1 : 0]);
  if (typeof field === 'number') {
    const b = Buffer.alloc(9);
    b[0] = 2;
    b.writeBigUInt64BE(BigInt(field), 1);
    return b;
  }
  if (typeof field === 'string')
    return Buffer.concat([Buffer.from([3]), u32(Buffer.byteLength(field)), Buffer.from(field)]);
  if (field instanceof Uint8Array) return Buffer.concat([Buffer.from([4]), u32(field.length), field]);
  return Buffer.concat([Buffer.from([5]), u32(field.length), ...field.map(specEncode)]);
}

describe('row MAC vectors (packages/server/vectors/row-mac.json)', () => {
  it('holds service, credential, hold and schedule rows in their states', () => {
    assert.ok(vectors.some((v) => v.row.kind === 'service'));
    assert.ok(vectors.some((v) => v.row.kind === 'credential' && v.row.revokedAt === null));
    assert.ok(vectors.some((v) => v.row.kind === 'credential' && v.row.revokedAt !== null));
    assert.ok(vectors.some((v) => v.row.kind === 'service' && v.row.hold === true));
    assert.ok(vectors.some((v) => v.row.kind === 'hold' && v.row.releasedAt === null));
    assert.ok(vectors.some((v) => v.row.kind === 'hold' && v.row.releasedAt !== null));
    assert.ok(vectors.some((v) => v.row.kind === 'schedule' && v.row.state === 'pending'));
    assert.ok(vectors.some((v) => v.row.kind === 'schedule' && v.row.state === 'executed'));
  });

  for (const v of vectors) {
    it(`${v.name}: the code and node:crypto reproduce key, message and MAC`, () => {
      const fields = vectorFields(v.row);
      const message = encodeRow(fields);
      assert.equal(message.toString('hex'), v.message);
      assert.equal(
        Buffer.concat([Buffer.from(ROW_MAC_LABEL), specEncode(fields)]).toString('hex'),
        v.message,
        'the spec encoder',
      );
      const macKey = Buffer.from(hkdfSync('sha256', hex(v.kek), Buffer.alloc(0), ROW_MAC_LABEL, 32));
      assert.equal(macKey.toString('hex'), v.macKey);
      const tag = createHmac('sha256', macKey).update(hex(v.message)).digest();
      const kid = Buffer.from(v.kid);
      assert.equal(Buffer.concat([Buffer.from([1, kid.length]), kid, tag]).toString('hex'), v.mac);
      const kek = { kid: v.kid, key: SecretBytes.copyOf(hex(v.kek)) };
      assert.equal(macRow(kek, fields).toString('hex'), v.mac);
      assert.equal(verifyRowMac(kekRing([kek], v.kid), fields, hex(v.mac)), 'ok');
      assert.equal(rowMacKid(hex(v.mac)), v.kid);
    });
  }
});

describe('verifyRowMac refuses every change', () => {
  const kek = { kid: 'k1', key: SecretBytes.random(32) };
  const other = { kid: 'k2', key: SecretBytes.random(32) };
  const keks = kekRing([kek, other], 'k1');
  const fields: MacField[] = ['credential', 'svc', '0123456789abcdef', Buffer.alloc(32, 9), 1000, null];
  const mac = macRow(kek, fields);

  it('accepts the row as MACed, under any loaded KEK', () => {
    assert.equal(verifyRowMac(keks, fields, mac), 'ok');
    assert.equal(verifyRowMac(keks, fields, macRow(other, fields)), 'ok');
  });

  it('says missing for a row from before MACs (null or empty), bad for an unknown kid', () => {
    assert.equal(verifyRowMac(keks, fields, null), 'missing');
    assert.equal(verifyRowMac(keks, fields, Buffer.alloc(0)), 'missing');
    assert.equal(verifyRowMac(kekRing([other], 'k2'), fields, mac), 'bad');
  });

  it('refuses every single-bit change of the stored MAC, and every truncation or extension', () => {
    for (let i = 0; i < mac.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const edited = Buffer.from(mac);
        edited[i]! ^= 1 << bit;
        assert.equal(verifyRowMac(keks, fields, edited), 'bad', `byte ${i} bit ${bit}`);
      }
    }
    for (let length = 1; length < mac.length; length++) {
      assert.equal(verifyRowMac(keks, fields, mac.subarray(0, length)), 'bad');
    }
    assert.equal(verifyRowMac(keks, fields, Buffer.concat([mac, Buffer.from([0])])), 'bad');
  });

  it("refuses a MAC relabelled with the other KEK's kid", () => {
    const relabelled = Buffer.from(mac);
    relabelled.write('k2', 2, 'latin1');
    assert.equal(verifyRowMac(keks, fields, relabelled), 'bad');
  });

  // prettier-ignore
  const edits: [name: string, edited: MacField[]][] = [
    ['another row kind', ['service', 'svc', '0123456789abcdef', Buffer.alloc(32, 9), 1000, null]],
    ['another service (a copied row)', ['credential', 'svd', '0123456789abcdef', Buffer.alloc(32, 9), 1000, null]],
    ['another credential id', ['credential', 'svc', '0123456789abcdee', Buffer.alloc(32, 9), 1000, null]],
    ['a swapped verifier', ['credential', 'svc', '0123456789abcdef', Buffer.alloc(32, 8), 1000, null]],
    ['another creation time', ['credential', 'svc', '0123456789abcdef', Buffer.alloc(32, 9), 1001, null]],
    ['revoked', ['credential', 'svc', '0123456789abcdef', Buffer.alloc(32, 9), 1000, 0]],
    ['a field moved across a boundary', ['credential', 'sv', 'c0123456789abcdef', Buffer.alloc(32, 9), 1000, null]],
    ['a field dropped', ['credential', 'svc', '0123456789abcdef', Buffer.alloc(32, 9), 1000]],
  ];
  for (const [name, edited] of edits) {
    it(`refuses ${name}`, () => assert.equal(verifyRowMac(keks, edited, mac), 'bad'));
  }
});

describe('encodeRow', () => {
  it('keeps apart fields that a plain concatenation would merge', () => {
    const pairs: [MacField[], MacField[]][] = [
      [
        ['ab', 'c'],
        ['a', 'bc'],
      ],
      [[null], [false]],
      [[0], [false]],
      [[''], [Buffer.alloc(0)]],
      [[[]], [null]],
      [[['a'], ['b']], [['a', 'b']]],
      [[['a', 'b']], ['a', 'b']],
      [['1'], [1]],
    ];
    for (const [a, b] of pairs) assert.notDeepEqual(encodeRow(a), encodeRow(b), JSON.stringify([a, b]));
  });

  it('refuses numbers it cannot encode exactly', () => {
    for (const n of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => encodeRow([n]), /safe integer/, String(n));
    }
  });

  it('is injective on generated rows (fast-check) and matches the spec encoder', () => {
    const { field } = fc.letrec<{ field: MacField }>((tie) => ({
      field: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constant(null),
        fc.boolean(),
        fc.nat({ max: 2 ** 40 }),
        fc.string({ maxLength: 6 }),
        fc.uint8Array({ maxLength: 6 }),
        fc.array(tie('field'), { maxLength: 4 }),
      ),
    }));
    const row = fc.array(field, { maxLength: 5 });
    fc.assert(
      fc.property(row, row, (a, b) => {
        const ea = encodeRow(a);
        assert.deepEqual(ea.subarray(ROW_MAC_LABEL.length), specEncode(a));
        const same = ea.equals(encodeRow(b));
        const equal = JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
        assert.equal(same, equal);
      }),
      { numRuns: 2000 },
    );
  });
});

/** A JSON form that tells every field type apart, so equal forms mean equal rows. */
function normalize(field: MacField): unknown {
  if (field instanceof Uint8Array) return { bytes: Buffer.from(field).toString('hex') };
  if (Array.isArray(field)) return { list: (field as readonly MacField[]).map(normalize) };
  return { [typeof field]: field };
}
