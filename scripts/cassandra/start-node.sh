#!/usr/bin/env bash
# Start ONE local Cassandra 5.0 node in the background and wait until it answers CQL.
#
# Usage: scripts/cassandra/start-node.sh N [--addr A] [--dc DC] [--rack R] [--seeds S]
#                                          [--jmx-port P] [--name NAME] [--no-wait]
#   N = node index 1..3. Defaults derive from N so that a plain
#   `start-node.sh N` also restarts a killed node of the 3-node cluster with
#   the same settings (data is kept; the config is re-rendered each time).
#
# Environment (options above take precedence):
#   CASS_ADDR          listen/rpc address          (default 127.0.0.N)
#   CASS_DC            datacenter                  (default dc1 for N=1,2; dc2 for N=3)
#   CASS_RACK          rack                        (default r1)
#   CASS_SEEDS         comma-separated seeds       (default 127.0.0.1,127.0.0.3)
#   CASS_JMX_PORT      JMX port on 127.0.0.1       (default 7199, 7299, 7399 for N=1,2,3)
#   CASS_NODE_NAME     node dir under .cassandra/  (default nodeN)
#   CASS_TOKEN         initial_token               (default: ring split in thirds by N)
#   CASS_CLUSTER_NAME  cluster_name                (default padlock-test)
#   CASS_NATIVE_PORT   CQL port                    (default 9042)
#   CASS_STORAGE_PORT  internode port              (default 7000)
#   CASS_HEAP          -Xms/-Xmx                   (default 1g)
#   CASS_WAIT_SECS     readiness timeout, seconds  (default 180)
#   CASS_RING_DELAY_MS cassandra.ring_delay_ms     (default 5000; stock 30000: a seed
#                      whose other seed is down waits this long in the gossip shadow round)
#   CASS_DIR           runtime dir                 (default <repo>/.cassandra)
#   CASS_JVM_EXTRA     extra JVM options, space-separated, after the defaults (so they win),
#                      e.g. "-XX:MaxGCPauseMillis=50"  (default: none)
#   CASS_AUTHENTICATOR / CASS_AUTHORIZER  (default AllowAllAuthenticator / AllowAllAuthorizer)
#   CASS_YAML_APPEND   a file appended to the rendered cassandra.yaml (default: none)
#   CASS_PROBE_ARGS    extra cql.py options for the readiness probe, space-separated
#                      (TLS and login; start-secure.sh sets them)
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

usage() { sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

[ $# -ge 1 ] || usage 2
case "$1" in -h|--help) usage 0 ;; esac
N="$1"; shift
[[ "$N" =~ ^[1-3]$ ]] || cass_die "node index must be 1, 2 or 3 (got '$N')"

ADDR="${CASS_ADDR:-127.0.0.$N}"
case "$N" in 3) DC="${CASS_DC:-dc2}" ;; *) DC="${CASS_DC:-dc1}" ;; esac
RACK="${CASS_RACK:-r1}"
SEEDS="${CASS_SEEDS:-127.0.0.1,127.0.0.3}"
JMX_PORT="${CASS_JMX_PORT:-$((7199 + 100 * (N - 1)))}"
NAME="${CASS_NODE_NAME:-node$N}"
WAIT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --addr) ADDR="$2"; shift 2 ;;
    --dc) DC="$2"; shift 2 ;;
    --rack) RACK="$2"; shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --jmx-port) JMX_PORT="$2"; shift 2 ;;
    --name) NAME="$2"; shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    -h|--help) usage 0 ;;
    *) cass_die "unknown option: $1" ;;
  esac
done
# Murmur3 ring (-2^63 .. 2^63-1) split in thirds.
case "$N" in
  1) DEFAULT_TOKEN=-9223372036854775808 ;;
  2) DEFAULT_TOKEN=-3074457345618258603 ;;
  3) DEFAULT_TOKEN=3074457345618258602 ;;
