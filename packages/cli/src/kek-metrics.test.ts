import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { metricValue, parsePrometheusText } from '../../../scripts/testing/prometheus-text.mjs';
import { startHarness, type Harness } from '../../server/dist/testing/harness.js';
import { rewrapMetricsText } from './kek.js';

/*
 * The re-wrap's progress, scrapeable while it runs (`kek rewrap
 * --metrics-listen`, docs/metrics.md "KEK re-wrap"): the documented table
 * matches what is exported, and a scrape of a running re-wrap (a server
 * serving the same SQLite store) sees the rows go up and the phase move on,
 * and the listener is gone when the re-wrap ends.
 */

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const USERS = 300;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function padlock(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, PADLOCK_CONFIG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('kek rewrap --metrics-listen', { timeout: 300_000 }, () => {
  let h: Harness;
  let configFile: string;

  before(async () => {
    h = await startHarness({
      config: {
        store: { kind: 'sqlite', sqlite: { path: 'padlock.db', busyTimeoutMs: 5000 } },
        journal: { file: { path: 'journal/shreds.journal' } },
      },
    });
    configFile = join(h.dir, 'padlock.json');
    writeFileSync(configFile, JSON.stringify(h.config), { mode: 0o600 });
    writeFileSync(join(h.dir, 'kek-2.bin'), randomBytes(32), { mode: 0o600 });
  });
  after(() => h?.close());

  it('exports what docs/metrics.md lists for the re-wrap', () => {
    const text = rewrapMetricsText(
      {
        kid: 'k',
        phase: 'root_keys',
        step: 5,
        done: 0.5,
        counts: { rewrapped: 1, current: 2, raced: 0, failed: 0 },
        rate: 10,
        elapsedMs: 1,
      },
      Date.now(),
    );
    const { families } = parsePrometheusText(text);
    const docs = readFileSync(join(ROOT, 'docs/metrics.md'), 'utf8');
    const section = docs.slice(docs.indexOf('## KEK re-wrap'));
    const documented = [...section.matchAll(/^\| `(padlock_kek_rewrap_[a-z_]+)` +\| (\w+) /gm)].map((m) => [
      m[1],
      m[2],
    ]);
    assert.ok(documented.length >= 5);
    assert.deepEqual(documented.sort(), [...families.values()].map((f) => [f.name, f.type]).sort());
  });

  it('a scrape of a running re-wrap sees its progress; the listener closes when it ends', async () => {
    for (let i = 0; i < USERS; i++) {
      assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: `u-${i}` } })).status, 201);
    }
    assert.equal((await padlock(['kek', 'add', join(h.dir, 'kek-2.bin'), '-c', configFile])).code, 0);
    assert.equal((await padlock(['kek', 'activate', 'kek-2', '-c', configFile])).code, 0);
    const bad = await padlock(['kek', 'rewrap', '-c', configFile, '--metrics-listen', 'nohost']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--metrics-listen must be HOST:PORT/);

    // 900 root-key rows at 300 rows/s: about three seconds of re-wrap to scrape.
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'kek',
        'rewrap',
        '-c',
        configFile,
        '--rate',
        '300',
        '--page-size',
        '30',
        '--batch',
        '10',
        '--metrics-listen',
        '127.0.0.1:0',
      ],
      { env: { ...process.env, PADLOCK_CONFIG: '' } },
    );
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdout.resume();
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        const match = /"msg":"rewrap metrics listening".*"port":(\d+)/.exec(stderr);
        if (match !== null) resolve(Number(match[1]));
      });
      void exited.then(() => reject(new Error(`the re-wrap ended without listening: ${stderr}`)));
    });
    const seen: number[] = [];
    let phaseFive = false;
    for (let i = 0; i < 200 && child.exitCode === null; i++) {
      const scrape = await get(port, '/metrics').catch(() => undefined);
      if (scrape === undefined) break; // closed: the re-wrap ended
      assert.equal(scrape.status, 200);
      const parsed = parsePrometheusText(scrape.body);
      assert.ok(metricValue(parsed, 'padlock_kek_rewrap_last_progress_timestamp_seconds') > 0);
      if (parsed.families.has('padlock_kek_rewrap_rows')) {
        seen.push(metricValue(parsed, 'padlock_kek_rewrap_rows', { kid: 'kek-2', outcome: 'rewrapped' }));
        if (metricValue(parsed, 'padlock_kek_rewrap_phase', { kid: 'kek-2' }) === 5) phaseFive = true;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await exited, 0, stderr);
    assert.ok(phaseFive, 'the root_keys phase was scraped');
    const distinct = [...new Set(seen)];
    assert.ok(distinct.length >= 3, `scrapes saw the count move: ${distinct.join(',')}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, 'the count never goes down');
    assert.ok(seen.at(-1)! > 0 && seen.at(-1)! <= USERS * 3 + 10);
    const unknown = await get(port, '/other').catch(() => undefined);
    assert.equal(unknown, undefined, 'nothing listens after the re-wrap');
  });
});
