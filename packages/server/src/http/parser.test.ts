import fc from 'fast-check';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { RequestParser, type ParserLimits } from './parser.js';

/*
 * The parser against node:http's own (llhttp), on the same bytes cut the same ways, and against
 * itself uncut. The oracle is `_http_common`'s HTTPParser: the very binding node:http's server
 * feeds, in process, so each cut reaches it as the same separate execute() call that reaches
 * Padlock's parser (a loopback server would see the kernel merge or split the writes again).
 * It is private to Node.js; the first test fails if this Node.js does not have it.
 */

const require = createRequire(import.meta.url);

interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(bytes: Buffer): number | Error;
  finish(): number | Error | undefined;
  [key: number]: unknown;
}
interface HttpCommon {
  HTTPParser: {
    new (): LlhttpParser;
    REQUEST: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
  };
  methods: readonly string[];
}
const { HTTPParser, methods } = require('_http_common') as HttpCommon;

interface Parsed {
  method: string;
  target: string;
  headers: Record<string, string>;
  body: string;
}

interface Outcome {
  requests: Parsed[];
  /** Undefined when every byte was read without error. */
  error: string | undefined;
}

const LIMITS: ParserLimits = {
  maxHeadBytes: 16384,
  maxBodyBytes: 1 << 20,
  maxChunkLineBytes: 1024,
  maxChunkExtensionBytes: 4096,
};

function joinFields(raw: readonly string[], into: Record<string, string>): void {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const seen = into[name];
    into[name] = seen === undefined ? raw[i + 1]! : `${seen}, ${raw[i + 1]!}`;
  }
}

/** node:http's parser on `pieces`, each its own execute() call. */
function llhttp(pieces: readonly Buffer[]): Outcome {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, LIMITS.maxHeadBytes, 0);
  const requests: Parsed[] = [];
  let pendingFields: string[] = [];
  let pendingUrl = '';
  let current: Parsed | undefined;
  let body: Buffer[] = [];
  parser[HTTPParser.kOnHeaders] = (fields: string[], url: string) => {
    // Before the head is complete these are its fields (sent early when split); after, trailers.
    if (current !== undefined) return;
    pendingFields.push(...fields);
    pendingUrl += url;
  };
  parser[HTTPParser.kOnHeadersComplete] = (
    _major: number,
    _minor: number,
    fields: string[] | undefined,
    method: number,
    url: string | undefined,
  ) => {
    const headers: Record<string, string> = {};
    joinFields([...pendingFields, ...(fields ?? [])], headers);
    current = { method: methods[method]!, target: pendingUrl + (url ?? ''), headers, body: '' };
    pendingFields = [];
    pendingUrl = '';
    body = [];
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => body.push(Buffer.from(chunk));
  parser[HTTPParser.kOnMessageComplete] = () => {
    requests.push({ ...current!, body: Buffer.concat(body).toString('latin1') });
    current = undefined;
  };
  for (const piece of pieces) {
    const result = parser.execute(piece);
    if (result instanceof Error) return { requests, error: (result as Error & { code: string }).code };
  }
  return { requests, error: undefined };
}

/**
 * Padlock's parser on `pieces`, each copied into one reused buffer (as the connection's shared
 * read buffer is) and overwritten after: the parser must keep nothing that points into it.
 */
function padlock(pieces: readonly Buffer[], limits: ParserLimits = LIMITS): Outcome {
  const requests: Parsed[] = [];
  let error: string | undefined;
  let current: Parsed | undefined;
  let body: Buffer[] = [];
  const parser = new RequestParser(limits, {
    onHead(head) {
      current = { method: head.method, target: head.target, headers: Object.fromEntries(head.headers), body: '' };
      body = [];
    },
    onBody(bytes, start, end) {
      body.push(Buffer.from(bytes.subarray(start, end)));
    },
    onEnd(tooLarge) {
      if (tooLarge) error = 'too large';
      else requests.push({ ...current!, body: Buffer.concat(body).toString('latin1') });
    },
    onError(e) {
      error = `${e.status} ${e.message}`;
    },
  });
  const scratch = Buffer.alloc(Math.max(1, ...pieces.map((p) => p.length)));
  for (const piece of pieces) {
    piece.copy(scratch);
    const view = scratch.subarray(0, piece.length);
    for (let at = 0; at < view.length && !parser.stopped;) at = parser.execute(view, at);
    scratch.fill(0x7e);
    if (parser.stopped) break;
  }
  return { requests, error };
}

