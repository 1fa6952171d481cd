#!/usr/bin/env bash
# Run Cassandra's nodetool (from the fetched jars) against one local node via JMX.
# Usage: scripts/cassandra/nodetool.sh NODE ARGS...   (NODE = 1, 2, 3, single, secure or journal)
#   e.g. nodetool.sh 1 status | nodetool.sh 2 flush | nodetool.sh single tablestats ks
# JMX ports: single/node1 7199, node2 7299, node3 7399, secure 7499, journal 7699 (override with CASS_JMX_PORT).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -ge 2 ] || cass_die "usage: nodetool.sh NODE (1, 2, 3, single, secure or journal) ARGS..."
case "$1" in
  single|1) port=7199 ;;
  2) port=7299 ;;
  3) port=7399 ;;
  secure) port=7499 ;;
  journal) port=7699 ;;
  *) cass_die "unknown node '$1'" ;;
esac
shift
[ -f "$CASS_FETCH_MARKER" ] || cass_die "Cassandra not fetched: run scripts/cassandra/fetch.sh"
cass_find_java
mkdir -p "$CASS_DIR/tools"
# user.home: nodetool keeps its history file under ~/.cassandra; keep it in .cassandra/tools.
exec "$CASS_JAVA" -Xmx128m -XX:+UseSerialGC "${CASS_JDK17_MODULE_FLAGS[@]}" "-Duser.home=$CASS_DIR/tools" -Dlogback.configurationFile=file://"$CASS_SCRIPT_DIR/logback-tools.xml" \
  -cp "$CASS_LIB/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "${CASS_JMX_PORT:-$port}" "$@"
