import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WireServer, type ShedReason, type WireOptions } from './wire.js';

/*
 * What the HTTP layer holds for requests it has not finished reading, attacked: one-byte chunks,
 * a Content-Length body dribbled a byte at a time, more connections than allowed, more
 * unfinished bytes than allowed. Real sockets, a WireServer per case, answers echo the body size.
 */

const BASE: WireOptions = {
  maxHeadBytes: 16384,
  maxBodyBytes: 1 << 20,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10000,
  keepAliveTimeoutMs: 5000,
};

interface Started {
  server: WireServer;
  port: number;
  shed: { reason: ShedReason; bytes: number }[];
}

async function start(options: Partial<WireOptions>): Promise<Started> {
  const shed: Started['shed'] = [];
  const server = new WireServer(
    { ...BASE, ...options },
    {
      onRequest(request) {
        request.connection.respond({
          status: 200,
          contentType: 'text/plain',
          body: String(request.body.length),
        });
      },
      onBadRequest(connection, error) {
        connection.respond({
          status: error.status,
          contentType: 'text/plain',
          body: error.message,
          close: true,
          ...(error.status === 503 ? { headers: { 'retry-after': '1' } } : {}),
        });
      },
      onShed(reason, bytes) {
        shed.push({ reason, bytes });
      },
    },
  );
  return { server, port: await server.listen(0, '127.0.0.1'), shed };
}

async function stop({ server }: Started): Promise<void> {
  const stopped = server.stopAccepting();
  server.closeAllConnections();
  await stopped;
}

interface Client {
  socket: Socket;
  text: () => string;
  closed: Promise<void>;
}

async function open(port: number): Promise<Client> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, text: () => text, closed };
}

function write(socket: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
}

