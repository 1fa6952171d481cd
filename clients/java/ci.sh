#!/usr/bin/env bash
# CI for the JVM client, from nothing: JDK 17 and Maven from the machine, dependencies from Maven
# Central. Needs `npm run build` at the repository root first (the integration tests start
# `node packages/cli/dist/main.js serve`). Builds, runs every test, and leaves target/ ready for
# ./interop and ./bench. Prints one summary line: "java client: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"
status=0
mvn -B -q verify "$@" || status=$?
passed=0
failed=0
for report in target/surefire-reports/*.txt; do
  [ -e "$report" ] || continue
  read -r run failures errors skipped < <(sed -n 's/^Tests run: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\), Skipped: \([0-9]*\).*/\1 \2 \3 \4/p' "$report" | head -1)
  passed=$((passed + run - failures - errors - skipped))
  failed=$((failed + failures + errors))
done
if [ "$status" -eq 0 ]; then
  # The example, end to end against a real Padlock (counted as one more test).
  if ../../examples/java/run.sh > target/example.log 2>&1; then passed=$((passed + 1)); else
    failed=$((failed + 1)); status=1; cat target/example.log >&2; fi
fi
echo "java client: $passed passed, $failed failed"
if [ "$passed" -eq 0 ] && [ "$status" -eq 0 ]; then
  echo "java client: no test ran" >&2
  exit 1
fi
exit "$status"
