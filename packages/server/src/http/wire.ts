import { createServer, type Server, type Socket } from 'node:net';
import {
  BadRequest,
  DEFAULT_CHUNK_EXTENSION_BYTES,
  DEFAULT_CHUNK_LINE_BYTES,
  RequestParser,
  type ParserEvents,
  type ParserLimits,
  type RequestHead,
} from './parser.js';
import { answerBytes, CLOSE_FIELDS, type WireReply } from './answer.js';
import { GrowableBuffer } from './growable-buffer.js';
import { adoptSocket, readTlsIntoSharedBuffer } from './private-socket-handle.js';

export type { WireReply } from './answer.js';

/*
 * HTTP/1.1 connections on plain sockets: Padlock's own server side of the protocol, because
 * node:http costs more CPU per request than everything else a warm lookup does (bench/: a bare
 * node:http server answers about half as many requests per second as a bare socket does on the
 * same machine). The parser (parser.ts) reads requests; a connection feeds it, holds what a
 * request needs until it is answered, keeps the timeouts and writes the answers:
 * - one request at a time per connection: pipelined requests wait (reading stops past a bound)
 *   and are answered in order;
 * - a body is held in one buffer per request, grown in place by doubling up to its declared length
 *   or maxBodyBytes (growable-buffer.ts), and what every connection holds (partial heads, bodies, waiting requests) is
 *   counted against one process-wide bound, past which the connection that asks for more is
 *   answered 503 and closed; past maxConnections a new connection is closed at once;
 * - timeouts: head and whole request (408), idle keep-alive (closed).
 * Anything that cannot be framed is answered once (400, 431) and the connection closed.
 */

export interface WireOptions {
  /** Request line plus header fields plus the blank line, in bytes (431 above it). */
  readonly maxHeadBytes: number;
  /** Body bytes after de-chunking; a larger body is flagged and the connection closed after the answer. */
  readonly maxBodyBytes: number;
  /** From a request's first byte to the end of its head. */
  readonly headersTimeoutMs: number;
  /** From a request's first byte to the end of its body. */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections; one more is closed as it arrives. Default: no bound. */
  readonly maxConnections?: number;
  /** Bytes held by all unfinished requests together (heads, bodies, pipelined bytes). Default: no bound. */
  readonly maxHeldBytes?: number;
}

export interface WireRequest {
  readonly method: string;
  /** The request target as sent (origin-form: path and query). */
  readonly target: string;
  /** Header fields by lower-case name; repeats of a list field are joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
  /** The de-chunked body; empty when there is none or it was too large. */
  readonly body: Buffer;
  /** True when the request declared a body (Content-Length or Transfer-Encoding). */
  readonly framed: boolean;
  /** True when the body exceeded maxBodyBytes: the answer closes the connection. */
  readonly bodyTooLarge: boolean;
  readonly connection: WireConnection;
}

/** Why a request could not be read: answered by the server's `onBadRequest`, then the connection closes. */
export interface WireError {
  readonly status: 400 | 408 | 431 | 503;
  readonly message: string;
}

/** What the server refused to hold: a connection past maxConnections, or bytes past maxHeldBytes. */
export type ShedReason = 'connections' | 'memory';

export interface WireHandlers {
  onRequest(request: WireRequest): void;
  /** Answer a request that could not be read (call connection.respond); the connection then closes. */
  onBadRequest(connection: WireConnection, error: WireError): void;
  /** A connection was shed; `heldBytes` is what it held (0 at accept). */
  onShed?(reason: ShedReason, heldBytes: number): void;
}

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
/** Written to a connection closed at accept (past maxConnections), before anything was read. */
const SHED_AT_ACCEPT = ((): Buffer => {
  const body = '{"error":{"code":"OVERLOADED","message":"the server holds too many connections"}}';
  return Buffer.from(
    'HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n' +
      `content-length: ${body.length}\r\nretry-after: 1\r\nconnection: close\r\n\r\n${body}`,
    'latin1',
  );
})();

/** The next capacity of a buffer that must hold `needed` bytes: doubled, at most `cap`. */
function grownCapacity(current: number, needed: number, first: number, cap: number): number {
  return Math.min(cap, Math.max(needed, current * 2, first));
}

/**
 * What a connection is doing: reading requests ('open', the parser says whether one has begun),
 * handling one ('busy'), flushing its last answer ('closing'), or gone ('closed').
 */
type State = 'open' | 'busy' | 'closing' | 'closed';

