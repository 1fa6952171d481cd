import { join } from 'node:path';
import { call, CallError, newAgent, type HttpReply, type Target } from '../lib/http.js';
import { now, OpenLoopLoad, summarizeRecords, writeRecords, type Operation, type OpResult } from '../lib/load.js';
import { KeyOracle, servedKeys, type KeysJson } from '../lib/oracle.js';
import { CATEGORIES } from '../lib/padlock.js';
import { invariant, sleep, sumTotals, type Context, type Scenario } from '../lib/scenario.js';
import { Pool, replyLabel } from '../lib/workload.js';
import { ALL_RIGHTS, cassandraStore, padlock } from './common.js';

/*
 * Padlock killed with kill -9 in the middle of a burst of signups and shreds
 * (whole keychains and single categories, some signups sent twice at once),
 * several times; after each restart the burst goes on. At the end Padlock is
 * restarted cleanly (empty caches) and every user the burst touched is looked
 * up: no acknowledged create or shred may be missing, and no user may ever
 * have been shown two different keys for one category and version, counting
 * the creates that were cut off and are now sent again.
 */

interface Tracked {
  createSent: boolean;
  createAcked: boolean;
  shredAllSent: boolean;
  shredAllAcked: boolean;
  readonly categoriesSent: Set<string>;
  readonly categoriesAcked: Map<string, number>;
}

class CrashWorkload {
  readonly users = new Map<string, Tracked>();
  readonly acked = new Pool();
  readonly pendingCreates = new Pool();
  violations: string[] = [];
  shredsSeenUndone = 0;
  #next = 0;
  readonly #headers: Record<string, string>;

  constructor(
    private readonly target: Target,
    credential: string,
    private readonly oracle: KeyOracle,
    private readonly prefix: string,
  ) {
    this.#headers = { authorization: `Bearer ${credential}`, 'content-type': 'application/json' };
  }

