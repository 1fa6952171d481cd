export class PrometheusTextError extends Error {}

export interface MetricFamily {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly help: string | undefined;
}

export interface Sample {
  /** The sample's own name (x_bucket for a histogram x). */
  readonly name: string;
  /** The family it belongs to (x). */
  readonly family: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestamp?: number;
}

export interface Exposition {
  readonly families: ReadonlyMap<string, MetricFamily>;
  readonly samples: readonly Sample[];
}

export function parsePrometheusText(text: string, options?: { readonly maxBytes?: number }): Exposition;

export function metricValue(
  exposition: string | Exposition,
  name: string,
  labels?: Readonly<Record<string, string>>,
): number;
