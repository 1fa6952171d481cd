// Microbenchmarks of the client SDK, after `npm run build`:
//
//   node packages/client/bench/client.mjs
//
// 1. envelope seal and open throughput by plaintext size (no I/O);
// 2. encrypt + decrypt through PadlockClient with warm keys (cache hits);
// 3. cold lookups: many users at once against a stand-in server (batching);
// 4. the transport: node:http with a keep-alive Agent versus the global fetch.
// Everything runs in one process on loopback; compare numbers from one machine only.
import { SecretBytes } from '@padlock/core';
import { Buffer } from 'node:buffer';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { PadlockClient } from '../dist/index.js';
import { openEnvelope, sealEnvelope } from '../dist/envelope.js';
import { startFakePadlock } from '../dist/testing/fake-padlock.js';

const results = {};

function timed(iterations, run) {
  for (let i = 0; i < Math.max(1, iterations / 10); i++) run();
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

// 1. Envelope.
const key = SecretBytes.random(32);
const header = { category: 'profile', version: 1 };
results.envelope = {};
for (const size of [100, 1024, 64 * 1024, 1024 * 1024]) {
  const plaintext = Buffer.alloc(size, 7);
  const iterations = size >= 1024 * 1024 ? 200 : size >= 65536 ? 2000 : 50000;
  const sealMs = timed(iterations, () => sealEnvelope(key, 'user-1', header, plaintext));
  const sealed = sealEnvelope(key, 'user-1', header, plaintext);
  const openMs = timed(iterations, () => openEnvelope('user-1', sealed, () => key));
  results.envelope[`${size} B`] = {
    sealUs: +((sealMs * 1000) / iterations).toFixed(2),
    openUs: +((openMs * 1000) / iterations).toFixed(2),
    sealMBps: +((size * iterations) / sealMs / 1000).toFixed(0),
    openMBps: +((size * iterations) / openMs / 1000).toFixed(0),
  };
}

// 2 and 3. The client against a stand-in server.
const fake = await startFakePadlock();
const padlock = new PadlockClient({ groups: [{ name: 'padlock', urls: [fake.url] }], credential: 'bench.credential' });
await padlock.encrypt('warm-user', 'profile', 'x');
{
  const n = 50000;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const sealed = await padlock.encrypt('warm-user', 'profile', 'a 100-byte record'.padEnd(100, '.'));
    await padlock.decrypt('warm-user', sealed);
  }
  const ms = performance.now() - started;
  results.warm = { pairsPerSecond: Math.round((n / ms) * 1000), usPerPair: +((ms * 1000) / n).toFixed(2) };
}
{
  const users = Array.from({ length: 10000 }, (_, i) => `cold-${i}`);
  const before = fake.batchGets().length;
  const started = performance.now();
  await Promise.all(users.map((u) => padlock.encrypt(u, 'profile', 'x')));
  results.cold = {
    users: users.length,
    batchGets: fake.batchGets().length - before,
    ms: Math.round(performance.now() - started),
  };
}
await padlock.close();
await fake.close();

// 4. Transport.
const body = JSON.stringify({ results: [{ userId: 'u', status: 'ok', maxAgeSeconds: 30, categories: [] }] });
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/v1/keys/batch-get`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const payload = JSON.stringify({ userIds: ['alice'] });
const viaHttp = () =>
  new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': payload.length } },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
const viaFetch = async () => {
  const response = await globalThis.fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: payload,
  });
  return Buffer.from(await response.arrayBuffer());
};
results.transport = {};
for (const [name, send] of [
  ['node:http keep-alive', viaHttp],
  ['fetch', viaFetch],
]) {
  for (let i = 0; i < 500; i++) await send();
  const n = 10000;
  let sent = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (sent < n) {
        sent++;
        await send();
      }
    }),
  );
  results.transport[name] = { requestsPerSecond: Math.round((n / (performance.now() - started)) * 1000) };
}
agent.destroy();
server.close();

process.stdout.write(`${JSON.stringify({ node: process.version, ...results }, null, 2)}\n`);
