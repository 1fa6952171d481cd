import { PadlockError, type ErrorCode } from '@padlock/core';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { Service, ServiceRegistry } from '../services.js';
import type { AppContext, Reply, Route } from './route.js';

/*
 * The request pipeline on bare node:http: shed, route, authenticate, read and
 * validate the body, run the handler against a deadline, answer. Every failure
 * is a PadlockError with a stable code; anything else is logged and answered
 * as a plain 500 without details.
 */

export interface PipelineOptions {
  readonly maxBodyBytes: number;
  readonly maxInFlight: number;
  readonly deadlineMs: number;
  /**
   * Shed a request when the event loop has been busy this long without a break (its handler would
   * start that late), two turns of the loop in a row; default deadlineMs / 5, at least 10 ms.
   */
  readonly maxLoopBusyMs?: number;
  readonly drainTimeoutMs: number;
  readonly logRequests: boolean;
}

const VERDICT = Symbol('padlock.verdict');

interface Verdict {
  readonly header: string;
  readonly service: Service;
  readonly generation: number;
}

interface CompiledRoute {
  readonly route: Route;
  readonly segments: readonly string[];
  readonly validate: ValidateFunction | undefined;
  /** The label for metrics: the path template. */
  readonly label: string;
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

export class PadlockHttpServer {
  readonly server: Server;
  readonly #routes: CompiledRoute[];
  #inFlight = 0;
  #draining = false;
  /** When the loop last ran its timers: how long it has been busy since is how late a request is seen. */
  #loopSeenAt = performance.now();
  /** Since when every turn of the loop has come late (by three quarters of maxLoopBusyMs or more). */
  #behindSince: number | undefined;
  readonly #loopTimer: NodeJS.Timeout;
  readonly #maxLoopBusyMs: number;

