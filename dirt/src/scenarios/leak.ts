import Database from 'better-sqlite3';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '../lib/http.js';
import { SecretIndex, type SecretHit } from '../lib/leaks.js';
import { KeyOracle } from '../lib/oracle.js';
import { invariant, sleep, sumTotals, type Context, type Scenario } from '../lib/scenario.js';
import { replyLabel } from '../lib/workload.js';
import { ALL_RIGHTS, memcachedServers, padlock, signUp, userIds, warm } from './common.js';

/*
 * The leak scan, last in a run. Its own Padlock (SQLite store, memcached,
 * request logging on) signs users up, serves their keys, answers some bad
 * requests about them, then shreds half of them (whole keychains, or one
 * category). Then everything is searched for key material in raw, hex and
 * base64 forms:
 *   - every Padlock log of the whole run, and every error body any scenario
 *     received: for every derived key any scenario was served, and for the
 *     wrapped root keys of the shredded rows;
 *   - memcached's contents: no derived key, and nothing of a shredded row;
 *   - the SQLite file, its WAL and shared-memory file (the store checkpoints
 *     the WAL after each shred): no derived key, and no shredded wrapped key.
 */

const USERS = 200;

interface Row {
  user_id: string;
  category: string;
  version: number;
  wrapped: Buffer | null;
}

function describe(hits: readonly SecretHit[], where: string): string[] {
  return hits.slice(0, 5).map((h) => `${where}: ${h.secret} as ${h.form} at byte ${h.at}`);
}

