import { join } from 'node:path';
import { captureCommand } from '../lib/children.js';
import { call, CallError, type HttpReply, type Target } from '../lib/http.js';
import { now, OpenLoopLoad, summarizeRecords, writeRecords, type Operation, type OpResult } from '../lib/load.js';
import { KeyOracle, servedKeys, type KeysJson } from '../lib/oracle.js';
import { CATEGORIES, CLI } from '../lib/padlock.js';
import { invariant, figure, sleep, sumTotals, type Context, type Scenario } from '../lib/scenario.js';
import { replyLabel } from '../lib/workload.js';
import { ALL_RIGHTS, padlock, signUp, userIds } from './common.js';

/*
 * A backup restored under load (DESIGN.md section 11): lookups and shreds run
 * against Padlock on SQLite; `padlock backup create` copies the store online;
 * the shreds go on; then Padlock is stopped, `padlock backup restore` puts the
 * backup back (replaying the shred journal into it) and Padlock starts again
 * while the load keeps coming. Every key served after its shred was
 * acknowledged counts, during the load and in a lookup of every shredded user
 * at the end: the invariant is 0. The restore's own count of key versions it
 * shredded again is the positive control: the backup did hold keys shredded
 * after it, which a restore without the journal would have served.
 */

class RestoreWorkload {
  /** user -> category -> when its shred was acknowledged (ms, load clock). */
  readonly acked = new Map<string, Map<string, number>>();
  servedAfterShred = 0;
  readonly examples: string[] = [];
  readonly #headers: Record<string, string>;

  constructor(
    private readonly target: Target,
    credential: string,
    private readonly users: readonly string[],
    private readonly oracle: KeyOracle,
  ) {
    this.#headers = { authorization: `Bearer ${credential}`, 'content-type': 'application/json' };
  }

