#!/usr/bin/env bats
# mrc-resample: Fourier, linear and cubic resampling, --like and --box against numpy
# (tests/ref/resample_ref.py, which evaluates the trigonometric interpolant directly) and
# scipy.ndimage.map_coordinates,
# linear against PyTorch, geometry in Å (a blob's centroid, a real map with its atomic model
# via gemmi), relion_image_handler --rescale_angpix, and bad input.
load helpers
bats_require_minimum_version 1.5.0

# White noise plus a smooth part, non-cubic box and voxels (noise exercises the Nyquist planes).
make_map() { # PATH NX NY NZ
  "$PY" - "$@" <<'PY'
import sys, numpy as np, mrcfile
nx, ny, nz = (int(v) for v in sys.argv[2:5])
rng = np.random.default_rng(nx * 10000 + ny * 100 + nz)
a = rng.standard_normal((nz, ny, nx)) + 0.3
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(a.astype(np.float32)); m.voxel_size = (1.25, 1.5, 0.75); m.header.origin = (10.0, -5.0, 2.5)
PY
}

# apix that gives exactly box B along each axis for the map above
apix_for() { # NX,NY,NZ BX,BY,BZ
  "$PY" -c "n=[$1];b=[$2];a=[1.25,1.5,0.75];print(','.join(repr(n[i]*a[i]/b[i]) for i in range(3)))"
}

@test "--help lists every option" {
  run mrc-resample --help
  [ "$status" -eq 0 ]
  for o in --apix --box --method --fill --output --threads; do [[ "$output" == *"$o"* ]]; done
}

# OUT.cvol (from IN by METHOD onto the grid of --apix A,B,C or of --like MAP) equals
# resample_ref.py on the grid computed here from IN (box round(n a / a'), origin o - a/2 + a'/2)
# or read from MAP, with the tool's Fourier pads; the voxel size is exactly the one asked, the
# pads make N a / M exact and both pad and transform sizes are at least n.
check_grid() { # METHOD IN OUT.cvol apix|like A,B,C|MAP FILL TOL
  "$PY" - "$@" <<'PY'
import sys, numpy as np, cvol, resample_ref as R
method, src, out, kind, what, fill, tol = sys.argv[1:8]
a, apix, origin = R.load(src)
n = a.shape[::-1]
if kind == 'apix':
    ga = [float(v) for v in what.split(',')]
    gn = [max(1, int(np.floor(n[d] * apix[d] / ga[d] + 0.5))) for d in range(3)]
    go = [origin[d] - apix[d] / 2 + ga[d] / 2 for d in range(3)]
else:
    like, ga, go = R.load(what)
    gn = like.shape[::-1]
f = cvol.read_stream(out)[0]
m = f['meta']
assert m['resample.method'] == method, m
pads = ffts = None
if method == 'fourier':
    pads = [int(v) for v in m['resample.pad'].split(',')]
    ffts = [int(v) for v in m['resample.fft'].split(',')]
    for d in range(3):
        assert abs(pads[d] * apix[d] / ffts[d] - ga[d]) <= 1.2e-7 * ga[d], (d, pads, ffts, apix, ga)
        assert pads[d] >= n[d], (pads, n)
ref = R.grid(method, a, apix, origin, gn, ga, go, float(fill), pads, ffts)
got = np.asarray(f['data'], np.float64)
assert got.shape == ref.shape, (got.shape, ref.shape)
assert list(f['apix']) == list(ga), (f['apix'], ga)      # exactly the voxel size asked
assert np.allclose(f['origin'], go, rtol=0, atol=1e-9), (f['origin'], go)
e = np.abs(got - ref).max() / max(1.0, np.abs(ref).max())
assert e <= float(tol), (e, tol)
PY
}

@test "fourier: exact voxel size (padded input) equals numpy to float rounding, odd and even, non-cubic" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 17 12
  for ap in 1.6 1.5,1.5,1.5 3 0.9,1.1,0.5 1.0 2.1,0.7,1.7 0.7,2.9,0.33; do
    mrc-resample --apix "$ap" "$TMP/in.mrc" -o "$TMP/o.cvol"
    check_grid fourier "$TMP/in.mrc" "$TMP/o.cvol" apix "$(echo "$ap" | awk -F, '{print NF==1 ? $1","$1","$1 : $0}')" 0 2e-6
  done
}

