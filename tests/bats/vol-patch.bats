#!/usr/bin/env bats
# vol-patch: tiles against numpy.pad + slicing and the documented tile plan, random crops
# against a Python re-implementation of the documented splitmix64 draws
# (tests/ref/patch_ref.py), tile-then-merge identity (odd sizes, sizes not multiples of the
# stride, every blend, a real map), pair frames, --min-density, and bad input.
load helpers
bats_require_minimum_version 1.5.0

make_map() { # PATH NX NY NZ
  "$PY" - "$@" <<'PY'
import sys, numpy as np, mrcfile
nx, ny, nz = (int(v) for v in sys.argv[2:5])
rng = np.random.default_rng(nx + 100 * ny + 10000 * nz)
a = rng.standard_normal((nz, ny, nx)) + 0.5
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(a.astype(np.float32)); m.voxel_size = (1.2, 0.9, 1.5); m.header.origin = (-7.0, 3.0, 12.5)
PY
}

@test "--help lists every option" {
  run vol-patch --help
  [ "$status" -eq 0 ]
  for o in --random --tile --merge --size --stride --overlap --pad --seed --min-density --min-fraction \
           --max-tries --blend; do [[ "$output" == *"$o"* ]]; done
}

@test "--tile: tiles equal numpy.pad + slice at the documented starts, placed in Å (reflect and zero)" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 37 29 23
  vol-patch --tile --size 16,12,10 --stride 10,7,10 "$TMP/in.mrc" > "$TMP/t.cvol"
  "$PY" "$REF/patch_ref.py" check_tiles "$TMP/in.mrc" "$TMP/t.cvol" 16,12,10 10,7,10 reflect
  vol-patch --tile --pad zero --size 16 --overlap 5 "$TMP/in.mrc" > "$TMP/z.cvol"
  "$PY" "$REF/patch_ref.py" check_tiles "$TMP/in.mrc" "$TMP/z.cvol" 16 11 zero
  vol-patch --tile --size 48 "$TMP/in.mrc" > "$TMP/big.cvol"   # tile larger than the volume
  "$PY" "$REF/patch_ref.py" check_tiles "$TMP/in.mrc" "$TMP/big.cvol" 48 36 reflect
}

@test "--tile then --merge returns the volume (odd sizes, not multiples of the stride, every blend)" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 37 29 23
  for blend in gaussian cosine mean; do
    for args in "--size 16 --stride 12" "--size 16,12,10 --stride 9,12,3 --pad zero" "--size 48 --overlap 12"; do
      vol-patch --tile $args "$TMP/in.mrc" | vol-patch --merge --blend $blend -o "$TMP/m.cvol"
      assert_close_files "$TMP/m.cvol" "$TMP/in.mrc" 1e-6
    done
  done
  "$PY" - "$TMP/m.cvol" <<'PY'
import sys, cvol, numpy as np
f = cvol.read_stream(sys.argv[1])[0]
assert np.allclose(f['apix'], (1.2, 0.9, 1.5), rtol=1e-6) and np.allclose(f['origin'], (-7, 3, 12.5), atol=1e-6)
assert not any(k.startswith('patch.') for k in f['meta']), f['meta']
PY
}

@test "--merge blends changed tiles as documented (weighted mean, gaussian sigma = size/8)" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 18 16
  vol-patch --tile --size 12 --stride 8 "$TMP/in.mrc" > "$TMP/t.cvol"
  # change every tile k to the constant k, merge, compare with a numpy weighted mean
  "$PY" - "$TMP/t.cvol" "$TMP/c.cvol" <<'PY'
import sys, numpy as np, cvol
fr = cvol.read_stream(sys.argv[1])
for f in fr:
    f['data'] = np.full_like(f['data'], float(f['meta']['patch.index']))
cvol.write_stream(sys.argv[2], fr)
PY
  vol-patch --merge "$TMP/c.cvol" -o "$TMP/m.mrc"
  "$PY" - "$TMP/c.cvol" "$TMP/m.mrc" <<'PY'
