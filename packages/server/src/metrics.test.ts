import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { metricValue, parsePrometheusText } from '../../../scripts/testing/prometheus-text.mjs';
import { VERSION } from './app.js';
import { startHarness, type Harness } from './testing/harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** docs/metrics.md's tables: metric name to type, by section ("## ..."). */
export function documentedMetrics(): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  for (const line of readFileSync(`${ROOT}docs/metrics.md`, 'utf8').split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading !== null) {
      current = new Map();
      sections.set(heading[1]!, current);
      continue;
    }
    const row = /^\| `([a-z_:][a-z0-9_:]*)` +\| (\w+) +\|/.exec(line);
    if (row === null) continue;
    assert.ok(!current.has(row[1]!), `docs/metrics.md lists ${row[1]} twice`);
    current.set(row[1]!, row[2]!);
  }
  return sections;
}

describe('/metrics: every metric documented with its type, and the runtime ones moving', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('docs/metrics.md lists exactly the families a live server exports, with their types', async () => {
    const reply = await h.call('GET', '/metrics');
    assert.equal(reply.status, 200);
    const { families } = parsePrometheusText(reply.text);
    const live = new Map([...families].map(([name, family]) => [name, family.type]));
    const documented = new Map<string, string>();
    for (const [section, rows] of documentedMetrics()) {
      // Served by other processes, each compared by its own test: `padlock canary` (cli canary.test) and
      // `padlock kek rewrap --metrics-listen` (cli kek-metrics.test).
      if (section === 'Deletion canary' || section === 'KEK re-wrap') continue;
      for (const [name, type] of rows) documented.set(name, type);
    }
    assert.ok(documented.size >= 40, `only ${documented.size} rows read from docs/metrics.md`);
    for (const [name, type] of live) assert.equal(documented.get(name), type, `${name} (${type}) in /metrics`);
    for (const [name, type] of documented) assert.equal(live.get(name), type, `${name} (${type}) in docs/metrics.md`);
  });

  it('every metric the SLO rules and the Grafana dashboard use exists in a live /metrics', async () => {
    const { families } = parsePrometheusText((await h.call('GET', '/metrics')).text);
    const rules = readdirSync(`${ROOT}ops/prometheus`)
      .filter((f) => f.endsWith('.yml'))
      .map((f) => readFileSync(`${ROOT}ops/prometheus/${f}`, 'utf8'))
      .join('\n');
    const dashboard = readFileSync(`${ROOT}ops/grafana/padlock.json`, 'utf8');
    const recorded = new Set([...rules.matchAll(/- record: (\S+)/g)].map((m) => m[1]!));
    const used = new Set<string>();
    for (const text of [rules, dashboard]) {
      for (const m of text.matchAll(/(?<![\w:])((?:padlock|process|nodejs)_[a-z0-9_]+)/g)) used.add(m[1]!);
      for (const m of text.matchAll(/(?<![\w])(padlock:[a-z0-9_:]+)/g)) {
        assert.ok(recorded.has(m[1]!), `${m[1]} is used but no rule records it`);
      }
    }
    assert.ok(used.size >= 15, `only ${used.size} metric names found in the rules and dashboard`);
    for (const name of used) {
      if (name.startsWith('padlock_canary_')) continue; // `padlock canary`'s own: cli's canary.test checks them
      const base = name.replace(/_(bucket|count|sum)$/, '');
      const family = families.get(name) ?? families.get(base);
      assert.ok(family !== undefined, `${name} is used in ops/ but not exported`);
      if (family.name !== name) assert.equal(family.type, 'histogram', `${name}: ${base} is no histogram`);
    }
  });

  it('names follow the conventions: counters end in _total, nothing else does, no padlock_gauge', async () => {
    const { families } = parsePrometheusText((await h.call('GET', '/metrics')).text);
    for (const [name, { type }] of families) {
      assert.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`);
      assert.match(name, /^(padlock|process|nodejs)_[a-z0-9_]+$/);
    }
    assert.ok(!families.has('padlock_gauge'));
  });

  it('reports build, process and heap figures that are really this process', async () => {
    const text = (await h.call('GET', '/metrics')).text;
    assert.equal(metricValue(text, 'padlock_build_info', { version: VERSION, nodejs: process.version }), 1);
    assert.ok(metricValue(text, 'process_open_fds') >= 3);
    assert.ok(metricValue(text, 'process_max_fds') >= metricValue(text, 'process_open_fds'));
    assert.ok(metricValue(text, 'process_cpu_seconds_total') > 0);
    assert.ok(Math.abs(metricValue(text, 'process_start_time_seconds') - (Date.now() / 1000 - process.uptime())) < 2);
    const rss = metricValue(text, 'process_resident_memory_bytes');
    assert.ok(rss > 10e6 && rss < 4e9, `rss ${rss}`);
    assert.ok(metricValue(text, 'nodejs_heap_size_used_bytes') <= metricValue(text, 'nodejs_heap_size_total_bytes'));
  });

  it('counts GC pauses and a blocked event loop (the delay that drives shedding)', async () => {
    const lagAbove = (text: string): number =>
      metricValue(text, 'padlock_event_loop_lag_seconds_count') -
      metricValue(text, 'padlock_event_loop_lag_seconds_bucket', { le: '0.025' });
    const beforeText = (await h.call('GET', '/metrics')).text;
    // Garbage enough for several scavenges.
    let keep: unknown[] = [];
    for (let i = 0; i < 200; i++) keep = [new Array(50_000).fill(i)];
    assert.ok(keep.length === 1);
    const until = performance.now() + 60;
    while (performance.now() < until); // the loop blocked 60 ms, as a CPU-bound handler would
    await new Promise((resolve) => setTimeout(resolve, 30));
    const afterText = (await h.call('GET', '/metrics')).text;
    assert.ok(lagAbove(afterText) > lagAbove(beforeText), 'a 60 ms block is not in the lag histogram');
    assert.ok(
      metricValue(afterText, 'nodejs_gc_duration_seconds_count') >
        metricValue(beforeText, 'nodejs_gc_duration_seconds_count'),
      'no GC pause recorded',
    );
    assert.ok(metricValue(afterText, 'padlock_event_loop_behind_limit_seconds') > 0);
  });
});
