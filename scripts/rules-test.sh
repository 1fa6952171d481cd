#!/usr/bin/env bash
# The SLO rules (ops/prometheus/) checked and unit-tested by the real promtool, built from its Go
# module once and kept under .padlock/ (ignored). Built with -tags remove_all_sd: promtool without
# the cloud service-discovery SDKs, which its rule tester does not use (a full build took over
# 24 minutes on the 2-core machine under load; this one about 15).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=v0.316.0
bin="$root/.padlock/promtool/$version"
if [ ! -x "$bin/promtool" ]; then
  mkdir -p "$bin"
  started=$(date +%s)
  GOFLAGS=-mod=mod GOBIN="$bin" CGO_ENABLED=0 go install -tags remove_all_sd -trimpath -ldflags='-s -w' \
    "github.com/prometheus/prometheus/cmd/promtool@$version"
  echo "rules-test: promtool $version built in $(($(date +%s) - started)) s"
fi
"$bin/promtool" check rules ops/prometheus/*.yml
(cd ops/prometheus && "$bin/promtool" test rules tests/*.test.yml)
