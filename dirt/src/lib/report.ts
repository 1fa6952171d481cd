import { writeFile } from 'node:fs/promises';
import { writeCharts } from './charts.js';
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
  /** What decides the exit status: every figure (full and selected runs), or the invariants only (--ci). */
  readonly gate: 'figures' | 'invariants';
  /** Scenarios that missed an invariant or did not run to the end. */
  readonly invariantsBroken: number;
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

/** pass; missed a target (timing, availability); broke an invariant; or did not run to the end. */
function result(s: ScenarioReport): string {
  if (s.status === 'error') return '**error**';
  if (!s.invariantsHeld) return '**INVARIANT**';
  return s.status === 'pass' ? 'pass' : 'target missed';
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
    `- **Invariants ${report.invariantsBroken === 0 ? 'held in every scenario' : `broken, or the scenario did not finish, in ${report.invariantsBroken}`}**` +
      ' (no wrong or stale key, no acknowledged write lost, no 5xx, crash, hang or leak, and the checks that each scenario tested what it claims)',
    report.gate === 'invariants'
      ? '- Gate (`--ci`): the exit status is 1 only when an invariant is missed or a scenario did not run to the end; ' +
          'timing and availability figures (targets) missed are reported here as "missed", not failed on'
      : '- Gate: the exit status is 1 when any figure, invariant or target, is missed',
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
      `| ${s.name} | ${result(s)} | ${s.totals.sent} | ${s.totals.answered} | ${cell(statuses(s.totals.byStatus))} | ` +
        `${s.totals.wrongKeys} | ${latency(before)} | ${latency(during)} | ${latency(after)} | ` +
        `${s.recoveryMs === null ? '-' : s.recoveryMs} | ${s.availability === null ? '-' : `${s.availability.toFixed(3)} %`} |`,
    );
  }
  lines.push('');
  for (const s of report.scenarios) {
    lines.push(
      `## ${s.name}`,
      '',
      `${s.title}. Cassandra layout: ${s.infra}. ${s.durationS} s. **${result(s).replaceAll('*', '')}**`,
      '',
    );
    if (s.error !== undefined) lines.push(`Error: \`${cell(s.error)}\``, '');
    if (s.figures.length > 0) {
      lines.push('| figure | kind | target | value | met |', '| --- | --- | --- | --- | --- |');
      for (const f of s.figures) {
        const met = f.pass
          ? 'yes'
          : f.kind === 'invariant'
            ? '**NO**'
            : report.gate === 'invariants'
              ? 'missed'
              : '**no**';
        lines.push(`| ${cell(f.name)} | ${f.kind} | ${cell(f.target)} | ${cell(f.value)} | ${met} |`);
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

/** Writes `<base>.json`, `<base>.md` and the charts, `<base>-charts/<scenario>.svg`. */
export async function writeReport(base: string, report: RunReport): Promise<void> {
  await writeFile(`${base}.json`, await formatted(`${base}.json`, JSON.stringify(report, null, 2)));
  await writeFile(`${base}.md`, await formatted(`${base}.md`, markdown(report)));
  await writeCharts(`${base}-charts`, report);
}