@test "fourier: pad then crop returns the input (whole ratios); mean density, voxel size and origin rule" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 16 15 10
  mrc-resample --apix 0.5,0.5,0.3 "$TMP/in.mrc" -o "$TMP/up.cvol"
  mrc-resample -q --apix 1.25,1.5,0.75 "$TMP/up.cvol" -o "$TMP/back.mrc"
  assert_close_files "$TMP/back.mrc" "$TMP/in.mrc" 1e-6
  "$PY" - "$TMP/in.mrc" "$TMP/up.cvol" <<'PY'
import sys, numpy as np, mrcfile, cvol
a = mrcfile.open(sys.argv[1]).data.astype(np.float64)
f = cvol.read_stream(sys.argv[2])[0]
assert f['data'].shape == (25, 45, 40), f['data'].shape
assert abs(f['data'].astype(np.float64).mean() - a.mean()) < 1e-5
assert list(f['apix']) == [0.5, 0.5, 0.3], f['apix']
o = np.array([10.0, -5.0, 2.5]) - np.array([1.25, 1.5, 0.75]) / 2 + np.array([0.5, 0.5, 0.3]) / 2
assert np.allclose(f['origin'], o, atol=1e-9), (f['origin'], o)
assert not any(k.startswith('mrc.') for k in f['meta']), f['meta']
PY
}

@test "issue 11 §4: 35x52x47 at 2.5 Å to 3 Å and 1 Å is exact and isotropic; -q does not hide a real mismatch" {
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.random.default_rng(4).standard_normal((47, 52, 35)).astype(np.float32)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a); m.voxel_size = 2.5; m.header.origin = (3.0, -4.0, 5.5)
PY
  for ap in 3 1; do
    run --separate-stderr mrc-resample -q --apix $ap "$TMP/in.mrc" -o "$TMP/o$ap.mrc"
    [ "$status" -eq 0 ] && [ -z "$stderr" ]
    "$PY" - "$TMP/o$ap.mrc" $ap <<'PY'
import sys, numpy as np, mrcfile
m = mrcfile.open(sys.argv[1]); ap = float(sys.argv[2]); vs = m.voxel_size
assert (float(vs.x), float(vs.y), float(vs.z)) == (ap, ap, ap), vs   # MRC float32 holds it exactly
assert m.data.shape == tuple(int(np.floor(n * 2.5 / ap + 0.5)) for n in (47, 52, 35)), m.data.shape
PY
  done
  # 1.0 -> 0.9999 cannot be exact by a bounded pad: the warning names the file and the residual, even with -q
  "$PY" -c "
import numpy as np, mrcfile
with mrcfile.new('$TMP/one.mrc') as m:
    m.set_data(np.random.default_rng(1).standard_normal((20, 24, 30)).astype(np.float32)); m.voxel_size = 1.0"
  run --separate-stderr mrc-resample -q --apix 0.9999 "$TMP/one.mrc" -o "$TMP/o.cvol"
  [ "$status" -eq 0 ]
  [[ "$stderr" == *"warning:"*"one.mrc"*"asked 0.9999"*"residual 0.0001"*"--method cubic"* ]]
  "$PY" -c "
import cvol; f = cvol.read_stream('$TMP/o.cvol')[0]
assert f['apix'][0] == 1.0 and f['meta']['resample.residual'].startswith('0.0001'), (f['apix'], f['meta'])"
  run --separate-stderr mrc-resample --method cubic --apix 0.9999 "$TMP/one.mrc" -o "$TMP/o.cvol"
  [ "$status" -eq 0 ] && [ -z "$stderr" ]
}

