import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cpuSeconds, startNode, stop } from './lib/processes.mjs';

/*
 * A/B of the plaintext warm path between two builds of this repository (two checkouts, each
 * built with `npm run build`): `padlock serve` from each on its own SQLite store, then rounds of
 * warm `GET /v1/keys/{userId}` (L1 hit) at maximum throughput, alternating which build goes first,
 * so that whatever else the machine does weighs on both alike. A closed loop of raw keep-alive
 * connections counts answers of the first answer's length; it reports each round and the medians
 * of two figures: answers per second, and the server process's CPU time (user + system, from
 * /proc) per answer. The client shares the machine, so throughput moves with everything else that
 * runs; the server's CPU per answer is what a change to the server's request path changes.
 *
 *   node bench/ab-warm.mjs <checkout A> <checkout B> [rounds=6] [seconds=4] [connections=32]
 *
 * AB_TRACE_B=1 turns tracing on in B (every request sampled), exporting to an OTLP/HTTP sink in
 * this process that accepts and drops the spans: the cost of tracing on, export included.
 */

const [rootA, rootB, rounds = '6', seconds = '4', connections = '32'] = process.argv.slice(2);
if (rootA === undefined || rootB === undefined) {
  console.error('usage: node bench/ab-warm.mjs <checkout A> <checkout B> [rounds] [seconds] [connections]');
  process.exit(2);
}

/** Accepts OTLP/HTTP exports and drops them. */
async function otlpSink() {
  const sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
  return sink;
}
const sink = process.env.AB_TRACE_B === '1' ? await otlpSink() : undefined;

async function start(name, root) {
  const cli = join(resolve(root), 'packages/cli/dist/main.js');
  const dir = mkdtempSync(join(tmpdir(), `padlock-ab-${name}-`));
  writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
  const config = join(dir, 'padlock.json');
  const settings = {
    listen: { host: '127.0.0.1', port: 0 },
    keks: { active: 'k', files: [{ kid: 'k', path: 'kek.bin' }] },
    store: { kind: 'sqlite', sqlite: { path: 'padlock.db' } },
    limits: { deadlineMs: 2000, maxInFlight: 4096 },
    log: { level: 'info', requests: false },
    ...(name === 'B' && sink !== undefined
      ? { tracing: { enabled: true, endpoint: `http://127.0.0.1:${sink.address().port}/v1/traces` } }
      : {}),
  };
  writeFileSync(config, JSON.stringify(settings), { mode: 0o600 });
  const rights = ['--read', 'profile,payments,advertising', '--create'];
  const created = execFileSync(process.execPath, [cli, 'service', 'create', 'bench', ...rights, '-c', config], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const { credential } = JSON.parse(String(created));
  const server = await startNode([cli, 'serve', '-c', config], {
    ready: (line) => {
      try {
        const entry = JSON.parse(line);
        return entry.msg === 'padlock listening' ? entry.port : undefined;
      } catch {
        return undefined;
      }
    },
  });
  const port = server.value;
  const authorization = `Bearer ${credential}`;
  const made = await fetch(`http://127.0.0.1:${port}/v1/keychains`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: '{"userId":"u1"}',
  });
  if (made.status !== 201) throw new Error(`${name}: creating the keychain answered ${made.status}`);
  return { name, port, authorization, dir, server };
}

/**
 * Answers per second and the server's CPU microseconds per answer over `durationS`, after one
 * second of warm-up on the same connections.
 */
function measure({ port, authorization, server }, durationS) {
  const request = Buffer.from(`GET /v1/keys/u1 HTTP/1.1\r\nHost: bench\r\nAuthorization: ${authorization}\r\n\r\n`);
  return new Promise((done) => {
    let answerLength = 0;
    let counting = false;
    let answers = 0;
    const sockets = [];
    for (let i = 0; i < Number(connections); i++) {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      sockets.push(socket);
      let buffered = 0;
      let first = '';
      socket.on('data', (data) => {
        if (answerLength === 0) {
          first += data.toString('latin1');
          const end = first.indexOf('\r\n\r\n');
          if (end === -1) return;
          const length = Number(/content-length: (\d+)/i.exec(first)?.[1]);
          if (first.length < end + 4 + length) return;
          answerLength = end + 4 + length;
          buffered = first.length;
        } else {
          buffered += data.length;
        }
        for (; buffered >= answerLength; buffered -= answerLength) {
          if (counting) answers++;
          socket.write(request);
        }
      });
      socket.on('connect', () => socket.write(request));
      socket.on('error', () => {});
    }
    setTimeout(() => {
      counting = true;
      const started = performance.now();
      const cpuBefore = cpuSeconds(server.pid);
      setTimeout(() => {
        const rate = answers / ((performance.now() - started) / 1000);
        const cpu = cpuSeconds(server.pid);
        const cpuMicros = cpu === null || cpuBefore === null ? NaN : ((cpu - cpuBefore) * 1e6) / answers;
        for (const socket of sockets) socket.destroy();
        done({ rate, cpuMicros });
      }, durationS * 1000);
    }, 1000);
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const servers = [await start('A', rootA), await start('B', rootB)];
try {
  for (const server of servers) await measure(server, 2);
  const rates = { A: [], B: [] };
  const cpu = { A: [], B: [] };
  for (let round = 0; round < Number(rounds); round++) {
    for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
      const { rate, cpuMicros } = await measure(server, Number(seconds));
      rates[server.name].push(rate);
      cpu[server.name].push(cpuMicros);
    }
    console.log(
      `round ${round + 1}: A ${rates.A.at(-1).toFixed(0)} B ${rates.B.at(-1).toFixed(0)} req/s, ` +
        `server CPU A ${cpu.A.at(-1).toFixed(2)} B ${cpu.B.at(-1).toFixed(2)} us/answer`,
    );
  }
  const [a, b] = [median(rates.A), median(rates.B)];
  const [ca, cb] = [median(cpu.A), median(cpu.B)];
  console.log(`median A ${a.toFixed(0)} B ${b.toFixed(0)} req/s: B/A ${(b / a).toFixed(3)}`);
  console.log(`median server CPU A ${ca.toFixed(2)} B ${cb.toFixed(2)} us/answer: B/A ${(cb / ca).toFixed(3)}`);
} finally {
  for (const server of servers) {
    await stop(server.server);
    rmSync(server.dir, { recursive: true, force: true });
  }
  sink?.close();
}
