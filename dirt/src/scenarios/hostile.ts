import fc from 'fast-check';
import { join } from 'node:path';
import { call, CallError, newAgent, rawExchange, type Target } from '../lib/http.js';
import { now } from '../lib/load.js';
import { KeyOracle, servedKeys, type KeysJson } from '../lib/oracle.js';
import { CATEGORIES } from '../lib/padlock.js';
import { figure, invariant, sumTotals, type Context, type Scenario } from '../lib/scenario.js';
import { kolmogorovSmirnov, mannWhitney, medianDifferenceCi, quantile, round } from '../lib/stats.js';
import { ALL_RIGHTS, padlock, signUp, userIds } from './common.js';

/*
 * Hostile input: fast-check generated requests (methods, paths, ids, query
 * strings, headers, credentials, bodies, batch sizes, huge and malformed
 * payloads, and raw bytes that are not HTTP at all) against one Padlock.
 * Every answer must be below 500, the process must stay up, and a caller
 * without the right must never receive key bytes: nothing for a bad or
 * missing credential, nothing for a service that may read no category, only
 * its own categories for a service that may read some, and never another
 * service's keys. Then the credential check is timed: a wrong secret for a
 * real credential, an unknown credential of a real service and an unknown
 * service must take the same time (compared as distributions, interleaved).
 */

const KNOWN_USERS = 50;
/** Microseconds: see timeCredentials. */
const EQUIVALENCE_US = 8;
const MAX_BATCH = 100;
const MAX_BODY = 65536;

interface Callers {
  readonly admin: string;
  readonly reader: string;
  readonly nobody: string;
  /** admin's service id and credential id with another secret. */
  readonly wrongSecret: string;
  readonly unknownCredential: string;
  readonly unknownService: string;
}

type Who = 'admin' | 'reader' | 'nobody' | 'bad';

interface Case {
  readonly raw?: Buffer;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  readonly who: Who;
  /** Which credential variant was sent (for the report, never the credential itself). */
  readonly credential: string;
}

function variantSecret(credential: string, flip: number): string {
  const parts = credential.split('.');
  const secret = Buffer.from(parts[3]!, 'base64url');
  secret[flip % secret.length] = secret[flip % secret.length]! ^ 0x01;
  return [...parts.slice(0, 3), secret.toString('base64url')].join('.');
}

function callers(admin: string, reader: string, nobody: string): Callers {
  const [, service, credentialId, secret] = admin.split('.') as [string, string, string, string];
  return {
    admin,
    reader,
    nobody,
    wrongSecret: variantSecret(admin, 7),
    unknownCredential: `pl1.${service}.${'0123456789abcdef'}.${secret}`,
    unknownService: `pl1.intruder.${credentialId}.${secret}`,
  };
}

