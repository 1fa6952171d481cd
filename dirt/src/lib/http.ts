import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { Socket } from 'node:net';

/*
 * The HTTP calls the load generators make: one keep-alive agent per target,
 * a client-side timeout far above any server deadline (a request that hits it
 * counts as a hang), and errors reduced to a short status label.
 */

export interface Target {
  readonly host: string;
  readonly port: number;
}

export interface HttpReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export class CallError extends Error {
  constructor(
    /** ECONNREFUSED, ECONNRESET, TIMEOUT, ... */
    readonly label: string,
    message: string,
  ) {
    super(message);
    this.name = 'CallError';
  }
}

export interface CallOptions {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | string;
  readonly agent?: Agent;
  readonly timeoutMs?: number;
}

/**
 * Keep-alive, most recently used socket first, and idle sockets closed after 4 s, before Padlock
 * closes them (keepAliveTimeout 5 s): a request written on a socket the server is closing meets a
 * reset, which would count against Padlock here.
 */
export function newAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo', timeout: 4000 });
}

/** One HTTP request; rejects with a CallError whose label names the failure. */
export function call(target: Target, options: CallOptions): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers };
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body !== undefined) headers['content-length'] = body.length;
    let settled = false;
    const fail = (label: string, message: string): void => {
      if (settled) return;
      settled = true;
      reject(new CallError(label, message));
    };
    const req = request(
      {
        host: target.host,
        port: target.port,
        method: options.method,
        path: options.path,
        headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'RESPONSE_ERROR', error.message));
        res.on('aborted', () => fail('ABORTED', 'response aborted'));
      },
    );
    const timer = setTimeout(() => {
      fail('TIMEOUT', `no answer within ${options.timeoutMs ?? 10000} ms`);
      req.destroy();
    }, options.timeoutMs ?? 10000);
    req.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(error.code ?? 'REQUEST_ERROR', error.message);
    });
    req.end(body);
  });
}

/** Sends raw bytes on a fresh connection and returns what came back until the server closed or `timeoutMs`. */
export function rawExchange(
  target: Target,
  bytes: Buffer,
  timeoutMs: number,
  /** End our side after writing (the default); false leaves it open, as a client still sending would. */
  halfClose = true,
): Promise<{ reply: Buffer; closed: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ reply: Buffer.concat(chunks), closed, ...(error === undefined ? {} : { error }) });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // One complete response is enough: the server keeps the connection open for keep-alive.
      const text = Buffer.concat(chunks).toString('latin1');
      const headerEnd = text.indexOf('\r\n\r\n');
      if (headerEnd >= 0) {
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, headerEnd));
        if (length !== null && text.length >= headerEnd + 4 + Number(length[1])) finish(false);
      }
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) => finish(true, error.code ?? 'SOCKET_ERROR'));
    socket.connect(target.port, target.host, () => {
      if (halfClose) socket.end(bytes);
      else socket.write(bytes);
    });
  });
}

/** Polls GET `path` until it answers `status`, or throws after `timeoutMs`. */
export async function waitForStatus(target: Target, path: string, status: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const reply = await call(target, { method: 'GET', path, timeoutMs: 2000 });
      if (reply.status === status) return;
      last = `${reply.status} ${reply.body.toString('utf8').slice(0, 300)}`;
    } catch (error) {
      last = error instanceof CallError ? error.label : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(
    `${target.host}:${target.port}${path} did not answer ${status} within ${timeoutMs} ms (last: ${last})`,
  );
}
