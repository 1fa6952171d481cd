import type { Scenario } from '../lib/scenario.js';
import { cassandraNodeKill, datacenterCut } from './cassandra.js';
import { crashCassandra, crashSqlite } from './crash.js';
import { groupKill, sigtermDrain } from './groups.js';
import { hostileInput } from './hostile.js';
import { leakScan } from './leak.js';
import { memcachedCorrupt, memcachedKill, memcachedPause } from './memcached.js';
import { overload } from './overload.js';
import { restoreUnderLoad } from './restore.js';
import { schedulesUnderFailure } from './schedules.js';
import { storeBlackhole, storeReset, storeSlow } from './store.js';

/**
 * Every scenario, in report order. memcached-corrupt comes first: the first scenario runs on nodes
 * a minute old, and it alone has no latency target. The leak scan comes last: it scans what the
 * others left.
 */
export const SCENARIOS: readonly Scenario[] = [
  memcachedCorrupt,
  memcachedKill,
  memcachedPause,
  cassandraNodeKill,
  schedulesUnderFailure,
  datacenterCut,
  storeSlow,
  storeBlackhole,
  storeReset,
  groupKill,
  sigtermDrain,
  crashSqlite,
  crashCassandra,
  restoreUnderLoad,
  overload,
  hostileInput,
  leakScan,
];
