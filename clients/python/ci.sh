#!/bin/sh
# CI for the Python client, from nothing on a fresh Debian 12 machine, after `npm run build` at the
# repository root (the integration tests start real `padlock serve` processes from packages/cli/dist).
# About 1.5 min: 1 min creating the venv and installing from PyPI, 35 s of tests.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  apt-get update -q >/dev/null
  apt-get install -y -q python3 python3-venv >/dev/null
fi
"$here/setup.sh"
cd "$here"
dist/venv/bin/ruff format --check . ../../examples/python
dist/venv/bin/ruff check . ../../examples/python
dist/venv/bin/mypy --strict
dist/venv/bin/pytest -q
