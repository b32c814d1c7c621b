#!/usr/bin/env bash
# Set everything up and run streamhubd on embedded defaults: the SQLite
# store in data/streamhub.db, the in-process bus, 127.0.0.1:8080.
#
#   scripts/run.sh [--key value]...     (extra flags go to streamhubd)
#
# Any setting may be changed with a flag, a STREAMHUB_* variable or a
# config file (--config FILE); see docs/CONFIG.md.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
ninja -C build server/streamhubd
mkdir -p data
if [ -z "${STREAMHUB_STORE:-}" ]; then
  set -- --store sqlite:data/streamhub.db "$@"
fi
exec build/server/streamhubd "$@"