@test "FFT-friendly sizes: 256 at 1.0 Å to 1.5 Å pads to 270 -> 180; 2,3,5,7 factors whenever they exist" {
  require_py_module mrcfile
  "$PY" -c "
import numpy as np, mrcfile
with mrcfile.new('$TMP/in.mrc') as m:
    m.set_data(np.zeros((4, 4, 256), np.float32)); m.voxel_size = (1.0, 1.5, 2.02)"
  mrc-resample --apix 1.5,1.0,1.0 "$TMP/in.mrc" -o "$TMP/o.cvol"
  "$PY" - "$TMP/o.cvol" <<'PY'
import sys, cvol
m = cvol.read_stream(sys.argv[1])[0]['meta']
pad = [int(v) for v in m['resample.pad'].split(',')]; fft = [int(v) for v in m['resample.fft'].split(',')]
def smooth(x):
    for p in (2, 3, 5, 7):
        while x % p == 0: x //= p
    return x == 1
# x: 256 * 2/3 is not whole; N in 256..384 with N * 2/3 whole and both sizes 7-smooth, cheapest
assert (pad[0], fft[0]) == (270, 180), (pad, fft)
# y: 4 * 1.5 = 6, no pad; z: 2.02 = 101/50 needs N = 50 (M = 101, a prime; the only exact choice)
assert (pad[1], fft[1]) == (4, 6) and (pad[2], fft[2]) == (50, 101), (pad, fft)
PY
}

# A target map: its grid (box, voxel size, origin off the input's lattice) is what --like takes.
make_like() { # PATH NX NY NZ AX AY AZ OX OY OZ
  "$PY" - "$@" <<'PY'
import sys, numpy as np, mrcfile
n = [int(v) for v in sys.argv[2:5]]; a = [float(v) for v in sys.argv[5:8]]; o = [float(v) for v in sys.argv[8:11]]
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(np.zeros(n[::-1], np.float32)); m.voxel_size = tuple(a); m.header.origin = tuple(o)
PY
}

@test "--like: onto another map's grid (voxel size, box, origin off-lattice, fill outside) equals numpy, every method" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 17 12
  # larger than the input on some sides, smaller on others; origin not on the input's lattice
  make_like "$TMP/like.mrc" 22 9 20 1.0 2.0 0.5 6.3 -3.1 -0.4
  for m in fourier linear cubic; do
    mrc-resample --method $m --like "$TMP/like.mrc" --fill -1 "$TMP/in.mrc" -o "$TMP/o.cvol"
    check_grid $m "$TMP/in.mrc" "$TMP/o.cvol" like "$TMP/like.mrc" -1 $([ $m = fourier ] && echo 2e-6 || echo 1e-5)
  done
  "$PY" -c "
import cvol, numpy as np; f = cvol.read_stream('$TMP/o.cvol')[0]
assert f['meta']['resample.like'].endswith('like.mrc'); assert (f['data'] == -1).any() and (f['data'] != -1).any()"
}

@test "--like linear equals scipy.ndimage.map_coordinates (order 1) at the target voxels' positions in Å" {
  require_py_module scipy
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 17 12
  make_like "$TMP/like.mrc" 13 11 9 1.7 1.1 0.9 13.0 -1.2 4.1
  mrc-resample --method linear --like "$TMP/like.mrc" "$TMP/in.mrc" -o "$TMP/o.mrc"
  "$PY" - "$TMP/in.mrc" "$TMP/o.mrc" <<'PY'
import sys, numpy as np, mrcfile
from scipy.ndimage import map_coordinates
a = mrcfile.open(sys.argv[1]).data.astype(np.float64)
m = mrcfile.open(sys.argv[2]); got = m.data.astype(np.float64)
ia = np.array([1.25, 1.5, 0.75]); io = np.array([10.0, -5.0, 2.5])
ga = np.array([1.7, 1.1, 0.9]); go = np.array([13.0, -1.2, 4.1])
assert np.allclose([m.voxel_size.x, m.voxel_size.y, m.voxel_size.z], ga)
assert np.allclose([m.header.origin.x, m.header.origin.y, m.header.origin.z], go, atol=1e-5)
z, y, x = np.meshgrid(*[(go[d] + ga[d] * np.arange(got.shape[2 - d]) - io[d]) / ia[d] for d in (2, 1, 0)],
                      indexing='ij')
ref = map_coordinates(a, [z, y, x], order=1, mode='nearest')
assert np.abs(got - ref).max() < 1e-5, np.abs(got - ref).max()    # the target box lies inside the map
PY
}

