import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';

/*
 * OpenTelemetry tracing, off by default. Only @opentelemetry/api is loaded always; the SDK, the
 * OTLP/HTTP exporter and the async context manager are imported when `tracing.enabled` is set
 * (startTracing). While it is off every helper here is one boolean test: no span objects, no
 * context switches, no header parsing on the request path (docs/performance.md measures it).
 * Span attributes hold routes, statuses, operations and counts, never user ids or key material.
 */

export interface TracingConfig {
  readonly enabled: boolean;
  /** OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. */
  readonly endpoint: string;
  readonly serviceName: string;
  /** Traces started here that are kept (a caller's sampled flag is followed): 0-1. */
  readonly sampleRatio: number;
  /** Longest wait before spans are sent. */
  readonly exportDelayMs: number;
}

let on = false;

/** True while a tracer provider started by startTracing is installed. */
export function tracingOn(): boolean {
  return on;
}

function tracer() {
  return trace.getTracer('padlock');
}

const HEADERS_GETTER: TextMapGetter<ReadonlyMap<string, string>> = {
  get: (carrier, key) => carrier.get(key),
  keys: (carrier) => [...carrier.keys()],
};

/**
 * A server span for one request, its parent taken from a W3C traceparent (and tracestate) when
 * the header is well-formed (the SDK's W3CTraceContextPropagator parses it; anything else starts
 * a new trace). Returns the span and the context to run the handler in.
 */
export function startRequestSpan(method: string, headers: ReadonlyMap<string, string>): { span: Span; ctx: Context } {
  const parent = propagation.extract(ROOT_CONTEXT, headers, HEADERS_GETTER);
  const span = tracer().startSpan(
    method,
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': method } },
    parent,
  );
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Ends a request span with its route template and status. */
export function endRequestSpan(span: Span, method: string, route: string, status: number, requestId: string): void {
  span.updateName(`${method} ${route}`);
  span.setAttributes({ 'http.route': route, 'http.response.status_code': status, 'padlock.request_id': requestId });
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** Runs `work` in a child span of the active context when tracing is on, else just runs it. */
export function traced<T>(
  name: string,
  attributes: Readonly<Record<string, string | number>>,
  work: () => Promise<T>,
  root = false,
): Promise<T> {
  if (!on) return work();
  const parent = root ? ROOT_CONTEXT : context.active();
  const span = tracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
  return context.with(trace.setSpan(parent, span), work).then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
      span.end();
      throw error;
    },
  );
}

/** Runs `work` with `ctx` active (the request's span), or just runs it. */
export function withContext<T>(ctx: Context | undefined, work: () => T): T {
  return ctx === undefined ? work() : context.with(ctx, work);
}

export interface Tracing {
  /** Sends what is buffered, then uninstalls the provider. */
  shutdown(): Promise<void>;
}

/**
 * Installs the SDK's tracer provider (process-wide: OpenTelemetry's API is global), exporting by
 * OTLP/HTTP (JSON) in batches. One server per process may trace; a second start is refused.
 */
export async function startTracing(config: TracingConfig): Promise<Tracing> {
  if (on) throw new Error('tracing is already started in this process');
  const [sdk, otlp, resources, core, hooks] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
  ]);
  const exporter = new otlp.OTLPTraceExporter({ url: config.endpoint, timeoutMillis: 5000 });
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': config.serviceName }),
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [new sdk.BatchSpanProcessor(exporter, { scheduledDelayMillis: config.exportDelayMs })],
  });
  const contextManager = new hooks.AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  on = true;
  return {
    async shutdown() {
      on = false;
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        propagation.disable();
        context.disable();
      }
    },
  };
}