/** The stream cut at the given offsets (any order, repeats allowed). */
function cut(stream: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => Math.min(stream.length, Math.max(0, o))))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const point of [...points, stream.length]) {
    if (point > from) pieces.push(stream.subarray(from, point));
    from = Math.max(from, point);
  }
  return pieces;
}

// Generated requests: everything both parsers must accept, in every shape the framing allows.
const token = fc.constantFrom('X-A', 'x-b', 'Accept', 'User-Agent', 'X-Trace-Id', 'Content-Type', 'x-list');
const fieldValue = fc
  .array(fc.constantFrom(...'abcXYZ019-_.,;:=/"()[]{}?@ \t\u00e9'), { maxLength: 24 })
  .map((chars) => chars.join('').replace(/^[ \t]+|[ \t]+$/g, ''));
const ows = fc.constantFrom('', ' ', '  ', '\t', ' \t');
const field = fc.tuple(token, ows, fieldValue, ows).map(([n, a, v, b]) => ({ name: n, line: `${n}:${a}${v}${b}` }));
const target = fc
  .tuple(
    fc.array(fc.constantFrom(...'abz09-._~%/'), { maxLength: 20 }),
    fc.option(fc.array(fc.constantFrom(...'az09=&,%'), { maxLength: 12 })),
  )
  .map(([path, query]) => `/${path.join('')}${query === null ? '' : `?${query.join('')}`}`);
const bytes = (max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const hexSize = (size: number): fc.Arbitrary<string> =>
  fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 })).map(([upper, zeros]) => {
    const hex = size.toString(16);
    const padded = '0'.repeat(Math.min(zeros, 8 - hex.length)) + hex;
    return upper ? padded.toUpperCase() : padded;
  });
const extension = fc.constantFrom('', ';a', ';name=value', ';q="quoted string"', ';a=1;b=2');
const chunk = fc
  .uint8Array({ minLength: 1, maxLength: 200 })
  .chain((data) =>
    fc
      .tuple(hexSize(data.length), extension)
      .map(([size, ext]) => Buffer.concat([Buffer.from(`${size}${ext}\r\n`), data, Buffer.from('\r\n')])),
  );
const trailer = fc.tuple(fc.constantFrom('X-T', 'Expires', 'x-checksum'), fieldValue).map(([n, v]) => `${n}: ${v}\r\n`);
const body = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  bytes(400).map((data) => ({ kind: 'length' as const, data })),
  fc
    .tuple(fc.array(chunk, { maxLength: 5 }), extension, fc.array(trailer, { maxLength: 3 }))
    .map(([chunks, lastExt, trailers]) => ({ kind: 'chunked' as const, chunks, lastExt, trailers })),
);

interface Generated {
  method: string;
  target: string;
  fields: { name: string; line: string }[];
  body:
    | { kind: 'none' }
    | { kind: 'length'; data: Buffer }
    | { kind: 'chunked'; chunks: Buffer[]; lastExt: string; trailers: string[] };
}
const request: fc.Arbitrary<Generated> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
  target,
  // One of each name, except x-list, a list field that may repeat (its values are joined).
  fields: fc
    .array(field, { maxLength: 6 })
    .map((fs) => fs.filter((f, i) => f.name === 'x-list' || fs.findIndex((g) => g.name === f.name) === i)),
  body,
});

