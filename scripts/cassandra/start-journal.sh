#!/usr/bin/env bash
# Starts the journal node: a single node of its own cluster (padlock-journal) on 127.0.0.6,
# CQL 9042, JMX 7699, data in .cassandra/journal/, for developing the shred journal and the
# snapshot-restore test (PADLOCK_TEST_CASSANDRA_RESTORE=127.0.0.6:9042) beside the other nodes.
# CI uses the single node instead. CASS_HEAP (default 512m here), CASS_WAIT_SECS, CASS_DIR as in
# start-node.sh. Stop it with `stop.sh journal`.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

CASS_NODE_NAME=journal CASS_ADDR=127.0.0.6 CASS_DC=dc1 CASS_RACK=r1 CASS_SEEDS=127.0.0.6 CASS_JMX_PORT=7699 \
CASS_TOKEN=0 CASS_CLUSTER_NAME=padlock-journal CASS_HEAP="${CASS_HEAP:-512m}" \
  "$CASS_SCRIPT_DIR/start-node.sh" 1
