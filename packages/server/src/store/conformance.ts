/*
 * The one test suite every KeyStore backend passes. A backend's test file calls
 * runKeyStoreConformance with a factory; see sqlite.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { lifecycleConformance } from './lifecycle-conformance.js';
import type { KeyRow, KeyStore, NewKeyRow, ServiceRecord } from './types.js';

export interface ConformanceTarget {
  /** The store under test. */
  readonly store: KeyStore;
  /**
   * Another, independent connection to the same data (another process's view
   * for SQLite, another driver session for Cassandra). Used by the race cases.
   */
  openPeer(): Promise<KeyStore>;
  /** Releases whatever the factory set up. */
  dispose(): Promise<void>;
  /**
   * Edits one stored row behind Padlock's back, as someone with write access to
   * the database but not the KEK would: a hold's released_at, or a schedule's
   * state or execute_at. Used to show that edited rows are refused.
   */
  tamper(edit: RowEdit): Promise<void>;
}

export type RowEdit =
  | { readonly table: 'holds'; readonly userId: string; readonly holdId: string; readonly releasedAt: number }
  | { readonly table: 'schedules'; readonly scheduleId: string; readonly executeAt: number };

const CATEGORIES = ['profile', 'payments', 'advertising'] as const;

function blob(): Buffer {
  return randomBytes(70);
}

function newRows(version = 1, createdAt = Date.now()): NewKeyRow[] {
  return CATEGORIES.map((category) => ({ category, version, wrapped: blob(), createdAt }));
}

function freshUser(): string {
  return `conf-${randomUUID()}`;
}

function byCategory(rows: readonly KeyRow[]): Map<string, KeyRow[]> {
  const map = new Map<string, KeyRow[]>();
  for (const row of rows) map.set(row.category, [...(map.get(row.category) ?? []), row]);
  return map;
}

