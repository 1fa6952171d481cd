#!/usr/bin/env bash
# The whole test suite, on a fresh machine. Phase 1 starts two memcached
# servers, one Cassandra node and, beside it, the secure node (127.0.0.4: TLS
# and password login, scripts/cassandra/start-secure.sh) and runs every test
# file; phase 2 stops both nodes, starts the three-node, two-datacenter cluster
# and runs the *.cluster.test files; phase 3 (no filter given) runs the JVM and Python clients' own
# tests, the three-SDK interop test, the Prometheus rule tests, the console in Chromium and the
# deployment files' checks. Servers that were already running are reused and left
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
  # A secure node still starting would be up after its stop: let its start finish first.
  if [ -n "${secure_start:-}" ]; then wait "$secure_start" 2>/dev/null || true; fi
  for s in "${started[@]}"; do
    case "$s" in
      memcached) bash scripts/memcached/stop.sh 11311 11312 || true ;;
      single) bash scripts/cassandra/stop.sh --wipe single || true ;;
      secure) bash scripts/cassandra/stop.sh --wipe secure || true ;;
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

# The secure node starts in the background while the single node starts (both
# are mostly JVM start-up; together they take about as long as one).
# The jars first, once: two start scripts fetching into one lib/ at the same time overwrite each
# other's jars under a starting JVM (a clean-clone CI run lost its single node that way).
bash scripts/cassandra/fetch.sh
secure_start=
if ! alive .cassandra/secure/cassandra.pid; then
  started+=(secure)
  bash scripts/cassandra/start-secure.sh &
  secure_start=$!
fi

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
if [ -n "$secure_start" ]; then wait "$secure_start"; else bash scripts/cassandra/start-secure.sh; fi
export PADLOCK_TEST_CASSANDRA_SECURE=127.0.0.4:9042
export PADLOCK_TEST_CASSANDRA_SECURE_DIR="$root/.cassandra/secure/client"

status=0
node scripts/run-tests.mjs "$@" || status=$?
# The HTTP suite again, on Cassandra with memcached on (leaks.test tampers with
# the SQLite file itself, so it runs on SQLite only).
if [ $# -eq 0 ]; then
  PADLOCK_TEST_BACKEND=cassandra node scripts/run-tests.mjs \
    http/routes http/bad-input http/permissions http/staleness http/restart http/drain http/lifecycle \
    lifecycle-crash lifecycle-finish || status=$?
fi

if [ "$single_was_running" = yes ] && [ "${CI:-}" != true ]; then
  echo "test.sh: a Cassandra node this script did not start is running; skipping the cluster phase" >&2
  exit "$status"
fi
if [[ " ${started[*]} " == *" secure "* ]]; then
  bash scripts/cassandra/stop.sh --wipe single secure
else
  bash scripts/cassandra/stop.sh --wipe single
fi
unset PADLOCK_TEST_CASSANDRA PADLOCK_TEST_CASSANDRA_SECURE PADLOCK_TEST_CASSANDRA_SECURE_DIR
started+=(cluster)
bash scripts/cassandra/start-cluster.sh
export PADLOCK_TEST_CLUSTER=127.0.0.1:9042,127.0.0.2:9042,127.0.0.3:9042
node scripts/run-tests.mjs --cluster "$@" || status=$?

# Phase 3, the whole suite only: what is not Node's test runner. The cluster stops first (its nodes
# would take CPU from these). The JVM and Python clients build and test themselves (Maven Central,
# PyPI), then the three SDKs run the interop test against real servers; the Prometheus rules under
# promtool (Debian's, unpacked into .padlock/promtool); the console in headless
# Chromium (Debian's package); the deployment files (Go test, podman). PADLOCK_TEST_EXTRAS=none skips it.
if [ $# -eq 0 ] && [ "${PADLOCK_TEST_EXTRAS:-all}" != none ]; then
  bash scripts/cassandra/stop.sh --wipe 1 2 3
  started=("${started[@]/cluster/}")
  for step in "bash clients/java/ci.sh" "bash clients/python/ci.sh" "node --test clients/interop/interop.test.mjs" \
    "bash scripts/rules-test.sh" "bash scripts/console-test.sh" "bash scripts/deploy-test.sh"; do
    began=$(date +%s)
    $step || { status=$?; echo "test.sh: FAILED: $step" >&2; }
    echo "test.sh: $step took $(($(date +%s) - began)) s"
  done
fi
exit "$status"
