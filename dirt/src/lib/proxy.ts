import { createServer, Socket, type Server } from 'node:net';

/*
 * A TCP proxy that stands for the network between Padlock and its store
 * (tc netem is not available in this kernel):
 *   pass   forwards bytes as they come;
 *   delay  forwards every chunk `delayMs` late, in order;
 *   stall  forwards nothing and keeps what arrives (packets dropped on a
 *          partitioned link: TCP delivers them once it heals), new
 *          connections are accepted and stall too;
 *   reset  resets every open connection, and every new one at once.
 * It also counts the CQL request frames (native protocol v4) that Padlock
 * sends, so that a test can tell one request from a retried one.
 */

export type ProxyMode = 'pass' | 'delay' | 'stall' | 'reset';

interface Chunk {
  readonly data: Buffer;
  readonly releaseAt: number;
}

const MAX_HELD_BYTES = 16 * 1024 * 1024;

class Direction {
  readonly queue: Chunk[] = [];
  held = 0;
  timer: NodeJS.Timeout | undefined;

  constructor(readonly to: Socket) {}
}

class Pair {
  readonly up: Direction;
  readonly down: Direction;
  closed = false;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.up = new Direction(upstream);
    this.down = new Direction(client);
  }
}

/** CQL opcodes a client sends (native protocol spec v4, section 2.4). */
const OPCODES: Record<number, string> = {
  0x01: 'startup',
  0x05: 'options',
  0x07: 'query',
  0x09: 'prepare',
  0x0a: 'execute',
  0x0b: 'register',
  0x0d: 'batch',
  0x0f: 'auth_response',
};

class CqlFrameCounter {
  #buffer: Buffer = Buffer.alloc(0);
  #broken = false;
  #frames = 0;

  constructor(private readonly counts: Map<string, number>) {}

  push(chunk: Buffer): void {
    if (this.#broken) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 9) {
      const version = this.#buffer[0]! & 0x7f;
      if (version < 3 || version > 4) {
        // The driver opens with a version the server refuses, then reconnects with v4: a first frame
        // of another version is that probe. Later (v5 framing, or not CQL), stop rather than count wrong.
        this.#broken = true;
        const kind = this.#frames === 0 ? 'version_probe' : 'unparsed';
        this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
        return;
      }
      this.#frames++;
      const length = this.#buffer.readUInt32BE(5);
      if (this.#buffer.length < 9 + length) return;
      const name = OPCODES[this.#buffer[4]!] ?? 'other';
      this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      this.#buffer = this.#buffer.subarray(9 + length);
    }
  }
}

export interface ProxyOptions {
  readonly listenHost: string;
  readonly listenPort: number;
  readonly targetHost: string;
  readonly targetPort: number;
  /** Source address of the proxy's connections to the target. */
  readonly localAddress?: string;
  readonly countCql?: boolean;
}

export class FaultProxy {
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  #mode: ProxyMode = 'pass';
  #delayMs = 0;
  /** CQL request frames seen from clients, by opcode name. */
  readonly cql = new Map<string, number>();
  accepted = 0;
  resets = 0;

  constructor(private readonly options: ProxyOptions) {
    this.#server = createServer({ noDelay: true }, (client) => this.#accept(client));
  }

  get address(): string {
    return `${this.options.listenHost}:${this.options.listenPort}`;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.options.listenPort, this.options.listenHost, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** Changes the fault; leaving `stall` or `delay` releases what is held, in order. */
  setMode(mode: ProxyMode, delayMs = 0): void {
    this.#mode = mode;
    this.#delayMs = delayMs;
    if (mode === 'reset') {
      for (const pair of [...this.#pairs]) this.#reset(pair);
      return;
    }
    for (const pair of this.#pairs) {
      this.#pump(pair, pair.up);
      this.#pump(pair, pair.down);
    }
  }

  /** The count of one CQL opcode so far (execute, query, batch, prepare, ...). */
  count(opcode: string): number {
    return this.cql.get(opcode) ?? 0;
  }

  async stop(): Promise<void> {
    for (const pair of [...this.#pairs]) this.#close(pair);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.accepted++;
    if (this.#mode === 'reset') {
      this.resets++;
      client.resetAndDestroy();
      return;
    }
    const upstream = new Socket();
    const pair = new Pair(client, upstream);
    this.#pairs.add(pair);
    upstream.setNoDelay(true);
    const counter = this.options.countCql === true ? new CqlFrameCounter(this.cql) : undefined;
    client.on('data', (data: Buffer) => {
      counter?.push(data);
      this.#enqueue(pair, pair.up, data);
    });
    upstream.on('data', (data: Buffer) => this.#enqueue(pair, pair.down, data));
    for (const socket of [client, upstream]) {
      socket.on('error', () => this.#close(pair));
      socket.on('close', () => this.#close(pair));
    }
    upstream.connect({
      host: this.options.targetHost,
      port: this.options.targetPort,
      ...(this.options.localAddress === undefined ? {} : { localAddress: this.options.localAddress }),
    });
  }

  #enqueue(pair: Pair, direction: Direction, data: Buffer): void {
    if (pair.closed) return;
    direction.queue.push({ data, releaseAt: Date.now() + (this.#mode === 'delay' ? this.#delayMs : 0) });
    direction.held += data.length;
    if (direction.held > MAX_HELD_BYTES) {
      this.#reset(pair);
      return;
    }
    this.#pump(pair, direction);
  }

  #pump(pair: Pair, direction: Direction): void {
    if (pair.closed || this.#mode === 'stall' || direction.timer !== undefined) return;
    const t = Date.now();
    while (direction.queue.length > 0 && direction.queue[0]!.releaseAt <= t) {
      const chunk = direction.queue.shift()!;
      direction.held -= chunk.data.length;
      direction.to.write(chunk.data);
    }
    const head = direction.queue[0];
    if (head !== undefined) {
      direction.timer = setTimeout(() => {
        direction.timer = undefined;
        this.#pump(pair, direction);
      }, head.releaseAt - t);
    }
  }

  #reset(pair: Pair): void {
    if (pair.closed) return;
    this.resets++;
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
    this.#close(pair);
  }

  #close(pair: Pair): void {
    if (pair.closed) return;
    pair.closed = true;
    clearTimeout(pair.up.timer);
    clearTimeout(pair.down.timer);
    pair.client.destroy();
    pair.upstream.destroy();
    this.#pairs.delete(pair);
  }
}
