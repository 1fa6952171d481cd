import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { frame } from './encoding.js';

void describe('frame: lp() and u32() fields', () => {
  const cases: { name: string; label: string; parts: (string | number)[]; hex: string }[] = [
    { name: 'label alone', label: 'L', parts: [], hex: '4c' },
    { name: 'empty label, empty string', label: '', parts: [''], hex: '0000' },
    { name: 'ASCII string', label: '', parts: ['ab'], hex: '0002' + '6162' },
    { name: 'UTF-8 string counts bytes', label: '', parts: ['é'], hex: '0002' + 'c3a9' },
    { name: 'u32 zero', label: '', parts: [0], hex: '00000000' },
    { name: 'u32 big-endian', label: '', parts: [0x01020304], hex: '01020304' },
    { name: 'u32 maximum', label: '', parts: [0xffffffff], hex: 'ffffffff' },
    { name: 'mixed, in order', label: 'x', parts: ['a', 7, 'bc'], hex: '78' + '000161' + '00000007' + '00026263' },
    { name: '256-byte string', label: '', parts: ['z'.repeat(256)], hex: '0100' + '7a'.repeat(256) },
    { name: '65535-byte string', label: '', parts: ['z'.repeat(65535)], hex: 'ffff' + '7a'.repeat(65535) },
  ];
  for (const { name, label, parts, hex } of cases) {
    void it(name, () => assert.equal(frame(label, parts).toString('hex'), hex));
  }

  const rejected: { name: string; part: string | number }[] = [
    { name: 'negative u32', part: -1 },
    { name: 'u32 above 2^32-1', part: 2 ** 32 },
    { name: 'fractional u32', part: 1.5 },
    { name: 'NaN u32', part: Number.NaN },
    { name: 'string of 65536 bytes', part: 'z'.repeat(65536) },
    { name: 'string of 65536 UTF-8 bytes from 32768 characters', part: 'é'.repeat(32768) },
  ];
  for (const { name, part } of rejected) {
    void it(`rejects ${name}`, () => assert.throws(() => frame('x', [part]), RangeError));
  }
});

/** Parses a frame back, given the label and the kinds of its fields. */
function parseFrame(bytes: Buffer, label: string, kinds: readonly ('lp' | 'u32')[]): (string | number)[] {
  assert.equal(bytes.subarray(0, label.length).toString('latin1'), label);
  let offset = label.length;
  const parts: (string | number)[] = [];
  for (const kind of kinds) {
    if (kind === 'u32') {
      parts.push(bytes.readUInt32BE(offset));
      offset += 4;
    } else {
      const length = bytes.readUInt16BE(offset);
      parts.push(bytes.subarray(offset + 2, offset + 2 + length).toString('utf8'));
      offset += 2 + length;
    }
  }
  assert.equal(offset, bytes.length, 'no trailing bytes');
  return parts;
}

void describe('frame: properties', () => {
  const part = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.integer({ min: 0, max: 0xffffffff }));

  void it('parses back to its parts (the framing is unambiguous)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme-ascii', maxLength: 20 }),
        fc.array(part, { maxLength: 8 }),
        (label, parts) => {
          const kinds = parts.map((p) => (typeof p === 'number' ? 'u32' : 'lp'));
          assert.deepEqual(parseFrame(frame(label, parts), label, kinds), parts);
        },
      ),
      { numRuns: 2000 },
    );
  });

  void it('different string parts of the same shape give different frames', () => {
    const pairs = fc
      .integer({ min: 1, max: 4 })
      .chain((n) =>
        fc.tuple(
          fc.array(fc.string({ unit: 'grapheme', maxLength: 6 }), { minLength: n, maxLength: n }),
          fc.array(fc.string({ unit: 'grapheme', maxLength: 6 }), { minLength: n, maxLength: n }),
        ),
      );
    fc.assert(
      fc.property(pairs, ([a, b]) => {
        fc.pre(a.some((value, i) => value !== b[i]));
        assert.ok(!frame('L', a).equals(frame('L', b)));
      }),
      { numRuns: 2000 },
    );
  });
});
