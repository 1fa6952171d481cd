import { requestIdLength, writeRequestId, type RequestId } from './request-id.js';
/*
 * An answer as bytes: its head and body written into one buffer (answerBytes), the connection's
 * only write per answer. The connection (wire.ts) decides when to send it and whether it closes.
 */

/** A body that writes itself into the answer's buffer, so it needs no buffer of its own. */
export abstract class BodyWriter {
  abstract readonly byteLength: number;
  abstract writeTo(out: Buffer, at: number): void;
}

export interface WireReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer | string | BodyWriter;
  /** Close the connection after this answer. */
  readonly close?: boolean;
  /** More header fields (Retry-After, WWW-Authenticate, Allow): names and values without CR or LF. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Sent as X-Request-Id: printable ASCII without spaces (request-id.ts makes sure). */
  readonly requestId?: RequestId | undefined;
}

const REASONS: Readonly<Record<number, string>> = {
  100: 'Continue',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The date field's value as bytes (29 of them, RFC 9110 IMF-fixdate), made once a second. */
let dateSecond = 0;
let dateBytes = Buffer.alloc(0);
function httpDate(): Buffer {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateBytes = Buffer.from(new Date(now).toUTCString(), 'latin1');
  }
  return dateBytes;
}

/**
 * An answer's head is four constant pieces and two variable ones: `HTTP/1.1 <status> <reason>
 * content-type: <type> content-length: ` (made once per status and type), the length's digits,
 * `cache-control: no-store date: `, the date, then the connection fields. They are copied as
 * bytes into the answer's buffer: building the head as a string cost a tenth of what a request
 * allocated.
 */
const headStarts = new Map<string, Map<number, Buffer>>();
const HEAD_MIDDLE = Buffer.from('\r\ncache-control: no-store\r\ndate: ', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const REQUEST_ID = Buffer.from('x-request-id: ', 'latin1');

function headStart(status: number, contentType: string): Buffer {
  let byStatus = headStarts.get(contentType);
  let start = byStatus?.get(status);
  if (start !== undefined) return start;
  start = Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\ncontent-type: ${contentType}\r\ncontent-length: `,
    'latin1',
  );
  // Statuses and content types come from the routes, a handful of each; the bound is a safeguard.
  if (byStatus === undefined && headStarts.size < 64)
    headStarts.set(contentType, (byStatus = new Map<number, Buffer>()));
  if (byStatus !== undefined && byStatus.size < 64) byStatus.set(status, start);
  return start;
}

function decimalDigits(value: number): number {
  let digits = 1;
  while (value >= 10) {
    value = Math.floor(value / 10);
    digits++;
  }
  return digits;
}

/** Extra header fields as bytes; a CR or LF in them would split the answer, so it is refused. */
function extraFields(headers: Readonly<Record<string, string>>): Buffer {
  let text = '';
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`the reply header ${name} holds CR or LF`);
    text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(text, 'latin1');
}

/** `connection: close`, ending an answer's head. */
export const CLOSE_FIELDS = Buffer.from('connection: close\r\n\r\n', 'latin1');

/**
 * One answer as bytes, in one buffer: status line, content-type, content-length, cache-control,
 * date, any extra fields, then `fields` (the connection fields that end the head); the body unless
 * `headOnly` (an answer to HEAD: the length of the body it would have had, RFC 9110 section 9.3.2).
 */
export function answerBytes(reply: WireReply, headOnly: boolean, fields: Buffer): Buffer {
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
  const isBuffer = Buffer.isBuffer(body);
  // Each branch reads one shape's property (a shared read site turned polymorphic: 2 % of a lookup).
  const length = isBuffer ? body.length : body.byteLength;
  const start = headStart(reply.status, reply.contentType);
  const digits = decimalDigits(length);
  const date = httpDate();
  const extra = reply.headers === undefined ? undefined : extraFields(reply.headers);
  const id = reply.requestId;
  const idLength = id === undefined ? 0 : REQUEST_ID.length + requestIdLength(id) + CRLF.length;
  const headLength =
    start.length +
    digits +
    HEAD_MIDDLE.length +
    date.length +
    CRLF.length +
    idLength +
    (extra?.length ?? 0) +
    fields.length;
  const out = Buffer.allocUnsafe(headLength + (headOnly ? 0 : length));
  out.set(start, 0);
  let at = start.length + digits;
  for (let rest = length, i = at - 1; i >= start.length; i--, rest = Math.floor(rest / 10)) out[i] = 48 + (rest % 10);
  out.set(HEAD_MIDDLE, at);
  at += HEAD_MIDDLE.length;
  out.set(date, at);
  at += date.length;
  out.set(CRLF, at);
  at += CRLF.length;
  if (id !== undefined) {
    out.set(REQUEST_ID, at);
    at = writeRequestId(out, at + REQUEST_ID.length, id);
    out.set(CRLF, at);
    at += CRLF.length;
  }
  if (extra !== undefined) {
    out.set(extra, at);
    at += extra.length;
  }
  out.set(fields, at);
  if (!headOnly) {
    if (isBuffer) out.set(body, headLength);
    else body.writeTo(out, headLength);
  }
  return out;
}
