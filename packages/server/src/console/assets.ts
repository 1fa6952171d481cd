import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * The console's static files, built by `npm run build` (scripts/build-console.mjs) into
 * packages/server/dist/console-assets/ and read into memory once at start: a request names
 * one of them by its exact file name, so no path from a request ever reaches the file system.
 */

/** Where `npm run build` writes the console's files. */
export const ASSET_DIR = fileURLToPath(new URL('../console-assets/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * Served with every console file. No inline script or style is allowed, nothing from another
 * origin, no framing; the page talks to this origin only (docs/console.md, "Security").
 */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
});

export interface ConsoleAsset {
  readonly body: Buffer;
  readonly contentType: string;
}

export class ConsoleAssets {
  readonly #files = new Map<string, ConsoleAsset>();

  /** Reads every file of `dir`; throws when there is no index.html (the console was not built). */
  constructor(dir: string = ASSET_DIR) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      names = [];
    }
    for (const name of names) {
      const contentType = TYPES[extname(name)];
      if (contentType !== undefined) this.#files.set(name, { body: readFileSync(join(dir, name)), contentType });
    }
    if (!this.#files.has('index.html')) {
      throw new Error(`console.enabled is true but the console is not built: no index.html in ${dir} (npm run build)`);
    }
  }

  /** The file named exactly `name` ("" is index.html), or undefined. */
  get(name: string): ConsoleAsset | undefined {
    return this.#files.get(name === '' ? 'index.html' : name);
  }
}
