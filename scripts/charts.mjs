#!/usr/bin/env node
// Charts from results already written (`npm run charts`, after `npm run build && tsc -p dirt`):
// node scripts/charts.mjs [BENCH_JSON] [DIRT_JSON] writes docs/charts/bench/*.svg from a benchmark
// run (default bench/results/latest.json) and docs/charts/dirt/*.svg from a DiRT report (default
// dirt/results/latest.json), the charts docs/performance.md and docs/reliability.md show.
// `npm run bench` and `npm run dirt` write the same charts beside their own results.
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeBenchCharts } from '../bench/lib/charts.mjs';
import { writeCharts } from '../dirt/dist/lib/charts.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const [benchJson = 'bench/results/latest.json', dirtJson = 'dirt/results/latest.json'] = process.argv.slice(2);
const read = (path) => JSON.parse(readFileSync(new URL(path, `file://${root}`), 'utf8'));

for (const dir of ['docs/charts/bench', 'docs/charts/dirt']) rmSync(`${root}${dir}`, { recursive: true, force: true });
const bench = writeBenchCharts(read(benchJson), `${root}docs/charts/bench`);
const dirt = await writeCharts(`${root}docs/charts/dirt`, read(dirtJson));
console.log(
  `${bench.length} charts from ${benchJson} in docs/charts/bench, ${dirt.length} from ${dirtJson} in docs/charts/dirt`,
);
