import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart, stackCharts } from './svg-chart.mjs';

/*
 * The pictures of the benchmark and of DiRT (dirt/src/lib/charts.ts writes the latter).
 *
 * The benchmark's: for each open-loop scenario, latency percentiles against the offered
 * load (one point per offered rate the run swept), and every scenario's p99 on one chart.
 * Latency is from each request's intended send time (bench/lib/workload.mjs), on a log axis.
 */

const PERCENTILES = [
  ['p50', 'p50Ms'],
  ['p90', 'p90Ms'],
  ['p99', 'p99Ms'],
  ['p99.9', 'p999Ms'],
];

/** The open-loop rows of a run, by scenario id, in offered-rate order. */
function openScenarios(run) {
  const byId = new Map();
  for (const row of run.rows ?? []) {
    if (row.mode !== 'open' || !Number.isFinite(row.offeredRate) || row.latency === undefined) continue;
    byId.set(row.id, [...(byId.get(row.id) ?? []), row]);
  }
  for (const rows of byId.values()) rows.sort((a, b) => a.offeredRate - b.offeredRate);
  return byId;
}

/**
 * The charts of one run (a bench/results/<time>.json object), as file name -> SVG text.
 *
 * @param {{startedAt?: string, machine?: {commit?: string}, rows?: object[]}} run
 * @returns {Map<string, string>}
 */
export function benchCharts(run) {
  const charts = new Map();
  const scenarios = openScenarios(run);
  const subtitle = `open loop; run of ${run.startedAt ?? '?'}${run.machine?.commit ? ` at ${run.machine.commit}` : ''}`;
  const x = { label: 'offered load (requests/s)' };
  const y = { label: 'latency from intended send (ms)', log: true };
  for (const [id, rows] of scenarios) {
    charts.set(
      `${id}.svg`,
      lineChart({
        title: `${id}: ${rows[0].title}`,
        subtitle,
        x,
        y,
        series: PERCENTILES.map(([name, key]) => ({ name, points: rows.map((r) => [r.offeredRate, r.latency[key]]) })),
      }),
    );
  }
  if (scenarios.size > 0) {
    charts.set(
      'p99-all.svg',
      lineChart({
        title: 'p99 against offered load, every scenario',
        subtitle,
        x: { ...x, log: true },
        y,
        height: 420,
        series: [...scenarios].map(([id, rows]) => ({
          name: id,
          points: rows.map((r) => [r.offeredRate, r.latency.p99Ms]),
        })),
      }),
    );
  }
  return charts;
}

/** Writes benchCharts(run) into dir; returns the files written. */
export function writeBenchCharts(run, dir) {
  const charts = benchCharts(run);
  if (charts.size === 0) return [];
  mkdirSync(dir, { recursive: true });
  for (const [name, svg] of charts) writeFileSync(join(dir, name), svg);
  return [...charts.keys()].map((name) => join(dir, name));
}

/** Each phase's start and end, in seconds from the start of the first. */
function timeline(phases) {
  let t = 0;
  return phases.map((phase) => {
    const from = t;
    t += phase.durationS;
    return { phase, from, to: t };
  });
}

/** A step line: the value of each phase from its start to its end. */
function steps(name, spans, value) {
  const points = spans.map((s) => [s.from, value(s.phase)]);
  const last = spans.at(-1);
  if (last !== undefined) points.push([last.to, value(last.phase)]);
  return { name, step: true, points };
}

/**
 * DiRT's picture of one scenario: availability (operations answered correctly, per cent of those
 * sent) and p99 latency through the fault's timeline, the fault's window shaded. A DiRT report
 * holds one summary per phase (before, during, after), so each line is a step per phase, not a
 * per-second trace. Undefined for a scenario without load phases (hostile-input, leak-scan).
 *
 * @param {{name: string, title: string, phases: object[]}} scenario a ScenarioReport
 * @param {string} subtitle where the figures come from
 * @returns {string | undefined}
 */
export function faultChart(scenario, subtitle) {
  if (scenario.phases.length === 0) return undefined;
  const spans = timeline(scenario.phases);
  const fault = spans.find((s) => s.phase.phase === 'during');
  const bands = fault === undefined ? [] : [{ from: fault.from, to: fault.to, label: 'fault' }];
  const x = { label: 'seconds from the start of the load' };
  const availability = lineChart({
    title: scenario.name,
    subtitle: scenario.title,
    x,
    y: { label: 'answered correctly (%)', min: 0, max: 100 },
    series: [steps('availability', spans, (p) => (p.sent > 0 ? (100 * p.ok) / p.sent : NaN))],
    bands,
    height: 250,
  });
  const latency = lineChart({
    title: 'p99 latency per phase',
    subtitle,
    x,
    y: { label: 'ms (from intended send)', log: true },
    series: [steps('lookups p99', spans, (p) => p.p99), steps('writes p99', spans, (p) => p.writeP99)].filter((s) =>
      s.points.some(([, v]) => Number.isFinite(v)),
    ),
    bands,
    height: 270,
  });
  return stackCharts(`${scenario.name}: availability and p99 through the fault`, [availability, latency]);
}
