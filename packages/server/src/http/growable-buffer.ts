/*
 * A request body's bytes, held in one buffer that grows in place. Its memory is a resizable
 * ArrayBuffer (ES2024, in Node.js 20): address space for `max` bytes is reserved once and pages
 * are committed as it grows, so growing copies nothing and leaves no old buffer behind. With a
 * buffer reallocated by doubling, the old buffers a slow body left (until a GC, and in malloc's
 * arenas after it) took RSS to 1.75-1.91x the body bytes held in http/memory.test.ts.
 */

interface ResizableArrayBuffer extends ArrayBuffer {
  resize(byteLength: number): void;
}
/** ArrayBuffer's ES2024 constructor form; the repository's TypeScript lib is ES2023. */
const ResizableArrayBuffer = ArrayBuffer as unknown as new (
  byteLength: number,
  options: { maxByteLength: number },
) => ResizableArrayBuffer;

/** The first capacity of a buffer whose final size is not known (a chunked body). */
const FIRST_CAPACITY = 512;

/**
 * Bytes appended into one buffer of at most `max` bytes.
 *
 * @example
 *   const body = new GrowableBuffer(declaredLength);
 *   body.grow(body.capacityFor(chunk.length));
 *   body.append(chunk, 0, chunk.length);
 *   const bytes = body.bytes();
 */
export class GrowableBuffer {
  #store: ResizableArrayBuffer | undefined;
  #view: Buffer | undefined;
  #length = 0;

  constructor(readonly max: number) {}

  /** Bytes the buffer has room for (and has committed). */
  get capacity(): number {
    return this.#view?.length ?? 0;
  }

  get length(): number {
    return this.#length;
  }

  /** The capacity to grow to for `count` more bytes: doubled (from 512 bytes), at least enough, at most max. */
  capacityFor(count: number): number {
    const needed = this.#length + count;
    if (needed <= this.capacity) return this.capacity;
    return Math.min(this.max, Math.max(needed, this.capacity * 2, FIRST_CAPACITY));
  }

  /** Grows to `capacity` (at most max). Throws RangeError when the address space cannot be had. */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    if (this.#view === undefined && capacity === this.max) {
      // All of it at once (a body that arrived whole): a plain buffer, nothing to reserve.
      this.#view = Buffer.allocUnsafe(capacity);
      return;
    }
    // A plain buffer is only ever made at max, so a buffer that grows is always the resizable one.
    if (this.#store === undefined) this.#store = new ResizableArrayBuffer(capacity, { maxByteLength: this.max });
    else this.#store.resize(capacity);
    this.#view = Buffer.from(this.#store, 0, capacity);
  }

  /** Appends bytes[start, end); the capacity must have room (grow first). */
  append(bytes: Buffer, start: number, end: number): void {
    bytes.copy(this.#view!, this.#length, start, end);
    this.#length += end - start;
  }

  /** The bytes appended so far (a view: it stays valid, and nothing more is appended once taken). */
  bytes(): Buffer {
    return this.#view === undefined ? EMPTY : this.#view.subarray(0, this.#length);
  }
}

const EMPTY = Buffer.alloc(0);
