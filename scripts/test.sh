#!/usr/bin/env bash
# Set everything up and run the whole test suite.
#
#   scripts/test.sh
#
# Steps: scripts/setup.sh --asan; a throwaway PostgreSQL and Redis
# (scripts/with-services.sh); build/ and build-asan/; `meson test` on build/
# (every suite: unit, contract, e2e) and on build-asan/ (unit, contract);
# the fuzz smoke (each libFuzzer target for 20 s, when clang has libFuzzer
# and tests/fuzz exists); the Python and Go binding tests when they exist.
# Ends with one line, "N passed, N failed", and fails when a test failed,
# a step broke, or nothing ran at all.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${1:-}" != "--no-setup" ]; then
  bash scripts/setup.sh --asan || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
if [ -z "${STREAMHUB_TEST_PG_URI:-}" ] || [ -z "${STREAMHUB_TEST_REDIS_URI:-}" ]; then
  exec bash scripts/with-services.sh bash scripts/test.sh --no-setup
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
passed=0
failed=0
failures=()
work=$(mktemp -d "${TMPDIR:-/tmp}/streamhub-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n==== %s\n' "$*"; }
# record NAME RC PASSED FAILED: a step that failed without a counted test
# failure still counts as one failure.
record() {
  local name=$1 rc=$2 p=$3 f=$4
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$f" -gt 0 ] && failures+=("$name")
  echo "---- $name: $p passed, $f failed"
}

# Count the results meson wrote to DIR/meson-logs/testlog.json.
meson_counts() {
  "$PY" - "$1/meson-logs/testlog.json" <<'PYEOF'
import json, sys
ok = bad = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    r = json.loads(line).get('result', '')
    if r in ('OK', 'EXPECTEDFAIL'):
        ok += 1
    elif r != 'SKIP':
        bad += 1
print(ok, bad)
PYEOF
}

# The suites defined in a build dir, without the project prefix.
meson_suites() {
  meson introspect --tests "$1" | "$PY" -c '
import json, sys
s = set()
for t in json.load(sys.stdin):
    for x in t.get("suite", []):
        s.add(x.split(":")[-1])
print(" ".join(sorted(s)))'
}

run_meson_tests() {
  local name=$1 dir=$2; shift 2
  local rc
  rm -f "$dir/meson-logs/testlog.json"
  meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" "$@"
  rc=$?
  read -r p f < <(meson_counts "$dir")
  record "$name" "$rc" "$p" "$f"
}

# ---- node clients for the e2e tests
if [ -f tests/e2e/package.json ] && [ ! -d tests/e2e/node_modules ]; then
  step "npm install (tests/e2e)"
  if [ -f tests/e2e/package-lock.json ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund)
  else
    (cd tests/e2e && npm install --no-audit --no-fund)
  fi
  record "npm install" $? 0 0
fi

# ---- build/ : every suite
step "build (build/)"
if ninja -C build; then
  step "meson test (build/, all suites)"
  run_meson_tests "meson test build/" build
else
  record "build build/" 1 0 1
fi

# ---- build-asan/ : unit and contract under ASan + UBSan
step "build (build-asan/)"
if ninja -C build-asan; then
  suites=()
  for s in $(meson_suites build-asan); do
    case $s in unit|contract) suites+=(--suite "$s") ;; esac
  done
  if [ ${#suites[@]} -gt 0 ]; then
    step "meson test (build-asan/, ${suites[*]})"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1} \
      run_meson_tests "meson test build-asan/" build-asan "${suites[@]}"
  else
    echo "no unit or contract suite defined yet"
  fi
else
  record "build build-asan/" 1 0 1
fi

# ---- fuzz smoke
fuzz_ok=no
if [ -f tests/fuzz/meson.build ] && command -v clang >/dev/null; then
  echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)
        { (void)d; (void)n; return 0; }' >"$work/probe.c"
  clang -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>/dev/null && fuzz_ok=yes
