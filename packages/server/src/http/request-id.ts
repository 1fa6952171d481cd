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
let sequence = 0;

/**
 * The caller's id when `incoming` is well-formed, else a new one: 12 hex digits, a dash, a counter
 * in 10 base-36 digits (fixed width: every answer of a route keeps one length, as clients that
 * count answers by length, like bench/ab-warm.mjs, expect).
 */
export function requestId(incoming: string | undefined): string {
  if (incoming !== undefined && WELL_FORMED.test(incoming)) return incoming;
  sequence = (sequence + 1) % Number.MAX_SAFE_INTEGER;
  return PREFIX + sequence.toString(36).padStart(10, '0');
}
