import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ALL_RIGHTS,
  assertError,
  metricValue,
  startHarness,
  type CallOptions,
  type Harness,
  type HttpReply,
} from '../testing/harness.js';

/*
 * Every bad input gets its exact status and stable code in the error shape,
 * never a 500. One table; each row is one request.
 */

interface BadInput {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly json?: unknown;
  readonly body?: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  /** The Authorization header to send instead of the admin's; null sends none. */
  readonly authorization?: (h: Harness) => string | null;
  readonly status: number;
  readonly code: string;
  /** When set, the message must match: precise messages are part of the contract. */
  readonly message?: RegExp;
}

const LONG_ID = 'a'.repeat(129);
const USER_ID_MESSAGE = /must be 1-128 characters/;
const MAX_BATCH = 500;
const MAX_BODY = 65536;

function parts(credential: string): [string, string, string, string] {
  const split = credential.split('.');
  assert.equal(split.length, 4);
  return split as [string, string, string, string];
}

const randomSecret = (): string => randomBytes(32).toString('base64url');
const admin = (h: Harness): string => h.credentials['admin'] ?? '';

// One row per case, unformatted, so it reads as the table it is.
// prettier-ignore
const CASES: readonly BadInput[] = [
  // User ids in paths.
  { name: 'user id too long in path', method: 'GET', path: `/v1/keys/${LONG_ID}`, status: 400, code: 'INVALID_USER_ID', message: USER_ID_MESSAGE },
  { name: 'user id of 128 + 1 chars on metadata', method: 'GET', path: `/v1/keychains/${LONG_ID}`, status: 400, code: 'INVALID_USER_ID' },
  { name: 'unicode user id in path', method: 'GET', path: '/v1/keys/%C3%A9t%C3%A9', status: 400, code: 'INVALID_USER_ID' },
  { name: 'empty user id in path', method: 'GET', path: '/v1/keys/', status: 400, code: 'INVALID_USER_ID' },
  { name: '".." as user id', method: 'GET', path: '/v1/keys/..', status: 400, code: 'INVALID_USER_ID' },
  { name: 'percent-encoded ".." as user id', method: 'GET', path: '/v1/keys/%2e%2e', status: 400, code: 'INVALID_USER_ID' },
  { name: 'percent-encoded slash in user id', method: 'GET', path: '/v1/keys/alice%2Fbob', status: 400, code: 'INVALID_USER_ID' },
  { name: 'percent-encoded NUL in user id', method: 'GET', path: '/v1/keys/alice%00', status: 400, code: 'INVALID_USER_ID' },
  { name: 'space in user id', method: 'GET', path: '/v1/keys/al%20ice', status: 400, code: 'INVALID_USER_ID' },
  { name: 'user id starting with a dash', method: 'GET', path: '/v1/keys/-alice', status: 400, code: 'INVALID_USER_ID' },
  { name: 'broken percent-encoding in path', method: 'GET', path: '/v1/keys/%E0%A4%A', status: 400, code: 'INVALID_REQUEST', message: /percent-encoding/ },
  { name: 'bad user id on shred keychain', method: 'DELETE', path: '/v1/keychains/a%2Fb', status: 400, code: 'INVALID_USER_ID' },
  { name: 'bad user id on shred category', method: 'DELETE', path: '/v1/keychains/..%2F/categories/profile', status: 400, code: 'INVALID_USER_ID' },
  { name: 'bad user id on rotate', method: 'POST', path: '/v1/keychains/%C3%A9/categories/profile/rotate', status: 400, code: 'INVALID_USER_ID' },
  // Categories in paths.
  { name: 'upper-case category in path', method: 'DELETE', path: '/v1/keychains/alice/categories/Profile', status: 400, code: 'INVALID_CATEGORY' },
  { name: 'unknown category in path', method: 'DELETE', path: '/v1/keychains/alice/categories/music', status: 400, code: 'UNKNOWN_CATEGORY', message: /"music" is not one of: profile, payments, advertising/ },
  { name: 'unknown category on rotate', method: 'POST', path: '/v1/keychains/alice/categories/music/rotate', status: 400, code: 'UNKNOWN_CATEGORY' },
  { name: 'category of 33 characters on rotate', method: 'POST', path: `/v1/keychains/alice/categories/${'c'.repeat(33)}/rotate`, status: 400, code: 'INVALID_CATEGORY' },
  // Query strings.
  { name: 'bad category in query', method: 'GET', path: '/v1/keys/alice?categories=Profile', status: 400, code: 'INVALID_CATEGORY' },
  { name: 'unknown category in query', method: 'GET', path: '/v1/keys/alice?categories=music', status: 400, code: 'UNKNOWN_CATEGORY' },
  { name: 'repeated category in query', method: 'GET', path: '/v1/keys/alice?categories=profile,profile', status: 400, code: 'INVALID_REQUEST', message: /twice/ },
  { name: 'categories given twice', method: 'GET', path: '/v1/keys/alice?categories=profile&categories=payments', status: 400, code: 'INVALID_QUERY', message: /once/ },
  { name: 'empty categories query', method: 'GET', path: '/v1/keys/alice?categories=', status: 400, code: 'INVALID_CATEGORY' },
  { name: 'trailing comma in categories', method: 'GET', path: '/v1/keys/alice?categories=profile,', status: 400, code: 'INVALID_CATEGORY' },
  { name: 'unknown query parameter', method: 'GET', path: '/v1/keys/alice?version=2', status: 400, code: 'INVALID_QUERY', message: /"version"/ },
  { name: 'query on a route that takes none', method: 'GET', path: '/v1/keychains/alice?verbose=1', status: 400, code: 'INVALID_QUERY' },
  { name: 'query on batch-get', method: 'POST', path: '/v1/keys/batch-get?categories=profile', json: { userIds: ['alice'] }, status: 400, code: 'INVALID_QUERY' },
  // Bodies: framing and media type.
  { name: 'invalid JSON', method: 'POST', path: '/v1/keychains', body: '{"userId":', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'empty body', method: 'POST', path: '/v1/keychains', body: '', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON', message: /empty/ },
  { name: 'no body at all', method: 'POST', path: '/v1/keys/batch-get', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'wrong content-type', method: 'POST', path: '/v1/keychains', body: '{"userId":"alice"}', headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'missing content-type', method: 'POST', path: '/v1/keychains', body: '{"userId":"alice"}', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'JSON with a charset other than utf-8', method: 'POST', path: '/v1/keychains', body: '{"userId":"alice"}', headers: { 'content-type': 'application/json; charset=latin1' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'body on a GET', method: 'GET', path: '/v1/keys/alice', body: '{"x":1}', status: 400, code: 'INVALID_REQUEST', message: /no request body/ },
  { name: 'body on a DELETE', method: 'DELETE', path: '/v1/keychains/alice', body: 'please', status: 400, code: 'INVALID_REQUEST' },
  { name: 'body on rotate', method: 'POST', path: '/v1/keychains/alice/categories/profile/rotate', json: { version: 9 }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'body over maxBodyBytes (declared)', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], pad: 'x'.repeat(MAX_BODY) }, status: 413, code: 'BODY_TOO_LARGE', message: /65536/ },
  { name: 'body over maxBodyBytes (chunked)', method: 'POST', path: '/v1/keys/batch-get', body: `{"userIds":["${'a'.repeat(MAX_BODY)}"]}`, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, status: 413, code: 'BODY_TOO_LARGE' },
  // Bodies: create.
  { name: 'unknown body field', method: 'POST', path: '/v1/keychains', json: { userId: 'alice', admin: true }, status: 400, code: 'INVALID_REQUEST', message: /unknown field "admin"/ },
  { name: 'missing userId', method: 'POST', path: '/v1/keychains', json: {}, status: 400, code: 'INVALID_REQUEST', message: /userId is required/ },
  { name: 'userId not a string', method: 'POST', path: '/v1/keychains', json: { userId: 42 }, status: 400, code: 'INVALID_REQUEST' },
  { name: '".." as userId in body', method: 'POST', path: '/v1/keychains', json: { userId: '..' }, status: 400, code: 'INVALID_USER_ID' },
  { name: 'userId too long in body', method: 'POST', path: '/v1/keychains', json: { userId: LONG_ID }, status: 400, code: 'INVALID_USER_ID', message: USER_ID_MESSAGE },
  { name: 'unicode userId in body', method: 'POST', path: '/v1/keychains', json: { userId: 'ünïcödé' }, status: 400, code: 'INVALID_USER_ID' },
  { name: 'empty userId in body', method: 'POST', path: '/v1/keychains', json: { userId: '' }, status: 400, code: 'INVALID_USER_ID' },
  { name: 'body is an array', method: 'POST', path: '/v1/keychains', json: [{ userId: 'alice' }], status: 400, code: 'INVALID_REQUEST' },
  { name: 'body is null', method: 'POST', path: '/v1/keychains', body: 'null', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'deeply nested body', method: 'POST', path: '/v1/keychains', body: `${'['.repeat(5000)}${']'.repeat(5000)}`, headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_REQUEST' },
  // Bodies: batch-get.
  { name: 'userIds not an array', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: 'alice' }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'userIds empty', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: [] }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'userIds holds maxBatch + 1', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: Array.from({ length: MAX_BATCH + 1 }, (_, i) => `u${i}`) }, status: 400, code: 'BATCH_TOO_LARGE', message: /501 ids; at most 500/ },
  { name: 'userIds holds a number', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice', 7] }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'userIds holds null', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: [null] }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'userIds holds a bad id', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice', 'a/b'] }, status: 400, code: 'INVALID_USER_ID', message: /userIds\[1\]/ },
  { name: 'userIds holds a too-long id', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: [LONG_ID] }, status: 400, code: 'INVALID_USER_ID' },
  { name: 'missing userIds', method: 'POST', path: '/v1/keys/batch-get', json: { categories: ['profile'] }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'bad category in body', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], categories: ['Profile'] }, status: 400, code: 'INVALID_CATEGORY' },
  { name: 'category too long in body', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], categories: ['c'.repeat(33)] }, status: 400, code: 'INVALID_CATEGORY' },
  { name: 'unknown category in body', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], categories: ['music'] }, status: 400, code: 'UNKNOWN_CATEGORY' },
  { name: 'repeated category in body', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], categories: ['profile', 'profile'] }, status: 400, code: 'INVALID_REQUEST', message: /twice/ },
  { name: 'empty categories in body', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], categories: [] }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'categories not an array', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], categories: 'profile' }, status: 400, code: 'INVALID_REQUEST' },
  { name: 'unknown field in batch body', method: 'POST', path: '/v1/keys/batch-get', json: { userIds: ['alice'], limit: 1 }, status: 400, code: 'INVALID_REQUEST' },
  // Methods and routes.
  { name: 'PUT on keychains', method: 'PUT', path: '/v1/keychains', json: { userId: 'alice' }, status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'POST on a user\'s keys', method: 'POST', path: '/v1/keys/alice', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'DELETE on a user\'s keys', method: 'DELETE', path: '/v1/keys/alice', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'GET on rotate', method: 'GET', path: '/v1/keychains/alice/categories/profile/rotate', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'PATCH on healthz', method: 'PATCH', path: '/healthz', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'unknown route', method: 'GET', path: '/v1/users', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'root path', method: 'GET', path: '/', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'extra path segment', method: 'GET', path: '/v1/keys/alice/extra', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'unknown API version', method: 'GET', path: '/v2/keys/alice', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'trailing slash', method: 'GET', path: '/v1/keychains/alice/', status: 404, code: 'ROUTE_NOT_FOUND' },
  // Credentials: one answer for all of them.
  { name: 'missing Authorization', method: 'GET', path: '/v1/keys/alice', authorization: () => null, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'empty bearer', method: 'GET', path: '/v1/keys/alice', authorization: () => 'Bearer ', status: 401, code: 'UNAUTHENTICATED' },
  { name: 'malformed credential', method: 'GET', path: '/v1/keys/alice', authorization: () => 'Bearer not-a-credential', status: 401, code: 'UNAUTHENTICATED' },
  { name: 'Basic scheme', method: 'GET', path: '/v1/keys/alice', authorization: () => `Basic ${Buffer.from('admin:secret').toString('base64')}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'lower-case bearer', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `bearer ${admin(h)}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'credential with a fifth part', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer ${admin(h)}.x`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'credential of another version', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer ${admin(h).replace(/^pl1/, 'pl2')}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'secret one character short', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer ${admin(h).slice(0, -1)}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'header over 256 characters', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer ${admin(h)}${'A'.repeat(300)}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'unknown service', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer pl1.ghost.${parts(admin(h))[2]}.${randomSecret()}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'unknown credential id', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer pl1.admin.0123456789abcdef.${parts(admin(h))[3]}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'wrong secret', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer pl1.admin.${parts(admin(h))[2]}.${randomSecret()}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'another service\'s credential id and secret', method: 'GET', path: '/v1/keys/alice', authorization: (h) => { const [, , id, secret] = parts(admin(h)); return `Bearer pl1.reader.${id}.${secret}`; }, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'revoked credential', method: 'GET', path: '/v1/keys/alice', authorization: (h) => `Bearer ${h.revokedCredentials['admin'] ?? ''}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'bad credential on a write', method: 'DELETE', path: '/v1/keychains/alice', authorization: (h) => `Bearer pl1.admin.${parts(admin(h))[2]}.${randomSecret()}`, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'bad credential wins over a bad body', method: 'POST', path: '/v1/keychains', json: { nope: 1 }, authorization: () => 'Bearer x', status: 401, code: 'UNAUTHENTICATED' },
];

