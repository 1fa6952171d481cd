import { frame, hkdfSha256, hmacSha256, type KekRing } from '@padlock/core';
import { timingSafeEqual } from 'node:crypto';
import type { RowSource, RowsRead } from '../keychain.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { KeyRow } from '../store/types.js';
import { MemcachedClient, MemcachedError } from './memcached-client.js';
import { traced } from '../tracing.js';

/*
 * L2: memcached shared by one deployment group, decorating the store's rows.
 * It holds only what the store holds, wrapped root keys and row metadata, and
 * every value carries an HMAC-SHA256 over the user id and its bytes under a key
 * derived from the active KEK. A value that fails the MAC or does not parse is
 * a miss: counted, deleted, read from the store (the seed's incident: a
 * memcached cluster returned corrupt data). A memcached that is down or slow
 * costs at most its timeout, then reads go to the store (fail open for reads).
 *
 * Value layout (big-endian):
 *   u8 1 || u64 readAt(ms) || u16 rowCount ||
 *   rowCount x (lp(category) || u32 version || u64 createdAt || u64 shreddedAt+1 or 0 ||
 *               u16 len(wrapped) or 0xffff for shredded || wrapped) || mac(32)
 */

const VALUE_FORMAT = 1;
const MAC_LENGTH = 32;
const SHREDDED = 0xffff;
/** Bounds the memory of recent invalidations (writes are under 0.1 % of requests). */
const MAX_REMEMBERED = 100_000;

interface Mark {
  readonly at: number;
  readonly sequence: number;
  deleteFailed: boolean;
}

export interface MemcachedRowsOptions {
  readonly keyPrefix: string;
  readonly maxStalenessMs: number;
}

export class MemcachedRows implements RowSource {
  readonly #macKey: Buffer;

  constructor(
    private readonly below: RowSource,
    private readonly client: MemcachedClient,
    keks: KekRing,
    private readonly options: MemcachedRowsOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.#macKey = hkdfSha256(keks.active.key.expose(), Buffer.alloc(0), Buffer.from('padlock/v1/cache-mac'), 32);
    metrics.memcachedServersHealthy.track(() => client.healthyServers);
  }

  /** For /readyz: memcached never makes the server unready, but its state is reported. */
  status(): string {
    const healthy = this.client.healthyServers;
    const total = this.client.totalServers;
    return healthy === total ? 'ok' : `degraded: ${total - healthy} of ${total} servers down; reads go to the store`;
  }