function arbitraries(users: readonly string[], who: Callers): fc.Arbitrary<Case> {
  const userId = fc.oneof(
    fc.constantFrom(...users),
    fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$/),
    fc.string({ maxLength: 300 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.constantFrom(
      '',
      '.',
      '..',
      '%',
      '%zz',
      '%00',
      '%2F',
      '..%2F..%2Fetc%2Fpasswd',
      'a'.repeat(129),
      'a'.repeat(5000),
    ),
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  const category = fc.oneof(
    fc.constantFrom(...CATEGORIES),
    fc.constantFrom('', 'PROFILE', 'unknown', 'a'.repeat(33), 'profile,payments', '%00'),
    fc.string({ maxLength: 40 }),
  );
  const encode = (s: string): string => {
    try {
      return encodeURIComponent(s);
    } catch {
      return s.replace(/[^A-Za-z0-9]/g, '_');
    }
  };
  const rawSegment = fc.oneof(
    userId.map(encode),
    userId.map((s) => s.replace(/[^\x21-\x7e]/g, '%41')),
  );
  const query = fc.oneof(
    fc.constant(''),
    fc.array(category, { maxLength: 5 }).map((c) => `?categories=${c.map(encode).join(',')}`),
    fc.constantFrom(
      '?categories=',
      '?categories=profile&categories=payments',
      '?x=1',
      '?categories=%zz',
      '?&&&',
      '?==',
    ),
    fc.string({ maxLength: 100 }).map((s) => `?${encode(s)}`),
  );
  const path = fc.oneof(
    fc.tuple(rawSegment, query).map(([u, q]) => `/v1/keys/${u}${q}`),
    fc.constant('/v1/keys/batch-get'),
    fc.constant('/v1/keychains'),
    rawSegment.map((u) => `/v1/keychains/${u}`),
    fc.tuple(rawSegment, category).map(([u, c]) => `/v1/keychains/${u}/categories/${encode(c)}`),
    fc.tuple(rawSegment, category).map(([u, c]) => `/v1/keychains/${u}/categories/${encode(c)}/rotate`),
    fc.constantFrom(
      '/healthz',
      '/readyz',
      '/metrics',
      '/openapi.json',
      '/',
      '//',
      '/v1',
      '/v1/',
      '/v2/keys/x',
      '/v1/keys/',
    ),
    fc.array(rawSegment, { maxLength: 8 }).map((s) => `/${s.join('/')}`),
  );
  const method = fc.oneof(
    fc.constantFrom('GET', 'POST', 'DELETE'),
    fc.constantFrom('PUT', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND'),
  );
  // [who is asking, which credential, the header]; trailing whitespace is not part of a header
  // value (RFC 9110 section 5.5), so admin's credential followed by a space is admin's.
  const credential = fc.oneof(
    fc.constantFrom<[Who, string, string | undefined]>(
      ['admin', 'admin', `Bearer ${who.admin}`],
      ['admin', 'admin+space', `Bearer ${who.admin} `],
      ['reader', 'reader', `Bearer ${who.reader}`],
      ['nobody', 'nobody', `Bearer ${who.nobody}`],
      ['bad', 'wrong secret', `Bearer ${who.wrongSecret}`],
      ['bad', 'unknown credential', `Bearer ${who.unknownCredential}`],
      ['bad', 'unknown service', `Bearer ${who.unknownService}`],
      ['bad', 'none', undefined],
      ['bad', 'empty bearer', 'Bearer'],
      ['bad', 'basic', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
      ['bad', 'lower-case scheme', `bearer ${who.admin}`],
      ['bad', 'two spaces', `Bearer  ${who.admin}`],
      ['bad', 'admin+x', `Bearer ${who.admin}x`],
      ['bad', 'long', `Bearer ${'A'.repeat(300)}`],
      ['bad', 'admin truncated', `Bearer ${who.admin.slice(0, -1)}`],
    ),
    fc
      .string({ maxLength: 200 })
      .map((s): [Who, string, string] => ['bad', 'random', `Bearer ${s.replace(/[^\x20-\x7e]/g, '')}`]),
  );
  const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
  const body = fc.oneof(
    fc.constant(undefined),
    fc.array(userId, { maxLength: MAX_BATCH + 20 }).map((ids) => json({ userIds: ids })),
    fc
      .tuple(
        fc.array(fc.constantFrom(...users), { minLength: 1, maxLength: MAX_BATCH + 5 }),
        fc.array(category, { maxLength: 4 }),
      )
      .map(([ids, categories]) => json({ userIds: ids, categories })),
    userId.map((u) => json({ userId: u })),
    fc.jsonValue({ maxDepth: 4 }).map((v) => json(v)),
    fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
    fc.integer({ min: 1, max: 8 }).map((k) => Buffer.from(`${'['.repeat(k * 1000)}${']'.repeat(k * 1000)}`)),
    fc
      .constantFrom(MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 1024 * 1024, 4 * 1024 * 1024)
      .map((n) => Buffer.from(`{"userIds":["${'a'.repeat(Math.max(0, n - 16))}"]}`)),
    fc
      .constantFrom(
        '{',
        '{"userIds":',
        '{"userIds":[1,2,3]}',
        'null',
        '[]',
        '"x"',
        '{"userId":null}',
        '\u0000',
        '{"__proto__":{"a":1}}',
      )
      .map((s) => Buffer.from(s)),
  );
  const contentType = fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/JSON',
    'text/plain',
    'application/json; charset=latin1',
    'multipart/form-data; boundary=x',
    '',
  );
  const extraHeaders = fc.dictionary(
    fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
    fc.string({ maxLength: 100 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
    { maxKeys: 4 },
  );
  const httpCase = fc
    .record({ method, path, credential, body, contentType, extraHeaders, omitType: fc.boolean() })
    .map(({ method, path, credential, body, contentType, extraHeaders, omitType }): Case => {
      const headers: Record<string, string> = { ...extraHeaders };
      if (credential[2] !== undefined) headers['authorization'] = credential[2];
      if (!omitType && contentType !== '') headers['content-type'] = contentType;
      return {
        method,
        path,
        headers,
        who: credential[0],
        credential: credential[1],
        ...(body === undefined ? {} : { body }),
      };
    });
  const rawCase = fc
    .oneof(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((b) => Buffer.from(b)),
      fc
        .constantFrom(
          'GET /v1/keys/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
          'POST /v1/keys/batch-get HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n{}',
          'POST /v1/keychains HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
          'GET / HTTP/9.9\r\n\r\n',
          'GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n',
          `GET /v1/keys/a HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`,
          'GET /v1/keys/a HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/keys/b HTTP/1.1\r\nHost: a\r\n\r\n',
          'GET /v1/keys/a HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n',
        )
        .map((s) => Buffer.from(s, 'latin1')),
    )
    .map((raw): Case => ({ raw, method: 'RAW', path: '', headers: {}, who: 'bad', credential: 'raw' }));
  return fc.oneof({ arbitrary: httpCase, weight: 19 }, { arbitrary: rawCase, weight: 1 });
}

interface Findings {
  cases: number;
  byStatus: Record<string, number>;
  status500: number;
  otherFailures: number;
  keyLeaks: number;
  /** Answered before the body was read, the connection then closed under a client still sending. */
  earlyAnswers: number;
  examples: string[];
  leakExamples: string[];
}

/** Key texts in a body: every 43-character base64url token. */
function keyTokens(text: string): string[] {
  return text.match(/(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g) ?? [];
}

function judge(c: Case, status: number, text: string, adminKeys: ReadonlySet<string>, findings: Findings): void {
  const label = c.raw !== undefined ? `raw ${status}` : String(status);
  findings.byStatus[label] = (findings.byStatus[label] ?? 0) + 1;
  const example = (what: string): void => {
    if (findings.examples.length < 15) {
      findings.examples.push(
        `${what}: ${c.method} ${c.path.slice(0, 120)} as ${c.who} -> ${status} ${text.slice(0, 160)}`,
      );
    }
  };
  if (status >= 500 && status !== 503) {
    findings.status500++;
    example('5xx');
  } else if (status === 503) {
    findings.otherFailures++;
    example('503 without load');
  }
  if (c.who === 'admin' || text.length === 0) return;
  // Another service's key (admin's, as served to admin) is a leak whoever asks; so is any key
  // structure in an answer to a caller that may read nothing.
  let leak = keyTokens(text).some((t) => adminKeys.has(t));
  if (c.who === 'bad' || c.who === 'nobody') leak ||= /"keys?"\s*:\s*[["]/.test(text);
  if (c.who === 'reader' && status === 200) {
    try {
      const body = JSON.parse(text) as KeysJson & { results?: KeysJson[] };
      const results = Array.isArray(body.results) ? body.results : [body];
      for (const result of results) {
        for (const key of servedKeys(result)) if (key.category !== 'profile') leak = true;
      }
    } catch {
      // not JSON: token check above applies
    }
  }
  if (leak) {
    findings.keyLeaks++;
    if (findings.leakExamples.length < 10) {
      findings.leakExamples.push(
        `${c.method} ${c.path.slice(0, 120)} with credential "${c.credential}" -> ${status} ${text.slice(0, 200)}`,
      );
    }
  }
}

async function send(
  target: Target,
  c: Case,
  agent: ReturnType<typeof newAgent>,
): Promise<{ status: number; text: string; early?: boolean } | string> {
  if (c.raw !== undefined) {
    const { reply, error } = await rawExchange(target, c.raw, 3000);
    const line = reply.toString('latin1', 0, Math.min(reply.length, 200));
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(line);
    if (match !== null) return { status: Number(match[1]), text: reply.toString('latin1') };
    return error ?? (reply.length === 0 ? 'closed' : 'no status line');
  }
  try {
    const reply = await call(target, {
      method: c.method,
      path: c.path,
      headers: c.headers,
      agent,
      timeoutMs: 10000,
      ...(c.body === undefined ? {} : { body: c.body }),
    });
    return { status: reply.status, text: reply.body.toString('latin1') };
  } catch (error) {
    const label = error instanceof CallError ? error.label : 'EXCEPTION';
    if (c.body === undefined || (label !== 'EPIPE' && label !== 'ECONNRESET')) return label;
    // Padlock refused the request before reading its body (405, 404, 413, ...) and closed the
    // connection; the client, still writing megabytes, got the reset, not the answer. Ask again the
    // way a client still sending would: the head and the first 16 KiB, then read.
    const head = [`${c.method} ${c.path} HTTP/1.1`, 'host: padlock', `content-length: ${c.body.length}`];
    for (const [name, value] of Object.entries(c.headers)) head.push(`${name}: ${value}`);
    const raw = Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), c.body.subarray(0, 16384)]);
    const { reply, error: rawError } = await rawExchange(target, raw, 5000, false);
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(reply.toString('latin1', 0, Math.min(reply.length, 200)));
    if (match !== null) return { status: Number(match[1]), text: reply.toString('latin1'), early: true };
    return rawError ?? label;
  }
}

interface TimingResult {
  readonly samples: number;
  readonly medianUs: Record<string, number>;
  readonly comparisons: {
    readonly pair: string;
    readonly medianDiffUs: number;
    readonly ciUs: [number, number];
    readonly ksP: number;
    readonly mwP: number;
    readonly auc: number;
    readonly same: boolean;
  }[];
}

/**
 * Interleaved, one request at a time on one kept-alive connection: a wrong
 * secret, an unknown credential id, an unknown service, and (the control,
 * which should differ) the right credential.
 */
async function timeCredentials(target: Target, who: Callers, user: string, samples: number): Promise<TimingResult> {
  const agent = newAgent(1);
  const kinds = {
    wrongSecret: who.wrongSecret,
    unknownCredential: who.unknownCredential,
    unknownService: who.unknownService,
    valid: who.admin,
  } as const;
  const names = Object.keys(kinds) as (keyof typeof kinds)[];
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const order: (keyof typeof kinds)[] = [];
  for (let i = 0; i < samples; i++) for (const n of names) order.push(n);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const path = `/v1/keys/${encodeURIComponent(user)}`;
  for (let i = 0; i < 200; i++)
    await call(target, { method: 'GET', path, headers: { authorization: `Bearer ${who.wrongSecret}` }, agent });
  for (const name of order) {
    const t0 = process.hrtime.bigint();
    await call(target, { method: 'GET', path, headers: { authorization: `Bearer ${kinds[name]}` }, agent });
    times[name]!.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  agent.destroy();
  const compare = (a: keyof typeof kinds, b: keyof typeof kinds) => {
    const x = times[a]!;
    const y = times[b]!;
    const ci = medianDifferenceCi(x, y);
    const ks = kolmogorovSmirnov(x, y);
    const mw = mannWhitney(x, y);
    // Equivalent within a margin: the 99 % interval of the median difference lies within
    // +-EQUIVALENCE_US (less than one HMAC-SHA256 of the credential, so a check that skipped it for
    // some kind of bad credential would show), and one observation tells the kinds apart no better
    // than 55:45 (|AUC - 0.5| <= 0.05).
    const same = ci.low >= -EQUIVALENCE_US && ci.high <= EQUIVALENCE_US && Math.abs(mw.auc - 0.5) <= 0.05;
    return {
      pair: `${a} vs ${b}`,
      medianDiffUs: round(ci.diff),
      ciUs: [round(ci.low), round(ci.high)] as [number, number],
      ksP: round(ks.p * 1000) / 1000,
      mwP: round(mw.p * 1000) / 1000,
      auc: round(mw.auc * 1000) / 1000,
      same,
    };
  };
  return {
    samples,
    medianUs: Object.fromEntries(names.map((n) => [n, round(quantile(times[n]!, 0.5))])),
    comparisons: [
      compare('wrongSecret', 'unknownCredential'),
      compare('wrongSecret', 'unknownService'),
      compare('unknownCredential', 'unknownService'),
      compare('valid', 'wrongSecret'),
    ],
  };
}

export const hostileInput: Scenario = {
  name: 'hostile-input',
  title: 'fast-check generated hostile requests (100 000 cases), then the credential check timed',
  infra: 'none',
  ci: true,
  async run(ctx: Context) {
    const process = padlock(ctx, {
      name: 'padlock',
      store: { kind: 'sqlite', path: join(ctx.dir, 'padlock.db') },
      limits: { maxBatch: MAX_BATCH, maxBodyBytes: MAX_BODY },
    });
    const admin = await process.createService('admin', ALL_RIGHTS);
    const reader = await process.createService('reader', { read: ['profile'] });
    const nobody = await process.createService('nobody', { read: [], create: false });
    await process.start();
    const who = callers(admin, reader, nobody);
    const oracle = new KeyOracle();
    const users = userIds(`${ctx.name}-u`, KNOWN_USERS);
    await signUp(process.target, admin, users, oracle, 8);
    const adminKeys = new Set(oracle.seen);
    for (const key of adminKeys) ctx.run.addServedKey(key);
    const findings: Findings = {
      cases: 0,
      byStatus: {},
      status500: 0,
      otherFailures: 0,
      keyLeaks: 0,
      earlyAnswers: 0,
      examples: [],
      leakExamples: [],
    };
    const total = 100_000;
    const workers = 4;
    const agent = newAgent(workers * 2);
    const started = now();
    let crashed = false;
    const arbitrary = arbitraries(users, who);
    const runWorker = async (seed: number, runs: number): Promise<void> => {
      await fc.assert(
        fc.asyncProperty(arbitrary, async (c) => {
          const result = await send(process.target, c, agent);
          findings.cases++;
          if (typeof result === 'string') {
            findings.byStatus[result] = (findings.byStatus[result] ?? 0) + 1;
            if (c.raw === undefined || !process.running) {
              findings.otherFailures++;
              if (findings.examples.length < 15)
                findings.examples.push(`no answer (${result}): ${c.method} ${c.path.slice(0, 120)}`);
            }
          } else {
            judge(c, result.status, result.text, adminKeys, findings);
            if (result.early === true) findings.earlyAnswers++;
            if (result.status >= 400) ctx.run.addErrorBody(result.text.slice(0, 2000));
          }
          if (!process.running) crashed = true;
          if (findings.cases % 20000 === 0) ctx.log(`${findings.cases} cases`);
          return true;
        }),
        { numRuns: runs, seed, endOnFailure: true },
      );
    };
    await Promise.all(Array.from({ length: workers }, (_, i) => runWorker(20261127 + i, total / workers)));
    agent.destroy();
    const fuzzSeconds = (now() - started) / 1000;
    crashed ||= !process.running;
    const alive =
      !crashed &&
      (await call(process.target, { method: 'GET', path: '/healthz', timeoutMs: 5000 }).then(
        (r) => r.status === 200,
        () => false,
      ));
    ctx.log(`${findings.cases} cases in ${Math.round(fuzzSeconds)} s; timing the credential check`);
    const timing = await timeCredentials(process.target, who, users[0]!, ctx.ci ? 3000 : 6000);
    const wrongCompared = timing.comparisons.slice(0, 3);
    const control = timing.comparisons[3]!;
    const totals = sumTotals([]);
    return {
      totals: {
        ...totals,
        sent: findings.cases,
        answered: Object.entries(findings.byStatus)
          .filter(([k]) => /^(raw )?\d/.test(k))
          .reduce((s, [, v]) => s + v, 0),
        byStatus: findings.byStatus,
        wrongKeys: oracle.wrong,
      },
      phases: [],
      availability: null,
      recoveryMs: null,
      figures: [
        invariant('generated cases', '>= 100 000', findings.cases, findings.cases >= 100_000),
        invariant('answers of 500 (or any 5xx)', '0', findings.status500, findings.status500 === 0),
        invariant(
          'requests without an answer, or 503 with no load',
          '0',
          findings.otherFailures,
          findings.otherFailures === 0,
        ),
        invariant('crashes (process exited, or /healthz not 200 after)', '0', alive ? 0 : 1, alive),
        invariant('key bytes to a caller without the right', '0', findings.keyLeaks, findings.keyLeaks === 0),
        ...wrongCompared.map((c) =>
          figure(
            `credential check time, ${c.pair}`,
            `equivalent: 99 % CI of the median gap within +-${EQUIVALENCE_US} us, |AUC - 0.5| <= 0.05`,
            `median gap ${c.medianDiffUs} us (99 % CI ${c.ciUs[0]}..${c.ciUs[1]}), AUC ${c.auc}, KS p ${c.ksP}`,
            c.same,
          ),
        ),
      ],
      notes: [
        `${findings.cases} cases in ${Math.round(fuzzSeconds)} s (${workers} concurrent fast-check runs, seeds 20261127..${20261127 + workers - 1}); ~5 % raw bytes that are not valid HTTP`,
        `median time per request (us): ${JSON.stringify(timing.medianUs)}, ${timing.samples} samples each, interleaved at random`,
        `${findings.earlyAnswers} requests with large bodies were refused before their body was read (404, 405, 413, ...) and the connection closed while the client was still sending: Node's client reports the reset, not the answer; sent again with only the head and 16 KiB of body, each got its answer (counted by that status)`,
        `control (should differ, shows the test can see a difference): ${control.pair}: median gap ${control.medianDiffUs} us, AUC ${control.auc}`,
        ...findings.leakExamples.map((e) => `key bytes: ${e}`),
        ...findings.examples,
      ],
      details: { findings, timing, fuzzSeconds: round(fuzzSeconds) },
    };
  },
};
