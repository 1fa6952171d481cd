import { isCategory } from '@padlock/core';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { InvalidInput } from './errors.js';

/** One deployment group (e.g. `padlock`, then `padlock-mirror`): its own caches, one or more base URLs. */
export interface EndpointGroup {
  /** 1-64 characters of `A-Za-z0-9._-`; names the group in errors and stats. */
  readonly name: string;
  /** Base URLs (`http:` or `https:`, optionally with a path prefix); requests rotate over them. */
  readonly urls: readonly string[];
}

/** Opt-in retries: after every group failed, wait (full jitter) and go round the groups again. */
export interface RetryOptions {
  /** Extra rounds over the groups per call; default 2. */
  readonly maxRetries?: number;
  /** Tokens a call that is not a retry adds to the budget; a retry spends 1. Default 0.1 (at most 10 % extra load). */
  readonly budgetRatio?: number;
  /** The budget's size, and its content at start; default 10. */
  readonly budgetMax?: number;
  /** First backoff cap; the n-th retry waits a random time up to min(maxDelayMs, baseDelayMs * 2^n). Default 20. */
  readonly baseDelayMs?: number;
  /** Default 200. */
  readonly maxDelayMs?: number;
}

export interface CacheOptions {
  /** Users whose keys are held at most; default 10000. */
  readonly maxEntries?: number;
  /** Estimated bytes of held keys at most; default 16 MiB. */
  readonly maxBytes?: number;
  /** A cap on how long keys are held, below the server's maxAgeSeconds (which always applies); default 60000. */
  readonly maxTtlMs?: number;
}

export interface BatchOptions {
  /** User ids per batch-get at most: the server's limits.maxBatch; default 500. */
  readonly maxUsers?: number;
  /** Request body bytes per batch-get at most: the server's limits.maxBodyBytes; default 65536. */
  readonly maxBodyBytes?: number;
  /** How long lookups are gathered before a batch is sent; 0 (default) sends at the next turn of the event loop. */
  readonly delayMs?: number;
}

/** TLS for `https:` URLs. The server's name is always verified against its certificate. */
export interface TlsOptions {
  /** PEM CA certificate(s) to trust for Padlock's servers, instead of Node's CA store. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** PEM client certificate (then any intermediates) for mutual TLS; needs `key`. */
  readonly cert?: string | Buffer;
  /** PEM private key of `cert` (unencrypted). */
  readonly key?: string | Buffer;
}

export interface PadlockClientOptions {
  /** Deployment groups in order of preference; a failing group's requests go to the next. */
  readonly groups: readonly EndpointGroup[];
  /**
   * The service's credential, sent as `Authorization: Bearer <credential>`. May be left out when
   * `tls.cert` authenticates the service on its own (a server in `certificate-only` mode).
   */
  readonly credential?: string;
  /** Categories to fetch keys for; default every category the service may read. */
  readonly categories?: readonly string[];
  /** Timeout of one HTTP attempt in milliseconds; default 500. */
  readonly timeoutMs?: number;
  /** Time for a whole call, failover and retries included; default 2000. */
  readonly deadlineMs?: number;
  /** Send a key lookup to the next group as well when the first has not answered after this many ms; default off. */
  readonly hedgeAfterMs?: number;
  /** After a failure, an endpoint is tried last for this many ms; default 1000. */
  readonly downMs?: number;
  /** Open connections per base URL at most (keep-alive); default 32. */
  readonly maxSockets?: number;
  readonly batch?: BatchOptions;
  /** `false` fetches keys for every operation (still coalesced). */
  readonly cache?: CacheOptions | false;
  /** Default `false`: Padlock fails fast, callers decide. */
  readonly retry?: RetryOptions | false;
  /** CA to trust and client certificate to present on `https:` URLs. */
  readonly tls?: TlsOptions;
}

export interface ResolvedTls {
  readonly ca: readonly Buffer[] | undefined;
  readonly cert: Buffer | undefined;
  /** A copy of the caller's PEM, wiped by close(). */
  readonly key: Buffer | undefined;
}

export interface ResolvedGroup {
  readonly name: string;
  readonly urls: readonly URL[];
}

export interface ResolvedOptions {
  readonly groups: readonly ResolvedGroup[];
  readonly credential: string | undefined;
  readonly categories: readonly string[] | undefined;
  readonly timeoutMs: number;
  readonly deadlineMs: number;
  readonly hedgeAfterMs: number | undefined;
  readonly downMs: number;
  readonly maxSockets: number;
  readonly batch: Required<BatchOptions>;
  readonly cache: Required<CacheOptions> | false;
  readonly retry: Required<RetryOptions> | false;
  readonly tls: ResolvedTls | undefined;
}

