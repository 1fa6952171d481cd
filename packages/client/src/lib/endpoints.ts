import { context, propagation } from '@opentelemetry/api';
import { Unavailable, type FailedAttempt } from '../errors.js';
import type { ResolvedGroup, ResolvedOptions } from '../options.js';
import { AttemptError, type Attempt, type HttpClient, type HttpReply } from './http.js';
import type { Counters } from './stats.js';

/*
 * Failover across deployment groups (DESIGN.md section 7): a connection
 * error, timeout, 429 or 5xx from one group sends the request to the next;
 * optionally a slow attempt is hedged to the next group. Padlock fails fast,
 * so there are no retries unless the caller opts in; then a retry is one more
 * round over the groups, after a full-jitter backoff, paid from a token budget
 * so that retries cannot multiply load during an outage.
 */

export interface EndpointRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Path below each base URL, starting with "/". */
  readonly path: string;
  readonly body?: Buffer;
  /** Reads may be hedged; writes are not. */
  readonly hedge: boolean;
}

/** A final refusal from Padlock (a 4xx with its error body): the same answer would come from any group. */
export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly refusal: Refusal };

/** 4xx codes that say "wrong endpoint" (a proxy, a mistyped path prefix), not "wrong request": fail over. */
const ENDPOINT_CODES = new Set(['ROUTE_NOT_FOUND', 'METHOD_NOT_ALLOWED']);

interface Target {
  readonly group: ResolvedGroup;
  readonly url: URL;
}

type Verdict<T> = { kind: 'done'; outcome: Outcome<T> } | { kind: 'failed'; reason: string };

function errorBody(body: Buffer): { code: string; message: string } | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (typeof error?.code === 'string' && typeof error.message === 'string') {
      return { code: error.code, message: error.message };
    }
  } catch {
    // Not Padlock's error shape: handled by the caller as an endpoint failure.
  }
  return undefined;
}

export class Endpoints {
  readonly #options: ResolvedOptions;
  readonly #http: HttpClient;
  readonly #counters: Counters;
  /** Undefined when the client certificate alone authenticates. */
  readonly #authorization: string | undefined;
  /** Per base URL: when it may be tried first again. */
  readonly #downUntil = new Map<URL, number>();
  /** Per group: the next URL to use, round robin. */
  readonly #cursor = new Map<ResolvedGroup, number>();
  readonly #inFlight = new Set<Attempt>();
  readonly #random: () => number;
  #budget: number;
  #closed = false;

  constructor(options: ResolvedOptions, http: HttpClient, counters: Counters, random: () => number = Math.random) {
    this.#options = options;
    this.#http = http;
    this.#counters = counters;
    this.#authorization = options.credential === undefined ? undefined : `Bearer ${options.credential}`;
    this.#random = random;
    this.#budget = options.retry === false ? 0 : options.retry.budgetMax;
  }

