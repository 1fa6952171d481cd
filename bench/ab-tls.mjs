import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, startNode, stop } from './lib/processes.mjs';
import { makeTestPki } from '../scripts/testing/certs.mjs';

/*
 * Warm GET over TLS 1.3: bare node:https (bench/baseline-server.mjs) against `padlock serve` with
 * listen.tls from one or two checkouts (each built with `npm run build`), in alternating rounds of
 * a closed loop of keep-alive TLS connections (node:tls, verifying the certificate). Reports each
 * round's req/s and the server's CPU per answer (/proc/<pid>/stat: user + system), then medians
 * and ratios to bare node:https. CPU per answer moves far less with what else the machine does
 * than req/s: on a shared machine it says where a change stands when the ratio of rates swings.
 *
 *   node bench/ab-tls.mjs <checkout A> [checkout B|-] [rounds=6] [seconds=4] [connections=32] [keepalive|reconnect]
 *
 * With `reconnect`, every connection closes after one answer and a new one takes its place: a full
 * handshake (no session resumption) and one GET, so the CPU per answer is the CPU per connection.
 */

const [rootA, rootB, rounds = '6', seconds = '4', connections = '32', mode = 'keepalive'] = process.argv.slice(2);
if (rootA === undefined) {
  console.error(
    'usage: node bench/ab-tls.mjs <checkout A> [checkout B|-] [rounds] [seconds] [connections] [keepalive|reconnect]',
  );
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const pkiDir = mkdtempSync(join(tmpdir(), 'padlock-ab-tls-pki-'));
const pki = makeTestPki(pkiDir);
const ca = readFileSync(pki.ca.cert);

async function startBare() {
  const server = await startNode(
    [join(here, 'baseline-server.mjs'), '--tls-cert', pki.server.cert, '--tls-key', pki.server.key],
    { ready: (line) => /^listening (\d+)$/.exec(line)?.[1] },
  );
  const request = Buffer.from('GET /v1/keys/u1 HTTP/1.1\r\nHost: bench\r\n\r\n');
  return { name: 'node:https', port: Number(server.value), request, server };
}

async function startPadlock(name, root) {
  const cli = join(resolve(root), 'packages/cli/dist/main.js');
  const dir = mkdtempSync(join(tmpdir(), `padlock-ab-tls-${name}-`));
  writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
  const config = join(dir, 'padlock.json');
  const settings = {
    listen: { host: '127.0.0.1', port: 0, tls: { certFile: pki.server.cert, keyFile: pki.server.key } },
    keks: { active: 'k', files: [{ kid: 'k', path: 'kek.bin' }] },
    store: { kind: 'sqlite', sqlite: { path: 'padlock.db' } },
    limits: { deadlineMs: 2000, maxInFlight: 4096 },
    log: { level: 'info', requests: false },
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
  const made = await new Promise((done, fail) => {
    const socket = connect({ port, host: '127.0.0.1', ca }, () =>
      socket.write(
        `POST /v1/keychains HTTP/1.1\r\nHost: bench\r\nAuthorization: ${authorization}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{"userId":"u1"}',
      ),
    );
    let text = '';
    socket.on('data', (data) => (text += data.toString('latin1')));
    socket.on('end', () => done(text));
    socket.on('error', fail);
  });
  if (!made.startsWith('HTTP/1.1 201')) throw new Error(`${name}: creating the keychain answered ${made.slice(0, 40)}`);
  const request = Buffer.from(`GET /v1/keys/u1 HTTP/1.1\r\nHost: bench\r\nAuthorization: ${authorization}\r\n\r\n`);
  return { name, port, request, dir, server };
}

/** Answers per second and server CPU µs per answer over `durationS`, after one second of warm-up. */
function measure(target, durationS) {
  return mode === 'reconnect' ? measureReconnecting(target, durationS) : measureKeepAlive(target, durationS);
}

function measureKeepAlive({ port, request, server }, durationS) {
  return new Promise((done) => {
    let answerLength = 0;
    let counting = false;
    let answers = 0;
    const sockets = [];
    for (let i = 0; i < Number(connections); i++) {
      const socket = connect({ port, host: '127.0.0.1', ca });
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
      socket.on('secureConnect', () => socket.write(request));
      socket.on('error', () => {});
    }
    setTimeout(() => {
      counting = true;
      const started = performance.now();
      const cpu0 = cpuSeconds(server.child.pid);
      setTimeout(() => {
        const cpu = cpuSeconds(server.child.pid) - cpu0;
        const rate = answers / ((performance.now() - started) / 1000);
        const usPerAnswer = (cpu * 1e6) / answers;
        for (const socket of sockets) socket.destroy();
        setTimeout(() => done({ rate, usPerAnswer }), 200);
      }, durationS * 1000);
    }, 1000);
  });
}

/** Like measure(), each connection replaced by a new one after its first answer. */
function measureReconnecting({ port, request, server }, durationS) {
  return new Promise((done) => {
    let counting = false;
    let answers = 0;
    let stopped = false;
    const sockets = new Set();
    const open = () => {
      if (stopped) return;
      const socket = connect({ port, host: '127.0.0.1', ca });
      sockets.add(socket);
      let text = '';
      socket.on('secureConnect', () => socket.write(request));
      socket.on('data', (data) => {
        text += data.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/content-length: (\d+)/i.exec(text)?.[1]);
        if (text.length < end + 4 + length) return;
        if (counting) answers++;
        socket.destroy();
      });
      socket.on('close', () => {
        sockets.delete(socket);
        open();
      });
      socket.on('error', () => {});
    };
    for (let i = 0; i < Number(connections); i++) open();
    setTimeout(() => {
      counting = true;
      const started = performance.now();
      const cpu0 = cpuSeconds(server.child.pid);
      setTimeout(() => {
        const cpu = cpuSeconds(server.child.pid) - cpu0;
        const rate = answers / ((performance.now() - started) / 1000);
        const usPerAnswer = (cpu * 1e6) / answers;
        stopped = true;
        for (const socket of sockets) socket.destroy();
        setTimeout(() => done({ rate, usPerAnswer }), 300);
      }, durationS * 1000);
    }, 1000);
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const servers = [await startBare(), await startPadlock('A', rootA)];
if (rootB !== undefined && rootB !== '-') servers.push(await startPadlock('B', rootB));
try {
  for (const server of servers) await measure(server, 1);
  const results = new Map(servers.map((s) => [s.name, []]));
  for (let round = 0; round < Number(rounds); round++) {
    for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
      results.get(server.name).push(await measure(server, Number(seconds)));
    }
    const bare = results.get('node:https').at(-1).rate;
    const line = servers
      .map((s) => {
        const { rate, usPerAnswer } = results.get(s.name).at(-1);
        const ratio = s.name === 'node:https' ? '' : ` (${(rate / bare).toFixed(2)}x)`;
        return `${s.name} ${rate.toFixed(0)} req/s${ratio} ${usPerAnswer.toFixed(1)} us`;
      })
      .join(', ');
    console.log(`round ${round + 1}: ${line}`);
  }
  const bareRates = results.get('node:https').map((r) => r.rate);
  for (const server of servers) {
    const list = results.get(server.name);
    const ratios = list.map((r, i) => r.rate / bareRates[i]);
    console.log(
      `median ${server.name}: ${median(list.map((r) => r.rate)).toFixed(0)} req/s, ` +
        `${median(list.map((r) => r.usPerAnswer)).toFixed(1)} us CPU per answer` +
        (server.name === 'node:https' ? '' : `, ${median(ratios).toFixed(2)}x node:https (median of round ratios)`),
    );
  }
} finally {
  for (const server of servers) {
    await stop(server.server);
    if (server.dir !== undefined) rmSync(server.dir, { recursive: true, force: true });
  }
  rmSync(pkiDir, { recursive: true, force: true });
}