function render(r: Generated, last: 'keep-alive' | 'close' | 'http10'): Buffer {
  const version = last === 'http10' && r.body.kind !== 'chunked' ? 'HTTP/1.0' : 'HTTP/1.1';
  const lines = [`${r.method} ${r.target} ${version}`, 'Host: padlock.test', ...r.fields.map((f) => f.line)];
  if (last === 'close') lines.push('Connection: close');
  const parts: Buffer[] = [];
  if (r.body.kind === 'length') lines.push(`Content-Length: ${r.body.data.length}`);
  if (r.body.kind === 'chunked') lines.push('Transfer-Encoding: chunked');
  parts.push(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
  if (r.body.kind === 'length') parts.push(r.body.data);
  if (r.body.kind === 'chunked') {
    parts.push(...r.body.chunks, Buffer.from(`0${r.body.lastExt}\r\n${r.body.trailers.join('')}\r\n`, 'latin1'));
  }
  return Buffer.concat(parts);
}

const stream = fc
  .tuple(
    fc.array(request, { minLength: 1, maxLength: 5 }),
    fc.constantFrom('keep-alive', 'close', 'http10'),
    fc.boolean(),
  )
  .map(([requests, last, emptyLines]) => {
    const rendered = requests.map((r, i) =>
      render(r, i === requests.length - 1 ? (last as 'keep-alive') : 'keep-alive'),
    );
    // RFC 9112 section 2.2: empty lines before a request line are skipped.
    return Buffer.concat(emptyLines ? rendered.flatMap((b) => [Buffer.from('\r\n'), b]) : rendered);
  });
const offsets = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

describe('request parser', () => {
  it("uses node:http's own parser as its oracle on this Node.js", () => {
    const outcome = llhttp([Buffer.from('GET /a HTTP/1.1\r\nHost: h\r\n\r\n')]);
    assert.deepEqual(outcome, {
      requests: [{ method: 'GET', target: '/a', headers: { host: 'h' }, body: '' }],
      error: undefined,
    });
  });

  it('reads random pipelined streams, cut at random offsets, exactly as llhttp does and as when uncut', () => {
    fc.assert(
      fc.property(stream, offsets, (bytes, fractions) => {
        const pieces = cut(
          bytes,
          fractions.map((f) => Math.floor(f * bytes.length)),
        );
        const whole = padlock([bytes]);
        assert.equal(whole.error, undefined, whole.error);
        assert.deepEqual(padlock(pieces), whole, 'cut differently from uncut');
        assert.deepEqual(llhttp(pieces), whole, 'differs from llhttp');
      }),
      { numRuns: 3000 },
    );
  });

  it('never frames a request differently from llhttp: on mutated streams, every request both read is the same', (t) => {
    const interesting = [...'\r\n \t;:="0a,-'].map((c) => c.charCodeAt(0));
    const mutation = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom('replace', 'insert', 'delete'),
      byte: fc.constantFrom(...interesting),
    });
    let nodeOnly = 0;
    fc.assert(
      fc.property(stream, fc.array(mutation, { minLength: 1, maxLength: 3 }), (bytes, mutations) => {
        let mutated = bytes;
        for (const m of mutations) {
          const i = m.at % (mutated.length + 1);
          const rest = mutated.subarray(m.kind === 'insert' ? i : i + 1);
          const put = m.kind === 'delete' ? [] : [m.byte];
          mutated = Buffer.concat([mutated.subarray(0, i), Buffer.from(put), rest]);
        }
        const ours = padlock([mutated]);
        const node = llhttp([mutated]);
        // Where both read a request, they read the same one: no request is framed two ways.
        const both = Math.min(ours.requests.length, node.requests.length);
        assert.deepEqual(
          ours.requests.slice(0, both),
          node.requests.slice(0, both),
          JSON.stringify(mutated.toString('latin1')),
        );
        if (ours.error === undefined && node.error === undefined) assert.deepEqual(ours.requests, node.requests);
        if (ours.error === undefined && node.error !== undefined) nodeOnly++;
      }),
      { numRuns: 5000 },
    );
    // Some streams llhttp refuses are not refused (yet) by Padlock: any method token, a head whose
    // bad line comes before its end has arrived, bytes after a request that closes the connection
    // (never read as a request by the connection). Framed the same as far as llhttp read them.
    t.diagnostic(`${nodeOnly} of 5000 mutated streams read whole by Padlock and refused by llhttp`);
  });

  it('reads a pipelined stream of every framing the same at every single split, and byte by byte', () => {
    const bytes = Buffer.from(
      '\r\nGET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-L: 1\r\nx-l: 2\r\n\r\n' +
        'POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello' +
        'POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5;ext=1\r\nhello\r\n000A\r\n0123456789\r\n0;last\r\nX-T: 1\r\nX-U: 2\r\n\r\n' +
        'DELETE /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
      'latin1',
    );
    const whole = padlock([bytes]);
    assert.deepEqual(
      whole.requests.map((r) => [r.method, r.target, r.body]),
      [
        ['GET', '/a?x=1', ''],
        ['POST', '/b', 'hello'],
        ['POST', '/c', 'hello0123456789'],
        ['DELETE', '/d', ''],
      ],
    );
    assert.deepEqual(llhttp([bytes]), whole);
    for (let i = 0; i <= bytes.length; i++) {
      const pieces = cut(bytes, [i]);
      assert.deepEqual(padlock(pieces), whole, `split at ${i}`);
      assert.deepEqual(llhttp(pieces), whole, `llhttp, split at ${i}`);
    }
    const single = [...bytes].map((b) => Buffer.from([b]));
    assert.deepEqual(padlock(single), whole, 'byte by byte');
  });
});

/** A chunked request to /u whose first chunk-size line is `line`. */
function withChunkLine(line: string): Buffer {
  return Buffer.from(
    `POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${line}\r\na\r\n0\r\n\r\n`,
    'latin1',
  );
}