@test "--like fourier: a Gaussian blob lands on the target grid at its place in Å (analytic, 1e-5)" {
  require_py_module mrcfile
  "$PY" - "$TMP/blob.mrc" <<'PY'
import sys, numpy as np, mrcfile
n = (34, 31, 28); a = (1.1, 1.0, 1.2); o = (-20.0, 7.0, 3.0); c = (-20 + 17.3, 7 + 14.6, 3 + 15.9)
z, y, x = np.meshgrid(*[o[d] + a[d] * np.arange(n[d]) for d in (2, 1, 0)], indexing='ij')
v = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 3.0 ** 2))
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(v.astype(np.float32)); m.voxel_size = a; m.header.origin = o
PY
  make_like "$TMP/like.mrc" 30 40 26 0.8 0.75 1.25 -19.13 6.61 2.87
  mrc-resample -q --like "$TMP/like.mrc" "$TMP/blob.mrc" -o "$TMP/o.mrc"
  "$PY" - "$TMP/o.mrc" <<'PY'
import sys, numpy as np, mrcfile
m = mrcfile.open(sys.argv[1]); d = m.data.astype(np.float64)
a = (0.8, 0.75, 1.25); o = (-19.13, 6.61, 2.87); c = (-20 + 17.3, 7 + 14.6, 3 + 15.9)
assert d.shape == (26, 40, 30)
z, y, x = np.meshgrid(*[o[k] + a[k] * np.arange(d.shape[2 - k]) for k in (2, 1, 0)], indexing='ij')
want = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 3.0 ** 2))
assert np.abs(d - want).max() < 1e-5, np.abs(d - want).max()
PY
}

@test "--like: fsc-eval takes the result with the target; real map with its model (apoferritin 0.65 Å onto a 1 Å grid)" {
  require_py_module gemmi
  require_py_module mrcfile
  require_data apoferritin_emd20026/emd20026_prot.mrc
  require_data apoferritin_emd20026/3ajo_fitted_refined.pdb
  m="$DATA/apoferritin_emd20026/emd20026_prot.mrc"
  make_like "$TMP/like.mrc" 64 70 76 1.0 1.0 1.0 119.37 67.12 103.55
  mrc-resample -q --like "$TMP/like.mrc" "$m" -o "$TMP/o.mrc"
  mrc-resample -q --method cubic --like "$TMP/like.mrc" "$m" -o "$TMP/c.mrc"
  # the two methods land on one grid (fsc-eval accepts the pair) and agree to Nyquist (FSC > 0.5)
  fsc-eval -q "$TMP/o.mrc" "$TMP/c.mrc" --json > "$TMP/fsc.json"
  "$PY" -c "import json; j = json.load(open('$TMP/fsc.json')); assert not j['thresholds'][1]['reached'], j['fsc_05']"
  "$PY" - "$m" "$DATA/apoferritin_emd20026/3ajo_fitted_refined.pdb" "$TMP/o.mrc" <<'PY'
import sys, numpy as np, mrcfile, gemmi
def at_atoms(path, shift=0.0):
    with mrcfile.open(path, permissive=True) as m:
        d = np.asarray(m.data, np.float32); vs = m.voxel_size; h = m.header
        a = np.array([float(vs.x), float(vs.y), float(vs.z)])
        o = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)]) + shift
    g = gemmi.FloatGrid(np.ascontiguousarray(d.transpose(2, 1, 0)))
    g.set_unit_cell(gemmi.UnitCell(*(a * d.shape[::-1]), 90, 90, 90))
    return np.array([g.interpolate_value(gemmi.Position(*(np.array(at.pos.tolist()) - o))) for at in atoms])
st = gemmi.read_structure(sys.argv[2])
atoms = [at for res in st[0][0] for at in res]
with mrcfile.open(sys.argv[3]) as m:
    assert m.data.shape == (76, 70, 64) and float(m.voxel_size.x) == 1.0
