/*
 * KEK re-wrap, for every KeyStore backend (run from conformance.ts): rows move
 * to the new kid and still open to the same keys, the scan pages through
 * everything, and a shred, a hold release, a schedule's finish, a category
 * rotation or a second re-wrap that lands between the re-wrap's read and its
 * conditional write wins: nothing shredded comes back, nothing is lost or
 * written twice.
 */
import {
  kekRing,
  PadlockError,
  SecretBytes,
  signingKeyWrapInfo,
  unwrapKey,
  unwrapRootKey,
  wrapKey,
  wrappedKid,
  wrapRootKey,
  type Kek,
  type KekRing,
} from '@padlock/core';
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { before, it } from 'node:test';
import { rewrapAll } from '../kek-rewrap.js';
import { holdVerifies, scheduleVerifies, sealHold, sealSchedule } from '../lifecycle-rows.js';
import { rowMacKid } from '../row-mac.js';
import type { HoldRecord, KeyStore, ScheduleRecord, SealedChange, SealedRecord } from './types.js';

const CATEGORIES = ['profile', 'payments', 'advertising'];

interface Target {
  readonly store: KeyStore;
  openPeer(): Promise<KeyStore>;
}

/** A fresh pair of KEKs per case, so a case's counts are its own rows (other cases' rows fail to unwrap). */
function keks(): { old: KekRing; next: KekRing; nextOnly: KekRing } {
  const id = randomUUID().slice(0, 8);
  const k1: Kek = { kid: `old-${id}`, key: SecretBytes.random(32) };
  const k2: Kek = { kid: `new-${id}`, key: SecretBytes.random(32) };
  return { old: kekRing([k1], k1.kid), next: kekRing([k1, k2], k2.kid), nextOnly: kekRing([k2], k2.kid) };
}

const fast = { rate: 100_000, pageSize: 7, batch: 4 };

/** Inserts a user's keychain wrapped under `ring`; returns the root key bytes per category. */
async function newUser(store: KeyStore, ring: KekRing, version = 1): Promise<{ userId: string; keys: Buffer[] }> {
  const userId = `rewrap-${randomUUID()}`;
  const keys: Buffer[] = [];
  await store.insertKeys(
    userId,
    CATEGORIES.map((category) => {
      const rootKey = SecretBytes.random(32);
      keys.push(Buffer.from(rootKey.expose()));
      const wrapped = wrapRootKey(ring.active, { userId, category, version }, rootKey);
      rootKey.wipe();
      return { category, version, wrapped, createdAt: Date.now() };
    }),
  );
  return { userId, keys };
}

function hold(ring: KekRing, userId: string): HoldRecord {
  return sealHold(ring.active, {
    holdId: `hold-${randomUUID()}`,
    userId,
    category: null,
    reason: 'litigation',
    placedBy: 'operator:test',
    placedAt: Date.now(),
    releasedAt: null,
    releasedBy: null,
  });
}

function schedule(ring: KekRing, userId: string): ScheduleRecord {
  return sealSchedule(ring.active, {
    scheduleId: `sched-${randomUUID()}`,
    userId,
    category: 'payments',
    executeAt: Date.now() + 3_600_000,
    serveDuringGrace: true,
    requestedBy: 'operator:test',
    createdAt: Date.now(),
    state: 'pending',
    finishedAt: null,
    finishedBy: null,
    claimedBy: null,
    leaseUntil: null,
  });
}

/** Root keys of a user, unwrapped with `ring` (which may hold only the new KEK). */
async function openKeys(store: KeyStore, ring: KekRing, userId: string): Promise<(Buffer | null)[]> {
  const rows = await store.getKeychain(userId, { fresh: true });
  return rows
    .filter((r) => r.version === 1)
    .sort((a, b) => CATEGORIES.indexOf(a.category) - CATEGORIES.indexOf(b.category))
    .map((r) => (r.wrapped === null ? null : Buffer.from(unwrapRootKey(ring, { userId, ...r }, r.wrapped).expose())));
}

