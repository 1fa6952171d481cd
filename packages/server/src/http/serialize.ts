import type { Keychain, RenderedKeys } from '../keychain.js';
import type { DerivedKeychain, KeyService } from '../keys.js';
import type { Service } from '../services.js';
import type { CategoryChoice } from './route.js';
import { BodyWriter } from './answer.js';

/*
 * The one place key bytes become text: base64url in a response body. A lookup
 * renders its answer once per keychain, service and choice of categories,
 * straight from key bytes into a buffer (no string of key bytes is made), and
 * wipes the derived keys it used; the keychain keeps the rendered bytes for
 * the next lookup. Creates answer through keychainJson and JSON.stringify.
 */

export interface KeysJson {
  userId: string;
  status: string;
  maxAgeSeconds: number;
  categories: {
    category: string;
    status: string;
    current?: number;
    keys?: { version: number; key: string }[];
  }[];
}

export function keychainJson(derived: DerivedKeychain): KeysJson {
  return {
    userId: derived.userId,
    status: derived.status,
    maxAgeSeconds: derived.maxAgeSeconds,
    categories: derived.categories.map((c) =>
      c.status === 'ok'
        ? {
            category: c.category,
            status: c.status,
            current: c.keys[c.keys.length - 1]?.version ?? 0,
            keys: c.keys.map((k) => ({ version: k.version, key: k.key.expose().toString('base64url') })),
          }
        : { category: c.category, status: c.status },
    ),
  };
}

const BASE64URL = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');

/** Length of the unpadded base64url form of `n` bytes. */
export function base64urlLength(n: number): number {
  return Math.floor(n / 3) * 4 + (n % 3 === 0 ? 0 : (n % 3) + 1);
}

/**
 * Writes the unpadded base64url form of `bytes` into `out` at `offset`;
 * returns the offset after it. Key bytes go straight from one buffer to
 * another, so no string of them is left for the garbage collector to keep.
 */
export function writeBase64url(bytes: Uint8Array, out: Buffer, offset: number): number {
  let at = offset;
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[at++] = BASE64URL[n >>> 18]!;
    out[at++] = BASE64URL[(n >>> 12) & 63]!;
    out[at++] = BASE64URL[(n >>> 6) & 63]!;
    out[at++] = BASE64URL[n & 63]!;
  }
  const left = bytes.length - i;
  if (left > 0) {
    const n = (bytes[i]! << 16) | (left === 2 ? bytes[i + 1]! << 8 : 0);
    out[at++] = BASE64URL[n >>> 18]!;
    out[at++] = BASE64URL[(n >>> 12) & 63]!;
    if (left === 2) out[at++] = BASE64URL[(n >>> 6) & 63]!;
  }
  return at;
}

/**
 * Renders JSON.stringify(keychainJson(derived)) into a buffer of its own, with
 * `width` spaces in place of the maxAgeSeconds value (see RenderedKeys).
 */
export function renderKeys(derived: DerivedKeychain, width: number): RenderedKeys {
  // Texts and keys alternate: texts[i] is followed by keys[i] when there is one. Everything but the
  // keys is ASCII from validated grammars; JSON.stringify quotes it all the same.
  const head = `{"userId":${JSON.stringify(derived.userId)},"status":${JSON.stringify(derived.status)},"maxAgeSeconds":`;
  const texts: string[] = [];
  const keys: Uint8Array[] = [];
  let text = `${' '.repeat(width)},"categories":[`;
  derived.categories.forEach((c, i) => {
    text += `${i === 0 ? '' : ','}{"category":${JSON.stringify(c.category)},"status":${JSON.stringify(c.status)}`;
    if (c.status !== 'ok') {
      text += '}';
      return;
    }
    text += `,"current":${c.keys[c.keys.length - 1]?.version ?? 0},"keys":[`;
    c.keys.forEach((k, j) => {
      texts.push(`${text}${j === 0 ? '' : '"},'}{"version":${k.version},"key":"`);
      keys.push(k.key.expose());
      text = '';
    });
    text = '"}]}';
  });
  texts.push(`${text}]}`);
  let size = head.length;
  for (const t of texts) size += t.length;
  for (const k of keys) size += base64urlLength(k.length);
  // From Node's pool: a keychain that keeps the answer copies it into its own buffer.
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, 'latin1');
  const slot = at;
  texts.forEach((t, i) => {
    at += out.write(t, at, 'latin1');
    const key = keys[i];
    if (key !== undefined) at = writeBase64url(key, out, at);
  });
  if (at !== size) throw new Error(`rendered ${at} bytes of ${size}`);
  return { status: derived.status, bytes: out, start: 0, length: size, slot, width };
}

/** Writes maxAgeSeconds, right-aligned, into the slot of a rendered answer copied to `out` at `at`. */
export function writeMaxAge(out: Buffer, at: number, rendered: RenderedKeys, maxAgeSeconds: number): void {
  let value = Math.max(0, Math.floor(maxAgeSeconds));
  let i = at + rendered.slot + rendered.width - 1;
  const first = at + rendered.slot;
  do {
    if (i < first) throw new Error('maxAgeSeconds does not fit its slot');
    out[i--] = 48 + (value % 10);
    value = Math.floor(value / 10);
  } while (value > 0);
}

/**
 * A rendered answer with its maxAgeSeconds, written straight into the buffer of
 * the HTTP answer: the kept bytes are copied once per request, and no other
 * buffer is made.
 */
export class RenderedBody extends BodyWriter {
  constructor(
    readonly rendered: RenderedKeys,
    readonly maxAgeSeconds: number,
  ) {
    super();
  }

  get byteLength(): number {
    return this.rendered.length;
  }

  writeTo(out: Buffer, at: number): void {
    const { bytes, start, length } = this.rendered;
    bytes.copy(out, at, start, start + length);
    writeMaxAge(out, at, this.rendered, this.maxAgeSeconds);
  }
}

/** The rendered answer with its maxAgeSeconds filled in, as a buffer of its own. */
export function renderedBody(rendered: RenderedKeys, maxAgeSeconds: number): Buffer {
  const out = Buffer.allocUnsafe(rendered.length);
  new RenderedBody(rendered, maxAgeSeconds).writeTo(out, 0);
  return out;
}

/**
 * The caller's answer for a choice of categories of a keychain, rendered on
 * the first lookup and kept with the keychain (so the cache that bounds the
 * keychain bounds it too, and a shred or rotate, which replaces the keychain,
 * drops it). The derived keys are wiped once rendered.
 */
export function renderedKeys(
  keys: KeyService,
  service: Service,
  keychain: Keychain,
  categories: CategoryChoice,
): RenderedKeys {
  const id = categories.renderedId;
  const kept = keys.cachesKeychains && id >= 0;
  if (kept) {
    const found = keychain.rendered(id);
    if (found !== undefined) return found;
  }
  const derived = keys.derive(service, keychain.userId, keychain, categories.list);
  const rendered = renderKeys(derived, keys.maxAgeWidth);
  for (const c of derived.categories) for (const k of c.keys) k.key.wipe();
  if (!kept) return rendered;
  const copy = keychain.keepRendered(id, rendered);
  rendered.bytes.fill(0, rendered.start, rendered.start + rendered.length);
  return copy;
}
