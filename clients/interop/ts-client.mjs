// The TypeScript SDK behind the interop and bench contract (clients/interop/README.md), so
// the driver treats the three SDKs alike. After `npm run build`, from anywhere:
//
//   node clients/interop/ts-client.mjs                      interop: JSON lines on stdin and stdout
//   node clients/interop/ts-client.mjs bench --users N --user-prefix P --category C --seconds S
import { PadlockClient, PadlockClientError } from '@padlock/client';
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { createInterface } from 'node:readline';

function clientFromEnv(cache = true) {
  const list = (name) =>
    (process.env[name] ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '');
  const urls = list('PADLOCK_INTEROP_URLS');
  if (urls.length === 0) throw new Error('PADLOCK_INTEROP_URLS is not set');
  const mirror = list('PADLOCK_INTEROP_MIRROR_URLS');
  const ca = process.env.PADLOCK_INTEROP_CA;
  const cacheMs = process.env.PADLOCK_INTEROP_CACHE_MS;
  return new PadlockClient({
    groups: [{ name: 'padlock', urls }, ...(mirror.length === 0 ? [] : [{ name: 'padlock-mirror', urls: mirror }])],
    credential: process.env.PADLOCK_INTEROP_CREDENTIAL,
    timeoutMs: 5000,
    deadlineMs: 10000,
    ...(ca === undefined ? {} : { tls: { ca: readFileSync(ca) } }),
    ...(!cache ? { cache: false } : cacheMs === undefined ? {} : { cache: { maxTtlMs: Number(cacheMs) } }),
  });
}

const b64 = (bytes) => Buffer.from(bytes).toString('base64');

function bytesOf(value) {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new PadlockClientError('INVALID_INPUT', 'data must be standard base64');
  }
  return Buffer.from(value, 'base64');
}

function failure(error) {
  if (error instanceof PadlockClientError) return { ok: false, code: error.code, message: error.message };
  return { ok: false, code: 'INVALID_INPUT', message: error instanceof Error ? error.message : String(error) };
}

async function answer(padlock, request) {
  switch (request.op) {
    case 'encrypt':
      return { ok: true, data: b64(await padlock.encrypt(request.user, request.category, bytesOf(request.data))) };
    case 'decrypt':
      return { ok: true, data: b64(await padlock.decrypt(request.user, bytesOf(request.data))) };
    case 'create':
      await padlock.createKeychain(request.user);
      return { ok: true };
    case 'shred':
      return { ok: true, receipt: (await padlock.shredKeychain(request.user)).receipt.jws };
    case 'shredCategory':
      return { ok: true, receipt: (await padlock.shredCategory(request.user, request.category)).receipt.jws };
    case 'forget':
      padlock.forget(request.user);
      return { ok: true };
    case 'bulkDecrypt': {
      if (!Array.isArray(request.records)) throw new PadlockClientError('INVALID_INPUT', 'records must be an array');
      // The SDK coalesces concurrent lookups into one batch-get per chunk of users.
      const results = await Promise.all(
        request.records.map(async (record) => {
          try {
            return { ok: true, data: b64(await padlock.decrypt(record.user, bytesOf(record.data))) };
          } catch (error) {
            return failure(error);
          }
        }),
      );
      return { ok: true, results };
    }
    default:
      throw new PadlockClientError('INVALID_INPUT', `unknown op ${JSON.stringify(request.op)}`);
  }
}

async function interop() {
  const padlock = clientFromEnv();
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    let reply;
    try {
      const request = JSON.parse(line);
      if (request === null || typeof request !== 'object') throw new Error('a request is a JSON object');
      reply = await answer(padlock, request);
    } catch (error) {
      reply = failure(error);
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
  await padlock.close();
}

function flag(args, name) {
  const at = args.indexOf(name);
  if (at < 0 || at + 1 >= args.length) throw new Error(`bench needs ${name}`);
  return args[at + 1];
}

/** Calls `once` in a loop for `seconds` (awaiting each, one at a time) and returns calls per second. */
async function rate(seconds, once) {
  const until = performance.now() + seconds * 1000;
  let calls = 0;
  const started = performance.now();
  while (performance.now() < until) {
    await once(calls);
    calls++;
  }
  return calls / ((performance.now() - started) / 1000);
}

async function bench(args) {
  const users = Number(flag(args, '--users'));
  const prefix = flag(args, '--user-prefix');
  const category = flag(args, '--category');
  const seconds = Number(flag(args, '--seconds'));
  const padlock = clientFromEnv();
  const record = Buffer.alloc(1024, 7);
  const user = `${prefix}0`;
  const sealed = await padlock.encrypt(user, category, record);
  const warmUp = Math.min(1, seconds);
  await rate(warmUp, () => padlock.encrypt(user, category, record));
  const encrypt = await rate(seconds, () => padlock.encrypt(user, category, record));
  await rate(warmUp, () => padlock.decrypt(user, sealed));
  const decrypt = await rate(seconds, () => padlock.decrypt(user, sealed));
  // Bulk: one record per user, decrypted by a client with no cache, so every round fetches
  // every user's keys (one batch-get per chunk of users).
  const records = [];
  for (let i = 0; i < users; i++) records.push(await padlock.encrypt(`${prefix}${i}`, category, record));
  const cold = clientFromEnv(false);
  const bulk = await rate(seconds, () => Promise.all(records.map((r, i) => cold.decrypt(`${prefix}${i}`, r))));
  await Promise.all([padlock.close(), cold.close()]);
  process.stdout.write(
    `${JSON.stringify({ client: 'typescript', encrypt_1k_per_s: encrypt, decrypt_1k_per_s: decrypt, bulk_users_per_s: bulk * users })}\n`,
  );
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'bench') await bench(rest);
else if (mode === undefined) await interop();
else {
  process.stderr.write('usage: ts-client.mjs [bench --users N --user-prefix P --category C --seconds S]\n');
  process.exit(2);
}