  #key(userId: string): string {
    return `${this.options.keyPrefix}${userId}`;
  }

  async get(userId: string, fresh: boolean): Promise<RowsRead> {
    if (!fresh) {
      const hits = await this.#lookup([userId]);
      const hit = hits.get(userId);
      if (hit !== undefined) return hit;
    }
    const started = ++this.#sequence;
    const read = await this.below.get(userId, fresh);
    this.#fill(userId, read, started);
    return read;
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, RowsRead>> {
    const unique = [...new Set(userIds)];
    const result = await this.#lookup(unique);
    const missing = unique.filter((id) => !result.has(id));
    if (missing.length > 0) {
      const started = ++this.#sequence;
      const loaded = await this.below.getMany(missing);
      for (const [userId, read] of loaded) {
        result.set(userId, read);
        this.#fill(userId, read, started);
      }
    }
    return result;
  }

  async invalidate(userId: string): Promise<void> {
    const mark = { at: Date.now(), sequence: ++this.#sequence, deleteFailed: false };
    this.#remember(userId, mark);
    try {
      await traced('memcached delete', {}, () => this.client.delete(this.#key(userId)));
    } catch (error) {
      // The old entry may live on in memcached; this process stops trusting it
      // (see #lookup) until a fresh fill replaces it or it expires.
      mark.deleteFailed = true;
      this.#failed(error, 'delete');
    }
    await this.below.invalidate(userId);
  }

  /**
   * Users invalidated within the last maxStaleness, oldest first. A fill from a
   * read that began before the invalidation is dropped (it would put the
   * pre-shred rows back), and while a delete has failed this process reads the
   * store instead of memcached for that user.
   */
  readonly #invalidated = new Map<string, Mark>();
  /** Orders reads against invalidations in this process (wall-clock times can tie). */
  #sequence = 0;

  #remember(userId: string, mark: Mark): void {
    this.#invalidated.delete(userId);
    this.#invalidated.set(userId, mark);
    const horizon = mark.at - this.options.maxStalenessMs;
    for (const [id, old] of this.#invalidated) {
      if (old.at > horizon && this.#invalidated.size <= MAX_REMEMBERED) break;
      this.#invalidated.delete(id);
    }
  }

  #distrusted(userId: string, now: number): boolean {
    const mark = this.#invalidated.get(userId);
    return mark !== undefined && mark.deleteFailed && now - mark.at < this.options.maxStalenessMs;
  }

  async #lookup(userIds: readonly string[]): Promise<Map<string, RowsRead>> {
    const result = new Map<string, RowsRead>();
    const keys = userIds.map((id) => this.#key(id));
    const { values, failures } = await traced('memcached get', { 'padlock.keys': keys.length }, () =>
      this.client.getMany(keys),
    );
    for (const failure of failures) this.#failed(failure, 'get');
    const now = Date.now();
    let hits = 0;
    for (const userId of userIds) {
      const value = values.get(this.#key(userId));
      if (value === undefined || this.#distrusted(userId, now)) continue;
      const read = this.#decode(userId, value);
      if (read === undefined) {
        this.metrics.cacheErrors.inc({ cache: 'memcached', kind: 'corrupt' });
        this.log.warn('memcached value failed authentication; deleted and read from the store', { userId });
        this.client.delete(this.#key(userId)).catch((error: unknown) => this.#failed(error, 'delete'));
        continue;
      }
      if (now - read.readAt >= this.options.maxStalenessMs) continue;
      result.set(userId, read);
      hits++;
    }
    this.metrics.cacheHits.inc({ cache: 'memcached' }, hits);
    this.metrics.cacheMisses.inc({ cache: 'memcached' }, userIds.length - hits);
    return result;
  }

  /** Write-through, not awaited: a slow memcached must not slow the answer. Empty keychains are not cached. */
  #fill(userId: string, read: RowsRead, started: number): void {
    if (read.rows.length === 0) return;
    const mark = this.#invalidated.get(userId);
    if (mark !== undefined && started < mark.sequence) return;
    const remainingMs = this.options.maxStalenessMs - (Date.now() - read.readAt);
    if (remainingMs < 1000) return;
    this.client.set(this.#key(userId), this.#encode(userId, read), Math.floor(remainingMs / 1000)).then(
      () => {
        // The fresh value replaced whatever a failed delete left behind.
        if (mark !== undefined && this.#invalidated.get(userId) === mark) mark.deleteFailed = false;
      },
      (error: unknown) => this.#failed(error, 'set'),
    );
  }

  #failed(error: unknown, op: string): void {
    const kind = error instanceof MemcachedError ? error.kind : 'unknown';
    this.metrics.cacheErrors.inc({ cache: 'memcached', kind: `${op}_${kind}` });
  }

  #mac(userId: string, body: Uint8Array): Buffer {
    return hmacSha256(this.#macKey, Buffer.concat([frame('padlock/v1/cache', [userId]), body]));
  }

  #encode(userId: string, read: RowsRead): Buffer {
    const parts: Buffer[] = [];
    const head = Buffer.alloc(11);
    head[0] = VALUE_FORMAT;
    head.writeBigUInt64BE(BigInt(read.readAt), 1);
    head.writeUInt16BE(read.rows.length, 9);
    parts.push(head);
    for (const row of read.rows) {
      const category = Buffer.from(row.category, 'utf8');
      const fixed = Buffer.alloc(2 + category.length + 4 + 8 + 8 + 2);
      let o = fixed.writeUInt16BE(category.length, 0);
      o += category.copy(fixed, o);
      o = fixed.writeUInt32BE(row.version, o);
      o = fixed.writeBigUInt64BE(BigInt(row.createdAt), o);
      o = fixed.writeBigUInt64BE(row.shreddedAt === null ? 0n : BigInt(row.shreddedAt) + 1n, o);
      fixed.writeUInt16BE(row.wrapped === null ? SHREDDED : row.wrapped.length, o);
      parts.push(fixed);
      if (row.wrapped !== null) parts.push(Buffer.from(row.wrapped));
    }
    const body = Buffer.concat(parts);
    return Buffer.concat([body, this.#mac(userId, body)]);
  }

  /** The rows in a value, or undefined when it fails its MAC or does not parse. */
  #decode(userId: string, value: Buffer): RowsRead | undefined {
    if (value.length < 11 + MAC_LENGTH) return undefined;
    const body = value.subarray(0, value.length - MAC_LENGTH);
    if (!timingSafeEqual(this.#mac(userId, body), value.subarray(value.length - MAC_LENGTH))) return undefined;
    try {
      if (body[0] !== VALUE_FORMAT) return undefined;
      const readAt = Number(body.readBigUInt64BE(1));
      const count = body.readUInt16BE(9);
      const rows: KeyRow[] = [];
      let o = 11;
      for (let i = 0; i < count; i++) {
        const categoryLength = body.readUInt16BE(o);
        const category = body.toString('utf8', o + 2, (o += 2 + categoryLength));
        const version = body.readUInt32BE(o);
        const createdAt = Number(body.readBigUInt64BE(o + 4));
        const shredded = body.readBigUInt64BE(o + 12);
        const wrappedLength = body.readUInt16BE(o + 20);
        o += 22;
        let wrapped: Buffer | null = null;
        if (wrappedLength !== SHREDDED) {
          if (o + wrappedLength > body.length) return undefined;
          wrapped = Buffer.from(body.subarray(o, (o += wrappedLength)));
        }
        rows.push({
          category,
          version,
          wrapped,
          createdAt,
          shreddedAt: shredded === 0n ? null : Number(shredded - 1n),
        });
      }
      return o === body.length ? { rows, readAt } : undefined;
    } catch {
      return undefined;
    }
  }
}
