#!/usr/bin/env bash
# Builds the client jar and its runtime class path (target/padlock-client.jar, target/lib/*.jar),
# which the interop and bench scripts run. Tests: ./ci.sh or mvn test.
set -euo pipefail
cd "$(dirname "$0")"
mvn -B -q -DskipTests package
