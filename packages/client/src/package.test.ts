import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFakePadlock, type FakePadlock } from './testing/fake-padlock.js';

/*
 * The SDK ships without the server: its package depends on @padlock/core
 * and jose (receipt verification; both depend on nothing), its import graph never reaches
 * @padlock/server, and the packed tarballs install and run in an empty
 * directory where better-sqlite3 and cassandra-driver cannot be found.
 */

const CLIENT_DIR = fileURLToPath(new URL('..', import.meta.url));
const CORE_DIR = resolve(CLIENT_DIR, '../core');

interface PackageJson {
  version?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const readPackage = (dir: string): PackageJson =>
  JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;

/** Every module specifier the compiled file at `path` imports, statically or dynamically. */
function specifiers(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const found = [
    ...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ];
  return found.map((m) => m[1]!);
}

/** Walks the import graph from `entry`; returns the bare (package) specifiers it reaches and the files. */
function importGraph(entry: string): { packages: Set<string>; files: Set<string> } {
  const packages = new Set<string>();
  const files = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of specifiers(file)) {
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
      else packages.add(spec);
    }
  }
  return { packages, files };
}

void describe('the client package without the server', { timeout: 120_000 }, () => {
  let fake: FakePadlock;
  let work: string;

  before(async () => {
    fake = await startFakePadlock();
    work = mkdtempSync(join(tmpdir(), 'padlock-client-pack-'));
  });

  after(async () => {
    await fake.close();
    rmSync(work, { recursive: true, force: true });
  });

  void it('depends on @padlock/core, jose and the OpenTelemetry API only, which depend on nothing', () => {
    const client = readPackage(CLIENT_DIR);
    assert.deepEqual(Object.keys(client.dependencies ?? {}), ['@opentelemetry/api', '@padlock/core', 'jose']);
    assert.equal(client.dependencies?.['@padlock/core'], '0.1.0');
    for (const name of ['jose', '@opentelemetry/api']) {
      assert.deepEqual(readPackage(resolve(CLIENT_DIR, `../../node_modules/${name}`)).dependencies ?? {}, {}, name);
    }
    assert.equal(client.peerDependencies, undefined);
    assert.equal(client.optionalDependencies, undefined);
    const core = readPackage(CORE_DIR);
    assert.deepEqual(core.dependencies ?? {}, {});
  });

  void it('has an import graph reaching only node: built-ins, @padlock/core, jose and the OpenTelemetry API', () => {
    const client = importGraph(join(CLIENT_DIR, 'dist/index.js'));
    assert.ok(client.files.size > 5);
    for (const file of client.files) assert.ok(!file.includes('/testing/'), `${file} is test-only`);
    const external = [...client.packages].filter((p) => !p.startsWith('node:'));
    assert.deepEqual(external.sort(), ['@opentelemetry/api', '@padlock/core', 'jose']);
    const core = importGraph(join(CORE_DIR, 'dist/index.js'));
    assert.deepEqual(
      [...core.packages].filter((p) => !p.startsWith('node:')),
      [],
    );
  });

  void it('packs, installs offline into an empty directory and works there', async () => {
    const npm = (args: string[], cwd: string): string =>
      execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], CLIENT_DIR)) as {
      filename: string;
      files: { path: string }[];
    }[];
    const shipped = packed[0]!.files.map((f) => f.path);
    assert.ok(shipped.includes('dist/index.js') && shipped.includes('README.md'), shipped.join(' '));
    assert.deepEqual(
      shipped.filter((p) => p.includes('test') || p.includes('vectors/') || p.endsWith('.ts.map')),
      [],
    );
    npm(['pack', '--pack-destination', work], CORE_DIR);
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'probe', private: true, type: 'module' }));
    // The dependencies as this checkout installed them, packed from node_modules: a name@version would need
    // npm's cached registry metadata, which `npm ci` does not fetch (a fresh machine's clean-clone run failed
    // on ENOTCACHED for @opentelemetry/api), and a range would pick the newest version in that metadata.
    const installed = ['jose', '@opentelemetry/api'].map((name) => {
      const [tarball] = JSON.parse(
        npm(
          ['pack', '--json', '--ignore-scripts', '--pack-destination', work],
          resolve(CLIENT_DIR, `../../node_modules/${name}`),
        ),
      ) as { filename: string }[];
      return `./${tarball!.filename}`;
    });
    npm(
      [
        'install',
        '--offline',
        '--no-audit',
        '--no-fund',
        './padlock-core-0.1.0.tgz',
        `./${packed[0]!.filename}`,
        ...installed,
      ],
      work,
    );
    const probe = `
      import { PadlockClient, KeychainShredded } from '@padlock/client';
      const results = {};
      for (const name of ['@padlock/server', 'better-sqlite3', 'cassandra-driver', 'ajv']) {
        try { await import(name); results[name] = 'loaded'; } catch (e) { results[name] = e.code; }
      }
      const padlock = new PadlockClient({ groups: [{ name: 'padlock', urls: [process.argv[2]] }], credential: 'probe.credential' });
      const sealed = await padlock.encrypt('alice', 'profile', 'packed and working');
      results.roundTrip = await padlock.decryptText('alice', sealed);
      results.errorClass = typeof KeychainShredded;
      await padlock.close();
      console.log(JSON.stringify(results));
    `;
    writeFileSync(join(work, 'probe.mjs'), probe);
    // Asynchronously: the fake server answering the probe runs in this process.
    const child = await new Promise<{ status: number | null; stdout: string; stderr: string }>((done, fail) => {
      const probeProcess = spawn(process.execPath, ['probe.mjs', fake.url], { cwd: work });
      let stdout = '';
      let stderr = '';
      probeProcess.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      probeProcess.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      probeProcess.on('error', fail);
      probeProcess.on('close', (status) => done({ status, stdout, stderr }));
    });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), {
      '@padlock/server': 'ERR_MODULE_NOT_FOUND',
      'better-sqlite3': 'ERR_MODULE_NOT_FOUND',
      'cassandra-driver': 'ERR_MODULE_NOT_FOUND',
      ajv: 'ERR_MODULE_NOT_FOUND',
      roundTrip: 'packed and working',
      errorClass: 'function',
    });
  });
});
