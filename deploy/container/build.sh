#!/usr/bin/env bash
# Builds the Padlock image (Containerfile) with buildah, from a built worktree
# (npm ci && npm run build): deploy/container/build.sh [TAG], default localhost/padlock:<version>.
# Rootful, vfs storage: no storage driver or daemon to set up (deploy-test.sh runs it in CI).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
version=$(node -p "require('$repo/packages/cli/package.json').version")
tag=${1:-localhost/padlock:$version}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
app=$root/opt/padlock
mkdir -p "$app/packages" "$root/etc" "$root/tmp" "$root/usr/bin"
chmod 1777 "$root/tmp"

cp "$repo/package.json" "$repo/package-lock.json" "$app/"
for pkg in core server client cli; do
  mkdir -p "$app/packages/$pkg"
  cp "$repo/packages/$pkg/package.json" "$app/packages/$pkg/"
  cp -a "$repo/packages/$pkg/dist" "$app/packages/$pkg/"
  find "$app/packages/$pkg/dist" \( -name '*.test.*' -o -name '*.map' -o -name '*.tsbuildinfo' \) -delete
done
# The worktree's node_modules (better-sqlite3 already compiled here), less the dev dependencies.
cp -a "$repo/node_modules" "$app/"
(cd "$app" && npm prune --omit=dev --offline --no-audit --no-fund --loglevel=error)
rm -rf "$app/node_modules/better-sqlite3/build/Release/obj.target" "$app/node_modules/better-sqlite3/deps" \
  "$app/node_modules/better-sqlite3/src"

# Node.js and the shared libraries it and the native addons load, from this machine.
cp "$(readlink -f "$(command -v node)")" "$root/usr/bin/node"
{
  ldd "$root/usr/bin/node"
  find "$app/node_modules" -name '*.node' -exec ldd {} \;
} | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

printf 'root:x:0:0::/:/nonexistent\npadlock:x:10001:10001:Padlock:/nonexistent:/nonexistent\n' > "$root/etc/passwd"
printf 'root:x:0:\npadlock:x:10001:\n' > "$root/etc/group"
mkdir -p "$root/etc/padlock"

cp "$repo/deploy/container/Containerfile" "$stage/"
buildah --storage-driver vfs bud --quiet --layers=false -f "$stage/Containerfile" -t "$tag" "$stage"
echo "built $tag ($(du -sh "$root" | cut -f1) staged)"
