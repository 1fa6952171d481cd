#!/usr/bin/env bash
# The operator console's end-to-end test in headless Chromium (docs/console.md): Debian's
# chromium package driven by puppeteer-core (no browser download), against a real server.
# Installs chromium with apt when it is missing; expects `npm run build` to have run.
# Writes the screenshots in docs/console/. CI: one line in .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
CHROMIUM="${PADLOCK_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "console-test: installing chromium with apt"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
fi
"$CHROMIUM" --version
PADLOCK_CHROMIUM="$CHROMIUM" node --test --test-reporter=spec console/e2e/dist/console.e2e.js