  #user(userId: string): Tracked {
    let t = this.users.get(userId);
    if (t === undefined) {
      t = {
        createSent: false,
        createAcked: false,
        shredAllSent: false,
        shredAllAcked: false,
        categoriesSent: new Set(),
        categoriesAcked: new Map(),
      };
      this.users.set(userId, t);
    }
    return t;
  }

  #call(method: string, path: string, body?: unknown): Promise<HttpReply> {
    return call(this.target, {
      method,
      path,
      headers: this.#headers,
      timeoutMs: 10000,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  next(): Operation {
    const x = Math.random();
    if (x < 0.5 || this.acked.size < 10) return this.create(`${this.prefix}${this.#next++}`);
    if (x < 0.6) return this.create(this.pendingCreates.pick() ?? this.acked.pick()!);
    if (x < 0.7) return this.shred(this.acked.pick()!, undefined);
    if (x < 0.85) return this.shred(this.acked.pick()!, CATEGORIES[Math.floor(Math.random() * CATEGORIES.length)]);
    return this.read(this.acked.pick()!);
  }

  create(userId: string): Operation {
    const t = this.#user(userId);
    t.createSent = true;
    if (!t.createAcked) this.pendingCreates.add(userId);
    return {
      kind: 'create',
      run: async (): Promise<OpResult> => {
        try {
          const reply = await this.#call('POST', '/v1/keychains', { userId });
          const label = replyLabel(reply);
          if (reply.status !== 201 && reply.status !== 200) return { label, outcome: 'failed', answered: true };
          let wrong = false;
          for (const key of servedKeys(JSON.parse(reply.body.toString('utf8')) as KeysJson)) {
            if (!this.oracle.check(userId, key)) wrong = true;
          }
          t.createAcked = true;
          this.pendingCreates.delete(userId);
          this.acked.add(userId);
          return { label, outcome: wrong ? 'wrong' : 'ok', answered: true };
        } catch (error) {
          return { label: error instanceof CallError ? error.label : 'EXCEPTION', outcome: 'failed', answered: false };
        }
      },
    };
  }

  shred(userId: string, category: string | undefined): Operation {
    const t = this.#user(userId);
    if (category === undefined) t.shredAllSent = true;
    else t.categoriesSent.add(category);
    const path =
      category === undefined
        ? `/v1/keychains/${encodeURIComponent(userId)}`
        : `/v1/keychains/${encodeURIComponent(userId)}/categories/${category}`;
    return {
      kind: 'shred',
      run: async (): Promise<OpResult> => {
        try {
          const reply = await this.#call('DELETE', path);
          const label = replyLabel(reply);
          if (reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const at = now();
          if (category === undefined) {
            t.shredAllAcked = true;
            for (const c of CATEGORIES) if (!t.categoriesAcked.has(c)) t.categoriesAcked.set(c, at);
          } else if (!t.categoriesAcked.has(category)) {
            t.categoriesAcked.set(category, at);
          }
          return { label, outcome: 'ok', answered: true };
        } catch (error) {
          return { label: error instanceof CallError ? error.label : 'EXCEPTION', outcome: 'failed', answered: false };
        }
      },
    };
  }

  read(userId: string): Operation {
    const t = this.#user(userId);
    return {
      kind: 'read',
      run: async (): Promise<OpResult> => {
        const sentAt = now();
        try {
          const reply = await this.#call('GET', `/v1/keys/${encodeURIComponent(userId)}`);
          const label = replyLabel(reply);
          if (reply.status === 410) return { label, outcome: 'ok', answered: true };
          if (reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const body = JSON.parse(reply.body.toString('utf8')) as KeysJson;
          let outcome: OpResult['outcome'] = 'ok';
          for (const key of servedKeys(body)) {
            if (!this.oracle.check(userId, key)) outcome = 'wrong';
            const ackedAt = t.categoriesAcked.get(key.category);
            if (ackedAt !== undefined && ackedAt < sentAt && outcome === 'ok') {
              // The group that acknowledged the shred must not serve the key again (its caches were invalidated).
              this.shredsSeenUndone++;
              outcome = 'stale';
            }
          }
          return { label, outcome, answered: true };
        } catch (error) {
          return { label: error instanceof CallError ? error.label : 'EXCEPTION', outcome: 'failed', answered: false };
        }
      },
    };
  }
}

interface Verdict {
  lostCreates: number;
  lostShreds: number;
  unexpected: number;
  recreated: number;
  checked: number;
  examples: string[];
}

/** Looks every touched user up on a freshly started process, then sends the cut-off creates again. */
async function verify(
  target: Target,
  credential: string,
  workload: CrashWorkload,
  oracle: KeyOracle,
): Promise<Verdict> {
  const verdict: Verdict = { lostCreates: 0, lostShreds: 0, unexpected: 0, recreated: 0, checked: 0, examples: [] };
  const note = (text: string): void => {
    if (verdict.examples.length < 10) verdict.examples.push(text);
  };
  const agent = newAgent(16);
  const headers = { authorization: `Bearer ${credential}`, 'content-type': 'application/json' };
  const users = [...workload.users.entries()];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < users.length) {
      const [userId, t] = users[next++]!;
      verdict.checked++;
      const reply = await call(target, {
        method: 'GET',
        path: `/v1/keys/${encodeURIComponent(userId)}`,
        headers,
        agent,
        timeoutMs: 10000,
      });
      const anyShredSent = t.shredAllSent || t.categoriesSent.size > 0;
      if (reply.status === 404) {
        if (t.createAcked) {
          verdict.lostCreates++;
          note(`${userId}: acknowledged create, no keychain after restart`);
        }
      } else if (reply.status === 410) {
        if (!t.shredAllSent && t.categoriesSent.size < CATEGORIES.length) {
          verdict.unexpected++;
          note(`${userId}: every category shredded, but not every shred was sent`);
        }
      } else if (reply.status === 200) {
        const body = JSON.parse(reply.body.toString('utf8')) as KeysJson;
        const keys = servedKeys(body);
        for (const key of keys) oracle.check(userId, key);
        const live = new Set(keys.map((k) => k.category));
        for (const category of CATEGORIES) {
          if (t.categoriesAcked.has(category) && live.has(category)) {
            verdict.lostShreds++;
            note(`${userId}/${category}: acknowledged shred, key served after restart`);
          }
          if (!live.has(category) && !t.shredAllSent && !t.categoriesSent.has(category)) {
            verdict.unexpected++;
            note(`${userId}/${category}: no key, and no shred was sent`);
          }
        }
        if (!t.createAcked && !anyShredSent) {
          // A create cut off by the kill that did reach the store: send it again, it must give the same keys.
          const again = await call(target, {
            method: 'POST',
            path: '/v1/keychains',
            headers,
            body: JSON.stringify({ userId }),
            agent,
            timeoutMs: 10000,
          });
          if (again.status === 200 || again.status === 201) {
            verdict.recreated++;
            for (const key of servedKeys(JSON.parse(again.body.toString('utf8')) as KeysJson))
              oracle.check(userId, key);
          }
        }
      } else {
        verdict.unexpected++;
        note(`${userId}: ${replyLabel(reply)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, () => worker()));
  agent.destroy();
  return verdict;
}

function crashScenario(store: 'sqlite' | 'cassandra'): Scenario {
  return {
    name: `crash-${store}`,
    title:
      store === 'sqlite'
        ? 'Padlock (SQLite store) killed with kill -9 during bursts of signups and shreds, restarted, several times'
        : 'Padlock (Cassandra store) killed with kill -9 during bursts of signups and shreds, restarted, several times',
    infra: store === 'sqlite' ? 'none' : 'rf3',
    ci: store === 'sqlite',
    async run(ctx: Context) {
      const process = padlock(ctx, {
        name: 'padlock',
        store: store === 'sqlite' ? { kind: 'sqlite', path: join(ctx.dir, 'padlock.db') } : cassandraStore(ctx),
      });
      const credential = await process.createService('loadgen', ALL_RIGHTS);
      await process.start();
      const oracle = new KeyOracle();
      const workload = new CrashWorkload(process.target, credential, oracle, `${ctx.name}-u`);
      // More than Padlock can take: requests are in flight at every kill.
      const rate = store === 'sqlite' ? 1500 : 300;
      const rounds = ctx.ci ? 2 : 4;
      const load = new OpenLoopLoad({
        rate,
        maxOutstanding: 64,
        maxDurationMs: (rounds * 20 + 30) * 1000,
        maxOps: rate * (rounds * 20 + 30),
        next: () => workload.next(),
      });
      const restarts: number[] = [];
      load.start('before');
      for (let round = 0; round < rounds; round++) {
        await sleep(2000 + Math.random() * 3000);
        load.mark('during');
        ctx.log(`kill -9 with ${load.outstanding} requests outstanding`);
        await process.kill9();
        const t0 = now();
        await process.start();
        restarts.push(Math.round(now() - t0));
        load.mark('after');
      }
      await sleep(3000);
      await load.stop();
      writeRecords(join(ctx.dir, 'ops.csv'), load);
      // A clean restart: nothing cached, every answer from the store.
      await process.stop();
      await process.start();
      const verdict = await verify(process.target, credential, workload, oracle);
      for (const key of oracle.seen) ctx.run.addServedKey(key);
      const merged = (name: string) => {
        const indexes = load.phases.map((p, i) => (p.name === name ? i : -1)).filter((i) => i >= 0);
        const duration = indexes.reduce((s, i) => s + ((load.phases[i + 1]?.at ?? now()) - load.phases[i]!.at), 0);
        return summarizeRecords(
          name,
          load.records.filter((r) => indexes.includes(r.phase)),
          duration,
          indexes.reduce((s, i) => s + (load.notSent[i] ?? 0), 0),
        );
      };
      const phases = [merged('before'), merged('during'), merged('after')];
      const totals = sumTotals(phases);
      const acknowledgedCreates = [...workload.users.values()].filter((t) => t.createAcked).length;
      const acknowledgedShreds = [...workload.users.values()].reduce((s, t) => s + t.categoriesAcked.size, 0);
      return {
        totals: { ...totals, wrongKeys: oracle.wrong },
        phases,
        availability: null,
        recoveryMs: restarts.length === 0 ? null : Math.max(...restarts),
        figures: [
          invariant(
            'acknowledged creates lost',
            `0 of ${acknowledgedCreates}`,
            verdict.lostCreates,
            verdict.lostCreates === 0,
          ),
          invariant(
            'acknowledged shreds lost (category keys served again)',
            `0 of ${acknowledgedShreds}`,
            verdict.lostShreds,
            verdict.lostShreds === 0,
          ),
          invariant(
            'users shown two different keys for one category and version',
            '0',
            oracle.wrong,
            oracle.wrong === 0,
          ),
          invariant(
            'keys served after their shred was acknowledged (same process)',
            '0',
            workload.shredsSeenUndone,
            workload.shredsSeenUndone === 0,
          ),
          invariant('states no request explains', '0', verdict.unexpected, verdict.unexpected === 0),
        ],
        notes: [
          `${rounds} kill -9 rounds; restarts took ${restarts.join(', ')} ms (recovery = the slowest)`,
          `verified ${verdict.checked} users after a clean restart; ${verdict.recreated} creates that were cut off had reached the store and were sent again, with the same keys`,
          ...verdict.examples,
          ...oracle.wrongExamples,
        ],
        details: { rate, rounds, restartsMs: restarts, verdict, acknowledgedCreates, acknowledgedShreds },
      };
    },
  };
}

export const crashSqlite = crashScenario('sqlite');
export const crashCassandra = crashScenario('cassandra');
