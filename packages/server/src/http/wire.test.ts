import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTestPki } from '../../../../scripts/testing/certs.mjs';
import { WireServer, type WireOptions, type WireRequest } from './wire.js';

/*
 * The HTTP/1.1 layer alone, over real sockets: framing, pipelining, limits,
 * timeouts, and the requests it must refuse. The handler echoes what it saw.
 */

const OPTIONS: WireOptions = {
  maxHeadBytes: 16384,
  maxBodyBytes: 1024,
  headersTimeoutMs: 400,
  requestTimeoutMs: 800,
  keepAliveTimeoutMs: 600,
};

interface Echo {
  method: string;
  target: string;
  body: string;
  framed: boolean;
  tooLarge: boolean;
  headers: Record<string, string>;
}

let server: WireServer;
let port: number;
let seen: WireRequest[] = [];
/** Answers wait this long (ms) before being sent, to hold a request in flight. */
let delayMs = 0;

before(async () => {
  server = new WireServer(OPTIONS, {
    onRequest(request) {
      seen.push(request);
      const echo: Echo = {
        method: request.method,
        target: request.target,
        body: request.body.toString('utf8'),
        framed: request.framed,
        tooLarge: request.bodyTooLarge,
        headers: Object.fromEntries(request.headers),
      };
      const send = (): void =>
        request.connection.respond(
          { status: request.bodyTooLarge ? 413 : 200, contentType: 'application/json', body: JSON.stringify(echo) },
          request.method === 'HEAD',
        );
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    },
    onBadRequest(connection, error) {
      connection.respond({
        status: error.status,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'BAD', message: error.message } }),
        close: true,
      });
    },
  });
  port = await server.listen(0, '127.0.0.1');
});

after(async () => {
  const stopped = server.stopAccepting();
  server.closeAllConnections();
  await stopped;
});

interface Raw {
  /** Everything the server sent until it closed the connection (or until `waitMs`). */
  text: string;
  closed: boolean;
}

/** Sends `parts` (with `gapMs` between them) on a new connection; collects what comes back. */
async function raw(
  parts: readonly (string | Buffer)[],
  { gapMs = 0, waitMs = 300, halfClose = false } = {},
): Promise<Raw> {
  const socket: Socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let text = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => {});
  const done = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      resolve();
    }),
  );
  for (const part of parts) {
    if (!socket.destroyed) socket.write(part);
    if (gapMs > 0) await sleep(gapMs);
  }
  if (halfClose && !socket.destroyed) socket.end();
  await Promise.race([done, sleep(waitMs)]);
  socket.destroy();
  return { text, closed };
}

interface Answer {
  status: number;
  head: string;
  body: string;
}

