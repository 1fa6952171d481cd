/*
 * A small Prometheus registry: counters, gauges and histograms with fixed
 * label sets, rendered in the text exposition format (version 0.0.4). Label
 * values here are route templates, status codes and fixed names, never user
 * ids, so cardinality stays bounded. Each value is its own metric, named as
 * the Prometheus conventions say (base units, _total for counters); every
 * metric is listed in docs/metrics.md, and a test compares the two.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

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

/**
 * A value read at scrape time (`track`): a gauge, or a counter kept elsewhere (a client
 * library's count) that this registry only reports.
 */
export class Sampled implements Metric {
  readonly #values = new Map<string, () => number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter' = 'gauge',
  ) {}

  /** The metric reads `read()` at scrape time; a later track with the same labels replaces it. */
  track(read: () => number, labels: Labels = {}): void {
    this.#values.set(labelKey(labels), read);
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} ${this.type}\n`;
    for (const [key, read] of this.#values) {
      const value = read();
      if (Number.isFinite(value)) out += `${this.name}${key === '' ? '' : `{${key}}`} ${value}\n`;
    }
    return out;
  }
}

/** A point-in-time value read at scrape time. */
export class Gauge extends Sampled {
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
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

/**
 * What operators look for from any process, under the names other exporters use (the Prometheus
 * client libraries' process_* and Node.js ones), so existing dashboards find them.
 */
export class RuntimeMetrics {
  readonly buildInfo = new Gauge('padlock_build_info', 'Always 1; the labels say which build and Node.js run');
  readonly cpu = new Sampled('process_cpu_seconds_total', 'User and system CPU time spent, in seconds', 'counter');
  readonly residentMemory = new Gauge('process_resident_memory_bytes', 'Resident set size in bytes');
  readonly openFds = new Gauge('process_open_fds', 'Open file descriptors');
  readonly maxFds = new Gauge('process_max_fds', 'The limit on open file descriptors');
  readonly startTime = new Gauge('process_start_time_seconds', 'Process start, in seconds since the Unix epoch');
  readonly heapUsed = new Gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes');
  readonly heapTotal = new Gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes');
  readonly external = new Gauge(
    'nodejs_external_memory_bytes',
    'Memory of C++ objects bound to JavaScript (Buffers), in bytes',
  );
  readonly gcPauses = new Histogram(
    'nodejs_gc_duration_seconds',
    'Garbage collection pauses by kind (minor, major, incremental, weakcb)',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  );
  readonly all: readonly Metric[] = [
    this.buildInfo,
    this.cpu,
    this.residentMemory,
    this.openFds,
    this.maxFds,
    this.startTime,
    this.heapUsed,
    this.heapTotal,
    this.external,
    this.gcPauses,
  ];

  /** Set once by the server: padlock_build_info{version, nodejs} 1. */
  setBuild(version: string): void {
    this.buildInfo.track(() => 1, { version, nodejs: process.version });
  }

  constructor() {
    this.cpu.track(() => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1e6;
    });
    this.residentMemory.track(() => process.memoryUsage.rss());
    this.startTime.track(() => Math.round((Date.now() - process.uptime() * 1000) / 1000));
    this.heapUsed.track(() => process.memoryUsage().heapUsed);
    this.heapTotal.track(() => process.memoryUsage().heapTotal);
    this.external.track(() => process.memoryUsage().external);
    // Linux only: elsewhere the two are left out rather than reported as 0.
    this.openFds.track(() => {
      try {
        return readdirSync('/proc/self/fd').length;
      } catch {
        return NaN;
      }
    });
    const maxFds = softFdLimit();
    this.maxFds.track(() => maxFds);
  }

  #gc: PerformanceObserver | undefined;

  /** Starts recording GC pauses; one observer per process is enough, so the server owning /metrics calls it. */
  observeGc(): void {
    if (this.#gc !== undefined) return;
    this.#gc = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail;
        const kind = GC_KINDS[detail?.kind ?? 0] ?? 'other';
        this.gcPauses.observe({ kind }, entry.duration / 1000);
      }
    });
    this.#gc.observe({ entryTypes: ['gc'] });
  }

  stopGc(): void {
    this.#gc?.disconnect();
    this.#gc = undefined;
  }
}

/** perf_hooks' NODE_PERFORMANCE_GC_* flags, as labels. */
const GC_KINDS: Readonly<Record<number, string>> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

function softFdLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'latin1')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line === undefined ? undefined : /^Max open files\s+(\d+)/.exec(line)?.[1];
    return soft === undefined ? NaN : Number(soft);
  } catch {
    return NaN;
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
  readonly inFlight = new Gauge('padlock_http_inflight_requests', 'Requests being handled now (limits.maxInFlight)');
  readonly connections = new Gauge('padlock_http_open_connections', 'Open HTTP connections (limits.maxConnections)');
  readonly unfinishedRequestBytes = new Gauge(
    'padlock_http_unfinished_request_bytes',
    'Bytes held by requests not fully read yet (limits.maxUnfinishedRequestBytes)',
  );
  readonly eventLoopLag = new Histogram(
    'padlock_event_loop_lag_seconds',
    'How late each 5 ms tick of the load-shedding timer ran: the event-loop delay that sheds requests',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  );
  readonly eventLoopBehind = new Gauge(
    'padlock_event_loop_behind_seconds',
    'How long every tick of the event loop has come late, 0 when the last was on time; requests are shed (reason event_loop) past padlock_event_loop_behind_limit_seconds',
  );
  readonly eventLoopBehindLimit = new Gauge(
    'padlock_event_loop_behind_limit_seconds',
    'How long the event loop may stay behind before requests are shed (limits.maxLoopBusyMs x 5)',
  );
  readonly l1Entries = new Gauge('padlock_l1_cache_entries', 'Keychains held in the in-process cache');
  readonly memcachedServersHealthy = new Gauge(
    'padlock_memcached_servers_healthy',
    'memcached servers this process currently reads from (the others are marked down)',
  );
  readonly tlsCertificateNotAfter = new Gauge(
    'padlock_tls_certificate_not_after_timestamp_seconds',
    'Expiry of the served TLS certificate, in seconds since the Unix epoch',
  );
  readonly servicesFailingIntegrity = new Gauge(
    'padlock_services_failing_integrity',
    'Services whose store rows failed their MAC check at the last refresh',
  );
  readonly storeHedgedReads = new Sampled(
    'padlock_store_hedged_reads_total',
    'Cassandra reads that sent a speculative second request (store.cassandra.hedgeAfterMs)',
    'counter',
  );
  readonly storeHedgesOverBudget = new Sampled(
    'padlock_store_hedges_over_budget_total',
    'Cassandra keychain reads left without a hedge because the hedge budget was spent (store.cassandra.hedgeShare)',
    'counter',
  );
  readonly sqliteShredResidue = new Gauge(
    'padlock_sqlite_shred_residue_seconds',
    "How long a shred's old rows may have stayed in the SQLite WAL or database file because its checkpoint was held off by a reader (retried until it succeeds); 0 when none",
  );
  readonly sqliteCheckpointsBlocked = new Sampled(
    'padlock_sqlite_checkpoints_blocked_total',
    'Checkpoints after a shred that a reader held off past the busy timeout (each retried)',
    'counter',
  );
  readonly runtime = new RuntimeMetrics();

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
    this.inFlight,
    this.connections,
    this.unfinishedRequestBytes,
    this.eventLoopLag,
    this.eventLoopBehind,
    this.eventLoopBehindLimit,
    this.l1Entries,
    this.memcachedServersHealthy,
    this.tlsCertificateNotAfter,
    this.servicesFailingIntegrity,
    this.storeHedgedReads,
    this.storeHedgesOverBudget,
    this.sqliteShredResidue,
    this.sqliteCheckpointsBlocked,
    ...this.runtime.all,
  ];

  render(): string {
    return this.#all.map((m) => m.render()).join('');
  }
}
