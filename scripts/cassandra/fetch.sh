#!/usr/bin/env bash
# Gather the runtime class path of Apache Cassandra (cassandra-all + its runtime
# dependencies) from Maven Central into <repo>/.cassandra/lib.
# Idempotent: does nothing when the marker file for the pinned version exists.
# Usage: scripts/cassandra/fetch.sh [--force]
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

version="$(cass_version)"
[ -n "$version" ] || cass_die "cannot read cassandra.version from pom.xml"

if [ "${1:-}" != "--force" ] && [ -f "$CASS_FETCH_MARKER" ] \
   && [ "$(cat "$CASS_FETCH_MARKER")" = "$version" ] \
   && [ -f "$CASS_LIB/cassandra-all-$version.jar" ]; then
  cass_log "Cassandra $version already fetched in $CASS_LIB"
  exit 0
fi

cass_find_java
cass_need mvn maven

for d in $(cass_node_dirs_with_pid); do
  [ -z "$(cass_live_pid "$d")" ] || cass_die "$(basename "$d") is running on these jars: run stop.sh first"
done

start=$(date +%s)
rm -rf "$CASS_LIB"
mkdir -p "$CASS_LIB"
cass_log "fetching org.apache.cassandra:cassandra-all:$version and its runtime dependencies"
# copy-dependencies copies the declared dependency itself (cassandra-all) as
# well as everything it needs at runtime.
if ! mvn -q -B -f "$CASS_SCRIPT_DIR/pom.xml" \
     org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
     -DincludeScope=runtime -DoutputDirectory="$CASS_LIB" >"$CASS_DIR/fetch.log" 2>&1; then
  tail -n 50 "$CASS_DIR/fetch.log" >&2
  cass_die "mvn copy-dependencies failed (full log: $CASS_DIR/fetch.log)"
fi

[ -f "$CASS_LIB/cassandra-all-$version.jar" ] || cass_die "cassandra-all-$version.jar missing after fetch"
ls "$CASS_LIB"/jamm-*.jar >/dev/null 2>&1 || cass_die "jamm jar missing after fetch"
echo "$version" > "$CASS_FETCH_MARKER"
cass_log "fetched $(ls "$CASS_LIB"/*.jar | wc -l) jars ($(du -sh "$CASS_LIB" | cut -f1)) in $(( $(date +%s) - start ))s"
