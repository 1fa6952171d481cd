#!/usr/bin/env bash
# Stops the memcached servers started by start.sh (all, or the given ports).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/.memcached"
[ -d "$dir" ] || exit 0
ports=("$@")
if [ ${#ports[@]} -eq 0 ]; then
  for f in "$dir"/*.pid; do [ -e "$f" ] && ports+=("$(basename "$f" .pid)"); done
fi
for port in "${ports[@]}"; do
  pidfile="$dir/$port.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
done
