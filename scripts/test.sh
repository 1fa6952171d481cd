#!/usr/bin/env bash
# The whole test suite, on a fresh machine: starts the real servers the tests
# need (two memcached servers, one Cassandra node), runs every compiled test
# file, and stops what it started. Servers already running (started by the same
# scripts) are reused and left running.
#   PADLOCK_TEST_SERVICES=none   run without starting servers; their tests skip (not allowed in CI)
#   arguments                    filter test files by substring (see run-tests.mjs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=()
cleanup() {
  for s in "${started[@]}"; do
    case "$s" in
      memcached) bash scripts/memcached/stop.sh 11311 11312 || true ;;
      cassandra) bash scripts/cassandra/stop.sh || true ;;
    esac
  done
}
trap cleanup EXIT

if [ "${PADLOCK_TEST_SERVICES:-all}" != none ]; then
  if [ ! -f .memcached/11311.pid ] || ! kill -0 "$(cat .memcached/11311.pid)" 2>/dev/null; then started+=(memcached); fi
  bash scripts/memcached/start.sh 11311 11312
  export PADLOCK_TEST_MEMCACHED=127.0.0.1:11311,127.0.0.1:11312
  if [ -x scripts/cassandra/start-single.sh ]; then
    if ! python3 scripts/cassandra/cql.py 127.0.0.1 "SELECT release_version FROM system.local" >/dev/null 2>&1; then
      started+=(cassandra)
      bash scripts/cassandra/fetch.sh
      bash scripts/cassandra/start-single.sh
    fi
    export PADLOCK_TEST_CASSANDRA=127.0.0.1:9042
  fi
fi
node scripts/run-tests.mjs "$@"