export const leakScan: Scenario = {
  name: 'leak-scan',
  title: 'logs, error bodies, memcached and the SQLite file (WAL checkpointed) searched for key bytes after shreds',
  infra: 'none',
  ci: true,
  async run(ctx: Context) {
    const [cache] = await memcachedServers(ctx, 1);
    const dbPath = join(ctx.dir, 'padlock.db');
    const process = padlock(ctx, {
      name: 'padlock',
      store: { kind: 'sqlite', path: dbPath },
      memcached: { servers: [cache!.address], keyPrefix: 'padlock:' },
      logRequests: true,
    });
    const credential = await process.createService('admin', ALL_RIGHTS);
    await process.start();
    const oracle = new KeyOracle();
    const users = userIds(`${ctx.name}-u`, USERS);
    await signUp(process.target, credential, users, oracle, 8);
    await warm(process.target, credential, users);
    const headers = { authorization: `Bearer ${credential}`, 'content-type': 'application/json' };
    const ask = async (method: string, path: string, body?: unknown): Promise<string> => {
      const reply = await call(process.target, {
        method,
        path,
        headers,
        timeoutMs: 10000,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (reply.status >= 400) ctx.run.addErrorBody(reply.body.toString('utf8'));
      return replyLabel(reply);
    };
    // Bad requests that name the users, so that error bodies and logs have every chance to carry something.
    for (const user of users.slice(0, 50)) {
      await ask('GET', `/v1/keys/${user}?categories=nope`);
      await ask('POST', '/v1/keys/batch-get', { userIds: [user, `${user} bad`] });
      await ask('POST', '/v1/keychains/x', { userId: user });
    }
    // The wrapped root keys as stored, read before the shreds (the connection is closed before them,
    // so that it holds no snapshot that would keep the WAL from being checkpointed).
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    const rows = db.prepare<[], Row>('SELECT user_id, category, version, wrapped FROM root_keys').all();
    db.close();
    const whole = users.slice(0, USERS / 4);
    const oneCategory = users.slice(USERS / 4, USERS / 2);
    const statuses: Record<string, number> = {};
    const count = (label: string): void => {
      statuses[label] = (statuses[label] ?? 0) + 1;
    };
    for (const user of whole) count(await ask('DELETE', `/v1/keychains/${user}`));
    for (const user of oneCategory) count(await ask('DELETE', `/v1/keychains/${user}/categories/advertising`));
    // Reads after the shreds: answered 410 or without the category, and logged.
    for (const user of [...whole, ...oneCategory]) count(await ask('GET', `/v1/keys/${user}`));
    await sleep(500);

    const shredded = new SecretIndex();
    const wholeSet = new Set(whole);
    const oneSet = new Set(oneCategory);
    const isShredded = (user: string, category: string): boolean =>
      wholeSet.has(user) || (oneSet.has(user) && category === 'advertising');
    for (const row of rows) {
      if (row.wrapped !== null && isShredded(row.user_id, row.category)) {
        shredded.add(`wrapped root key ${row.user_id}/${row.category}/${row.version}`, row.wrapped);
      }
    }
    for (const user of users) {
      for (const [id, key] of oracle.keysOf(user)) {
        const [category] = id.split('/') as [string];
        if (isShredded(user, category)) {
          shredded.add(`derived key ${user}/${id}`, Buffer.from(key, 'base64url'));
          ctx.run.addShreddedKey(key);
        }
      }
    }
    for (const key of oracle.seen) ctx.run.addServedKey(key);
    // Every derived key any scenario of the run was served, and the shredded secrets above.
    const everyKey = new SecretIndex();
    for (const key of ctx.run.servedKeys)
      everyKey.add(`derived key ${key.slice(0, 6)}...`, Buffer.from(key, 'base64url'));
    for (const row of rows) {
      if (row.wrapped !== null && isShredded(row.user_id, row.category)) {
        everyKey.add(`wrapped root key ${row.user_id}/${row.category}/${row.version}`, row.wrapped);
      }
    }

    const logHits: SecretHit[] = [];
    let logBytes = 0;
    for (const file of ctx.run.padlockLogs) {
      if (!existsSync(file)) continue;
      const text = readFileSync(file);
      logBytes += text.length;
      logHits.push(...everyKey.scan(text));
    }
    const bodyHits: SecretHit[] = [];
    for (const body of ctx.run.errorBodies) bodyHits.push(...everyKey.scan(body));
    const dump = await cache!.dump();
    const memcachedHits: SecretHit[] = [];
    const derivedHere = new SecretIndex();
    for (const key of oracle.seen) derivedHere.add(`derived key ${key.slice(0, 6)}...`, Buffer.from(key, 'base64url'));
    const shreddedEntries = [...dump.keys()].filter((k) => wholeSet.has(k.replace(/^padlock:/, '')));
    for (const [key, value] of dump) {
      memcachedHits.push(...shredded.scan(value), ...derivedHere.scan(value), ...shredded.scan(key));
    }
    const files = [dbPath, `${dbPath}-wal`, `${dbPath}-shm`].filter((f) => existsSync(f));
    const sqliteHits: SecretHit[] = [];
    const sizes: Record<string, number> = {};
    for (const file of files) {
      const bytes = readFileSync(file);
      sizes[file.slice(ctx.dir.length + 1)] = bytes.length;
      sqliteHits.push(...shredded.scan(bytes), ...derivedHere.scan(bytes));
    }
    // A positive control: the live (not shredded) wrapped keys must be found in the file, or the scan sees nothing.
    const live = new SecretIndex();
    for (const row of rows)
      if (row.wrapped !== null && !isShredded(row.user_id, row.category)) live.add('live', row.wrapped);
    const liveFound = files.reduce((s, f) => s + live.scan(readFileSync(f), 1_000_000).length, 0);

    return {
      totals: { ...sumTotals([]), sent: USERS, answered: USERS, byStatus: statuses },
      phases: [],
      availability: null,
      recoveryMs: null,
      figures: [
        invariant(
          'key bytes in Padlock logs (every scenario of the run)',
          '0',
          `${logHits.length} in ${ctx.run.padlockLogs.size} logs, ${Math.round(logBytes / 1024)} KiB`,
          logHits.length === 0,
        ),
        invariant(
          'key bytes in error bodies (every scenario of the run)',
          '0',
          `${bodyHits.length} in ${ctx.run.errorBodies.size} distinct bodies`,
          bodyHits.length === 0,
        ),
        invariant(
          'derived keys, or key bytes of shredded rows, in memcached',
          '0',
          `${memcachedHits.length} in ${dump.size} values (${shreddedEntries.length} of them entries of shredded keychains, refilled by the lookups after the shreds)`,
          memcachedHits.length === 0,
        ),
        invariant(
          'derived keys or shredded wrapped keys in the SQLite file, WAL and shm',
          '0',
          `${sqliteHits.length} (${JSON.stringify(sizes)})`,
          sqliteHits.length === 0,
        ),
        invariant('positive control: live wrapped keys found in the SQLite file', '> 0', liveFound, liveFound > 0),
      ],
      notes: [
        `${whole.length} keychains shredded whole, ${oneCategory.length} opted out of advertising: ${JSON.stringify(statuses)}`,
        `searched for ${everyKey.secrets} secrets (every derived key served in the run, and the shredded wrapped keys) in raw, hex, HEX, base64 and base64url forms`,
        ...describe(logHits, 'log'),
        ...describe(bodyHits, 'error body'),
        ...describe(memcachedHits, 'memcached'),
        ...describe(sqliteHits, 'sqlite'),
      ],
      details: { logs: [...ctx.run.padlockLogs].map((f) => f.slice(f.indexOf('/tmp/') + 5)), sizes },
    };
  },
};