esac
TOKEN="${CASS_TOKEN:-$DEFAULT_TOKEN}"
CLUSTER_NAME="${CASS_CLUSTER_NAME:-padlock-test}"
NATIVE_PORT="${CASS_NATIVE_PORT:-9042}"
STORAGE_PORT="${CASS_STORAGE_PORT:-7000}"
HEAP="${CASS_HEAP:-1g}"
WAIT_SECS="${CASS_WAIT_SECS:-180}"
RING_DELAY_MS="${CASS_RING_DELAY_MS:-5000}"
NODE_DIR="$(cass_node_dir "$NAME")"

cass_find_java
cass_need python3 python3
"$CASS_SCRIPT_DIR/fetch.sh"

PROBE_ARGS=()
if [ -n "${CASS_PROBE_ARGS:-}" ]; then read -r -a PROBE_ARGS <<< "$CASS_PROBE_ARGS"; fi
probe() { python3 "$CASS_SCRIPT_DIR/cql.py" -p "$NATIVE_PORT" --timeout 5 ${PROBE_ARGS[@]+"${PROBE_ARGS[@]}"} "$@"; }

print_log_tail() {
  local f
  for f in "$NODE_DIR/logs/system.log" "$NODE_DIR/logs/stdout.log"; do
    if [ -s "$f" ]; then
      echo "----- last 40 lines of $f -----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

wait_ready() { # wait_ready <pid> <started_at>
  local pid="$1" t0="$2" deadline=$(( $(date +%s) + WAIT_SECS )) version
  while :; do
    if ! kill -0 "$pid" 2>/dev/null || [ -z "$(cass_live_pid "$NODE_DIR")" ]; then
      print_log_tail
      cass_die "$NAME ($ADDR) exited during startup"
    fi
    if version="$(probe "$ADDR" "SELECT release_version FROM system.local" --json 2>/dev/null)"; then
      version="$(printf '%s' "$version" | sed -n 's/.*"release_version": "\([^"]*\)".*/\1/p')"
      cass_log "$NAME ready: Cassandra $version on $ADDR:$NATIVE_PORT dc=$DC pid=$pid" \
               "startup $(( $(date +%s) - t0 ))s rss=$(cass_rss_mib "$pid")MiB"
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      print_log_tail
      cass_die "$NAME ($ADDR) not ready after ${WAIT_SECS}s (pid $pid still running; stop it with stop.sh $N)"
    fi
    sleep 1
  done
}

# Already running? Then only (re)check readiness.
pid="$(cass_live_pid "$NODE_DIR")"
if [ -n "$pid" ]; then
  cass_log "$NAME already running (pid $pid)"
  [ "$WAIT" = 1 ] && wait_ready "$pid" "$(date +%s)"
  exit 0
fi
rm -f "$NODE_DIR/cassandra.pid"

# Some other process (e.g. the single node vs. cluster node 1) on our ports?
# (Allow a few seconds for a node that was just killed to release its sockets.)
for port in "$NATIVE_PORT" "$STORAGE_PORT"; do
  for _ in $(seq 1 20); do
    cass_port_open "$ADDR" "$port" || break
    sleep 0.5
  done
  if cass_port_open "$ADDR" "$port"; then
    cass_die "$ADDR:$port is already in use by another process (the single node and cluster node 1 share 127.0.0.1:9042/7000: run scripts/cassandra/stop.sh first)"
  fi
done

# Render the config for this node.
mkdir -p "$NODE_DIR"/{conf,data,commitlog,hints,saved_caches,cdc_raw,logs,triggers}
render() { # render <template> <output>
  sed -e "s|@@CLUSTER_NAME@@|$CLUSTER_NAME|g" \
      -e "s|@@NODE_DIR@@|$NODE_DIR|g" \
      -e "s|@@ADDR@@|$ADDR|g" \
      -e "s|@@SEEDS@@|$SEEDS|g" \
      -e "s|@@TOKEN@@|$TOKEN|g" \
      -e "s|@@STORAGE_PORT@@|$STORAGE_PORT|g" \
      -e "s|@@NATIVE_PORT@@|$NATIVE_PORT|g" \
      -e "s|@@DC@@|$DC|g" \
      -e "s|@@RACK@@|$RACK|g" \
      -e "s|@@AUTHENTICATOR@@|${CASS_AUTHENTICATOR:-AllowAllAuthenticator}|g" \
      -e "s|@@AUTHORIZER@@|${CASS_AUTHORIZER:-AllowAllAuthorizer}|g" \
      "$1" > "$2"
}
render "$CASS_SCRIPT_DIR/cassandra.yaml.tmpl" "$NODE_DIR/conf/cassandra.yaml"
if [ -n "${CASS_YAML_APPEND:-}" ]; then cat "$CASS_YAML_APPEND" >> "$NODE_DIR/conf/cassandra.yaml"; fi
render "$CASS_SCRIPT_DIR/cassandra-rackdc.properties.tmpl" "$NODE_DIR/conf/cassandra-rackdc.properties"
cp "$CASS_SCRIPT_DIR/logback.xml" "$NODE_DIR/conf/logback.xml"

JAMM_JAR="$(ls "$CASS_LIB"/jamm-*.jar | head -n1)"
JVM_OPTS=(
  "-Xms$HEAP" "-Xmx$HEAP" -Xss256k
  -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxGCPauseMillis=300
  -XX:+UseThreadPriorities -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
  -XX:StringTableSize=1000003 -XX:+DisableExplicitGC -XX:+ExitOnOutOfMemoryError
  "-XX:ErrorFile=$NODE_DIR/logs/hs_err_%p.log"
  -Djava.net.preferIPv4Stack=true
  -Djdk.attach.allowAttachSelf=true
  -Dio.netty.tryReflectionSetAccessible=true
  -Djdk.nio.maxCachedBufferSize=1048576
  "${CASS_JDK17_MODULE_FLAGS[@]}"
  "-javaagent:$JAMM_JAR"
  # Cassandra settings.
  "-Dcassandra.config=file://$NODE_DIR/conf/cassandra.yaml"
  "-Dcassandra-rackdc.properties=file://$NODE_DIR/conf/cassandra-rackdc.properties"
  "-Dlogback.configurationFile=file://$NODE_DIR/conf/logback.xml"
  "-Dcassandra.logdir=$NODE_DIR/logs"
  "-Dcassandra.storagedir=$NODE_DIR"
  "-Dcassandra.triggers_dir=$NODE_DIR/triggers"
  "-Dcassandra.jmx.local.port=$JMX_PORT"
  -Dcassandra.skip_wait_for_gossip_to_settle=0
  "-Dcassandra.ring_delay_ms=$RING_DELAY_MS"
  -Dcassandra-foreground=yes
)
if [ -n "${CASS_JVM_EXTRA:-}" ]; then
  read -r -a extra_opts <<< "$CASS_JVM_EXTRA"
  JVM_OPTS+=("${extra_opts[@]}")
fi

cass_log "starting $NAME: $ADDR dc=$DC rack=$RACK seeds=$SEEDS jmx=$JMX_PORT heap=$HEAP dir=$NODE_DIR"
t0=$(date +%s)
cd "$NODE_DIR"
# setsid: own session, so the node outlives the calling shell/job. Without job
# control the background child is not a group leader, so setsid does not fork
# and $! is the JVM's pid.
setsid "$CASS_JAVA" "${JVM_OPTS[@]}" -cp "$CASS_LIB/*" org.apache.cassandra.service.CassandraDaemon \
  </dev/null >>"$NODE_DIR/logs/stdout.log" 2>&1 &
pid=$!
echo "$pid" > "$NODE_DIR/cassandra.pid"

if [ "$WAIT" = 1 ]; then
  wait_ready "$pid" "$t0"
else
  cass_log "$NAME started (pid $pid), not waiting"
fi
