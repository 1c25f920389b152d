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

@test "every public header compiles on its own and is included by cryolvm.h" {
  inc="$BATS_TEST_DIRNAME/../../libcore/include"
  for h in "$inc"/cryolvm/*.h; do
    name=cryolvm/$(basename "$h")
    grep -qF "#include \"$name\"" "$inc/cryolvm.h" || { echo "cryolvm.h misses $name"; return 1; }
    printf '#include <%s>\nint main(void) { return 0; }\n' "$name" > "$TMP/h.c"
    cc -std=c11 -Wall -Wextra -Werror -I"$inc" -c "$TMP/h.c" -o "$TMP/h.o" || { echo "$name does not compile alone"; return 1; }
  done
  printf '#include <cryolvm.h>\nint main(void) { return 0; }\n' > "$TMP/all.c"
  cc -std=c11 -Wall -Wextra -Werror -I"$inc" -c "$TMP/all.c" -o "$TMP/all.o"
}

@test "make install puts tools, libraries, headers and man pages under DESTDIR/PREFIX" {
  top="$BATS_TEST_DIRNAME/../../"
  make -C "$top" --no-print-directory -s install PREFIX=/usr DESTDIR="$TMP/root" >/dev/null
  for t in $(tools); do [ -x "$TMP/root/usr/bin/$t" ] || { echo "missing bin/$t"; return 1; }; done
  [ -f "$TMP/root/usr/lib/libcryolvm.a" ] && [ -f "$TMP/root/usr/lib/libcryolvm.so" ]
  [ -f "$TMP/root/usr/include/cryolvm.h" ] && [ -f "$TMP/root/usr/include/cryolvm/volume.h" ]
  [ -f "$TMP/root/usr/share/man/man5/cryolvm-stream.5" ] && [ -f "$TMP/root/usr/share/man/man7/cryolvm.7" ]
  for t in $(tools); do [ -f "$TMP/root/usr/share/man/man1/$t.1" ] || { echo "missing man page $t.1"; return 1; }; done
  # the installed header and library are enough to build the example plugin
  cc -shared -fPIC -I"$TMP/root/usr/include" -o "$TMP/scale.so" "$TMP/root/usr/share/cryolvm/examples/stage-scale.c"
}
