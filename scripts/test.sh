#!/usr/bin/env bash
# Set everything up and run the whole test suite.
#
#   scripts/test.sh
#
# Steps: scripts/setup.sh --asan; a throwaway PostgreSQL and Redis
# (scripts/with-services.sh); build/ and build-asan/; `meson test` on build/
# (every suite: unit, contract, e2e, bindings, examples) and on build-asan/
# (unit, contract, e2e: the servers of the e2e tests run under ASan and
# UBSan, abort on a report, and the harness fails the test); the fuzz
# smoke (each libFuzzer target for 20 s); the Python and Go binding tests
# when meson does not run them.
# Ends with one line, "N passed, N failed", with ", N skipped" when a
# suite or test did not run, and fails when a test failed, a step broke,
# or nothing ran at all.
#
# Skips.  A suite that cannot run here (no node, no C++ compiler, no
# libFuzzer, no wslay, no python3-venv, a pytest test skipped) is a skip:
# meson tests exit 77, pytest's are counted.  In CI (CI set, and not
# "false" or "0") a skip is a failure: everything there must run.
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
case ${CI:-} in ''|0|false) ci=no ;; *) ci=yes ;; esac
passed=0
failed=0
skipped=0
failures=()
work=$(mktemp -d "${TMPDIR:-/tmp}/streamhub-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n==== %s\n' "$*"; }
# record NAME RC PASSED FAILED [SKIPPED]: a step that failed without a
# counted test failure still counts as one failure; in CI a skip is a
# failure.
record() {
  local name=$1 rc=$2 p=$3 f=$4 s=${5:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  if [ "$ci" = yes ] && [ "$s" -gt 0 ]; then
    echo "---- $name: $s skipped, which CI counts as failed"
    f=$((f + s))
    s=0
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  [ "$f" -gt 0 ] && failures+=("$name")
  if [ "$s" -gt 0 ]; then
    echo "---- $name: $p passed, $f failed, $s skipped"
  else
    echo "---- $name: $p passed, $f failed"
  fi
}

# Count the results meson wrote to DIR/meson-logs/testlog.json: "passed
# failed skipped" on stdout, each skipped test and why on stderr.
meson_counts() {
  "$PY" - "$1/meson-logs/testlog.json" <<'PYEOF'
import json, sys
ok = bad = skip = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    t = json.loads(line)
    r = t.get('result', '')
    if r in ('OK', 'EXPECTEDFAIL'):
        ok += 1
    elif r == 'SKIP':
        skip += 1
        why = (t.get('stdout') or t.get('stdo') or '').strip().splitlines()
        print('SKIPPED %s: %s' % (t.get('name', '?'),
                                  why[-1] if why else 'exit 77'),
              file=sys.stderr)
    else:
        bad += 1
print(ok, bad, skip)
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
  meson_counts "$dir" >"$work/counts.txt" 2>"$work/skips-now.txt"
  sed "s|^SKIPPED |SKIPPED $dir/: |" "$work/skips-now.txt" \
    | tee -a "$work/skips.txt"
  read -r p f s <"$work/counts.txt"
  record "$name" "$rc" "$p" "$f" "$s"
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

# ---- build-asan/ : unit, contract and e2e under ASan + UBSan
step "build (build-asan/)"
if ninja -C build-asan; then
  suites=()
  for s in $(meson_suites build-asan); do
    case $s in unit|contract|e2e) suites+=(--suite "$s") ;; esac
  done
  if [ ${#suites[@]} -gt 0 ]; then
    step "meson test (build-asan/, ${suites[*]})"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1} \
      run_meson_tests "meson test build-asan/" build-asan "${suites[@]}"
  else
    echo "no unit, contract or e2e suite defined yet"
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
  echo "SKIPPED fuzz smoke: clang with libFuzzer not available" \
       "(clang, libclang-rt-14-dev)" | tee -a "$work/skips.txt"
  record "fuzz smoke" 0 0 0 1
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
  read -r p f k < <("$PY" - "$work/pytest.xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
p = f = k = 0
try:
    root = ET.parse(sys.argv[1]).getroot()
    for s in ([root] if root.tag == 'testsuite' else root.iter('testsuite')):
        t = int(s.get('tests', 0)); e = int(s.get('errors', 0))
        x = int(s.get('failures', 0)); n = int(s.get('skipped', 0))
        p += t - e - x - n; f += e + x; k += n
except Exception:
    pass
print(p, f, k)
PYEOF
)
  # conftest.py exits 77 on skips outside CI: counted as skipped, not failed.
  [ "$rc" -eq 77 ] && rc=0
  record "pytest" "$rc" "$p" "$f" "$k"
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
if [ -s "$work/skips.txt" ]; then
  if [ "$ci" = yes ]; then
    echo "did not run (a failure in CI):"
  else
    echo "did not run (allowed outside CI only):"
  fi
  sed 's/^SKIPPED /  /' "$work/skips.txt"
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "no test ran"
fi
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