describe('bad input: exact status and stable code, never 500', () => {
  let h: Harness;
  const replies = new Map<string, HttpReply>();
  before(async () => {
    h = await startHarness({
      services: [
        { serviceId: 'admin', permissions: ALL_RIGHTS },
        {
          serviceId: 'reader',
          permissions: { read: ['profile'], create: false, rotate: false, shred: false, hold: false },
        },
      ],
    });
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'alice' } })).status, 201);
  });
  after(() => h.close());

  it('the table holds at least 40 distinct cases', () => {
    assert.ok(CASES.length >= 40, `${CASES.length} cases`);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'two cases share a name');
  });

  for (const c of CASES) {
    it(`${c.name}: ${c.status} ${c.code}`, async () => {
      const options: CallOptions = {
        ...(c.json === undefined ? {} : { json: c.json }),
        ...(c.body === undefined ? {} : { body: c.body }),
        ...(c.headers === undefined ? {} : { headers: c.headers }),
        ...(c.authorization === undefined ? {} : { authorization: c.authorization(h) }),
      };
      const reply = await h.call(c.method, c.path, options);
      replies.set(c.name, reply);
      assertError(reply, c.status, c.code, c.name);
      if (c.status === 405) assert.ok(reply.headers['allow'], `${c.name}: a 405 without Allow`);
      if (c.status === 401) assert.equal(reply.headers['www-authenticate'], 'Bearer', c.name);
      if (c.message !== undefined)
        assert.match((reply.body as { error: { message: string } }).error.message, c.message);
    });
  }

  it('every bad credential gets a byte-identical 401', () => {
    const unauthorized = CASES.filter((c) => c.code === 'UNAUTHENTICATED').map((c) => replies.get(c.name));
    assert.ok(unauthorized.length >= 10);
    const texts = new Set(unauthorized.map((r) => r?.text));
    assert.equal(texts.size, 1, [...texts].join('\n'));
    const headerSets = new Set(
      unauthorized.map((r) =>
        JSON.stringify(
          // x-request-id differs per request by design, in a fixed width: compared by length.
          Object.entries(r?.headers ?? {})
            .filter(([name]) => !['date', 'connection', 'keep-alive'].includes(name))
            .map(([name, value]) => (name === 'x-request-id' ? [name, String(value).length] : [name, value])),
        ),
      ),
    );
    assert.equal(headerSets.size, 1, [...headerSets].join('\n'));
  });

  it('the bad requests changed nothing and the server logged no internal error', async () => {
    const metrics = (await h.call('GET', '/metrics', { authorization: null })).text;
    assert.equal(metricValue(metrics, 'padlock_http_requests_total', { status: '500' }), 0);
    assert.ok(metricValue(metrics, 'padlock_http_requests_total', { status: '400' }) >= 40);
    assert.deepEqual(
      h.logLines.filter((l) => /"level":"(error|warn)"/.test(l)),
      [],
    );
    const keys = await h.call('GET', '/v1/keys/alice');
    assert.equal(keys.status, 200, 'alice was shredded or changed by a bad request');
    const meta = (await h.call('GET', '/v1/keychains/alice')).body as { categories: { versions: unknown[] }[] };
    assert.ok(meta.categories.every((c) => c.versions.length === 1));
    assert.equal((await h.call('GET', '/readyz', { authorization: null })).status, 200);
  });
});

