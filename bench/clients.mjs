import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { createDeployment } from '../packages/client/dist/testing/padlock-processes.js';
import { BENCH_PROGRAMS, ClientProgram, interopEnv, selectedClients } from '../clients/interop/programs.mjs';

/*
 * The three SDKs side by side against one real `padlock serve` (SQLite store), in one run:
 * encrypt and decrypt of 1 KiB per second on one thread with keys cached, and users per
 * second of the bulk call (one record per user, cold cache, one batch-get per chunk of
 * users). Each SDK runs its own `bench` program (clients/interop/README.md) one after
 * another, so they do not share the machine's two cores. Writes
 * bench/results/<stamp>-clients.{json,md}.
 * Usage: npm run build && node bench/clients.mjs [--seconds S] [--users N]
 * (java and python need their build step first; PADLOCK_INTEROP_CLIENTS narrows the set).
 */

const arg = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
};
const seconds = arg('--seconds', 3);
const users = arg('--users', 500);
const names = selectedClients();
const prefix = 'bench-user-';

function runBench(name, env) {
  const [command, ...args] = BENCH_PROGRAMS[name];
  const argv = [...args, '--users', String(users), '--user-prefix', prefix, '--category', 'profile'];
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...argv, '--seconds', String(seconds)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c.toString()));
    child.stderr.on('data', (c) => (err = (err + c.toString()).slice(-4000)));
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`${name} bench exited ${code}: ${err}`));
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`${name} bench printed no JSON line: ${out.slice(-500)} ${err}`));
      }
    });
  });
}

const deployment = await createDeployment({ maxStalenessSeconds: 30 });
const rows = [];
try {
  const padlock = await deployment.start('padlock');
  const env = interopEnv([padlock.url], [], deployment.credentials['app']);
  const setup = new ClientProgram('typescript', env);
  for (let i = 0; i < users; i++) await setup.ok({ op: 'create', user: `${prefix}${i}` });
  await setup.close();
  for (const name of names) {
    const row = await runBench(name, env);
    rows.push({ sdk: name, ...row });
    process.stderr.write(`${JSON.stringify(rows.at(-1))}\n`);
  }
} finally {
  await deployment.close();
}

const stamp = new Date().toISOString().replace(/\..*/, '').replaceAll(':', '-');
const dir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(dir, { recursive: true });
const meta = { node: process.version, cpu: cpus()[0]?.model, seconds, users };
writeFileSync(`${dir}${stamp}-clients.json`, `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const md = [
  `# SDK benchmark ${stamp}`,
  '',
  `${meta.cpu}, node ${meta.node}; ${seconds} s per figure; bulk over ${users} users, 1 KiB records.`,
  '',
  '| SDK | encrypt 1 KiB/s | decrypt 1 KiB/s | bulk users/s |',
  '| --- | ---: | ---: | ---: |',
  ...rows.map(
    (r) => `| ${r.sdk} | ${fmt(r.encrypt_1k_per_s)} | ${fmt(r.decrypt_1k_per_s)} | ${fmt(r.bulk_users_per_s)} |`,
  ),
  '',
].join('\n');
writeFileSync(`${dir}${stamp}-clients.md`, md);
process.stdout.write(md);