/**
 * The store, with a competing write made through another connection right
 * before chosen conditional writes: the window a real race hits by chance.
 */
class RacingStore implements Pick<KeyStore, 'replaceSealed' | 'replaceSealedAll'> {
  readonly fired: string[] = [];
  readonly lost: string[] = [];
  constructor(
    private readonly races: Map<string, () => Promise<void>>,
    private readonly inner: KeyStore,
  ) {}

  async #race(record: SealedRecord): Promise<void> {
    const key = recordKey(record);
    const race = this.races.get(key);
    if (race === undefined) return;
    this.races.delete(key);
    await race();
    this.fired.push(key);
  }

  async replaceSealed(record: SealedRecord, sealed: Uint8Array): Promise<boolean> {
    await this.#race(record);
    const written = await this.inner.replaceSealed(record, sealed);
    if (!written) this.lost.push(recordKey(record));
    return written;
  }

  async replaceSealedAll(changes: readonly SealedChange[]): Promise<boolean[]> {
    for (const change of changes) await this.#race(change.record);
    const written = await this.inner.replaceSealedAll(changes);
    changes.forEach((change, i) => {
      if (written[i] !== true) this.lost.push(recordKey(change.record));
    });
    return written;
  }
}

function recordKey(record: SealedRecord): string {
  switch (record.table) {
    case 'root_keys':
      return `key:${record.userId}:${record.row.category}`;
    case 'holds':
      return `hold:${record.hold.holdId}`;
    case 'schedules':
      return `schedule:${record.schedule.scheduleId}`;
    case 'signing_keys':
      return `signing:${record.key.generation}`;
  }
}

