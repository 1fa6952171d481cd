import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configReference } from './config-doc.js';
import { CONFIG_SCHEMA, parseConfig } from './config.js';

// This file runs as packages/server/dist/config-doc.test.js: the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Every key path of a schema, as docs/config.md names them (arrays of objects as `name[].key`). */
function keyPaths(node: Record<string, unknown>, path = ''): string[] {
  const items = node['items'] as Record<string, unknown> | undefined;
  const holder = items?.['type'] === 'object' ? items : node;
  const prefix = holder === node ? path : `${path}[]`;
  const properties = (holder['properties'] ?? {}) as Record<string, Record<string, unknown>>;
  return Object.entries(properties).flatMap(([name, child]) => {
    const at = prefix === '' ? name : `${prefix}.${name}`;
    return [at, ...keyPaths(child, at)];
  });
}

describe('docs/config.md', () => {
  it('is what `npm run docs:config` generates from CONFIG_SCHEMA today', () => {
    const committed = readFileSync(`${ROOT}docs/config.md`, 'utf8');
    assert.ok(committed === configReference(), 'docs/config.md differs from the schema: run `npm run docs:config`');
  });

  it('has a row for every key of the schema, with the default the parser fills in', () => {
    const page = configReference();
    const paths = keyPaths(CONFIG_SCHEMA);
    assert.ok(paths.length > 60, `only ${paths.length} keys found: the walk above is broken`);
    const defaults = parseConfig({ keks: { active: 'k', files: [{ kid: 'k', path: 'k.bin' }] } }, '/');
    for (const path of paths) {
      const row = page.split('\n').find((line) => line.startsWith(`| \`${path}\` |`));
      assert.ok(row !== undefined, `no row for ${path}`);
      // The parser's own default, where it has one, is the one the row shows.
      let value: unknown = defaults;
      for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
      const isLeaf = value === null || typeof value !== 'object' || Array.isArray(value);
      if (value !== undefined && isLeaf && !path.startsWith('keks') && !/Path|path$|File$/.test(path)) {
        assert.ok(
          row.includes(`\`${JSON.stringify(value)}\``),
          `${path}: row does not show the default ${JSON.stringify(value)}`,
        );
      }
    }
  });

  it('fails on a key without a description, naming it', () => {
    const schema = {
      type: 'object',
      properties: {
        limits: {
          type: 'object',
          description: 'limits',
          properties: { maxBatch: { type: 'integer', default: 5 } },
        },
      },
    };
    assert.throws(() => configReference(schema), /limits\.maxBatch: no description/);
  });

  it('changes when a default, a range or a meaning changes', () => {
    const base = {
      type: 'object',
      properties: { a: { type: 'integer', minimum: 1, maximum: 9, default: 5, description: 'the a' } },
    };
    const page = configReference(base);
    assert.match(page, /\| `a` \| integer 1-9 \| `5` \| the a \|/);
    for (const change of [{ default: 6 }, { maximum: 10 }, { description: 'the b' }]) {
      const changed = { ...base, properties: { a: { ...base.properties.a, ...change } } };
      assert.notEqual(configReference(changed), page, JSON.stringify(change));
    }
  });

  it('escapes pipes so a pattern cannot break the table', () => {
    const page = configReference({
      type: 'object',
      properties: { p: { type: 'string', pattern: '^(a|b)$', description: 'x | y' } },
    });
    const row = page.split('\n').find((line) => line.startsWith('| `p` |'));
    assert.equal(row, '| `p` | string matching `^(a\\|b)$` | absent | x \\| y |');
  });
});