/** Registers the conformance cases for one backend with node:test. */
export function runKeyStoreConformance(name: string, open: () => Promise<ConformanceTarget>): void {
  describe(`KeyStore conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let store: KeyStore;
    before(async () => {
      target = await open();
      store = target.store;
    });
    after(async () => {
      await target.dispose();
    });

    it('answers ping', async () => {
      await store.ping();
    });

    it('returns an empty keychain for an unknown user', async () => {
      assert.deepEqual(await store.getKeychain(freshUser()), []);
      assert.deepEqual(await store.getKeychain(freshUser(), { fresh: true }), []);
    });

    it('inserts a keychain and reads it back byte for byte, ordered by category and version', async () => {
      const user = freshUser();
      const rows = newRows(1, 1_700_000_000_123);
      const inserted = await store.insertKeys(user, rows);
      assert.equal(inserted.length, rows.length);
      const read = await store.getKeychain(user, { fresh: true });
      const expected = [...rows]
        .sort((a, b) => a.category.localeCompare(b.category))
        .map((r) => ({ category: r.category, version: r.version, createdAt: r.createdAt, shreddedAt: null }));
      assert.deepEqual(
        read.map((r) => ({
          category: r.category,
          version: r.version,
          createdAt: r.createdAt,
          shreddedAt: r.shreddedAt,
        })),
        expected,
      );
      for (const row of read) {
        const original = rows.find((r) => r.category === row.category);
        assert.ok(original && row.wrapped && Buffer.from(row.wrapped).equals(Buffer.from(original.wrapped)));
      }
    });

    it('is idempotent: a second insert of the same rows inserts nothing and changes nothing', async () => {
      const user = freshUser();
      const first = newRows();
      await store.insertKeys(user, first);
      const second = await store.insertKeys(user, newRows());
      assert.deepEqual(second, []);
      const read = await store.getKeychain(user, { fresh: true });
      for (const row of read) {
        const original = first.find((r) => r.category === row.category);
        assert.ok(original && row.wrapped && Buffer.from(row.wrapped).equals(Buffer.from(original.wrapped)));
      }
    });

    it('ends 64 concurrent creates of one user, over two connections, with exactly one root key per category', async () => {
      const peer = await target.openPeer();
      try {
        const user = freshUser();
        const attempts = Array.from({ length: 64 }, (_, i) => ({ rows: newRows(), via: i % 2 === 0 ? store : peer }));
        // A store that fails fast may refuse some of them (Cassandra: Paxos contention past
        // cas_contention_timeout); a refused create must write nothing, and the rest must agree.
        const settled = await Promise.allSettled(attempts.map((a) => a.via.insertKeys(user, a.rows)));
        const results = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
        assert.ok(results.length > 0, 'every one of 64 creates failed');
        const winners = new Map<string, Buffer>();
        for (const inserted of results) {
          for (const row of inserted) {
            assert.ok(!winners.has(row.category), `two creates both inserted ${row.category}`);
            winners.set(row.category, Buffer.from(row.wrapped));
          }
        }
        for (const via of [store, peer]) {
          const read = await via.getKeychain(user, { fresh: true });
          assert.equal(read.length, CATEGORIES.length, 'exactly one root key per category');
          for (const row of read) {
            const written = attempts.find((a) =>
              a.rows.some(
                (r) => r.category === row.category && Buffer.from(r.wrapped).equals(Buffer.from(row.wrapped ?? [])),
              ),
            );
            assert.ok(written, `${row.category} holds bytes no create wrote`);
            const winner = winners.get(row.category);
            if (winner !== undefined)
              assert.ok(winner.equals(Buffer.from(row.wrapped ?? [])), `${row.category} is not the winner's key`);
          }
        }
        if (target.store.kind === 'sqlite') assert.equal(results.length, 64, 'SQLite refuses no create');
      } finally {
        await peer.close();
      }
    });

    it('keeps versions apart: a rotation adds a version and leaves the old one readable', async () => {
      const user = freshUser();
      await store.insertKeys(user, newRows(1));
      const v2 = { category: 'profile', version: 2, wrapped: blob(), createdAt: Date.now() };
      assert.equal((await store.insertKeys(user, [v2])).length, 1);
      assert.equal((await store.insertKeys(user, [{ ...v2, wrapped: blob() }])).length, 0, 'version 2 exists');
      const profile = byCategory(await store.getKeychain(user, { fresh: true })).get('profile') ?? [];
      assert.deepEqual(
        profile.map((r) => r.version),
        [1, 2],
      );
      assert.ok(profile.every((r) => r.wrapped !== null));
      assert.ok(Buffer.from(profile[1]?.wrapped ?? []).equals(v2.wrapped));
    });

    it('shreds one category: every version loses its bytes, a marker stays, other categories are untouched', async () => {
      const user = freshUser();
      await store.insertKeys(user, newRows(1));
      await store.insertKeys(user, [{ category: 'advertising', version: 2, wrapped: blob(), createdAt: Date.now() }]);
      const at = 1_800_000_000_000;
      assert.equal(await store.shred(user, 'advertising', at), 2);
      assert.equal(await store.shred(user, 'advertising', at + 1), 0, 'shredding again shreds nothing');
      const rows = byCategory(await store.getKeychain(user, { fresh: true }));
      const advertising = rows.get('advertising') ?? [];
      assert.deepEqual(
        advertising.map((r) => [r.version, r.wrapped, r.shreddedAt]),
        [
          [1, null, at],
          [2, null, at],
        ],
      );
      for (const category of ['profile', 'payments']) {
        const [row] = rows.get(category) ?? [];
        assert.ok(row && row.wrapped !== null && row.shreddedAt === null);
      }
    });

    it('shreds a whole keychain and never brings a shredded version back', async () => {
      const user = freshUser();
      await store.insertKeys(user, newRows(1));
      assert.equal(await store.shred(user, undefined, Date.now()), CATEGORIES.length);
      assert.deepEqual(
        await store.insertKeys(user, newRows(1)),
        [],
        'a create after a shred must not revive version 1',
      );
      const rows = await store.getKeychain(user, { fresh: true });
      assert.equal(rows.length, CATEGORIES.length);
      assert.ok(rows.every((r) => r.wrapped === null && r.shreddedAt !== null));
      // Opt-in after opt-out: a new version, not the old one.
      assert.equal((await store.insertKeys(user, [{ ...newRows(2)[0]!, category: 'profile' }])).length, 1);
      const profile = (await store.getKeychain(user, { fresh: true })).filter((r) => r.category === 'profile');
      assert.deepEqual(
        profile.map((r) => [r.version, r.wrapped === null]),
        [
          [1, true],
          [2, false],
        ],
      );
    });

    it('shredding an unknown user or category shreds nothing', async () => {
      assert.equal(await store.shred(freshUser(), undefined, Date.now()), 0);
      const user = freshUser();
      await store.insertKeys(user, newRows());
      assert.equal(await store.shred(user, 'no-such-category', Date.now()), 0);
    });

    it('multi-gets present, missing, shredded and repeated users', async () => {
      const present = freshUser();
      const shredded = freshUser();
      const missing = freshUser();
      await store.insertKeys(present, newRows());
      await store.insertKeys(shredded, newRows());
      await store.shred(shredded, undefined, Date.now());
      const many = Array.from({ length: 120 }, () => freshUser());
      await Promise.all(many.map((u) => store.insertKeys(u, newRows())));
      const result = await store.getKeychains([present, missing, shredded, present, ...many]);
      assert.equal(result.get(present)?.length, CATEGORIES.length);
      assert.deepEqual(result.get(missing), []);
      assert.ok(result.get(shredded)?.every((r) => r.wrapped === null));
      for (const u of many) assert.equal(result.get(u)?.length, CATEGORIES.length, u);
      assert.equal(result.size, 3 + many.length);
      assert.deepEqual((await store.getKeychains([])).size, 0);
    });

    describe('services', () => {
      const permissions = { read: ['profile', 'payments'], create: true, rotate: false, shred: false, hold: false };

      it('creates a service once and reads it back', async () => {
        const serviceId = `svc-${randomUUID().slice(0, 8)}`;
        const record: Omit<ServiceRecord, 'credentials'> = {
          serviceId,
          wrappedKey: blob(),
          permissions,
          createdAt: 1_700_000_000_000,
        };
        assert.equal(await store.createService(record), true);
        assert.equal(await store.createService({ ...record, wrappedKey: blob() }), false);
        const read = await store.getService(serviceId);
        assert.ok(read);
        assert.ok(Buffer.from(read.wrappedKey).equals(Buffer.from(record.wrappedKey)));
        assert.deepEqual(read.permissions, permissions);
        assert.deepEqual(read.credentials, []);
        assert.equal(await store.getService(`svc-${randomUUID().slice(0, 8)}`), undefined);
        assert.ok((await store.listServices()).some((s) => s.serviceId === serviceId));
      });

      it('changes permissions, including to none', async () => {
        const serviceId = `svc-${randomUUID().slice(0, 8)}`;
        await store.createService({ serviceId, wrappedKey: blob(), permissions, createdAt: Date.now() });
        const none = { read: [], create: false, rotate: false, shred: false, hold: false };
        assert.equal(await store.setPermissions(serviceId, none), true);
        assert.deepEqual((await store.getService(serviceId))?.permissions, none);
        const all = { read: ['advertising'], create: true, rotate: true, shred: true, hold: true };
        assert.equal(await store.setPermissions(serviceId, all), true);
        assert.deepEqual((await store.getService(serviceId))?.permissions, all);
        assert.equal(await store.setPermissions('svc-missing-x', all), false);
      });

      it('keeps several live credentials and revokes one at a time', async () => {
        const serviceId = `svc-${randomUUID().slice(0, 8)}`;
        await store.createService({ serviceId, wrappedKey: blob(), permissions, createdAt: Date.now() });
        const first = { credentialId: 'c1', verifier: randomBytes(32), createdAt: 1000, revokedAt: null };
        const second = { credentialId: 'c2', verifier: randomBytes(32), createdAt: 2000, revokedAt: null };
        assert.equal(await store.addCredential(serviceId, first), true);
        assert.equal(await store.addCredential(serviceId, second), true);
        assert.equal(await store.addCredential('svc-missing-y', first), false);
        assert.equal(await store.revokeCredential(serviceId, 'c1', 3000), true);
        assert.equal(await store.revokeCredential(serviceId, 'c1', 4000), false, 'already revoked');
        assert.equal(await store.revokeCredential(serviceId, 'nope', 4000), false);
        const read = await store.getService(serviceId);
        assert.deepEqual(
          read?.credentials.map((c) => [c.credentialId, c.revokedAt, Buffer.from(c.verifier).toString('hex')]),
          [
            ['c1', 3000, first.verifier.toString('hex')],
            ['c2', null, second.verifier.toString('hex')],
          ],
        );
      });
    });

    describe('holds and scheduled shreds', () => {
      lifecycleConformance(() => target);
    });
  });
}
