import type { Agent } from 'node:http';
import { call, CallError, type HttpReply, type Target } from './http.js';
import { now, type Operation, type OpResult, type Outcome } from './load.js';
import { fetchJwks, LifecycleLedger } from './lifecycle.js';
import { servedKeys, type KeyOracle, type KeysJson } from './oracle.js';

/*
 * The key workload over raw HTTP: lookups of users known to exist, batch
 * lookups, signups, account deletions, and probes of deleted users. Every
 * answer is judged against the oracle: a key that differs from the first one
 * seen is wrong; a key served after a shred's acknowledgement plus
 * maxStaleness is stale; anything else that is not the expected answer failed.
 */

export interface Mix {
  readonly read: number;
  readonly batch: number;
  readonly create: number;
  readonly shred: number;
  readonly probe: number;
  /** Legal holds placed on keychains this workload created, and shreds of held keychains (must be refused). */
  readonly hold?: number;
  /** Shreds scheduled a few seconds ahead (some on held keychains, which must wait). */
  readonly schedule?: number;
}

export const READ_ONLY: Mix = { read: 1, batch: 0, create: 0, shred: 0, probe: 0 };
/** Read-dominated, as Padlock's traffic is; writes are far above the real < 0.1 % so that faults meet some. */
export const MIXED: Mix = {
  read: 0.925,
  batch: 0.04,
  create: 0.015,
  shred: 0.005,
  probe: 0.01,
  hold: 0.002,
  schedule: 0.003,
};

/** How far ahead a scheduled shred falls due: between these, so most fall due while the load runs. */
export const SCHEDULE_AHEAD_MS: readonly [number, number] = [2000, 8000];

export interface WorkloadOptions {
  /** Where each operation goes (called once per operation). */
  readonly target: () => Target;
  readonly credential: string;
  readonly agent: Agent;
  readonly mix: Mix;
  readonly batchSize: number;
  readonly timeoutMs: number;
  readonly maxStalenessMs: number;
  /** Prefix of the user ids this workload signs up. */
  readonly userPrefix: string;
  readonly oracle: KeyOracle;
  /** Receives the text of every error body (for the leak scan). */
  readonly onErrorBody?: (text: string) => void;
}

