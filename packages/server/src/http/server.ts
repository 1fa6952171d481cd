import { PadlockError, type ErrorCode } from '@padlock/core';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Logger } from '../log.js';
import { labelKey } from '../metrics.js';
import type { Service, ServiceRegistry } from '../services.js';
import type { AppContext, Reply, Route } from './route.js';
import type { ClientCertificatesConfig, TlsConfig } from '../config.js';
import { BodyWriter } from './answer.js';
import { clientCertificateOf, TlsListener, type ClientCertificate } from './tls.js';
import type { Span } from '@opentelemetry/api';
import { endRequestSpan, startRequestSpan, tracingOn, withContext } from '../tracing.js';
import { requestId, requestIdText, type RequestId } from './request-id.js';
import { WireServer, type WireError, type WireRequest } from './wire.js';

/*
 * The request pipeline on Padlock's HTTP/1.1 layer (wire.ts): shed, route,
 * authenticate, validate the body, run the handler against a deadline, answer. Every failure
 * is a PadlockError with a stable code; anything else is logged and answered
 * as a plain 500 without details.
 */

export interface PipelineOptions {
  readonly maxBodyBytes: number;
  readonly maxInFlight: number;
  readonly deadlineMs: number;
  /** Open connections the HTTP layer keeps; default no bound. */
  readonly maxConnections?: number;
  /** Bytes all unfinished requests may hold together; default no bound. */
  readonly maxUnfinishedRequestBytes?: number;
  /**
   * Shed a request when the event loop has been busy this long without a break (its handler would
   * start that late), two turns of the loop in a row; default deadlineMs / 5, at least 10 ms.
   */
  readonly maxLoopBusyMs?: number;
  readonly drainTimeoutMs: number;
  readonly logRequests: boolean;
}

interface Verdict {
  /** Undefined when a client certificate authenticated without a bearer credential. */
  readonly header: string | undefined;
  readonly service: Service;
  readonly generation: number;
}

interface CompiledRoute {
  readonly route: Route;
  readonly segments: readonly string[];
  /** The parameter named by each segment ("{name}"), undefined for a fixed one. */
  readonly paramNames: readonly (string | undefined)[];
  readonly validate: ValidateFunction | undefined;
  /** The label for metrics: the path template. */
  readonly label: string;
  /** Series keys of this route's request counter, by status, and of its latency histogram. */
  readonly countKeys: Map<number, string>;
  readonly latencyKey: string;
}

const ajv = new Ajv({ allErrors: false, strict: true });

function bodyMessage(error: ErrorObject | undefined): string {
  if (error === undefined) return 'body is invalid';
  const at = `body${error.instancePath.replaceAll('/', '.').replace(/\.(\d+)/g, '[$1]')}`;
  switch (error.keyword) {
    case 'additionalProperties':
      return `${at} has an unknown field "${String(error.params['additionalProperty'])}"`;
    case 'required':
      return `${at}.${String(error.params['missingProperty'])} is required`;
    case 'pattern':
    case 'maxLength':
      if (/userIds?(\/\d+)?$/.test(error.instancePath)) {
        return `${at} must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit`;
      }
      if (/categories\/\d+$/.test(error.instancePath)) {
        return `${at} must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter`;
      }
      if (error.keyword === 'maxLength') return `${at} ${error.message ?? 'is too long'}`;
      return `${at} does not match ${String(error.params['pattern'])}`;
    default:
      return `${at} ${error.message ?? 'is invalid'}`;
  }
}

function errorCodeForBody(error: ErrorObject | undefined): ErrorCode {
  // Ajv checks maxLength before pattern: an over-long id is still a bad id, as it is in a path.
  const grammar = error?.keyword === 'pattern' || error?.keyword === 'maxLength';
  if (grammar && /userIds?(\/\d+)?$/.test(error.instancePath)) return 'INVALID_USER_ID';
  if (grammar && /categories\/\d+$/.test(error.instancePath)) return 'INVALID_CATEGORY';
  return 'INVALID_REQUEST';
}

