import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { metricValue, parsePrometheusText } from '../../../scripts/testing/prometheus-text.mjs';
import { ALL_RIGHTS, startHarness, type Harness } from '../../server/dist/testing/harness.js';
import { DeletionCanary } from './canary.js';

const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

describe('padlock canary: the deletion bound watched on real servers', () => {
  let a: Harness;
  let fast: Harness;
  let slow: Harness;
  let credential: string;
  before(async () => {
    a = await startHarness({ services: [{ serviceId: 'canary', permissions: ALL_RIGHTS }] });
    credential = a.credentials['canary']!;
    // Two more groups on the same store: one whose caches keep a keychain 1 s, one 60 s.
    fast = await a.peer({ config: { maxStalenessSeconds: 1 } });
    slow = await a.peer({ config: { maxStalenessSeconds: 60 } });
  });
  after(() => a.close());

  const url = (h: Harness): string => `http://127.0.0.1:${h.port}`;

  it('measures every group stopping in time, and exports it', async () => {
    const canary = new DeletionCanary({
      groups: [
        { name: 'primary', url: url(a) },
        { name: 'fast', url: url(fast) },
      ],
      credential,
      maxStalenessMs: 4000,
      pollMs: 50,
    });
    const outcomes = await canary.round();
    assert.deepEqual(
      outcomes.map((o) => [o.group, o.failure]),
      [
        ['primary', undefined],
        ['fast', undefined],
      ],
    );
    const [primary, fastGroup] = outcomes;
    assert.ok(primary!.deletionSeconds! < 1, `primary took ${primary!.deletionSeconds} s`);
    // The fast group's cache held the keys: it stops serving them within its own 1 s bound.
    assert.ok(fastGroup!.deletionSeconds! < 2.5, `fast took ${fastGroup!.deletionSeconds} s`);
    const server = await canary.listen(0, '127.0.0.1');
    try {
      const address = server.address();
      assert.ok(address !== null && typeof address === 'object');
      const text = await (await fetch(`http://127.0.0.1:${address.port}/metrics`)).text();
      const { families } = parsePrometheusText(text);
      assert.equal(families.get('padlock_canary_deletion_seconds')?.type, 'histogram');
      assert.equal(metricValue(text, 'padlock_canary_runs_total', { result: 'ok' }), 1);
      assert.equal(metricValue(text, 'padlock_canary_deletion_seconds_count', { group: 'fast' }), 1);
      assert.equal(metricValue(text, 'padlock_canary_failures_total'), 0);
      assert.equal(metricValue(text, 'padlock_canary_max_staleness_seconds'), 4);
      assert.ok(Math.abs(metricValue(text, 'padlock_canary_last_success_timestamp_seconds') - Date.now() / 1000) < 10);
    } finally {
      server.close();
    }
  });

  it('catches a group that keeps serving a shredded key past maxStaleness', async () => {
    const canary = new DeletionCanary({
      groups: [
        { name: 'primary', url: url(a) },
        { name: 'slow', url: url(slow) },
      ],
      credential,
      maxStalenessMs: 1500,
      pollMs: 50,
    });
    const outcomes = await canary.round();
    assert.equal(outcomes[0]!.failure, undefined);
    assert.equal(outcomes[1]!.failure, 'served_after_max_staleness');
    assert.equal(outcomes[1]!.deletionSeconds, undefined);
    const text = canary.metrics.render();
    assert.equal(
      metricValue(text, 'padlock_canary_failures_total', { group: 'slow', reason: 'served_after_max_staleness' }),
      1,
    );
    assert.equal(metricValue(text, 'padlock_canary_runs_total', { result: 'failed' }), 1);
    assert.equal(metricValue(text, 'padlock_canary_last_success_timestamp_seconds'), 0);
  });

  it('reports a group it cannot reach as an error, not as deleted', async () => {
    const canary = new DeletionCanary({
      groups: [
        { name: 'primary', url: url(a) },
        { name: 'gone', url: 'http://127.0.0.1:1' },
      ],
      credential,
      maxStalenessMs: 500,
      pollMs: 50,
    });
    const outcomes = await canary.round();
    assert.deepEqual(
      outcomes.map((o) => o.failure),
      ['error', 'error'],
    );
  });

  it('exports what docs/metrics.md lists for it, and every canary metric the alert rules use', () => {
    const { families } = parsePrometheusText(
      new DeletionCanary({ groups: [{ name: 'g', url: url(a) }], credential, maxStalenessMs: 1000 }).metrics.render(),
    );
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const docs = readFileSync(join(root, 'docs/metrics.md'), 'utf8');
    const section = docs.slice(docs.indexOf('## Deletion canary'));
    const documented = [...section.matchAll(/^\| `(padlock_canary_[a-z_]+)` +\| (\w+) /gm)].map((m) => [m[1], m[2]]);
    assert.deepEqual(documented.sort(), [...families.values()].map((f) => [f.name, f.type]).sort());
    const rules = readFileSync(join(root, 'ops/prometheus/padlock-canary.yml'), 'utf8');
    const used = new Set([...rules.matchAll(/padlock_canary_[a-z_]+/g)].map((m) => m[0]));
    assert.ok(used.size >= 2);
    for (const name of used) assert.ok(families.has(name), `${name} in the rules is not exported`);
  });

  function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, 'canary', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('runs as `padlock canary`: exit 0 when every group stops in time, 1 when one does not, 2 on bad options', async () => {
    const file = join(a.dir, 'canary-credential');
    writeFileSync(file, `${credential}\n`, { mode: 0o600 });
    const common = ['--credential-file', file, '--metrics-listen', '127.0.0.1:0', '--rounds', '1'];
    const ok = await cli(['--group', `primary=${url(a)}`, '--max-staleness', '3', ...common]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /"msg":"canary round"/);
    assert.ok(!ok.stdout.includes(credential), 'the credential reached the output');
    const bad = await cli([
      '--group',
      `primary=${url(a)}`,
      '--group',
      `slow=${url(slow)}`,
      '--max-staleness',
      '1',
      ...common,
    ]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stdout, /served_after_max_staleness/);
    for (const group of ['noequals', '=http://x', 'UPPER=http://x', 'a=ftp://x']) {
      const refused = await cli(['--group', group, ...common]);
      assert.equal(refused.code, 2, group);
      assert.match(refused.stderr, /--group must be NAME=URL/);
    }
  });
});