/** Padlock's verdict on `bytes` for every way of sending them in two writes, and byte by byte: all must agree. */
function verdictAtEverySplit(bytes: Buffer, limits: ParserLimits = LIMITS, statusOnly = false): string {
  const verdicts = new Set<string>();
  const verdict = (outcome: Outcome): string =>
    outcome.error === undefined
      ? `ok ${outcome.requests.length}`
      : statusOnly
        ? outcome.error.slice(0, 3)
        : outcome.error;
  for (let i = 0; i <= bytes.length; i++) verdicts.add(verdict(padlock(cut(bytes, [i]), limits)));
  verdicts.add(
    verdict(
      padlock(
        [...bytes].map((b) => Buffer.from([b])),
        limits,
      ),
    ),
  );
  assert.equal(verdicts.size, 1, `the verdict depends on how the bytes arrive: ${[...verdicts].join(' | ')}`);
  return [...verdicts][0]!;
}

describe('request parser limits, however the bytes arrive', () => {
  it('a chunk-size line of 1,024 bytes passes, of 1,025 fails, at every split', () => {
    assert.equal(verdictAtEverySplit(withChunkLine(`1;${'e'.repeat(1022)}`)), 'ok 1');
    assert.equal(verdictAtEverySplit(withChunkLine(`1;${'e'.repeat(1023)}`)), '400 a chunk line is too long');
    assert.equal(verdictAtEverySplit(withChunkLine(`${'0'.repeat(7)}1${' '.repeat(1014)};a`)), 'ok 1');
    assert.equal(verdictAtEverySplit(withChunkLine(`1${' '.repeat(1023)};a`)), '400 a chunk line is too long');
  });

  it('chunk extensions are bounded per request, not only per line', () => {
    const line = `;${'e'.repeat(1000)}`;
    const chunks = (n: number): Buffer =>
      Buffer.from(
        `POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${`1${line}\r\na\r\n`.repeat(n)}0\r\n\r\n`,
        'latin1',
      );
    assert.equal(verdictAtEverySplit(chunks(4)), 'ok 1');
    assert.equal(verdictAtEverySplit(chunks(5)), '400 the chunk extensions are too long');
  });

  it('the head, trailers and body limits hold at every split', () => {
    const small: ParserLimits = { ...LIMITS, maxHeadBytes: 64, maxBodyBytes: 8 };
    const head = (extra: number): Buffer =>
      Buffer.from(`GET / HTTP/1.1\r\nHost: h\r\nX: ${'v'.repeat(extra)}\r\n\r\n`, 'latin1');
    const fits = 64 - head(0).length;
    assert.equal(verdictAtEverySplit(head(fits), small), 'ok 1');
    assert.equal(verdictAtEverySplit(head(fits + 1), small), '431 the request headers are too large');
    const trailers = (n: number): Buffer =>
      Buffer.from(`POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${'T: 1\r\n'.repeat(n)}\r\n`);
    assert.equal(verdictAtEverySplit(trailers(10), small), 'ok 1');
    assert.equal(verdictAtEverySplit(trailers(11), small), '431 the request trailers are too large');
    const chunked = (sizes: number[]): Buffer =>
      Buffer.from(
        `POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${sizes.map((s) => `${s.toString(16)}\r\n${'b'.repeat(s)}\r\n`).join('')}0\r\n\r\n`,
      );
    assert.equal(verdictAtEverySplit(chunked([3, 5]), small), 'ok 1');
    assert.equal(verdictAtEverySplit(chunked([3, 6]), small), 'too large');
  });
});

/*
 * Framings node:http refuses or accepts, with what Padlock does. Where the two differ, Padlock
 * is the stricter one or follows RFC 9112 where llhttp does not; docs/api.md lists each row
 * whose two verdicts differ.
 */
