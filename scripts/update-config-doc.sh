#!/usr/bin/env bash
# Rewrite docs/CONFIG.md from `streamhubd --help-markdown` (the key table of
# libstreamhub/core/config_table.c).  Run after adding or changing a key and
# commit the result with it: tests/abi's 'config-doc' test compares the two.
#
#   scripts/update-config-doc.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
[ -f "$dir/build.ninja" ] || meson setup "$dir" -Dwerror=true >/dev/null
ninja -C "$dir" server/streamhubd >/dev/null
"$dir/server/streamhubd" --help-markdown >docs/CONFIG.md
echo "docs/CONFIG.md: $(grep -c '^| `' docs/CONFIG.md) keys"
git --no-pager diff --stat -- docs/CONFIG.md || true
