#!/usr/bin/env bats
# fsc-eval: FSC against an independent numpy FSC (full complex FFT), against relion
# (relion_image_handler --fsc, relion_postprocess), masked FSC with phase randomisation,
# outputs (TSV, JSON, PNG/SVG) and bad input.
# No real half maps exist offline: "half maps" are a real map (EMD-5168) plus independent
# white Gaussian noise (tests/ref/fsc_ref.py halves), as the data README suggests.
load helpers

FSC_REF() { "$PY" "$REF/fsc_ref.py" "$@"; }

# Two small random "half maps" of a non-cubic odd box with non-cubic voxels (no shared data).
make_synthetic() {
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, mrcfile
d = sys.argv[1]
rng = np.random.default_rng(5)
z, y, x = np.indices((21, 30, 27), dtype=float)
sig = np.exp(-((x - 13) ** 2 / 20 + (y - 15) ** 2 / 30 + (z - 10) ** 2 / 12))
sig += 0.5 * np.exp(-((x - 8) ** 2 + (y - 20) ** 2 + (z - 6) ** 2) / 4)
for n in (1, 2):
    with mrcfile.new(f"{d}/s{n}.mrc", overwrite=True) as m:
        m.set_data((sig + 0.05 * rng.standard_normal(sig.shape)).astype(np.float32))
        m.voxel_size = (1.1, 0.9, 1.3)
with mrcfile.new(f"{d}/other.mrc", overwrite=True) as m:
    m.set_data(np.zeros((21, 30, 28), np.float32)); m.voxel_size = (1.1, 0.9, 1.3)
with mrcfile.new(f"{d}/nan.mrc", overwrite=True) as m:
    a = sig.astype(np.float32); a[3, 4, 5] = np.nan
    m.set_data(a); m.voxel_size = (1.1, 0.9, 1.3)
PY
}

make_halves() {
  require_data tempy_emd5168_actin/emd_5168.map
  require_py_module mrcfile
  FSC_REF halves "$DATA/tempy_emd5168_actin/emd_5168.map" "$TMP/h1.mrc" "$TMP/h2.mrc" --noise 1.5 --seed 3
  FSC_REF mask "$TMP/h1.mrc" "$TMP/mask.mrc" --radius 35 --edge 6
}

@test "fsc-eval --help lists the options" {
  run fsc-eval --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--mask"* && "$output" == *"--thresholds"* && "$output" == *"--plot"* ]]
}

