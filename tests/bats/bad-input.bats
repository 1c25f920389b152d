#!/usr/bin/env bats
# Broken maps and stacks, one test each: every one must give exactly one line on stderr that
# names the file and the problem, exit status 1, and no output file (an existing output is
# left untouched). The broken files are made by tests/ref/make_mrc.py ("bad" cases).
load helpers
bats_require_minimum_version 1.5.0

need_tools() {
  [ -x "$CRYO_BIN/vol-convert" ] && [ -x "$CRYO_BIN/vol-info" ] || skip "vol-convert/vol-info not built"
}

# $1 case name, $2 file extension, $3 text the message must contain
refused() {
  need_tools; require_py_module numpy
  local f="$TMP/bad_$1.$2"
  "$PY" "$REF/make_mrc.py" bad "$1" "$f"
  # vol-convert: one line naming the file and the problem, no output, existing output kept
  run --separate-stderr vol-convert "$f" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ] || { echo "status $status: $stderr"; false; }
  output=$stderr assert_one_error_line
  [[ "$stderr" == "vol-convert: $f: "*"$3"* ]] || { echo "got: $stderr"; false; }
  assert_no_file "$TMP/out.mrc"
  echo keep > "$TMP/existing.mrc"
  run vol-convert "$f" -o "$TMP/existing.mrc"
  [ "$status" -eq 1 ]
  [ "$(cat "$TMP/existing.mrc")" = keep ]
  # vol-info: the same message on stderr
  run --separate-stderr vol-info "$f"
  [ "$status" -eq 1 ]
  output=$stderr assert_one_error_line
  [[ "$stderr" == "vol-info: $f: "*"$3"* ]] || { echo "got: $stderr"; false; }
  # and from a pipe, where the name is "stdin"
  run --separate-stderr bash -c 'cat "$1" | "$2/vol-convert" - -o "$3"' _ "$f" "$CRYO_BIN" "$TMP/pipe.mrc"
  [ "$status" -eq 1 ]
  output=$stderr assert_one_error_line
  [[ "$stderr" == "vol-convert: stdin: "*"$3"* ]] || { echo "got: $stderr"; false; }
  assert_no_file "$TMP/pipe.mrc"
}

@test "truncated MRC header" {
  refused truncated_header map "only 500 bytes, too short for the 1024-byte MRC header"
}

@test "header claims more data than the file has" {
  refused truncated_data map "header says 100x100x100 float32 (3.8 MiB) but only 1.2 MiB of data follow"
}

@test "absurd dimensions" {
  refused absurd_dims map "header says 100000x100000x100000 float32: over 1 TiB, refusing absurd size"
}

@test "dimensions whose product overflows" {
  refused overflow_dims map "2147483647x2147483647x2147483647 float32: over 1 TiB"
}

@test "negative dimensions" {
  refused negative_dims map "invalid dimensions 4x-4x4 in MRC header (must be positive)"
}

@test "zero dimension" {
  refused zero_dims map "invalid dimensions 4x0x4"
}

@test "unknown mode" {
  refused unknown_mode map "unsupported MRC mode 5"
}

@test "complex mode" {
  refused complex_mode map "MRC mode 4 (complex Fourier data) is not supported"
}

@test "NaN in the cell dimensions" {
  refused nan_cella map "cell length along X (CELLA) is nan, not a finite number"
}

@test "Inf in the cell dimensions" {
  refused inf_cella map "cell length along Y (CELLA) is inf"
}

@test "axis order that is not a permutation" {
  refused bad_axes map "MAPC/MAPR/MAPS = 1 1 3 is not a permutation of 1 2 3"
}

@test "extended header larger than the file" {
  need_tools
  # nsymbt = 1 GiB on a tiny file whose size matches neither with nor without it
  "$PY" -c "
import sys; sys.path.insert(0, '$REF'); import make_mrc, numpy as np
b = make_mrc.mrc_bytes(make_mrc.pattern((4, 4, 4), np.float32), nsymbt=1 << 30) + b'x' * 10
open('$TMP/ext.map', 'wb').write(b)"
  run --separate-stderr vol-convert "$TMP/ext.map" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  output=$stderr assert_one_error_line
  [[ "$stderr" == "vol-convert: $TMP/ext.map: input ends inside the 1.0 GiB extended header (NSYMBT = 1073741824)" ]] || { echo "$stderr"; false; }
  assert_no_file "$TMP/out.mrc"
}

@test "garbage bytes" {
  refused garbage map "not a recognised volume"
}

@test "a text file (an HTML error page saved as .map)" {
  refused text map "not a recognised volume"
}

@test "empty input" {
  refused empty map "empty input"
  run --separate-stderr vol-info - < /dev/null
  [ "$status" -eq 1 ]
  [ "$stderr" = "vol-info: stdin: empty input" ]
}

@test "truncated gzip" {
  refused truncated_gzip map.gz "gzip data ends early"
}

@test "corrupt gzip" {
  refused corrupt_gzip map.gz "corrupt gzip data"
}

@test "TIFF pages that disagree in size" {
  require_py_module tifffile
  refused tiff_mismatch tif "page 2 is 9x8 8-bit uint but page 1 is 8x8 8-bit uint"
}

@test "RGB TIFF" {
  require_py_module tifffile
  refused tiff_rgb tif "TIFF pages have 3 samples per pixel"
}

@test "truncated TIFF" {
  require_py_module tifffile
  refused truncated_tiff tif "TIFF page chain is broken after page 1"
}

@test "missing file and a directory" {
  need_tools
  run --separate-stderr vol-info "$TMP/nope.map"
  [ "$status" -eq 1 ]
  [ "$stderr" = "vol-info: $TMP/nope.map: No such file or directory" ]
  run --separate-stderr vol-convert "$TMP" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]
  [ "$stderr" = "vol-convert: $TMP: is a directory" ]
  assert_no_file "$TMP/o.mrc"
}

@test "MRC output refuses what MRC cannot hold, before writing anything" {
  need_tools; require_py_module tifffile
  "$PY" "$REF/make_mrc.py" tiff i32 "$TMP/i.tif" "$TMP/i.npz"
  run --separate-stderr vol-convert "$TMP/i.tif" -o "$TMP/i.mrc"
  [ "$status" -eq 1 ]
  output=$stderr assert_one_error_line
  [[ "$stderr" == *"int32"* ]]
  assert_no_file "$TMP/i.mrc"
}
