#!/usr/bin/env bash
# Install StreamHub's build and test dependencies (Debian 12) and configure
# the build directories.  Idempotent: safe to run again at any time.
# Runs as root, or as a user with sudo.
#
#   scripts/setup.sh            system packages + build/ (debugoptimized)
#   scripts/setup.sh --asan     also build-asan/ (ASan + UBSan)
#
# README.md's dependency list says why each package is here.
set -euo pipefail
cd "$(dirname "$0")/.."

asan=no
for arg in "$@"; do
  case $arg in
    --asan) asan=yes ;;
    *) echo "usage: $0 [--asan]" >&2; exit 2 ;;
  esac
done

PKGS=(
  # toolchain; clang and libclang-rt-14-dev for the libFuzzer targets
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  ca-certificates
  # libraries (libevent-dev carries libevent_openssl and libevent_pthreads)
  libevent-dev libhiredis-dev libpq-dev libsqlite3-dev
  libjson-c-dev libsodium-dev libssl-dev libhttp-parser-dev
  libcurl4-openssl-dev
  # tests: cmocka, the WebSocket reference codec, throwaway servers
  libcmocka-dev libwslay-dev postgresql redis-server
  # the cluster e2e tests: PostgreSQL through pgbouncer, nodes behind nginx
  pgbouncer nginx-light
  # the webhook e2e test reads the dead-letter table with the sqlite3 CLI
  sqlite3
  # helgrind: the threads contract test (tests/contract/test_shared.c)
  valgrind
  # the README's tour, which tests/e2e/readme_tour.test.mjs runs
  curl jq
  # tests: systemd-analyze verify checks deploy/streamhub.service
  systemd
  # the console's browser tests (tests/e2e/console.test.mjs), headless
  chromium
  # benchmarks: the HTTP load generator of bench/run_graphql.sh
  wrk
  # the outbox's RabbitMQ sink, and the broker its e2e tests start
  librabbitmq-dev rabbitmq-server
  # bindings and docs; python3-venv for the binding's pip-install test
  python3 python3-pytest python3-setuptools python3-venv golang-go doxygen
)

missing=()
for p in "${PKGS[@]}"; do
  # Any Debian nginx flavour gives /usr/sbin/nginx, which is all we need.
  if [ "$p" = nginx-light ] && [ -x /usr/sbin/nginx ]; then
    continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
# Node.js (20, or Debian's) with npm may come from elsewhere already.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup.sh: missing packages (${missing[*]}); run as root or install sudo" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
fi

# From npm, pinned by each directory's package-lock.json: the end-to-end
# tests' clients (with playwright-core, which drives Debian's chromium),
# and the console's GraphiQL and React, which streamhubd serves from
# console/node_modules.
for d in tests/e2e console; do
  if [ -f "$d/package-lock.json" ] && [ ! -d "$d/node_modules" ]; then
    (cd "$d" && npm ci --no-audit --no-fund)
  fi
done

setup_dir() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

setup_dir build --buildtype=debugoptimized -Dwerror=true
if [ "$asan" = yes ]; then
  setup_dir build-asan --buildtype=debug -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false
fi
