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
