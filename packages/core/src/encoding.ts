/*
 * The two framings every byte layout in docs/spec.md is built from:
 * lp(x) = 2-byte big-endian length then the UTF-8 bytes, u32(n) = 4-byte
 * big-endian. Length prefixes keep concatenated fields unambiguous.
 */

/** Concatenation of `label` (ASCII), then each part: strings as lp(), numbers as u32(). */
export function frame(label: string, parts: ReadonlyArray<string | number>): Buffer {
  const encoded: Buffer[] = [];
  let total = label.length;
  for (const part of parts) {
    let bytes: Buffer;
    if (typeof part === 'number') {
      if (!Number.isInteger(part) || part < 0 || part > 0xffffffff) {
        throw new RangeError('u32 field out of range');
      }
      bytes = Buffer.allocUnsafe(4);
      bytes.writeUInt32BE(part, 0);
    } else {
      const text = Buffer.from(part, 'utf8');
      if (text.length > 0xffff) throw new RangeError('lp field longer than 65535 bytes');
      bytes = Buffer.allocUnsafe(2 + text.length);
      bytes.writeUInt16BE(text.length, 0);
      text.copy(bytes, 2);
    }
    encoded.push(bytes);
    total += bytes.length;
  }
  const out = Buffer.allocUnsafe(total);
  out.write(label, 0, 'latin1');
  let offset = label.length;
  for (const bytes of encoded) offset += bytes.copy(out, offset);
  return out;
}
