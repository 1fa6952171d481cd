#!/usr/bin/env node
// --test-force-exit: a file whose cases have all finished must not hang CI on a handle a driver
// keeps open (seen with cassandra-driver reconnecting to a restarted node).
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
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-force-exit', ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
