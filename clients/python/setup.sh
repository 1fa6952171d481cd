#!/bin/sh
# Creates clients/python/dist/venv (dist/: ignored by git, eslint and prettier like every build output) and installs the client (editable) with its test tools from PyPI.
# Needs python3 >= 3.11 with venv (Debian 12: apt-get install python3-venv).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
if [ ! -x "$here/dist/venv/bin/python" ]; then
  "$python" -m venv "$here/dist/venv"
fi
"$here/dist/venv/bin/pip" install --quiet --disable-pip-version-check -e "$here[test]"
