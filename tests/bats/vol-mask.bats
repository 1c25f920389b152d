#!/usr/bin/env bats
# vol-mask: voxel-by-voxel against relion_mask_create (Debian's relion) on a synthetic map and
# on real maps, against the scipy distance-transform reference (tests/ref/mask_ref.py) on
# anisotropic grids with lengths in Å and for zones around a model (gemmi + cKDTree), the
# --like grid, metadata, and bad input.
load helpers
bats_require_minimum_version 1.5.0

MASK_REF() { "$PY" "$REF/mask_ref.py" "$@"; }

require_relion() {
  command -v relion_mask_create >/dev/null || skip "relion_mask_create not installed"
}

# Gaussian blobs plus a little noise in a cubic 40^3 box (relion filters cubic boxes only),
# an anisotropic non-cubic copy, and a copy with a NaN. $1 = voxel size of the cube.
make_blobs() {
  require_py_module scipy
  "$PY" - "$TMP" "${1:-1.3}" <<'PY'
import sys, numpy as np, mrcfile
d, apix = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(7)
def blobs(shape):
    z, y, x = np.indices(shape, dtype=float)
    a = np.zeros(shape)
    for c, s, h in (((20, 18, 15), 5.0, 1.0), ((12, 25, 28), 3.0, 0.8), ((28, 10, 22), 4.0, 0.6)):
        a += h * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    return (a + 0.03 * rng.standard_normal(shape)).astype(np.float32)
with mrcfile.new(f"{d}/cube.mrc", overwrite=True) as m:
    m.set_data(blobs((40, 40, 40))); m.voxel_size = (apix,) * 3
with mrcfile.new(f"{d}/aniso.mrc", overwrite=True) as m:
    m.set_data(blobs((33, 38, 41))); m.voxel_size = (1.1, 0.8, 1.45); m.header.origin = (-3.0, 5.5, 12.0)
with mrcfile.new(f"{d}/aniso_b.mrc", overwrite=True) as m:  # the same with other noise: a second half
    m.set_data(blobs((33, 38, 41))); m.voxel_size = (1.1, 0.8, 1.45); m.header.origin = (-3.0, 5.5, 12.0)
a = blobs((40, 40, 40)); a[5, 6, 7] = np.nan
with mrcfile.new(f"{d}/nan.mrc", overwrite=True) as m:
    m.set_data(a); m.voxel_size = (apix,) * 3
PY
}

# A few residues near the blobs of cube.mrc (1.3 Å voxels, origin 0), written inline.
write_pdb() {
  cat > "$1" <<'PDB'
ATOM      1  N   ALA A   1      24.104  22.134  18.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      25.639  23.071  19.147  1.00 21.50           C
ATOM      3  C   ALA A   1      26.140  24.830  20.184  1.00 22.10           C
ATOM      4  O   ALA A   1      27.720  25.710  21.264  1.00 23.00           O
ATOM      5  H   ALA A   1      23.500  21.900  18.800  1.00 20.00           H
ATOM      6  N   GLY A   2      15.760  32.760  36.006  1.00 19.00           N
ATOM      7  CA  GLY A   2      16.200  33.540  36.880  1.00 18.00           C
HETATM    8 ZN    ZN A 101      36.000  13.000  29.000  1.00 15.00          ZN
HETATM    9  O   HOH A 201      10.000   2.000   1.000  1.00 40.00           O
END
PDB
}

# relion_mask_create and vol-mask on the same map with the same parameters: $1 map, $2 apix,
# $3 threshold, $4 extend, $5 soft edge, $6 low-pass (or empty). Voxel-for-voxel equal.
same_as_relion() {
  local lp_r=() lp_o=()
  if [ -n "${6:-}" ]; then lp_r=(--lowpass "$6"); lp_o=(--lowpass "$6"); fi
  relion_mask_create --i "$1" --o "$TMP/relion.mrc" --ini_threshold "$3" --extend_inimask "$4" \
    --width_soft_edge "$5" --angpix "$2" "${lp_r[@]}" > "$TMP/relion.log" 2>&1 || { tail -3 "$TMP/relion.log"; false; }
  run vol-mask -q "$1" --threshold "$3" --extend="$4" --soft-edge "$5" "${lp_o[@]}" -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  assert_close_files "$TMP/ours.mrc" "$TMP/relion.mrc" 1e-6
}