  /**
   * Sends `request` until a group answers it: `parse` turns a 2xx body into
   * the result (a body it rejects counts as that group failing); a 4xx with
   * Padlock's error body is a refusal; anything else fails over.
   */
  async call<T>(request: EndpointRequest, parse: (status: number, body: unknown) => T): Promise<Outcome<T>> {
    const retry = this.#options.retry;
    const deadline = Date.now() + this.#options.deadlineMs;
    if (retry !== false) this.#budget = Math.min(retry.budgetMax, this.#budget + retry.budgetRatio);
    const failures: FailedAttempt[] = [];
    for (let round = 0; ; round++) {
      const result = await this.#round(request, parse, deadline, failures);
      if (result !== undefined) return result;
      if (this.#closed || retry === false || round >= retry.maxRetries || this.#budget < 1) break;
      const delay = this.#random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** round);
      if (Date.now() + delay >= deadline) break;
      this.#budget -= 1;
      this.#counters.inc('retries');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    throw new Unavailable(
      this.#closed ? 'the client is closed' : 'no Padlock endpoint group answered',
      failures.slice(-16),
    );
  }

  /** Groups in order of preference, those with a healthy URL first; one URL from each. */
  #plan(): Target[] {
    const now = Date.now();
    const healthy: Target[] = [];
    const down: Target[] = [];
    for (const group of this.#options.groups) {
      const start = this.#cursor.get(group) ?? 0;
      this.#cursor.set(group, (start + 1) % group.urls.length);
      let pick: URL | undefined;
      for (let i = 0; i < group.urls.length && pick === undefined; i++) {
        const url = group.urls[(start + i) % group.urls.length]!;
        if ((this.#downUntil.get(url) ?? 0) <= now) pick = url;
      }
      if (pick !== undefined) healthy.push({ group, url: pick });
      else down.push({ group, url: group.urls[start % group.urls.length]! });
    }
    return [...healthy, ...down];
  }

  #round<T>(
    request: EndpointRequest,
    parse: (status: number, body: unknown) => T,
    deadline: number,
    failures: FailedAttempt[],
  ): Promise<Outcome<T> | undefined> {
    const plan = this.#plan();
    const hedgeAfterMs = request.hedge ? this.#options.hedgeAfterMs : undefined;
    return new Promise((resolve) => {
      const running = new Set<Attempt>();
      let next = 0;
      let settled = false;
      let hedgeTimer: NodeJS.Timeout | undefined;
      const settle = (result: Outcome<T> | undefined): void => {
        settled = true;
        clearTimeout(hedgeTimer);
        for (const attempt of running) {
          this.#inFlight.delete(attempt);
          attempt.cancel();
        }
        running.clear();
        resolve(result);
      };
      const launch = (why: 'first' | 'failover' | 'hedge'): boolean => {
        const target = plan[next];
        const remaining = deadline - Date.now();
        if (target === undefined || remaining <= 0 || this.#closed) return false;
        next++;
        if (why !== 'first') this.#counters.inc(why === 'hedge' ? 'hedges' : 'failovers');
        this.#counters.inc('requests');
        const attempt = this.#http.send({
          base: target.url,
          method: request.method,
          path: request.path,
          headers: this.#headers(request),
          body: request.body,
          timeoutMs: Math.min(this.#options.timeoutMs, remaining),
        });
        running.add(attempt);
        this.#inFlight.add(attempt);
        attempt.reply.then(
          (reply) => finished(attempt, target, this.#verdict(reply, parse)),
          (error: unknown) =>
            finished(attempt, target, {
              kind: 'failed',
              reason: error instanceof AttemptError ? error.reason : 'REQUEST_ERROR',
            }),
        );
        if (hedgeAfterMs !== undefined) {
          clearTimeout(hedgeTimer);
          hedgeTimer = setTimeout(() => {
            if (!settled) launch('hedge');
          }, hedgeAfterMs);
        }
        return true;
      };
      const finished = (attempt: Attempt, target: Target, verdict: Verdict<T>): void => {
        running.delete(attempt);
        this.#inFlight.delete(attempt);
        if (settled) return;
        if (verdict.kind === 'done') {
          this.#downUntil.delete(target.url);
          settle(verdict.outcome);
          return;
        }
        failures.push({ group: target.group.name, url: target.url.href, reason: verdict.reason });
        if (verdict.reason !== 'CANCELLED') this.#downUntil.set(target.url, Date.now() + this.#options.downMs);
        if (!launch('failover') && running.size === 0) settle(undefined);
      };
      if (!launch('first')) {
        failures.push({ group: '-', url: '-', reason: this.#closed ? 'CLOSED' : 'DEADLINE' });
        settle(undefined);
      }
    });
  }

  #headers(request: EndpointRequest): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#authorization !== undefined) headers['authorization'] = this.#authorization;
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    // The caller's active trace, as traceparent/tracestate, when its process has an OpenTelemetry
    // propagator installed; without one this adds nothing.
    propagation.inject(context.active(), headers);
    return headers;
  }

  #verdict<T>(reply: HttpReply, parse: (status: number, body: unknown) => T): Verdict<T> {
    const { status, body } = reply;
    if (status >= 200 && status < 300) {
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
        return { kind: 'done', outcome: { ok: true, value: parse(status, json) } };
      } catch {
        return { kind: 'failed', reason: `HTTP_${status} BAD_RESPONSE` };
      }
    }
    const error = errorBody(body);
    if (status >= 400 && status < 500 && status !== 429 && error !== undefined && !ENDPOINT_CODES.has(error.code)) {
      return { kind: 'done', outcome: { ok: false, refusal: { status, ...error } } };
    }
    return { kind: 'failed', reason: `HTTP_${status}${error === undefined ? '' : ` ${error.code}`}` };
  }

  /** Stops sending; attempts in flight are cancelled and their calls fail with Unavailable. */
  close(): void {
    this.#closed = true;
    for (const attempt of this.#inFlight) attempt.cancel();
    this.#inFlight.clear();
  }
}
