#!/usr/bin/env bats
# Conventions every tool shares (cryolvm(7)): --help, --version, usage errors exit 2 with one
# line plus a hint, a man page for each.
load helpers

tools() { for t in "$CRYO_BIN"/*; do [ -x "$t" ] && basename "$t"; done; }

@test "every tool answers --help with a usage line and exit 0" {
  for t in $(tools); do
    run "$t" --help
    [ "$status" -eq 0 ] || { echo "$t --help exit $status"; return 1; }
    [[ "${lines[0]}" == Usage:* ]] || { echo "$t: first line '${lines[0]}'"; return 1; }
  done
}

@test "every tool answers --version with its name and the version" {
  for t in $(tools); do
    run "$t" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "$t "*"(cryolvm) "* ]] || { echo "$t: '$output'"; return 1; }
  done
}

@test "an unknown option is a usage error: exit 2, the option named, a hint" {
  for t in $(tools); do
    run "$t" --no-such-option
    [ "$status" -eq 2 ] || { echo "$t exit $status: $output"; return 1; }
    [[ "${lines[0]}" == "$t: "*"--no-such-option"* ]] || { echo "$t: '${lines[0]}'"; return 1; }
    [[ "${lines[1]}" == "Try '$t --help'." ]]
  done
}

@test "every tool has a man page in man/man1" {
  for t in $(tools); do
    [ -f "$BATS_TEST_DIRNAME/../../man/man1/$t.1" ] || { echo "no man page for $t"; return 1; }
  done
}
