#!/usr/bin/env bats
# vol-convert: exact round trips between MRC, TIFF and the stream; dtype conversion that
# refuses lossy casts; several frames; the broken-stream corpus (no output left behind).
load helpers
bats_require_minimum_version 1.5.0

make_mrc() { # $1 path, $2 numpy dtype, $3 shape "z,y,x"
  "$PY" - "$1" "$2" "$3" <<'PY'
import sys, numpy as np, mrcfile
path, dt, shape = sys.argv[1], sys.argv[2], tuple(int(s) for s in sys.argv[3].split(","))
rng = np.random.default_rng(11)
if np.dtype(dt).kind == "f":
    a = rng.normal(0.1, 2.0, shape).astype(dt)
else:
    a = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, shape, endpoint=True).astype(dt)
with mrcfile.new(path, overwrite=True) as m:
    m.set_data(a)
    m.voxel_size = (1.1, 1.2, 1.3)
    m.header.origin = (-5.5, 7.0, 12.25)
PY
}

# A broken-input case: status 1, one line on stderr naming the input and $2, no output.
expect_refused() { # $1 input, $2 expected text
  echo keep > "$TMP/existing.mrc"
  run vol-convert "$1" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == "vol-convert: "*"$(basename "$1")"*"$2"* ]] || { echo "got: $output"; false; }
  assert_no_file "$TMP/out.mrc"
  run vol-convert "$1" -o "$TMP/existing.mrc"
  [ "$status" -eq 1 ]
  [ "$(cat "$TMP/existing.mrc")" = keep ]
  run vol-convert "$1" -o "$TMP/out.cvol"
  [ "$status" -eq 1 ]
  assert_no_file "$TMP/out.cvol"
}

two_frame_stream() { # $1 path
  "$PY" - "$1" <<'PY'
import sys, numpy as np, cvol
rng = np.random.default_rng(5)
cvol.write_stream(sys.argv[1], [
    {"data": rng.normal(size=(6, 7, 8)).astype(np.float32), "apix": (2.0, 2.0, 2.0)},
    {"data": rng.normal(size=(5, 5, 5)).astype(np.float32), "apix": (3.0, 3.0, 3.0)}], chunk=256)
PY
}

@test "MRC -> stream -> MRC is exact for float32, int16, uint16, int8, float16 (data, voxel size, origin)" {
  require_py_module mrcfile
  for dt in float32 int16 uint16 int8 float16; do
    make_mrc "$TMP/in.mrc" $dt 7,9,11
    run vol-convert "$TMP/in.mrc" -o "$TMP/mid.cvol"
    [ "$status" -eq 0 ]
    run vol-convert "$TMP/mid.cvol" -o "$TMP/out.mrc"
    [ "$status" -eq 0 ]
    "$PY" - "$TMP/in.mrc" "$TMP/out.mrc" <<'PY'
import sys, numpy as np, mrcfile
a, b = mrcfile.open(sys.argv[1]), mrcfile.open(sys.argv[2])
assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape, (a.data.dtype, b.data.dtype)
assert a.data.tobytes() == b.data.tobytes()
for ax in "xyz":
    assert abs(float(a.voxel_size[ax]) - float(b.voxel_size[ax])) < 1e-6, ax
    assert abs(float(a.header.origin[ax]) - float(b.header.origin[ax])) < 1e-4, (ax, a.header.origin, b.header.origin)
labels = [l.decode().strip() for l in b.header.label[:int(b.header.nlabl)]]
assert any(l.startswith("vol-convert") for l in labels), labels
PY
  done
}

@test "stdin to stdout: the stream passes through pipes" {
  require_py_module mrcfile
  make_mrc "$TMP/in.mrc" float32 4,5,6
  vol-convert < "$TMP/in.mrc" | vol-convert - -o "$TMP/out.mrc"
  assert_close_files "$TMP/in.mrc" "$TMP/out.mrc" 0
}

@test "TIFF -> stream -> TIFF is exact for uint8, uint16 and float32 stacks" {
  require_py_module tifffile
  for dt in uint8 uint16 float32; do
    "$PY" - "$TMP/in.tif" $dt <<'PY'
import sys, numpy as np, tifffile
rng = np.random.default_rng(2)
dt = np.dtype(sys.argv[2])
a = (rng.normal(size=(5, 9, 13)) * 1000).astype(dt) if dt.kind == "f" else rng.integers(0, np.iinfo(dt).max, (5, 9, 13)).astype(dt)
tifffile.imwrite(sys.argv[1], a)
np.save(sys.argv[1] + ".npy", a)
PY
    run vol-convert "$TMP/in.tif" -o "$TMP/mid.cvol"
    [ "$status" -eq 0 ]
    run vol-convert "$TMP/mid.cvol" -o "$TMP/out.tif"
    [ "$status" -eq 0 ]
    "$PY" - "$TMP/in.tif" "$TMP/out.tif" <<'PY'
import sys, numpy as np, tifffile
a, b = np.load(sys.argv[1] + ".npy"), tifffile.imread(sys.argv[2])
assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
assert (a == b).all()
PY
  done
}

