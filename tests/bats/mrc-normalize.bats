#!/usr/bin/env bats
# mrc-normalize: quantile clipping and z-scores against numpy (tests/ref/normalize_ref.py,
# numpy.quantile 'linear'), masked statistics, the metadata and --invert, channels of a
# --pair frame, a real map, and bad input.
load helpers
bats_require_minimum_version 1.5.0

make_map() { # PATH [NX NY NZ]
  "$PY" - "$1" "${2:-23}" "${3:-19}" "${4:-14}" <<'PY'
import sys, numpy as np, mrcfile
nx, ny, nz = (int(v) for v in sys.argv[2:5])
rng = np.random.default_rng(7)
a = rng.gamma(2.0, 1.5, (nz, ny, nx)) - 1     # skewed, like density
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(a.astype(np.float32)); m.voxel_size = 1.1; m.header.origin = (3.0, 4.0, 5.0)
PY
}

@test "--help lists every option" {
  run mrc-normalize --help
  [ "$status" -eq 0 ]
  for o in --mode --quantiles --mask --invert --output; do [[ "$output" == *"$o"* ]]; done
}

@test "default: clip at the 0.01/0.99 quantiles and scale to [0,1], equal to numpy" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  mrc-normalize "$TMP/in.mrc" -o "$TMP/o.cvol"
  run "$PY" "$REF/normalize_ref.py" "$TMP/in.mrc" "$TMP/r.mrc"
  [ "$status" -eq 0 ]
  assert_close_files "$TMP/o.cvol" "$TMP/r.mrc" 1e-6
  "$PY" - "$TMP/o.cvol" "$output" <<'PY'
import sys, cvol
m = cvol.read_stream(sys.argv[1])[0]['meta']
scale, offset = (float(v) for v in sys.argv[2].split())
assert m['normalize.mode'] == 'quantile' and m['normalize.clip'] == '0,1'
assert abs(float(m['normalize.scale']) - scale) <= 1e-12 * abs(scale), (m['normalize.scale'], scale)
assert abs(float(m['normalize.offset']) - offset) <= 1e-12 * max(1, abs(offset))
assert m['normalize.quantiles'] == '0.01,0.99'
PY
}

@test "--quantiles and odd sizes (quantile between order statistics) equal numpy" {
  require_py_module mrcfile
  for shape in "7 5 3" "64 33 17" "1 1 2"; do
    make_map "$TMP/in.mrc" $shape
    mrc-normalize --quantiles 0.05,0.937 "$TMP/in.mrc" -o "$TMP/o.mrc"
    "$PY" "$REF/normalize_ref.py" "$TMP/in.mrc" "$TMP/r.mrc" quantile 0.05 0.937 >/dev/null
    assert_close_files "$TMP/o.mrc" "$TMP/r.mrc" 1e-6
  done
}

@test "--mode zscore equals numpy (ddof 0)" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  mrc-normalize --mode zscore "$TMP/in.mrc" -o "$TMP/o.mrc"
  "$PY" "$REF/normalize_ref.py" "$TMP/in.mrc" "$TMP/r.mrc" zscore >/dev/null
  assert_close_files "$TMP/o.mrc" "$TMP/r.mrc" 1e-6
}

@test "--mask: statistics inside the mask only (quantile and zscore); another grid is refused" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  "$PY" - "$TMP/mask.mrc" "$TMP/wrong.mrc" "$TMP/shifted.mrc" <<'PY'
import sys, numpy as np, mrcfile
z, y, x = np.mgrid[:14, :19, :23]
m = (((x - 11) / 8.0) ** 2 + ((y - 9) / 6.0) ** 2 + ((z - 7) / 5.0) ** 2 < 1).astype(np.float32)
for path, data, origin in ((sys.argv[1], m, (3.0, 4.0, 5.0)), (sys.argv[2], m[:, :, :20], (3.0, 4.0, 5.0)),
                           (sys.argv[3], m, (4.1, 4.0, 5.0))):
    with mrcfile.new(path) as f:
        f.set_data(np.ascontiguousarray(data)); f.voxel_size = 1.1; f.header.origin = origin
PY
  mrc-normalize --mask "$TMP/mask.mrc" "$TMP/in.mrc" -o "$TMP/o.mrc"
  "$PY" "$REF/normalize_ref.py" "$TMP/in.mrc" "$TMP/r.mrc" quantile 0.01 0.99 "$TMP/mask.mrc" >/dev/null
  assert_close_files "$TMP/o.mrc" "$TMP/r.mrc" 1e-6
  mrc-normalize --mode zscore --mask "$TMP/mask.mrc" "$TMP/in.mrc" -o "$TMP/z.mrc"
  "$PY" "$REF/normalize_ref.py" "$TMP/in.mrc" "$TMP/zr.mrc" zscore "$TMP/mask.mrc" >/dev/null
  assert_close_files "$TMP/z.mrc" "$TMP/zr.mrc" 1e-6
  for bad in wrong shifted; do
    run mrc-normalize --mask "$TMP/$bad.mrc" "$TMP/in.mrc" -o "$TMP/x.mrc"
    [ "$status" -ne 0 ]; [[ "$output" == *"$bad.mrc"* ]]; assert_no_file "$TMP/x.mrc"
  done
  run mrc-normalize --mask "$TMP/none.mrc" "$TMP/in.mrc" -o "$TMP/x.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *none.mrc* ]]; assert_no_file "$TMP/x.mrc"
}

