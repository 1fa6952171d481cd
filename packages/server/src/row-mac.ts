import { hkdfSha256, hmacSha256, KID_PATTERN, type Kek, type KekRing } from '@padlock/core';
import { timingSafeEqual } from 'node:crypto';

/*
 * Row MACs: the store is untrusted for integrity as well as confidentiality
 * (DESIGN.md section 10), so every row that grants anything (a service's
 * rights, a credential verifier, a revocation; later holds and schedules)
 * carries HMAC-SHA256 under a key only the KEK holders can derive. A row
 * edited, copied to another identity or forged without the KEK fails.
 *
 * Key: HKDF-SHA256(IKM = KEK, salt = "", info = "padlock/v1/row-mac", 32),
 * a label of its own, so the MAC key is independent of every wrap key.
 * Message: "padlock/v1/row-mac" || encode(fields), the fields typed and
 * length-prefixed (docs/spec.md, "Row MAC"), the first naming the row kind.
 * Stored: u8 format (1) || u8 len(kid) || kid || tag(32); the kid says which
 * KEK made it, so `padlock kek rewrap` re-MACs the rows of an older KEK.
 */

export const ROW_MAC_LABEL = 'padlock/v1/row-mac';
export const ROW_MAC_FORMAT = 1;
const TAG_LENGTH = 32;

/** One field of a MAC'd row. Numbers are non-negative safe integers (ids, milliseconds, counters). */
export type MacField = null | boolean | number | string | Uint8Array | readonly MacField[];

const TYPE = { null: 0, bool: 1, uint: 2, text: 3, bytes: 4, list: 5 } as const;

/** The unambiguous encoding of a row's fields: one type byte each, then a fixed width or a u32 length. */
export function encodeRow(fields: readonly MacField[]): Buffer {
  const out: Buffer[] = [Buffer.from(ROW_MAC_LABEL, 'latin1')];
  const put = (field: MacField): void => {
    if (field === null) out.push(Buffer.of(TYPE.null));
    else if (typeof field === 'boolean') out.push(Buffer.of(TYPE.bool, field ? 1 : 0));
    else if (typeof field === 'number') {
      if (!Number.isSafeInteger(field) || field < 0)
        throw new RangeError('a MAC field number must be a safe integer >= 0');
      const bytes = Buffer.alloc(9);
      bytes[0] = TYPE.uint;
      bytes.writeBigUInt64BE(BigInt(field), 1);
      out.push(bytes);
    } else if (typeof field === 'string') out.push(prefixed(TYPE.text, Buffer.from(field, 'utf8')));
    else if (field instanceof Uint8Array) out.push(prefixed(TYPE.bytes, field));
    else {
      const head = Buffer.alloc(5);
      head[0] = TYPE.list;
      head.writeUInt32BE(field.length, 1);
      out.push(head);
      for (const item of field) put(item);
    }
  };
  put(fields);
  return Buffer.concat(out);
}

function prefixed(type: number, body: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The MAC key of each KEK, derived once and kept as long as the KEK. */
const macKeys = new WeakMap<Kek, Buffer>();

function macKey(kek: Kek): Buffer {
  let key = macKeys.get(kek);
  if (key === undefined) {
    key = hkdfSha256(kek.key.expose(), Buffer.alloc(0), Buffer.from(ROW_MAC_LABEL, 'latin1'), 32);
    macKeys.set(kek, key);
  }
  return key;
}

/**
 * The stored MAC of a row under `kek`.
 *
 * @example
 *   const mac = macRow(keks.active, ['credential', serviceId, credentialId, verifier, createdAt, null]);
 *   verifyRowMac(keks, ['credential', serviceId, credentialId, verifier, createdAt, null], mac); // 'ok'
 */
export function macRow(kek: Kek, fields: readonly MacField[]): Buffer {
  if (!KID_PATTERN.test(kek.kid)) throw new RangeError('kid must be 1-64 characters of [A-Za-z0-9._-]');
  const kid = Buffer.from(kek.kid, 'latin1');
  const tag = hmacSha256(macKey(kek), encodeRow(fields));
  return Buffer.concat([Buffer.of(ROW_MAC_FORMAT, kid.length), kid, tag]);
}

/** The kid a stored MAC names, or undefined when it is malformed. */
export function rowMacKid(stored: Uint8Array): string | undefined {
  const kidLength = stored[1];
  if (stored[0] !== ROW_MAC_FORMAT || kidLength === undefined || kidLength === 0) return undefined;
  if (stored.length !== 2 + kidLength + TAG_LENGTH) return undefined;
  return Buffer.from(stored.buffer, stored.byteOffset + 2, kidLength).toString('latin1');
}

/**
 * 'ok' when `stored` is a MAC of exactly these fields under one of the KEKs;
 * 'missing' for a row written before MACs (null or empty); 'bad' for any
 * other failure (edited row, unknown kid, malformed MAC), one answer for all.
 */
export type RowMacVerdict = 'ok' | 'missing' | 'bad';

export function verifyRowMac(
  keks: KekRing,
  fields: readonly MacField[],
  stored: Uint8Array | null | undefined,
): RowMacVerdict {
  if (stored === null || stored === undefined || stored.length === 0) return 'missing';
  const kid = rowMacKid(stored);
  const kek = kid === undefined ? undefined : keks.find(kid);
  if (kid === undefined || kek === undefined) return 'bad';
  const expected = hmacSha256(macKey(kek), encodeRow(fields));
  const actual = Buffer.from(stored.buffer, stored.byteOffset + 2 + kid.length, TAG_LENGTH);
  return timingSafeEqual(expected, actual) ? 'ok' : 'bad';
}