@test "real maps: EMD-5168 and a mode-12 tilt series survive MRC -> stream -> MRC exactly" {
  require_py_module mrcfile
  require_data tempy_emd5168_actin/emd_5168.map
  require_data subtomogram/tiltstack_float16_mode12.mrcs
  for f in tempy_emd5168_actin/emd_5168.map subtomogram/tiltstack_float16_mode12.mrcs; do
    run vol-convert "$DATA/$f" -o "$TMP/mid.cvol"
    [ "$status" -eq 0 ]
    run vol-convert "$TMP/mid.cvol" -o "$TMP/out.mrc"
    [ "$status" -eq 0 ]
    "$PY" - "$DATA/$f" "$TMP/out.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1], permissive=True); b = mrcfile.open(sys.argv[2])
assert a.data.dtype == b.data.dtype, (a.data.dtype, b.data.dtype)
assert a.data.shape == b.data.shape and a.data.tobytes() == b.data.tobytes()
assert abs(float(a.voxel_size.x) - float(b.voxel_size.x)) < 1e-5
PY
    "$PY" -c 'import sys, os; assert os.path.getsize(sys.argv[1]) < os.path.getsize(sys.argv[2])' "$TMP/mid.cvol" "$DATA/$f"
  done
}

@test "--dtype int16 refuses out-of-range values, --clip and --rescale match numpy" {
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.linspace(-50000, 50000, 4 * 5 * 6).astype(np.float32).reshape(4, 5, 6)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a)
PY
  run vol-convert --dtype int16 "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"in.mrc"*"outside the int16 range"*"--clip or --rescale"* ]]
  assert_no_file "$TMP/out.mrc"
  run vol-convert --dtype int16 --clip "$TMP/in.mrc" -o "$TMP/clip.mrc"
  [ "$status" -eq 0 ]
  run vol-convert --dtype uint8 --rescale "$TMP/in.mrc" -o "$TMP/resc.cvol"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/in.mrc" "$TMP/clip.mrc" "$TMP/resc.cvol" <<'PY'
import sys, numpy as np, mrcfile, cvol
a = mrcfile.open(sys.argv[1]).data.astype(np.float64)
c = mrcfile.open(sys.argv[2]).data
assert c.dtype == np.int16
assert (c == np.clip(np.rint(a), -32768, 32767).astype(np.int16)).all()
fr = cvol.read_stream(sys.argv[3])[0]
r = fr["data"]
slope, off = map(float, fr["meta"]["convert.scale"].split(","))
want = np.rint((a - a.min()) / (a.max() - a.min()) * 255).astype(np.uint8)
assert r.dtype == np.uint8 and (r == want).all(), (r.ravel()[:8], want.ravel()[:8])
assert abs(slope - 255 / (a.max() - a.min())) < 1e-12 and abs(off + slope * a.min()) < 1e-9
PY
}

@test "--dtype refuses NaN into integers and float16 overflow; float16 within range matches numpy" {
  require_py_module mrcfile
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, mrcfile
t = sys.argv[1]
a = np.ones((3, 4, 5), np.float32); a[1, 2, 3] = np.nan
with mrcfile.new(f"{t}/nan.mrc") as m: m.set_data(a)
b = np.full((3, 4, 5), 1.0, np.float32); b[0, 0, 1] = 70000.0
with mrcfile.new(f"{t}/big.mrc") as m: m.set_data(b)
c = np.random.default_rng(1).normal(0, 100, (3, 4, 5)).astype(np.float32)
with mrcfile.new(f"{t}/ok.mrc") as m: m.set_data(c)
PY
  run vol-convert --dtype uint8 "$TMP/nan.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]
  [[ "$output" == *"nan.mrc"*"NaN"* ]]
  run vol-convert --dtype uint8 --clip "$TMP/nan.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]
  assert_no_file "$TMP/o.mrc"
  run vol-convert --dtype float16 "$TMP/big.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]
  [[ "$output" == *"big.mrc"*"70000"*"float16"* ]]
  run vol-convert --dtype float16 "$TMP/ok.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/ok.mrc" "$TMP/o.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1]).data; b = mrcfile.open(sys.argv[2]).data
assert b.dtype == np.float16 and (b == a.astype(np.float16)).all()
PY
}

@test "several frames to MRC are refused; --frame N picks one; a stream output keeps them all" {
  require_py_module zstandard
  require_py_module mrcfile
  two_frame_stream "$TMP/two.cvol"
  run vol-convert "$TMP/two.cvol" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"two.cvol"*"more than one frame"*"--frame"* ]]
  assert_no_file "$TMP/out.mrc"
  run vol-convert --frame 2 "$TMP/two.cvol" -o "$TMP/out.mrc"
  [ "$status" -eq 0 ]
  run vol-convert --frame 3 "$TMP/two.cvol" -o "$TMP/none.mrc"
  [ "$status" -eq 1 ]
  [[ "$output" == *"no frame 3"* ]]
  assert_no_file "$TMP/none.mrc"
  run vol-convert "$TMP/two.cvol" "$TMP/two.cvol" -o "$TMP/four.cvol"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/two.cvol" "$TMP/out.mrc" "$TMP/four.cvol" <<'PY'
