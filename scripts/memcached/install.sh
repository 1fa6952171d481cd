#!/usr/bin/env bash
# Installs Debian's memcached when the command is missing (a fresh machine);
# does nothing when it is there. Used by start.sh and by the DiRT suite, which
# runs its own memcached processes.
set -euo pipefail
command -v memcached >/dev/null 2>&1 && exit 0
echo "memcached: installing Debian's package" >&2
if [ "$(id -u)" -ne 0 ]; then echo "memcached is not installed and this is not root: apt-get install memcached" >&2; exit 1; fi
DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached >/dev/null
# The package starts a system instance on 11211; the tests run their own.
(systemctl stop memcached 2>/dev/null || service memcached stop 2>/dev/null || pkill -x memcached) >/dev/null 2>&1 || true
command -v memcached >/dev/null 2>&1 || { echo "memcached still missing after installing it" >&2; exit 1; }
