#!/usr/bin/env bats
# vol-info: shape, dtype, placement and statistics against numpy/mrcfile; streams with
# several frames; JSON; stdin; broken inputs reported after what could be read.
load helpers
bats_require_minimum_version 1.5.0

@test "text output names shape, dtype, voxel size, origin and the history" {
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a); m.voxel_size = (1.5, 1.5, 2.0); m.header.origin = (3.0, 4.5, -6.0)
PY
  vol-convert "$TMP/in.mrc" -o "$TMP/in.cvol"
  run vol-info "$TMP/in.cvol"
  [ "$status" -eq 0 ]
  [[ "$output" == *"in.cvol: stream"* ]]
  [[ "$output" == *"frame 1: 6 x 5 x 4 (x y z) float32"* ]]
  [[ "$output" == *"voxel size       1.5 x 1.5 x 2"* ]]
  [[ "$output" == *"origin           3 4.5 -6"* ]]
  [[ "$output" == *"min 0  max 119  mean 59.5"* ]]
  [[ "$output" == *"history.0"*"vol-convert"* ]]
  [[ "$output" == *"stream           "*" bytes for 480 raw"* ]]
}

@test "--json statistics match numpy on a real map (EMD-5168), gzip input from stdin" {
  require_py_module mrcfile
  require_data tempy_emd5168_actin/emd_5168.map
  gzip -c "$DATA/tempy_emd5168_actin/emd_5168.map" > "$TMP/emd.map.gz"
  run --separate-stderr vol-info --json - < "$TMP/emd.map.gz"
  [ "$status" -eq 0 ]
  "$PY" - "$DATA/tempy_emd5168_actin/emd_5168.map" "$output" <<'PY'
import sys, json, numpy as np, mrcfile
m = mrcfile.open(sys.argv[1], permissive=True)
a = m.data.astype(np.float64)
j = json.loads(sys.argv[2])["inputs"][0]
assert j["format"] == "mrc" and j["gzip"] is True, j
f = j["frames"][0]
assert f["shape"] == list(a.shape) and f["dtype"] == "float32", f["shape"]
s = f["stats"]
for k, want in [("min", a.min()), ("max", a.max()), ("mean", a.mean()), ("rms", np.sqrt((a * a).mean())), ("std", a.std())]:
    assert abs(s[k] - want) <= 1e-9 * max(1, abs(want)) + 1e-12, (k, s[k], want)
assert abs(f["voxel_size"][0] - float(m.voxel_size.x)) < 1e-5
PY
}

@test "several frames, 4-D and 1-D, stream sizes, --no-stats, NaN counted" {
  require_py_module zstandard
  "$PY" - "$TMP/s.cvol" <<'PY'
import sys, numpy as np, cvol
x = np.linspace(-1, 1, 3 * 4 * 5 * 6, dtype=np.float32).reshape(3, 4, 5, 6)
y = np.arange(10, dtype=np.int16)
z = np.ones((2, 3, 4), np.float32); z[1, 1, 1] = np.nan
cvol.write_stream(sys.argv[1], [{"data": x}, {"data": y, "meta": {"note": "a" * 300}}, {"data": z}])
PY
  run --separate-stderr vol-info --json "$TMP/s.cvol"
  [ "$status" -eq 0 ]
  "$PY" - "$output" "$(stat -c %s "$TMP/s.cvol")" <<'PY'
import sys, json
j = json.loads(sys.argv[1])["inputs"][0]
fr = j["frames"]
assert [f["shape"] for f in fr] == [[3, 4, 5, 6], [10], [2, 3, 4]], [f["shape"] for f in fr]
assert fr[1]["dtype"] == "int16" and fr[1]["stats"]["max"] == 9 and fr[1]["stats"]["mean"] == 4.5
assert fr[2]["stats"]["nonfinite"] == 1 and fr[2]["stats"]["max"] == 1
assert sum(f["stream_bytes"] for f in fr) + 16 + 20 == int(sys.argv[2])
assert fr[0]["raw_bytes"] == 3 * 4 * 5 * 6 * 4
assert fr[1]["meta"]["note"] == "a" * 300
PY
  run vol-info --no-stats "$TMP/s.cvol"
  [ "$status" -eq 0 ]
  [[ "$output" == *"3 channels of 6 x 5 x 4"* ]]
  [[ "$output" == *"frame 2: 10 (x) int16"* ]]
  [[ "$output" != *"mean"* ]]
  [[ "$output" == *"(300 characters)"* ]]
  run vol-info --full "$TMP/s.cvol"
  [[ "$output" == *"$(printf 'a%.0s' $(seq 300))"* ]]
}

