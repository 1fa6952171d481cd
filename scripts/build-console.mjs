#!/usr/bin/env node
// Builds the operator console (console/) into packages/server/dist/console-assets/, which
// `padlock serve` reads at start when console.enabled (docs/console.md). Type-checks first:
// esbuild only strips types. Everything the page runs is bundled here: nothing is fetched
// from another origin at run time.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}packages/server/dist/console-assets`;
const tsc = (project) =>
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}${project}`], {
    stdio: 'inherit',
  });
tsc('console');
// The end-to-end test (scripts/console-test.sh runs it): Node code that drives the browser.
tsc('console/e2e');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [`${root}console/src/main.ts`],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'chrome120',
  minify: true,
  legalComments: 'linked',
  outfile: `${out}/app.js`,
  logLevel: 'warning',
});
copyFileSync(`${root}console/index.html`, `${out}/index.html`);
copyFileSync(`${root}console/app.css`, `${out}/app.css`);