@test "fsc-eval: non-cubic odd box, non-cubic voxels = numpy full-FFT FSC (1e-5)" {
  require_py_module mrcfile
  make_synthetic
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --tsv "$TMP/c.tsv"
  [ "$status" -eq 0 ]
  run FSC_REF check "$TMP/s1.mrc" "$TMP/s2.mrc" "$TMP/c.tsv" --tol 1e-5
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "fsc-eval: EMD-5168 half maps, unmasked and masked = numpy (1e-5)" {
  make_halves
  run fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --mask "$TMP/mask.mrc" --tsv "$TMP/c.tsv"
  [ "$status" -eq 0 ]
  run FSC_REF check "$TMP/h1.mrc" "$TMP/h2.mrc" "$TMP/c.tsv" --mask "$TMP/mask.mrc" --tol 1e-5
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "fsc-eval --json: fsc_0143/fsc_05 equal numpy's interpolated crossing" {
  make_halves
  run fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/o.json"
  "$PY" - "$TMP" "$REF" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
import fsc_ref
d = sys.argv[1]
j = json.load(open(f"{d}/o.json"))
a, apix = fsc_ref.read(f"{d}/h1.mrc"); b, _ = fsc_ref.read(f"{d}/h2.mrc")
c, s = fsc_ref.fsc(a, b, apix)
for key, t in (("fsc_0143", 0.143), ("fsc_05", 0.5)):
    want = fsc_ref.resolution(s, c, t)
    print(key, j[key], want)
    assert abs(j[key] - want) < 1e-3 * want, key
assert len(j["curve"]["fsc"]) == len(c)
assert j["masked"] is False and j["thresholds"][0]["reached"] is True
PY
}

@test "fsc-eval --relion-weights = relion_image_handler --fsc (1e-4); default within 0.02" {
  command -v relion_image_handler >/dev/null || skip "relion not installed"
  make_halves
  (cd "$TMP" && relion_image_handler --i h1.mrc --fsc h2.mrc > r.star 2>/dev/null)
  run fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --relion-weights --tsv "$TMP/rw.tsv"
  [ "$status" -eq 0 ]
  run FSC_REF star "$TMP/r.star" "$TMP/rw.tsv" _rlnFourierShellCorrelation fsc 1e-4 --from 1
  echo "$output"; [ "$status" -eq 0 ]
  fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --tsv "$TMP/full.tsv"
  run FSC_REF star "$TMP/r.star" "$TMP/full.tsv" _rlnFourierShellCorrelation fsc 0.02 --from 1
  echo "$output"; [ "$status" -eq 0 ]
}

@test "fsc-eval --mask vs relion_postprocess: same curves, randomisation shell and resolution" {
  command -v relion_postprocess >/dev/null || skip "relion not installed"
  make_halves
  (cd "$TMP" && relion_postprocess --i h1.mrc --i2 h2.mrc --mask mask.mrc --angpix 1.742 --o pp \
     --auto_bfac false --adhoc_bfac 0 >/dev/null 2>&1 || true)  # exits 1 making its PDF log; the STAR is written first
  [ -s "$TMP/pp.star" ]
  run fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --mask "$TMP/mask.mrc" --relion-weights --tsv "$TMP/m.tsv" --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/o.json"
  run FSC_REF star "$TMP/pp.star" "$TMP/m.tsv" _rlnFourierShellCorrelationUnmaskedMaps fsc 1e-4
  echo "$output"; [ "$status" -eq 0 ]
  run FSC_REF star "$TMP/pp.star" "$TMP/m.tsv" _rlnFourierShellCorrelationMaskedMaps fsc_masked 1e-4
  echo "$output"; [ "$status" -eq 0 ]
  # random phases differ from relion's: the corrected curves agree to the noise of a realisation
  run FSC_REF star "$TMP/pp.star" "$TMP/m.tsv" _rlnFourierShellCorrelationCorrected fsc_corrected 0.08
  echo "$output"; [ "$status" -eq 0 ]
  "$PY" - "$TMP" <<'PY'
import json, re, sys
d = sys.argv[1]
j = json.load(open(f"{d}/o.json"))
star = open(f"{d}/pp.star").read()
res = float(re.search(r"_rlnFinalResolution\s+(\S+)", star).group(1))
rnd = float(re.search(r"_rlnRandomiseFrom\s+(\S+)", star).group(1))
print("relion", res, rnd, "ours", j["fsc_0143_shell"], j["randomize_at"])
assert abs(j["randomize_at"] - rnd) < 1e-3 * rnd
# within one shell: compare shell indices N a / d
N, a = 100, 1.742
assert abs(N * a / j["fsc_0143_shell"] - N * a / res) <= 1.0 + 1e-6
PY
}

@test "fsc-eval: seeded phase randomisation is reproducible and thread-count independent" {
  make_halves
  fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --mask "$TMP/mask.mrc" --seed 7 --threads 1 --tsv "$TMP/a.tsv" -q
  fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --mask "$TMP/mask.mrc" --seed 7 --threads 2 --tsv "$TMP/b.tsv" -q
  fsc-eval "$TMP/h1.mrc" "$TMP/h2.mrc" --mask "$TMP/mask.mrc" --seed 8 --tsv "$TMP/c.tsv" -q
  "$PY" - "$TMP" "$REF" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import fsc_ref, numpy as np
d = sys.argv[1]
a, b, c = (fsc_ref.read_tsv(f"{d}/{n}.tsv") for n in "abc")
assert np.max(np.abs(a["fsc_random_masked"] - b["fsc_random_masked"])) < 2e-6
assert np.max(np.abs(a["fsc_random_masked"] - c["fsc_random_masked"])) > 1e-3  # another seed, other phases
PY
}

@test "fsc-eval --plot writes PNG and SVG; other extensions are usage errors" {
  require_py_module mrcfile
  make_synthetic
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/f.png" -q
  [ "$status" -eq 0 ]
  head -c 8 "$TMP/f.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a"
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/f.svg" -q
  [ "$status" -eq 0 ]
  grep -q "<svg" "$TMP/f.svg"
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/f.pdf"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/f.pdf"
}

@test "fsc-eval --plot-with draws a second map's FSC against MAP2 in the same plot; bad uses fail cleanly" {
  require_py_module mrcfile
  make_synthetic
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/one.png" -q
  [ "$status" -eq 0 ]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/two.png" --plot-with "$TMP/nan.mrc" -q
  [ "$status" -eq 1 ]   # the second map is read and checked like the others
  assert_one_error_line
  [[ "$output" == *nan.mrc* ]]
  assert_no_file "$TMP/two.png"
  for ext in png svg; do
    run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/two.$ext" --plot-with "$TMP/s2.mrc" -q
    [ "$status" -eq 0 ]
  done
  head -c 8 "$TMP/two.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a"
  grep -q "<svg" "$TMP/two.svg"
  ! cmp -s "$TMP/one.png" "$TMP/two.png"   # the second curve and the legend are drawn
  # the reported figures are MAP1's alone, with or without the second curve
  [ "$(fsc-eval -q --json "$TMP/s1.mrc" "$TMP/s2.mrc" | grep fsc_0143)" = \
    "$(fsc-eval -q --json "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/three.png" --plot-with "$TMP/s2.mrc" | grep fsc_0143)" ]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot-with "$TMP/s2.mrc"
  [ "$status" -eq 2 ]
  [[ "$output" == *"--plot-with needs --plot"* ]]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --plot "$TMP/bad.png" --plot-with "$TMP/other.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *other.mrc* ]]
  assert_no_file "$TMP/bad.png"
}

@test "fsc-eval: bad input gives one line and the right status" {
  require_py_module mrcfile
  make_synthetic
  run fsc-eval "$TMP/s1.mrc" "$TMP/missing.mrc" --tsv "$TMP/o.tsv"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *missing.mrc* ]]; assert_no_file "$TMP/o.tsv"
  run fsc-eval "$TMP/s1.mrc" "$TMP/other.mrc" --tsv "$TMP/o.tsv"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *other.mrc* ]]; assert_no_file "$TMP/o.tsv"
  run fsc-eval "$TMP/s1.mrc" "$TMP/nan.mrc" --tsv "$TMP/o.tsv"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *nan.mrc* ]]; assert_no_file "$TMP/o.tsv"
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --mask "$TMP/other.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *other.mrc* ]]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --thresholds 0.143x
  [ "$status" -eq 2 ]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --seed 3q
  [ "$status" -eq 2 ]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --thresholds 1.5
  [ "$status" -eq 2 ]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --no-such-flag
  [ "$status" -eq 2 ]
  run fsc-eval "$TMP/s1.mrc"
  [ "$status" -eq 2 ]
  run fsc-eval "$TMP/s1.mrc" "$TMP/s2.mrc" --randomize-at 10
  [ "$status" -eq 2 ]
  printf 'not a map at all' > "$TMP/junk.mrc"
  run fsc-eval "$TMP/s1.mrc" "$TMP/junk.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; [[ "$output" == *junk.mrc* ]]
}

