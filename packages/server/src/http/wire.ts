import { createServer, Socket, type Server, type SocketConstructorOpts } from 'node:net';

/*
 * HTTP/1.1 on a plain TCP socket: Padlock's own server side of the protocol,
 * because node:http costs more CPU per request than everything else a warm
 * lookup does (bench/: a bare node:http server answers about half as many
 * requests per second as a bare socket does on the same machine).
 *
 * It is strict on purpose, since a key service gains nothing from leniency:
 * - origin-form targets only, HTTP/1.0 and 1.1, CRLF line ends only (a bare
 *   LF or CR is an error), no obs-fold, no whitespace between a field name and
 *   its colon, no control characters in values;
 * - framing as RFC 9112 section 6: Transfer-Encoding (only "chunked", only on
 *   1.1) or Content-Length (digits; repeats must agree), never both;
 * - one request at a time per connection: pipelined requests wait in the
 *   buffer (which stops being read past a bound) and are answered in order;
 * - limits: head size (431), body size (413, then the connection closes since
 *   the rest of the body is never read), head and whole-request timeouts (408),
 *   idle keep-alive timeout (the connection is closed).
 * Anything it cannot frame is answered once with 400 and the connection closed.
 */

export interface WireOptions {
  /** Request line plus header fields plus the blank line, in bytes (431 above it). */
  readonly maxHeadBytes: number;
  /** Body bytes after de-chunking; a larger body is flagged and the connection closed after the answer. */
  readonly maxBodyBytes: number;
  /** From a request's first byte to the end of its head. */
  readonly headersTimeoutMs: number;
  /** From a request's first byte to the end of its body. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
}

export interface WireRequest {
  readonly method: string;
  /** The request target as sent (origin-form: path and query). */
  readonly target: string;
  /** Header fields by lower-case name; repeats of a list field are joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
  /** The de-chunked body; empty when there is none or it was too large. */
  readonly body: Buffer;
  /** True when the request declared a body (Content-Length or Transfer-Encoding). */
  readonly framed: boolean;
  /** True when the body exceeded maxBodyBytes: the answer closes the connection. */
  readonly bodyTooLarge: boolean;
  readonly connection: WireConnection;
}

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
}

/** Why a request could not be framed: answered by the server's `onBadRequest`. */
export interface WireError {
  readonly status: 400 | 408 | 431;
  readonly message: string;
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

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const DIGITS = /^[0-9]{1,15}$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,8})(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?$/;
/** Fields that must not repeat: a second value would make the request ambiguous. */
const SINGLE = new Set(['host', 'authorization', 'content-type', 'content-length']);

/** Character classes by code (latin1, so 0-255): tchar of RFC 9110 section 5.6.2, and field-value characters. */
const TOKEN_CHAR = new Uint8Array(256);
const FIELD_VALUE_CHAR = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  TOKEN_CHAR[c] = /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(String.fromCharCode(c)) ? 1 : 0;
  // Visible characters, spaces and tabs, obs-text; no control characters (so no CR or LF).
  FIELD_VALUE_CHAR[c] = c === 9 || (c >= 0x20 && c <= 0x7e) || c >= 0x80 ? 1 : 0;
}