/** Waits (bounded) until `check` holds. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

const CHUNKED_HEAD = 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n';

describe('HTTP layer memory: bytes held for unfinished requests', () => {
  let s: Started;
  before(async () => {
    s = await start({});
  });
  after(() => stop(s));

  it('holds a body of one-byte chunks at about its own size, then lets it go', async () => {
    const client = await open(s.port);
    const body = 100_000;
    await write(client.socket, CHUNKED_HEAD);
    // Sent in pieces, so the server reads it over many reads.
    for (let sent = 0; sent < body; sent += 5000) await write(client.socket, '1\r\na\r\n'.repeat(5000));
    await until(() => s.server.heldBytes >= body, 'the body is read');
    const held = s.server.heldBytes;
    // One buffer grown by doubling from 512 bytes: at most twice the body, never a buffer per chunk.
    assert.ok(held <= 2 * body, `held ${held} bytes for a ${body}-byte body`);
    await write(client.socket, '0\r\n\r\n');
    await until(() => /\r\n\r\n100000$/.test(client.text()), 'the answer arrives');
    assert.equal(s.server.heldBytes, 0, 'an answered request still counts as held');
    client.socket.destroy();
  });

  it('holds a Content-Length body sent a byte at a time at most at its declared size', async () => {
    const client = await open(s.port);
    await write(client.socket, 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n');
    for (let i = 0; i < 300; i++) {
      await write(client.socket, 'b');
      if (i % 50 === 0) await sleep(1);
    }
    await until(() => s.server.heldBytes > 0, 'the body is being read');
    assert.ok(s.server.heldBytes <= 3000, `held ${s.server.heldBytes} bytes for a body declared 3000`);
    client.socket.destroy();
    await client.closed;
    await until(() => s.server.heldBytes === 0, 'a closed connection lets go of what it held');
  });

  it('counts a partial head and pipelined requests, and lets them go when the connection closes', async () => {
    const client = await open(s.port);
    await write(client.socket, `GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ${'p'.repeat(5000)}`);
    await until(() => s.server.heldBytes >= 5000, 'the partial head is held');
    client.socket.destroy();
    await client.closed;
    await until(() => s.server.heldBytes === 0, 'the partial head is let go');
  });
});

describe('HTTP layer memory: the process-wide bound', () => {
  let s: Started;
  const BOUND = 300 * 1024;
  before(async () => {
    s = await start({ maxHeldBytes: BOUND });
  });
  after(() => stop(s));

  it('sheds the connection that asks past the bound with 503 and Retry-After, and serves others', async () => {
    const holders: Client[] = [];
    // Each holds up to 100 kB of one-byte chunks (a 128 KiB buffer at the end); the third passes the bound.
    for (let i = 0; i < 4; i++) {
      const client = await open(s.port);
      await write(client.socket, CHUNKED_HEAD);
      for (let k = 0; k < 10; k++) await write(client.socket, '1\r\na\r\n'.repeat(10_000)).catch(() => {});
      holders.push(client);
      await sleep(50);
      assert.ok(s.server.heldBytes <= BOUND, `held ${s.server.heldBytes} bytes past a bound of ${BOUND}`);
    }
    await until(() => s.shed.length >= 1, 'a connection is shed');
    const shedOnes = holders.filter((c) => c.text().startsWith('HTTP/1.1 503 '));
    assert.ok(shedOnes.length >= 1, 'no holder was answered 503');
    for (const c of shedOnes) {
      assert.match(c.text(), /^retry-after: 1$/im);
      assert.match(c.text(), /^connection: close$/im);
      await c.closed;
    }
    assert.ok(s.shed.every((e) => e.reason === 'memory'));
    assert.ok(
      s.shed.some((e) => e.bytes > 0),
      'no shed connection held any bytes',
    );
    // A client with a small request is still answered while the survivors hold their bytes.
    const other = await open(s.port);
    await write(other.socket, 'GET /ok HTTP/1.1\r\nHost: t\r\n\r\n');
    await until(() => other.text().startsWith('HTTP/1.1 200 '), 'another client is answered');
    for (const c of [...holders, other]) c.socket.destroy();
    await until(() => s.server.heldBytes === 0, 'every byte is let go');
  });
});

describe('HTTP layer: the bound on open connections', () => {
  let s: Started;
  before(async () => {
    s = await start({ maxConnections: 2 });
  });
  after(() => stop(s));

  it('answers a connection past maxConnections with 503 at once, closes it, and admits one again later', async () => {
    const first = await open(s.port);
    const second = await open(s.port);
    await until(() => s.server.connections.size === 2, 'two connections are open');
    const third = await open(s.port);
    await third.closed;
    assert.match(third.text(), /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(third.text(), /^retry-after: 1$/im);
    const [head, body] = third.text().split('\r\n\r\n') as [string, string];
    assert.equal(Number(/^content-length: (\d+)$/im.exec(head)?.[1]), Buffer.byteLength(body));
    assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'OVERLOADED');
    assert.deepEqual(s.shed, [{ reason: 'connections', bytes: 0 }]);
    assert.equal(s.server.connections.size, 2);
    first.socket.destroy();
    await first.closed;
    await until(() => s.server.connections.size <= 2, 'a connection closed');
    const again = await open(s.port);
    await write(again.socket, 'GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    await until(() => again.text().startsWith('HTTP/1.1 200 '), 'the new connection is served');
    for (const c of [second, again]) c.socket.destroy();
  });

  it('counts sockets handed over with accept() against the same bound', async () => {
    await until(() => s.server.connections.size === 0, 'every connection closed');
    const a = await open(s.port);
    const b = await open(s.port);
    await until(() => s.server.connections.size === 2, 'two connections are open');
    // A socket from elsewhere: the server end of a fresh loopback connection to a throwaway listener.
    const { createServer } = await import('node:net');
    const handed = new Promise<Socket>((resolve) => {
      const listener = createServer((socket) => {
        listener.close();
        resolve(socket);
      }).listen(0, '127.0.0.1', () => {
        const peer = connect((listener.address() as { port: number }).port, '127.0.0.1');
        peer.on('error', () => {});
        let text = '';
        peer.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        peer.on('close', () => seenByPeer.push(text));
      });
    });
    const seenByPeer: string[] = [];
    s.server.accept(await handed);
    await until(() => seenByPeer.length === 1, 'the handed-over socket is closed');
    assert.match(seenByPeer[0]!, /^HTTP\/1\.1 503 /);
    assert.equal(s.server.connections.size, 2);
    a.socket.destroy();
    b.socket.destroy();
  });
});
