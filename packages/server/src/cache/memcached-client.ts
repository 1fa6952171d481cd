import { hash } from 'node:crypto';
import { Socket } from 'node:net';

/*
 * A small memcached client for the text protocol, written for Padlock's
 * failure model rather than taken from npm: the common clients retry by
 * default (memjs twice, `memcached` five times with 5 s timeouts) and fetch
 * keys one round trip at a time. This one:
 *   - keeps one connection per server and pipelines requests on it
 *     (memcached answers in order), so a multi-get is one `get k1 k2 ...`
 *     per server;
 *   - never retries; every request has a deadline, and a request that misses
 *     it destroys its connection (the reply stream is then out of step), failing
 *     every request queued on it;
 *   - after a failure, refuses requests to that server at once, without
 *     touching the network, until a health probe (`version`, in the
 *     background) is answered: a dead or paused server costs requests nothing
 *     once marked down, and no request of a caller is ever the one that finds
 *     out whether it is back. A server that had been up for downMs or more is
 *     probed at once (a single late answer, a hiccup of either machine, then
 *     costs a round trip of misses rather than downMs), then every downMs;
 *     one that fails again sooner waits downMs, so a flapping server is not
 *     retried in a loop;
 *   - spreads keys over servers by consistent hashing (160 points per server on
 *     an MD5 ring), so adding or removing a server moves about 1/n of the keys.
 */

export interface MemcachedOptions {
  /** "host:port" of each server. */
  readonly servers: readonly string[];
  /** Deadline of one request, connecting included. */
  readonly timeoutMs: number;
  /** How often a server marked down is probed in the background (requests skip it until one probe is answered). */
  readonly downMs: number;
}

export class MemcachedError extends Error {
  constructor(
    message: string,
    readonly kind: 'timeout' | 'down' | 'protocol' | 'connection',
  ) {
    super(message);
    this.name = 'MemcachedError';
  }
}

interface Pending {
  readonly kind: 'get' | 'store' | 'delete' | 'version';
  readonly resolve: (value: Map<string, Buffer> | boolean) => void;
  readonly reject: (error: MemcachedError) => void;
  readonly timer: NodeJS.Timeout;
  readonly values: Map<string, Buffer>;
}

class Connection {
  #socket: Socket | undefined;
  #queue: Pending[] = [];
  #buffer: Buffer = Buffer.alloc(0);
  #down = false;
  /** When the server was last found up (a probe answered); -Infinity before any failure. */
  #upSince = Number.NEGATIVE_INFINITY;
  #probeTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    readonly address: string,
    private readonly options: MemcachedOptions,
  ) {}

  get healthy(): boolean {
    return !this.#down;
  }

  request<T extends Map<string, Buffer> | boolean>(kind: Pending['kind'], command: Buffer): Promise<T> {
    if (this.#closed) return Promise.reject(new MemcachedError('client closed', 'connection'));
    if (this.#down) return Promise.reject(new MemcachedError(`memcached ${this.address} is marked down`, 'down'));
    return this.#send<T>(kind, command);
  }

  #send<T extends Map<string, Buffer> | boolean>(kind: Pending['kind'], command: Buffer): Promise<T> {
    const socket = this.#connect();
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = {
        kind,
        resolve: resolve as Pending['resolve'],
        reject,
        // After a stall of this process (GC, a large batch), timers run before socket reads: a reply
        // that arrived in time would be taken for a timeout and a healthy server marked down. Check
        // again after the poll phase (setImmediate runs after it) before failing.
        timer: setTimeout(
          () =>
            setImmediate(() => {
              if (!this.#queue.includes(pending)) return;
              this.#fail(new MemcachedError(`memcached ${this.address} did not answer in time`, 'timeout'));
            }),
          this.options.timeoutMs,
        ),
        values: new Map(),
      };
      this.#queue.push(pending);
      socket.write(command);
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#fail(new MemcachedError('client closed', 'connection'), false);
  }

  /**
   * While marked down, one `version` request at a time, alone on a fresh connection (requests are
   * refused meanwhile, so none queue behind it): answered, the server takes requests again;
   * refused or timed out, #fail keeps it down and schedules the next probe downMs later.
   */
  #scheduleProbe(delayMs: number): void {
    if (this.#closed || this.#probeTimer !== undefined) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#closed || !this.#down) return;
      this.#send<boolean>('version', VERSION).then(
        () => {
          this.#down = false;
          this.#upSince = performance.now();
        },
        () => undefined,
      );
    }, delayMs);
    this.#probeTimer.unref();
  }

  #connect(): Socket {
    if (this.#socket !== undefined) return this.#socket;
    const separator = this.address.lastIndexOf(':');
    const socket = new Socket();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) =>
      this.#fail(new MemcachedError(`memcached ${this.address}: ${error.message}`, 'connection')),
    );
    socket.on('close', () =>
      this.#fail(new MemcachedError(`memcached ${this.address} closed the connection`, 'connection')),
    );
    socket.connect(Number(this.address.slice(separator + 1)), this.address.slice(0, separator));
    this.#socket = socket;
    return socket;
  }

  /** Fails every queued request and drops the connection; the server is skipped until a probe is answered. */
  #fail(error: MemcachedError, markDown = true): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#buffer = Buffer.alloc(0);
    const queue = this.#queue;
    this.#queue = [];
    if (markDown && !this.#closed) {
      // Up for downMs or more: probe at once. Just back, or a probe that failed: wait downMs.
      const settled = !this.#down && performance.now() - this.#upSince >= this.options.downMs;
      this.#down = true;
      this.#scheduleProbe(settled ? 0 : this.options.downMs);
    }
    socket?.removeAllListeners('close');
    socket?.destroy();
    for (const pending of queue) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const pending = this.#queue[0];
      if (pending === undefined) {
        if (this.#buffer.length > 0) this.#fail(new MemcachedError('unexpected data from memcached', 'protocol'));
        return;
      }
      const lineEnd = this.#buffer.indexOf('\r\n');
      if (lineEnd === -1) return;
      const line = this.#buffer.toString('latin1', 0, lineEnd);
      if (pending.kind === 'get' && line.startsWith('VALUE ')) {
        const [, key, , bytesText] = line.split(' ');
        const bytes = Number(bytesText);
        if (key === undefined || !Number.isInteger(bytes) || bytes < 0) {
          this.#fail(new MemcachedError('malformed VALUE line', 'protocol'));
          return;
        }
        const end = lineEnd + 2 + bytes + 2;
        if (this.#buffer.length < end) return;
        pending.values.set(key, Buffer.from(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + bytes)));
        this.#buffer = this.#buffer.subarray(end);
        continue;
      }
      this.#buffer = this.#buffer.subarray(lineEnd + 2);
      this.#queue.shift();
      clearTimeout(pending.timer);
      if (pending.kind === 'get' && line === 'END') pending.resolve(pending.values);
      else if (pending.kind === 'store' && (line === 'STORED' || line === 'NOT_STORED'))
        pending.resolve(line === 'STORED');
      else if (pending.kind === 'delete' && (line === 'DELETED' || line === 'NOT_FOUND'))
        pending.resolve(line === 'DELETED');
      else if (pending.kind === 'version' && line.startsWith('VERSION ')) pending.resolve(true);
      else {
        pending.reject(new MemcachedError(`memcached answered "${line.slice(0, 80)}"`, 'protocol'));
        this.#fail(new MemcachedError('memcached protocol error', 'protocol'));
        return;
      }
    }
  }
}

