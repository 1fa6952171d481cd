#!/usr/bin/env bash
# Start the secure test node and wait until a TLS client with a certificate can
# log in as the `padlock` role: 127.0.0.4:9042, JMX 7499, its own cluster name,
# data in <repo>/.cassandra/secure/ (wipe with `stop.sh --wipe secure`).
#
# - client_encryption_options enabled and not optional (the CQL port speaks TLS
#   only, TLSv1.2 or 1.3), require_client_auth: the node wants a certificate from
#   the test CA;
# - PasswordAuthenticator and CassandraAuthorizer; a `padlock` role that may log in
#   and create keyspaces (what it creates it owns), nothing else;
# - keys and certificates made at first start, never committed: the node's key pair
#   and its keystore and truststore with keytool, the test CA and the client
#   certificates with openssl (what an operator would give Padlock: PEM files).
#
# What Padlock and the tests use, in .cassandra/secure/client/:
#   ca.pem                   the CA that signed the node's certificate
#   client.pem, client.key   a client certificate from that CA (key mode 0600)
#   padlock.password         the padlock role's password (mode 0600, one line)
#   other-ca.pem             an unrelated CA (did not sign the node's certificate)
#   other-client.pem/.key    a client certificate from the unrelated CA
# The node's certificate names IP 127.0.0.4 and DNS cassandra-secure.padlock.test.
#
# Re-running it while the node is up only re-checks readiness. Environment:
# CASS_HEAP (default 512m here), CASS_WAIT_SECS, CASS_DIR (see start-node.sh).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

case "${1:-}" in -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

ADDR=127.0.0.4
DNS_NAME=cassandra-secure.padlock.test
NODE_DIR="$(cass_node_dir secure)"
TLS="$NODE_DIR/tls"          # the node's side: keystore, truststore, CA key
CLIENT="$NODE_DIR/client"    # Padlock's side
cass_find_java
KEYTOOL="$(dirname "$CASS_JAVA")/keytool"
[ -x "$KEYTOOL" ] || cass_die "keytool not found beside $CASS_JAVA"
# keytool is a short-lived JVM: C1 only and the serial GC halve its start (0.33 s against 0.70 s
# a call here, five calls).
keytool() { "$KEYTOOL" -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC "$@"; }
cass_need openssl openssl
cass_need python3 python3

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

# An EC P-256 key and a certificate for it signed by a CA (PEM).
# issue <ca-name> <name> <subject> <extensions>
issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$CLIENT/$2.key" -out "$TLS/$2.csr" 2>/dev/null
  openssl x509 -req -in "$TLS/$2.csr" -CA "$CLIENT/$1.pem" -CAkey "$TLS/$1.key" -days 7 \
    -extfile <(printf '%s\n' "$4") -out "$CLIENT/$2.pem" 2>/dev/null
  chmod 600 "$CLIENT/$2.key"
}

make_ca() { # make_ca <name> <subject>
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj "$2" \
    -keyout "$TLS/$1.key" -out "$CLIENT/$1.pem" 2>/dev/null
}

