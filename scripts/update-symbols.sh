#!/usr/bin/env bash
# Rewrite docs/SYMBOLS from the exports of a fresh libstreamhub.so.
# Run after adding or removing a public function, and commit the result with
# the header change (tests/abi's 'symbols' test compares the two).
#
#   scripts/update-symbols.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
[ -f "$dir/build.ninja" ] || meson setup "$dir" -Dwerror=true >/dev/null
# Build only the shared library (other areas may be mid-change).
so=$(meson introspect --targets "$dir" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["name"] == "streamhub" and t["type"] == "shared library":
        print(t["filename"][0])')
ninja -C "$dir" "$(realpath --relative-to="$dir" "$so")" >/dev/null
nm -D --defined-only "$so" \
  | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | LC_ALL=C sort -u \
  >docs/SYMBOLS
echo "docs/SYMBOLS: $(wc -l <docs/SYMBOLS) symbols"
git --no-pager diff --stat -- docs/SYMBOLS || true
