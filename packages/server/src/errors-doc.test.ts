import { ERRORS } from '@padlock/core';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ROUTES } from './app.js';

/*
 * The docs cannot drift from the code: every code of the error registry is in
 * docs/errors.md with its status, and every route is in docs/api.md.
 */

// This file runs as packages/server/dist/errors-doc.test.js: the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function readDoc(name: string): string {
  return readFileSync(`${ROOT}docs/${name}`, 'utf8');
}

/** The rows of the errors table: code -> status, from lines like "| `CODE` | 400 | ... |". */
function documentedCodes(markdown: string): Map<string, number> {
  const rows = new Map<string, number>();
  for (const line of markdown.split('\n')) {
    const match = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*(\d{3})\s*\|\s*\S/.exec(line);
    if (match === null) continue;
    assert.ok(!rows.has(match[1]!), `docs/errors.md lists ${match[1]} twice`);
    rows.set(match[1]!, Number(match[2]));
  }
  return rows;
}

describe('docs/errors.md', () => {
  const documented = documentedCodes(readDoc('errors.md'));

  for (const [code, { status }] of Object.entries(ERRORS)) {
    it(`lists ${code} with status ${status} and a meaning`, () => {
      assert.ok(documented.has(code), `${code} is in ERRORS but missing from docs/errors.md`);
      assert.equal(documented.get(code), status, `docs/errors.md gives ${code} another status`);
    });
  }

  it('lists no code the registry does not have', () => {
    const stale = [...documented.keys()].filter((code) => !(code in ERRORS));
    assert.deepEqual(stale, [], 'docs/errors.md lists codes that ERRORS no longer has');
  });

  it('parses the table it checks (a missing code would be noticed)', () => {
    const parsed = documentedCodes('| Code | Status |\n| --- | --- |\n| `SOME_CODE` | 418 | teapot |\n');
    assert.deepEqual([...parsed], [['SOME_CODE', 418]]);
    assert.equal(documentedCodes('`INVALID_JSON` is mentioned in prose only').size, 0);
  });
});

describe('docs/api.md', () => {
  const api = readDoc('api.md');
  for (const route of ROUTES) {
    it(`documents ${route.method} ${route.path}`, () => {
      assert.ok(api.includes(`### \`${route.method} ${route.path}\``), `no section for ${route.method} ${route.path}`);
    });
  }
});
