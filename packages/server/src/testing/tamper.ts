import cassandra from 'cassandra-driver';
import type { CassandraKeyStore } from '../store/cassandra.js';
import type { RowEdit } from '../store/conformance.js';

/** A plain write straight to a Cassandra table, as someone with CQL access but not the KEK would make. */
export async function tamperCassandra(store: CassandraKeyStore, keyspace: string, edit: RowEdit): Promise<void> {
  const q = { prepare: true, consistency: cassandra.types.consistencies.quorum };
  if (edit.table === 'holds')
    await store.driver.execute(
      `UPDATE ${keyspace}.holds SET released_at = ? WHERE user_id = ? AND hold_id = ?`,
      [cassandra.types.Long.fromNumber(edit.releasedAt), edit.userId, edit.holdId],
      q,
    );
  else
    await store.driver.execute(
      `UPDATE ${keyspace}.schedules SET execute_at = ? WHERE schedule_id = ?`,
      [cassandra.types.Long.fromNumber(edit.executeAt), edit.scheduleId],
      q,
    );
}
