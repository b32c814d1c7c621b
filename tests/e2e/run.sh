#!/bin/sh
# Run one e2e file with node:test and hold it to the rule that every test
# runs: a test marked `todo` or `skip` (or skipped at run time with
# t.skip()) makes the file fail in CI (CI set, and not "false" or "0"),
# and skipped elsewhere (exit 77), once everything else passed.
#
# usage: run.sh NODE FILE
set -u
node=$1
file=$2
out=$(mktemp "${TMPDIR:-/tmp}/streamhub-e2e.XXXXXX")
trap 'rm -f "$out"' EXIT

"$node" --test --test-concurrency=1 --test-reporter=tap "$file" >"$out" 2>&1
rc=$?
cat "$out"
[ "$rc" -eq 0 ] || exit "$rc"
todo=$(sed -n 's/^# todo \([0-9][0-9]*\)$/\1/p' "$out" | tail -n 1)
skip=$(sed -n 's/^# skipped \([0-9][0-9]*\)$/\1/p' "$out" | tail -n 1)
if [ -z "$todo" ] || [ -z "$skip" ]; then
  echo "run.sh: no node:test summary in the output"
  exit 1
fi
if [ "$todo" -gt 0 ] || [ "$skip" -gt 0 ]; then
  grep -E '^ *(ok|not ok) .* # (TODO|SKIP)' "$out" | sed 's/^ */todo or skipped: /'
  case ${CI:-} in
    ''|0|false)
      echo "$todo todo, $skip skipped: allowed outside CI only"
      exit 77 ;;
    *)
      echo "$todo todo, $skip skipped: CI runs every test"
      exit 1 ;;
  esac
fi
exit 0