lo = np.array([119.37, 67.12, 103.55]); hi = lo + np.array([63, 69, 75])
keep = [i for i, at in enumerate(atoms) if np.all(np.array(at.pos.tolist()) > lo + 2) and np.all(np.array(at.pos.tolist()) < hi - 2)]
assert len(keep) > 500, len(keep)
atoms = [atoms[i] for i in keep]
ref = at_atoms(sys.argv[1]); v = at_atoms(sys.argv[3])
wrong = at_atoms(sys.argv[3], shift=np.array([0.8, -0.8, 0.8]))
r = np.corrcoef(ref, v)[0, 1]; rw = np.corrcoef(ref, wrong)[0, 1]
print(len(atoms), r, rw, file=sys.stderr)
# 1 Å voxels hold nothing finer than 2 Å, the 0.65 Å map does: 0.93 measured; 0.8 Å off: 0.30
assert r > 0.9 and r - rw > 0.3, (r, rw)
PY
}

@test "linear and cubic (Keys a=-0.5) equal numpy; linear equals torch.interpolate" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 17 12
  for m in linear cubic; do
    for ap in 2.1,0.7,1.7 0.9,1.5,0.4; do
      mrc-resample --method $m --apix $ap "$TMP/in.mrc" -o "$TMP/o.mrc"
      "$PY" "$REF/resample_ref.py" $m "$TMP/in.mrc" "$TMP/r.mrc" ${ap//,/ }
      assert_close_files "$TMP/o.mrc" "$TMP/r.mrc" 1e-5
    done
  done
  require_py_module torch
  make_map "$TMP/in.mrc" 20 16 12   # even sizes: torch's floor(n/2) equals our round(n/2)
  mrc-resample --method linear --apix 2.5,3,1.5 "$TMP/in.mrc" -o "$TMP/lin.mrc"
  "$PY" - "$TMP/in.mrc" "$TMP/lin.mrc" <<'PY'
import sys, numpy as np, mrcfile, torch
a = torch.from_numpy(mrcfile.open(sys.argv[1]).data.astype(np.float64))[None, None]
ours = mrcfile.open(sys.argv[2]).data.astype(np.float64)
ref = torch.nn.functional.interpolate(a, scale_factor=(0.5, 0.5, 0.5), mode='trilinear', align_corners=False,
                                      recompute_scale_factor=False)[0, 0].numpy()
assert ref.shape == ours.shape, (ref.shape, ours.shape)
assert np.abs(ref - ours).max() < 1e-5, np.abs(ref - ours).max()
PY
}

@test "--box crops and pads about the centre (odd/even) with --fill; origin moves by whole voxels" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 17 12
  for b in 25,10,13 8,30,12 21,17,11; do
    mrc-resample --box $b --fill 2.5 "$TMP/in.mrc" -o "$TMP/c.cvol"
    "$PY" "$REF/resample_ref.py" crop "$TMP/in.mrc" "$TMP/r.mrc" ${b//,/ } 2.5
    assert_close_files "$TMP/c.cvol" "$TMP/r.mrc" 0
    "$PY" - "$TMP/c.cvol" $b <<'PY'
import sys, numpy as np, cvol
f = cvol.read_stream(sys.argv[1])[0]
b = [int(v) for v in sys.argv[2].split(',')]
n = [20, 17, 12]; a = np.array([1.25, 1.5, 0.75])
want = np.array([10.0, -5.0, 2.5]) + np.array([n[d] // 2 - b[d] // 2 for d in range(3)]) * a
assert np.allclose(f['origin'], want, atol=1e-5), (f['origin'], want)
PY
  done
  mrc-resample --box 64 "$TMP/in.mrc" -o "$TMP/c.mrc"
  "$PY" -c "import mrcfile; assert mrcfile.open('$TMP/c.mrc').data.shape == (64, 64, 64)"
}

@test "a Gaussian blob stays at its position in Å for every method, voxel size and box" {
  require_py_module mrcfile
  "$PY" - "$TMP/blob.mrc" <<'PY'
import sys, numpy as np, mrcfile
n = (34, 31, 28); a = (1.1, 1.0, 1.2); o = (-20.0, 7.0, 3.0); c = (-20 + 17.3, 7 + 14.6, 3 + 15.9)
z, y, x = np.meshgrid(*[o[d] + a[d] * np.arange(n[d]) for d in (2, 1, 0)], indexing='ij')
v = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 2.2 ** 2))
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(v.astype(np.float32)); m.voxel_size = a; m.header.origin = o
PY
  for args in "--apix 1.5" "--apix 0.7,0.9,1.3" "--apix 2.0 --box 21,20,19" "--box 40,37,30" "--box 25" \
              "--method linear --apix 1.37" "--method cubic --apix 0.8,1.4,1.1 --box 33,24,27"; do
    mrc-resample -q $args "$TMP/blob.mrc" -o "$TMP/o.cvol"
    "$PY" - "$TMP/o.cvol" "$args" <<'PY'
import sys, numpy as np, cvol
f = cvol.read_stream(sys.argv[1])[0]
d = f['data'].astype(np.float64); a = f['apix']; o = f['origin']
nz, ny, nx = d.shape
z, y, x = np.meshgrid(*[o[k] + a[k] * np.arange(s) for k, s in ((2, nz), (1, ny), (0, nx))], indexing='ij')
c = np.array([(d * x).sum(), (d * y).sum(), (d * z).sum()]) / d.sum()
want = np.array([-20 + 17.3, 7 + 14.6, 3 + 15.9])
tol = 5e-3 if 'method' not in sys.argv[2] else 0.03   # Å
assert np.abs(c - want).max() < tol, (sys.argv[2], c, want)
PY
  done
}

