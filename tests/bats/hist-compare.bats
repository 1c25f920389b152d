#!/usr/bin/env bats
# hist-compare: soft histograms and JS/KL divergences against numpy written from hist.h's
# definition (tests/ref/hist_ref.py, every kernel term), masks, the plot, bad input.
# KL is +Inf when a bin of the second histogram is empty where the first is not; the C
# kernel stops at 8 sigma (hist.h allows >= 6), so such a bin can be exactly 0 in C while
# numpy holds ~1e-15 there: hist_ref.py accepts that case only for bins below exp(-18).
load helpers

make_maps() {
  require_py_module mrcfile
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, mrcfile
d = sys.argv[1]
rng = np.random.default_rng(2)
def save(name, a, vs=1.0):
    with mrcfile.new(f"{d}/{name}", overwrite=True) as m:
        m.set_data(a.astype(np.float32)); m.voxel_size = vs
save("a.mrc", rng.normal(0.3, 0.1, (12, 14, 16)))
save("b.mrc", rng.gamma(2.0, 0.12, (12, 14, 16)))
save("c.mrc", rng.normal(0.5, 0.2, (9, 10, 11)))          # another grid
z, y, x = np.indices((12, 14, 16))
save("mask.mrc", ((x - 8) ** 2 + (y - 7) ** 2 + (z - 6) ** 2 < 30).astype(np.float32))
n = rng.normal(0, 1, (12, 14, 16)); n[2, 3, 4] = np.inf
save("inf.mrc", n)
save("flat.mrc", np.full((12, 14, 16), 2.0))
PY
}

check() { "$PY" "$REF/hist_ref.py" check "$@"; }

@test "hist-compare --help lists the options" {
  run hist-compare --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--bins"* && "$output" == *"--sigma"* && "$output" == *"--range"* ]]
}

@test "hist-compare: JS, KL both ways and histograms = numpy (default range and sigma)" {
  make_maps
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/o.json"
  run check "$TMP/a.mrc" "$TMP/b.mrc" "$TMP/o.json"
  echo "$output"; [ "$status" -eq 0 ]
}

@test "hist-compare: --bins --range --sigma, maps of different grids = numpy" {
  make_maps
  run hist-compare "$TMP/a.mrc" "$TMP/c.mrc" --bins 37 --range 0,1 --sigma 0.02 --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/o.json"
  run check "$TMP/a.mrc" "$TMP/c.mrc" "$TMP/o.json"
  echo "$output"; [ "$status" -eq 0 ]
  "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['bins']==37 and j['range']==[0,1] and j['sigma']==0.02" "$TMP/o.json"
}

@test "hist-compare --mask = numpy over the masked voxels" {
  make_maps
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --mask "$TMP/mask.mrc" --bins 20 --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/o.json"
  run check "$TMP/a.mrc" "$TMP/b.mrc" "$TMP/o.json" --mask "$TMP/mask.mrc"
  echo "$output"; [ "$status" -eq 0 ]
}

@test "hist-compare: a map against itself has zero divergence; summary line" {
  make_maps
  run hist-compare "$TMP/a.mrc" "$TMP/a.mrc"
  [ "$status" -eq 0 ]
  [[ "$output" == *"JS divergence 0 "* ]]
}

@test "hist-compare: EMD-5168 against a noisier copy = numpy" {
  require_data tempy_emd5168_actin/emd_5168.map
  require_py_module mrcfile
  "$PY" "$REF/fsc_ref.py" halves "$DATA/tempy_emd5168_actin/emd_5168.map" "$TMP/h1.mrc" "$TMP/h2.mrc" --noise 0.5
  run hist-compare "$DATA/tempy_emd5168_actin/emd_5168.map" "$TMP/h1.mrc" --bins 64 --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/o.json"
  run check "$DATA/tempy_emd5168_actin/emd_5168.map" "$TMP/h1.mrc" "$TMP/o.json"
  echo "$output"; [ "$status" -eq 0 ]
}

@test "hist-compare --plot writes a PNG and an SVG" {
  make_maps
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --plot "$TMP/h.png" -q
  [ "$status" -eq 0 ]
  head -c 8 "$TMP/h.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a"
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --plot "$TMP/h.svg" -q
  [ "$status" -eq 0 ]
  grep -q "<svg" "$TMP/h.svg"
}

@test "hist-compare: bad input gives one line and the right status" {
  make_maps
  run hist-compare "$TMP/a.mrc" "$TMP/nope.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nope.mrc* ]]
  run hist-compare "$TMP/a.mrc" "$TMP/inf.mrc" --plot "$TMP/x.png"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *inf.mrc* ]]; assert_no_file "$TMP/x.png"
  run hist-compare "$TMP/a.mrc" "$TMP/c.mrc" --mask "$TMP/mask.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *mask.mrc* ]]
  run hist-compare "$TMP/flat.mrc" "$TMP/flat.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *"--range"* ]]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --bins 10x
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --range 1,0
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --range 0,1,2
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --sigma -1
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --sigma nan
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc"
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --plot "$TMP/h.jpg"
  [ "$status" -eq 2 ]
  run hist-compare "$TMP/a.mrc" "$TMP/b.mrc" --frobnicate
  [ "$status" -eq 2 ]
}
