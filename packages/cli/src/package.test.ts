import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/*
 * What each workspace's package.json promises exists after `npm run build`: every file its main,
 * types, exports and bin name (the CLI's once named a dist/index.js nothing built).
 */

// This file runs as packages/cli/dist/package.test.js: the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKSPACES = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] })
  .workspaces;

/** Every string leaf of a package.json field (exports and bin may be strings or nested maps). */
function files(field: unknown): string[] {
  if (typeof field === 'string') return [field];
  if (field !== null && typeof field === 'object') return Object.values(field).flatMap(files);
  return [];
}

describe('engines', () => {
  it('every package.json asks for the Node.js that has crypto.hash (20.12), as the root does', () => {
    const root = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } })
      .engines;
    const least = /^>=(\d+)\.(\d+)\.(\d+)$/.exec(root.node);
    assert.ok(least !== null, `root engines.node "${root.node}" is not of the form >=major.minor.patch`);
    const [major, minor] = [Number(least[1]), Number(least[2])];
    // crypto.hash (packages/core/src/hmac.ts) appeared in 20.12.0 and 21.7.0.
    assert.ok(
      major > 20 || (major === 20 && minor >= 12),
      `root engines.node ${root.node} admits Node without crypto.hash`,
    );
    for (const workspace of WORKSPACES) {
      const pkg = JSON.parse(readFileSync(join(ROOT, workspace, 'package.json'), 'utf8')) as { engines?: unknown };
      assert.deepEqual(pkg.engines, root, `${workspace}/package.json engines differ from the root's`);
    }
  });
});

describe('workspace package.json entry points', () => {
  it('covers the four workspaces', () => {
    assert.deepEqual(WORKSPACES, ['packages/core', 'packages/server', 'packages/client', 'packages/cli']);
  });
  for (const workspace of WORKSPACES) {
    it(`${workspace}: main, types, exports and bin name built files`, () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, workspace, 'package.json'), 'utf8')) as Record<string, unknown>;
      const named = ['main', 'types', 'exports', 'bin'].flatMap((key) => files(pkg[key]));
      assert.ok(named.length > 0, `${workspace} names no entry point`);
      const missing = named.filter((path) => !existsSync(join(ROOT, workspace, path)));
      assert.deepEqual(missing, [], `${workspace}/package.json names files the build does not make`);
    });
  }
});
