#!/usr/bin/env bats
# vol-degrade: each deterministic effect against numpy (tests/ref/degrade_ref.py), noise
# statistics (requested SNR, shell shape, seeding), --pair channels, and bad input.
load helpers
bats_require_minimum_version 1.5.0

# A smooth random non-cubic map (40 x 36 x 32 voxels of 1.3 Å), made with numpy.
make_map() {
  "$PY" - "$1" <<'PY'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(5)
a = rng.standard_normal((32, 36, 40))
F = np.fft.rfftn(a)
kz = np.fft.fftfreq(32)[:, None, None]; ky = np.fft.fftfreq(36)[None, :, None]; kx = np.fft.rfftfreq(40)[None, None, :]
a = np.fft.irfftn(F * np.exp(-(kx**2 + ky**2 + kz**2) * 60), s=a.shape) * 10 + 1
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a.astype(np.float32)); m.voxel_size = 1.3; m.header.origin = (10.0, -5.0, 2.0)
PY
}


@test "--help lists every effect" {
  run vol-degrade --help
  [ "$status" -eq 0 ]
  for o in --bfactor --lowpass --snr --noise-shape --local-res --sharpen --wedge --tilt-axis --cone --bin --pair --seed; do
    [[ "$output" == *"$o"* ]]
  done
}

@test "--bfactor matches numpy (F * exp(-B s^2/4))" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --bfactor 150 "$TMP/in.mrc" -o "$TMP/ours.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/ref.mrc" bfactor 150
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
}

@test "--lowpass with a soft edge matches numpy" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --lowpass 6 --lowpass-edge 3 "$TMP/in.mrc" -o "$TMP/ours.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/ref.mrc" lowpass 6 3
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
}

@test "--sharpen B,R matches numpy (F * exp(+B s^2/4), then the low-pass) and comes after the noise" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --sharpen 60,4 "$TMP/in.mrc" -o "$TMP/ours.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/ref.mrc" sharpen 60 4 2
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
  # order: blur, noise, then sharpening of signal and noise alike
  vol-degrade --seed 3 --bfactor 90 --snr 0.5 --noise-shape shell "$TMP/in.mrc" -o "$TMP/noisy.mrc"
  vol-degrade --seed 3 --bfactor 90 --snr 0.5 --noise-shape shell --sharpen 60,4 --lowpass-edge 3 "$TMP/in.mrc" -o "$TMP/ours2.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/noisy.mrc" "$TMP/ref2.mrc" sharpen 60 4 3
  assert_close_files "$TMP/ours2.mrc" "$TMP/ref2.mrc" 1e-5
  run vol-degrade --sharpen 60 "$TMP/in.mrc" -o "$TMP/bad.mrc"
  [ "$status" -eq 2 ]
  [[ "${lines[0]}" == *"--sharpen: needs B,R"* ]]
  run vol-degrade --sharpen -20,4 "$TMP/in.mrc" -o "$TMP/bad.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/bad.mrc"
}

@test "--wedge (tilt axes y and x) and --cone match numpy masks" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --wedge 60 "$TMP/in.mrc" -o "$TMP/y.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/yr.mrc" wedge 60 y
  assert_close_files "$TMP/y.mrc" "$TMP/yr.mrc" 1e-5
  vol-degrade --wedge 45 --tilt-axis x "$TMP/in.mrc" -o "$TMP/x.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/xr.mrc" wedge 45 x
  assert_close_files "$TMP/x.mrc" "$TMP/xr.mrc" 1e-5
  vol-degrade --wedge 50 --cone "$TMP/in.mrc" -o "$TMP/c.mrc"
  "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/cr.mrc" wedge 50 y cone
  assert_close_files "$TMP/c.mrc" "$TMP/cr.mrc" 1e-5
}

@test "wedge on a real tomogram-like map: Fourier amplitude is zero inside the wedge" {
  require_py_module mrcfile
  require_data real_maps_nomodel/emd_6824_diffmodeler.mrc
  vol-degrade --wedge 60 "$DATA/real_maps_nomodel/emd_6824_diffmodeler.mrc" -o "$TMP/w.mrc"
  "$PY" - "$TMP/w.mrc" "$DATA/real_maps_nomodel/emd_6824_diffmodeler.mrc" <<'PY'
import sys, numpy as np, mrcfile
w = mrcfile.open(sys.argv[1]).data.astype(np.float64)
o = mrcfile.open(sys.argv[2], permissive=True).data.astype(np.float64)
F, G = np.abs(np.fft.rfftn(w)), np.abs(np.fft.rfftn(o))
kz = np.fft.fftfreq(w.shape[0])[:, None, None]; kx = np.fft.rfftfreq(w.shape[2])[None, None, :]
kz, kx = np.broadcast_arrays(kz, kx)
kz = np.broadcast_to(kz, F.shape); kx = np.broadcast_to(kx, F.shape)
inside = np.abs(kz) > np.tan(np.radians(60)) * np.abs(kx) * 1.001
outside = np.abs(kz) < np.tan(np.radians(60)) * np.abs(kx) * 0.999
assert F[inside].max() < 1e-4 * G.max(), F[inside].max()
assert np.allclose(F[outside], G[outside], rtol=1e-3, atol=1e-4 * G.max())
PY
}