import sys, numpy as np, cvol, mrcfile
fr = cvol.read_stream(sys.argv[1]); out = mrcfile.open(sys.argv[2]).data.astype(np.float64)
num = np.zeros((16, 18, 20)); den = np.zeros_like(num)
s = 12; i = np.arange(s); w1 = np.exp(-(i - (s - 1) / 2) ** 2 / (2 * (s / 8) ** 2))
w = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
for f in fr:
    x0, y0, z0 = (int(v) for v in f['meta']['patch.origin'].split(','))
    for k in range(s):
        for j in range(s):
            for ii in range(s):
                z, y, x = z0 + k, y0 + j, x0 + ii
                if 0 <= z < 16 and 0 <= y < 18 and 0 <= x < 20:
                    num[z, y, x] += w[k, j, ii] * f['data'][k, j, ii]; den[z, y, x] += w[k, j, ii]
assert np.abs(num / den - out).max() < 1e-4, np.abs(num / den - out).max()
PY
}

@test "--random: reproducible from the seed, positions from the documented splitmix64, contents exact" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 37 29 23
  vol-patch --random 7 --size 12,10,8 --seed 9 "$TMP/in.mrc" > "$TMP/a.cvol"
  vol-patch --random 7 --size 12,10,8 --seed 9 "$TMP/in.mrc" > "$TMP/b.cvol"
  cmp "$TMP/a.cvol" "$TMP/b.cvol"
  "$PY" "$REF/patch_ref.py" check_random "$TMP/in.mrc" "$TMP/a.cvol" 12,10,8 7 9
  vol-patch --random 7 --size 12,10,8 --seed 10 "$TMP/in.mrc" > "$TMP/c.cvol"
  ! cmp -s "$TMP/a.cvol" "$TMP/c.cvol"
  # frame f of a stream uses (seed, f)
  vol-convert "$TMP/in.mrc" "$TMP/in.mrc" > "$TMP/two.cvol"
  vol-patch --random 3 --size 8 --seed 4 "$TMP/two.cvol" > "$TMP/f.cvol"
  "$PY" - "$TMP/f.cvol" <<'PY'
import sys, cvol
fr = cvol.read_stream(sys.argv[1]); assert len(fr) == 6
assert [f['meta']['patch.origin'] for f in fr[:3]] != [f['meta']['patch.origin'] for f in fr[3:]]
PY
}

@test "pair frames: both channels cropped at the same place (random and tiles)" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 30 26 22
  vol-degrade --snr 1 --pair "$TMP/in.mrc" > "$TMP/pair.cvol"
  vol-patch --random 4 --size 10 --seed 3 "$TMP/pair.cvol" > "$TMP/r.cvol"
  "$PY" "$REF/patch_ref.py" check_random "$TMP/pair.cvol" "$TMP/r.cvol" 10 4 3
  vol-patch --tile --size 12 --stride 9 "$TMP/pair.cvol" > "$TMP/t.cvol"
  "$PY" "$REF/patch_ref.py" check_tiles "$TMP/pair.cvol" "$TMP/t.cvol" 12 9 reflect
  vol-patch --merge "$TMP/t.cvol" > "$TMP/m.cvol"
  assert_close_files "$TMP/m.cvol" "$TMP/pair.cvol" 1e-6
}

