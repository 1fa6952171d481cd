import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequest, parseHead, type ParsedHead } from './parser.js';

/*
 * parseHead scans the head by hand; this reference states the same grammar
 * with split and regular expressions (as the layer first did). Both must
 * accept the same heads and read the same fields from them.
 */

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\/[\x21-\x7e]*) HTTP\/1\.([01])$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const SINGLE = new Set(['host', 'authorization', 'content-type', 'content-length']);

function reference(head: string): ParsedHead | 'bad' {
  const lines = head.split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (line === null) return 'bad';
  const headers = new Map<string, string>();
  for (const field of lines.slice(1)) {
    const colon = field.indexOf(':');
    if (colon <= 0 || !TOKEN.test(field.slice(0, colon))) return 'bad';
    const name = field.slice(0, colon).toLowerCase();
    const value = field.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) return 'bad';
    const seen = headers.get(name);
    if (seen === undefined) headers.set(name, value);
    else if (SINGLE.has(name)) {
      if (name !== 'content-length' || seen !== value) return 'bad';
    } else headers.set(name, `${seen}, ${value}`);
  }
  return { method: line[1]!, target: line[2]!, http10: line[3] === '0', headers };
}

function parsed(head: string): ParsedHead | 'bad' {
  try {
    return parseHead(head);
  } catch (error) {
    if (error instanceof BadRequest) return 'bad';
    throw error;
  }
}

// Pieces that are valid, nearly valid, or invalid in every position of a head.
const methods = fc.constantFrom('GET', 'POST', 'DELETE', 'get', 'M-SEARCH', 'GE T', '', 'G\x7f', 'PÖST');
const targets = fc.constantFrom('/', '/v1/keys/u1', '/a?b=c&d', '*', 'http://x/', '/a b', '/\x7f', '/é', '//');
const versions = fc.constantFrom(
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/1.2',
  'HTTP/2.0',
  'http/1.1',
  'HTTP/1.1 ',
  'HTTP/1.01',
  'HTTP/1.1/1',
  '',
);
const names = fc.constantFrom(
  'Host',
  'host',
  'HOST',
  'Authorization',
  'Content-Length',
  'content-type',
  'X-List',
  'Transfer-Encoding',
  'Accept',
  'Bad Name',
  '',
  'Ho^st',
  'Höst',
);
const values = fc.constantFrom(
  'x',
  ' spaced \t',
  '',
  '12',
  'a, b',
  'tab\there',
  'ctl\x01',
  'bare\rcr',
  'lf\nx',
  'é',
  'Bearer pl1.a',
);
const fieldLine = fc.oneof(
  fc.tuple(names, fc.constantFrom(':', ': ', ' :', ':\t'), values).map(([n, c, v]) => `${n}${c}${v}`),
  fc.constantFrom('no colon', ':empty name', '', ' folded: x'),
);
const heads = fc
  .tuple(
    methods,
    fc.constantFrom(' ', '  ', '\t'),
    targets,
    fc.constantFrom(' ', '  '),
    versions,
    fc.array(fieldLine, { maxLength: 6 }),
  )
  .map(([m, s1, t, s2, v, fields]) => [`${m}${s1}${t}${s2}${v}`, ...fields].join('\r\n'));

describe('parseHead', () => {
  it('accepts and reads exactly what the split-and-match grammar does', () => {
    fc.assert(
      fc.property(heads, (head) => {
        assert.deepEqual(parsed(head), reference(head), JSON.stringify(head));
      }),
      { numRuns: 20000 },
    );
  });

  it('agrees on arbitrary latin1 text too', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 80 }),
        (text) => {
          const head = `GET / HTTP/1.1\r\n${text}`;
          assert.deepEqual(parsed(head), reference(head), JSON.stringify(head));
        },
      ),
      { numRuns: 20000 },
    );
  });

  it('reads a typical request head', () => {
    const head = parseHead('GET /v1/keys/u1?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\nX-A: 1\r\nx-a: 2');
    assert.equal(head.method, 'GET');
    assert.equal(head.target, '/v1/keys/u1?x=1');
    assert.equal(head.http10, false);
    assert.deepEqual(Object.fromEntries(head.headers), { host: 'h', authorization: 'Bearer t', 'x-a': '1, 2' });
  });
});