const H = 'Host: h\r\n';
const TE = 'Transfer-Encoding: chunked\r\n';
// prettier-ignore
const HOSTILE: readonly { name: string; bytes: string; node: 'accept' | 'refuse'; padlock: 'accept' | 'refuse' }[] = [
  { name: 'CL and TE together', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\n${TE}\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'two different Content-Lengths', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`, node: 'refuse', padlock: 'refuse' },
  { name: 'a Content-Length with a sign', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: +1\r\n\r\na`, node: 'refuse', padlock: 'refuse' },
  { name: 'a Content-Length list', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\na`, node: 'refuse', padlock: 'refuse' },
  { name: 'chunked not last', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a coding before chunked', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'whitespace before a colon', bytes: `GET / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'an obs-fold line', bytes: `GET / HTTP/1.1\r\n${H}X: 1\r\n  2\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a bare LF ending a field', bytes: `GET / HTTP/1.1\r\n${H}X: 1\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a bare CR in a field', bytes: `GET / HTTP/1.1\r\n${H}X: 1\r2\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a NUL in a field value', bytes: `GET / HTTP/1.1\r\n${H}X: a\u0000b\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a bad chunk size', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\nzz\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a chunk longer than its size', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1\r\nab\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a chunk size over 8 hex digits', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n000000001\r\na\r\n0\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'a chunk size that overflows 64 bits', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1ffffffffffffffff\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a chunk size line ending in bare LF', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'whitespace before a chunk extension (BWS, RFC 9112 7.1.1)', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1 ;a\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'accept' },
  { name: 'whitespace after a chunk size, no extension', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1 \r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a space inside a chunk extension name', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;a b\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'whitespace after the ; of a chunk extension (BWS)', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1; a\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'accept' },
  { name: 'a chunk extension without a name', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;=x\r\na\r\n0\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'an empty chunk extension', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'an unterminated quoted chunk extension value', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;a="x\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a quoted-pair in a chunk extension value', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;a="x\\"y"\r\na\r\n0\r\n\r\n`, node: 'accept', padlock: 'accept' },
  { name: 'obs-text in a chunk extension name', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;\u00e9\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a space inside a token chunk extension value', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;a=b c\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a control character in a chunk extension', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;a\u0001\r\na\r\n0\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a trailer without a colon', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n0\r\nbroken\r\n\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'Transfer-Encoding on HTTP/1.0', bytes: `POST / HTTP/1.0\r\n${TE}\r\n0\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'no Host on HTTP/1.1', bytes: 'GET / HTTP/1.1\r\n\r\n', node: 'accept', padlock: 'refuse' },
  { name: 'two Hosts', bytes: `GET / HTTP/1.1\r\n${H}${H}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'an absolute-form target', bytes: `GET http://h/ HTTP/1.1\r\n${H}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'the asterisk form', bytes: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'HTTP/2.0 on the request line', bytes: `GET / HTTP/2.0\r\n${H}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'a lower-case version', bytes: `GET / http/1.1\r\n${H}\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'two spaces in the request line', bytes: `GET  / HTTP/1.1\r\n${H}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'a bare LF before the request line', bytes: `\nGET / HTTP/1.1\r\n${H}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'a TLS ClientHello', bytes: '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003\r\n\r\n', node: 'refuse', padlock: 'refuse' },
  { name: 'a repeated Authorization', bytes: `GET / HTTP/1.1\r\n${H}Authorization: a\r\nAuthorization: b\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'a repeated Content-Type', bytes: `GET / HTTP/1.1\r\n${H}Content-Type: a\r\nContent-Type: b\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'HTTP/1.2 on the request line', bytes: `GET / HTTP/1.2\r\n${H}\r\n`, node: 'refuse', padlock: 'refuse' },
  { name: 'a chunk-size line of 1,025 bytes', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n1;${'e'.repeat(1023)}\r\na\r\n0\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: '5 KiB of chunk extensions in one request', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n${`1;${'e'.repeat(1000)}\r\na\r\n`.repeat(5)}0\r\n\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'trailers over 16 KiB', bytes: `POST / HTTP/1.1\r\n${H}${TE}\r\n0\r\n${'X-T: 0123456789\r\n'.repeat(1000)}\r\n`, node: 'accept', padlock: 'refuse' },
  { name: 'data after Connection: close', bytes: `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`, node: 'refuse', padlock: 'accept' },
];

describe('hostile framings, against node:http', () => {
  for (const c of HOSTILE) {
    it(`${c.name}: node:http ${c.node}s, Padlock ${c.padlock}s`, () => {
      const bytes = Buffer.from(c.bytes, 'latin1');
      const node = llhttp([bytes]);
      const ours = padlock([bytes]);
      assert.equal(node.error === undefined ? 'accept' : 'refuse', c.node, `node:http: ${node.error ?? 'accepted'}`);
      assert.equal(ours.error === undefined ? 'accept' : 'refuse', c.padlock, `Padlock: ${ours.error ?? 'accepted'}`);
      // Whatever is refused is refused with the same status however it arrives (a bare CR is
      // named as a bad line end when the head is incomplete, as a bad field value when whole).
      verdictAtEverySplit(bytes, LIMITS, true);
    });
  }
});