@test "--min-density: crops meet the fraction; an impossible one warns, keeps the best, bounded tries" {
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.zeros((40, 40, 40), np.float32); a[25:35, 5:15, 20:30] = 1.0    # one dense block
with mrcfile.new(sys.argv[1]) as m: m.set_data(a)
PY
  run --separate-stderr vol-patch --random 5 --size 10 --min-density 0.5 --min-fraction 0.5 --max-tries 2000 \
      "$TMP/in.mrc" -o "$TMP/ok.cvol"
  [ "$status" -eq 0 ]; [ -z "$stderr" ]
  "$PY" - "$TMP/ok.cvol" <<'PY'
import sys, cvol, numpy as np
fr = cvol.read_stream(sys.argv[1]); assert len(fr) == 5
for f in fr:
    assert (f['data'] > 0.5).mean() >= 0.5, (f['data'] > 0.5).mean()
    assert 'patch.warning' not in f['meta'] and int(f['meta']['patch.tries']) >= 1
PY
  run --separate-stderr vol-patch --random 2 --size 10 --min-density 5 --max-tries 7 "$TMP/in.mrc" -o "$TMP/w.cvol"
  [ "$status" -eq 0 ]
  [ "$(grep -c 'warning:.*in.mrc.*7 tries' <<<"$stderr")" -eq 2 ]
  "$PY" -c "
import cvol; fr = cvol.read_stream('$TMP/w.cvol'); assert len(fr) == 2
assert all(f['meta']['patch.tries'] == '7' and 'patch.warning' in f['meta'] for f in fr)"
  run --separate-stderr vol-patch -q --random 2 --size 10 --min-density 5 --max-tries 7 "$TMP/in.mrc" -o "$TMP/w.cvol"
  [ -z "$stderr" ]
}

@test "real map (EMD-5168 100^3): 48^3 tiles, stride 36, merge back exactly" {
  require_py_module mrcfile
  require_data tempy_emd5168_actin/emd_5168.map
  m="$DATA/tempy_emd5168_actin/emd_5168.map"
  vol-patch --tile --size 48 --stride 36 "$m" > "$TMP/t.cvol"
  "$PY" "$REF/patch_ref.py" check_tiles "$m" "$TMP/t.cvol" 48 36 reflect
  vol-patch --merge "$TMP/t.cvol" -o "$TMP/m.mrc"
  assert_close_files "$TMP/m.mrc" "$m" 1e-6
}

@test "bad input: modes, ranges, trailing junk, NaN, small volume, missing and foreign tiles; no output" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 18 16
  for bad in "" "--random 2 --tile" "--tile --merge" "--random 0" "--random 3x" "--tile --size 8 --stride 9" \
             "--tile --size 8,8" "--tile --stride 4 --overlap 2" "--random 2 --stride 4" "--tile --seed 3" \
             "--merge --pad zero" "--merge --size 8" "--random 2 --blend mean" "--random 2 --min-fraction 0.3" \
             "--random 2 --min-density 1 --min-fraction 2" "--tile --pad mirror" "--tile --size 0" "--bogus"; do
    run vol-patch $bad "$TMP/in.mrc" -o "$TMP/o.cvol"
    [ "$status" -eq 2 ] || { echo "args '$bad' gave $status: $output"; false; }
    assert_no_file "$TMP/o.cvol"
  done
  run vol-patch --random 2 --size 30 "$TMP/in.mrc" -o "$TMP/o.cvol"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *in.mrc*smaller* ]]; assert_no_file "$TMP/o.cvol"
  run vol-patch --merge "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *"not a tile"* ]]; assert_no_file "$TMP/o.mrc"
  vol-patch --tile --size 8 "$TMP/in.mrc" > "$TMP/t.cvol"
  "$PY" - "$TMP/t.cvol" "$TMP/missing.cvol" <<'PY'
import sys, cvol
fr = cvol.read_stream(sys.argv[1]); del fr[5]; cvol.write_stream(sys.argv[2], fr)
PY
  run vol-patch --merge "$TMP/missing.cvol" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *tiles* ]]; assert_no_file "$TMP/o.mrc"
  "$PY" -c "
import numpy as np, mrcfile
a = np.ones((9, 9, 9), np.float32); a[1, 2, 3] = np.nan
with mrcfile.new('$TMP/nan.mrc') as m: m.set_data(a)"
  run vol-patch --tile --size 4 "$TMP/nan.mrc" -o "$TMP/o.cvol"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nan.mrc* ]]; assert_no_file "$TMP/o.cvol"
  run vol-patch --tile --size 4 "$TMP/missing.mrc" -o "$TMP/o.cvol"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *missing.mrc* ]]; assert_no_file "$TMP/o.cvol"
}
