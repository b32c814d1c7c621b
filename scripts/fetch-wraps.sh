#!/usr/bin/env bash
# Fetch WrapDB wrap files for the dependencies WrapDB packages, for builds on
# platforms without the Debian packages (see subprojects/README.md):
#
#   scripts/fetch-wraps.sh
#   meson setup build --wrap-mode=forcefallback
#
# Each wrap comes from WrapDB through meson itself, with the SHA-256 of the
# source and of its build patch, so nothing unverified is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
for w in sqlite3 json-c cmocka libevent openssl; do
  if [ -f "subprojects/$w.wrap" ]; then
    meson wrap update "$w" || true
  else
    meson wrap install "$w"
  fi
done
ls subprojects/*.wrap