/** The label of a reply: its status, and the error code when there is one. */
export function replyLabel(reply: HttpReply): string {
  if (reply.status < 400) return String(reply.status);
  try {
    const code = (JSON.parse(reply.body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? `${reply.status} ${code}` : String(reply.status);
  } catch {
    return String(reply.status);
  }
}

/** The worst outcome of a batch is the batch's outcome. */
const SEVERITY: Record<Outcome, number> = { ok: 0, failed: 1, stale: 2, wrong: 3 };

function failure(error: unknown): OpResult {
  if (error instanceof CallError) return { label: error.label, outcome: 'failed', answered: false };
  return { label: 'EXCEPTION', outcome: 'failed', answered: false, detail: String(error) };
}

/** A set with O(1) random pick and removal. */
export class Pool {
  readonly #items: string[] = [];
  readonly #index = new Map<string, number>();

  constructor(items: readonly string[] = []) {
    for (const item of items) this.add(item);
  }

  get size(): number {
    return this.#items.length;
  }

  add(item: string): void {
    if (this.#index.has(item)) return;
    this.#index.set(item, this.#items.length);
    this.#items.push(item);
  }

  delete(item: string): void {
    const i = this.#index.get(item);
    if (i === undefined) return;
    const last = this.#items.pop()!;
    this.#index.delete(item);
    if (last !== item) {
      this.#items[i] = last;
      this.#index.set(last, i);
    }
  }

  has(item: string): boolean {
    return this.#index.has(item);
  }

  pick(): string | undefined {
    if (this.#items.length === 0) return undefined;
    return this.#items[Math.floor(Math.random() * this.#items.length)];
  }

  values(): readonly string[] {
    return this.#items;
  }
}

export class KeyWorkload {
  /** Users that exist and are not being shredded: lookups must find them. */
  readonly readable: Pool;
  /** Users this workload created (acknowledged) and may shred. */
  readonly shreddable = new Pool();
  /** Users whose shred was acknowledged, with when. */
  readonly shredded: { userId: string; ackAt: number }[] = [];
  /** Keys served after a shred was acknowledged, but within maxStaleness (allowed). */
  servedAfterAck = 0;
  /** Keys served to requests sent later than a shred's acknowledgement plus maxStaleness (a violation). */
  servedBeyondBound = 0;
  readonly problems: string[] = [];
  /** Holds, schedules and receipts, for the lifecycle checks after the scenario (lifecycle.ts). */
  readonly ledger = new LifecycleLedger();
  /** Keychains under an acknowledged hold. */
  readonly #heldPool = new Pool();
  #created = 0;
  readonly #headers: Record<string, string>;

  constructor(
    private readonly options: WorkloadOptions,
    baseUsers: readonly string[],
  ) {
    this.readable = new Pool(baseUsers);
    this.#headers = { authorization: `Bearer ${options.credential}` };
  }

  get created(): number {
    return this.#created;
  }

  next(): Operation {
    const m = this.options.mix;
    const hold = m.hold ?? 0;
    const schedule = m.schedule ?? 0;
    let x = Math.random() * (m.read + m.batch + m.create + m.shred + m.probe + hold + schedule);
    if ((x -= m.create) < 0) return this.create();
    if ((x -= m.shred) < 0 && this.shreddable.size > 0) return this.shred();
    if ((x -= hold) < 0) {
      // Half the time a new hold, half a shred of a held keychain (which must be refused).
      if (this.#heldPool.size > 0 && Math.random() < 0.5) return this.shredHeld();
      if (this.shreddable.size > 0) return this.placeHold();
    }
    if ((x -= schedule) < 0 && this.shreddable.size > 0) return this.scheduleShred();
    if ((x -= m.probe) < 0 && this.shredded.length > 0) return this.probe();
    if ((x -= m.batch) < 0) return this.batch();
    return this.read();
  }

  read(userId = this.readable.pick()): Operation {
    return {
      kind: 'read',
      run: async () => {
        if (userId === undefined) return { label: 'NO_USER', outcome: 'failed', answered: false };
        const sentAt = now();
        try {
          const reply = await this.#call('GET', `/v1/keys/${encodeURIComponent(userId)}`);
          return this.#judgeOne(userId, reply, sentAt);
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  batch(): Operation {
    const ids: string[] = [];
    for (let i = 0; i < this.options.batchSize; i++) {
      const id = this.readable.pick();
      if (id !== undefined) ids.push(id);
    }
    return {
      kind: 'batch',
      run: async () => {
        const sentAt = now();
        try {
          const reply = await this.#call('POST', '/v1/keys/batch-get', { userIds: ids });
          const label = replyLabel(reply);
          if (reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const results = (JSON.parse(reply.body.toString('utf8')) as { results?: unknown }).results;
          if (!Array.isArray(results) || results.length !== ids.length) {
            return { label: `${label} MALFORMED`, outcome: 'failed', answered: true };
          }
          let outcome: Outcome = 'ok';
          results.forEach((result: KeysJson, i) => {
            const verdict = this.#judgeResult(ids[i]!, result, sentAt);
            if (SEVERITY[verdict] > SEVERITY[outcome]) outcome = verdict;
          });
          return { label, outcome, answered: true };
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  create(userId = `${this.options.userPrefix}${this.#created++}`): Operation {
    const state = this.options.oracle.state(userId);
    state.uncertain = true;
    return {
      kind: 'create',
      run: async () => {
        try {
          const reply = await this.#call('POST', '/v1/keychains', { userId });
          const label = replyLabel(reply);
          if (reply.status !== 201 && reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const body = JSON.parse(reply.body.toString('utf8')) as KeysJson;
          const keys = servedKeys(body);
          let outcome: Outcome = 'ok';
          for (const key of keys) if (!this.options.oracle.check(userId, key)) outcome = 'wrong';
          if (keys.length === 0) outcome = 'failed';
          state.created = true;
          state.uncertain = false;
          this.readable.add(userId);
          this.shreddable.add(userId);
          return { label, outcome, answered: true };
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  shred(userId = this.shreddable.pick()): Operation {
    if (userId !== undefined) {
      this.shreddable.delete(userId);
      this.readable.delete(userId);
      this.options.oracle.state(userId).shredSentAt = now();
    }
    return {
      kind: 'shred',
      run: async () => {
        if (userId === undefined) return { label: 'NO_USER', outcome: 'failed', answered: false };
        try {
          const reply = await this.#call('DELETE', `/v1/keychains/${encodeURIComponent(userId)}`);
          const label = replyLabel(reply);
          if (reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const ackAt = now();
          this.options.oracle.state(userId).shredAckAt = ackAt;
          this.shredded.push({ userId, ackAt });
          const jws = (JSON.parse(reply.body.toString('utf8')) as { receipt?: { jws?: unknown } }).receipt?.jws;
          if (typeof jws !== 'string') return { label: `${label} NO_RECEIPT`, outcome: 'failed', answered: true };
          this.ledger.receipts.push(jws);
          if (this.ledger.jwks === undefined) void this.#fetchJwks();
          return { label, outcome: 'ok', answered: true };
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  /** Places a legal hold on a keychain this workload created; it is never shredded after. */
  placeHold(userId = this.shreddable.pick()): Operation {
    if (userId !== undefined) this.shreddable.delete(userId);
    return {
      kind: 'hold',
      run: async () => {
        if (userId === undefined) return { label: 'NO_USER', outcome: 'failed', answered: false };
        try {
          const reply = await this.#call('POST', `/v1/keychains/${encodeURIComponent(userId)}/holds`, {
            reason: 'dirt: litigation',
          });
          const label = replyLabel(reply);
          if (reply.status !== 201) return { label, outcome: 'failed', answered: true };
          this.ledger.held.add(userId);
          this.#heldPool.add(userId);
          return { label, outcome: 'ok', answered: true };
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  /** Sends a shred of a held keychain: 409 LEGAL_HOLD is the right answer, 200 a held key shredded. */
  shredHeld(userId = this.#heldPool.pick()): Operation {
    return {
      kind: 'held-shred',
      run: async () => {
        if (userId === undefined) return { label: 'NO_USER', outcome: 'failed', answered: false };
        try {
          const reply = await this.#call('DELETE', `/v1/keychains/${encodeURIComponent(userId)}`);
          const label = replyLabel(reply);
          if (reply.status === 409 && label.endsWith('LEGAL_HOLD')) {
            this.ledger.heldShredsRefused++;
            return { label, outcome: 'ok', answered: true };
          }
          if (reply.status === 200) {
            this.ledger.heldShredsAcked++;
            this.#problem(`${userId}: a shred of a held keychain was acknowledged`);
          }
          return { label, outcome: 'failed', answered: true };
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  /**
   * Schedules the shred of a keychain a few seconds ahead (keys served meanwhile); one time in five on a
   * held keychain, where it must wait. The user leaves the lookup pools: after its time it is shredded.
   */
  scheduleShred(aheadMs?: number, onHeld = this.#heldPool.size > 0 && Math.random() < 0.2): Operation {
    const userId = onHeld ? this.#heldPool.pick() : this.shreddable.pick();
    if (userId !== undefined && !onHeld) {
      this.shreddable.delete(userId);
      this.readable.delete(userId);
      this.options.oracle.state(userId).shredSentAt = now();
    }
    const [low, high] = SCHEDULE_AHEAD_MS;
    return {
      kind: 'schedule',
      run: async () => {
        if (userId === undefined) return { label: 'NO_USER', outcome: 'failed', answered: false };
        const executeAt = Date.now() + (aheadMs ?? low + Math.random() * (high - low));
        try {
          const reply = await this.#call('POST', `/v1/keychains/${encodeURIComponent(userId)}/schedules`, {
            executeAt: new Date(executeAt).toISOString(),
            serveDuringGrace: true,
          });
          const label = replyLabel(reply);
          if (reply.status !== 201) return { label, outcome: 'failed', answered: true };
          const scheduleId = (JSON.parse(reply.body.toString('utf8')) as { scheduleId?: unknown }).scheduleId;
          if (typeof scheduleId !== 'string') return { label: `${label} MALFORMED`, outcome: 'failed', answered: true };
          this.ledger.schedules.push({ scheduleId, userId, executeAt, held: onHeld });
          return { label, outcome: 'ok', answered: true };
        } catch (error) {
          return failure(error);
        }
      },
    };
  }

  async #fetchJwks(): Promise<void> {
    this.ledger.jwks ??= await fetchJwks([this.options.target()]);
  }

  probe(): Operation {
    const { userId } = this.shredded[Math.floor(Math.random() * this.shredded.length)]!;
    return this.read(userId);
  }

  async #call(method: string, path: string, json?: unknown): Promise<HttpReply> {
    const headers = json === undefined ? this.#headers : { ...this.#headers, 'content-type': 'application/json' };
    const reply = await call(this.options.target(), {
      method,
      path,
      headers,
      agent: this.options.agent,
      timeoutMs: this.options.timeoutMs,
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    if (reply.status >= 400 && this.options.onErrorBody !== undefined) {
      this.options.onErrorBody(reply.body.toString('utf8'));
    }
    return reply;
  }

  #judgeOne(userId: string, reply: HttpReply, sentAt: number): OpResult {
    const label = replyLabel(reply);
    if (reply.status === 200) {
      const body = JSON.parse(reply.body.toString('utf8')) as KeysJson;
      return { label, outcome: this.#judgeResult(userId, body, sentAt), answered: true };
    }
    if (reply.status === 410) {
      const state = this.options.oracle.state(userId);
      const expected = state.shredSentAt !== undefined;
      if (!expected) this.#problem(`${userId}: 410 although no shred was sent`);
      return { label, outcome: expected ? 'ok' : 'failed', answered: true };
    }
    return { label, outcome: 'failed', answered: true };
  }

  /** Judges one user's result (from a lookup or a batch). */
  #judgeResult(userId: string, result: KeysJson, sentAt: number): Outcome {
    const state = this.options.oracle.state(userId);
    if (result.status === 'shredded') {
      if (state.shredSentAt !== undefined) return 'ok';
      this.#problem(`${userId}: shredded although no shred was sent`);
      return 'failed';
    }
    if (result.status !== 'ok') {
      this.#problem(`${userId}: status ${String(result.status)}`);
      return 'failed';
    }
    let outcome: Outcome = 'ok';
    const keys = servedKeys(result);
    if (keys.length === 0) return 'failed';
    for (const key of keys) if (!this.options.oracle.check(userId, key)) outcome = 'wrong';
    if (outcome === 'ok' && state.shredAckAt !== undefined) {
      if (sentAt > state.shredAckAt + this.options.maxStalenessMs + 500) {
        this.servedBeyondBound++;
        this.#problem(
          `${userId}: keys served ${Math.round(sentAt - state.shredAckAt)} ms after the shred was acknowledged`,
        );
        return 'stale';
      }
      this.servedAfterAck++;
    }
    return outcome;
  }

  #problem(text: string): void {
    if (this.problems.length < 20) this.problems.push(text);
  }
}
