#!/usr/bin/env bash
# Hard-kill (SIGKILL, no drain, no flush) one local Cassandra node, for fault tests.
# Usage: scripts/cassandra/kill-node.sh NODE     (NODE = 1, 2, 3 or "single")
# Its data is kept: `start-node.sh N` (or start-single.sh) restarts it and
# replays the commit log.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -eq 1 ] || cass_die "usage: kill-node.sh NODE (1, 2, 3 or single)"
dir="$(cass_node_dir "$1")"
pid="$(cass_live_pid "$dir")"
if [ -z "$pid" ]; then
  rm -f "$dir/cassandra.pid"
  cass_die "$(basename "$dir") is not running"
fi
kill -KILL "$pid"
for _ in $(seq 1 100); do
  [ -z "$(cass_live_pid "$dir")" ] && break
  sleep 0.1
done
[ -z "$(cass_live_pid "$dir")" ] || cass_die "$(basename "$dir") (pid $pid) survived SIGKILL"
rm -f "$dir/cassandra.pid"
cass_log "killed $(basename "$dir") (pid $pid) with SIGKILL"
