import { randomBytes, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

const REDACTED = '[SecretBytes: redacted]';

/**
 * Key material as its own type: the bytes are private, equality is constant
 * time, and every way of turning it into text prints a placeholder.
 *
 * @example
 *   const key = SecretBytes.random(32);
 *   String(key); // '[SecretBytes: redacted]'
 *   key.equals(SecretBytes.copyOf(key.expose())); // true
 */
export class SecretBytes {
  readonly #bytes: Buffer;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  /** Fresh random bytes from the OS CSPRNG. */
  static random(length: number): SecretBytes {
    return new SecretBytes(randomBytes(length));
  }

  /** Copies `bytes`; the caller remains responsible for wiping its own copy. */
  static copyOf(bytes: Uint8Array): SecretBytes {
    return new SecretBytes(Buffer.from(bytes));
  }

  /** Takes ownership of `bytes` without copying: the caller must not keep or reuse them. */
  static adopt(bytes: Buffer): SecretBytes {
    return new SecretBytes(bytes);
  }

  get length(): number {
    return this.#bytes.length;
  }

  /**
   * The raw bytes, for a crypto primitive or the one place that serializes a
   * response. Do not keep the reference and never turn it into a string
   * elsewhere.
   */
  expose(): Buffer {
    return this.#bytes;
  }

  /** Constant-time comparison; different lengths compare unequal. */
  equals(other: SecretBytes): boolean {
    const theirs = other.#bytes;
    if (theirs.length !== this.#bytes.length) return false;
    return timingSafeEqual(this.#bytes, theirs);
  }

  /** Overwrites the bytes with zeros; the value is unusable afterwards. */
  wipe(): void {
    this.#bytes.fill(0);
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
