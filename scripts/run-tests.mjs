#!/usr/bin/env node
// --test-force-exit only for the cluster files: a file whose cases have all finished must not hang
// CI on a handle a driver keeps open (seen with cassandra-driver reconnecting to a restarted node).
// Elsewhere it is off: with it, a file's last report lines were sometimes lost when its process
// exited (a CI run reported 934 tests, the same commit here 935: the last case of
// secret-bytes.test.js and its suite's end were missing, and nothing failed). Every run is bounded
// by TIMEOUT_MS instead.
// Runs every compiled test file (packages/*/dist/**/*.test.js), and bench/*.test.mjs, with
// node's test runner. Node 20's --test takes no glob, so the files are listed here.
// Arguments filter by substring: `npm test -- sqlite` runs the files whose path has "sqlite".
// Files named *.cluster.test.js need the three-node Cassandra cluster and run
// only with --cluster (scripts/test.sh runs them in a second phase).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cluster = process.argv.includes('--cluster');
const filters = process.argv.slice(2).filter((a) => a !== '--cluster');

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (name.endsWith('.test.js')) yield path;
  }
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) {
  const dist = join(root, 'packages', pkg, 'dist');
  try {
    statSync(dist);
  } catch {
    continue;
  }
  for (const file of walk(dist)) {
    const rel = relative(root, file);
    if (rel.endsWith('.cluster.test.js') !== cluster) continue;
    if (filters.length === 0 || filters.some((f) => rel.includes(f))) files.push(rel);
  }
}
// The benchmark's own unit tests (histogram, Zipf sampler): plain .mjs beside it, no build step.
if (!cluster) {
  for (const name of readdirSync(join(root, 'bench'))) {
    const rel = join('bench', name);
    if (name.endsWith('.test.mjs') && (filters.length === 0 || filters.some((f) => rel.includes(f)))) files.push(rel);
  }
}
if (files.length === 0) {
  if (cluster) process.exit(0);
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
const TIMEOUT_MS = 30 * 60 * 1000;
// The cluster files one at a time: they stop and freeze the same three nodes (a store case stops node 2
// while another file's case writes at QUORUM through it).
const flags = ['--test', `--test-concurrency=${cluster ? 1 : 2}`, ...(cluster ? ['--test-force-exit'] : [])];
const result = spawnSync(process.execPath, [...flags, ...files], {
  cwd: root,
  stdio: 'inherit',
  timeout: TIMEOUT_MS,
  killSignal: 'SIGKILL',
});
if (result.error !== undefined)
  console.error(`run-tests: ${result.error.message} (bounded at ${TIMEOUT_MS / 60000} min)`);
process.exit(result.status ?? 1);
