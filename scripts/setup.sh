#!/usr/bin/env bash
# Install StreamHub's build and test dependencies (Debian 12) and configure
# the build directories.  Idempotent: safe to run again at any time.
#
#   scripts/setup.sh            system packages + build/ (debugoptimized)
#   scripts/setup.sh --asan     also build-asan/ (ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential meson ninja-build pkg-config clang
  libevent-dev libhiredis-dev libpq-dev libsqlite3-dev
  libjson-c-dev libsodium-dev libssl-dev libcmocka-dev
  postgresql redis-server
  python3 python3-pytest python3-setuptools
  golang-go doxygen
  libwslay-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
# Node.js 20 with npm may come from elsewhere already; Debian's otherwise.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

setup_dir() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

setup_dir build --buildtype=debugoptimized -Dwerror=true
if [ "${1:-}" = "--asan" ]; then
  setup_dir build-asan --buildtype=debug -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false
fi
