// Crypto-shredding end to end, in one command (after `npm run build`, from the repo root):
//
//   node examples/shred-demo/demo.mjs [--keep]
//
// Starts a real Padlock (`padlock serve`, SQLite store) in a temp directory,
// registers this demo as a service, stores encrypted records of alice and bob
// in the demo's own JSON database, shreds alice's keychain with
// `padlock keychain shred alice -c <config>`, and shows that alice's records
// can no longer be read while bob's still can. Exits 0 when that is so.
import { PadlockClient } from '@padlock/client';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, URL } from 'node:url';
import { UserRecords } from './records.mjs';

const CLI = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));
// Short for the demo; production deployments use tens of seconds (the default is 30).
const MAX_STALENESS_SECONDS = 2;
const keep = process.argv.includes('--keep');
const say = (line = '') => process.stdout.write(`${line}\n`);

const dir = mkdtempSync(join(tmpdir(), 'padlock-shred-demo-'));
const configFile = join(dir, 'padlock.json');
const padlockCli = (...args) =>
  execFileSync(process.execPath, [CLI, ...args, '-c', configFile], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
let server;

try {
  // 1. A Padlock deployment: config, KEK file (32 random bytes, mode 0600), SQLite store.
  writeFileSync(join(dir, 'kek.bin'), randomBytes(32), { mode: 0o600 });
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    categories: ['profile', 'payments', 'advertising'],
    keks: { active: 'kek-1', files: [{ kid: 'kek-1', path: 'kek.bin' }] },
    store: { kind: 'sqlite', sqlite: { path: 'padlock.db' } },
    maxStalenessSeconds: MAX_STALENESS_SECONDS,
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  const { credential } = JSON.parse(padlockCli('service', 'create', 'records-demo', '--read', 'profile', '--create'));
  server = spawn(process.execPath, [CLI, 'serve', '-c', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`padlock serve exited with ${code}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      const entry = JSON.parse(line);
      if (entry.msg === 'padlock listening') resolve(`http://127.0.0.1:${entry.port}`);
    });
  });
  say(`Padlock is serving at ${url} (store and config in ${dir})`);

  // 2. The service: its own database, encrypted with keys it never sees.
  const padlock = new PadlockClient({ groups: [{ name: 'padlock', urls: [url] }], credential });
  const records = new UserRecords(padlock, join(dir, 'records.json'));
  for (const [userId, record] of [
    ['alice', { name: 'Alice Liddell', email: 'alice@example.com', city: 'Oxford' }],
    ['bob', { name: 'Bob Builder', email: 'bob@example.com', city: 'Bristol' }],
  ]) {
    await records.signup(userId);
    await records.save(userId, record);
  }
  say('\nThe database file holds only envelopes:');
  for (const [userId, row] of Object.entries(records.rawRows())) say(`  ${userId}: ${row.profile.slice(0, 60)}...`);
  say('\nRead back:');
  for (const userId of ['alice', 'bob']) say(`  ${userId}: ${JSON.stringify(await records.load(userId))}`);

  // 3. Account deletion: alice's keychain is shredded. Nothing touches the database file.
  say('\n$ padlock keychain shred alice -c padlock.json');
  say(padlockCli('keychain', 'shred', 'alice').trim().replace(/^/gm, '  '));
  say(`Caches (the server's and this client's) may serve alice's keys for at most ${MAX_STALENESS_SECONDS} s more.`);
  await sleep(MAX_STALENESS_SECONDS * 1000 + 100);

  // 4. The same database, after the shred.
  say('\nRead back after the shred:');
  const alice = await records.load('alice');
  const bob = await records.load('bob');
  say(`  alice: ${JSON.stringify(alice)}`);
  say(`  bob:   ${JSON.stringify(bob)}`);
  say(`  (alice's envelope is still in the file: ${records.rawRows().alice.profile.slice(0, 40)}...)`);
  await padlock.close();
  const ok = alice.status === 'deleted' && bob.status === 'ok' && bob.record.name === 'Bob Builder';
  say(ok ? "\nOK: alice's records are unreadable, bob's are intact." : '\nUNEXPECTED: see above.');
  process.exitCode = ok ? 0 : 1;
} finally {
  server?.kill('SIGTERM');
  if (keep) say(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
