/*
 * The one place the console reads Padlock's metrics: the Prometheus text parser and every
 * metric name the Health screen uses. Metric names change here and nowhere else.
 */

/** Metric names (packages/server/src/metrics.ts). */
export const METRIC = {
  requests: 'padlock_http_requests_total',
  requestDuration: 'padlock_http_request_duration_seconds',
  shed: 'padlock_requests_shed_total',
  cacheHits: 'padlock_cache_hits_total',
  cacheMisses: 'padlock_cache_misses_total',
  /** The deletion canary (docs/operations.md), when one is configured: every series with this prefix. */
  canaryPrefix: 'padlock_deletion_canary_',
} as const;

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;

/** Parses the text exposition format 0.0.4; lines that are not samples (comments, blanks, junk) are skipped. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (match[3] ?? '').matchAll(LABEL)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const value = Number(match[4]);
    if (!Number.isNaN(value) || match[4] === 'NaN') samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

function sum(
  samples: readonly Sample[],
  name: string,
  keep: (labels: Sample['labels']) => boolean = () => true,
): number {
  let total = 0;
  for (const s of samples) if (s.name === name && keep(s.labels)) total += s.value;
  return total;
}

/** Cumulative figures at one scrape; rates come from two of them. */
export interface Snapshot {
  readonly at: number;
  readonly requests: number;
  readonly errors: number;
  readonly shed: number;
  /** Cumulative histogram buckets of request latency, every route together: upper bound -> count. */
  readonly buckets: ReadonlyMap<number, number>;
  readonly cache: Readonly<Record<string, { hits: number; misses: number }>>;
  /** The canary's series by name (without the prefix), or undefined when there is none. */
  readonly canary: Readonly<Record<string, number>> | undefined;
}

export function snapshot(samples: readonly Sample[], at: number): Snapshot {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${METRIC.requestDuration}_bucket`) continue;
    const le = s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const cache: Record<string, { hits: number; misses: number }> = {};
  for (const s of samples) {
    const layer = s.labels['layer'] ?? s.labels['cache'] ?? 'all';
    if (s.name === METRIC.cacheHits) (cache[layer] ??= { hits: 0, misses: 0 }).hits += s.value;
    if (s.name === METRIC.cacheMisses) (cache[layer] ??= { hits: 0, misses: 0 }).misses += s.value;
  }
  const canarySamples = samples.filter((s) => s.name.startsWith(METRIC.canaryPrefix));
  const canary: Record<string, number> = {};
  for (const s of canarySamples) {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    canary[s.name.slice(METRIC.canaryPrefix.length) + (labels === '' ? '' : `{${labels}}`)] = s.value;
  }
  return {
    at,
    requests: sum(samples, METRIC.requests),
    errors: sum(samples, METRIC.requests, (l) => (l['status'] ?? '').startsWith('5')),
    shed: sum(samples, METRIC.shed),
    buckets,
    cache,
    canary: canarySamples.length === 0 ? undefined : canary,
  };
}

/** The q-quantile (0-1) of the requests between two snapshots, from histogram buckets; undefined without requests. */
export function quantile(before: Snapshot, after: Snapshot, q: number): number | undefined {
  const bounds = [...after.buckets.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.buckets.get(b) ?? 0) - (before.buckets.get(b) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if ((counts[i] ?? 0) >= rank) {
      const upper = bounds[i]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      if (upper === Infinity) return lower;
      const below = i === 0 ? 0 : (counts[i - 1] ?? 0);
      const inBucket = (counts[i] ?? 0) - below;
      return inBucket <= 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
    }
  }
  return undefined;
}
