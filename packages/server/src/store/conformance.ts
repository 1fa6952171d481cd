/*
 * The one test suite every KeyStore backend passes. A backend's test file calls
 * runKeyStoreConformance with a factory; see sqlite.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { lifecycleConformance } from './lifecycle-conformance.js';
import { rewrapConformance } from './rewrap-conformance.js';
import type { CredentialRecord, KeyRow, KeyStore, NewKeyRow, ServiceRecord, ServiceRow } from './types.js';

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
  /**
   * The schedule ids in the store's own index of schedules that withhold keys during their grace
   * period, read behind Padlock's back; only for a store that keeps one (Cassandra's schedules_withholding).
   */
  readonly withholdingIndex?: () => Promise<string[]>;
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

    it('moves the journal position by compare-and-set only, one winner of a race', async () => {
      const start = await store.journalApplied();
      assert.ok(Number.isSafeInteger(start) && start >= 0);
      assert.equal(await store.advanceJournal(start, start + 1), true);
      assert.equal(await store.journalApplied(), start + 1);
      assert.equal(await store.advanceJournal(start, start + 5), false, 'a stale "from" must not move it');
      assert.equal(await store.journalApplied(), start + 1);
      const peer = await target.openPeer();
      try {
        const won = await Promise.all([
          store.advanceJournal(start + 1, start + 2),
          peer.advanceJournal(start + 1, start + 3),
        ]);
        assert.equal(won.filter(Boolean).length, 1, `exactly one of two racing advances wins: ${won.join(',')}`);
        assert.equal(await peer.journalApplied(), won[0] === true ? start + 2 : start + 3);
      } finally {
        await peer.close();
      }
    });

    describe('services', () => {
      const permissions = { read: ['profile', 'payments'], create: true, rotate: false, shred: false, hold: false };
      const row = (serviceId: string, extra: Partial<ServiceRow> = {}): ServiceRow => ({
        serviceId,
        wrappedKey: blob(),
        permissions,
        createdAt: 1_700_000_000_000,
        tlsIdentities: [],
        generation: 1,
        credentialStates: [],
        mac: randomBytes(40),
        ...extra,
      });
      const credential = (credentialId: string, revokedAt: number | null = null): CredentialRecord => ({
        credentialId,
        verifier: randomBytes(32),
        createdAt: 1000,
        revokedAt,
        mac: randomBytes(40),
      });
      const freshService = (): string => `svc-${randomUUID().slice(0, 8)}`;
      const bytes = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('hex'));
      const plain = (r: ServiceRecord | undefined) =>
        r === undefined
          ? undefined
          : {
              ...r,
              wrappedKey: bytes(r.wrappedKey),
              mac: bytes(r.mac),
              credentials: r.credentials.map((c) => ({ ...c, verifier: bytes(c.verifier), mac: bytes(c.mac) })),
            };

      it('creates a service once and reads every field back, byte for byte', async () => {
        const serviceId = freshService();
        const record = row(serviceId, {
          tlsIdentities: ['spiffe://example.org/ns/a/sa/b', 'CN=newsletter, O=Example Corp', 'CN=Zürich'],
          credentialStates: [
            { credentialId: 'c2', revokedAt: null },
            { credentialId: 'c1', revokedAt: 1_700_000_000_456 },
          ],
          generation: 7,
        });
        assert.equal(await store.createService(record), true);
        assert.equal(await store.createService({ ...record, wrappedKey: blob() }), false);
        const read = await store.getService(serviceId);
        assert.deepEqual(plain(read), plain({ ...record, credentials: [] }));
        assert.equal(await store.getService(freshService()), undefined);
        assert.ok((await store.listServices()).some((s) => s.serviceId === serviceId));
      });

      it('updates a service only at the generation it expects, writing its credentials with it', async () => {
        const serviceId = freshService();
        const first = row(serviceId);
        await store.createService(first);
        const c1 = credential('c1');
        const second = row(serviceId, {
          wrappedKey: first.wrappedKey,
          permissions: { read: [], create: false, rotate: true, shred: true, hold: true },
          tlsIdentities: ['CN=a'],
          generation: 2,
          credentialStates: [{ credentialId: 'c1', revokedAt: null }],
        });
        assert.equal(await store.updateService(second, 1, [c1]), true);
        assert.deepEqual(plain(await store.getService(serviceId)), plain({ ...second, credentials: [c1] }));

        // A writer that read generation 1 lost the race: nothing of its row changes.
        assert.equal(await store.updateService(row(serviceId, { generation: 2 }), 1), false);
        assert.deepEqual(plain(await store.getService(serviceId)), plain({ ...second, credentials: [c1] }));

        // A revocation replaces the credential row; a second credential is added beside it.
        const revoked = { ...c1, revokedAt: 3000, mac: randomBytes(40) };
        const c2 = credential('c2');
        const third = { ...second, generation: 3, mac: randomBytes(40) };
        assert.equal(await store.updateService(third, 2, [revoked, c2]), true);
        const read = await store.getService(serviceId);
        assert.deepEqual(plain(read), plain({ ...third, credentials: [revoked, c2] }));
        assert.equal(await store.updateService(row(freshService(), { generation: 2 }), 1, [c2]), false, 'no service');
      });

      it('updates a row from before generations (generation 0)', async () => {
        const serviceId = freshService();
        await store.createService(row(serviceId, { generation: 0, mac: null }));
        assert.equal((await store.getService(serviceId))?.mac, null);
        assert.equal(await store.updateService(row(serviceId, { generation: 1 }), 0), true);
        assert.equal((await store.getService(serviceId))?.generation, 1);
        assert.equal(await store.updateService(row(serviceId, { generation: 2 }), 0), false);
      });

      it('lets exactly one of many concurrent updates from one generation win, over two connections', async () => {
        const peer = await target.openPeer();
        const serviceId = freshService();
        await store.createService(row(serviceId));
        const attempts = Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? store : peer).updateService(row(serviceId, { generation: 2, tlsIdentities: [`CN=${i}`] }), 1),
        );
        const settled = await Promise.allSettled(attempts);
        const won = settled.filter((s) => s.status === 'fulfilled' && s.value).length;
        assert.equal(won, 1);
        const read = await store.getService(serviceId);
        assert.equal(read?.generation, 2);
      });
    });

    // Before the receipts cases: those insert signing-key rows of random bytes, which no KEK unwraps, and
    // a ReceiptSigner on this store (the lifecycle's KeyService has one) would then find no key it can use.
    describe('holds and scheduled shreds', () => {
      lifecycleConformance(() => target);
    });

    describe('receipts, signing keys and the audit log', () => {
      it("stores a receipt, finds it by id and lists a user's receipts oldest first", async () => {
        const userId = freshUser();
        const a = { receiptId: randomBytes(16).toString('hex'), userId, issuedAt: 1000, jws: 'a.b.c' };
        const b = { receiptId: randomBytes(16).toString('hex'), userId, issuedAt: 2000, jws: 'd.e.f' };
        await store.putReceipt(b);
        await store.putReceipt(a);
        assert.deepEqual(await store.getReceipt(a.receiptId), a);
        assert.equal(await store.getReceipt(randomBytes(16).toString('hex')), undefined);
        assert.deepEqual(await store.listReceipts(userId), [a, b]);
        assert.deepEqual(await store.listReceipts(freshUser()), []);
      });

      it('inserts a signing key generation once, racing over two connections', async () => {
        const peer = await target.openPeer();
        const generation = 1000 + Math.floor(Math.random() * 1_000_000);
        const key = (kid: string) => ({ generation, kid, wrapped: randomBytes(60), createdAt: 5000 });
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? store : peer).insertSigningKey(key(`kid-${i}`))),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = `kid-${results.indexOf(true)}`;
        const listed = (await peer.listSigningKeys()).filter((k) => k.generation === generation);
        assert.deepEqual(
          listed.map((k) => k.kid),
          [winner],
        );
        const all = await store.listSigningKeys();
        assert.deepEqual(
          all.map((k) => k.generation),
          [...all.map((k) => k.generation)].sort((x, y) => x - y),
          'listed by generation',
        );
      });

      it('appends an audit entry once per (chain, seq), lists chains and reads a chain by seq', async () => {
        const chainId = `conf-${randomUUID()}`;
        const entry = (seq: number, body: string) => ({ chainId, seq, at: seq * 10, body, hash: `h${seq}` });
        assert.equal(await store.appendAudit(entry(2, 'two')), true);
        assert.equal(await store.appendAudit(entry(1, 'one')), true);
        const peer = await target.openPeer();
        const racing = await Promise.all([store.appendAudit(entry(3, 'x')), peer.appendAudit(entry(3, 'y'))]);
        assert.equal(racing.filter(Boolean).length, 1, 'one of two writers of the same seq wins');
        assert.equal(await store.appendAudit(entry(1, 'again')), false);
        const rows = await peer.readAuditChain(chainId);
        assert.deepEqual(
          rows.map((r) => [r.seq, r.body, r.at]),
          [
            [1, 'one', 10],
            [2, 'two', 20],
            [3, racing[0] ? 'x' : 'y', 30],
          ],
        );
        assert.ok((await store.listAuditChains()).includes(chainId));
        assert.deepEqual(await store.readAuditChain(`conf-${randomUUID()}`), []);
      });

      it('stores checkpoints by chain and seq, listed in seq order', async () => {
        const chainId = `conf-${randomUUID()}`;
        await store.putAuditCheckpoint({ chainId, seq: 9, at: 90, jws: 'x.y.z' });
        await store.putAuditCheckpoint({ chainId, seq: 3, at: 30, jws: 'a.b.c' });
        assert.deepEqual(await store.listAuditCheckpoints(chainId), [
          { chainId, seq: 3, at: 30, jws: 'a.b.c' },
          { chainId, seq: 9, at: 90, jws: 'x.y.z' },
        ]);
        assert.ok((await store.listAuditChains()).includes(chainId), 'a chain with only checkpoints is listed');
      });
    });

    // Last: its signing-key rows are wrapped under KEKs no other case holds.
    describe('KEK re-wrap', () => {
      rewrapConformance(() => target);
    });
  });
}
