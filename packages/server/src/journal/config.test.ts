import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../config.js';

/* The journal section of the config: defaults, and the placements that would put the journal in a store backup. */

const KEKS = { active: 'k1', files: [{ kid: 'k1', path: 'kek.bin' }] };

function parse(extra: Record<string, unknown>): ReturnType<typeof parseConfig> {
  return parseConfig({ keks: KEKS, ...extra }, '/etc/padlock');
}

describe('config: journal', () => {
  it('defaults to a file in its own directory beside the config (not the store directory), replayed automatically, checked every second', () => {
    const { journal } = parse({});
    assert.deepEqual(journal, {
      kind: 'file',
      file: { path: '/etc/padlock/shred-journal/padlock-shreds.journal' },
      cassandra: {
        keyspace: 'padlock_journal',
        contactPoints: [],
        replication: { dc1: 1 },
        serialConsistency: 'SERIAL',
      },
      replay: 'auto',
      checkIntervalMs: 1000,
    });
    assert.ok(Object.isFrozen(journal.file));
  });

  const refused: readonly { name: string; config: Record<string, unknown>; message: RegExp }[] = [
    {
      name: 'the store file itself',
      config: { store: { sqlite: { path: 'data/padlock.db' } }, journal: { file: { path: 'data/padlock.db' } } },
      message: /config\.journal\.file\.path: \/etc\/padlock\/data\/padlock\.db is the store's file or named after it/,
    },
    {
      name: "a name SQLite's own files take (padlock.db-wal)",
      config: { journal: { file: { path: '/etc/padlock/padlock.db-wal' } } },
      message: /named after it/,
    },
    {
      name: 'a name a copy of padlock.db* takes',
      config: { journal: { file: { path: 'padlock.db.journal' } } },
      message: /named after it/,
    },
    {
      name: "the store's keyspace for a Cassandra journal",
      config: { store: { kind: 'cassandra' }, journal: { kind: 'cassandra', cassandra: { keyspace: 'padlock' } } },
      message: /config\.journal\.cassandra\.keyspace: must differ from the store's keyspace/,
    },
    {
      name: 'a Cassandra journal without contact points beside a SQLite store',
      config: { journal: { kind: 'cassandra' } },
      message: /config\.journal\.cassandra\.contactPoints: required when the store is not Cassandra/,
    },
    {
      name: 'an unknown setting',
      config: { journal: { path: 'x' } },
      message: /config\.journal: unknown setting "path"/,
    },
    {
      name: 'an unknown replay mode',
      config: { journal: { replay: 'never' } },
      message: /config\.journal\.replay: must be one of "auto", "manual"/,
    },
    {
      name: 'a check interval under 100 ms',
      config: { journal: { checkIntervalMs: 10 } },
      message: /config\.journal\.checkIntervalMs/,
    },
  ];
  for (const { name, config, message } of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parse(config),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it('accepts a Cassandra journal in its own keyspace, or on another cluster beside SQLite', () => {
    assert.equal(
      parse({ store: { kind: 'cassandra' }, journal: { kind: 'cassandra' } }).journal.cassandra.keyspace,
      'padlock_journal',
    );
    assert.deepEqual(
      parse({ journal: { kind: 'cassandra', cassandra: { contactPoints: ['10.0.0.9:9042'] } } }).journal.cassandra
        .contactPoints,
      ['10.0.0.9:9042'],
    );
  });
});
