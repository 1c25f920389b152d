#!/usr/bin/env bats
# vol-halves: average and difference of two half maps against numpy, on a synthetic
# anisotropic pair and on "half maps" of EMD-5168 (the real map plus independent noise, as the
# data README suggests: no real half maps are available offline); the grid and metadata of
# the result; refusal of half maps on different grids; bad input.
load helpers
bats_require_minimum_version 1.5.0

# s1/s2: signal + independent noise on a non-cubic anisotropic grid with an origin; clean.mrc
# the signal; variants of s2 on other grids; a NaN copy.
make_pair() {
  require_py_module mrcfile
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, mrcfile
d = sys.argv[1]
rng = np.random.default_rng(11)
z, y, x = np.indices((21, 30, 27), dtype=float)
sig = np.exp(-((x - 13) ** 2 / 20 + (y - 15) ** 2 / 30 + (z - 10) ** 2 / 12))
def save(name, a, apix=(1.1, 0.9, 1.3), origin=(4.4, -1.8, 13.0)):
    with mrcfile.new(f"{d}/{name}", overwrite=True) as m:
        m.set_data(np.asarray(a, np.float32)); m.voxel_size = apix; m.header.origin = origin
save("clean.mrc", sig)
s1 = sig + 0.2 * rng.standard_normal(sig.shape)
s2 = sig + 0.2 * rng.standard_normal(sig.shape)
save("s1.mrc", s1); save("s2.mrc", s2)
save("box.mrc", np.zeros((21, 30, 28)))
save("apix.mrc", s2, apix=(1.1, 0.9, 1.31))
save("origin.mrc", s2, origin=(4.4, -1.8, 14.3))
a = s2.copy(); a[3, 4, 5] = np.nan
save("nan.mrc", a)
PY
}

# OUT equals numpy's (A+B)/2 or A-B ($4 = avg|diff), and sits on A's grid.
check_numpy() {
  "$PY" - "$1" "$2" "$3" "$4" <<'PY'
import sys, mrcfile, numpy as np
a, b, o = (mrcfile.open(p, permissive=True) for p in sys.argv[1:4])
A, B, O = (np.asarray(m.data, np.float64) for m in (a, b, o))
want = (A + B) / 2 if sys.argv[4] == "avg" else A - B
err = np.abs(O - want).max()
assert err <= 1e-6 * max(1.0, np.abs(want).max()), err
for k in "xyz":
    assert abs(float(getattr(a.voxel_size, k)) - float(getattr(o.voxel_size, k))) < 1e-5, k
    assert abs(float(getattr(a.header.origin, k)) - float(getattr(o.header.origin, k))) < 1e-4, k
print("max abs error", err)
PY
}

@test "--help and --version" {
  run vol-halves --help
  [ "$status" -eq 0 ]
  [[ "$output" == *--average* && "$output" == *--difference* ]]
  run vol-halves --version
  [ "$status" -eq 0 ]
}

@test "average (default) and difference equal numpy on an anisotropic grid with an origin" {
  make_pair
  run vol-halves "$TMP/s1.mrc" "$TMP/s2.mrc" -o "$TMP/avg.mrc"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  check_numpy "$TMP/s1.mrc" "$TMP/s2.mrc" "$TMP/avg.mrc" avg
  run vol-halves --difference "$TMP/s1.mrc" "$TMP/s2.mrc" -o "$TMP/diff.mrc"
  [ "$status" -eq 0 ]
  check_numpy "$TMP/s1.mrc" "$TMP/s2.mrc" "$TMP/diff.mrc" diff
  # one half from a pipe; the stream on stdout
  cat "$TMP/s2.mrc" | vol-halves --average "$TMP/s1.mrc" - > "$TMP/avg.cvol"
  assert_close_files "$TMP/avg.cvol" "$TMP/avg.mrc" 1e-7
}

