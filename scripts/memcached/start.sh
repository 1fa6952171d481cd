#!/usr/bin/env bash
# Starts memcached servers on 127.0.0.1 at the given ports (default 11211),
# installing Debian's memcached first if it is missing (install.sh). Each server runs in the
# background with a pid file under .memcached/, and the script waits until each
# answers "version". Usage: scripts/memcached/start.sh [PORT...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/.memcached"
mkdir -p "$dir"
bash "$root/scripts/memcached/install.sh"
ports=("$@")
[ ${#ports[@]} -eq 0 ] && ports=(11211)
for port in "${ports[@]}"; do
  pidfile="$dir/$port.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "memcached: already running on 127.0.0.1:$port" >&2
    continue
  fi
  user=()
  [ "$(id -u)" -eq 0 ] && user=(-u root)
  memcached -d "${user[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 64 -c 1024 -P "$pidfile"
  ready=no
  for _ in $(seq 1 100); do
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'version\\r\\n' >&3 && read -r reply <&3 && [[ \$reply == VERSION* ]]" 2>/dev/null; then
      ready=yes
      break
    fi
    sleep 0.1
  done
  [ "$ready" = yes ] || { echo "memcached on 127.0.0.1:$port did not answer" >&2; exit 1; }
  [ -f "$pidfile" ] || { echo "memcached on $port did not start" >&2; exit 1; }
  echo "memcached: ready on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
done
