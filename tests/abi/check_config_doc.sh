#!/bin/sh
# docs/CONFIG.md must be exactly what `streamhubd --help-markdown` prints, so
# the key table and its documentation cannot drift apart.  On a difference,
# run scripts/update-config-doc.sh and commit the result.
#
# usage: check_config_doc.sh STREAMHUBD docs/CONFIG.md
set -eu
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$1" --help-markdown >"$out"
if ! diff -u "$2" "$out"; then
  echo "docs/CONFIG.md is stale (diff above: - committed, + generated);" \
       "run scripts/update-config-doc.sh"
  exit 1
fi
echo "docs/CONFIG.md matches streamhubd --help-markdown"
