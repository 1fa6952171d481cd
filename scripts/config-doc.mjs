#!/usr/bin/env node
// Writes docs/config.md from the config schema (packages/server/src/config-doc.ts), after
// `npm run build`; `--check` only says whether the committed page is current (exit 1 if not).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configReference } from '../packages/server/dist/config-doc.js';

const path = fileURLToPath(new URL('../docs/config.md', import.meta.url));
const page = configReference();
if (process.argv.includes('--check')) {
  if (readFileSync(path, 'utf8') !== page) {
    console.error('docs/config.md differs from the config schema: run `npm run docs:config`');
    process.exit(1);
  }
} else {
  writeFileSync(path, page);
  console.log(`wrote ${path}`);
}
