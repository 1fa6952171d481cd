#!/usr/bin/env bash
# The SLO rules (ops/prometheus/) checked and unit-tested by the real promtool. It comes from
# Debian's prometheus package, unpacked under .padlock/ (ignored) and not installed: no service,
# nothing outside the tree, about two seconds. Where apt cannot fetch it (not Debian, no index),
# promtool is built from its Go module instead, with -tags remove_all_sd (promtool without the
# cloud service-discovery SDKs its rule tester does not use): about 15 minutes of both cores on
# the 2-core machine, which is why it is not the first choice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache="$root/.padlock/promtool"

from_debian() {
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 1
  local dir="$cache/debian" tmp
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    tmp=$(mktemp -d)
    # apt-get download needs the package index; refresh it only when the package is unknown.
    if ! apt-cache show prometheus >/dev/null 2>&1; then
      [ "$(id -u)" -eq 0 ] || { rm -rf "$tmp"; return 1; }
      apt-get update -qq >/dev/null || { rm -rf "$tmp"; return 1; }
    fi
    (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null) || { rm -rf "$tmp"; return 1; }
    rm -rf "$dir" && mkdir -p "$dir"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$dir" || { rm -rf "$tmp" "$dir"; return 1; }
    rm -rf "$tmp"
  fi
  promtool="$dir/usr/bin/promtool"
}

from_go() {
  local version=v0.316.0 started
  local bin="$cache/$version"
  if [ ! -x "$bin/promtool" ]; then
    mkdir -p "$bin"
    started=$(date +%s)
    GOFLAGS=-mod=mod GOBIN="$bin" CGO_ENABLED=0 go install -tags remove_all_sd -trimpath -ldflags='-s -w' \
      "github.com/prometheus/prometheus/cmd/promtool@$version"
    echo "rules-test: promtool $version built in $(($(date +%s) - started)) s"
  fi
  promtool="$bin/promtool"
}

promtool=
if [ "${PADLOCK_PROMTOOL:-}" != go ]; then from_debian || true; fi
[ -n "$promtool" ] || from_go
echo "rules-test: $("$promtool" --version 2>&1 | head -1)"
"$promtool" check rules ops/prometheus/*.yml
(cd ops/prometheus && "$promtool" test rules tests/*.test.yml)