@test "real map with its model (EMD-5168 + 3MFP): density at the atoms is kept in Å (gemmi)" {
  require_py_module gemmi
  require_py_module mrcfile
  require_data tempy_emd5168_actin/emd_5168.map
  require_data tempy_emd5168_actin/3MFP.pdb
  m="$DATA/tempy_emd5168_actin/emd_5168.map"
  mrc-resample --apix 2.5 "$m" -o "$TMP/f.mrc" 2>/dev/null
  mrc-resample --method cubic --apix 1.2 "$m" -o "$TMP/c.mrc"
  mrc-resample --box 80,90,120 "$m" -o "$TMP/b.mrc"
  "$PY" - "$m" "$DATA/tempy_emd5168_actin/3MFP.pdb" "$TMP/f.mrc" "$TMP/c.mrc" "$TMP/b.mrc" <<'PY'
import sys, numpy as np, mrcfile, gemmi
def grid(path, shift=0.0):
    # gemmi 0.5 ignores the ORIGIN words: build the grid ourselves, origin = ORIGIN + NSTART * apix
    with mrcfile.open(path, permissive=True) as m:
        d = np.asarray(m.data, np.float32); vs = m.voxel_size; h = m.header
        a = np.array([float(vs.x), float(vs.y), float(vs.z)])
        o = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        o += np.array([int(h.nxstart), int(h.nystart), int(h.nzstart)]) * a
    g = gemmi.FloatGrid(np.ascontiguousarray(d.transpose(2, 1, 0)))
    g.set_unit_cell(gemmi.UnitCell(*(a * d.shape[::-1]), 90, 90, 90))
    return g, o + shift
def at_atoms(path, shift=0.0):
    g, o = grid(path, shift)
    return np.array([g.interpolate_value(gemmi.Position(*(np.array(at.pos.tolist()) - o)))
                     for at in atoms])
st = gemmi.read_structure(sys.argv[2])
atoms = [at for res in st[0][0] for at in res]
ref = at_atoms(sys.argv[1])
g0, _ = grid(sys.argv[1])
assert ref.mean() > 3 * np.abs(np.array(g0, copy=True)).mean(), ref.mean()   # the model sits in density
for p in sys.argv[3:]:
    v = at_atoms(p)
    r = np.corrcoef(ref, v)[0, 1]
    wrong = np.corrcoef(ref, at_atoms(p, shift=np.array([1.5, -1.5, 1.5])))[0, 1]
    print(p, r, wrong, file=sys.stderr)
    assert r > 0.97, (p, r)
    assert r - wrong > 0.02, (p, r, wrong)     # a 2.6 Å misplacement would be seen
PY
}

