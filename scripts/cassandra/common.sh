# Shared paths and helpers for the Cassandra test scripts. Sourced, not run.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this

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

# The java to run: $JAVA_HOME/bin/java or java on PATH, which must be JDK 11 or
# 17 (the versions Cassandra 5.0 supports); otherwise the Debian JDK 17,
# installed when missing. Sets CASS_JAVA.
cass_find_java() {
  local cand major
  for cand in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" \
              /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-arm64/bin/java; do
    if [ -z "$cand" ] || [ ! -x "$cand" ]; then continue; fi
    major="$("$cand" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    if [ "$major" = 17 ] || [ "$major" = 11 ]; then CASS_JAVA="$cand"; return 0; fi
  done
  cass_log "no JDK 11/17 found: installing Debian package openjdk-17-jre-headless"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  for cand in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [ -x "$cand" ] && { CASS_JAVA="$cand"; return 0; }
  done
  cass_die "could not find or install JDK 17"
}

# Resident memory of a pid in MiB (from /proc; no procps needed).
cass_rss_mib() {
  awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0
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
    # After SIGKILL the JVM's main thread turns zombie while its other threads
    # still exit and still hold the sockets: only a zombie without threads left
    # (or a vanished pid) counts as gone.
    local state tasks
    state="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    tasks="$(ls "/proc/$pid/task" 2>/dev/null | wc -l)"
    if [ -n "$state" ] && { [ "$state" != "Z" ] || [ "$tasks" -gt 1 ]; }; then
      echo "$pid"
    fi
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

# JDK 17 module flags (as in Cassandra's conf/jvm17-server.options), shared by
# the server (start-node.sh) and nodetool.sh.
CASS_JDK17_MODULE_FLAGS=(
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-exports java.base/java.lang.ref=ALL-UNNAMED
  --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
  --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
  --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
)