@test "EMD-5168 halves: fsc-eval, then the average, which is closer to the map than either half" {
  require_data tempy_emd5168_actin/emd_5168.map
  local map="$DATA/tempy_emd5168_actin/emd_5168.map"
  "$PY" "$REF/fsc_ref.py" halves "$map" "$TMP/h1.mrc" "$TMP/h2.mrc" --noise 1.5 --seed 3
  run fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc"
  [ "$status" -eq 0 ]
  run vol-halves "$TMP/h1.mrc" "$TMP/h2.mrc" -o "$TMP/full.mrc"
  [ "$status" -eq 0 ]
  check_numpy "$TMP/h1.mrc" "$TMP/h2.mrc" "$TMP/full.mrc" avg
  run vol-halves -d "$TMP/h1.mrc" "$TMP/h2.mrc" -o "$TMP/diff.mrc"
  [ "$status" -eq 0 ]
  check_numpy "$TMP/h1.mrc" "$TMP/h2.mrc" "$TMP/diff.mrc" diff
  # independent noise: the average's error is the half's / sqrt 2; the difference has no signal
  "$PY" - "$map" "$TMP/h1.mrc" "$TMP/full.mrc" "$TMP/diff.mrc" <<'PY'
import sys, mrcfile, numpy as np
m, h, f, d = (np.asarray(mrcfile.open(p, permissive=True).data, np.float64) for p in sys.argv[1:5])
r = np.sqrt(np.mean((f - m) ** 2)) / np.sqrt(np.mean((h - m) ** 2))
assert abs(r - 2 ** -0.5) < 0.01, r
c = np.corrcoef(d.ravel(), m.ravel())[0, 1]
assert abs(c) < 0.01, c
print("error ratio", r, "corr(diff, map)", c)
PY
}

@test "metadata keeps both names and the first half's history" {
  make_pair
  vol-convert "$TMP/s1.mrc" -o "$TMP/s1.cvol"
  vol-halves "$TMP/s1.cvol" "$TMP/s2.mrc" -o "$TMP/avg.cvol"
  run vol-info --json "$TMP/avg.cvol"
  [ "$status" -eq 0 ]
  [[ "$output" == *'"halves.1": "'"$TMP"'/s1.cvol"'* ]]
  [[ "$output" == *'"halves.2": "'"$TMP"'/s2.mrc"'* ]]
  [[ "$output" == *'"halves.op": "average"'* ]]
  [[ "$output" == *'"vol-convert'* ]]
  [[ "$output" == *'"vol-halves --average '"$TMP"'/s1.cvol '"$TMP"'/s2.mrc"'* ]]
}

@test "half maps on different grids are refused with one line naming both" {
  make_pair
  for other in box apix origin; do
    run vol-halves "$TMP/s1.mrc" "$TMP/$other.mrc" -o "$TMP/o.mrc"
    [ "$status" -eq 1 ] || { echo "$other: status $status"; false; }
    assert_one_error_line
    [[ "$output" == "vol-halves: $TMP/s1.mrc "*"$TMP/$other.mrc"*"must share the grid" ]] || { echo "$output"; false; }
    assert_no_file "$TMP/o.mrc"
  done
}

@test "bad input: NaN, missing or cut file, usage errors" {
  make_pair
  run vol-halves "$TMP/s1.mrc" "$TMP/nan.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nan.mrc*NaN* ]]; assert_no_file "$TMP/o.mrc"
  run vol-halves "$TMP/s1.mrc" "$TMP/missing.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *missing.mrc* ]]; assert_no_file "$TMP/o.mrc"
  head -c 2000 "$TMP/s2.mrc" > "$TMP/cut.mrc"
  run vol-halves "$TMP/s1.mrc" "$TMP/cut.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *cut.mrc* ]]; assert_no_file "$TMP/o.mrc"
  run vol-halves "$TMP/s1.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-halves "$TMP/s1.mrc" "$TMP/s2.mrc" "$TMP/s2.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-halves --average --difference "$TMP/s1.mrc" "$TMP/s2.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-halves - - -o "$TMP/o.mrc" < "$TMP/s1.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/o.mrc"
}
