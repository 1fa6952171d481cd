// Types of charts.mjs, for the TypeScript that uses it (dirt/src/lib/charts.ts).
export function benchCharts(run: object): Map<string, string>;
export function writeBenchCharts(run: object, dir: string): string[];
export function faultChart(
  scenario: { readonly name: string; readonly title: string; readonly phases: readonly object[] },
  subtitle: string,
): string | undefined;