/** How long, in busy-limits, the loop must have stayed behind before it counts as overloaded. */
const BEHIND_FOR_BUSY_LIMITS = 2.5;

/** A request between its arrival and its answer. */
interface Pending {
  readonly request: WireRequest;
  /** X-Request-Id of the answer and the log lines (request-id.ts). */
  readonly id: RequestId;
  /** The request's server span, while tracing is on. */
  span: Span | undefined;
  readonly started: number;
  readonly deadlineAt: number;
  label: string;
  compiled: CompiledRoute | undefined;
  answered: boolean;
  /** Counted in #inFlight, and in the list of pending requests, until answered (by its handler or its deadline). */
  counted: boolean;
  /** Neighbours in the list of requests not answered yet (PendingList). */
  prev: Pending | undefined;
  next: Pending | undefined;
}

/**
 * Requests not answered yet, in arrival order, linked through the requests
 * themselves. A Set did the same, but adding and deleting a few entries per
 * request kept growing and shrinking its table, and each new table, held by
 * the long-lived server, survived a scavenge into the old generation: it was
 * half of what requests promoted, and what made the mark-compacts frequent
 * (an allocation profile of objects collected by major GCs showed it).
 */
export class PendingList<T extends { prev: T | undefined; next: T | undefined } = Pending> {
  #head: T | undefined;
  #tail: T | undefined;

  get first(): T | undefined {
    return this.#head;
  }