describe('requests node:http cannot parse', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const cases: [string, string, number, string][] = [
    ['a request line that is not HTTP', 'HELLO\r\n\r\n', 400, 'INVALID_REQUEST'],
    ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n', 400, 'INVALID_REQUEST'],
    [
      'headers beyond the size limit',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`,
      431,
      'HEADERS_TOO_LARGE',
    ],
    [
      'trailers beyond the size limit',
      `POST /v1/keys/batch-get HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${'X-T: 0123456789\r\n'.repeat(1000)}\r\n`,
      431,
      'HEADERS_TOO_LARGE',
    ],
    [
      'a chunk-size line over 1,024 bytes',
      `POST /v1/keys/batch-get HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(1100)}\r\na\r\n0\r\n\r\n`,
      400,
      'INVALID_REQUEST',
    ],
  ];
  for (const [name, raw, status, code] of cases) {
    it(`${name}: ${status} in the error shape, connection closed`, async () => {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(h.port, '127.0.0.1', () => socket.end(raw));
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(answer, /^connection: close$/im);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string } };
      assert.equal(body.error.code, code);
    });
  }
});

describe('answer headers: HEAD, Allow, WWW-Authenticate, Retry-After', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: 'alice' } })).status, 201);
  });
  after(() => h.close());

  it('answers HEAD as GET without the body, on every GET route', async () => {
    for (const path of ['/v1/keys/alice', '/v1/keychains/alice', '/healthz', '/openapi.json']) {
      const get = await h.call('GET', path);
      const head = await h.call('HEAD', path);
      assert.equal(head.status, get.status, path);
      assert.equal(head.text, '', `${path}: HEAD answered with a body`);
      assert.equal(head.headers['content-length'], get.headers['content-length'], path);
    }
  });

  // prettier-ignore
  const allowed: [string, string, string][] = [
    ['PATCH', '/healthz', 'GET, HEAD'],
    ['POST', '/v1/keys/alice', 'GET, HEAD'],
    ['GET', '/v1/keychains', 'POST'],
    ['HEAD', '/v1/keychains', 'POST'],
    ['PUT', '/v1/keychains/alice', 'GET, HEAD, DELETE'],
    ['GET', '/v1/keychains/alice/categories/profile/rotate', 'POST'],
  ];
  for (const [method, path, allow] of allowed) {
    it(`${method} ${path}: 405 with Allow: ${allow}`, async () => {
      const reply = await h.call(method, path);
      assert.equal(reply.status, 405);
      assert.equal(reply.headers['allow'], allow);
    });
  }

  it('sends Retry-After with a 503', async () => {
    const stopping = await h.peer();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // A request on a connection opened before the drain gets 503 SHUTTING_DOWN.
      assert.equal((await stopping.call('GET', '/healthz', { agent })).status, 200);
      const drained = stopping.padlock.http.drain();
      const reply = await stopping.call('GET', '/v1/keys/alice', { agent });
      assertError(reply, 503, 'SHUTTING_DOWN');
      assert.equal(reply.headers['retry-after'], '1');
      agent.destroy();
      await drained;
    } finally {
      agent.destroy();
      await stopping.close();
    }
  });
});

describe('the HTTP layer bounds, through the config', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ config: { limits: { maxConnections: 3, maxUnfinishedRequestBytes: 65536 } } });
  });
  after(() => h.close());

  /** Opens a connection and sends `text`; resolves with everything received once it closes or after `ms`. */
  function rawCall(text: string, ms = 1000): { socket: ReturnType<typeof connect>; done: Promise<string> } {
    const socket = connect(h.port, '127.0.0.1');
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(text);
    const done = new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve(received), ms);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(received);
      });
    });
    return { socket, done };
  }

  it('sheds a request past limits.maxUnfinishedRequestBytes with 503 OVERLOADED and Retry-After, and counts it', async () => {
    const head = 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    // 20,000 body bytes in a 32 KiB buffer; the second request passes the 64 KiB bound while growing.
    const first = rawCall(head + '1\r\na\r\n'.repeat(20000), 300);
    await first.done;
    const second = rawCall(head + '1\r\na\r\n'.repeat(40000), 2000);
    const answer = await second.done;
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /^retry-after: 1$/im);
    assert.match(answer, /^connection: close$/im);
    assert.equal((JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as ErrorShape).error.code, 'OVERLOADED');
    first.socket.destroy();
    const metrics = (await h.call('GET', '/metrics', { authorization: null })).text;
    assert.equal(metricValue(metrics, 'padlock_http_shed_connections_total', { reason: 'memory' }), 1);
    assert.ok(metricValue(metrics, 'padlock_http_shed_bytes_total', { reason: 'memory' }) > 0);
  });

  it('sheds a connection past limits.maxConnections at once with 503, and counts it', async () => {
    const held = [rawCall(''), rawCall(''), rawCall('')];
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answer = await rawCall('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 2000).done;
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /^retry-after: 1$/im);
    for (const c of held) c.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const metrics = (await h.call('GET', '/metrics', { authorization: null })).text;
    assert.equal(metricValue(metrics, 'padlock_http_shed_connections_total', { reason: 'connections' }), 1);
  });
});

interface ErrorShape {
  error: { code: string };
}