@test "relion_image_handler --rescale_angpix agrees once its centre convention is applied" {
  command -v relion_image_handler >/dev/null || skip "relion not installed"
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(1); n = 48
a = rng.standard_normal((n, n, n)); k = np.fft.fftfreq(n); kx = np.fft.rfftfreq(n)
F = np.fft.rfftn(a) * np.exp(-(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx ** 2) * 40)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data((np.fft.irfftn(F, s=a.shape) * 10 + 1).astype(np.float32)); m.voxel_size = 1.0
PY
  (cd "$TMP" && relion_image_handler --i in.mrc --o rl.mrc --rescale_angpix 1.5 >/dev/null 2>&1)
  mrc-resample --apix 1.5 "$TMP/in.mrc" -o "$TMP/ours.mrc"
  "$PY" - "$TMP/rl.mrc" "$TMP/ours.mrc" <<'PY'
import sys, numpy as np, mrcfile
R = mrcfile.open(sys.argv[1]).data.astype(np.float64); O = mrcfile.open(sys.argv[2]).data.astype(np.float64)
assert R.shape == O.shape == (32, 32, 32)
# relion keeps voxel n/2 fixed; we keep the box edge: its samples sit (a - a')/2 = -0.25 Å = -1/6
# voxel from ours. Shift ours by that (exact for this band-limited map) and compare.
m = 32; k = np.fft.fftfreq(m)
ph = np.exp(2j * np.pi * (k[:, None, None] + k[None, :, None] + k[None, None, :]) * (-1 / 6))
S = np.fft.ifftn(np.fft.fftn(O) * ph).real
r = np.corrcoef(S.ravel(), R.ravel())[0, 1]; e = np.abs(S - R).max() / np.abs(R).max()
print(r, e)
assert r > 0.9999 and e < 0.02, (r, e)
assert abs(R.mean() - O.mean()) < 1e-4
PY
}

@test "relion agrees on a padded job (47³ → 94³ at 0.5 Å: we pad 47 to 48, relion transforms 47)" {
  command -v relion_image_handler >/dev/null || skip "relion not installed"
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
n = 47; x = np.arange(n) - 23.4
z, y, xx = np.meshgrid(x + 1.3, x - 0.7, x, indexing='ij')
v = np.exp(-(xx ** 2 + y ** 2 + z ** 2) / (2 * 5.0 ** 2)) + 0.5 * np.exp(-((xx - 6) ** 2 + y ** 2 + (z + 4) ** 2) / 18)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(v.astype(np.float32)); m.voxel_size = 1.0
PY
  (cd "$TMP" && relion_image_handler --i in.mrc --o rl.mrc --rescale_angpix 0.5 >/dev/null 2>&1)
  mrc-resample --apix 0.5 "$TMP/in.mrc" -o "$TMP/ours.cvol"
  "$PY" - "$TMP/rl.mrc" "$TMP/ours.cvol" <<'PY'
import sys, numpy as np, mrcfile, cvol
R = mrcfile.open(sys.argv[1]).data.astype(np.float64); f = cvol.read_stream(sys.argv[2])[0]
O = f['data'].astype(np.float64)
assert f['meta']['resample.pad'] == '48,48,48', f['meta']        # 47 is prime: the pad is cheaper
assert R.shape == O.shape == (94, 94, 94) and list(f['apix']) == [0.5] * 3
# relion keeps voxel n/2 fixed: its samples sit (a - a')/2 = +0.25 Å = +1/2 output voxel from
# ours (the sign of the 1.5 Å test's -1/6). Shift ours by that (exact for this band-limited
# map) and compare: 9e-6 measured; the wrong sign gives 0.13.
m = 94; k = np.fft.fftfreq(m)
ph = np.exp(2j * np.pi * (k[:, None, None] + k[None, :, None] + k[None, None, :]) * (1 / 2))
S = np.fft.ifftn(np.fft.fftn(O) * ph).real
e = np.abs(S - R).max() / np.abs(R).max()
assert e < 1e-4, e
PY
}