  add(pending: T): void {
    pending.prev = this.#tail;
    pending.next = undefined;
    if (this.#tail === undefined) this.#head = pending;
    else this.#tail.next = pending;
    this.#tail = pending;
  }

  /** Removes a request that add() put in this list and no delete() has taken out. */
  delete(pending: T): void {
    const { prev, next } = pending;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    pending.prev = undefined;
    pending.next = undefined;
  }
}

const EMPTY_QUERY = new URLSearchParams();

/**
 * Whether a path ("/a/b/c", no query) has the route's segments (a template
 * segment "{name}" matches any one segment, even an empty one); the start and
 * end of each matched parameter go to `captures`.
 */
export function matchSegments(segments: readonly string[], path: string, captures: number[]): boolean {
  let start = 1;
  let p = 0;
  for (let i = 0; i < segments.length; i++) {
    let end = path.indexOf('/', start);
    if (i === segments.length - 1) {
      if (end !== -1) return false;
      end = path.length;
    } else if (end === -1) {
      return false;
    }
    const template = segments[i]!;
    if (template.startsWith('{')) {
      captures[p++] = start;
      captures[p++] = end;
    } else if (end - start !== template.length || !path.startsWith(template, start)) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

export class PadlockHttpServer {
  readonly #wire: WireServer;
  #tls: TlsListener | undefined;
  /** How client certificates authenticate (listen.tls.clientCertificates.mode); undefined without mutual TLS. */
  #clientAuth: ClientCertificatesConfig['mode'] | undefined;
  readonly #routes: CompiledRoute[];
  #inFlight = 0;
  #draining = false;
  /** Requests not answered yet, in arrival order: with one deadline for all, also in deadline order. */
  readonly #pending = new PendingList();
  /** When the loop last ran its timers: how long it has been busy since is how late a request is seen. */
  #loopSeenAt = performance.now();
  /** Since when every turn of the loop has come late (by three quarters of maxLoopBusyMs or more). */
  #behindSince: number | undefined;
  readonly #loopTimer: NodeJS.Timeout;
  readonly #maxLoopBusyMs: number;
  /** Where #match found a route's parameters in the path: start and end of each, in order. */
  readonly #captures: number[] = [];

  constructor(
    routes: readonly Route[],
    private readonly app: AppContext,
    private readonly registry: ServiceRegistry,
    private readonly options: PipelineOptions,
    private readonly log: Logger,
  ) {
    this.#routes = routes.map((route) => {
      const segments = route.path.split('/').slice(1);
      return {
        route,
        segments,
        paramNames: segments.map((segment) => (segment.startsWith('{') ? segment.slice(1, -1) : undefined)),
        validate: route.body === undefined ? undefined : ajv.compile(route.body),
        label: route.path,
        countKeys: new Map(),
        latencyKey: labelKey({ route: route.path }),
      };
    });
    this.#wire = new WireServer(
      {
        maxHeadBytes: 16384,
        maxBodyBytes: options.maxBodyBytes,
        headersTimeoutMs: 10000,
        requestTimeoutMs: 30000,
        keepAliveTimeoutMs: 5000,
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
        ...(options.maxUnfinishedRequestBytes === undefined ? {} : { maxHeldBytes: options.maxUnfinishedRequestBytes }),
      },
      {
        onRequest: (request) => this.#handle(request),
        // Requests that cannot be read never reach #handle: answered in the error shape, then closed.
        onBadRequest: (connection, error) => {
          const { code, reason } = WIRE_ERRORS[error.status];
          app.metrics.shed.inc({ reason });
          connection.respond({
            requestId: requestId(undefined),
            status: error.status,
            contentType: 'application/json',
            body: JSON.stringify({ error: { code, message: error.message } }),
            close: true,
            ...(error.status === 503 ? { headers: RETRY_AFTER } : {}),
          });
        },
        onShed: (reason, bytes) => {
          app.metrics.shedConnections.inc({ reason });
          if (bytes > 0) app.metrics.shedBytes.inc({ reason }, bytes);
        },
      },
    );
    app.metrics.inFlight.track(() => this.#inFlight);
    app.metrics.connections.track(() => this.#wire.connections.size);
    app.metrics.unfinishedRequestBytes.track(() => this.#wire.heldBytes);
    // A CPU-bound server never reaches maxInFlight (each request finishes within its turn of the
    // loop); its queue is in the sockets instead, where no deadline sees it. The DiRT overload
    // scenario measured that: at twice the capacity nothing was shed and the p99 grew past 1.5 s.
    // Only a loop that stays behind sheds: a pause (a GC, the process descheduled) and the backlog
    // after it are not overload, and shedding after them turned machine hiccups into 503s at a
    // tenth of capacity (or on the group taking over from a failed one); a loop whose every turn
    // has come late for BEHIND_FOR_BUSY_LIMITS busy-limits (250 ms by default) is.
    this.#maxLoopBusyMs = options.maxLoopBusyMs ?? Math.max(10, options.deadlineMs / 5);
    const tickMs = 5;
    const lag = app.metrics.eventLoopLag;
    app.metrics.eventLoopBehind.track(() =>
      this.#behindSince === undefined ? 0 : (performance.now() - this.#behindSince) / 1000,
    );
    app.metrics.eventLoopBehindLimit.track(() => (BEHIND_FOR_BUSY_LIMITS * this.#maxLoopBusyMs) / 1000);
    this.#loopTimer = setInterval(() => {
      const now = performance.now();
      const lateMs = now - this.#loopSeenAt - tickMs;
      lag.observe({}, Math.max(0, lateMs) / 1000);
      const late = lateMs >= this.#maxLoopBusyMs * 0.75;
      this.#behindSince = late ? (this.#behindSince ?? now) : undefined;
      this.#loopSeenAt = now;
      // Deadlines: the oldest requests come first; stop at the first one still within its time.
      for (let pending = this.#pending.first; pending !== undefined; pending = this.#pending.first) {
        if (pending.deadlineAt > now) break;
        this.#answer(pending, errorReply(new PadlockError('DEADLINE_EXCEEDED')));
      }
    }, tickMs);
    this.#loopTimer.unref();
  }

  /** True when the loop has stayed behind long enough to count as overloaded, and is busy now. */
  #behindLongEnough(): boolean {
    const now = performance.now();
    return (
      this.#behindSince !== undefined &&
      now - this.#behindSince >= BEHIND_FOR_BUSY_LIMITS * this.#maxLoopBusyMs &&
      now - this.#loopSeenAt > this.#maxLoopBusyMs
    );
  }

  get draining(): boolean {
    return this.#draining;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  listen(port: number, host: string): Promise<number> {
    return this.#wire.listen(port, host);
  }

  /** Listens for HTTPS instead: a TLS server whose secure sockets this server's HTTP layer serves. */
  listenTls(port: number, host: string, tls: TlsConfig): Promise<number> {
    this.#tls = new TlsListener(tls, (socket) => this.#wire.accept(socket), this.app.metrics, this.log);
    // Connections still in their handshake are not yet the HTTP layer's: node:tls closes the TCP
    // connections past the same bound at accept, so a flood of unfinished handshakes stays bounded.
    if (this.options.maxConnections !== undefined) this.#tls.server.maxConnections = this.options.maxConnections;
    this.#clientAuth = tls.clientCertificates?.mode;
    return this.#tls.listen(port, host);
  }

  /** Reads the TLS files again (see TlsListener.reload); false when that failed or there is no TLS. */
  reloadTls(): boolean {
    if (this.#tls === undefined) {
      this.log.warn('TLS reload asked for, but this server has no TLS listener');
      return false;
    }
    return this.#tls.reload();
  }

  /**
   * Graceful drain: stop accepting connections, answer new requests on open
   * connections with 503 and Connection: close, let in-flight requests finish,
   * then close. After drainTimeoutMs, remaining connections are cut.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    // Stop accepting at once, but close idle connections only after a moment: a request its
    // client sent just before the drain may not have been read yet, and closing its connection
    // would reset it (the DiRT sigterm-drain scenario: 29 of 32 sent 15 ms before SIGTERM to a
    // busy server). Meanwhile what is read gets an answer (503 SHUTTING_DOWN, Connection: close).
    this.#tls?.stopAccepting();
    const closed = this.#wire.stopAccepting();
    const timer = setTimeout(() => this.#wire.closeAllConnections(), this.options.drainTimeoutMs);
    let idle: NodeJS.Timeout | undefined;
    const grace = setTimeout(
      () => {
        this.#wire.closeIdleConnections();
        idle = setInterval(() => this.#wire.closeIdleConnections(), 50);
      },
      Math.min(2 * this.#maxLoopBusyMs, this.options.drainTimeoutMs),
    );
    try {
      await closed;
    } finally {
      clearTimeout(timer);
      clearTimeout(grace);
      clearInterval(idle);
      clearInterval(this.#loopTimer);
      this.#tls?.destroyHandshaking();
    }
  }

  #match(
    method: string,
    path: string,
  ): { compiled: CompiledRoute; params: Record<string, string> } | MethodNotAllowed | undefined {
    // Compared in place, and the parameters decoded only for a route that matched: splitting the
    // path and filling a parameter object for every candidate route showed in allocation profiles.
    let allowed: string[] | undefined;
    for (const compiled of this.#routes) {
      if (!matchSegments(compiled.segments, path, this.#captures)) continue;
      const params: Record<string, string> = {};
      for (let i = 0, p = 0; i < compiled.paramNames.length; i++) {
        const name = compiled.paramNames[i];
        if (name === undefined) continue;
        const raw = path.slice(this.#captures[p], this.#captures[p + 1]);
        p += 2;
        // decodeURIComponent allocates (in C++, byte by byte) even when there is nothing to decode.
        if (!raw.includes('%')) {
          params[name] = raw;
          continue;
        }
        try {
          params[name] = decodeURIComponent(raw);
        } catch {
          throw new PadlockError('INVALID_REQUEST', 'the path is not valid percent-encoding');
        }
      }
      // HEAD is GET without the body (RFC 9110 section 9.3.2): respond() leaves the body out.
      if (compiled.route.method !== method && !(method === 'HEAD' && compiled.route.method === 'GET')) {
        (allowed ??= []).push(compiled.route.method);
        if (compiled.route.method === 'GET') allowed.push('HEAD');
        continue;
      }
      return { compiled, params };
    }
    return allowed === undefined ? undefined : new MethodNotAllowed(method, allowed);
  }

  #handle(request: WireRequest): void {
    const started = performance.now();
    const pending: Pending = {
      request,
      id: requestId(request.headers.get('x-request-id')),
      span: undefined,
      started,
      deadlineAt: started + this.options.deadlineMs,
      label: 'unmatched',
      compiled: undefined,
      answered: false,
      counted: false,
      prev: undefined,
      next: undefined,
    };
    const overloaded =
      this.#inFlight >= this.options.maxInFlight ? 'inflight' : this.#behindLongEnough() ? 'event_loop' : undefined;
    if (overloaded !== undefined) {
      this.app.metrics.shed.inc({ reason: overloaded });
      this.#answer(pending, errorReply(new PadlockError('OVERLOADED')));
      return;
    }
    this.#inFlight++;
    pending.counted = true;
    this.#pending.add(pending);
    let reply: Reply | Promise<Reply>;
    try {
      if (tracingOn()) {
        const { span, ctx } = startRequestSpan(request.method, request.headers);
        pending.span = span;
        reply = withContext(ctx, () => this.#dispatch(request, pending));
      } else {
        reply = this.#dispatch(request, pending);
      }
    } catch (error) {
      this.#answer(pending, this.#failed(error, pending));
      return;
    }
    if (!(reply instanceof Promise)) {
      this.#answer(pending, reply);
      return;
    }
    reply.then(
      (value) => this.#answer(pending, value),
      (error: unknown) => this.#answer(pending, this.#failed(error, pending)),
    );
  }

  #failed(error: unknown, pending: Pending): Reply {
    if (!(error instanceof PadlockError)) {
      this.log.error('request failed', {
        requestId: requestIdText(pending.id),
        route: pending.label,
        error: error instanceof Error ? error.name : 'unknown',
        detail: error instanceof Error ? error.message : undefined,
      });
    } else if (error.status >= 500 && error.cause !== undefined) {
      this.log.warn('request failed in a backend', {
        requestId: requestIdText(pending.id),
        route: pending.label,
        code: error.code,
        cause: error.cause instanceof Error ? `${error.cause.name}: ${error.cause.message}` : 'unknown',
      });
    }
    return errorReply(error);
  }

  #dispatch(request: WireRequest, pending: Pending): Reply | Promise<Reply> {
    const url = request.target;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? EMPTY_QUERY : new URLSearchParams(url.slice(q + 1));
    const method = request.method;
    const match = this.#match(method, path);
    if (match === undefined) {
      throw new PadlockError(
        'ROUTE_NOT_FOUND',
        `no route for ${path.length > 200 ? `${path.slice(0, 200)}...` : path}`,
      );
    }
    if (match instanceof MethodNotAllowed) throw match;
    const { compiled, params } = match;
    pending.label = compiled.label;
    pending.compiled = compiled;
    if (this.#draining && compiled.route.auth) throw new PadlockError('SHUTTING_DOWN');
    let service = compiled.route.auth ? this.#authenticate(request) : undefined;
    // A console session (docs/console.md) stands in for a bearer credential only when none was sent.
    const session =
      compiled.route.auth && service === undefined && request.headers.get('authorization') === undefined
        ? this.app.console?.sessions.authenticate(request.headers, method)
        : undefined;
    if (session !== undefined) service = session.service;
    if (compiled.route.auth && service === undefined) throw new PadlockError('UNAUTHENTICATED');
    // Enforced here, for every route: an operator never reaches a handler that can answer with key bytes.
    if (service?.permissions.admin === true && compiled.route.operator !== true) {
      throw new PadlockError('OPERATOR_ROUTE_DENIED');
    }
    let body: unknown;
    if (compiled.validate !== undefined) {
      body = this.#json(request);
      if (!compiled.validate(body)) {
        const first = compiled.validate.errors?.[0];
        throw new PadlockError(errorCodeForBody(first), bodyMessage(first));
      }
    } else if (request.bodyTooLarge) {
      throw new PadlockError('BODY_TOO_LARGE', `the body may be at most ${this.options.maxBodyBytes} bytes`);
    } else if (request.body.length > 0) {
      throw new PadlockError('INVALID_REQUEST', 'this route takes no request body');
    }
    if (compiled.route.query === undefined && query.size > 0) {
      throw new PadlockError('INVALID_QUERY', 'this route takes no query parameters');
    }
    return compiled.route.handle(
      session === undefined
        ? { params, query, body, service, app: this.app }
        : { params, query, body, service, session, app: this.app },
    );
  }

  /**
   * Authenticates a request, reusing the verdict of the previous request on
   * the same keep-alive connection when it sent the very same Authorization
   * header and the registry has not been reloaded since. The comparison is
   * with what this connection itself sent before, so it reveals nothing about
   * anyone else's credential; a refresh (revocation) invalidates the verdict.
   */
  #authenticate(request: WireRequest): Service | undefined {
    const header = request.headers.get('authorization');
    const connection = request.connection;
    const cached = connection.note as Verdict | undefined;
    if (cached !== undefined && cached.header === header && cached.generation === this.registry.generation) {
      return cached.service;
    }
    const service =
      this.#clientAuth === undefined
        ? this.registry.authenticate(header)
        : this.#authenticateWithCertificate(header, clientCertificateOf(connection.socket), this.#clientAuth);
    // A connection's certificate is fixed at its handshake, so the verdict may be kept with it too.
    connection.note =
      service !== undefined ? ({ header, service, generation: this.registry.generation } satisfies Verdict) : undefined;
    return service;
  }

  /**
   * Mutual TLS (docs/operations.md): a certificate binds its connection to the service that claims
   * its identity, and a bearer credential of any other service is refused like any bad credential.
   * The credential, when one is sent, is always checked first, so every refusal costs the same
   * work as a wrong credential does.
   */
  #authenticateWithCertificate(
    header: string | undefined,
    certificate: ClientCertificate | undefined,
    mode: ClientCertificatesConfig['mode'],
  ): Service | undefined {
    const alone = mode === 'certificate-only' && header === undefined;
    const bearer = alone ? undefined : this.registry.authenticate(header);
    // Without a certificate: only in optional mode (the others end such a handshake).
    if (certificate === undefined) return mode === 'optional' ? bearer : undefined;
    const bound = certificate.identity === undefined ? undefined : this.registry.byTlsIdentity(certificate.identity);
    if (bound === undefined) {
      this.app.metrics.tlsCertificateRefusals.inc({ reason: 'unmapped' });
      return undefined;
    }
    if (alone) return bound;
    if (bearer === undefined) return undefined;
    if (bearer.serviceId !== bound.serviceId) {
      this.app.metrics.tlsCertificateRefusals.inc({ reason: 'mismatch' });
      return undefined;
    }
    return bearer;
  }