@test "a cut stream: frames before the cut are described, then one error line, exit 1" {
  require_py_module zstandard
  "$PY" - "$TMP/s.cvol" <<'PY'
import sys, numpy as np, cvol
r = np.random.default_rng(0)
cvol.write_stream(sys.argv[1], [{"data": r.normal(size=(8, 8, 8)).astype(np.float32)} for _ in range(3)])
PY
  size=$(stat -c %s "$TMP/s.cvol")
  head -c $((size - 30)) "$TMP/s.cvol" > "$TMP/cut.cvol"
  run --separate-stderr vol-info "$TMP/cut.cvol" "$TMP/s.cvol"
  [ "$status" -eq 1 ]
  [[ "$output" == *"frame 2: 8 x 8 x 8"* ]]
  [[ "$output" == *"s.cvol: stream"* ]]       # the second input is still described
  [ "$(printf '%s\n' "$stderr" | grep -c .)" -eq 1 ]
  [[ "$stderr" == "vol-info: "*"cut.cvol: stream ends in the middle of frame 3 (the upstream process died?)" ]]
}

@test "a missing input and garbage each give one line naming the file, exit 1" {
  run vol-info "$TMP/nope.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"nope.mrc"* ]]
  head -c 100 /dev/zero > "$TMP/zero.bin"
  run --separate-stderr vol-info "$TMP/zero.bin"
  [ "$status" -eq 1 ]
  [[ "$stderr" == *"zero.bin"* ]]
  run vol-info --bogus
  [ "$status" -eq 2 ]
}

@test "MRC header facts of a real map with axis order 3 1 2 are shown (EMD-3001)" {
  require_py_module mrcfile
  require_data mrcfile_tests/EMD-3001.map
  run --separate-stderr vol-info --json "$DATA/mrcfile_tests/EMD-3001.map"
  [ "$status" -eq 0 ]
  "$PY" - "$output" "$DATA/mrcfile_tests/EMD-3001.map" <<'PY'
import sys, json, numpy as np, mrcfile
f = json.loads(sys.argv[1])["inputs"][0]["frames"][0]
m = mrcfile.open(sys.argv[2], permissive=True)
h = m.header
# x,y,z sizes after resolving mapc/mapr/maps = 3 1 2: the file's columns run along z.
n = {int(h.mapc): int(h.nx), int(h.mapr): int(h.ny), int(h.maps): int(h.nz)}
assert f["shape"] == [n[3], n[2], n[1]], (f["shape"], n)
a = m.data.astype(np.float64)
assert abs(f["stats"]["mean"] - a.mean()) < 1e-9 * max(1, abs(a.mean())) + 1e-12
assert any(k.startswith("mrc.") for k in f["meta"]), f["meta"].keys()
PY
}

@test "metadata bytes that are not UTF-8 (a Latin-1 label) are carried unchanged and shown in JSON" {
  require_py_module zstandard
  "$PY" -c 'import sys, numpy as np, cvol; cvol.write_stream(sys.argv[1], [{"data": np.ones(3, np.float32), "meta": {"history.0": b"caf\xe9 label"}}])' "$TMP/l.cvol"
  run --separate-stderr vol-info --json "$TMP/l.cvol"
  [ "$status" -eq 0 ]
  "$PY" -c 'import sys, json; j = json.loads(sys.argv[1]); assert j["inputs"][0]["frames"][0]["history"] == ["caf? label"], j' "$output"
  vol-convert "$TMP/l.cvol" -o "$TMP/l2.cvol"
  "$PY" -c 'import sys, cvol; m = cvol.read_stream(sys.argv[1])[0]["meta"]; assert m["history.0"].encode("utf-8", "surrogateescape") == b"caf\xe9 label", m' "$TMP/l2.cvol"
}
