// The three SDKs' interop programs (clients/interop/README.md), each a long-lived child
// process spoken to in JSON lines: one request written, one reply read, in order.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const javaDir = process.env.PADLOCK_INTEROP_JAVA_DIR ?? `${root}clients/java`;
const pythonDir = process.env.PADLOCK_INTEROP_PYTHON_DIR ?? `${root}clients/python`;

/**
 * The command of each SDK's program; java and python need their build step first (their README).
 * PADLOCK_INTEROP_JAVA_DIR and PADLOCK_INTEROP_PYTHON_DIR point at another checkout's client.
 */
export const PROGRAMS = {
  typescript: [process.execPath, fileURLToPath(new URL('./ts-client.mjs', import.meta.url))],
  java: [`${javaDir}/interop`],
  python: [`${pythonDir}/interop`],
};

/** The command of each SDK's bench program (its arguments follow). */
export const BENCH_PROGRAMS = {
  typescript: [...PROGRAMS.typescript, 'bench'],
  java: [`${javaDir}/bench`],
  python: [`${pythonDir}/bench`],
};

/** The SDKs to drive: PADLOCK_INTEROP_CLIENTS (comma-separated) or all three. */
export function selectedClients() {
  const names = (process.env.PADLOCK_INTEROP_CLIENTS ?? Object.keys(PROGRAMS).join(','))
    .split(',')
    .filter((n) => n !== '');
  for (const name of names) {
    if (!(name in PROGRAMS)) throw new Error(`PADLOCK_INTEROP_CLIENTS: unknown client ${name}`);
    const [command] = PROGRAMS[name];
    if (!existsSync(command)) throw new Error(`${name}: ${command} is missing (build the client first)`);
  }
  return names;
}

/** Environment of the contract for a deployment's groups and a credential. */
export function interopEnv(urls, mirrorUrls, credential) {
  return {
    ...process.env,
    PADLOCK_INTEROP_URLS: urls.join(','),
    PADLOCK_INTEROP_MIRROR_URLS: mirrorUrls.join(','),
    PADLOCK_INTEROP_CREDENTIAL: credential,
  };
}

export class ClientProgram {
  #child;
  #waiting = [];
  #stderr = '';
  #exited;
  #exitCode = undefined;

  constructor(name, env) {
    this.name = name;
    const [command, ...args] = PROGRAMS[name];
    this.#child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.on('data', (chunk) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', resolve));
    void this.#exited.then((code) => {
      this.#exitCode = code;
      for (const waiter of this.#waiting.splice(0)) {
        waiter.reject(new Error(`${name} exited (${code}) with a request unanswered: ${this.#stderr}`));
      }
    });
    createInterface({ input: this.#child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      const waiter = this.#waiting.shift();
      if (waiter === undefined) return;
      try {
        waiter.resolve(JSON.parse(line));
      } catch {
        waiter.reject(new Error(`${name} answered a line that is not JSON: ${line.slice(0, 200)}`));
      }
    });
  }

  /** Sends one request (an object, or a raw line when a string) and resolves with its reply. */
  request(request, timeoutMs = 60_000) {
    return new Promise((resolve, reject) => {
      if (this.#exitCode !== undefined) {
        reject(new Error(`${this.name} has exited (${this.#exitCode}): ${this.#stderr}`));
        return;
      }
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no answer in ${timeoutMs} ms: ${this.#stderr}`)),
        timeoutMs,
      );
      this.#waiting.push({
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.#child.stdin.write(`${typeof request === 'string' ? request : JSON.stringify(request)}\n`);
    });
  }

  /** Like request, but throws unless the reply is ok. */
  async ok(request) {
    const reply = await this.request(request);
    if (reply.ok !== true) throw new Error(`${this.name} ${request.op}: ${reply.code} ${reply.message ?? ''}`);
    return reply;
  }

  /** Closes stdin and waits for the program to exit by itself; returns its exit code. */
  async close() {
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 20_000);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}
