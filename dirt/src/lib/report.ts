import { writeFile } from 'node:fs/promises';
import type { PhaseSummary } from './load.js';
import type { ScenarioReport } from './scenario.js';

/* The run's report, as JSON and as markdown, both formatted by the repository's prettier config. */

export interface RunReport {
  readonly suite: 'padlock-dirt';
  readonly mode: 'full' | 'ci' | 'selected';
  readonly command: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationS: number;
  readonly commit: string;
  readonly machine: {
    readonly cpus: number;
    readonly memoryGiB: number;
    readonly node: string;
    readonly loadAverageAtStart: readonly number[];
    readonly loadAverageAtEnd: readonly number[];
  };
  readonly passed: number;
  readonly failed: number;
  readonly scenarios: readonly ScenarioReport[];
}

function ms(value: number): string {
  return Number.isFinite(value) ? String(value) : '-';
}

function latency(phase: PhaseSummary | undefined): string {
  return phase === undefined || phase.answered === 0 ? '-' : `${ms(phase.p50)} / ${ms(phase.p99)}`;
}

function statuses(byStatus: Record<string, number>): string {
  return Object.entries(byStatus)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function markdown(report: RunReport): string {
  const lines: string[] = [];
  lines.push('# Padlock DiRT report', '');
  lines.push(
    `- Command: \`${report.command}\` (${report.mode} run)`,
    `- Started ${report.startedAt}, took ${Math.round(report.durationS / 60)} min (${Math.round(report.durationS)} s)`,
    `- Commit ${report.commit}; Node ${report.machine.node}; ${report.machine.cpus} CPUs, ${report.machine.memoryGiB} GiB; ` +
      `load average ${report.machine.loadAverageAtStart.map((l) => l.toFixed(1)).join(' ')} at start, ` +
      `${report.machine.loadAverageAtEnd.map((l) => l.toFixed(1)).join(' ')} at end`,
    `- **${report.passed} of ${report.scenarios.length} scenarios met every figure**` +
      (report.failed > 0
        ? `; failed: ${report.scenarios
            .filter((s) => s.status !== 'pass')
            .map((s) => s.name)
            .join(', ')}`
        : ''),
    '',
    'Latencies are in milliseconds, from the moment each request was due (open-loop load), over answered lookups',
    '(writes, which run Paxos rounds in Cassandra, have their own column in each scenario).',
    'Availability counts requests answered correctly from the start of the fault to the end of the scenario;',
    'recovery is the time from the end of the fault to the answer of the last request that failed (0: none failed after it).',
    '',
    '| scenario | result | sent | answered | by status | wrong keys | p50 / p99 before | during | after | recovery (ms) | availability |',
    '| --- | --- | --: | --: | --- | --: | --: | --: | --: | --: | --: |',
  );
  for (const s of report.scenarios) {
    const [before, during, after] = s.phases;
    lines.push(
      `| ${s.name} | ${s.status} | ${s.totals.sent} | ${s.totals.answered} | ${cell(statuses(s.totals.byStatus))} | ` +
        `${s.totals.wrongKeys} | ${latency(before)} | ${latency(during)} | ${latency(after)} | ` +
        `${s.recoveryMs === null ? '-' : s.recoveryMs} | ${s.availability === null ? '-' : `${s.availability.toFixed(3)} %`} |`,
    );
  }
  lines.push('');
  for (const s of report.scenarios) {
    lines.push(`## ${s.name}`, '', `${s.title}. Cassandra layout: ${s.infra}. ${s.durationS} s. **${s.status}**`, '');
    if (s.error !== undefined) lines.push(`Error: \`${cell(s.error)}\``, '');
    if (s.figures.length > 0) {
      lines.push('| figure | target | value | met |', '| --- | --- | --- | --- |');
      for (const f of s.figures) {
        lines.push(`| ${cell(f.name)} | ${cell(f.target)} | ${cell(f.value)} | ${f.pass ? 'yes' : '**no**'} |`);
      }
      lines.push('');
    }
    if (s.phases.length > 0) {
      lines.push(
        '| phase | s | sent | ok | failed | wrong | p50 | p99 | max | writes p50 / p99 | goodput/s | by status |',
        '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |',
      );
      for (const p of s.phases) {
        lines.push(
          `| ${p.phase} | ${p.durationS} | ${p.sent} | ${p.ok} | ${p.failed} | ${p.wrong} | ${ms(p.p50)} | ${ms(p.p99)} | ` +
            `${ms(p.max)} | ${Number.isFinite(p.writeP50) ? `${p.writeP50} / ${p.writeP99}` : '-'} | ${p.goodput} | ` +
            `${cell(statuses(p.byStatus))} |`,
        );
      }
      lines.push('');
    }
    for (const note of s.notes) lines.push(`- ${note}`);
    if (s.notes.length > 0) lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

async function formatted(path: string, text: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    const options = (await prettier.resolveConfig(path)) ?? {};
    return await prettier.format(text, { ...options, filepath: path });
  } catch {
    return text;
  }
}

/** Writes `<base>.json` and `<base>.md`. */
export async function writeReport(base: string, report: RunReport): Promise<void> {
  await writeFile(`${base}.json`, await formatted(`${base}.json`, JSON.stringify(report, null, 2)));
  await writeFile(`${base}.md`, await formatted(`${base}.md`, markdown(report)));
}
