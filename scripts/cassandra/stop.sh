#!/usr/bin/env bash
# Stop local Cassandra nodes started by these scripts (found via their pid files).
#
# Usage: scripts/cassandra/stop.sh [--wipe] [NODE...]
#   NODE     1, 2, 3 (cluster nodes) or "single"; default: every node with a pid file
#   --wipe   also delete the data/config/log dirs of the stopped nodes (with no
#            NODE given: every node dir under .cassandra/, keeping the fetched jars)
#
# Each node gets SIGTERM (Cassandra's shutdown hook drains it), then up to
# CASS_STOP_SECS (default 60) seconds before SIGKILL.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

WIPE=0
NAMED=0
NODES=()
for arg in "$@"; do
  case "$arg" in
    --wipe) WIPE=1 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) cass_die "unknown option: $arg" ;;
    *) NODES+=("$(cass_node_dir "$arg")"); NAMED=1 ;;
  esac
done
STOP_SECS="${CASS_STOP_SECS:-60}"

if [ ${#NODES[@]} -eq 0 ]; then
  while IFS= read -r d; do NODES+=("$d"); done < <(cass_node_dirs_with_pid)
fi

stop_one() { # stop_one <node_dir>
  local dir="$1" name pid deadline
  name="$(basename "$dir")"
  pid="$(cass_live_pid "$dir")"
  if [ -z "$pid" ]; then
    [ -f "$dir/cassandra.pid" ] && cass_log "$name not running (stale pid file removed)"
    rm -f "$dir/cassandra.pid"
    return 0
  fi
  cass_log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + STOP_SECS ))
  while [ -n "$(cass_live_pid "$dir")" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      cass_log "$name did not stop within ${STOP_SECS}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  rm -f "$dir/cassandra.pid"
  cass_log "$name stopped"
}

# Stop in parallel: a graceful stop takes a few seconds per node.
pids=()
for d in ${NODES[@]+"${NODES[@]}"}; do
  stop_one "$d" & pids+=($!)
done
for p in ${pids[@]+"${pids[@]}"}; do wait "$p"; done

if [ "$WIPE" = 1 ]; then
  if [ "$NAMED" = 0 ]; then
    # No node named: wipe every node dir (everything but the fetched jars).
    NODES=()
    for d in "$CASS_DIR"/*/; do
      d="${d%/}"
      [ "$d" = "$CASS_LIB" ] || NODES+=("$d")
    done
  fi
  for d in ${NODES[@]+"${NODES[@]}"}; do
    [ -d "$d" ] || continue
    if [ -n "$(cass_live_pid "$d")" ]; then
      cass_log "not wiping $(basename "$d"): still running"
      continue
    fi
    rm -rf -- "$d"
    cass_log "wiped $d"
  done
fi
