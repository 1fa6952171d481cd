#!/usr/bin/env bash
# Runs ShredDemo.java against a real Padlock in a temp directory. From the repo root, after
# `npm run build` and `clients/java/build.sh`:   examples/java/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$root/packages/cli/dist/main.js"
dir="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c 32 /dev/urandom > "$dir/kek.bin" && chmod 600 "$dir/kek.bin"
cat > "$dir/padlock.json" <<JSON
{"listen":{"host":"127.0.0.1","port":0},"categories":["profile"],
 "keks":{"active":"demo","files":[{"kid":"demo","path":"kek.bin"}]},
 "store":{"kind":"sqlite","sqlite":{"path":"padlock.db"}},"maxStalenessSeconds":2}
JSON
chmod 600 "$dir/padlock.json"
credential="$(node "$cli" service create shred-demo --read profile --create --shred -c "$dir/padlock.json" 2>/dev/null |
  node -e 'process.stdin.on("data", (d) => console.log(JSON.parse(d).credential))')"
node "$cli" serve -c "$dir/padlock.json" > "$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q '"padlock listening"' "$dir/serve.log" && break; sleep 0.1; done
port="$(grep -o '"port":[0-9]*' "$dir/serve.log" | head -1 | cut -d: -f2)"
java -cp "$root/clients/java/target/padlock-client.jar:$root/clients/java/target/lib/*" \
  "$root/examples/java/ShredDemo.java" "http://127.0.0.1:$port" "$credential"