  #json(request: WireRequest): unknown {
    const type = request.headers.get('content-type');
    if (type === undefined || !/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(type)) {
      throw new PadlockError('UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json');
    }
    if (request.bodyTooLarge) {
      throw new PadlockError('BODY_TOO_LARGE', `the body may be at most ${this.options.maxBodyBytes} bytes`);
    }
    const text = request.body.toString('utf8');
    if (text.length === 0) throw new PadlockError('INVALID_JSON', 'the request body is empty');
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new PadlockError('INVALID_JSON', `the request body is not valid JSON: ${(error as Error).message}`);
    }
  }

  /** Sends the answer of a request once: a deadline may have answered it already. */
  #answer(pending: Pending, reply: Reply): void {
    if (pending.answered) return;
    pending.answered = true;
    // The slot frees when the request is answered, by its deadline if need be: a store that
    // stopped answering must not keep every slot taken. Counted requests are the listed ones.
    if (pending.counted) {
      this.#inFlight--;
      this.#pending.delete(pending);
    }
    const { request } = pending;
    const contentType = reply.contentType ?? 'application/json';
    const body =
      Buffer.isBuffer(reply.body) ||
      reply.body instanceof BodyWriter ||
      (typeof reply.body === 'string' && reply.contentType !== undefined)
        ? reply.body
        : JSON.stringify(reply.body);
    // One literal of a fixed shape (no spread: an object spread on every request showed in profiles).
    request.connection.respond(
      { status: reply.status, contentType, body, close: this.#draining, headers: reply.headers, requestId: pending.id },
      request.method === 'HEAD',
    );
    const seconds = (performance.now() - pending.started) / 1000;
    const status = String(reply.status);
    const method = request.method;
    const label = pending.label;
    const compiled = pending.compiled;
    if (compiled === undefined) {
      this.app.metrics.requests.inc({ route: label, method, status });
      this.app.metrics.requestDuration.observe({ route: label }, seconds);
    } else {
      let key = compiled.countKeys.get(reply.status);
      if (key === undefined) {
        key = labelKey({ route: label, method, status });
        compiled.countKeys.set(reply.status, key);
      }
      this.app.metrics.requests.incKey(key);
      this.app.metrics.requestDuration.observeKey(compiled.latencyKey, seconds);
    }
    if (pending.span !== undefined)
      endRequestSpan(pending.span, method, label, reply.status, requestIdText(pending.id));
    if (this.options.logRequests) {
      this.log.info('request', {
        requestId: requestIdText(pending.id),
        method,
        route: label,
        status: reply.status,
        ms: Math.round(seconds * 1e6) / 1e3,
      });
    }
  }
}