  #pick(): string {
    return this.users[Math.floor(Math.random() * this.users.length)]!;
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
    if (x < 0.08) return this.shred(this.#pick(), undefined);
    if (x < 0.16) return this.shred(this.#pick(), CATEGORIES[Math.floor(Math.random() * CATEGORIES.length)]);
    if (x < 0.26) return this.batch([this.#pick(), this.#pick(), this.#pick(), this.#pick()]);
    return this.read(this.#pick());
  }

  /** Counts served keys whose shred was acknowledged before `sentAt`. */
  judge(userId: string, body: KeysJson, sentAt: number): boolean {
    let ok = true;
    for (const key of servedKeys(body)) {
      if (!this.oracle.check(userId, key)) ok = false;
      const ackedAt = this.acked.get(userId)?.get(key.category);
      if (ackedAt !== undefined && ackedAt < sentAt) {
        this.servedAfterShred++;
        if (this.examples.length < 10)
          this.examples.push(`${userId}/${key.category} v${key.version} served after its shred`);
        ok = false;
      }
    }
    return ok;
  }

  shred(userId: string, category: string | undefined): Operation {
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
          let shredded = this.acked.get(userId);
          if (shredded === undefined) this.acked.set(userId, (shredded = new Map<string, number>()));
          for (const c of category === undefined ? CATEGORIES : [category]) if (!shredded.has(c)) shredded.set(c, at);
          return { label, outcome: 'ok', answered: true };
        } catch (error) {
          return { label: error instanceof CallError ? error.label : 'EXCEPTION', outcome: 'failed', answered: false };
        }
      },
    };
  }

  read(userId: string): Operation {
    return {
      kind: 'read',
      run: async (): Promise<OpResult> => {
        const sentAt = now();
        try {
          const reply = await this.#call('GET', `/v1/keys/${encodeURIComponent(userId)}`);
          const label = replyLabel(reply);
          if (reply.status === 410) return { label, outcome: 'ok', answered: true };
          if (reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const ok = this.judge(userId, JSON.parse(reply.body.toString('utf8')) as KeysJson, sentAt);
          return { label, outcome: ok ? 'ok' : 'stale', answered: true };
        } catch (error) {
          return { label: error instanceof CallError ? error.label : 'EXCEPTION', outcome: 'failed', answered: false };
        }
      },
    };
  }

  batch(ids: readonly string[]): Operation {
    return {
      kind: 'batch',
      run: async (): Promise<OpResult> => {
        const sentAt = now();
        try {
          const reply = await this.#call('POST', '/v1/keys/batch-get', { userIds: ids });
          const label = replyLabel(reply);
          if (reply.status !== 200) return { label, outcome: 'failed', answered: true };
          const { results } = JSON.parse(reply.body.toString('utf8')) as { results: (KeysJson & { userId: string })[] };
          let ok = true;
          for (const result of results) if (!this.judge(result.userId, result, sentAt)) ok = false;
          return { label, outcome: ok ? 'ok' : 'stale', answered: true };
        } catch (error) {
          return { label: error instanceof CallError ? error.label : 'EXCEPTION', outcome: 'failed', answered: false };
        }
      },
    };
  }
}

export const restoreUnderLoad: Scenario = {
  name: 'restore-under-load',
  title:
    'SQLite backup taken online, shreds go on, the backup is restored (journal replayed) while the load keeps coming',
  infra: 'none',
  ci: true,
  async run(ctx: Context) {
    const process = padlock(ctx, {
      name: 'padlock',
      store: { kind: 'sqlite', path: join(ctx.dir, 'padlock.db') },
      journalPath: join(ctx.dir, 'journal', 'shreds.journal'),
    });
    const credential = await process.createService('loadgen', ALL_RIGHTS);
    await process.start();
    const oracle = new KeyOracle();
    const users = userIds(`${ctx.name}-u`, ctx.ci ? 1000 : 3000);
    await signUp(process.target, credential, users, oracle);
    const workload = new RestoreWorkload(process.target, credential, users, oracle);
    const rate = ctx.ci ? 400 : 800;
    const seconds = { before: ctx.ci ? 3 : 5, shredding: ctx.ci ? 5 : 15, after: ctx.ci ? 5 : 15 };
    const load = new OpenLoopLoad({
      rate,
      maxOutstanding: 64,
      maxDurationMs: 120_000,
      maxOps: rate * 120,
      next: () => workload.next(),
    });
    const cli = (args: string[]): Promise<string> =>
      captureCommand(globalThis.process.execPath, [CLI, ...args, '-c', process.configFile], {
        logFile: join(ctx.dir, 'cli.log'),
        timeoutMs: 120_000,
      });

    load.start('before');
    await sleep(seconds.before * 1000);
    const backupFile = join(ctx.dir, 'backup.db');
    const backup = JSON.parse(await cli(['backup', 'create', backupFile])) as { journalPosition: number };
    ctx.log(`backup taken under load at journal position ${backup.journalPosition}`);
    load.mark('after backup');
    await sleep(seconds.shredding * 1000);
    load.mark('restore');
    const t0 = now();
    await process.stop();
    const restored = JSON.parse(await cli(['backup', 'restore', backupFile])) as {
      replayed: number;
      shreddedAgain: number;
      journalPosition: number;
    };
    await process.start();
    const downMs = Math.round(now() - t0);
    ctx.log(
      `restored: ${restored.replayed} journal entries replayed, ${restored.shreddedAgain} key versions shredded again, down ${downMs} ms`,
    );
    load.mark('after');
    await sleep(seconds.after * 1000);
    await load.stop();
    writeRecords(join(ctx.dir, 'ops.csv'), load);

    // Every user with an acknowledged shred, looked up once more after the load.
    let checked = 0;
    for (const userId of workload.acked.keys()) {
      const op = workload.read(userId);
      await op.run();
      checked++;
    }
    for (const key of oracle.seen) ctx.run.addServedKey(key);
    const phases = load.phases.map((phase, i) =>
      summarizeRecords(
        phase.name,
        load.records.filter((r) => r.phase === i),
        (load.phases[i + 1]?.at ?? now()) - phase.at,
        load.notSent[i] ?? 0,
      ),
    );
    const totals = sumTotals(phases);
    const acknowledged = [...workload.acked.values()].reduce((s, m) => s + m.size, 0);
    return {
      totals: { ...totals, wrongKeys: oracle.wrong },
      phases,
      availability: null,
      recoveryMs: downMs,
      figures: [
        invariant(
          'keys served after their shred was acknowledged (load, and a lookup of every shredded user at the end)',
          '0',
          workload.servedAfterShred,
          workload.servedAfterShred === 0,
        ),
        invariant(
          'key versions the restore shredded again (positive control: the backup held them)',
          '> 0',
          restored.shreddedAgain,
          restored.shreddedAgain > 0,
        ),
        invariant('users shown two different keys for one category and version', '0', oracle.wrong, oracle.wrong === 0),
        figure('stop, restore and start again', '< 30000 ms', downMs, downMs < 30000),
      ],
      notes: [
        `backup at journal position ${backup.journalPosition}; restore replayed ${restored.replayed} entries up to ${restored.journalPosition}`,
        `${acknowledged} category shreds acknowledged over ${workload.acked.size} users; all looked up again at the end (${checked})`,
        ...workload.examples,
        ...oracle.wrongExamples,
      ],
      details: { rate, seconds, backup, restored, downMs, acknowledged },
    };
  },
};
