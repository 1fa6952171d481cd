import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { metricValue } from '../testing/harness.js';

/*
 * Memory per unfinished request, with bounds (not a benchmark): 100 connections without a
 * credential each hold a 390 kB body sent as one-byte chunks (`1\r\na\r\n`, 2.3 MB on the wire,
 * the last chunk withheld) against a real `padlock serve` process, so that its RSS is its own.
 * Its RSS must grow by at most twice the body bytes held, and it must answer other clients
 * throughout. Before the body was held in one buffer per request, each chunk was its own Buffer
 * and 50 such connections grew the heap by about 21x what they sent.
 */

const CLI = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));
// 100, not 50: RSS growth is about the bytes held plus 14-18 MB of V8 heap headroom that does not grow with
// them (measured 2026-12-04: 50 connections +36-40 MB for 19.5 MB held, 100 connections +52-55 MB for 39 MB, so
// +16 MB for the second 19.5 MB). Since @opentelemetry/api joined the server's module graph that fixed part
// put 50 connections at 1.9-2.1x; the bound is about bytes per byte, so the test holds enough for it to show.
const CONNECTIONS = 100;
const BODY_BYTES = 390_000;
const HELD = CONNECTIONS * BODY_BYTES;
const CHUNKS_PER_WRITE = 39_000;

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  assert.ok(kib !== undefined, 'no VmRSS in /proc/<pid>/status');
  return Number(kib) * 1024;
}

function write(socket: Socket, data: string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
}

/** One GET on a new connection; its status and how long it took. */
async function probe(port: number, path: string): Promise<{ status: number; ms: number; text: string }> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  return { status: response.status, ms: performance.now() - started, text };
}

describe('memory per unfinished request (padlock serve as a child process)', () => {
  let dir: string;
  let child: ChildProcess;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'padlock-memory-test-'));
    writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      keks: { active: 'k', files: [{ kid: 'k', path: 'kek.bin' }] },
      store: { kind: 'sqlite', sqlite: { path: 'padlock.db' } },
      // Room for the test's bodies: each may hold 512 KiB, all together 64 MiB.
      limits: { maxBodyBytes: 524288, maxUnfinishedRequestBytes: 67108864, deadlineMs: 5000 },
      log: { level: 'info', requests: false },
    };
    writeFileSync(join(dir, 'padlock.json'), JSON.stringify(config), { mode: 0o600 });
    child = spawn(process.execPath, [CLI, 'serve', '-c', join(dir, 'padlock.json')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`padlock serve exited with ${code}: ${stderr}`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'padlock listening' && entry.port !== undefined) resolve(entry.port);
      });
    });
  });

  after(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it(`grows RSS by at most 2x the body bytes ${CONNECTIONS} unauthenticated one-byte-chunk requests hold, and answers others throughout`, async (t) => {
    // Warm up: the code paths the test uses run before the baseline is taken.
    for (let i = 0; i < 200; i++) assert.equal((await probe(port, '/healthz')).status, 200);
    // The test scrapes /metrics below: its first scrapes read /proc and grow the heap to what a scrape needs.
    for (let i = 0; i < 50; i++) assert.equal((await probe(port, '/metrics')).status, 200);
    await sleep(500);
    const pid = child.pid!;
    const baseline = Math.max(rssBytes(pid), rssBytes(pid));

    const probes: { status: number; ms: number }[] = [];
    let attacking = true;
    const prober = (async () => {
      while (attacking) {
        probes.push(await probe(port, '/healthz'));
        await sleep(50);
      }
    })();

    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 20);
    const sockets: Socket[] = [];
    const piece = '1\r\na\r\n'.repeat(CHUNKS_PER_WRITE);
    try {
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          const socket = connect(port, '127.0.0.1');
          sockets.push(socket);
          socket.on('error', () => {});
          await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
          await write(socket, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
          for (let sent = 0; sent < BODY_BYTES; sent += CHUNKS_PER_WRITE) await write(socket, piece);
        }),
      );
      // Every body byte is read once the server says it holds them all (in buffers of 512 KiB,
      // of which only the pages written are resident).
      let held = 0;
      for (let i = 0; i < 300 && held < HELD; i++) {
        await sleep(50);
        // A scrape may be shed (503, a JSON error) while the server is at its byte bound.
        const metrics = await probe(port, '/metrics');
        if (metrics.status === 200) held = metricValue(metrics.text, 'padlock_http_unfinished_request_bytes');
      }
      assert.ok(held >= HELD, `the server holds ${held} bytes, expected at least ${HELD}`);
      await sleep(300);
      peak = Math.max(peak, rssBytes(pid));
    } finally {
      clearInterval(sampler);
      attacking = false;
      await prober;
    }
    const growth = peak - baseline;
    const slowest = Math.max(...probes.map((p) => p.ms));
    t.diagnostic(
      `RSS ${(baseline / 2 ** 20).toFixed(1)} MiB -> peak ${(peak / 2 ** 20).toFixed(1)} MiB: +${(growth / 1e6).toFixed(1)} MB ` +
        `for ${(HELD / 1e6).toFixed(1)} MB of bodies held (${(growth / HELD).toFixed(2)}x); ` +
        `${probes.length} probes during the attack, slowest ${slowest.toFixed(0)} ms`,
    );
    assert.ok(growth <= 2 * HELD, `RSS grew by ${growth} bytes holding ${HELD} body bytes`);
    assert.ok(probes.length >= 3, `only ${probes.length} probes were answered during the attack`);
    assert.ok(
      probes.every((p) => p.status === 200),
      `a probe failed: ${JSON.stringify(probes.filter((p) => p.status !== 200))}`,
    );
    assert.ok(slowest < 2000, `a probe took ${slowest} ms`);
    for (const socket of sockets) socket.destroy();
  });
});
