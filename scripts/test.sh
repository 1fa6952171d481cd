#!/usr/bin/env bash
# The whole test suite, on a fresh machine. Phase 1 starts two memcached
# servers and one Cassandra node and runs every test file; phase 2 swaps the
# single node for the three-node, two-datacenter cluster and runs the
# *.cluster.test files. Servers that were already running are reused and left
# running; servers this script started are stopped at the end.
#   PADLOCK_TEST_SERVICES=none   run without starting servers; their tests skip (not allowed in CI)
#   arguments                    filter test files by substring (see run-tests.mjs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

started=()
cleanup() {
  local s
  for s in "${started[@]}"; do
    case "$s" in
      memcached) bash scripts/memcached/stop.sh 11311 11312 || true ;;
      single) bash scripts/cassandra/stop.sh --wipe single || true ;;
      cluster) bash scripts/cassandra/stop.sh --wipe 1 2 3 || true ;;
    esac
  done
}
trap cleanup EXIT

if [ "${PADLOCK_TEST_SERVICES:-all}" = none ]; then
  node scripts/run-tests.mjs "$@"
  exit
fi

alive .memcached/11311.pid || started+=(memcached)
bash scripts/memcached/start.sh 11311 11312
export PADLOCK_TEST_MEMCACHED=127.0.0.1:11311,127.0.0.1:11312

single_was_running=no
if alive .cassandra/single/cassandra.pid; then
  single_was_running=yes
else
  if alive .cassandra/node1/cassandra.pid; then
    echo "test.sh: the three-node cluster is running; stop it (scripts/cassandra/stop.sh) first" >&2
    exit 1
  fi
  started+=(single)
  bash scripts/cassandra/start-single.sh
fi
export PADLOCK_TEST_CASSANDRA=127.0.0.1:9042

status=0
node scripts/run-tests.mjs "$@" || status=$?
# The HTTP suite again, on Cassandra with memcached on (leaks.test tampers with
# the SQLite file itself, so it runs on SQLite only).
if [ $# -eq 0 ]; then
  PADLOCK_TEST_BACKEND=cassandra node scripts/run-tests.mjs \
    http/routes http/bad-input http/permissions http/staleness http/restart http/drain || status=$?
fi

if [ "$single_was_running" = yes ] && [ "${CI:-}" != true ]; then
  echo "test.sh: a Cassandra node this script did not start is running; skipping the cluster phase" >&2
  exit "$status"
fi
bash scripts/cassandra/stop.sh --wipe single
unset PADLOCK_TEST_CASSANDRA
started+=(cluster)
bash scripts/cassandra/start-cluster.sh
export PADLOCK_TEST_CLUSTER=127.0.0.1:9042,127.0.0.2:9042,127.0.0.3:9042
node scripts/run-tests.mjs --cluster "$@" || status=$?
exit "$status"