const GROUP_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const CREDENTIAL = /^[\x21-\x7e]{1,1024}$/;
const TOP_KEYS = [
  'groups',
  'credential',
  'categories',
  'timeoutMs',
  'deadlineMs',
  'hedgeAfterMs',
  'downMs',
  'maxSockets',
  'batch',
  'cache',
  'retry',
  'tls',
];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKnown(value: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const name of Object.keys(value)) {
    if (!known.includes(name)) throw new InvalidInput(`${where} has an unknown option "${name}"`);
  }
}

function integer(value: unknown, where: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidInput(`${where} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function ratio(value: unknown, where: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new InvalidInput(`${where} must be a number from 0 to 1`);
  }
  return value;
}

function section(value: unknown, where: string, known: readonly string[]): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new InvalidInput(`${where} must be an object`);
  onlyKnown(value, known, where);
  return value;
}

function baseUrl(value: unknown, where: string): URL {
  const message = `${where} must be an http: or https: URL without credentials, query or fragment`;
  if (typeof value !== 'string') throw new InvalidInput(message);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidInput(message);
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username !== '' ||
    url.password !== '' ||
    url.search !== '' ||
    url.hash !== '' ||
    value.includes('?') ||
    value.includes('#')
  ) {
    throw new InvalidInput(message);
  }
  // A path prefix (a proxy mounting Padlock under /padlock) is kept; requests append to it without its trailing slash.
  return url;
}

function groups(value: unknown): ResolvedGroup[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 16) {
    throw new InvalidInput('options.groups must be an array of 1 to 16 endpoint groups');
  }
  const names = new Set<string>();
  return value.map((group: unknown, i) => {
    const where = `options.groups[${i}]`;
    if (!isObject(group)) throw new InvalidInput(`${where} must be an object { name, urls }`);
    onlyKnown(group, ['name', 'urls'], where);
    const { name, urls } = group;
    if (typeof name !== 'string' || !GROUP_NAME.test(name)) {
      throw new InvalidInput(`${where}.name must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" and "-"`);
    }
    if (names.has(name)) throw new InvalidInput(`${where}.name "${name}" names another group too`);
    names.add(name);
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > 64) {
      throw new InvalidInput(`${where}.urls must be an array of 1 to 64 base URLs`);
    }
    return Object.freeze({ name, urls: Object.freeze(urls.map((url, j) => baseUrl(url, `${where}.urls[${j}]`))) });
  });
}

function categories(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidInput('options.categories must be a non-empty array of category names');
  }
  value.forEach((c: unknown, i) => {
    if (!isCategory(c)) {
      throw new InvalidInput(
        `options.categories[${i}] must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter`,
      );
    }
  });
  if (new Set(value).size !== value.length) throw new InvalidInput('options.categories names a category twice');
  return Object.freeze([...(value as string[])]);
}

function pem(value: unknown): Buffer | undefined {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : undefined;
}

function certificate(value: unknown, message: string): Buffer {
  const bytes = pem(value);
  if (bytes === undefined) throw new InvalidInput(message);
  try {
    new X509Certificate(bytes);
  } catch {
    throw new InvalidInput(message);
  }
  return bytes;
}

function tlsOptions(value: unknown, groups: readonly ResolvedGroup[]): ResolvedTls | undefined {
  const t = section(value, 'options.tls', ['ca', 'cert', 'key']);
  if (t === undefined) return undefined;
  if (!groups.some((g) => g.urls.some((url) => url.protocol === 'https:'))) {
    throw new InvalidInput('options.tls is set, but no URL in options.groups is https:');
  }
  const caMessage = 'options.tls.ca must be PEM certificates: a string, a Buffer, or a non-empty array of them';
  let ca: Buffer[] | undefined;
  if (t['ca'] !== undefined) {
    const list: unknown[] = Array.isArray(t['ca']) ? t['ca'] : [t['ca']];
    if (list.length === 0) throw new InvalidInput(caMessage);
    ca = list.map((c) => certificate(c, caMessage));
  }
  if ((t['cert'] === undefined) !== (t['key'] === undefined)) {
    throw new InvalidInput('options.tls.cert and options.tls.key go together: set both or neither');
  }
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  if (t['cert'] !== undefined) {
    cert = certificate(t['cert'], 'options.tls.cert must be a PEM certificate (a string or a Buffer)');
    const keyBytes = pem(t['key']);
    let matches: boolean;
    try {
      if (keyBytes === undefined) throw new TypeError('not PEM');
      matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(keyBytes));
    } catch {
      throw new InvalidInput('options.tls.key must be an unencrypted PEM private key (a string or a Buffer)');
    }
    if (!matches) throw new InvalidInput('options.tls.key is not the private key of options.tls.cert');
    key = Buffer.from(keyBytes);
  }
  return Object.freeze({ ca: ca === undefined ? undefined : Object.freeze(ca), cert, key });
}