/** Field names most requests carry, lower-case: matched in place, so no string is made for them. */
const KNOWN_FIELDS = [
  'host',
  'accept',
  'expect',
  'connection',
  'user-agent',
  'content-type',
  'authorization',
  'content-length',
  'accept-encoding',
  'transfer-encoding',
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS'];

export class BadRequest extends Error {
  constructor(
    readonly status: 400 | 431,
    message: string,
  ) {
    super(message);
  }
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

function isToken(text: string, from: number, to: number): boolean {
  if (to <= from) return false;
  // Codes above 255 index past the table: undefined, so not a token.
  for (let i = from; i < to; i++) if (!TOKEN_CHAR[text.charCodeAt(i)]) return false;
  return true;
}

/** The colon of a `name: value` line in text[from, to): a token before it, nothing else; -1 when there is none. */
function fieldColon(text: string, from: number, to: number): number {
  const colon = text.indexOf(':', from);
  return colon === -1 || colon >= to || !isToken(text, from, colon) ? -1 : colon;
}

/** The field name text[from, to), lower-case (one of KNOWN_FIELDS when it is one, without a new string). */
function fieldName(text: string, from: number, to: number): string {
  const length = to - from;
  for (const known of KNOWN_FIELDS) {
    if (known.length !== length) continue;
    let i = 0;
    for (; i < length; i++) {
      const c = text.charCodeAt(from + i);
      const k = known.charCodeAt(i);
      if (c !== k && !(c >= 65 && c <= 90 && c + 32 === k)) break;
    }
    if (i === length) return known;
  }
  return text.slice(from, to).toLowerCase();
}

/** The method token text[0, length) when it is a common one (no new string), else undefined. */
function knownMethod(text: string, length: number): string | undefined {
  for (const method of METHODS) if (method.length === length && text.startsWith(method)) return method;
  return undefined;
}

/** True for a valid `name: value` line (a trailer field): a token, a colon, a value without control characters. */
function isField(line: string): boolean {
  const colon = fieldColon(line, 0, line.length);
  if (colon === -1) return false;
  for (let i = colon + 1; i < line.length; i++) if (!FIELD_VALUE_CHAR[line.charCodeAt(i)]) return false;
  return true;
}

/** A request's head: request line and header fields (names lower-case, list fields joined with ", "). */
export interface ParsedHead {
  readonly method: string;
  readonly target: string;
  readonly http10: boolean;
  readonly headers: Map<string, string>;
}

/**
 * Parses a head (without its final CRLFCRLF) in one pass over its characters, with no split or
 * regular expression: every request pays for this, and what the split-and-match version
 * allocated (lines, matches, field objects) was a tenth of a request's garbage. Throws
 * BadRequest; the framing fields are checked by the caller.
 */
export function parseHead(head: string): ParsedHead {
  const lineEnd = head.indexOf('\r\n');
  const requestLineEnd = lineEnd === -1 ? head.length : lineEnd;
  // method SP origin-form SP HTTP/1.x
  const space = head.indexOf(' ');
  const targetEnd = space <= 0 || space >= requestLineEnd ? -1 : head.indexOf(' ', space + 1);
  if (
    targetEnd === -1 ||
    targetEnd !== requestLineEnd - 9 ||
    !isToken(head, 0, space) ||
    head.charCodeAt(space + 1) !== 47 /* / */ ||
    !head.startsWith(' HTTP/1.', targetEnd)
  ) {
    throw new BadRequest(400, 'the request line is not valid HTTP/1.1');
  }
  for (let i = space + 2; i < targetEnd; i++) {
    const c = head.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) throw new BadRequest(400, 'the request line is not valid HTTP/1.1');
  }
  const minor = head.charCodeAt(requestLineEnd - 1);
  if (minor !== 48 && minor !== 49) throw new BadRequest(400, 'the request line is not valid HTTP/1.1');
  const headers = new Map<string, string>();
  for (let start = requestLineEnd + 2; start <= head.length;) {
    let end = head.indexOf('\r\n', start);
    if (end === -1) end = head.length;
    const colon = fieldColon(head, start, end);
    if (colon === -1) throw new BadRequest(400, 'a header field is not valid HTTP/1.1');
    const name = fieldName(head, start, colon);
    let from = colon + 1;
    let to = end;
    while (from < to && isBlank(head.charCodeAt(from))) from++;
    while (to > from && isBlank(head.charCodeAt(to - 1))) to--;
    for (let i = from; i < to; i++) {
      if (!FIELD_VALUE_CHAR[head.charCodeAt(i)]) throw new BadRequest(400, 'a header field is not valid HTTP/1.1');
    }
    const value = head.slice(from, to);
    const seen = headers.get(name);
    if (seen === undefined) headers.set(name, value);
    else if (SINGLE.has(name)) {
      if (name !== 'content-length' || seen !== value) throw new BadRequest(400, `the ${name} header is repeated`);
    } else headers.set(name, `${seen}, ${value}`);
    start = end + 2;
  }
  return {
    method: knownMethod(head, space) ?? head.slice(0, space),
    target: head.slice(space + 1, targetEnd),
    http10: minor === 48,
    headers,
  };
}

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
const CLOSE_FIELDS = Buffer.from('connection: close\r\n\r\n', 'latin1');

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

type State = 'idle' | 'head' | 'body' | 'busy' | 'closing' | 'closed';

export class WireConnection {
  /** Free for the server's use: state that lives as long as this connection (its credential verdict). */
  note: unknown;
  #state: State = 'idle';
  #buffer: Buffer | undefined;
  /** #buffer is a view of the shared read buffer (only during onBytes): copied if it outlives the call. */
  #borrowed = false;
  /** Where to resume the search for the end of the head. */
  #scanFrom = 0;
  /** When the current state times out (performance.now() ms); Infinity while busy. */
  #deadline: number;
  #requestStarted = 0;
  #http10 = false;
  #closeAfter = false;
  #blocked = false;
  #paused = false;
  #corked = false;
  /** The client has half-closed: it sends nothing more, but may still read the answers. */
  #peerEnded = false;
  // The request whose body is being read.
  #method = '';
  #target = '';
  #headers: ReadonlyMap<string, string> = NO_HEADERS;
  #remaining = 0;
  #chunked = false;
  #chunks: readonly Buffer[] = NO_CHUNKS;
  #bodySize = 0;
  #trailerBytes = 0;
  /** Chunked decoding: 'size' (a size line), 'data' (#remaining bytes), 'data-end' (CRLF), 'trailer'. */
  #chunkState: 'size' | 'data' | 'data-end' | 'trailer' = 'size';

  constructor(
    readonly socket: Socket,
    private readonly server: WireServer,
    /** True when the socket reads into the shared read buffer (see adopt()). */
    readonly adopted: boolean,
  ) {
    this.#deadline = performance.now() + server.options.keepAliveTimeoutMs;
    socket.setNoDelay(true);
    if (!adopted) socket.on('data', (chunk: Buffer) => this.#onData(chunk, false));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      this.#peerEnded = true;
      if (this.#state !== 'busy' && !this.#blocked) this.#advance();
    });
    socket.on('close', () => {
      this.#state = 'closed';
      this.#buffer = undefined;
      this.#chunks = NO_CHUNKS;
      this.note = undefined;
      server.closed(this);
    });
  }

  /** Bytes read into the shared read buffer: valid only during this call. */
  onBytes(bytes: Buffer): void {
    this.#onData(bytes, true);
  }

  /** No request is being read or answered, and none is waiting in the buffer. */
  get idle(): boolean {
    return this.#state === 'idle' && this.#buffer === undefined;
  }

  get closed(): boolean {
    return this.#state === 'closed' || this.#state === 'closing';
  }

  /** Called by the server's sweep; closes what has outlived its timeout. */
  sweep(now: number): void {
    if (now < this.#deadline) return;
    switch (this.#state) {
      case 'idle':
        this.socket.destroy();
        return;
      case 'head':
      case 'body':
        this.#fail({ status: 408, message: 'the request was not received in time' });
        return;
      case 'closing':
        this.socket.destroy();
        return;
      default:
        return;
    }
  }

  /** Answers the request being handled; the next pipelined request, if any, is read after it. */
  respond(reply: WireReply, headOnly = false): void {
    if (this.#state !== 'busy') return;
    const close =
      reply.close === true ||
      this.#closeAfter ||
      this.#http10 ||
      this.server.closing ||
      (this.#peerEnded && this.#buffer === undefined);
    const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
    const isBuffer = Buffer.isBuffer(body);
    // Each branch reads one shape's property (a shared read site turned polymorphic: 2 % of a lookup).
    const length = isBuffer ? body.length : body.byteLength;
    const start = headStart(reply.status, reply.contentType);
    const digits = decimalDigits(length);
    const date = httpDate();
    const fields = close ? CLOSE_FIELDS : this.server.keepAliveFields;
    const headLength = start.length + digits + HEAD_MIDDLE.length + date.length + CRLF.length + fields.length;
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
    out.set(fields, at);
    if (!headOnly) {
      if (isBuffer) out.set(body, headLength);
      else body.writeTo(out, headLength);
    }
    // Answers leave once the loop has handled every request that had arrived: all answers to a
    // client that pipelines in one write, as from node:http, and the answers to many clients
    // back to back. Each write is a system call that wakes a client; on the 2-core bench machine,
    // writing them together raised throughput by about a tenth over writing each at once.
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(uncork, this);
    }
    this.socket.write(out);
    if (close) {
      this.#close();
      return;
    }
    this.#state = 'idle';
    this.#deadline = performance.now() + this.server.options.keepAliveTimeoutMs;
    if (this.socket.writableNeedDrain) {
      // The client is not reading its answers: read no more of its requests until it does.
      this.#blocked = true;
      this.socket.once('drain', () => {
        this.#blocked = false;
        this.#advance();
      });
      return;
    }
    if (this.#buffer !== undefined) this.#advance();
  }

  /** Sends what was written since the first answer of this turn. */
  uncork(): void {
    this.#corked = false;
    this.socket.uncork();
  }

  /** Closes the connection once what was written is flushed; drops whatever else arrives. */
  #close(): void {
    this.#state = 'closing';
    this.#buffer = undefined;
    this.#chunks = NO_CHUNKS;
    this.#deadline = performance.now() + this.server.options.keepAliveTimeoutMs;
    this.socket.end();
    if (this.#paused) this.socket.resume();
  }

  #onData(chunk: Buffer, borrowed: boolean): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    if (this.#buffer === undefined) {
      this.#buffer = chunk;
      this.#borrowed = borrowed;
    } else {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#borrowed = false;
    }
    if (this.#state !== 'busy' && !this.#blocked) this.#advance();
    // What is left (a partial request, or pipelined ones waiting for this answer) is kept: copied
    // out of the shared read buffer, which the next read overwrites.
    if (this.#borrowed && this.#buffer !== undefined) this.#buffer = Buffer.from(this.#buffer);
    this.#borrowed = false;
    this.#flowControl();
  }

  /**
   * Reads no more while more than one whole request is waiting in the buffer
   * (a client that pipelines faster than it reads its answers), and reads
   * again once it is handled: what a connection holds stays bounded.
   */
  #flowControl(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const full = (this.#buffer?.length ?? 0) > this.server.options.maxHeadBytes + this.server.options.maxBodyBytes;
    if (full && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    } else if (!full && this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  #advance(): void {
    try {
      while (this.#buffer !== undefined && !this.#blocked) {
        if (this.#state === 'idle' || this.#state === 'head') {
          if (!this.#readHead()) break;
        } else if (this.#state === 'body') {
          if (!(this.#chunked ? this.#readChunks() : this.#readLength())) break;
        } else {
          break;
        }
      }
      if (this.#peerEnded && !this.#blocked) this.#atEnd();
    } catch (error) {
      if (error instanceof BadRequest) this.#fail({ status: error.status, message: error.message });
      else throw error;
    }
    this.#flowControl();
  }

  /**
   * The client has half-closed and every complete request it sent has been read: close when
   * nothing more was begun, and answer 400 to a request cut short (the client may still read it).
   */
  #atEnd(): void {
    if (this.#state === 'idle') {
      this.#close();
    } else if (this.#state === 'head' || this.#state === 'body') {
      throw new BadRequest(400, 'the client closed its side before the request was complete');
    }
  }

  /** Reads a head from the buffer; false when more bytes are needed or the request was dispatched busy. */
  #readHead(): boolean {
    let buffer = this.#buffer!;
    if (this.#state === 'idle') {
      // RFC 9112 section 2.2: ignore empty lines before a request line.
      let start = 0;
      while (start + 1 < buffer.length && buffer[start] === 13 && buffer[start + 1] === 10) start += 2;
      if (start > 0) buffer = this.#consume(start) ?? Buffer.alloc(0);
      if (buffer.length === 0 || (buffer.length === 1 && buffer[0] === 13)) return false;
      this.#state = 'head';
      this.#scanFrom = 0;
      this.#requestStarted = performance.now();
      this.#deadline = this.#requestStarted + this.server.options.headersTimeoutMs;
    }
    const end = buffer.indexOf(HEAD_END, this.#scanFrom);
    const max = this.server.options.maxHeadBytes;
    if (end === -1) {
      if (buffer.length > max) throw new BadRequest(431, 'the request headers are too large');
      // A line ended by a bare LF (or a CR not before LF) never makes CRLFCRLF: refuse it now
      // rather than wait for the head timeout.
      for (let i = Math.max(this.#scanFrom, 1); i < buffer.length; i++) {
        const byte = buffer[i]!;
        if ((byte === 10 && buffer[i - 1] !== 13) || (buffer[i - 1] === 13 && byte !== 10)) {
          throw new BadRequest(400, 'a line of the head does not end with CRLF');
        }
      }
      this.#scanFrom = Math.max(0, buffer.length - 3);
      return false;
    }
    if (end + 4 > max) throw new BadRequest(431, 'the request headers are too large');
    const head = buffer.toString('latin1', 0, end);
    this.#consume(end + 4);
    this.#parseHead(head);
    return this.#state !== 'busy';
  }

  #parseHead(head: string): void {
    const { method, target, http10, headers } = parseHead(head);
    this.#method = method;
    this.#target = target;
    this.#http10 = http10;
    this.#headers = headers;
    if (!this.#http10 && !headers.has('host')) throw new BadRequest(400, 'the host header is missing');
    const connection = headers.get('connection');
    this.#closeAfter = connection !== undefined && /(?:^|,)[\t ]*close[\t ]*(?:,|$)/i.test(connection);
    const encoding = headers.get('transfer-encoding');
    const length = headers.get('content-length');
    this.#chunks = NO_CHUNKS;
    this.#bodySize = 0;
    if (encoding !== undefined) {
      if (length !== undefined) throw new BadRequest(400, 'content-length and transfer-encoding are both set');
      if (this.#http10) throw new BadRequest(400, 'transfer-encoding is not allowed in HTTP/1.0');
      if (encoding.toLowerCase() !== 'chunked')
        throw new BadRequest(400, 'the only transfer-encoding accepted is chunked');
      this.#chunked = true;
      this.#chunkState = 'size';
      this.#startBody();
      return;
    }
    this.#chunked = false;
    if (length === undefined) {
      this.#dispatch(false, false);
      return;
    }
    if (!DIGITS.test(length)) throw new BadRequest(400, 'content-length is not a number');
    const declared = Number(length);
    if (declared > this.server.options.maxBodyBytes) {
      this.#closeAfter = true;
      this.#dispatch(true, true);
      return;
    }
    if (declared === 0) {
      this.#dispatch(true, false);
      return;
    }
    this.#remaining = declared;
    this.#startBody();
  }

  #startBody(): void {
    this.#state = 'body';
    this.#deadline = this.#requestStarted + this.server.options.requestTimeoutMs;
    const expect = this.#headers.get('expect');
    if (expect !== undefined && expect.toLowerCase() === '100-continue' && !this.#http10) this.socket.write(CONTINUE);
  }

  #readLength(): boolean {
    const buffer = this.#buffer!;
    if (buffer.length < this.#remaining) {
      this.#addChunk(buffer);
      this.#remaining -= buffer.length;
      this.#buffer = undefined;
      return false;
    }
    this.#addChunk(buffer.subarray(0, this.#remaining));
    this.#consume(this.#remaining);
    this.#remaining = 0;
    this.#dispatch(true, false);
    return this.#state !== 'busy';
  }

  #readChunks(): boolean {
    for (;;) {
      const buffer = this.#buffer;
      if (buffer === undefined) return false;
      if (this.#chunkState === 'data') {
        const take = Math.min(this.#remaining, buffer.length);
        this.#bodySize += take;
        if (this.#bodySize > this.server.options.maxBodyBytes) {
          this.#closeAfter = true;
          this.#chunks = NO_CHUNKS;
          this.#dispatch(true, true);
          return false;
        }
        this.#addChunk(buffer.subarray(0, take));
        this.#consume(take);
        this.#remaining -= take;
        if (this.#remaining > 0) return false;
        this.#chunkState = 'data-end';
        continue;
      }
      const eol = buffer.indexOf('\r\n', 0, 'latin1');
      if (eol === -1) {
        if (buffer.length > 1024) throw new BadRequest(400, 'a chunk line is too long');
        return false;
      }
      const line = buffer.toString('latin1', 0, eol);
      this.#consume(eol + 2);
      if (this.#chunkState === 'data-end') {
        if (line !== '') throw new BadRequest(400, 'a chunk does not end with CRLF');
        this.#chunkState = 'size';
      } else if (this.#chunkState === 'size') {
        const size = CHUNK_SIZE.exec(line);
        if (size === null) throw new BadRequest(400, 'a chunk size is not valid');
        this.#remaining = parseInt(size[1]!, 16);
        this.#chunkState = this.#remaining === 0 ? 'trailer' : 'data';
        this.#trailerBytes = 0;
      } else if (line === '') {
        this.#dispatch(true, false);
        return this.#state !== 'busy';
      } else if (!isField(line)) {
        throw new BadRequest(400, 'a trailer field is not valid HTTP/1.1');
      } else if ((this.#trailerBytes += eol + 2) > this.server.options.maxHeadBytes) {
        throw new BadRequest(431, 'the request trailers are too large');
      }
    }
  }

  /** Drops `count` bytes from the front of the buffer; returns what is left. */
  #consume(count: number): Buffer | undefined {
    const buffer = this.#buffer!;
    this.#buffer = count >= buffer.length ? undefined : buffer.subarray(count);
    return this.#buffer;
  }

  #dispatch(framed: boolean, tooLarge: boolean): void {
    this.#state = 'busy';
    this.#deadline = Infinity;
    const chunks = this.#chunks;
    this.#chunks = NO_CHUNKS;
    const body = tooLarge || chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (tooLarge) {
      // The rest of the body is never read: nothing after it can be framed.
      this.#buffer = undefined;
    }
    const request: WireRequest = {
      method: this.#method,
      target: this.#target,
      headers: this.#headers,
      body,
      framed,
      bodyTooLarge: tooLarge,
      connection: this,
    };
    // An idle connection holds nothing of its last request: what it held survived scavenges into
    // the old generation on every keep-alive connection, and made the mark-compacts frequent.
    this.#method = '';
    this.#target = '';
    this.#headers = NO_HEADERS;
    this.server.onRequest(request);
  }

  #addChunk(bytes: Buffer): void {
    // A body is kept until its request is handled, which may be after the read buffer is reused.
    const chunk = this.#borrowed ? Buffer.from(bytes) : bytes;
    if (this.#chunks === NO_CHUNKS) this.#chunks = [chunk];
    else (this.#chunks as Buffer[]).push(chunk);
  }

  #fail(error: WireError): void {
    this.#state = 'busy';
    this.#closeAfter = true;
    this.server.onBadRequest(this, error);
    if (this.#state === 'busy') this.#close();
  }
}

const EMPTY = Buffer.alloc(0);
const NO_HEADERS: ReadonlyMap<string, string> = new Map();
const NO_CHUNKS: readonly Buffer[] = Object.freeze([]);

function uncork(connection: WireConnection): void {
  connection.uncork();
}

/**
 * Every connection reads into this one buffer, and its bytes are handled before the next read
 * (WireConnection copies what it must keep). A socket of node:net otherwise reads into a fresh
 * 64 KiB allocation per read and wraps what it read in a new ArrayBuffer: malloc took a tenth of
 * a warm lookup's CPU (perf), and sweeping those ArrayBuffers was most of each young-generation
 * GC's pause.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * The accepted socket's handle moved to a socket that reads into READ_BUFFER (net.Socket's onread
 * option, which net.Server does not offer for the sockets it accepts), or undefined when this
 * Node.js does not allow it: the accepted socket is then used as it is. Relies on the handle
 * option of net.Socket and the _handle property, which net itself uses to pass handles
 * (wire.test.ts checks that sockets are adopted on the Node.js that runs the tests).
 */
function adopt(accepted: Socket, onBytes: (bytes: Buffer) => void): Socket | undefined {
  const inner = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = inner._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function') return undefined;
  let adopted: Socket;
  try {
    adopted = new Socket({
      handle,
      allowHalfOpen: true,
      onread: { buffer: READ_BUFFER, callback: (read: number) => onBytes(READ_BUFFER.subarray(0, read)) },
    } as SocketConstructorOpts);
  } catch {
    return undefined;
  }
  // The accepted socket gives up its handle, then is destroyed, which closes nothing.
  inner._handle = null;
  accepted.destroy();
  return adopted;
}

export interface WireHandlers {
  onRequest(request: WireRequest): void;
  /** Answer a request that could not be framed (call connection.respond); the connection then closes. */
  onBadRequest(connection: WireConnection, error: WireError): void;
}

/** The listening socket and its connections. */
export class WireServer {
  readonly net: Server;
  readonly connections = new Set<WireConnection>();
  /** The connection fields of a keep-alive answer, ending the head. */
  readonly keepAliveFields: Buffer;
  /** Set by closeGracefully(): every answer from now on closes its connection. */
  closing = false;
  readonly #sweep: NodeJS.Timeout;
  #allClosed: (() => void) | undefined;

  constructor(
    readonly options: WireOptions,
    private readonly handlers: WireHandlers,
  ) {
    this.keepAliveFields = Buffer.from(
      `connection: keep-alive\r\nkeep-alive: timeout=${Math.max(1, Math.floor(options.keepAliveTimeoutMs / 1000))}\r\n\r\n`,
      'latin1',
    );
    // allowHalfOpen: a client that half-closes after its request still gets the answer, and
    // one that half-closes in the middle of a request gets a 400 saying so. pauseOnConnect: no
    // read starts before the socket is adopted (adopt()).
    this.net = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      const adopted = adopt(socket, (bytes) => connection.onBytes(bytes));
      const connection = new WireConnection(adopted ?? socket, this, adopted !== undefined);
      if (adopted === undefined) socket.resume();
      this.connections.add(connection);
    });
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const connection of this.connections) connection.sweep(now);
    }, 250);
    this.#sweep.unref();
  }

  /** Serves a socket from another listener (a TLS server's secure sockets): read with 'data' events. */
  accept(socket: Socket): void {
    this.connections.add(new WireConnection(socket, this, false));
  }

  onRequest(request: WireRequest): void {
    this.handlers.onRequest(request);
  }

  onBadRequest(connection: WireConnection, error: WireError): void {
    this.handlers.onBadRequest(connection, error);
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        const address = this.net.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** Called by a connection once its socket has closed. */
  closed(connection: WireConnection): void {
    this.connections.delete(connection);
    if (this.connections.size === 0 && this.#allClosed !== undefined) this.#allClosed();
  }

  /** Stops accepting; resolves once every connection has closed. */
  stopAccepting(): Promise<void> {
    this.closing = true;
    // net.Server counts only the sockets it made, and adopted connections are not those: wait for
    // the listener to close, then for this server's own set of connections to empty.
    const listenerClosed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    const allClosed = new Promise<void>((resolve) => {
      if (this.connections.size === 0) resolve();
      else this.#allClosed = resolve;
    });
    return Promise.all([listenerClosed, allClosed]).then(() => clearInterval(this.#sweep));
  }

  closeIdleConnections(): void {
    for (const connection of this.connections) if (connection.idle) connection.socket.destroy();
  }

  closeAllConnections(): void {
    for (const connection of this.connections) connection.socket.destroy();
  }
}
