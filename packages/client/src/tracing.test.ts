import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { context, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { startHarness, type Harness } from '../../server/dist/testing/harness.js';
import { PadlockClient } from './client.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';

describe("the SDK sends the caller's active trace as traceparent", () => {
  const spans: { traceId: string; parentSpanId?: string; name: string }[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { scopeSpans: { spans: { traceId: string; parentSpanId?: string; name: string }[] }[] }[];
      };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  let h: Harness;
  before(async () => {
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const address = receiver.address();
    assert.ok(address !== null && typeof address === 'object');
    // The server, in this process, installs OpenTelemetry's propagator and context manager: the
    // SDK finds them as an application with its own OpenTelemetry setup would provide them.
    h = await startHarness({
      config: { tracing: { enabled: true, endpoint: `http://127.0.0.1:${address.port}/v1/traces`, exportDelayMs: 20 } },
    });
  });
  after(async () => {
    await h?.close();
    receiver.close();
  });

  it("makes the server's request span a child of the caller's span", async () => {
    const client = new PadlockClient({
      groups: [{ name: 'padlock', urls: [`http://127.0.0.1:${h.port}`] }],
      credential: h.credentials['admin']!,
      timeoutMs: 10_000,
    });
    const caller = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: false,
    });
    try {
      await context.with(caller, () => client.createKeychain('sdk-traced'));
    } finally {
      await client.close();
    }
    const deadline = Date.now() + 10_000;
    while (!spans.some((s) => s.traceId === TRACE_ID && s.name === 'POST /v1/keychains')) {
      assert.ok(Date.now() < deadline, `no request span in the caller's trace: ${JSON.stringify(spans)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const server = spans.find((s) => s.traceId === TRACE_ID && s.name === 'POST /v1/keychains')!;
    assert.equal(server.parentSpanId, SPAN_ID);
  });
});