@test "--help and --version" {
  run vol-mask --help
  [ "$status" -eq 0 ]
  for o in --threshold --lowpass --extend --soft-edge --model --zone --like --invert; do
    [[ "$output" == *"$o"* ]] || { echo "no $o in --help"; false; }
  done
  run vol-mask --version
  [ "$status" -eq 0 ]
  [[ "$output" == "vol-mask (cryolvm) "* ]]
}

@test "threshold, extend and soft edge equal relion_mask_create voxel for voxel (synthetic map)" {
  require_relion; make_blobs 1.3
  same_as_relion "$TMP/cube.mrc" 1.3 0.2 3 6 ""
  same_as_relion "$TMP/cube.mrc" 1.3 0.2 2.5 4.5 ""
  same_as_relion "$TMP/cube.mrc" 1.3 0.35 0 0 ""
}

@test "shrinking (negative extend) equals relion_mask_create" {
  require_relion; make_blobs 1.3
  same_as_relion "$TMP/cube.mrc" 1.3 0.1 -2 3 ""
  same_as_relion "$TMP/cube.mrc" 1.3 0.1 -1.5 0 ""
}

@test "--lowpass before thresholding equals relion_mask_create (its shell rounding and cosine edge)" {
  require_relion; make_blobs 1.3
  # (not a low-pass whose shell L/R is a tie like 52/8 = 6.5: the header's float32 voxel
  # size 1.2999999 rounds it down, relion's --angpix 1.3 up)
  same_as_relion "$TMP/cube.mrc" 1.3 0.15 2 5 7.7
  same_as_relion "$TMP/cube.mrc" 1.3 0.3 0 3 4.1
}

@test "real map EMD-5168 (100^3, 1.742 Å): equal to relion_mask_create, with and without low-pass" {
  require_relion; require_data tempy_emd5168_actin/emd_5168.map
  ln -s "$DATA/tempy_emd5168_actin/emd_5168.map" "$TMP/emd_5168.mrc" # relion reads .map as Spider
  same_as_relion "$TMP/emd_5168.mrc" 1.742 3 3 6 ""
  same_as_relion "$TMP/emd_5168.mrc" 1.742 3 2 5 15
}

@test "real map EMD-6824 (70^3): equal to relion_mask_create with low-pass, extend and soft edge" {
  require_relion; require_data real_maps_nomodel/emd_6824_diffmodeler.mrc
  same_as_relion "$DATA/real_maps_nomodel/emd_6824_diffmodeler.mrc" 2.64 0.1 1.5 7.3 8
}

@test "anisotropic non-cubic grid, lengths in Å: equal to the scipy distance-transform reference" {
  make_blobs 1.3
  run vol-mask -q "$TMP/aniso.mrc" --threshold 0.2 --extend 2.4A --soft-edge 4Å -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  MASK_REF "$TMP/aniso.mrc" "$TMP/ref.mrc" --threshold 0.2 --extend 2.4 --soft-edge 4 --angstrom
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
  run vol-mask -q "$TMP/aniso.mrc" --threshold 0.1 --lowpass 6 --extend=-1.7A --soft-edge 3 -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  # 3 voxels of the finest axis (0.8 Å) = 2.4 Å
  MASK_REF "$TMP/aniso.mrc" "$TMP/ref.mrc" --threshold 0.1 --lowpass 6 --extend -1.7 --soft-edge 2.4 --angstrom
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
}