import sys, numpy as np, mrcfile, cvol
fr = cvol.read_stream(sys.argv[1])
m = mrcfile.open(sys.argv[2])
assert (m.data == fr[1]["data"]).all() and abs(float(m.voxel_size.x) - 3.0) < 1e-6
four = cvol.read_stream(sys.argv[3])
assert len(four) == 4 and all((four[i]["data"] == fr[i % 2]["data"]).all() for i in range(4))
PY
}

@test "usage errors exit 2" {
  run vol-convert --dtype float64 x.mrc
  [ "$status" -eq 2 ]
  run vol-convert --clip x.mrc -o y.mrc
  [ "$status" -eq 2 ]
  [[ "$output" == *"--clip and --rescale need --dtype"* ]]
  run vol-convert --dtype float32 --rescale x.mrc -o y.mrc
  [ "$status" -eq 2 ]
  run vol-convert --frame 0 x.mrc -o y.mrc
  [ "$status" -eq 2 ]
  run vol-convert --frame 2x x.mrc -o y.mrc
  [ "$status" -eq 2 ]
  run vol-convert --bogus x.mrc
  [ "$status" -eq 2 ]
}

# ---- the broken-stream corpus: each its own test ---------------------------------

@test "broken stream: cut in the middle of a frame" {
  require_py_module zstandard
  two_frame_stream "$TMP/two.cvol"
  head -c 700 "$TMP/two.cvol" > "$TMP/cut.cvol"
  expect_refused "$TMP/cut.cvol" "stream ends in the middle of frame"
}

@test "broken stream: cut in the second frame, read from stdin" {
  require_py_module zstandard
  two_frame_stream "$TMP/two.cvol"
  size=$(stat -c %s "$TMP/two.cvol")
  head -c $((size - 40)) "$TMP/two.cvol" > "$TMP/cut.cvol"
  run bash -c "vol-convert - -o '$TMP/out.cvol' < '$TMP/cut.cvol'"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == "vol-convert: stdin: stream ends in the middle of frame 2 (the upstream process died?)" ]]
  assert_no_file "$TMP/out.cvol"
}

@test "broken stream: a flipped byte in the data" {
  require_py_module zstandard
  two_frame_stream "$TMP/two.cvol"
  "$PY" -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[400] ^= 4; open(sys.argv[2], "wb").write(b)' \
    "$TMP/two.cvol" "$TMP/flip.cvol"
  expect_refused "$TMP/flip.cvol" "corrupt data"
}

@test "broken stream: a flipped byte in a frame header" {
  require_py_module zstandard
  two_frame_stream "$TMP/two.cvol"
  "$PY" -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[16 + 50] ^= 1; open(sys.argv[2], "wb").write(b)' \
    "$TMP/two.cvol" "$TMP/flip.cvol"
  expect_refused "$TMP/flip.cvol" "frame 1: header checksum mismatch (corrupt data)"
}

@test "broken stream: missing end record" {
  require_py_module zstandard
  "$PY" -c 'import sys, numpy as np, cvol; cvol.write_stream(sys.argv[1], [{"data": np.ones((4, 5, 6), np.float32)}])' \
    "$TMP/one.cvol"
  size=$(stat -c %s "$TMP/one.cvol")
  head -c $((size - 20)) "$TMP/one.cvol" > "$TMP/noend.cvol"
  expect_refused "$TMP/noend.cvol" "stream ends after frame 1 without an end record (the upstream process died?)"
  two_frame_stream "$TMP/two.cvol"
  size=$(stat -c %s "$TMP/two.cvol")
  head -c $((size - 20)) "$TMP/two.cvol" > "$TMP/noend2.cvol"
  run vol-convert "$TMP/noend2.cvol" -o "$TMP/out.cvol"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"noend2.cvol: stream ends after frame 2 without an end record"* ]]
  assert_no_file "$TMP/out.cvol"
}

@test "broken stream: empty input" {
  : > "$TMP/empty.cvol"
  expect_refused "$TMP/empty.cvol" "empty"
}

@test "broken stream: garbage" {
  head -c 3000 /dev/urandom > "$TMP/garbage.cvol"
  printf 'CVOL\001\000\000\000' | dd of="$TMP/garbage.cvol" conv=notrunc status=none
  expect_refused "$TMP/garbage.cvol" "stream header checksum mismatch"
  head -c 3000 /dev/urandom > "$TMP/noise.mrc"
  expect_refused "$TMP/noise.mrc" ""
}

@test "a valid stream with no frames gives a clear error and no output" {
  require_py_module zstandard
  "$PY" -c 'import sys, cvol; cvol.write_stream(sys.argv[1], [])' "$TMP/zero.cvol"
  expect_refused "$TMP/zero.cvol" "no frames"
}
