#!/bin/sh
# The dynamic symbols libstreamhub.so exports must all be public (sh_*, not
# the sh__ internals) and must equal docs/SYMBOLS, so that a new or vanished
# public function is a deliberate change: scripts/update-symbols.sh rewrites
# docs/SYMBOLS, and the diff lands in the same commit as the header change.
#
# usage: check_symbols.sh LIBSTREAMHUB.so docs/SYMBOLS
set -eu
lib=$1
expected=$2
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT

nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' \
  | LC_ALL=C sort -u >"$actual"

status=0
bad=$(grep -v '^sh_[a-z0-9]' "$actual" || true)
internal=$(grep '^sh__' "$actual" || true)
if [ -n "$bad$internal" ]; then
  echo "exported symbols that are not public sh_* names:"
  printf '%s\n%s\n' "$bad" "$internal" | sed '/^$/d; s/^/  /'
  status=1
fi
if ! diff -u "$expected" "$actual"; then
  echo "the exports differ from docs/SYMBOLS (diff above: - documented," \
       "+ exported); run scripts/update-symbols.sh if intended"
  status=1
fi
[ "$status" -eq 0 ] && echo "$(wc -l <"$actual") symbols, all documented"
exit "$status"