@test "real anisotropic map EMD-3001 (axis order 3 1 2): equal to the scipy reference" {
  require_py_module scipy; require_data mrcfile_tests/EMD-3001.map
  local m="$DATA/mrcfile_tests/EMD-3001.map"
  run vol-mask -q "$m" --threshold 0.15 --lowpass 3 --extend=-1A --soft-edge 1.5A -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  MASK_REF "$m" "$TMP/ref.mrc" --threshold 0.15 --lowpass 3 --extend -1 --soft-edge 1.5 --angstrom
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
}

@test "zone around a model (PDB and mmCIF), --like grid, stream output: equal to the cKDTree reference" {
  require_py_module gemmi; make_blobs 1.3
  write_pdb "$TMP/m.pdb"
  gemmi convert "$TMP/m.pdb" "$TMP/m.cif"
  run vol-mask -q "$TMP/cube.mrc" --model "$TMP/m.pdb" --zone 3 --soft-edge 2 -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  MASK_REF "$TMP/cube.mrc" "$TMP/ref.mrc" --model "$TMP/m.pdb" --zone 3 --soft-edge 2
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
  # the grid of another map without reading an input; mmCIF; the stream on stdout
  vol-mask --like "$TMP/cube.mrc" --model "$TMP/m.cif" --zone 3 --soft-edge 2 > "$TMP/ours.cvol"
  assert_close_files "$TMP/ours.cvol" "$TMP/ref.mrc" 1e-6
  # zone and threshold together: both must hold
  run vol-mask -q "$TMP/cube.mrc" --threshold 0.3 --model "$TMP/m.pdb" --zone 4 --extend 1 --invert -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  MASK_REF "$TMP/cube.mrc" "$TMP/ref.mrc" --threshold 0.3 --model "$TMP/m.pdb" --zone 4 --extend 1 --invert
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
}

@test "real map and model (apoferritin, 0.65 Å): zone, threshold after low-pass, invert equal to the reference" {
  require_py_module gemmi; require_py_module scipy
  require_data apoferritin_emd20026/emd20026_prot.mrc
  local map="$DATA/apoferritin_emd20026/emd20026_prot.mrc" pdb="$DATA/apoferritin_emd20026/3ajo_fitted_refined.pdb"
  run vol-mask -q "$map" --model "$pdb" --zone 3 --soft-edge 4 -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  MASK_REF "$map" "$TMP/ref.mrc" --model "$pdb" --zone 3 --soft-edge 4
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
  run vol-mask -q "$map" --threshold 0.002 --lowpass 6 --model "$pdb" --zone 4 --soft-edge 3 --invert -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  MASK_REF "$map" "$TMP/ref.mrc" --threshold 0.002 --lowpass 6 --model "$pdb" --zone 4 --soft-edge 3 --invert
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-6
}

@test "the mask keeps the map's grid and says how it was made; fsc-eval --mask takes it" {
  make_blobs 1.3
  run vol-mask "$TMP/aniso.mrc" --threshold 0.2 --soft-edge 3 -o "$TMP/mask.mrc"
  [ "$status" -eq 0 ]
  [[ "$output" == *"voxels"*"in the binary mask"* ]]
  "$PY" - "$TMP/aniso.mrc" "$TMP/mask.mrc" <<'PY'
import sys, mrcfile, numpy as np
a, b = (mrcfile.open(p, permissive=True) for p in sys.argv[1:3])
assert a.data.shape == b.data.shape
for k in "xyz":
    assert abs(float(getattr(a.voxel_size, k)) - float(getattr(b.voxel_size, k))) < 1e-5
    assert abs(float(getattr(a.header.origin, k)) - float(getattr(b.header.origin, k))) < 1e-4
assert b.data.min() >= 0 and b.data.max() == 1
PY
  run vol-info --json "$TMP/mask.mrc"
  [[ "$output" == *'"vol-mask --threshold 0.2 --soft-edge 3"'* ]]
  run fsc-eval "$TMP/aniso.mrc" "$TMP/aniso_b.mrc" --mask "$TMP/mask.mrc" --json
  [ "$status" -eq 0 ]
}

