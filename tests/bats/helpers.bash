# helpers.bash — shared setup for the Bats tool tests (load with `load helpers`).
#   $CRYO_BIN   the built tools (make bats sets it; defaults to ../../bin)
#   $TMP        a fresh directory per test, removed afterwards
#   $PY         Debian's python3 (numpy, mrcfile, gemmi, torch live there)
#   $REF        tests/ref (reference scripts)
#   $DATA       real maps (../shared/data beside the checkout, or $CRYO_DATA)
#   require_py_module NAME   skip unless $PY can import NAME
#   require_data RELPATH     skip unless $DATA/RELPATH exists
#   assert_close_files A B TOL   volumes in A and B (any format) agree: max|a-b| <= TOL·max(1,max|b|), NaN fails
#   assert_one_error_line    $output is exactly one line, naming something (non-empty)
#   assert_no_file PATH      PATH must not exist (no partial output)

CRYO_BIN=${CRYO_BIN:-$(cd "$BATS_TEST_DIRNAME/../../bin" 2>/dev/null && pwd)}
PY=/usr/bin/python3
REF=$(cd "$BATS_TEST_DIRNAME/../ref" && pwd)
DATA=${CRYO_DATA:-$(cd "$BATS_TEST_DIRNAME/../../.." 2>/dev/null && pwd)/shared/data}
export PATH="$CRYO_BIN:$PATH"
export PYTHONPATH="$REF${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

setup() {
  TMP=$(mktemp -d "${BATS_TMPDIR:-/tmp}/cryolvm-bats.XXXXXX")
}

teardown() {
  [ -n "${TMP:-}" ] && rm -rf "$TMP"
}

require_py_module() {
  "$PY" -c "import $1" 2>/dev/null || skip "python module $1 not installed"
}

require_data() {
  [ -e "$DATA/$1" ] || skip "shared data $1 not present"
}

assert_close_files() {
  "$PY" "$REF/compare_volumes.py" "$1" "$2" "$3"
}

assert_one_error_line() {
  local n
  n=$(printf '%s\n' "$output" | grep -c .)
  if [ "$n" -ne 1 ]; then
    echo "expected one error line, got $n:"; printf '%s\n' "$output"; return 1
  fi
}

assert_no_file() {
  if [ -e "$1" ]; then echo "partial output left behind: $1"; ls -la "$(dirname "$1")"; return 1; fi
  # no temporary siblings either
  if compgen -G "$1.*.tmp" >/dev/null || compgen -G "$(dirname "$1")/.$(basename "$1")*" >/dev/null; then
    echo "temporary file left behind next to $1"; ls -la "$(dirname "$1")"; return 1
  fi
}
