// Types of svg-chart.mjs, for the TypeScript that uses it (dirt/src/lib/charts.ts).
export interface Axis {
  readonly label: string;
  readonly log?: boolean;
  readonly min?: number;
  readonly max?: number;
}
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  readonly step?: boolean;
}
export interface Band {
  readonly from: number;
  readonly to: number;
  readonly label: string;
}
export interface Chart {
  readonly title: string;
  readonly subtitle?: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly series: readonly Series[];
  readonly bands?: readonly Band[];
  readonly width?: number;
  readonly height?: number;
}
export function escapeXml(text: string): string;
export function fitText(text: string, width: number, fontSize: number): string;
export function shortNumber(value: number): string;
export function ticks(min: number, max: number, log: boolean, count?: number): number[];
export function lineChart(chart: Chart): string;
export function stackCharts(title: string, charts: readonly string[]): string;