/** A store whose conditional writes run the races first; every other call goes to the real store. */
function racing(store: KeyStore, racer: RacingStore): KeyStore {
  return new Proxy(store, {
    get(inner, property, receiver) {
      if (property === 'replaceSealed') return racer.replaceSealed.bind(racer);
      if (property === 'replaceSealedAll') return racer.replaceSealedAll.bind(racer);
      const value = Reflect.get(inner, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(inner) : value;
    },
  });
}

export function rewrapConformance(target: () => Target): void {
  let store: KeyStore;
  let peer: KeyStore;
  before(async () => {
    store = target().store;
    peer = await target().openPeer();
  });

  it('moves key rows, holds, schedules and a signing key to the new kid, each opening to the same key', async () => {
    const { old, next, nextOnly } = keks();
    const users = await Promise.all(Array.from({ length: 6 }, () => newUser(store, old)));
    const h = hold(old, users[0]!.userId);
    const s = schedule(old, users[1]!.userId);
    assert.ok(await store.insertHold(h));
    assert.ok(await store.insertSchedule(s));
    const generation = 100_000 + randomInt(1_000_000);
    const seed = SecretBytes.random(32);
    const seedBytes = Buffer.from(seed.expose());
    await store.insertSigningKey({
      generation,
      kid: 'test-thumbprint',
      wrapped: wrapKey(old.active, signingKeyWrapInfo(generation), seed),
      createdAt: Date.now(),
    });

    const result = await rewrapAll(store, next, fast);
    // Exactly this case's rows: 18 keys, one hold, one schedule, one signing key; others' rows fail to open.
    assert.equal(result.counts.rewrapped, users.length * CATEGORIES.length + 3);
    for (const user of users) {
      assert.deepEqual(await openKeys(store, nextOnly, user.userId), user.keys, 'opens under the new KEK alone');
      for (const row of await store.getKeychain(user.userId, { fresh: true })) {
        assert.equal(wrappedKid(row.wrapped!), next.active.kid);
      }
    }
    const [heldNow] = await store.listHolds(h.userId);
    assert.ok(heldNow !== undefined && holdVerifies(nextOnly, heldNow));
    assert.equal(rowMacKid(heldNow.mac!), next.active.kid);
    const scheduled = await store.getSchedule(s.scheduleId);
    assert.ok(scheduled !== undefined && scheduleVerifies(nextOnly, scheduled));
    const signing = (await store.listSigningKeys()).find((k) => k.generation === generation)!;
    assert.deepEqual(
      Buffer.from(unwrapKey(nextOnly, signingKeyWrapInfo(generation), signing.wrapped).expose()),
      seedBytes,
    );

    const again = await rewrapAll(store, next, fast);
    assert.equal(again.counts.rewrapped, 0, 'a second run finds nothing to do');
    assert.ok(again.counts.current >= users.length * CATEGORIES.length + 3);
  });

  it('a shred, a hold release, a schedule finish and a rotation landing mid-re-wrap win; nothing comes back', async () => {
    const { old, next, nextOnly } = keks();
    const shredded = await newUser(store, old);
    const rotated = await newUser(store, old);
    const kept = await newUser(store, old);
    const h = hold(old, kept.userId);
    const s = schedule(old, kept.userId);
    assert.ok(await store.insertHold(h));
    assert.ok(await store.insertSchedule(s));
    const released = { releasedAt: Date.now(), releasedBy: 'operator:other' };
    const races = new Map<string, () => Promise<void>>([
      // Through the peer connection, as another server would: shred the whole keychain.
      [`key:${shredded.userId}:payments`, async () => void (await peer.shred(shredded.userId, undefined, Date.now()))],
      [
        `key:${rotated.userId}:profile`,
        async () => {
          const rootKey = SecretBytes.random(32);
          const ref = { userId: rotated.userId, category: 'profile', version: 2 };
          await peer.insertKeys(rotated.userId, [
            { category: 'profile', version: 2, wrapped: wrapRootKey(old.active, ref, rootKey), createdAt: Date.now() },
          ]);
          rootKey.wipe();
        },
      ],
      [
        `hold:${h.holdId}`,
        async () => {
          const sealedRelease = sealHold(old.active, { ...h, ...released });
          assert.ok(await peer.releaseHold(h.userId, h.holdId, { ...released, mac: sealedRelease.mac! }));
        },
      ],
      [
        `schedule:${s.scheduleId}`,
        async () => {
          const done = sealSchedule(old.active, {
            ...s,
            state: 'cancelled',
            finishedAt: Date.now(),
            finishedBy: 'operator:other',
          });
          const claim = { claimedBy: null, leaseUntil: null };
          assert.ok(
            await peer.finishSchedule(s.scheduleId, claim, {
              state: 'cancelled',
              finishedAt: done.finishedAt!,
              finishedBy: done.finishedBy!,
              mac: done.mac!,
            }),
          );
        },
      ],
    ]);
    const racer = new RacingStore(races, store);
    const result = await rewrapAll(racing(store, racer), next, fast);

    assert.equal(races.size, 0, `every race ran: ${racer.fired.join(', ')}`);
    assert.ok(racer.lost.includes(`key:${shredded.userId}:payments`), 'the write after the shred was refused');
    assert.ok(racer.lost.includes(`hold:${h.holdId}`) && racer.lost.includes(`schedule:${s.scheduleId}`));
    // The shred won: every row shredded, none written back by the re-wrap.
    for (const row of await store.getKeychain(shredded.userId, { fresh: true })) {
      assert.equal(row.wrapped, null, `${row.category} stays shredded`);
      assert.notEqual(row.shreddedAt, null);
    }
    // The rotation's new row was not overwritten or lost; it is either re-wrapped or left for the next run.
    const rotatedRows = await store.getKeychain(rotated.userId, { fresh: true });
    assert.equal(rotatedRows.length, CATEGORIES.length + 1, 'no row lost or doubled');
    assert.deepEqual(await openKeys(store, next, rotated.userId), rotated.keys);
    assert.deepEqual(await openKeys(store, nextOnly, kept.userId), kept.keys);
    // The release and the cancel stand, and their rows were re-sealed under the new kid after re-reading.
    const [heldNow] = await store.listHolds(h.userId);
    assert.equal(heldNow?.releasedAt, released.releasedAt);
    assert.ok(heldNow !== undefined && holdVerifies(nextOnly, heldNow));
    const scheduled = await store.getSchedule(s.scheduleId);
    assert.equal(scheduled?.state, 'cancelled');
    assert.ok(scheduled !== undefined && scheduleVerifies(nextOnly, scheduled));
    assert.ok(result.counts.raced >= 1, 'the row whose write lost to the shred counts as raced');
  });

  it('a page whose read or write times out is tried again from its cursor; the run completes', async () => {
    const { old, next, nextOnly } = keks();
    const users = await Promise.all(Array.from({ length: 4 }, () => newUser(store, old)));
    // The first scan of root_keys and the second batch of writes each fail once, as a driver timeout does.
    let scans = 0;
    let writes = 0;
    const flaky = new Proxy(store, {
      get(inner, name, receiver) {
        if (name === 'scanSealed') {
          return (table: string, ...rest: unknown[]): Promise<unknown> => {
            if (table === 'root_keys' && scans++ === 0) return Promise.reject(timeout());
            return (inner.scanSealed as (...args: unknown[]) => Promise<unknown>).call(inner, table, ...rest);
          };
        }
        if (name === 'replaceSealedAll') {
          return async (changes: readonly SealedChange[]) => {
            if (writes++ === 1) throw timeout();
            return inner.replaceSealedAll(changes);
          };
        }
        const value: unknown = Reflect.get(inner, name, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(inner) : value;
      },
    });
    const retries: string[] = [];
    const result = await rewrapAll(flaky, next, {
      ...fast,
      batch: 2,
      retryDelayMs: 1,
      onRetry: (r) => retries.push(`${r.phase} ${r.attempt} ${r.error}`),
    });
    // Both faults are retried. They land on one page or on two, as the rows' order falls (Cassandra pages
    // by token of random user ids): one page's second failure is its attempt 2 (a clean-clone run saw it).
    assert.equal(retries.length, 2, retries.join('; '));
    assert.ok(
      retries.every((r) => / [12] OperationTimedOutError$/.test(r)),
      retries.join('; '),
    );
    assert.ok(result.counts.rewrapped + result.counts.current >= users.length * CATEGORIES.length);
    for (const user of users) {
      assert.deepEqual(await openKeys(store, nextOnly, user.userId), user.keys, 'opens under the new KEK alone');
    }
    // A store error that waiting cannot cure ends the run at once.
    const broken = new Proxy(store, {
      get(inner, name, receiver) {
        if (name === 'scanSealed') {
          return () => Promise.reject(new PadlockError('INVALID_REQUEST', 'not a store outage'));
        }
        const value: unknown = Reflect.get(inner, name, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(inner) : value;
      },
    });
    let called = 0;
    await assert.rejects(
      rewrapAll(broken, next, { ...fast, retryDelayMs: 1, onRetry: () => called++ }),
      /not a store outage/,
    );
    assert.equal(called, 0);
  });

  it('two re-wraps at once (two connections): every row written once, by one of them', async () => {
    const { old, next, nextOnly } = keks();
    const users = await Promise.all(Array.from({ length: 10 }, () => newUser(store, old)));
    const [a, b] = await Promise.all([rewrapAll(store, next, fast), rewrapAll(peer, next, fast)]);
    assert.equal(a.counts.rewrapped + b.counts.rewrapped, users.length * CATEGORIES.length);
    for (const user of users) assert.deepEqual(await openKeys(store, nextOnly, user.userId), user.keys);
  });

  it('a row whose wrap does not open under any loaded KEK is left as it is, and counted failed', async () => {
    const { old, next } = keks();
    const user = await newUser(store, old);
    const stranger = keks().old;
    const alien = await newUser(store, stranger);
    const before = await store.getKeychain(alien.userId, { fresh: true });
    const result = await rewrapAll(store, next, fast);
    assert.ok(result.counts.failed >= CATEGORIES.length);
    assert.deepEqual(await store.getKeychain(alien.userId, { fresh: true }), before);
    assert.deepEqual(await openKeys(store, next, user.userId), user.keys);
  });
}

function timeout(): Error {
  const error = new Error('The host did not reply before timeout 2000 ms');
  error.name = 'OperationTimedOutError';
  return error;
}
