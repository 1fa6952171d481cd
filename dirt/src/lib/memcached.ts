import { Socket } from 'node:net';
import { join } from 'node:path';
import { signalChild, spawnChild, stopChild, type Child } from './children.js';

/*
 * memcached servers of the suite's own, on 127.0.0.1 ports from 11400, or
 * DIRT_MEMCACHED_PORT (net.ts; other work on this machine uses 11311/11312). Each runs in the foreground as a
 * child of the suite, so the suite holds its pid: kill, pause (SIGSTOP),
 * resume and restart act on that process only.
 */

export class MemcachedServer {
  #child: Child | undefined;

  constructor(
    readonly port: number,
    private readonly logDir: string,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined && !this.#child.done;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
    this.#child = spawnChild(
      `memcached:${this.port}`,
      'memcached',
      [...user, '-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-m', '64', '-c', '1024', '-t', '2'],
      { logFile: join(this.logDir, `memcached-${this.port}.log`) },
    );
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (this.#child.done) throw new Error(`memcached on ${this.port} exited at start; see its log`);
      try {
        const reply = await command(this.address, 'version\r\n', 500);
        if (reply.startsWith('VERSION')) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`memcached on ${this.port} did not answer within 10 s`);
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, 'SIGKILL');
  }

  pause(): void {
    if (this.#child !== undefined) signalChild(this.#child, 'SIGSTOP');
  }

  resume(): void {
    if (this.#child !== undefined) signalChild(this.#child, 'SIGCONT');
  }

  async stop(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, 'SIGTERM', 3000);
  }

  /** Every key and value it holds (keys from `lru_crawler metadump all`). */
  async dump(): Promise<Map<string, Buffer>> {
    const listing = // Key lines end in \n, the listing in END\r\n.
      (
        await exchange(this.address, 'lru_crawler metadump all\r\n', 10000, (r) =>
          /(^|\n)(END|[A-Z_]*ERROR[^\r]*)\r\n$/.test(r.toString('latin1')),
        )
      ).toString('latin1');
    const keys: string[] = [];
    for (const line of listing.split(/\r?\n/)) {
      const match = /^key=(\S+)/.exec(line);
      if (match !== null) keys.push(decodeURIComponent(match[1]!));
    }
    const out = new Map<string, Buffer>();
    for (let i = 0; i < keys.length; i += 100) {
      const chunk = keys.slice(i, i + 100);
      const raw = await exchange(this.address, `get ${chunk.join(' ')}\r\n`, 5000, (r) => parseValues(r).complete);
      for (const [key, value] of parseValues(raw).values) out.set(key, value);
    }
    return out;
  }

  /** The values of the keys found (absent keys are left out). */
  async get(keys: readonly string[]): Promise<Map<string, Buffer>> {
    if (keys.length === 0) return new Map();
    const raw = await exchange(this.address, `get ${keys.join(' ')}\r\n`, 2000, (r) => parseValues(r).complete);
    return parseValues(raw).values;
  }

  /** Stores a value as is (the corruption scenario overwrites values with damaged ones). */
  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    const head = Buffer.from(`set ${key} 0 ${ttlSeconds} ${value.length}\r\n`, 'latin1');
    const reply = await exchange(this.address, Buffer.concat([head, value, Buffer.from('\r\n')]), 2000, lineDone);
    if (!reply.toString('latin1').startsWith('STORED')) throw new Error(`memcached set answered ${reply.toString()}`);
  }
}

/** Values of a `get` reply, and whether the reply is complete (ends in END after its last value). */
function parseValues(raw: Buffer): { values: Map<string, Buffer>; complete: boolean } {
  const values = new Map<string, Buffer>();
  let o = 0;
  for (;;) {
    const end = raw.indexOf('\r\n', o);
    if (end < 0) return { values, complete: false };
    const line = raw.toString('latin1', o, end);
    if (line === 'END') return { values, complete: true };
    if (!line.startsWith('VALUE ')) return { values, complete: true };
    const [, key, , bytes] = line.split(' ');
    const length = Number(bytes);
    if (raw.length < end + 2 + length + 2) return { values, complete: false };
    values.set(key!, Buffer.from(raw.subarray(end + 2, end + 2 + length)));
    o = end + 2 + length + 2;
  }
}

function exchange(
  address: string,
  request: string | Buffer,
  timeoutMs: number,
  complete: (reply: Buffer) => boolean,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const separator = address.lastIndexOf(':');
    const socket = new Socket();
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`memcached ${address} did not answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (complete(all)) {
        clearTimeout(timer);
        socket.end();
        resolve(all);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.connect(Number(address.slice(separator + 1)), address.slice(0, separator), () => socket.write(request));
  });
}

const lineDone = (reply: Buffer): boolean => reply.indexOf('\r\n') >= 0;

async function command(address: string, text: string, timeoutMs: number): Promise<string> {
  return (await exchange(address, text, timeoutMs, lineDone)).toString('latin1');
}