export class WireConnection implements ParserEvents {
  /** Free for the server's use: state that lives as long as this connection (its credential verdict). */
  note: unknown;
  #state: State = 'open';
  readonly #parser: RequestParser;
  /** When the current state times out (performance.now() ms); Infinity while busy. */
  #deadline: number;
  /** When the request being read began; -1 when it began in the bytes being parsed now. */
  #requestStarted = 0;
  #head: RequestHead | undefined;
  /** The body of the request being read, in one buffer grown up to what it may hold. */
  #body: GrowableBuffer | undefined;
  /** Bytes read but not parsed yet (pipelined requests while one is handled): pending[start, end). */
  #pending: Buffer | undefined;
  #pendingStart = 0;
  #pendingEnd = 0;
  /** Bytes this connection has reserved from the server's bound on held bytes. */
  #held = 0;
  /** Of those, the parser's (see #feed). */
  #parserHeld = 0;
  #closeAfter = false;
  /** The client is not reading its answers: nothing more is parsed until it does. */
  #blocked = false;
  #paused = false;
  #corked = false;
  /** True while the parser runs: an answer given meanwhile does not start it again. */
  #feeding = false;
  /** The client has half-closed: it sends nothing more, but may still read the answers. */
  #peerEnded = false;

  constructor(
    readonly socket: Socket,
    private readonly server: WireServer,
    /** True when the socket reads into the shared read buffer (private-socket-handle.ts). */
    readonly adopted: boolean,
  ) {
    this.#parser = new RequestParser(server.parserLimits, this);
    this.#deadline = performance.now() + server.options.keepAliveTimeoutMs;
    socket.setNoDelay(true);
    if (!adopted) socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      this.#peerEnded = true;
      if (this.#state === 'open' && !this.#blocked) this.#atEnd();
    });
    socket.on('close', () => {
      this.#state = 'closed';
      this.#dropHeld();
      this.note = undefined;
      server.closed(this);
    });
  }

  /** Bytes read from the socket: valid only during this call (they may be the shared read buffer). */
  onBytes(bytes: Buffer): void {
    // Bytes after a request that closes the connection are never read as requests.
    if (this.#state === 'closing' || this.#state === 'closed' || this.#closeAfter) return;
    if (this.#pendingEnd > this.#pendingStart || this.#state === 'busy' || this.#blocked) {
      if (!this.#keepPending(bytes, 0)) return;
      if (this.#state === 'open' && !this.#blocked) this.#advance();
    } else {
      const at = this.#feed(bytes, 0);
      if (at < bytes.length && !this.#gone() && !this.#closeAfter) {
        this.#keepPending(bytes, at);
      }
    }
    this.#flowControl();
  }

  /** No request is being read or answered, and none is waiting. */
  get idle(): boolean {
    return this.#state === 'open' && !this.#parser.inRequest && this.#pendingEnd === this.#pendingStart;
  }

  get closed(): boolean {
    return this.#state === 'closed' || this.#state === 'closing';
  }

  /** Bytes this connection holds for unfinished requests (counted against maxHeldBytes). */
  get heldBytes(): number {
    return this.#held;
  }

  /** Called by the server's sweep; closes what has outlived its timeout. */
  sweep(now: number): void {
    if (now < this.#deadline) return;
    if (this.#state === 'open') {
      if (this.#parser.inRequest) this.#fail({ status: 408, message: 'the request was not received in time' });
      else this.socket.destroy();
    } else if (this.#state === 'closing') {
      this.socket.destroy();
    }
  }

  /** Answers the request being handled; the next pipelined request, if any, is read after it. */
  respond(reply: WireReply, headOnly = false): void {
    if (this.#state !== 'busy') return;
    const close =
      reply.close === true ||
      this.#closeAfter ||
      this.server.closing ||
      (this.#peerEnded && this.#pendingEnd === this.#pendingStart);
    const out = answerBytes(reply, headOnly, close ? CLOSE_FIELDS : this.server.keepAliveFields);
    // Answers leave once the loop has handled every request that had arrived: all answers to a
    // client that pipelines in one write, as from node:http, and the answers to many clients
    // back to back. Each write is a system call that wakes a client; on the 2-core bench machine,
    // writing them together raised throughput by about a tenth over writing each at once.
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(uncork, this);
    }
    this.socket.write(out);
    if (close) {
      this.#close();
      return;
    }
    this.#state = 'open';
    this.#deadline = performance.now() + this.server.options.keepAliveTimeoutMs;
    if (this.socket.writableNeedDrain) {
      // The client is not reading its answers: read no more of its requests until it does.
      this.#blocked = true;
      this.socket.once('drain', () => {
        this.#blocked = false;
        if (this.#state === 'open') this.#advance();
      });
      return;
    }
    if (!this.#feeding && this.#pendingEnd > this.#pendingStart) this.#advance();
  }

  /** Sends what was written since the first answer of this turn. */
  uncork(): void {
    this.#corked = false;
    this.socket.uncork();
  }

  // ParserEvents: called by this connection's parser during #feed, never by anything else.

  onHead(head: RequestHead): void {
    this.#head = head;
    if (this.#requestStarted !== -1) {
      this.#deadline = this.#requestStarted + this.server.options.requestTimeoutMs;
    }
    if (head.expectContinue) this.socket.write(CONTINUE);
  }

  onBody(bytes: Buffer, start: number, end: number): void {
    let body = this.#body;
    if (body === undefined) {
      const declared = this.#head?.headers.get('content-length');
      body = this.#body = new GrowableBuffer(
        declared === undefined ? this.server.options.maxBodyBytes : Number(declared),
      );
    }
    const capacity = body.capacityFor(end - start);
    if (capacity > body.capacity) {
      if (!this.#reserve(capacity - body.capacity)) return;
      try {
        body.grow(capacity);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        // No address space for it: as past the bound on held bytes.
        this.#shed();
        return;
      }
    }
    body.append(bytes, start, end);
  }

  onEnd(tooLarge: boolean): void {
    const head = this.#head;
    if (head === undefined || this.#state !== 'open') return;
    const body = tooLarge || this.#body === undefined ? EMPTY : this.#body.bytes();
    if (this.#body !== undefined) {
      // The body now belongs to the request: no longer counted as held by an unfinished one.
      this.#release(this.#body.capacity);
      this.#body = undefined;
    }
    this.#head = undefined;
    this.#state = 'busy';
    this.#deadline = Infinity;
    if (head.close) this.#closeAfter = true;
    if (tooLarge) {
      // The rest of the body is never read: nothing after it can be framed.
      this.#closeAfter = true;
      this.#dropPending();
    }
    this.server.onRequest({
      method: head.method,
      target: head.target,
      headers: head.headers,
      body,
      framed: head.framed,
      bodyTooLarge: tooLarge,
      connection: this,
    });
  }

  onError(error: BadRequest): void {
    this.#fail({ status: error.status, message: error.message });
  }

  /** Closing or closed (a parser event may have closed it). */
  #gone(): boolean {
    return this.#state === 'closing' || this.#state === 'closed';
  }

  /** Parses bytes[at, ...) while requests can be read; returns where it stopped. */
  #feed(bytes: Buffer, at: number): number {
    this.#feeding = true;
    try {
      while (at < bytes.length && this.#state === 'open' && !this.#blocked) {
        if (!this.#parser.inRequest) this.#requestStarted = -1;
        at = this.#parser.execute(bytes, at);
        if (this.#gone()) return bytes.length;
        if (this.#requestStarted === -1 && this.#parser.inRequest) {
          // A request began in these bytes and is not complete: its timeouts start now.
          this.#requestStarted = performance.now();
          this.#deadline =
            this.#requestStarted +
            (this.#head === undefined ? this.server.options.headersTimeoutMs : this.server.options.requestTimeoutMs);
        }
        // The parser's own bytes (a partial head) count as held too.
        const parserHeld = this.#parser.heldBytes;
        if (parserHeld !== this.#parserHeld) {
          const grew = parserHeld - this.#parserHeld;
          this.#parserHeld = parserHeld;
          if (grew < 0) this.#release(-grew);
          else if (!this.#reserve(grew)) return bytes.length;
        }
      }
      return at;
    } finally {
      this.#feeding = false;
    }
  }

  /** Parses the pending bytes while requests can be read; what is left stays pending. */
  #advance(): void {
    if (this.#pending !== undefined && this.#pendingEnd > this.#pendingStart) {
      this.#pendingStart = this.#feed(this.#pending.subarray(0, this.#pendingEnd), this.#pendingStart);
      if (this.#pendingStart >= this.#pendingEnd) this.#dropPending();
    }
    if (this.#peerEnded && this.#state === 'open' && !this.#blocked) this.#atEnd();
    this.#flowControl();
  }

  /** Keeps bytes[from, ...) after the pending bytes (copied: they may be the shared read buffer); false when shed. */
  #keepPending(bytes: Buffer, from: number): boolean {
    const count = bytes.length - from;
    let pending = this.#pending;
    const live = this.#pendingEnd - this.#pendingStart;
    if (pending === undefined || this.#pendingEnd + count > pending.length) {
      const capacity = pending?.length ?? 0;
      if (live + count <= capacity && pending !== undefined) {
        pending.copy(pending, 0, this.#pendingStart, this.#pendingEnd);
      } else {
        const grown = grownCapacity(capacity, live + count, 1024, Number.MAX_SAFE_INTEGER);
        if (!this.#reserve(grown - capacity)) return false;
        const fresh = Buffer.allocUnsafeSlow(grown);
        if (pending !== undefined) pending.copy(fresh, 0, this.#pendingStart, this.#pendingEnd);
        this.#pending = pending = fresh;
      }
      this.#pendingStart = 0;
      this.#pendingEnd = live;
    }
    bytes.copy(pending, this.#pendingEnd, from);
    this.#pendingEnd += count;
    return true;
  }

  /** Reserves bytes from the server's bound; past it, the connection is shed and false returned. */
  #reserve(bytes: number): boolean {
    if (this.server.reserve(bytes)) {
      this.#held += bytes;
      return true;
    }
    this.#shed();
    return false;
  }

  #release(bytes: number): void {
    this.#held -= bytes;
    this.server.release(bytes);
  }

  #dropPending(): void {
    if (this.#pending !== undefined) this.#release(this.#pending.length);
    this.#pending = undefined;
    this.#pendingStart = 0;
    this.#pendingEnd = 0;
  }

  /** Lets go of everything held for unfinished requests. */
  #dropHeld(): void {
    this.#dropPending();
    this.#body = undefined;
    this.#head = undefined;
    this.server.release(this.#held);
    this.#held = 0;
    this.#parserHeld = 0;
  }

  /** Past the server's bound on held bytes: answer 503 when a request is being read, then close. */
  #shed(): void {
    const held = this.#held;
    this.#dropHeld();
    this.server.shed('memory', held);
    if (this.#state === 'open') {
      this.#fail({ status: 503, message: 'the server holds too many unfinished requests' });
    } else if (this.#state === 'busy') {
      // The request being handled is answered, then the connection closes; nothing more is read.
      this.#closeAfter = true;
    }
  }

  /**
   * Reads no more while a whole request's worth of bytes is waiting (a client that pipelines
   * faster than it reads its answers), and reads again once it is handled.
   */
  #flowControl(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const full =
      this.#pendingEnd - this.#pendingStart > this.server.options.maxHeadBytes + this.server.options.maxBodyBytes;
    if (full && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    } else if (!full && this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  /**
   * The client has half-closed and every complete request it sent has been read: close when
   * nothing more was begun, and answer 400 to a request cut short (the client may still read it).
   */
  #atEnd(): void {
    if (this.#pendingEnd > this.#pendingStart) return;
    if (this.#parser.inRequest) {
      this.#fail({ status: 400, message: 'the client closed its side before the request was complete' });
    } else {
      this.#close();
    }
  }

  /** Closes the connection once what was written is flushed; drops whatever else arrives. */
  #close(): void {
    this.#state = 'closing';
    this.#dropHeld();
    this.#deadline = performance.now() + this.server.options.keepAliveTimeoutMs;
    this.socket.end();
    if (this.#paused) this.socket.resume();
  }

  #fail(error: WireError): void {
    this.#parser.stop();
    this.#state = 'busy';
    this.#closeAfter = true;
    this.#dropHeld();
    this.server.onBadRequest(this, error);
    if (this.#state === 'busy') this.#close();
  }
}

const EMPTY = Buffer.alloc(0);

function uncork(connection: WireConnection): void {
  connection.uncork();
}

/** The listening socket and its connections. */
export class WireServer {
  readonly net: Server;
  readonly connections = new Set<WireConnection>();
  /** The connection fields of a keep-alive answer, ending the head. */
  readonly keepAliveFields: Buffer;
  readonly parserLimits: ParserLimits;
  /** Set by stopAccepting(): every answer from now on closes its connection. */
  closing = false;
  readonly #sweep: NodeJS.Timeout;
  #allClosed: (() => void) | undefined;
  /** Bytes held by every connection's unfinished requests together. */
  #heldBytes = 0;
  readonly #maxHeldBytes: number;
  readonly #maxConnections: number;

  constructor(
    readonly options: WireOptions,
    private readonly handlers: WireHandlers,
  ) {
    this.#maxHeldBytes = options.maxHeldBytes ?? Infinity;
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.parserLimits = {
      maxHeadBytes: options.maxHeadBytes,
      maxBodyBytes: options.maxBodyBytes,
      maxChunkLineBytes: DEFAULT_CHUNK_LINE_BYTES,
      maxChunkExtensionBytes: DEFAULT_CHUNK_EXTENSION_BYTES,
    };
    this.keepAliveFields = Buffer.from(
      `connection: keep-alive\r\nkeep-alive: timeout=${Math.max(1, Math.floor(options.keepAliveTimeoutMs / 1000))}\r\n\r\n`,
      'latin1',
    );
    // allowHalfOpen: a client that half-closes after its request still gets the answer, and
    // one that half-closes in the middle of a request gets a 400 saying so. pauseOnConnect: no
    // read starts before the socket is adopted (private-socket-handle.ts).
    this.net = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      if (!this.#admit(socket)) return;
      const adopted = adoptSocket(socket, (bytes) => connection.onBytes(bytes));
      const connection = new WireConnection(adopted ?? socket, this, adopted !== undefined);
      if (adopted === undefined) socket.resume();
      this.connections.add(connection);
    });
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const connection of this.connections) connection.sweep(now);
    }, 250);
    this.#sweep.unref();
  }

  /**
   * Serves a TLS socket that a tls.Server accepted, counted like the sockets this server accepts
   * itself. It reads into the shared read buffer when this Node.js allows it
   * (private-socket-handle.ts), else with 'data' events.
   *
   * @example
   *   tls.createServer(options, (socket) => wire.accept(socket));
   */
  accept(socket: Socket): void {
    if (!this.#admit(socket)) return;
    const earlier = readTlsIntoSharedBuffer(socket, (bytes) => connection.onBytes(bytes));
    const connection = new WireConnection(socket, this, earlier !== undefined);
    this.connections.add(connection);
    // Reads start (again: a socket whose readable buffer filled has stopped them) before the
    // earlier bytes are handled, so that flow control may stop them.
    if (socket.readableFlowing !== true) socket.resume();
    if (earlier !== undefined) for (const bytes of earlier) connection.onBytes(bytes);
  }

  /** Bytes held by all unfinished requests now. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Takes `bytes` from the bound on held bytes; false (and nothing taken) past it. */
  reserve(bytes: number): boolean {
    if (this.#heldBytes + bytes > this.#maxHeldBytes) return false;
    this.#heldBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#heldBytes -= bytes;
  }

  shed(reason: ShedReason, heldBytes: number): void {
    this.handlers.onShed?.(reason, heldBytes);
  }

  /** False (and the socket answered 503 and closed) when the server is closing or holds maxConnections. */
  #admit(socket: Socket): boolean {
    if (this.closing) {
      socket.destroy();
      return false;
    }
    if (this.connections.size < this.#maxConnections) return true;
    this.shed('connections', 0);
    socket.on('error', () => socket.destroy());
    // Written at once and the socket destroyed once it is flushed: a peer that never reads or
    // closes must not keep a connection this server does not count.
    socket.write(SHED_AT_ACCEPT, () => socket.destroy());
    setTimeout(() => socket.destroy(), 1000).unref();
    return false;
  }

  onRequest(request: WireRequest): void {
    this.handlers.onRequest(request);
  }

  onBadRequest(connection: WireConnection, error: WireError): void {
    this.handlers.onBadRequest(connection, error);
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        const address = this.net.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** Called by a connection once its socket has closed. */
  closed(connection: WireConnection): void {
    this.connections.delete(connection);
    if (this.connections.size === 0 && this.#allClosed !== undefined) this.#allClosed();
  }

  /** Stops accepting; resolves once every connection has closed. */
  stopAccepting(): Promise<void> {
    this.closing = true;
    // net.Server counts only the sockets it made, and adopted connections are not those: wait for
    // the listener to close, then for this server's own set of connections to empty.
    const listenerClosed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    const allClosed = new Promise<void>((resolve) => {
      if (this.connections.size === 0) resolve();
      else this.#allClosed = resolve;
    });
    return Promise.all([listenerClosed, allClosed]).then(() => clearInterval(this.#sweep));
  }

  closeIdleConnections(): void {
    for (const connection of this.connections) if (connection.idle) connection.socket.destroy();
  }

  closeAllConnections(): void {
    for (const connection of this.connections) connection.socket.destroy();
  }
}