/**
 * Validates client options once, fills in defaults and returns them frozen.
 * Unknown options are an error: a misspelt limit must not fall back silently.
 */
export function resolveOptions(options: unknown): ResolvedOptions {
  if (!isObject(options)) throw new InvalidInput('options must be an object');
  onlyKnown(options, TOP_KEYS, 'options');
  const resolvedGroups = groups(options['groups']);
  const tls = tlsOptions(options['tls'], resolvedGroups);
  const credential = options['credential'];
  if (credential === undefined && tls?.cert === undefined) {
    throw new InvalidInput(
      'options.credential is required, unless options.tls.cert authenticates the service on its own',
    );
  }
  if (credential !== undefined && (typeof credential !== 'string' || !CREDENTIAL.test(credential))) {
    throw new InvalidInput('options.credential must be 1-1024 printable ASCII characters without spaces');
  }
  const timeoutMs = integer(options['timeoutMs'], 'options.timeoutMs', 1, 60000, 500);
  const deadlineMs = integer(options['deadlineMs'], 'options.deadlineMs', 1, 300000, Math.max(2000, timeoutMs));
  if (deadlineMs < timeoutMs) throw new InvalidInput('options.deadlineMs must be at least options.timeoutMs');
  const hedgeAfterMs =
    options['hedgeAfterMs'] === undefined
      ? undefined
      : integer(options['hedgeAfterMs'], 'options.hedgeAfterMs', 1, 60000, 0);

  const batch = section(options['batch'], 'options.batch', ['maxUsers', 'maxBodyBytes', 'delayMs']) ?? {};
  const cacheValue = options['cache'];
  let cache: Required<CacheOptions> | false = false;
  if (cacheValue !== false) {
    const c = section(cacheValue, 'options.cache', ['maxEntries', 'maxBytes', 'maxTtlMs']) ?? {};
    cache = Object.freeze({
      maxEntries: integer(c['maxEntries'], 'options.cache.maxEntries', 1, 10_000_000, 10_000),
      maxBytes: integer(c['maxBytes'], 'options.cache.maxBytes', 1024, 2 ** 40, 16 * 1024 * 1024),
      maxTtlMs: integer(c['maxTtlMs'], 'options.cache.maxTtlMs', 1, 86_400_000, 60_000),
    });
  }
  const retryValue = options['retry'];
  let retry: Required<RetryOptions> | false = false;
  if (retryValue !== undefined && retryValue !== false) {
    const r =
      section(retryValue, 'options.retry', ['maxRetries', 'budgetRatio', 'budgetMax', 'baseDelayMs', 'maxDelayMs']) ??
      {};
    const baseDelayMs = integer(r['baseDelayMs'], 'options.retry.baseDelayMs', 0, 60000, 20);
    const maxDelayMs = integer(r['maxDelayMs'], 'options.retry.maxDelayMs', 0, 60000, Math.max(200, baseDelayMs));
    if (maxDelayMs < baseDelayMs) {
      throw new InvalidInput('options.retry.maxDelayMs must be at least options.retry.baseDelayMs');
    }
    retry = Object.freeze({
      maxRetries: integer(r['maxRetries'], 'options.retry.maxRetries', 0, 10, 2),
      budgetRatio: ratio(r['budgetRatio'], 'options.retry.budgetRatio', 0.1),
      budgetMax: integer(r['budgetMax'], 'options.retry.budgetMax', 0, 1_000_000, 10),
      baseDelayMs,
      maxDelayMs,
    });
  }
  return Object.freeze({
    groups: Object.freeze(resolvedGroups),
    credential,
    categories: categories(options['categories']),
    timeoutMs,
    deadlineMs,
    hedgeAfterMs,
    downMs: integer(options['downMs'], 'options.downMs', 0, 600000, 1000),
    maxSockets: integer(options['maxSockets'], 'options.maxSockets', 1, 1024, 32),
    batch: Object.freeze({
      maxUsers: integer(batch['maxUsers'], 'options.batch.maxUsers', 1, 10000, 500),
      maxBodyBytes: integer(batch['maxBodyBytes'], 'options.batch.maxBodyBytes', 1024, 16_777_216, 65536),
      delayMs: integer(batch['delayMs'], 'options.batch.delayMs', 0, 1000, 0),
    }),
    cache,
    retry,
    tls,
  });
}
