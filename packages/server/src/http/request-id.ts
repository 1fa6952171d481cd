import { randomBytes } from 'node:crypto';

/*
 * A request id on every answer (X-Request-Id) and on every log line about the request. A caller's
 * own id is kept when it is well-formed: 1-128 characters of letters, digits and . _ : + = / @ -,
 * so it cannot split a log line, carry markup or grow a log without bound; anything else is
 * replaced by one of ours, not refused (the id is for tracing, never a reason to fail a request).
 */

const WELL_FORMED = /^[A-Za-z0-9._:+=/@-]{1,128}$/;

/** This process's prefix: ids from two processes (or restarts) never collide. */
const PREFIX = `${randomBytes(6).toString('hex')}-`;
const PREFIX_BYTES = Buffer.from(PREFIX, 'latin1');
/** Base-36 digits of the counter: fixed width, as every answer of a route keeps one length. */
const DIGITS = 10;
const LIMIT = 36 ** DIGITS;
let sequence = 0;

/**
 * A request's id: the caller's own text, or the number of one of ours, which becomes text only where
 * it is written. Ours are 12 hex digits, a dash and the counter in 10 base-36 digits; kept as a number
 * until then because building that string on every request cost a warm lookup 2 % of its throughput
 * (bench/ab-warm.mjs, docs/performance.md), and most answers' ids are written once, as bytes.
 */
export type RequestId = string | number;

/** The caller's id when `incoming` is well-formed, else a new one of ours. */
export function requestId(incoming: string | undefined): RequestId {
  if (incoming !== undefined && WELL_FORMED.test(incoming)) return incoming;
  sequence = sequence + 1 < LIMIT ? sequence + 1 : 1;
  return sequence;
}

/** The id as text, for log lines and spans. */
export function requestIdText(id: RequestId): string {
  return typeof id === 'string' ? id : PREFIX + id.toString(36).padStart(DIGITS, '0');
}

/** The id's length in bytes as written by writeRequestId. */
export function requestIdLength(id: RequestId): number {
  return typeof id === 'string' ? id.length : PREFIX_BYTES.length + DIGITS;
}

/** Writes the id's bytes at `at` in `out` (room for requestIdLength(id) bytes); returns where they end. */
export function writeRequestId(out: Buffer, at: number, id: RequestId): number {
  if (typeof id === 'string') return at + out.write(id, at, 'latin1');
  out.set(PREFIX_BYTES, at);
  const end = at + PREFIX_BYTES.length + DIGITS;
  for (let i = end - 1, rest = id; i >= end - DIGITS; i--, rest = Math.floor(rest / 36)) {
    const digit = rest % 36;
    out[i] = digit < 10 ? 48 + digit : 87 + digit;
  }
  return end;
}
