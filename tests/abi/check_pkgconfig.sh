#!/bin/sh
# A user builds against StreamHub the way pkg-config says, with nothing set
# by hand but PKG_CONFIG_PATH: `cc $(pkg-config --cflags --libs streamhub)`
# and `go test` of the Go binding must both succeed
#  (a) against the build tree: <builddir>/meson-uninstalled, whose file
#      also carries an rpath to the build tree (no LD_LIBRARY_PATH);
#  (b) against an installed copy: `meson install --destdir` into a
#      temporary directory, the installed streamhub.pc read through
#      PKG_CONFIG_SYSROOT_DIR; at run time the private prefix is found
#      through LD_LIBRARY_PATH, as for any library installed off the
#      system's paths.
# The C program is examples/quickstart.c, which runs a whole hub.
# No CGO_CFLAGS, CGO_LDFLAGS nor CFLAGS: the .pc files give everything.
#
# usage: check_pkgconfig.sh SRCDIR BUILDDIR
# Exits 77 (skipped) when `go` is missing; scripts/test.sh counts a skip
# as a failure in CI.
set -eu
src=$1
build=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamhub-pc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! command -v go >/dev/null 2>&1; then
  echo "SKIP: go not found (golang-go)"
  exit 77
fi
unset CGO_CFLAGS CGO_LDFLAGS CFLAGS LDFLAGS LD_LIBRARY_PATH \
      PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
export GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
cc=${CC:-cc}

# try LABEL: compile and run the C program, then go test, with the
# pkg-config environment the caller exported.
try() {
  label=$1
  echo "== $label: PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
  flags=$(pkg-config --cflags --libs streamhub)
  echo "pkg-config --cflags --libs streamhub: $flags"
  # shellcheck disable=SC2086  # the flags are words
  "$cc" -std=c11 -Wall -Werror -o "$tmp/quickstart-$label" \
    "$src/examples/quickstart.c" $flags
  "$tmp/quickstart-$label" >"$tmp/quickstart-$label.log" 2>&1 || {
    cat "$tmp/quickstart-$label.log"
    echo "FAIL ($label): quickstart built with pkg-config does not run"
    exit 1
  }
  echo "quickstart ($label): ran"
  # A build cache of its own: go's cache does not key on what pkg-config
  # prints, so a shared one could hide a broken .pc file.
  (cd "$src/bindings/go" && GOCACHE="$tmp/gocache-$label" \
     go test -count=1 ./...) || {
    echo "FAIL ($label): go test with pkg-config alone"
    exit 1
  }
}

PKG_CONFIG_PATH=$build/meson-uninstalled
export PKG_CONFIG_PATH
try uninstalled

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" \
  >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"
  echo "FAIL: meson install --destdir"
  exit 1
}
pc=$(find "$tmp/root" -name streamhub.pc | head -n 1)
if [ -z "$pc" ]; then
  echo "FAIL: meson install put no streamhub.pc"
  exit 1
fi
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$tmp/root
LD_LIBRARY_PATH=$tmp/root$(pkg-config --variable=libdir streamhub)
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR LD_LIBRARY_PATH
# The installed file must not point into the source or build tree.
if pkg-config --cflags --libs streamhub | grep -q -e "$src/" -e "$build/"; then
  echo "FAIL: the installed streamhub.pc points into the source tree"
  exit 1
fi
try installed
echo "ok: both pkg-config files build and run a C program and go test"
