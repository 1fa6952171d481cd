import http from 'node:http';
import https from 'node:https';
import type { ResolvedTls } from '../options.js';

/*
 * One HTTP attempt over node:http(s) with a keep-alive Agent per protocol.
 * Chosen over the global fetch (undici) for per-request control: a hard
 * timeout that destroys the socket, cancellation when a hedge wins, and
 * byte-level bodies without stream adapters. See the package README for the
 * measurement.
 */

export interface HttpReply {
  readonly status: number;
  readonly body: Buffer;
}

/** A failed attempt: no HTTP answer (connection error, reset, timeout, cancellation). */
export class AttemptError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'AttemptError';
  }
}

export interface Attempt {
  readonly reply: Promise<HttpReply>;
  /** Abandons the attempt and its socket; the reply rejects with CANCELLED. */
  cancel(): void;
}

export interface AttemptRequest {
  readonly base: URL;
  readonly method: string;
  /** Path below the base URL, starting with "/". */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | undefined;
  readonly timeoutMs: number;
}

/** Answers larger than this are refused: a batch of 10000 users is far below it. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Below the server's keepAliveTimeout (5 s), so the client closes idle sockets before the server does. */
const FREE_SOCKET_TIMEOUT_MS = 4000;

export class HttpClient {
  readonly #http: http.Agent;
  readonly #https: https.Agent;
  readonly #tls: ResolvedTls | undefined;

  constructor(maxSockets: number, tls?: ResolvedTls) {
    this.#tls = tls;
    const agentOptions = {
      keepAlive: true,
      keepAliveMsecs: 1000,
      maxSockets,
      maxFreeSockets: maxSockets,
      // LIFO reuses the warmest sockets and lets the rest time out when load drops.
      scheduling: 'lifo' as const,
      timeout: FREE_SOCKET_TIMEOUT_MS,
    };
    this.#http = new http.Agent(agentOptions);
    // The https Agent also keeps TLS sessions (up to 100), so a new connection resumes rather
    // than doing a full handshake. The server's name is verified (rejectUnauthorized, Node's default).
    this.#https = new https.Agent({
      ...agentOptions,
      ...(tls?.ca === undefined ? {} : { ca: [...tls.ca] }),
      ...(tls?.cert === undefined || tls.key === undefined ? {} : { cert: tls.cert, key: tls.key }),
    });
  }

  send(request: AttemptRequest): Attempt {
    let cancel: () => void = () => undefined;
    const reply = new Promise<HttpReply>((resolve, reject) => {
      const deadline = Date.now() + request.timeoutMs;
      const start = (firstTry: boolean): void => {
        const { req, abandon } = this.#one(request, deadline - Date.now(), (error, result) => {
          if (error === undefined) {
            resolve(result!);
            return;
          }
          // A keep-alive socket the server closed just as it was reused: the request never reached
          // a handler, so sending it once more on a fresh socket is safe (Node's documented pattern).
          if (firstTry && error.reason === 'ECONNRESET' && req.reusedSocket && Date.now() < deadline) {
            start(false);
            return;
          }
          reject(error);
        });
        cancel = abandon;
      };
      start(true);
    });
    return { reply, cancel: () => cancel() };
  }

  #one(
    request: AttemptRequest,
    timeoutMs: number,
    done: (error: AttemptError | undefined, reply?: HttpReply) => void,
  ): { req: http.ClientRequest; abandon: () => void } {
    const { base } = request;
    const secure = base.protocol === 'https:';
    let finished = false;
    const finish = (error: AttemptError | undefined, reply?: HttpReply): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(error, reply);
    };
    const options: http.RequestOptions = {
      hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: base.port === '' ? (secure ? 443 : 80) : Number(base.port),
      method: request.method,
      path: base.pathname.replace(/\/+$/, '') + request.path,
      headers:
        request.body === undefined
          ? request.headers
          : { ...request.headers, 'content-length': String(request.body.length) },
      agent: secure ? this.#https : this.#http,
    };
    const req = (secure ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy();
          finish(new AttemptError('RESPONSE_TOO_LARGE'));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks, size) }));
      res.on('error', (error: NodeJS.ErrnoException) => finish(new AttemptError(error.code ?? 'RESPONSE_ERROR')));
      res.on('close', () => {
        if (!res.complete) finish(new AttemptError('ECONNRESET'));
      });
    });
    const timer = setTimeout(
      () => {
        finish(new AttemptError('TIMEOUT'));
        req.destroy();
      },
      Math.max(1, timeoutMs),
    );
    req.on('error', (error: NodeJS.ErrnoException) => finish(new AttemptError(error.code ?? 'REQUEST_ERROR')));
    req.end(request.body);
    return {
      req,
      abandon: () => {
        finish(new AttemptError('CANCELLED'));
        req.destroy();
      },
    };
  }

  /** Closes every pooled socket; attempts in flight fail. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
    this.#tls?.key?.fill(0);
  }
}