fi
if [ "$fuzz_ok" = yes ]; then
  step "fuzz smoke (build-fuzz/, ${FUZZ_SECONDS} s per target)"
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzz=true --buildtype=debug \
      -Db_lundef=false >/dev/null
  fi
  targets=$(meson introspect --targets build-fuzz 2>/dev/null | "$PY" -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and "/tests/fuzz/" in t["defined_in"]:
        print(t["filename"][0])')
  if [ -z "$targets" ]; then
    echo "no fuzz targets defined yet"
  else
    for exe in $targets; do
      name=$(basename "$exe")
      if ! ninja -C build-fuzz "$(realpath --relative-to=build-fuzz "$exe")"; then
        record "fuzz $name (build)" 1 0 1
        continue
      fi
      corpus="$work/corpus-$name"
      mkdir -p "$corpus"
      seeds=()
      for d in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/${name#fuzz_}"; do
        [ -d "$d" ] && seeds+=("$d")
      done
      (cd "$work" && "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
         -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$work/$name-" "$corpus" "${seeds[@]}") \
        >"$work/$name.log" 2>&1
      rc=$?
      tail -n 5 "$work/$name.log"
      if [ "$rc" -eq 0 ]; then
        record "fuzz $name" 0 1 0
      else
        cat "$work/$name.log" | tail -n 60
        record "fuzz $name" "$rc" 0 1
      fi
    done
  fi
elif [ -f tests/fuzz/meson.build ]; then
  echo "fuzz smoke skipped: clang with libFuzzer not available"
fi

# ---- Python binding
export LD_LIBRARY_PATH="$root/build/libstreamhub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STREAMHUB_LIBRARY="$root/build/libstreamhub/libstreamhub.so"
# Binding tests that meson already runs (a test named python-* or go-*) are
# not run twice.
meson_runs() {
  meson introspect --tests build 2>/dev/null | "$PY" -c '
import json, sys
sys.exit(0 if any(t["name"].startswith(sys.argv[1])
                  for t in json.load(sys.stdin)) else 1)' "$1"
}
if meson_runs python; then
  echo "pytest (bindings/python): run by meson test above"
elif [ -d bindings/python/tests ] && \
   [ -n "$(find bindings/python/tests -name 'test_*.py' -o -name '*_test.py' | head -n 1)" ]; then
  step "pytest (bindings/python)"
  PYTHONPATH="$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pytest -q -p no:cacheprovider bindings/python/tests \
    --junitxml="$work/pytest.xml"
  rc=$?
  read -r p f < <("$PY" - "$work/pytest.xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
p = f = 0
try:
    root = ET.parse(sys.argv[1]).getroot()
    for s in ([root] if root.tag == 'testsuite' else root.iter('testsuite')):
        t = int(s.get('tests', 0)); e = int(s.get('errors', 0))
        x = int(s.get('failures', 0)); k = int(s.get('skipped', 0))
        p += t - e - x - k; f += e + x
except Exception:
    pass
print(p, f)
PYEOF
)
  record "pytest" "$rc" "$p" "$f"
fi

# ---- Go binding
if meson_runs go; then
  echo "go test (bindings/go): run by meson test above"
elif [ -d bindings/go ] && [ -n "$(find bindings/go -name '*_test.go' | head -n 1)" ]; then
  step "go test -race (bindings/go)"
  # pkg-config alone: the uninstalled .pc file gives the include
  # directories, the library and an rpath to it.
  (cd bindings/go && \
   PKG_CONFIG_PATH="$root/build/meson-uninstalled${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
   go test -race -count=1 -v ./...) 2>&1 | tee "$work/go.log"
  rc=${PIPESTATUS[0]}
  p=$(grep -c -- '--- PASS' "$work/go.log")
  f=$(grep -c -- '--- FAIL' "$work/go.log")
  record "go test" "$rc" "$p" "$f"
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  printf 'failed: %s\n' "$(IFS=,; echo "${failures[*]}" | sed 's/,/, /g')"
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "no test ran"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