@test "fsc-eval: a real non-cubic map (EMD-1461 crop, 75x80x96) = numpy" {
  require_data real_maps_nomodel/emd_1461_cropped_dmm.mrc
  require_py_module mrcfile
  FSC_REF halves "$DATA/real_maps_nomodel/emd_1461_cropped_dmm.mrc" "$TMP/a.mrc" "$TMP/b.mrc" --noise 1.0
  FSC_REF mask "$TMP/a.mrc" "$TMP/m.mrc" --radius 30 --edge 5
  run fsc-eval "$TMP/a.mrc" "$TMP/b.mrc" --mask "$TMP/m.mrc" --tsv "$TMP/c.tsv" --plot "$TMP/c.svg"
  echo "$output"
  [ "$status" -eq 0 ]
  run FSC_REF check "$TMP/a.mrc" "$TMP/b.mrc" "$TMP/c.tsv" --mask "$TMP/m.mrc" --tol 1e-5
  echo "$output"; [ "$status" -eq 0 ]
}

@test "fsc-eval --model: map-versus-model metrics (EMD-5168 with 3MFP)" {
  require_data tempy_emd5168_actin/3MFP.pdb
  run fsc-eval "$DATA/tempy_emd5168_actin/emd_5168.map" --model "$DATA/tempy_emd5168_actin/3MFP.pdb" --res 6 --json
  [ "$status" -eq 0 ]
  echo "$output" | "$PY" -c "import json,sys; j=json.load(sys.stdin); assert 'fsc_0143' in j and 'fsc_05' in j and 0 < j['cc_mask'] <= 1, j"
  run fsc-eval "$DATA/tempy_emd5168_actin/emd_5168.map" --model "$DATA/tempy_emd5168_actin/3MFP.pdb"
  [ "$status" -eq 2 ]
  run fsc-eval "$DATA/tempy_emd5168_actin/emd_5168.map" "$DATA/tempy_emd5168_actin/emd_5168.map" --model "$DATA/tempy_emd5168_actin/3MFP.pdb" --res 6
  [ "$status" -eq 2 ]
}