@test "--bin 2 and 3 match numpy (block means, trilinear back)" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  for n in 2 3; do
    vol-degrade --bin $n "$TMP/in.mrc" -o "$TMP/b$n.mrc"
    "$PY" "$REF/degrade_ref.py" "$TMP/in.mrc" "$TMP/r$n.mrc" bin $n
    assert_close_files "$TMP/b$n.mrc" "$TMP/r$n.mrc" 1e-5
  done
}

@test "--snr: measured SNR equals the requested one; seed reproduces, another seed differs" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --snr 0.3 --seed 4 "$TMP/in.mrc" -o "$TMP/n1.mrc"
  vol-degrade --snr 0.3 --seed 4 "$TMP/in.mrc" -o "$TMP/n2.mrc"
  vol-degrade --snr 0.3 --seed 5 "$TMP/in.mrc" -o "$TMP/n3.mrc"
  cmp "$TMP/n1.mrc" "$TMP/n2.mrc"
  ! cmp -s "$TMP/n1.mrc" "$TMP/n3.mrc"
  run "$PY" "$REF/degrade_ref.py" "$TMP/n1.mrc" - snr "$TMP/in.mrc" 0.3
  [ "$status" -eq 0 ]
  "$PY" -c "import sys; v=float('$output'.split()[1]); assert abs(v-0.3) < 1e-3, v"
}

@test "--noise-shape shell: noise power per shell follows the clean map's spectrum" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --snr 1 --noise-shape shell "$TMP/in.mrc" -o "$TMP/n.mrc"
  run "$PY" "$REF/degrade_ref.py" "$TMP/n.mrc" - snr "$TMP/in.mrc" 1 shell
  [ "$status" -eq 0 ]
  echo "$output"
  "$PY" - "$output" <<'PY'
import sys
w = sys.argv[1].split()
snr, spread = float(w[1]), float(w[w.index("shell_ratio_spread") + 1])
assert abs(snr - 1) < 1e-3, snr
assert spread < 0.25, spread   # white noise on this decaying spectrum would give > 1
PY
}

@test "--local-res blends between the LO and HI low-passed maps" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc"
  vol-degrade --local-res 3,9 --local-scale 10 "$TMP/in.mrc" -o "$TMP/l.mrc"
  vol-degrade --lowpass 3 "$TMP/in.mrc" -o "$TMP/lo.mrc"
  vol-degrade --lowpass 9 "$TMP/in.mrc" -o "$TMP/hi.mrc"
  "$PY" - "$TMP/l.mrc" "$TMP/lo.mrc" "$TMP/hi.mrc" <<'PY'
import sys, numpy as np, mrcfile
l, lo, hi = (mrcfile.open(p).data.astype(np.float64) for p in sys.argv[1:4])
# per voxel, the result lies between the two extremes up to the intermediate levels' ripple
d_lo, d_hi = np.abs(l - lo), np.abs(l - hi)
# some regions are close to the sharp map, others to the blurred one
frac_lo = np.mean(d_lo < 0.1 * d_hi)
frac_hi = np.mean(d_hi < 0.1 * d_lo)
assert frac_lo > 0.01 and frac_hi > 0.01, (frac_lo, frac_hi)
# and the result is not just one of them
assert np.abs(l - lo).max() > 0.05 * np.abs(lo).max()
PY
}

@test "--pair writes 2 channels: degraded input and clean target; frames of a stream get seed+f" {
  require_py_module zstandard
  make_map "$TMP/in.mrc"
  vol-degrade --bfactor 100 --snr 2 --pair "$TMP/in.mrc" "$TMP/in.mrc" > "$TMP/p.cvol"
  "$PY" - "$TMP/p.cvol" "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile, cvol
fr = cvol.read_stream(sys.argv[1])
src = mrcfile.open(sys.argv[2]).data
assert len(fr) == 2
for f in fr:
    d = f["data"]
    assert d.shape == (2,) + src.shape, d.shape
    assert np.array_equal(d[1], src)            # target is the clean map
    assert not np.allclose(d[0], src)           # input is degraded
    assert f["meta"]["channel.0"] == "input" and f["meta"]["channel.1"] == "target"
assert not np.array_equal(fr[0]["data"][0], fr[1]["data"][0])   # different noise per frame
PY
}

@test "bad input: NaN map, no effect, bad values; one line, no output" {
  require_py_module mrcfile
  "$PY" - "$TMP/nan.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.ones((8, 8, 8), np.float32); a[3, 4, 5] = np.nan
with mrcfile.new(sys.argv[1]) as m: m.set_data(a)
PY
  run vol-degrade --bfactor 50 "$TMP/nan.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"nan.mrc"* ]]
  assert_no_file "$TMP/o.mrc"
  make_map "$TMP/in.mrc"
  run vol-degrade "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-degrade --wedge 120 "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-degrade --local-res 9,3 "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-degrade --snr 0 "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-degrade --cone "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-degrade --tilt-axis z --wedge 60 "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/o.mrc"
  "$PY" - "$TMP/flat.mrc" <<'PY'
import sys, numpy as np, mrcfile
with mrcfile.new(sys.argv[1]) as m: m.set_data(np.ones((8, 8, 8), np.float32))
PY
  run vol-degrade --snr 1 "$TMP/flat.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  assert_no_file "$TMP/o.mrc"
}