@test "bad input: missing file, bad flags, trailing junk, NaN; one line, no output" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 8 8 8
  run mrc-resample --apix 2 "$TMP/missing.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *missing.mrc* ]]; assert_no_file "$TMP/o.mrc"
  for bad in "" "--apix 1,2" "--apix 0" "--apix -1" "--apix 1.5x" "--box 0" "--box 8,8" "--box 4q" \
             "--method spline --apix 1" "--fill 1" "--apix nan" "--bogus"; do
    run mrc-resample $bad "$TMP/in.mrc" -o "$TMP/o.mrc"
    [ "$status" -eq 2 ] || { echo "args '$bad' gave $status: $output"; false; }
    assert_no_file "$TMP/o.mrc"
  done
  "$PY" -c "
import numpy as np, mrcfile
a = np.ones((8, 8, 8), np.float32); a[3, 4, 5] = np.nan
with mrcfile.new('$TMP/nan.mrc') as m: m.set_data(a)"
  run mrc-resample --apix 2 "$TMP/nan.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nan.mrc* ]]; assert_no_file "$TMP/o.mrc"
  # --like: with --apix/--box is a usage error; a missing or disjoint MAP, or a Fourier ratio
  # no pad makes exact, fails naming the file
  for bad in "--like $TMP/in.mrc --apix 2" "--like $TMP/in.mrc --box 4"; do
    run mrc-resample $bad "$TMP/in.mrc" -o "$TMP/o.mrc"
    [ "$status" -eq 2 ] || { echo "args '$bad' gave $status: $output"; false; }
    assert_no_file "$TMP/o.mrc"
  done
  run mrc-resample --like "$TMP/nolike.mrc" "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nolike.mrc* ]]; assert_no_file "$TMP/o.mrc"
  make_like "$TMP/far.mrc" 8 8 8 1 1 1 500 0 0
  run mrc-resample --like "$TMP/far.mrc" "$TMP/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *overlap* ]]; assert_no_file "$TMP/o.mrc"
  make_like "$TMP/odd.mrc" 8 8 8 0.9999 1 1 0 0 0
  make_like "$TMP/one.mrc" 8 8 8 1 1 1 0 0 0
  run mrc-resample --like "$TMP/odd.mrc" "$TMP/one.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *one.mrc*"--method cubic"*odd.mrc* ]]
  assert_no_file "$TMP/o.mrc"
  mrc-resample --method cubic --like "$TMP/odd.mrc" "$TMP/one.mrc" -o "$TMP/cubic.mrc"
  printf 'MAP garbage' > "$TMP/junk.mrc"
  run mrc-resample --apix 2 "$TMP/junk.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/o.mrc"
}

@test "the result does not depend on the number of threads; frames of a stream reuse the plans" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 33 28 21
  mrc-resample -q --threads 1 --apix 2.0 "$TMP/in.mrc" -o "$TMP/t1.mrc"
  mrc-resample -q --threads 2 --apix 2.0 "$TMP/in.mrc" -o "$TMP/t2.mrc"
  cmp <(tail -c +1025 "$TMP/t1.mrc") <(tail -c +1025 "$TMP/t2.mrc")
  # three frames, the second of another shape: each equals its one-frame result
  make_map "$TMP/b.mrc" 20 17 12
  vol-convert "$TMP/in.mrc" "$TMP/b.mrc" "$TMP/in.mrc" > "$TMP/s.cvol"
  mrc-resample -q --apix 2.0 "$TMP/s.cvol" > "$TMP/o.cvol"
  mrc-resample -q --apix 2.0 "$TMP/b.mrc" -o "$TMP/b2.mrc"
  "$PY" - "$TMP/o.cvol" "$TMP/t1.mrc" "$TMP/b2.mrc" <<'PY'
import sys, numpy as np, cvol, mrcfile
fr = cvol.read_stream(sys.argv[1]); a = mrcfile.open(sys.argv[2]).data; b = mrcfile.open(sys.argv[3]).data
assert len(fr) == 3
assert np.array_equal(fr[0]['data'], a) and np.array_equal(fr[2]['data'], a) and np.array_equal(fr[1]['data'], b)
PY
}
