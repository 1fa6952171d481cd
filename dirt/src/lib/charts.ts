import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { faultChart } from '../../../bench/lib/charts.mjs';
import type { RunReport } from './report.js';

/*
 * DiRT's pictures, drawn by the benchmark's chart module (bench/lib/charts.mjs, faultChart):
 * availability and p99 through each fault's timeline, one SVG per scenario with load phases.
 */

/**
 * Writes `<scenario>.svg` into dir for each scenario with load phases; returns their paths.
 *
 * @example
 *   await writeCharts('dirt/results/latest-charts', report);
 */
export async function writeCharts(dir: string, report: RunReport): Promise<string[]> {
  const subtitle = `DiRT ${report.mode} run of ${report.startedAt} at ${report.commit}`;
  const written: string[] = [];
  for (const scenario of report.scenarios) {
    const svg = faultChart(scenario, subtitle);
    if (svg === undefined) continue;
    if (written.length === 0) await mkdir(dir, { recursive: true });
    const path = join(dir, `${scenario.name}.svg`);
    await writeFile(path, svg);
    written.push(path);
  }
  return written;
}