@test "--invert restores the original densities except the clipped voxels" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  mrc-normalize "$TMP/in.mrc" | mrc-normalize --invert -o "$TMP/back.cvol"
  mrc-normalize --mode zscore "$TMP/in.mrc" | mrc-normalize --invert -o "$TMP/zback.mrc"
  assert_close_files "$TMP/zback.mrc" "$TMP/in.mrc" 1e-6
  "$PY" - "$TMP/in.mrc" "$TMP/back.cvol" <<'PY'
import sys, numpy as np, mrcfile, cvol
a = mrcfile.open(sys.argv[1]).data.astype(np.float64)
f = cvol.read_stream(sys.argv[2])[0]
b = f['data'].astype(np.float64)
lo, hi = np.quantile(a, [0.01, 0.99])
inside = (a >= lo) & (a <= hi)
assert inside.mean() > 0.97
assert np.abs(a - b)[inside].max() < 1e-5 * np.abs(a).max()
assert np.allclose(b[a < lo], lo, rtol=1e-5) and np.allclose(b[a > hi], hi, rtol=1e-5)
assert not any(k.startswith('normalize.') for k in f['meta'])
PY
  run mrc-normalize --invert "$TMP/in.mrc" -o "$TMP/x.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *in.mrc*normalize.scale* ]]; assert_no_file "$TMP/x.mrc"
}

@test "each channel of a --pair frame is normalised on its own" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --bfactor 80 --snr 0.5 --pair "$TMP/in.mrc" > "$TMP/pair.cvol"
  mrc-normalize "$TMP/pair.cvol" -o "$TMP/o.cvol"
  "$PY" "$REF/normalize_ref.py" "$TMP/pair.cvol" "$TMP/r.cvol" >/dev/null
  assert_close_files "$TMP/o.cvol" "$TMP/r.cvol" 1e-6
  "$PY" -c "
import cvol; m = cvol.read_stream('$TMP/o.cvol')[0]['meta']
assert len(m['normalize.scale'].split(',')) == 2 and m['channel.1'] == 'target'"
}

@test "real map (EMD-5168): equals numpy" {
  require_py_module mrcfile
  require_data tempy_emd5168_actin/emd_5168.map
  mrc-normalize "$DATA/tempy_emd5168_actin/emd_5168.map" -o "$TMP/o.mrc"
  "$PY" "$REF/normalize_ref.py" "$DATA/tempy_emd5168_actin/emd_5168.map" "$TMP/r.mrc" >/dev/null
  assert_close_files "$TMP/o.mrc" "$TMP/r.mrc" 1e-6
}

@test "bad input: NaN (file and voxel named), flat map, bad flags, missing file; no output" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  "$PY" -c "
import numpy as np, mrcfile
a = np.ones((6, 7, 8), np.float32)
with mrcfile.new('$TMP/flat.mrc') as m: m.set_data(a)
a[2, 3, 4] = np.inf
with mrcfile.new('$TMP/inf.mrc') as m: m.set_data(a)
a[2, 3, 4] = np.nan
with mrcfile.new('$TMP/nan.mrc') as m: m.set_data(a)"
  for f in nan inf; do
    run mrc-normalize "$TMP/$f.mrc" -o "$TMP/o.mrc"
    [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *"$f.mrc"*4*3*2* ]]; assert_no_file "$TMP/o.mrc"
  done
  run mrc-normalize "$TMP/flat.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *flat* ]]; assert_no_file "$TMP/o.mrc"
  run mrc-normalize "$TMP/missing.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *missing.mrc* ]]; assert_no_file "$TMP/o.mrc"
  for bad in "--quantiles 0.9,0.1" "--quantiles 0.1" "--quantiles 0.1,0.9x" "--quantiles -0.1,0.5" \
             "--quantiles 0.1,1.5" "--mode foo" "--invert --mode zscore" "--mode zscore --quantiles 0.1,0.9" \
             "--bogus" "--invert --quantiles 0.1,0.9"; do
    run mrc-normalize $bad "$TMP/in.mrc" -o "$TMP/o.mrc"
    [ "$status" -eq 2 ] || { echo "args '$bad' gave $status: $output"; false; }
    assert_no_file "$TMP/o.mrc"
  done
}

@test "the result does not depend on the number of threads" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 40 31 27
  mrc-normalize --threads 1 "$TMP/in.mrc" -o "$TMP/t1.cvol"
  mrc-normalize --threads 2 "$TMP/in.mrc" -o "$TMP/t2.cvol"
  "$PY" -c "
import cvol, numpy as np
a, b = cvol.read_stream('$TMP/t1.cvol')[0], cvol.read_stream('$TMP/t2.cvol')[0]
assert np.array_equal(a['data'], b['data']) and a['meta']['normalize.scale'] == b['meta']['normalize.scale']"
}
