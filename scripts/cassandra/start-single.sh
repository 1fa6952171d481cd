#!/usr/bin/env bash
# Start the single test node used by the conformance tests and wait until it
# answers CQL: 127.0.0.1:9042 (CQL), 127.0.0.1:7000 (internode), JMX 7199,
# dc1/r1, data in <repo>/.cassandra/single/ (kept across restarts; wipe with
# `stop.sh --wipe`). Re-running it while the node is up only re-checks readiness.
#
# The single node and node 1 of the 3-node cluster (start-cluster.sh) both
# listen on 127.0.0.1:9042/7000, so only one of them can run at a time: run
# `scripts/cassandra/stop.sh` before switching. Each keeps its own data dir.
#
# Environment: CASS_HEAP, CASS_WAIT_SECS, CASS_NATIVE_PORT, CASS_DIR,
# CASS_CLUSTER_NAME (see start-node.sh).
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

CASS_NODE_NAME=single CASS_ADDR=127.0.0.1 CASS_DC=dc1 CASS_RACK=r1 \
CASS_SEEDS=127.0.0.1 CASS_JMX_PORT=7199 CASS_TOKEN=0 \
  exec "$DIR/start-node.sh" 1 "$@"
