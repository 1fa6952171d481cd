#!/usr/bin/env bash
# The deployment files' checks that need downloads, for CI (.ci/run) and by hand after `npm run build`:
# 1. deploy/validate (Go, modules from the Go proxy): kustomize builds deploy/k8s in process and
#    every object is decoded strictly into its k8s.io/api type (a misspelt field fails), the two
#    groups are checked whole, and deploy/systemd/padlock.service goes through systemd-analyze.
# 2. The container image (deploy/container): built with buildah and run with podman (both from
#    Debian, installed here when missing; rootful, vfs storage, runc), then `padlock --version`,
#    `serve` answering /healthz and /readyz, and a drain on SIGTERM exiting 0.
#    PADLOCK_DEPLOY_CONTAINER=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
if ! command -v go >/dev/null; then
  echo "deploy-test: go is not installed (the deployment checks need it)" >&2
  exit 1
fi
(cd deploy/validate && go test -count=1 ./...)
echo "deploy-test: manifests and systemd unit checked in $((SECONDS - start)) s"

[ "${PADLOCK_DEPLOY_CONTAINER:-1}" = 0 ] && exit 0
start=$SECONDS
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah podman runc >/dev/null
fi
work=$(mktemp -d)
tag=localhost/padlock:deploy-test-$$
name=padlock-deploy-test-$$
# crun cannot start containers here (no CAP_SYS_RESOURCE for its rlimits, cgroups in hybrid mode):
# runc, and no default ulimits to raise.
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
pod() { podman --storage-driver vfs --runtime runc "$@"; }
cleanup() {
  pod rm -f "$name" >/dev/null 2>&1 || true
  pod rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

deploy/container/build.sh "$tag"
version=$(pod run --rm "$tag" --version)
[ "$version" = "padlock $(node -p "require('./packages/cli/package.json').version")" ] || {
  echo "deploy-test: the image says \"$version\"" >&2
  exit 1
}

mkdir -p "$work/etc"
head -c 32 /dev/urandom > "$work/etc/kek.bin"
chown 10001:10001 "$work/etc/kek.bin"
chmod 0400 "$work/etc/kek.bin"
port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
cat > "$work/etc/padlock.json" <<JSON
{
  "listen": { "host": "127.0.0.1", "port": $port },
  "keks": { "active": "k1", "files": [{ "kid": "k1", "path": "/etc/padlock/kek.bin" }] },
  "store": { "sqlite": { "path": "/tmp/padlock.db" } },
  "journal": { "file": { "path": "/tmp/journal/padlock-shreds.journal" } }
}
JSON
pod run -d --name "$name" --network host -v "$work/etc:/etc/padlock:ro" "$tag" >/dev/null
ready=
for _ in $(seq 1 100); do
  if ready=$(curl -sf "http://127.0.0.1:$port/readyz"); then break; fi
  sleep 0.2
done
health=$(curl -sf "http://127.0.0.1:$port/healthz") || true
if [ "$health" != '{"status":"ok"}' ] || [[ "$ready" != '{"ready":true'* ]]; then
  echo "deploy-test: the container did not come up: healthz \"$health\", readyz \"$ready\"" >&2
  pod logs "$name" >&2 || true
  exit 1
fi
pod stop -t 20 "$name" >/dev/null
code=$(pod inspect -f '{{.State.ExitCode}}' "$name")
if [ "$code" != 0 ]; then
  echo "deploy-test: padlock exited $code on SIGTERM" >&2
  pod logs "$name" >&2 || true
  exit 1
fi
echo "deploy-test: image built, served /healthz and /readyz, drained on SIGTERM in $((SECONDS - start)) s"
