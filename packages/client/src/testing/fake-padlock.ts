import { hash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/*
 * Test helper: a stand-in Padlock on port 0 speaking the v1 key routes with
 * deterministic keys, whose behaviour each test can replace (slow, failing,
 * refusing, malformed). It records every request. The real server is tested
 * in integration.test.ts; this one makes failure modes exact and fast.
 */

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** What a handler answers: a reply, or a failure mode. */
export type FakeReply =
  | { readonly status: number; readonly body: unknown; readonly raw?: false }
  | { readonly status: number; readonly body: string; readonly raw: true }
  | 'hang'
  | 'destroy';

export type FakeHandler = (request: RecordedRequest, fake: FakePadlock) => FakeReply | Promise<FakeReply>;

export interface FakePadlock {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Replaces how requests are answered; default `defaultHandler`. */
  handler: FakeHandler;
  /** maxAgeSeconds of every ok answer; default 30. */
  maxAgeSeconds: number;
  /** Extra versions per category: category -> newest version (default 1). */
  readonly versions: Map<string, number>;
  /** Users answered as not_found, and as shredded (whole keychain or "user/category"). */
  readonly missing: Set<string>;
  readonly shredded: Set<string>;
  batchGets(): RecordedRequest[];
  close(): Promise<void>;
}

export const FAKE_CATEGORIES = ['profile', 'payments', 'advertising'] as const;

/** The key the fake serves for (user, category, version): anyone can recompute it. */
export function fakeKey(userId: string, category: string, version: number): Buffer {
  return hash('sha256', `fake padlock/${userId}/${category}/${version}`, 'buffer');
}

export function keysJson(fake: FakePadlock, userId: string, categories: readonly string[] = FAKE_CATEGORIES) {
  if (fake.missing.has(userId)) return { userId, status: 'not_found', maxAgeSeconds: 0, categories: [] };
  if (fake.shredded.has(userId)) return { userId, status: 'shredded' };
  return {
    userId,
    status: 'ok',
    maxAgeSeconds: fake.maxAgeSeconds,
    categories: categories.map((category) => {
      if (fake.shredded.has(`${userId}/${category}`)) return { category, status: 'shredded' };
      const newest = fake.versions.get(category) ?? 1;
      const keys = [];
      for (let version = 1; version <= newest; version++) {
        keys.push({ version, key: fakeKey(userId, category, version).toString('base64url') });
      }
      return { category, status: 'ok', current: newest, keys };
    }),
  };
}

/** Answers batch-get, get-keys and create like Padlock, from the fake's sets. */
export function defaultHandler(request: RecordedRequest, fake: FakePadlock): FakeReply {
  if (request.method === 'POST' && request.path === '/v1/keys/batch-get') {
    const { userIds, categories } = JSON.parse(request.body) as { userIds: string[]; categories?: string[] };
    return { status: 200, body: { results: userIds.map((id) => keysJson(fake, id, categories)) } };
  }
  if (request.method === 'POST' && request.path === '/v1/keychains') {
    const { userId } = JSON.parse(request.body) as { userId: string };
    const created = fake.missing.delete(userId);
    return { status: created ? 201 : 200, body: { created, ...keysJson(fake, userId) } };
  }
  if (request.method === 'DELETE' && request.path.startsWith('/v1/keychains/')) {
    const [userId, , category] = request.path.slice('/v1/keychains/'.length).split('/').map(decodeURIComponent);
    fake.shredded.add(category === undefined ? userId! : `${userId!}/${category}`);
    // A receipt of the right shape; its signature is the real server's business (integration.test).
    return { status: 200, body: { userId, shredded: 1, receipt: { id: '0'.repeat(32), jws: 'e30.e30.AA' } } };
  }
  return { status: 404, body: { error: { code: 'ROUTE_NOT_FOUND', message: `no route for ${request.path}` } } };
}

export async function startFakePadlock(): Promise<FakePadlock> {
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      fake.requests.push(recorded);
      Promise.resolve(fake.handler(recorded, fake)).then(
        (reply) => {
          if (reply === 'hang') {
            hanging.add(res);
            return;
          }
          if (reply === 'destroy') {
            req.socket.destroy();
            return;
          }
          const text = reply.raw === true ? reply.body : JSON.stringify(reply.body);
          res.writeHead(reply.status, { 'content-type': 'application/json' });
          res.end(text);
        },
        () => req.socket.destroy(),
      );
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake: FakePadlock = {
    url: `http://127.0.0.1:${port}`,
    requests: [],
    handler: defaultHandler,
    maxAgeSeconds: 30,
    versions: new Map(),
    missing: new Set(),
    shredded: new Set(),
    batchGets: () => fake.requests.filter((r) => r.path === '/v1/keys/batch-get'),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        hanging.clear();
        server.close(() => resolve());
      }),
  };
  return fake;
}

/** A port with nothing listening on it (bound, then closed). */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
