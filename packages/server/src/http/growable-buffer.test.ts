import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { GrowableBuffer } from './growable-buffer.js';

/** ArrayBuffer.prototype.resizable (ES2024; the repository's TypeScript lib is ES2023). */
const resizable = (bytes: Buffer): boolean | undefined => (bytes.buffer as { resizable?: boolean }).resizable;

describe('GrowableBuffer', () => {
  it('keeps every byte appended across growths, doubling from 512 bytes up to its max', () => {
    const max = 100_000;
    const buffer = new GrowableBuffer(max);
    const expected = randomBytes(max);
    const capacities: number[] = [];
    for (let at = 0; at < max;) {
      const count = Math.min(max - at, 1 + (at % 997));
      const capacity = buffer.capacityFor(count);
      if (capacity !== buffer.capacity) capacities.push(capacity);
      buffer.grow(capacity);
      buffer.append(expected, at, at + count);
      at += count;
    }
    assert.deepEqual(buffer.bytes(), expected);
    assert.deepEqual(capacities, [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 100_000]);
  });

  it('takes a body that arrives whole in one plain buffer of its size', () => {
    const buffer = new GrowableBuffer(300);
    assert.equal(buffer.capacityFor(300), 300);
    buffer.grow(300);
    buffer.append(Buffer.alloc(300, 7), 0, 300);
    assert.equal(buffer.bytes().length, 300);
    assert.equal(resizable(buffer.bytes()), false);
  });

  it('grows a body that arrives in pieces in place, in one resizable store', () => {
    const buffer = new GrowableBuffer(10_000);
    buffer.grow(buffer.capacityFor(10));
    buffer.append(Buffer.from('0123456789'), 0, 10);
    const store = buffer.bytes().buffer;
    assert.equal(resizable(buffer.bytes()), true);
    buffer.grow(buffer.capacityFor(5000));
    buffer.append(Buffer.alloc(5000, 1), 0, 5000);
    assert.equal(buffer.bytes().buffer, store, 'growing made a new store');
    assert.equal(buffer.bytes().subarray(0, 10).toString(), '0123456789');
    // Doubled, or what is needed when that is more.
    assert.equal(buffer.capacity, 5010);
  });

  it('is empty before anything is appended', () => {
    assert.equal(new GrowableBuffer(10).bytes().length, 0);
  });
});
