import assert from 'node:assert/strict';
import { Console } from 'node:console';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { format, inspect } from 'node:util';
import { SecretBytes } from './secret-bytes.js';

const REDACTED = '[SecretBytes: redacted]';

/** Every textual form of `bytes` that a leak would most likely take. */
function leakForms(bytes: Buffer): string[] {
  const hex = bytes.toString('hex');
  return [
    hex,
    hex.toUpperCase(),
    bytes.toString('base64'),
    bytes.toString('base64url'),
    // util.inspect of a Buffer: "<Buffer 0a 1b ...>"
    hex.slice(0, 24).replace(/(..)(?!$)/g, '$1 '),
    // util.inspect of a Uint8Array or an array: "10, 27, ..."
    [...bytes.subarray(0, 6)].join(', '),
    // JSON of a Buffer: {"type":"Buffer","data":[10,27,...]}
    [...bytes.subarray(0, 6)].join(','),
  ];
}

/** Runs `write` against a Console whose output is captured, the way console.log writes. */
function captureConsole(write: (console: Console) => void): string {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  write(new Console({ stdout: sink, stderr: sink }));
  return chunks.join('');
}

void describe('SecretBytes never prints its bytes', () => {
  // Fixed, distinctive bytes: a random key could by chance print like a short decimal.
  const bytes = Buffer.from('c0ffee00deadbeef0123456789abcdeffedcba9876543210a5a55a5a13579bdf', 'hex');
  const key = SecretBytes.copyOf(bytes);

  /* eslint-disable @typescript-eslint/restrict-template-expressions -- interpolating a key is the case under test */
  const renderings: [string, () => string, boolean][] = [
    ['String()', () => String(key), true],
    ['template literal', () => `${key}`, true],
    ['string concatenation', () => 'key=' + (key as unknown as string), true],
    ['toLocaleString()', () => key.toLocaleString(), true],
    ['JSON.stringify', () => JSON.stringify(key), true],
    ['JSON.stringify inside an object', () => JSON.stringify({ nested: { key } }), true],
    ['util.inspect', () => inspect(key), true],
    ['util.inspect, showHidden and full depth', () => inspect(key, { showHidden: true, depth: Infinity }), true],
    ['util.inspect without custom inspectors', () => inspect(key, { customInspect: false, showHidden: true }), false],
    ['util.inspect inside an object', () => inspect({ a: { b: { key } } }, { depth: Infinity }), true],
    ['util.format %s %o %O %j', () => format('%s %o %O %j', key, key, key, key), true],
    ['Array.join', () => [key, key].join(','), true],
    ['an Error message', () => new Error(`bad key ${key}`).message, true],
    ['console.log', () => captureConsole((c) => c.log(key)), true],
    ['console.log of an object', () => captureConsole((c) => c.log({ key })), true],
    ['console.log with a format string', () => captureConsole((c) => c.log('key %s / %o / %j', key, key, key)), true],
    ['console.error', () => captureConsole((c) => c.error(key)), true],
    // console.dir skips custom inspectors: no placeholder, but the private field stays hidden.
    ['console.dir', () => captureConsole((c) => c.dir(key, { showHidden: true, depth: null })), false],
    ['console.table', () => captureConsole((c) => c.table([{ key }])), false],
  ];
  /* eslint-enable @typescript-eslint/restrict-template-expressions */

  for (const [name, render, showsPlaceholder] of renderings) {
    void it(`${name} shows no hex, base64 or decimal form of the bytes`, () => {
      const output = render();
      for (const form of leakForms(bytes)) {
        assert.ok(!output.toLowerCase().includes(form.toLowerCase()), `${name} leaked ${form}: ${output}`);
      }
      if (showsPlaceholder) assert.ok(output.includes(REDACTED), `${name} printed ${output}`);
    });
  }

  void it('has no enumerable own properties a serializer could walk', () => {
    assert.deepEqual(Object.keys(key), []);
    assert.deepEqual(Object.getOwnPropertyNames(key), []);
    assert.deepEqual(structuredClone(key), {});
  });

  void it('still holds the bytes behind expose()', () => {
    assert.deepEqual(key.expose(), bytes);
  });
});

void describe('SecretBytes.equals', () => {
  const of = (hex: string): SecretBytes => SecretBytes.copyOf(Buffer.from(hex, 'hex'));
  const cases: [string, SecretBytes, SecretBytes, boolean][] = [
    ['same bytes, different objects', of('00112233'), of('00112233'), true],
    ['both empty', of(''), of(''), true],
    ['last byte differs', of('00112233'), of('00112234'), false],
    ['first byte differs', of('00112233'), of('80112233'), false],
    ['one bit differs', of('00112233'), of('00112232'), false],
    ['shorter prefix', of('001122'), of('00112233'), false],
    ['longer', of('0011223344'), of('00112233'), false],
    ['empty against non-empty', of(''), of('00'), false],
    ['zeros of different lengths', of('0000'), of('000000'), false],
  ];
  for (const [name, a, b, expected] of cases) {
    void it(`${name}: ${expected}`, () => {
      assert.equal(a.equals(b), expected);
      assert.equal(b.equals(a), expected);
    });
  }

  void it('a key equals itself', () => {
    const key = SecretBytes.random(32);
    assert.ok(key.equals(key));
  });
});

void describe('SecretBytes construction and wipe', () => {
  void it('wipe zeroes the bytes in place and keeps the length', () => {
    const key = SecretBytes.copyOf(Buffer.alloc(32, 0xab));
    const view = key.expose();
    key.wipe();
    assert.equal(key.length, 32);
    assert.deepEqual(view, Buffer.alloc(32));
    assert.deepEqual(key.expose(), Buffer.alloc(32));
  });

  void it('copyOf copies: changing or wiping the source does not change the key', () => {
    const source = Buffer.alloc(16, 0x5a);
    const key = SecretBytes.copyOf(source);
    source.fill(0);
    assert.deepEqual(key.expose(), Buffer.alloc(16, 0x5a));
  });

  void it('adopt takes the buffer without copying, so wipe reaches it', () => {
    const source = Buffer.alloc(16, 0x5a);
    const key = SecretBytes.adopt(source);
    assert.equal(key.expose(), source);
    key.wipe();
    assert.deepEqual(source, Buffer.alloc(16));
  });

  void it('random gives the requested length and distinct values', () => {
    const a = SecretBytes.random(32);
    const b = SecretBytes.random(32);
    assert.equal(a.length, 32);
    assert.equal(SecretBytes.random(0).length, 0);
    assert.ok(!a.equals(b));
  });
});
