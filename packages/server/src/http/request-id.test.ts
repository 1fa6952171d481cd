import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness } from '../testing/harness.js';

const OURS = /^[0-9a-f]{12}-[0-9a-z]{10}$/;

/** Sends raw bytes and returns the whole answer (the server closes after a bad request). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.end(bytes);
  });
}

describe('X-Request-Id on every answer and request log line', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const kept = ['abc', 'a'.repeat(128), '3f2b1c9e-5d4a-4e0b-9f8a-1b2c3d4e5f60', 'lb:edge-7/req=42+x@y_z.1'];
  for (const id of kept) {
    it(`keeps a well-formed incoming id (${id.slice(0, 40)}) and logs it`, async () => {
      const reply = await h.call('GET', '/healthz', { headers: { 'x-request-id': id } });
      assert.equal(reply.headers['x-request-id'], id);
      const line = h.logLines.find((l) => l.includes('"msg":"request"') && l.includes(JSON.stringify(id)));
      assert.ok(line !== undefined, 'no request log line with the id');
      assert.equal((JSON.parse(line) as { requestId: string }).requestId, id);
    });
  }

  const replaced: readonly (readonly [string, string])[] = [
    ['too long (129)', 'a'.repeat(129)],
    ['with a space', 'a b'],
    ['with a quote', 'a"b'],
    ['with a brace', '{"x":1}'],
    ['with a comma (two ids joined)', 'a, b'],
    ['with latin-1 text', 'caf\u00e9'],
    ['huge', 'x'.repeat(8000)],
  ];
  for (const [name, id] of replaced) {
    it(`replaces an incoming id ${name} with one of its own`, async () => {
      const reply = await h.call('GET', '/healthz', { headers: { 'x-request-id': id } });
      assert.match(String(reply.headers['x-request-id']), OURS);
      assert.ok(!h.logLines.some((l) => l.includes(id)), 'the refused id reached a log line');
    });
  }

  it('gives every answer its own id: successes, errors, shed and unreadable requests', async () => {
    const ids = new Set<string>();
    for (const path of ['/healthz', '/metrics', '/no/such/route', '/v1/keys/u1']) {
      const reply = await h.call('GET', path, path === '/v1/keys/u1' ? { authorization: 'Bearer wrong' } : {});
      assert.match(String(reply.headers['x-request-id']), OURS, path);
      ids.add(String(reply.headers['x-request-id']));
    }
    assert.equal(ids.size, 4);
    const unreadable = await raw(h.port, 'GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n');
    assert.match(unreadable, /^HTTP\/1\.1 400 /);
    assert.match(unreadable, /\r\nx-request-id: [0-9a-f]{12}-[0-9a-z]{10}\r\n/);
  });

  it('puts the id on the log line of a request that failed', async () => {
    const reply = await h.call('GET', '/v1/keys/u1', {
      authorization: 'Bearer wrong',
      headers: { 'x-request-id': 'fail-1' },
    });
    assert.equal(reply.status, 401);
    const line = h.logLines.find((l) => l.includes('"requestId":"fail-1"'));
    assert.ok(line !== undefined);
    assert.match(line, /"status":401/);
  });
});
