# Shared paths and helpers for the Cassandra test scripts. Sourced, not run.
# shellcheck shell=bash

CASS_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CASS_REPO_ROOT="$(cd "$CASS_SCRIPT_DIR/../.." && pwd)"
# Everything downloaded or written at run time lives here (git-ignored).
CASS_DIR="${CASS_DIR:-$CASS_REPO_ROOT/.cassandra}"
CASS_LIB="$CASS_DIR/lib"
CASS_FETCH_MARKER="$CASS_LIB/.fetched"

cass_log() { printf '[cassandra] %s\n' "$*" >&2; }
cass_die() { printf '[cassandra] ERROR: %s\n' "$*" >&2; exit 1; }

# Version pinned in pom.xml (single source of truth).
cass_version() {
  sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$CASS_SCRIPT_DIR/pom.xml" | head -n1
}

# Install a Debian package when a command is missing (fresh machines).
cass_need() { # cass_need <command> <debian-package>
  command -v "$1" >/dev/null 2>&1 && return 0
  cass_log "$1 not found: installing Debian package $2"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || cass_die "$1 still missing after installing $2"
}

# Node directory for a node name (1, 2, 3 -> node1..node3; anything else as is).
cass_node_dir() {
  case "$1" in
    [0-9]*) echo "$CASS_DIR/node$1" ;;
    *) echo "$CASS_DIR/$1" ;;
  esac
}

# Print the pid stored for a node dir if that process is alive and is the
# Cassandra of that node (guards against recycled pids); print nothing otherwise.
cass_live_pid() { # cass_live_pid <node_dir>
  local dir="$1" pid
  [ -f "$dir/cassandra.pid" ] || return 0
  pid="$(cat "$dir/cassandra.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-Dcassandra.storagedir=$dir "; then
    # A zombie or exiting process is not "alive".
    local state
    state="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    [ "$state" = "Z" ] || echo "$pid"
  fi
}

# True when something accepts TCP connections on host:port.
cass_port_open() { # cass_port_open <host> <port>
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# All node dirs that have a pid file.
cass_node_dirs_with_pid() {
  local f
  for f in "$CASS_DIR"/*/cassandra.pid; do
    [ -e "$f" ] && dirname "$f"
  done
  return 0
}