/** Splits a stream of responses (content-length framed) into answers. */
function answers(text: string): Answer[] {
  const out: Answer[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    assert.ok(end !== -1, `truncated response: ${JSON.stringify(rest.slice(0, 200))}`);
    const head = rest.slice(0, end);
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
    const length = status === 100 ? 0 : Number(/^content-length: (\d+)$/im.exec(head)?.[1] ?? 0);
    out.push({ status, head, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return out;
}

const GET = (target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;

describe('HTTP/1.1 wire layer', () => {
  it('answers a plain GET with keep-alive, a date and no-store, and keeps the connection open', async () => {
    const r = await raw([GET('/a?x=1')]);
    const [a] = answers(r.text);
    assert.equal(a?.status, 200);
    assert.match(a.head, /^connection: keep-alive$/im);
    assert.match(a.head, /^keep-alive: timeout=1$/im);
    assert.match(a.head, /^cache-control: no-store$/im);
    assert.match(a.head, /^date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/im);
    const echo = JSON.parse(a.body) as Echo;
    assert.deepEqual([echo.method, echo.target, echo.framed, echo.body], ['GET', '/a?x=1', false, '']);
    assert.equal(r.closed, false, 'closed a keep-alive connection before its idle timeout');
  });

  it('answers pipelined requests in order, one at a time, even when the first answer is slow', async () => {
    delayMs = 50;
    try {
      const r = await raw(
        [GET('/one') + GET('/two') + `POST /three HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc`],
        {
          waitMs: 500,
        },
      );
      const got = answers(r.text).map((a) => JSON.parse(a.body) as Echo);
      assert.deepEqual(
        got.map((e) => [e.target, e.body]),
        [
          ['/one', ''],
          ['/two', ''],
          ['/three', 'abc'],
        ],
      );
    } finally {
      delayMs = 0;
    }
  });

  it('reads a head and a body split across many writes, byte by byte', async () => {
    const request = `POST /split HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world`;
    const r = await raw(
      [...request].map((c) => Buffer.from(c, 'latin1')),
      { waitMs: 300 },
    );
    const [a] = answers(r.text);
    assert.equal((JSON.parse(a!.body) as Echo).body, 'hello world');
  });

  it('de-chunks a chunked body, with chunk extensions and trailers', async () => {
    const r = await raw([
      `POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `5;name=value\r\nhello\r\n`,
      `1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n`,
      GET('/after'),
    ]);
    const got = answers(r.text).map((a) => JSON.parse(a.body) as Echo);
    assert.equal(got[0]?.body, 'hello world');
    assert.equal(got[0]?.framed, true);
    assert.equal(got[1]?.target, '/after', 'the request after a chunked body was not read');
  });

  it('flags a declared body over the limit at once, answers it whole, then closes', async () => {
    const big = 'x'.repeat(OPTIONS.maxBodyBytes + 1);
    const r = await raw([`POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: ${big.length}\r\n\r\n`, big, GET('/next')]);
    const all = answers(r.text);
    assert.equal(all.length, 1, 'nothing after a refused body can be framed');
    assert.equal(all[0]?.status, 413);
    assert.equal((JSON.parse(all[0].body) as Echo).tooLarge, true);
    assert.match(all[0].head, /^connection: close$/im);
    assert.equal(r.closed, true);
  });

  it('flags a chunked body over the limit', async () => {
    const chunk = 'y'.repeat(600);
    const r = await raw([
      `POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`,
    ]);
    const [a] = answers(r.text);
    assert.equal(a?.status, 413);
    assert.equal(r.closed, true);
  });

  it('refuses a head with bare LF line ends at once, not after the head timeout', async () => {
    for (const head of ['GET /x HTTP/1.1\nHost: t\n\n', 'GET /x HTTP/1.1\r\nHost: t\rX: 1\r\n']) {
      const start = performance.now();
      const r = await raw([head], { waitMs: 2000 });
      assert.equal(answers(r.text)[0]?.status, 400, JSON.stringify(head));
      assert.equal(r.closed, true);
      assert.ok(performance.now() - start < OPTIONS.headersTimeoutMs, 'waited for the head timeout');
    }
  });

  it('answers 431 to trailers over the head limit', async () => {
    const trailers = 'X-T: 0123456789\r\n'.repeat(Math.ceil(OPTIONS.maxHeadBytes / 17) + 1);
    const r = await raw([`POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${trailers}\r\n`]);
    assert.equal(answers(r.text)[0]?.status, 431);
    assert.equal(r.closed, true);
  });

  it('answers 100 Continue to Expect: 100-continue before the body is sent', async () => {
    const r = await raw([`POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n`], {
      waitMs: 100,
    });
    assert.match(r.text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  });

  const refused: [string, string][] = [
    [
      'Content-Length and Transfer-Encoding together',
      'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'two different Content-Lengths',
      'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    ],
    ['a Content-Length that is not digits', 'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc'],
    ['a Content-Length list', 'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['a transfer-coding other than chunked', 'POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'],
    ['Transfer-Encoding on HTTP/1.0', 'POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a bad chunk size', 'POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    [
      'a chunk without its CRLF',
      'POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n',
    ],
    ['whitespace before a colon', 'GET /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n'],
    ['an obs-fold continuation line', 'GET /x HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n  folded\r\n\r\n'],
    ['a bare LF inside the head', 'GET /x HTTP/1.1\r\nHost: t\nX-A: 1\r\n\r\n'],
    ['a NUL in a header value', 'GET /x HTTP/1.1\r\nHost: t\r\nX-A: a\u0000b\r\n\r\n'],
    ['a header without a name', 'GET /x HTTP/1.1\r\nHost: t\r\n: v\r\n\r\n'],
    ['a second Host', 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['a second Authorization', 'GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n'],
    ['no Host on HTTP/1.1', 'GET /x HTTP/1.1\r\nX-A: 1\r\n\r\n'],
    ['an absolute-form target', 'GET http://t/x HTTP/1.1\r\nHost: t\r\n\r\n'],
    ['the asterisk form', 'OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n'],
    ['HTTP/2 on the request line', 'GET /x HTTP/2.0\r\nHost: t\r\n\r\n'],
    ['two spaces in the request line', 'GET  /x HTTP/1.1\r\nHost: t\r\n\r\n'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: t\r\n\r\n'],
    ['a non-ASCII target', 'GET /\u00e9 HTTP/1.1\r\nHost: t\r\n\r\n'],
    ['a lower-case version', 'GET /x http/1.1\r\nHost: t\r\n\r\n'],
    ['garbage', '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003\r\n\r\n'],
  ];
  for (const [name, request] of refused) {
    it(`refuses ${name} with one 400, then closes`, async () => {
      seen = [];
      const r = await raw([Buffer.from(request, 'latin1')]);
      const all = answers(r.text);
      assert.equal(all.length, 1, r.text);
      assert.equal(all[0]?.status, 400, r.text);
      assert.match(all[0].head, /^connection: close$/im);
      assert.equal(r.closed, true, 'the connection stayed open');
      assert.equal(seen.length, 0, 'the handler saw a request that should have been refused');
    });
  }

  it('accepts the same Content-Length twice, list fields joined, and HTTP/1.0 without Host, then closes 1.0', async () => {
    const same = answers(
      (
        await raw([
          `POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\ncontent-length: 2\r\nX-L: a\r\nx-l: b\r\n\r\nok`,
        ])
      ).text,
    );
    const echo = JSON.parse(same[0]!.body) as Echo;
    assert.equal(echo.body, 'ok');
    assert.equal(echo.headers['x-l'], 'a, b');
    const old = await raw(['GET /old HTTP/1.0\r\n\r\n']);
    assert.equal(answers(old.text)[0]?.status, 200);
    assert.equal(old.closed, true, 'an HTTP/1.0 connection is not kept alive');
  });

  it('closes after answering a request that says Connection: close', async () => {
    const r = await raw([GET('/x', 'Connection: close\r\n') + GET('/ignored')]);
    const all = answers(r.text);
    assert.equal(all.length, 1);
    assert.match(all[0]!.head, /^connection: close$/im);
    assert.equal(r.closed, true);
  });

  it('sends no body for HEAD', async () => {
    const r = await raw([`HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n` + GET('/g')]);
    const end = r.text.indexOf('\r\n\r\n');
    assert.match(r.text.slice(end + 4), /^HTTP\/1\.1 200 OK\r\n/, 'HEAD answer carried a body');
  });

  it('answers 431 to a head over the limit, also when it never ends', async () => {
    const long = `GET /x HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(OPTIONS.maxHeadBytes)}\r\n\r\n`;
    const [a] = answers((await raw([long])).text);
    assert.equal(a?.status, 431);
    const endless = await raw([`GET /x HTTP/1.1\r\nX-Big: ${'a'.repeat(OPTIONS.maxHeadBytes + 10)}`]);
    assert.equal(answers(endless.text)[0]?.status, 431);
    assert.equal(endless.closed, true);
  });

  it('answers 408 when a head or a body does not arrive in time (slowloris), and closes', async () => {
    const start = performance.now();
    const head = await raw(['GET /slow HTTP/1.1\r\nHost: t\r\n', 'X-A: 1\r\n'], { gapMs: 100, waitMs: 2000 });
    const ms = performance.now() - start;
    assert.equal(answers(head.text)[0]?.status, 408);
    assert.equal(head.closed, true);
    assert.ok(ms >= OPTIONS.headersTimeoutMs && ms < OPTIONS.headersTimeoutMs + 1500, `408 after ${ms} ms`);
    const body = await raw(['POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc'], { waitMs: 2500 });
    assert.equal(answers(body.text)[0]?.status, 408);
    assert.equal(body.closed, true);
  });

  it('answers every request of a client that half-closes after sending them, then closes', async () => {
    delayMs = 30;
    try {
      const r = await raw([GET('/one') + `POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok`], {
        halfClose: true,
        waitMs: 500,
      });
      const got = answers(r.text);
      assert.deepEqual(
        got.map((a) => [a.status, (JSON.parse(a.body) as Echo).target]),
        [
          [200, '/one'],
          [200, '/two'],
        ],
      );
      assert.match(got[1]!.head, /^connection: close$/im);
      assert.equal(r.closed, true, 'the connection stayed open after the client half-closed');
    } finally {
      delayMs = 0;
    }
  });

  for (const [name, cut] of [
    ['a head', 'GET /cut HTTP/1.1\r\nHost: t\r\n'],
    ['a declared body', 'POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc'],
    ['a chunked body', 'POST /cut HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n'],
  ] as const) {
    it(`answers 400 at once when the client half-closes in the middle of ${name}`, async () => {
      seen = [];
      const started = performance.now();
      const r = await raw([GET('/first') + cut], { halfClose: true, waitMs: 1000 });
      const got = answers(r.text);
      assert.deepEqual(
        got.map((a) => a.status),
        [200, 400],
      );
      assert.match(got[1]!.body, /closed its side before the request was complete/);
      assert.equal(r.closed, true);
      assert.ok(performance.now() - started < OPTIONS.headersTimeoutMs, 'the 400 waited for a timeout');
      assert.deepEqual(
        seen.map((s) => s.target),
        ['/first'],
      );
    });
  }

  it('closes without an answer when the client half-closes between requests', async () => {
    const r = await raw([GET('/only') + '\r\n'], { halfClose: true, waitMs: 1000 });
    assert.deepEqual(
      answers(r.text).map((a) => a.status),
      [200],
    );
    assert.equal(r.closed, true);
  });

  it('closes a keep-alive connection left idle past its timeout', async () => {
    const r = await raw([GET('/x')], { waitMs: 2000 });
    assert.equal(answers(r.text).length, 1);
    assert.equal(r.closed, true, 'an idle connection was never closed');
  });

  it('stops reading from a client that sends requests but never reads answers', async () => {
    const socket: Socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.on('error', () => {});
    socket.pause();
    seen = [];
    const request = Buffer.from(GET(`/${'p'.repeat(2000)}`));
    let sent = 0;
    // Bounded: the kernel buffers fill on both sides, then writes back up here.
    for (let i = 0; i < 20000 && socket.writableLength < 4 * 1024 * 1024; i++) {
      socket.write(request);
      sent++;
    }
    // Wait (bounded) until the server has stopped handling: both sides' buffers are full by then.
    let handled = -1;
    for (let i = 0; i < 50 && handled !== seen.length; i++) {
      handled = seen.length;
      await sleep(200);
    }
    const read = [...server.connections].reduce((sum, c) => sum + c.socket.bytesRead, 0);
    assert.ok(handled < sent, `the server handled all ${sent} requests of a client that reads nothing`);
    assert.equal(seen.length, handled, 'the server went on handling requests whose answers cannot be sent');
    // It stops reading too: what it has read but not handled is bounded by one request's limits and
    // a read's size, not by what the client sends.
    const held = read - handled * request.length;
    const bound = OPTIONS.maxHeadBytes + OPTIONS.maxBodyBytes + 4 * 65536;
    assert.ok(held < bound, `the server holds ${held} unhandled bytes (read ${read} of ${sent * request.length})`);
    socket.destroy();
  });

  it('reads every connection into the shared read buffer on this Node.js', async () => {
    seen = [];
    await raw([GET('/adopted')]);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.connection.adopted, true, 'sockets are read the slow way (one allocation per read)');
  });

  it('keeps what it holds between reads intact while other connections reuse the read buffer', async () => {
    // Eight clients send a head, a body and a pipelined request in pieces, interleaved, and their
    // answers are held back: every piece a connection keeps (a partial head, a body, a waiting
    // request) must survive reads by the others into the same buffer.
    delayMs = 30;
    try {
      const clients = Array.from({ length: 8 }, (_, i) => {
        const body = `body of client ${i} `.repeat(3 + i);
        const request =
          `POST /client/${i} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n${body}` + GET(`/after/${i}`);
        const bodyAt = request.indexOf('\r\n\r\n') + 4;
        // A piece of the head; the rest of it and a little body; body only; the rest.
        const cut = [0, 20 + i, bodyAt + 5, bodyAt + 25 + i, request.length - 10, request.length];
        return { i, body, parts: cut.slice(1).map((end, k) => request.slice(cut[k], end)) };
      });
      const results = await Promise.all(
        clients.map(async ({ i, parts }) => {
          await sleep(i);
          return raw(parts, { gapMs: 4, waitMs: 600 });
        }),
      );
      results.forEach((r, i) => {
        const got = answers(r.text).map((a) => JSON.parse(a.body) as Echo);
        assert.deepEqual(
          got.map((e) => [e.target, e.body]),
          [
            [`/client/${i}`, clients[i]!.body],
            [`/after/${i}`, ''],
          ],
          `client ${i}`,
        );
      });
    } finally {
      delayMs = 0;
    }
  });

  it('serves TLS sockets from a tls.Server (accept), counted and read into the shared read buffer', async () => {
    // Eight TLS clients send a head, a body and a pipelined request in pieces (one TLS record
    // each), interleaved, their answers held back. Each socket is handed over 20 ms after its
    // handshake: what node:tls decrypted meanwhile must be handled first, then the reads into the
    // shared buffer.
    const pkiDir = mkdtempSync(join(tmpdir(), 'padlock-wire-tls-'));
    const pki = makeTestPki(pkiDir);
    const other = createTlsServer(
      { cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key), allowHalfOpen: true },
      (socket) => setTimeout(() => server.accept(socket), 20),
    );
    const otherPort = await new Promise<number>((resolve) =>
      other.listen(0, '127.0.0.1', () => resolve((other.address() as { port: number }).port)),
    );
    const ca = readFileSync(pki.ca.cert);
    delayMs = 30;
    try {
      seen = [];
      const results = await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const body = `body of client ${i} `.repeat(3 + i);
          const request =
            `POST /tls/${i} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n${body}` + GET(`/after/${i}`);
          const bodyAt = request.indexOf('\r\n\r\n') + 4;
          const cut = [0, 20 + i, bodyAt + 5, bodyAt + 25 + i, request.length - 10, request.length];
          const parts = cut.slice(1).map((end, k) => request.slice(cut[k], end));
          const socket = tlsConnect({ port: otherPort, host: '127.0.0.1', ca });
          socket.on('error', () => {});
          let text = '';
          socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
          await once(socket, 'secureConnect');
          await sleep(i);
          for (const part of parts) {
            socket.write(part);
            await sleep(4);
          }
          for (let wait = 0; wait < 100 && answers(text).length < 2; wait++) await sleep(10);
          return { socket, body, got: answers(text).map((a) => JSON.parse(a.body) as Echo) };
        }),
      );
      results.forEach(({ body, got }, i) =>
        assert.deepEqual(
          got.map((e) => [e.target, e.body]),
          [
            [`/tls/${i}`, body],
            [`/after/${i}`, ''],
          ],
          `client ${i}`,
        ),
      );
      assert.equal(seen.length, 16);
      for (const request of seen) {
        assert.equal(request.connection.adopted, true, 'TLS sockets are read the slow way (one allocation per read)');
      }
      for (const request of seen) {
        assert.ok(server.connections.has(request.connection), 'an accepted connection is not counted');
      }
      for (const { socket } of results) socket.destroy();
    } finally {
      delayMs = 0;
      await new Promise((resolve) => other.close(resolve));
      rmSync(pkiDir, { recursive: true, force: true });
    }
  });

  it('stops reading from a TLS client that sends requests but never reads answers', async () => {
    // The same bound as for plain sockets, through the TLSWrap's reads into the shared buffer
    // (pause and resume stop and start the TLS handle's reads).
    const pkiDir = mkdtempSync(join(tmpdir(), 'padlock-wire-tls-'));
    const pki = makeTestPki(pkiDir);
    const other = createTlsServer(
      { cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key), allowHalfOpen: true },
      (socket) => server.accept(socket),
    );
    const otherPort = await new Promise<number>((resolve) =>
      other.listen(0, '127.0.0.1', () => resolve((other.address() as { port: number }).port)),
    );
    try {
      const socket = tlsConnect({ port: otherPort, host: '127.0.0.1', ca: readFileSync(pki.ca.cert) });
      socket.on('error', () => {});
      await once(socket, 'secureConnect');
      socket.pause();
      seen = [];
      const request = Buffer.from(GET(`/${'p'.repeat(2000)}`));
      let sent = 0;
      for (let i = 0; i < 20000 && socket.writableLength < 4 * 1024 * 1024; i++) {
        socket.write(request);
        sent++;
      }
      let handled = -1;
      for (let i = 0; i < 50 && handled !== seen.length; i++) {
        handled = seen.length;
        await sleep(200);
      }
      assert.ok(handled > 0, 'the server handled nothing');
      assert.ok(seen[0]!.connection.adopted, 'the TLS socket does not read into the shared buffer');
      const read = seen[0]!.connection.socket.bytesRead;
      assert.ok(handled < sent, `the server handled all ${sent} requests of a client that reads nothing`);
      assert.equal(seen.length, handled, 'the server went on handling requests whose answers cannot be sent');
      const held = read - handled * request.length;
      const bound = OPTIONS.maxHeadBytes + OPTIONS.maxBodyBytes + 4 * 65536;
      assert.ok(held < bound, `the server holds ${held} unhandled bytes (read ${read} of ${sent * request.length})`);
      socket.destroy();
    } finally {
      await new Promise((resolve) => other.close(resolve));
      rmSync(pkiDir, { recursive: true, force: true });
    }
  });

  it('interoperates with node:http as a client (keep-alive, chunked body)', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/node' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.write('part one, ');
      req.end('part two');
    });
    assert.equal((JSON.parse(reply) as Echo).body, 'part one, part two');
  });
});