  constructor(
    routes: readonly Route[],
    private readonly app: AppContext,
    private readonly registry: ServiceRegistry,
    private readonly options: PipelineOptions,
    private readonly log: Logger,
  ) {
    this.#routes = routes.map((route) => ({
      route,
      segments: route.path.split('/').slice(1),
      validate: route.body === undefined ? undefined : ajv.compile(route.body),
      label: route.path,
    }));
    this.server = createServer({ keepAliveTimeout: 5000, headersTimeout: 10000, requestTimeout: 30000 }, (req, res) => {
      void this.#handle(req, res);
    });
    // Requests node:http cannot parse never reach #handle: answer them in the
    // same error shape instead of Node's bare 400, then close the connection.
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      app.metrics.shed.inc({ reason: 'unparsable' });
      if (!socket.writable || error.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify({
        error: {
          code: 'INVALID_REQUEST',
          message: tooLarge ? 'the request headers are too large' : 'the request is not valid HTTP/1.1',
        },
      });
      socket.end(
        `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    app.metrics.gauges.track(() => this.#inFlight, { name: 'inflight_requests' });
    // A CPU-bound server never reaches maxInFlight (each request finishes within its turn of the
    // loop); its queue is in the sockets instead, where no deadline sees it. The DiRT overload
    // scenario measured that: at twice the capacity nothing was shed and the p99 grew past 1.5 s.
    // Only a loop that stays behind sheds: a pause (a GC, the process descheduled) and the backlog
    // after it are not overload, and shedding after them turned machine hiccups into 503s at a
    // tenth of capacity (or on the group taking over from a failed one); a loop whose every turn
    // has come late for BEHIND_FOR_BUSY_LIMITS busy-limits (250 ms by default) is.
    this.#maxLoopBusyMs = options.maxLoopBusyMs ?? Math.max(10, options.deadlineMs / 5);
    const tickMs = 5;
    this.#loopTimer = setInterval(() => {
      const now = performance.now();
      const late = now - this.#loopSeenAt - tickMs >= this.#maxLoopBusyMs * 0.75;
      this.#behindSince = late ? (this.#behindSince ?? now) : undefined;
      this.#loopSeenAt = now;
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
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /**
   * Graceful drain: stop accepting connections, answer new requests on open
   * connections with 503 and Connection: close, let in-flight requests finish,
   * then close. After drainTimeoutMs, remaining connections are cut.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    // Stop accepting at once, but close idle connections only after a moment: one whose request
    // has arrived and is not read yet counts as idle, and closing it resets a request its client
    // sent before the drain (the DiRT sigterm-drain scenario: 29 of 32 sent 15 ms before SIGTERM
    // to a busy server). Meanwhile what is read gets an answer (503 SHUTTING_DOWN, Connection:
    // close). node:http's close() would close idle connections itself, hence net's.
    const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(this.server, () => resolve()));
    const timer = setTimeout(() => this.server.closeAllConnections(), this.options.drainTimeoutMs);
    let idle: NodeJS.Timeout | undefined;
    const grace = setTimeout(
      () => {
        this.server.closeIdleConnections();
        idle = setInterval(() => this.server.closeIdleConnections(), 50);
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
    }
  }

  #match(
    method: string,
    path: string,
  ): { compiled: CompiledRoute; params: Record<string, string> } | 'method' | undefined {
    const segments = path.split('/').slice(1);
    let methodMismatch = false;
    for (const compiled of this.#routes) {
      if (compiled.segments.length !== segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segments.length; i++) {
        const template = compiled.segments[i]!;
        const actual = segments[i]!;
        if (template.startsWith('{')) {
          let decoded: string;
          try {
            decoded = decodeURIComponent(actual);
          } catch {
            throw new PadlockError('INVALID_REQUEST', 'the path is not valid percent-encoding');
          }
          params[template.slice(1, -1)] = decoded;
        } else if (template !== actual) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (compiled.route.method !== method) {
        methodMismatch = true;
        continue;
      }
      return { compiled, params };
    }
    return methodMismatch ? 'method' : undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    let label = 'unmatched';
    if (this.#draining) res.setHeader('Connection', 'close');
    const overloaded =
      this.#inFlight >= this.options.maxInFlight ? 'inflight' : this.#behindLongEnough() ? 'event_loop' : undefined;
    if (overloaded !== undefined) {
      this.app.metrics.shed.inc({ reason: overloaded });
      this.#send(res, errorReply(new PadlockError('OVERLOADED')), label, req.method ?? '', started);
      req.resume();
      return;
    }
    this.#inFlight++;
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new PadlockError('DEADLINE_EXCEEDED')), this.options.deadlineMs);
      });
      const reply = await Promise.race([
        this.#dispatch(req, (l) => {
          label = l;
        }),
        deadline,
      ]);
      this.#send(res, reply, label, req.method ?? '', started);
    } catch (error) {
      if (!(error instanceof PadlockError)) {
        this.log.error('request failed', {
          route: label,
          error: error instanceof Error ? error.name : 'unknown',
          detail: error instanceof Error ? error.message : undefined,
        });
      } else if (error.status >= 500 && error.cause !== undefined) {
        this.log.warn('request failed in a backend', {
          route: label,
          code: error.code,
          cause: error.cause instanceof Error ? `${error.cause.name}: ${error.cause.message}` : 'unknown',
        });
      }
      if (!req.complete) res.setHeader('Connection', 'close');
      this.#send(res, errorReply(error), label, req.method ?? '', started);
    } finally {
      clearTimeout(timer);
      this.#inFlight--;
    }
  }

  async #dispatch(req: IncomingMessage, setLabel: (label: string) => void): Promise<Reply> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    const method = req.method ?? 'GET';
    const match = this.#match(method, path);
    if (match === undefined) {
      req.resume();
      throw new PadlockError(
        'ROUTE_NOT_FOUND',
        `no route for ${path.length > 200 ? `${path.slice(0, 200)}...` : path}`,
      );
    }
    if (match === 'method') {
      req.resume();
      throw new PadlockError('METHOD_NOT_ALLOWED', `${method} is not allowed on this path`);
    }
    const { compiled, params } = match;
    setLabel(compiled.label);
    if (this.#draining && compiled.route.auth) {
      req.resume();
      throw new PadlockError('SHUTTING_DOWN');
    }
    const service = compiled.route.auth ? this.#authenticate(req) : undefined;
    if (compiled.route.auth && service === undefined) {
      req.resume();
      throw new PadlockError('UNAUTHENTICATED');
    }
    let body: unknown;
    if (compiled.validate !== undefined) {
      body = await this.#readJson(req);
      if (!compiled.validate(body)) {
        const first = compiled.validate.errors?.[0];
        throw new PadlockError(errorCodeForBody(first), bodyMessage(first));
      }
    } else {
      await this.#refuseBody(req);
    }
    if (compiled.route.query === undefined && query.size > 0) {
      throw new PadlockError('INVALID_QUERY', 'this route takes no query parameters');
    }
    return compiled.route.handle({ params, query, body, service, app: this.app });
  }

  /**
   * Authenticates a request, reusing the verdict of the previous request on
   * the same keep-alive connection when it sent the very same Authorization
   * header and the registry has not been reloaded since. The comparison is
   * with what this connection itself sent before, so it reveals nothing about
   * anyone else's credential; a refresh (revocation) invalidates the verdict.
   */
  #authenticate(req: IncomingMessage): Service | undefined {
    const header = req.headers.authorization;
    const socket = req.socket as Socket & { [VERDICT]?: Verdict | undefined };
    const cached = socket[VERDICT];
    if (cached !== undefined && cached.header === header && cached.generation === this.registry.generation) {
      return cached.service;
    }
    const service = this.registry.authenticate(header);
    if (service !== undefined && header !== undefined) {
      socket[VERDICT] = { header, service, generation: this.registry.generation };
    } else {
      socket[VERDICT] = undefined;
    }
    return service;
  }

  async #readJson(req: IncomingMessage): Promise<unknown> {
    const type = req.headers['content-type'];
    if (type === undefined || !/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(type)) {
      req.resume();
      throw new PadlockError('UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json');
    }
    const text = await this.#readBody(req);
    if (text.length === 0) throw new PadlockError('INVALID_JSON', 'the request body is empty');
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new PadlockError('INVALID_JSON', `the request body is not valid JSON: ${(error as Error).message}`);
    }
  }

  async #refuseBody(req: IncomingMessage): Promise<void> {
    // No Content-Length and no Transfer-Encoding: HTTP/1.1 framing says there is no body (RFC 9112 section 6.3).
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
      req.resume();
      return;
    }
    const text = await this.#readBody(req);
    if (text.length > 0) throw new PadlockError('INVALID_REQUEST', 'this route takes no request body');
  }

  #readBody(req: IncomingMessage): Promise<string> {
    const limit = this.options.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return Promise.reject(new PadlockError('BODY_TOO_LARGE', `the body may be at most ${limit} bytes`));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on('data', (chunk: Buffer) => {
        if (failed) return;
        size += chunk.length;
        if (size > limit) {
          failed = true;
          reject(new PadlockError('BODY_TOO_LARGE', `the body may be at most ${limit} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
      });
      req.on('error', () => {
        if (!failed) reject(new PadlockError('INVALID_REQUEST', 'the request body could not be read'));
        failed = true;
      });
    });
  }

  #send(res: ServerResponse, reply: Reply, label: string, method: string, started: bigint): void {
    if (res.headersSent || res.destroyed) return;
    const text =
      typeof reply.body === 'string' && reply.contentType !== undefined ? reply.body : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'content-type': reply.contentType ?? 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const status = String(reply.status);
    this.app.metrics.requests.inc({ route: label, method, status });
    this.app.metrics.requestDuration.observe({ route: label }, seconds);
    if (this.options.logRequests) {
      this.log.info('request', { method, route: label, status: reply.status, ms: Math.round(seconds * 1e6) / 1e3 });
    }
  }
}

function errorReply(error: unknown): Reply {
  const e = error instanceof PadlockError ? error : new PadlockError('INTERNAL');
  return { status: e.status, body: e.toJSON() };
}
