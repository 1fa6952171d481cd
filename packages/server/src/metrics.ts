/*
 * A small Prometheus registry: counters, gauges and histograms with fixed
 * label sets, rendered in the text exposition format (version 0.0.4). Label
 * values here are route templates, status codes and fixed names, never user
 * ids, so cardinality stays bounded.
 */

type Labels = Readonly<Record<string, string>>;

function canonicalKey(labels: Labels): string {
  let key = '';
  for (const name of Object.keys(labels).sort()) key += `${name}="${escapeLabel(labels[name] ?? '')}",`;
  return key.slice(0, -1);
}

/*
 * Canonical keys are memoized by a cheap key in the caller's property order:
 * every request updates several series, and sorting and escaping labels each
 * time cost microseconds. The memo is bounded by the label sets in use, which
 * are route templates, methods and statuses.
 */
const memo = new Map<string, string>();

/** The series key of a label set: compute it once for labels used on every request, then incKey/observeKey. */
export function labelKey(labels: Labels): string {
  let quick = '';
  for (const name in labels) quick += `${name}\u0000${labels[name]}\u0001`;
  let key = memo.get(quick);
  if (key === undefined) {
    key = canonicalKey(labels);
    if (memo.size < 10000) memo.set(quick, key);
  }
  return key;
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  readonly #values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    this.incKey(labelKey(labels), by);
  }

  incKey(key: string, by = 1): void {
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const [key, value] of this.#values) out += `${this.name}${key === '' ? '' : `{${key}}`} ${value}\n`;
    return out;
  }
}

export class Gauge implements Metric {
  readonly #values = new Map<string, () => number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** The gauge reads `read()` at scrape time. */
  track(read: () => number, labels: Labels = {}): void {
    this.#values.set(labelKey(labels), read);
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n`;
    for (const [key, read] of this.#values) out += `${this.name}${key === '' ? '' : `{${key}}`} ${read()}\n`;
    return out;
  }
}

/** Latency buckets in seconds, from 100 us to 5 s. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
];

interface Series {
  readonly counts: number[];
  sum: number;
  count: number;
}

export class Histogram implements Metric {
  readonly #series = new Map<string, Series>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {}

  observe(labels: Labels, value: number): void {
    this.observeKey(labelKey(labels), value);
  }

  observeKey(key: string, value: number): void {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] ?? Infinity)) {
        series.counts[i] = (series.counts[i] ?? 0) + 1;
        break;
      }
    }
    series.sum += value;
    series.count += 1;
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [key, series] of this.#series) {
      const prefix = key === '' ? '' : `${key},`;
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += series.counts[i] ?? 0;
        out += `${this.name}_bucket{${prefix}le="${this.buckets[i]}"} ${cumulative}\n`;
      }
      out += `${this.name}_bucket{${prefix}le="+Inf"} ${series.count}\n`;
      out += `${this.name}_sum${key === '' ? '' : `{${key}}`} ${series.sum}\n`;
      out += `${this.name}_count${key === '' ? '' : `{${key}}`} ${series.count}\n`;
    }
    return out;
  }
}

/** Padlock's metrics, one registry per server. */
export class Metrics {
  readonly requests = new Counter('padlock_http_requests_total', 'HTTP requests by route, method and status');
  readonly requestDuration = new Histogram('padlock_http_request_duration_seconds', 'HTTP request latency by route');
  readonly shed = new Counter('padlock_requests_shed_total', 'Requests refused before handling, by reason');
  readonly shedConnections = new Counter(
    'padlock_http_shed_connections_total',
    'Connections closed by the HTTP layer to bound its memory, by reason (connections: at accept; memory: past limits.maxUnfinishedRequestBytes)',
  );
  readonly shedBytes = new Counter(
    'padlock_http_shed_bytes_total',
    'Bytes that connections shed for memory held for their unfinished requests when they were shed',
  );
  readonly cacheHits = new Counter('padlock_cache_hits_total', 'Cache hits by cache layer');
  readonly cacheMisses = new Counter('padlock_cache_misses_total', 'Cache misses by cache layer');
  readonly cacheErrors = new Counter(
    'padlock_cache_errors_total',
    'Cache failures (timeouts, unreachable, corrupt values) by cache layer and kind',
  );
  readonly storeDuration = new Histogram('padlock_store_duration_seconds', 'Key store call latency by operation');
  readonly storeErrors = new Counter('padlock_store_errors_total', 'Key store call failures by operation');
  readonly keysDerived = new Counter('padlock_keys_derived_total', 'Derived keys handed out');
  /**
   * Key lookups by service and category: counted, not audited one by one (a
   * lookup changes nothing, and at 1 M/s an entry each would outweigh the log
   * of every change; docs/deleting-a-user.md). Bounded: services x categories.
   */
  readonly lookups = new Counter('padlock_lookups_total', 'Keys looked up (per user), by service and category');
  readonly integrityFailures = new Counter(
    'padlock_store_integrity_failures_total',
    'Store rows refused by their MAC check, by row kind and reason, counted at every service refresh',
  );
  readonly schedulesExecuted = new Counter(
    'padlock_schedules_executed_total',
    'Scheduled shreds executed by this process, by outcome (executed, held, failed)',
  );
  readonly scheduleDelay = new Histogram(
    'padlock_schedule_delay_seconds',
    "Seconds from a schedule's executeAt to its execution by this process",
  );
  readonly tlsHandshakes = new Counter(
    'padlock_tls_handshakes_total',
    'TLS handshakes completed, by session (new, resumed)',
  );
  readonly tlsHandshakeFailures = new Counter(
    'padlock_tls_handshake_failures_total',
    'TLS handshakes that failed or were refused, by reason',
  );
  readonly tlsReloads = new Counter('padlock_tls_reloads_total', 'TLS certificate reloads by result (ok, failed)');
  readonly tlsCertificateRefusals = new Counter(
    'padlock_tls_client_certificate_refusals_total',
    'Requests refused for their client certificate, by reason (unmapped, mismatch, missing)',
  );
  readonly gauges = new Gauge('padlock_gauge', 'Point-in-time values by name');

  /** Counts `users` lookups of each category by one service. */
  countLookups(serviceId: string, categories: readonly string[], users = 1): void {
    for (const category of categories) this.lookups.incKey(labelKey({ service: serviceId, category }), users);
  }

  readonly #all: Metric[] = [
    this.requests,
    this.requestDuration,
    this.shed,
    this.shedConnections,
    this.shedBytes,
    this.cacheHits,
    this.cacheMisses,
    this.cacheErrors,
    this.storeDuration,
    this.storeErrors,
    this.keysDerived,
    this.lookups,
    this.integrityFailures,
    this.schedulesExecuted,
    this.scheduleDelay,
    this.tlsHandshakes,
    this.tlsHandshakeFailures,
    this.tlsReloads,
    this.tlsCertificateRefusals,
    this.gauges,
  ];

  render(): string {
    return this.#all.map((m) => m.render()).join('');
  }
}
