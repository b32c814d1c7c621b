#!/usr/bin/env bash
# Rewrite docs/CONFIG.md from `streamhubd --help-markdown` and
# deploy/streamhub.conf from `streamhubd --help-config` (the key table of
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
# deploy/streamhub.conf: the same keys as a config file; its set keys
# and ## notes are kept (tests/deploy's 'sample-config' test checks it).
python3 tests/deploy/check_sample_config.py "$dir/server/streamhubd" \
  deploy/streamhub.conf --write
git --no-pager diff --stat -- docs/CONFIG.md deploy/streamhub.conf || true
