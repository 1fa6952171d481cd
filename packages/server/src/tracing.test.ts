import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { spawnMemcached, type SpawnedMemcached, privateMemcachedOptions } from './testing/memcached.js';
import { startHarness, type Harness } from './testing/harness.js';

/** One span as OTLP/HTTP JSON carries it (ids in hex). */
interface ExportedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes?: readonly { key: string; value: Record<string, unknown> }[];
}

/** An OTLP/HTTP traces receiver in the test process: what the exporter really sends, decoded. */
class Receiver {
  readonly spans: ExportedSpan[] = [];
  readonly resources: string[] = [];
  readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      assert.match(String(req.headers['content-type']), /^application\/json/);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { resource: unknown; scopeSpans: { spans: ExportedSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        this.resources.push(JSON.stringify(rs.resource));
        for (const ss of rs.scopeSpans) this.spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    assert.ok(address !== null && typeof address === 'object');
    return `http://127.0.0.1:${address.port}/v1/traces`;
  }

  async waitFor(check: (spans: readonly ExportedSpan[]) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!check(this.spans)) {
      if (Date.now() > deadline) {
        assert.fail(`${what}: spans seen ${JSON.stringify(this.spans.map((s) => s.name))}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function attribute(span: ExportedSpan, key: string): unknown {
  const found = span.attributes?.find((a) => a.key === key);
  return found === undefined ? undefined : Object.values(found.value)[0];
}

describe('tracing: spans exported by OTLP/HTTP with the parent from traceparent', privateMemcachedOptions(), () => {
  const receiver = new Receiver();
  let memcached: SpawnedMemcached;
  let h: Harness;
  before(async () => {
    const endpoint = await receiver.start();
    const port = process.env['PADLOCK_TEST_MEMCACHED_PORT'];
    memcached = await spawnMemcached(port === undefined ? {} : { port: Number(port) });
    h = await startHarness({
      config: {
        tracing: { enabled: true, endpoint, serviceName: 'padlock-trace-test', exportDelayMs: 20 },
        cache: { memcached: { servers: [memcached.address], keyPrefix: 'trace-test:', timeoutMs: 500 } },
        scheduler: { intervalMs: 100 },
      },
    });
  });
  after(async () => {
    await h?.close();
    await memcached?.stop();
    receiver.server.close();
  });

  it('makes the server span a child of the incoming traceparent, and store and memcached spans its children', async () => {
    // A user no cache holds: the lookup goes through memcached to the store (and finds nothing).
    const reply = await h.call('GET', '/v1/keys/traced-user', {
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': 'trace-req-1' },
    });
    assert.equal(reply.status, 404);
    const isOurs = (s: ExportedSpan): boolean => s.name === 'GET /v1/keys/{userId}' && s.traceId === TRACE_ID;
    await receiver.waitFor((spans) => spans.some(isOurs), 'the request span');
    const server = receiver.spans.find(isOurs)!;
    assert.equal(server.parentSpanId, PARENT_ID);
    assert.equal(server.kind, 2); // SPAN_KIND_SERVER
    assert.equal(attribute(server, 'http.route'), '/v1/keys/{userId}');
    assert.equal(Number(attribute(server, 'http.response.status_code')), 404);
    assert.equal(attribute(server, 'padlock.request_id'), 'trace-req-1');
    await receiver.waitFor(
      (spans) => spans.some((s) => s.parentSpanId === server.spanId && s.name === 'memcached get'),
      'a memcached span under the request',
    );
    await receiver.waitFor(
      (spans) => spans.some((s) => s.parentSpanId === server.spanId && s.name.startsWith('store ')),
      'a store span under the request',
    );
    for (const child of receiver.spans.filter((s) => s.parentSpanId === server.spanId)) {
      assert.equal(child.traceId, TRACE_ID);
    }
    // No user id in any exported span.
    assert.ok(!JSON.stringify(receiver.spans).includes('traced-user'));
    assert.ok(receiver.resources.some((r) => r.includes('padlock-trace-test')));
  });

  const malformed: readonly (readonly [string, string])[] = [
    ['all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['short parent id', `00-${TRACE_ID}-00f067aa-01`],
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['garbage', 'x'.repeat(4000)],
  ];
  for (const [name, traceparent] of malformed) {
    it(`starts a new trace for a traceparent with ${name}`, async () => {
      const id = `bad-tp-${name.replaceAll(' ', '-')}`;
      const reply = await h.call('GET', '/healthz', { headers: { traceparent, 'x-request-id': id } });
      assert.equal(reply.status, 200);
      const mine = (s: ExportedSpan): boolean => attribute(s, 'padlock.request_id') === id;
      await receiver.waitFor((spans) => spans.some(mine), 'the request span');
      const span = receiver.spans.find(mine)!;
      assert.equal(span.parentSpanId ?? '', '');
      assert.notEqual(span.traceId, TRACE_ID);
      assert.match(span.traceId, /^[0-9a-f]{32}$/);
    });
  }

  it('traces scheduler passes as root spans with their store calls inside', async () => {
    await receiver.waitFor(
      (spans) =>
        spans.some(
          (pass) =>
            pass.name === 'scheduler pass' &&
            (pass.parentSpanId ?? '') === '' &&
            spans.some((s) => s.parentSpanId === pass.spanId && s.name === 'store due_schedules'),
        ),
      'a scheduler pass with its store call',
    );
  });
});