@test "bad input: one line, right exit status, no output" {
  make_blobs 1.3
  write_pdb "$TMP/m.pdb"
  run vol-mask "$TMP/missing.mrc" --threshold 0.1 -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *missing.mrc* ]]; assert_no_file "$TMP/o.mrc"
  run vol-mask "$TMP/nan.mrc" --threshold 0.1 -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nan.mrc*NaN* ]]; assert_no_file "$TMP/o.mrc"
  head -c 3000 "$TMP/cube.mrc" > "$TMP/cut.mrc"
  run vol-mask "$TMP/cut.mrc" --threshold 0.1 -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *cut.mrc* ]]; assert_no_file "$TMP/o.mrc"
  run vol-mask "$TMP/cube.mrc" --model "$TMP/nomodel.pdb" --zone 3 -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nomodel.pdb* ]]; assert_no_file "$TMP/o.mrc"
  run vol-mask "$TMP/cube.mrc" --threshold 0.1 --lowpass 500 -o "$TMP/o.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *cube.mrc*coarser* ]]; assert_no_file "$TMP/o.mrc"
  # usage errors: exit 2
  run vol-mask "$TMP/cube.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]; [[ "$output" == *"--threshold"* ]]
  run vol-mask "$TMP/cube.mrc" --model "$TMP/m.pdb" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]; [[ "$output" == *"--zone"* ]]
  run vol-mask "$TMP/cube.mrc" --threshold 0.1 --extend 3nm -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]; [[ "$output" == *"--extend"*"3nm"* ]]
  run vol-mask "$TMP/cube.mrc" --threshold 0.1 --soft-edge=-2 -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-mask --like "$TMP/cube.mrc" --threshold 0.1 -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-mask "$TMP/cube.mrc" --like "$TMP/cube.mrc" --model "$TMP/m.pdb" --zone 2 -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run vol-mask "$TMP/cube.mrc" --threshold nan -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/o.mrc"
}

@test "vol-stage mask: one mask per frame of a stream, each equal to vol-mask's (lengths per frame's voxel size)" {
  make_blobs 1.3
  vol-convert "$TMP/cube.mrc" "$TMP/aniso.mrc" -o "$TMP/two.cvol"
  run vol-stage mask --threshold 0.2 --lowpass 6 --extend 2A --soft-edge 3 "$TMP/two.cvol" -o "$TMP/masks.cvol"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  vol-mask -q "$TMP/cube.mrc" --threshold 0.2 --lowpass 6 --extend 2A --soft-edge 3 -o "$TMP/m1.mrc"
  vol-mask -q "$TMP/aniso.mrc" --threshold 0.2 --lowpass 6 --extend 2A --soft-edge 3 -o "$TMP/m2.mrc"
  "$PY" - "$TMP/masks.cvol" "$TMP/m1.mrc" "$TMP/m2.mrc" <<'PY'
import sys, cvol, mrcfile, numpy as np
frames = cvol.read_stream(sys.argv[1])
assert len(frames) == 2, len(frames)
for f, p in zip(frames, sys.argv[2:4]):
    want = np.asarray(mrcfile.open(p, permissive=True).data, np.float64)
    got = np.asarray(f["data"], np.float64).reshape(want.shape)
    assert np.abs(got - want).max() <= 1e-7, np.abs(got - want).max()
PY
  run vol-info "$TMP/masks.cvol"
  [[ "$output" == *"vol-stage mask --threshold 0.2"* && "$output" == *mask.binary_voxels* ]]
  run vol-stage mask "$TMP/cube.mrc"
  [ "$status" -eq 2 ]
  run vol-stage mask --threshold 0.1 --extend 3x "$TMP/cube.mrc"
  [ "$status" -eq 2 ]; [[ "$output" == *"--extend"*"3x"* ]]
}