/** Tells a client when to come back (RFC 9110 section 10.2.3): shed and overloaded answers. */
const RETRY_AFTER: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '1' });
/** RFC 6750 section 3: a 401 names the scheme it wants. */
const WWW_AUTHENTICATE: Readonly<Record<string, string>> = Object.freeze({ 'www-authenticate': 'Bearer' });

/** How the HTTP layer's refusals are answered and counted in padlock_requests_shed_total. */
const WIRE_ERRORS: Readonly<Record<WireError['status'], { code: ErrorCode; reason: string }>> = {
  400: { code: 'INVALID_REQUEST', reason: 'unparsable' },
  408: { code: 'REQUEST_TIMEOUT', reason: 'timeout' },
  431: { code: 'HEADERS_TOO_LARGE', reason: 'unparsable' },
  503: { code: 'OVERLOADED', reason: 'memory' },
};

/** A 405, with the methods the path does allow (RFC 9110 section 15.5.6: a 405 carries Allow). */
class MethodNotAllowed extends PadlockError {
  readonly allow: string;
  constructor(method: string, allowed: readonly string[]) {
    super('METHOD_NOT_ALLOWED', `${method} is not allowed on this path`);
    this.allow = [...new Set(allowed)].join(', ');
  }
}

function errorReply(error: unknown): Reply {
  const e = error instanceof PadlockError ? error : new PadlockError('INTERNAL');
  const body = e.toJSON();
  if (e instanceof MethodNotAllowed) return { status: e.status, body, headers: { allow: e.allow } };
  if (e.status === 401) return { status: e.status, body, headers: WWW_AUTHENTICATE };
  if (e.status === 503 || e.status === 429) return { status: e.status, body, headers: RETRY_AFTER };
  return { status: e.status, body };
}
