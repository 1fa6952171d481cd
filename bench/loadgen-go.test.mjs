import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bucketOf, Histogram } from './lib/histogram.mjs';
import { runLoadGo } from './lib/processes.mjs';

/*
 * bench/loadgen-go, the open-loop generator, against a node:http server on
 * loopback: its histograms use the buckets of histogram.mjs, every scheduled
 * request is answered and counted once, latencies include what the server
 * takes, and writes are never sent twice.
 */

const dir = mkdtempSync(join(tmpdir(), 'loadgen-go-'));
const binary = join(dir, 'loadgen-go');
// Far above what a loaded machine adds: with two busy loops on both cores, this server's median answer
// at 400/s took up to 19 ms; at 2,000/s (and a 30 ms delay) it fell behind, medians reached 700 ms and
// the test failed 3 runs in 4 (now 0 in 6). u0's ~22 % of 400/s hold ~9 connections on average, of 64.
const DELAY_MS = 100;
let server;
let port;
const createdIds = [];

before(async () => {
  const built = spawnSync('go', ['build', '-o', binary, '.'], {
    cwd: fileURLToPath(new URL('./loadgen-go', import.meta.url)),
    encoding: 'utf8',
  });
  assert.equal(built.status, 0, `go build failed: ${built.error?.message ?? built.stderr}`);
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST') createdIds.push(JSON.parse(body).userId);
    });
    const answer = () => {
      res.writeHead(req.url.startsWith('/v1/keys/') ? 200 : 201, { 'content-type': 'application/json' });
      res.end('{}');
    };
    // Reads of user u0 (the most frequent under Zipf) are slow: their latency has a known lower bound.
    if (req.url === '/v1/keys/u0') setTimeout(answer, DELAY_MS);
    else answer();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = server.address().port;
});

after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An open-loop job against the test server. */
function openJob(settings) {
  return { mode: 'open', host: '127.0.0.1', port, graceMs: 2000, timeoutMs: 5000, ...settings };
}

test('its histogram buckets are those of histogram.mjs', () => {
  const values = [0, 1, 255, 256, 257, 300, 511, 512, 1000, 4095, 4096, 65535, 65536, 1e6, 123456789, 2 ** 32 - 1];
  for (let v = 0; v < 5000; v += 7) values.push(v);
  const out = spawnSync(binary, ['buckets', ...values.map(String)], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  assert.deepEqual(out.stdout.trim().split('\n').map(Number), values.map(bucketOf));
});

test('open loop: every request in the window answered once, latency from the intended send time', async () => {
  const job = openJob({ rate: 400, warmupS: 0.3, durationS: 1, connections: 16, maxConnections: 64 });
  job.workload = { kind: 'get', users: 50, credential: 'x' };
  const r = await runLoadGo(binary, job, join(dir, 'get.bin'));
  assert.equal(r.generator, 'go');
  assert.ok(r.scheduled > 300 && r.scheduled < 500, `scheduled ${r.scheduled} at 400/s for 1 s`);
  assert.equal(r.completed, r.scheduled, JSON.stringify(r.errors));
  assert.equal(r.ok, r.completed);
  assert.deepEqual(r.errors, {});
  assert.ok(r.latency instanceof Histogram);
  assert.equal(r.latency.count, r.completed);
  assert.equal(r.byKind.get.count, r.completed);
  // The slow user's answers take at least DELAY_MS, and are among the latencies recorded.
  assert.ok(r.latency.maxUs >= DELAY_MS * 1000, `max ${r.latency.maxUs} us`);
  assert.ok(
    r.latency.quantileUs(0.5) < DELAY_MS * 1000,
    `most answers are not slow: p50 ${r.latency.quantileUs(0.5)} us, service p50 ${r.service.quantileUs(0.5)} us, ` +
      `${r.connectionsOpened} connections`,
  );
});

test('writes are sent once each: the mix is not cycled', async () => {
  const job = openJob({ rate: 1000, warmupS: 0.2, durationS: 0.5, connections: 4, maxConnections: 16 });
  job.workload = {
    kind: 'mix',
    users: 50,
    credential: 'x',
    createShare: 0.2,
    shredShare: 0.2,
    doomed: 10000,
    tag: 't',
  };
  createdIds.length = 0;
  const r = await runLoadGo(binary, job, join(dir, 'mix.bin'));
  assert.deepEqual(r.errors, {});
  assert.ok(r.byKind.create.count > 0 && r.byKind.shred.count > 0 && r.byKind.get.count > 0);
  assert.ok(createdIds.length > 50, `${createdIds.length} creates`);
  assert.equal(new Set(createdIds).size, createdIds.length, 'a create was sent twice');
});
