import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram } from '@padlock/server';

/*
 * The deletion canary: creates a throwaway user, reads its keys through every endpoint group (so
 * their caches hold them), shreds it through the first group, then polls every group until it
 * stops serving the keys. A group still serving them past maxStaleness has broken the deletion
 * bound (docs/api.md, "Caching and the deletion bound"); the time each group took is exported,
 * so the bound is a monitored figure, not a claim.
 */

export interface CanaryGroup {
  readonly name: string;
  /** Base URL, e.g. http://10.0.0.5:8080 */
  readonly url: string;
}

export interface CanaryOptions {
  readonly groups: readonly CanaryGroup[];
  /** A credential of a service that may create, read and shred. Never logged. */
  readonly credential: string;
  readonly maxStalenessMs: number;
  /** Between two polls of a group after the shred. */
  readonly pollMs?: number;
  readonly requestTimeoutMs?: number;
}

export interface GroupOutcome {
  readonly group: string;
  /** Seconds from the shred's answer to the first poll that found the keys gone; undefined on failure. */
  readonly deletionSeconds: number | undefined;
  readonly failure: 'served_after_max_staleness' | 'error' | undefined;
}

export class CanaryMetrics {
  readonly runs = new Counter('padlock_canary_runs_total', 'Canary rounds finished, by result (ok, failed)');
  readonly deletion = new Histogram(
    'padlock_canary_deletion_seconds',
    "Seconds from the canary's shred to the first read of a group that no longer served the keys",
    [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  );
  readonly failures = new Counter(
    'padlock_canary_failures_total',
    'Groups that served the shredded canary past maxStaleness, or could not be checked, by group and reason',
  );
  readonly lastSuccess = new Gauge(
    'padlock_canary_last_success_timestamp_seconds',
    'End of the last round in which every group stopped serving in time, Unix seconds',
  );
  readonly maxStaleness = new Gauge('padlock_canary_max_staleness_seconds', 'The bound the canary checks against');
  #lastSuccess = 0;

  constructor(maxStalenessMs: number) {
    this.lastSuccess.track(() => this.#lastSuccess);
    this.maxStaleness.track(() => maxStalenessMs / 1000);
  }

  record(outcomes: readonly GroupOutcome[]): void {
    let ok = true;
    for (const outcome of outcomes) {
      if (outcome.deletionSeconds !== undefined)
        this.deletion.observe({ group: outcome.group }, outcome.deletionSeconds);
      if (outcome.failure !== undefined) {
        ok = false;
        this.failures.inc({ group: outcome.group, reason: outcome.failure });
      }
    }
    this.runs.inc({ result: ok ? 'ok' : 'failed' });
    if (ok) this.#lastSuccess = Math.floor(Date.now() / 1000);
  }

  render(): string {
    return [this.runs, this.deletion, this.failures, this.lastSuccess, this.maxStaleness]
      .map((m) => m.render())
      .join('');
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class DeletionCanary {
  readonly metrics: CanaryMetrics;
  readonly #pollMs: number;
  readonly #timeoutMs: number;

  constructor(private readonly options: CanaryOptions) {
    if (options.groups.length === 0) throw new Error('the canary needs at least one endpoint group');
    this.metrics = new CanaryMetrics(options.maxStalenessMs);
    this.#pollMs = options.pollMs ?? 100;
    this.#timeoutMs = options.requestTimeoutMs ?? 2000;
  }

  async #call(group: CanaryGroup, method: string, path: string, body?: unknown): Promise<number> {
    const response = await fetch(new URL(path, group.url), {
      method,
      headers: {
        authorization: `Bearer ${this.options.credential}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    await response.arrayBuffer();
    return response.status;
  }

  /** One round: create, warm every group, shred, watch every group. Records and returns the outcomes. */
  async round(): Promise<GroupOutcome[]> {
    const userId = `padlock-canary-${randomBytes(8).toString('hex')}`;
    const path = `/v1/keys/${userId}`;
    const [first] = this.options.groups as [CanaryGroup, ...CanaryGroup[]];
    let outcomes: GroupOutcome[];
    try {
      const created = await this.#call(first, 'POST', '/v1/keychains', { userId });
      if (created !== 201) throw new Error(`creating the canary answered ${created}`);
      for (const group of this.options.groups) {
        const read = await this.#call(group, 'GET', path);
        if (read !== 200) throw new Error(`group ${group.name} answered ${read} for the new canary`);
      }
      const shred = await this.#call(first, 'DELETE', `/v1/keychains/${userId}`);
      if (shred < 200 || shred > 299) throw new Error(`shredding the canary answered ${shred}`);
      const shredAt = performance.now();
      outcomes = await Promise.all(this.options.groups.map((group) => this.#watch(group, path, shredAt)));
    } catch {
      outcomes = this.options.groups.map((group) => ({
        group: group.name,
        deletionSeconds: undefined,
        failure: 'error',
      }));
    }
    this.metrics.record(outcomes);
    return outcomes;
  }

  async #watch(group: CanaryGroup, path: string, shredAt: number): Promise<GroupOutcome> {
    const deadline = shredAt + this.options.maxStalenessMs;
    let lastServed = true;
    for (;;) {
      try {
        const status = await this.#call(group, 'GET', path);
        lastServed = status === 200;
        if (status === 404 || status === 410) {
          return { group: group.name, deletionSeconds: (performance.now() - shredAt) / 1000, failure: undefined };
        }
      } catch {
        lastServed = false;
      }
      if (performance.now() >= deadline) {
        return {
          group: group.name,
          deletionSeconds: undefined,
          failure: lastServed ? 'served_after_max_staleness' : 'error',
        };
      }
      await sleep(this.#pollMs);
    }
  }

  /** Serves the canary's metrics at /metrics on its own listener. */
  async listen(port: number, host: string): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics.render());
    });
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
    return server;
  }
}
