import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { benchCharts, faultChart } from './lib/charts.mjs';
import { escapeXml, lineChart, stackCharts, ticks } from './lib/svg-chart.mjs';

/*
 * The report charts (bench/lib/svg-chart.mjs, charts.mjs): data lands where the axes say, bad
 * values are left out rather than drawn, text cannot break out of the SVG, and the committed
 * charts in docs/charts are what the committed results give.
 */

const root = new URL('../', import.meta.url);

/** Every element opened is closed, in order (the charts have no comments, CDATA or entities but &#N;). */
function assertWellFormed(svg) {
  const stack = [];
  for (const [, close, name, selfClosing] of svg.matchAll(/<(\/?)([a-z]+)\b[^>]*?(\/?)>/g)) {
    if (close) assert.equal(stack.pop(), name, `</${name}> closes something else`);
    else if (!selfClosing) stack.push(name);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.doesNotMatch(svg.replace(/&#\d+;/g, ''), /&/, 'an unescaped ampersand');
}

const circles = (svg) => [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [+m[1], +m[2]]);

test('ticks: 1-2-5 per decade on a log axis, round steps on a linear one', () => {
  assert.deepEqual(ticks(1, 100, true), [1, 2, 5, 10, 20, 50, 100]);
  assert.deepEqual(ticks(0, 100, false), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(ticks(0, 45, false), [0, 10, 20, 30, 40]);
});

test('points land at the plot edges for the axis ends, and a decade up on a log axis', () => {
  const svg = lineChart({
    title: 't',
    x: { label: 'x', min: 0, max: 100 },
    y: { label: 'y', log: true, min: 1, max: 100 },
    series: [
      {
        name: 's',
        points: [
          [0, 1],
          [50, 10],
          [100, 100],
        ],
      },
    ],
  });
  const [[x0, y0], [x1, y1], [x2, y2]] = circles(svg);
  assert.equal(x1, (x0 + x2) / 2, 'linear x: the middle value in the middle');
  assert.equal(y1, (y0 + y2) / 2, 'log y: 10 halfway between 1 and 100');
  assert.ok(y0 > y2, 'larger values higher up');
  assertWellFormed(svg);
});

test('values that cannot be drawn are left out, not drawn at 0 or at the edge', () => {
  const svg = lineChart({
    title: 't',
    x: { label: 'x' },
    y: { label: 'y', log: true },
    series: [
      {
        name: 's',
        points: [
          [1, 5],
          [2, NaN],
          [3, null],
          [4, 0],
          [5, -1],
          [6, Infinity],
          [7, 8],
        ],
      },
    ],
  });
  assert.equal(circles(svg).length, 2);
  const empty = lineChart({ title: 't', x: { label: 'x' }, y: { label: 'y' }, series: [{ name: 's', points: [] }] });
  assert.match(empty, /no data/);
  assertWellFormed(empty);
});

test('titles, labels and series names are escaped', () => {
  const evil = '</text><script>alert(1)</script>&"\'';
  const svg = lineChart({
    title: evil,
    subtitle: evil,
    x: { label: evil },
    y: { label: evil },
    series: [{ name: evil, points: [[1, 1]] }],
    bands: [{ from: 0, to: 1, label: evil }],
  });
  assert.doesNotMatch(svg, /<script/);
  assert.ok(svg.includes(escapeXml('<script>')));
  assertWellFormed(svg);
  assertWellFormed(stackCharts(evil, [svg, svg]));
});

test('the benchmark: one chart per open-loop scenario, four percentiles per offered rate', () => {
  const run = JSON.parse(readFileSync(new URL('bench/results/latest.json', root), 'utf8'));
  const charts = benchCharts(run);
  const open = run.rows.filter((r) => r.mode === 'open');
  const ids = new Set(open.map((r) => r.id));
  assert.ok(ids.size > 3);
  assert.deepEqual([...charts.keys()].sort(), [...[...ids].map((id) => `${id}.svg`), 'p99-all.svg'].sort());
  for (const id of ids) {
    const rows = open.filter((r) => r.id === id);
    assert.equal(circles(charts.get(`${id}.svg`)).length, rows.length * 4, id);
    assertWellFormed(charts.get(`${id}.svg`));
  }
  assert.equal(circles(charts.get('p99-all.svg')).length, open.length);
  assert.equal(benchCharts({ rows: [] }).size, 0);
});

test('DiRT: availability and p99 per phase, the fault window shaded', () => {
  const phase = (name, durationS, sent, ok, p99) => ({ phase: name, durationS, sent, ok, p99, writeP99: null });
  const svg = faultChart(
    {
      name: 'store-slow',
      title: 'the store made slow',
      phases: [phase('before', 10, 100, 100, 5), phase('during', 20, 200, 0, 200), phase('after', 15, 150, 150, 6)],
    },
    'test run',
  );
  assertWellFormed(svg);
  assert.equal((svg.match(/>fault</g) ?? []).length, 2, 'the band on both panels');
  assert.doesNotMatch(svg, /writes p99/, 'a series with no values is left out');
  // availability: 100 %, then 0 % from 10 s to 30 s, then 100 %: a step line of 4 points and 3 risers.
  const line = /<polyline[^>]*points="([^"]+)"/
    .exec(svg)[1]
    .split(' ')
    .map((p) => p.split(',').map(Number));
  assert.equal(line.length, 7);
  const [top, bottom] = [line[0][1], line[2][1]];
  assert.ok(bottom > top);
  assert.deepEqual(
    line.map((p) => p[1]),
    [top, top, bottom, bottom, top, top, top],
  );
  assert.equal(faultChart({ name: 'leak-scan', title: '', phases: [] }, ''), undefined);
});

test('docs/charts hold what scripts/charts.mjs draws from the committed results', () => {
  const run = JSON.parse(readFileSync(new URL('bench/results/latest.json', root), 'utf8'));
  const committed = readdirSync(new URL('docs/charts/bench/', root)).sort();
  const charts = benchCharts(run);
  assert.deepEqual(committed, [...charts.keys()].sort());
  for (const name of committed) {
    assert.equal(readFileSync(new URL(`docs/charts/bench/${name}`, root), 'utf8'), charts.get(name), name);
  }
  const report = JSON.parse(readFileSync(new URL('dirt/results/latest.json', root), 'utf8'));
  const subtitle = `DiRT ${report.mode} run of ${report.startedAt} at ${report.commit}`;
  for (const scenario of report.scenarios) {
    const svg = faultChart(scenario, subtitle);
    if (svg === undefined) continue;
    assert.equal(readFileSync(new URL(`docs/charts/dirt/${scenario.name}.svg`, root), 'utf8'), svg, scenario.name);
  }
});
