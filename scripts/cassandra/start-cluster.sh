#!/usr/bin/env bash
# Start the local 3-node, 2-datacenter Cassandra test cluster and verify it.
#
#   node1  127.0.0.1  dc1/r1  JMX 7199  seed   data: .cassandra/node1
#   node2  127.0.0.2  dc1/r1  JMX 7299         data: .cassandra/node2
#   node3  127.0.0.3  dc2/r1  JMX 7399  seed   data: .cassandra/node3
#   CQL 9042 and internode 7000 on each address; cluster_name padlock-test.
#
# Nodes start one after another (2 cores), each waited for; then every node
# must list the 2 others in system.peers and all must agree on the schema.
# Node 1 and the single node (start-single.sh) share 127.0.0.1:9042/7000:
# run `scripts/cassandra/stop.sh` before switching between them.
# Re-running it while the cluster is up only re-checks it.
#
# Environment: CASS_HEAP, CASS_WAIT_SECS, CASS_DIR (see start-node.sh).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

if [ -n "$(cass_live_pid "$(cass_node_dir single)")" ]; then
  cass_die "the single node is running on 127.0.0.1: stop it first (scripts/cassandra/stop.sh single)"
fi
# The cluster's nodes must not inherit settings meant for one node.
unset CASS_ADDR CASS_DC CASS_RACK CASS_SEEDS CASS_JMX_PORT CASS_NODE_NAME CASS_TOKEN

t0=$(date +%s)
for n in 1 2 3; do
  "$CASS_SCRIPT_DIR/start-node.sh" "$n"
done

for n in 1 2 3; do
  if ! out="$(python3 "$CASS_SCRIPT_DIR/cql.py" --wait 60 --wait-peers 2 --schema-agreement --json "127.0.0.$n" 2>&1)"; then
    printf '%s\n' "$out" >&2
    cass_die "node$n (127.0.0.$n) does not see both other nodes"
  fi
  peers="$(printf '%s\n' "$out" | head -n1 | python3 -c 'import json,sys; print(" ".join(sorted("%s(%s)" % (p["peer"], p["data_center"]) for p in json.load(sys.stdin))))')"
  cass_log "node$n sees its 2 peers: $peers; $(printf '%s\n' "$out" | tail -n1)"
done
total=0
for n in 1 2 3; do
  total=$(( total + $(cass_rss_mib "$(cass_live_pid "$(cass_node_dir "$n")")") ))
done
cass_log "cluster ready in $(( $(date +%s) - t0 ))s (RSS of the 3 JVMs: ${total}MiB)"
