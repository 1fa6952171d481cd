#!/usr/bin/env bash
# Pause or resume one local Cassandra node, for fault tests: SIGSTOP freezes the
# JVM with its sockets open (requests to it neither fail nor get answered, as in
# a long GC pause); SIGCONT lets it go on.
# Usage: scripts/cassandra/signal-node.sh NODE STOP|CONT   (NODE = 1, 2, 3 or "single")
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -eq 2 ] || cass_die "usage: signal-node.sh NODE STOP|CONT"
case "$2" in STOP|CONT) ;; *) cass_die "signal must be STOP or CONT, not $2" ;; esac
dir="$(cass_node_dir "$1")"
pid="$(cass_live_pid "$dir")"
[ -n "$pid" ] || cass_die "$(basename "$dir") is not running"
kill "-$2" "$pid"
cass_log "sent SIG$2 to $(basename "$dir") (pid $pid)"