const POINTS_PER_SERVER = 160;

export class MemcachedClient {
  readonly #connections: Connection[];
  readonly #ring: { point: number; connection: Connection }[];

  constructor(private readonly options: MemcachedOptions) {
    if (options.servers.length === 0) throw new RangeError('at least one memcached server is required');
    this.#connections = options.servers.map((address) => new Connection(address, options));
    this.#ring = [];
    for (const connection of this.#connections) {
      for (let i = 0; i < POINTS_PER_SERVER; i++) {
        this.#ring.push({ point: ringPoint(`${connection.address}-${i}`), connection });
      }
    }
    this.#ring.sort((a, b) => a.point - b.point);
  }

  /** Servers that are not currently marked down. */
  get healthyServers(): number {
    return this.#connections.filter((c) => c.healthy).length;
  }

  get totalServers(): number {
    return this.#connections.length;
  }

  /** The server a key lives on. */
  serverFor(key: string): string {
    return this.#locate(key).address;
  }

  /**
   * Values of the keys found. A server that fails makes its keys missing and is
   * reported in `failures`; the other servers' answers still count.
   */
  async getMany(keys: readonly string[]): Promise<{ values: Map<string, Buffer>; failures: MemcachedError[] }> {
    const byServer = new Map<Connection, string[]>();
    for (const key of keys) {
      const connection = this.#locate(key);
      const serverKeys = byServer.get(connection);
      if (serverKeys === undefined) byServer.set(connection, [key]);
      else serverKeys.push(key);
    }
    const values = new Map<string, Buffer>();
    const failures: MemcachedError[] = [];
    await Promise.all(
      [...byServer].map(async ([connection, serverKeys]) => {
        try {
          const found = await connection.request<Map<string, Buffer>>(
            'get',
            Buffer.from(`get ${serverKeys.join(' ')}\r\n`, 'latin1'),
          );
          for (const [key, value] of found) values.set(key, value);
        } catch (error) {
          failures.push(error as MemcachedError);
        }
      }),
    );
    return { values, failures };
  }

  /** Stores a value with an expiry in seconds. */
  set(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    const header = Buffer.from(`set ${key} 0 ${Math.max(1, Math.floor(ttlSeconds))} ${value.length}\r\n`, 'latin1');
    return this.#locate(key).request<boolean>('store', Buffer.concat([header, value, CRLF]));
  }

  /** Deletes a key; true when it existed. */
  delete(key: string): Promise<boolean> {
    return this.#locate(key).request<boolean>('delete', Buffer.from(`delete ${key}\r\n`, 'latin1'));
  }

  close(): void {
    for (const connection of this.#connections) connection.close();
  }

  #locate(key: string): Connection {
    const point = ringPoint(key);
    let low = 0;
    let high = this.#ring.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#ring[mid]!.point < point) low = mid + 1;
      else high = mid;
    }
    return (this.#ring[low] ?? this.#ring[0]!).connection;
  }
}

const CRLF = Buffer.from('\r\n');
const VERSION = Buffer.from('version\r\n', 'latin1');

function ringPoint(text: string): number {
  return hash('md5', text, 'buffer').readUInt32BE(0);
}

/** memcached keys: at most 250 bytes, no spaces or control characters. */
export function isValidKey(key: string): boolean {
  return key.length > 0 && key.length <= 250 && /^[\x21-\x7e]+$/.test(key);
}