make_pki() {
  local t0 pass
  t0=$(date +%s%N)
  rm -rf "$TLS" "$CLIENT"
  mkdir -p "$TLS" "$CLIENT"
  chmod 700 "$TLS" "$CLIENT"
  pass="$(secret)"
  printf '%s\n' "$pass" > "$TLS/store.password"
  make_ca ca "/CN=padlock-test-ca"
  make_ca other-ca "/CN=padlock-test-other-ca"
  # The node: its key pair made by keytool in a PKCS12 keystore, signed by the CA,
  # the chain imported back; the truststore holds the CA (client certificates).
  keytool -genkeypair -alias node -keyalg EC -groupname secp256r1 -validity 7 \
    -dname "CN=$DNS_NAME" -keystore "$TLS/keystore.p12" -storetype PKCS12 -storepass "$pass" >/dev/null 2>&1
  keytool -certreq -alias node -keystore "$TLS/keystore.p12" -storepass "$pass" -file "$TLS/node.csr" 2>/dev/null
  openssl x509 -req -in "$TLS/node.csr" -CA "$CLIENT/ca.pem" -CAkey "$TLS/ca.key" -days 7 -out "$TLS/node.pem" \
    -extfile <(printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$ADDR" "$DNS_NAME") 2>/dev/null
  keytool -importcert -noprompt -alias ca -file "$CLIENT/ca.pem" \
    -keystore "$TLS/keystore.p12" -storepass "$pass" >/dev/null 2>&1
  keytool -importcert -noprompt -alias node -file "$TLS/node.pem" \
    -keystore "$TLS/keystore.p12" -storepass "$pass" >/dev/null 2>&1
  keytool -importcert -noprompt -alias ca -file "$CLIENT/ca.pem" \
    -keystore "$TLS/truststore.p12" -storetype PKCS12 -storepass "$pass" >/dev/null 2>&1
  issue ca client "/CN=padlock" "extendedKeyUsage=clientAuth"
  issue other-ca other-client "/CN=padlock" "extendedKeyUsage=clientAuth"
  # The default superuser, for the readiness probe and creating the padlock role.
  printf 'cassandra\n' > "$TLS/cassandra.password"
  (umask 077 && secret > "$CLIENT/padlock.password")
  cat > "$TLS/client-encryption.yaml" <<EOF

# --- client-to-node TLS (start-secure.sh) -------------------------------------
client_encryption_options:
  enabled: true
  optional: false
  keystore: $TLS/keystore.p12
  keystore_password: "$pass"
  truststore: $TLS/truststore.p12
  truststore_password: "$pass"
  store_type: PKCS12
  require_client_auth: true
  accepted_protocols: [TLSv1.3, TLSv1.2]
EOF
  chmod 600 "$TLS"/*
  touch "$TLS/.made"
  cass_log "secure: keys and certificates made in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

[ -f "$TLS/.made" ] || make_pki
# The certificates last 7 days: a node dir kept longer is remade, not served with expired ones.
for cert in "$TLS/node.pem" "$CLIENT/client.pem" "$CLIENT/ca.pem"; do
  openssl x509 -checkend 3600 -noout -in "$cert" >/dev/null ||
    cass_die "secure: $cert expires within the hour: run scripts/cassandra/stop.sh --wipe secure, then start again"
done

tls_args="--tls-ca $CLIENT/ca.pem --tls-cert $CLIENT/client.pem --tls-key $CLIENT/client.key"
# The default superuser is created 10 s after a first start unless told otherwise.
CASS_NODE_NAME=secure CASS_ADDR=$ADDR CASS_DC=dc1 CASS_RACK=r1 CASS_SEEDS=$ADDR CASS_JMX_PORT=7499 \
CASS_TOKEN=0 CASS_CLUSTER_NAME=padlock-secure CASS_HEAP="${CASS_HEAP:-512m}" \
CASS_AUTHENTICATOR=PasswordAuthenticator CASS_AUTHORIZER=CassandraAuthorizer \
CASS_YAML_APPEND="$TLS/client-encryption.yaml" \
CASS_JVM_EXTRA="-Dcassandra.superuser_setup_delay_ms=0 ${CASS_JVM_EXTRA:-}" \
CASS_PROBE_ARGS="$tls_args -u cassandra --password-file $TLS/cassandra.password" \
  "$CASS_SCRIPT_DIR/start-node.sh" 1

# Statements on stdin, so the password is never on a command line.
read -r -a tls_opts <<< "$tls_args"
cql() { python3 "$CASS_SCRIPT_DIR/cql.py" --timeout 10 "${tls_opts[@]}" "$@"; }
printf "CREATE ROLE IF NOT EXISTS padlock WITH PASSWORD = '%s' AND LOGIN = true\nGRANT CREATE ON ALL KEYSPACES TO padlock\n" \
  "$(head -n1 "$CLIENT/padlock.password")" |
  cql -q -u cassandra --password-file "$TLS/cassandra.password" "$ADDR" -
cql -q -u padlock --password-file "$CLIENT/padlock.password" "$ADDR" "SELECT release_version FROM system.local" ||
  cass_die "secure: the padlock role cannot log in"
cass_log "secure ready: $ADDR:9042 TLS (client certificate required) + password auth, role padlock; client files in $CLIENT"
