#!/usr/bin/env bats
# The weights in share/models: float16, the metadata lvm-apply reads, provenance that shows
# the held-out models (7DDO, the demo's input, and 4CUP) were in no training input; and
# scripts/weights-meta, which records that provenance without touching the tensors; and, when
# ../shared/data is present, what they do to a real map and a real tomogram.
load helpers
bats_require_minimum_version 1.5.0

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

header() {  # FILE KEY: a metadata value, or "dtypes" (the set of tensor dtypes)
  "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); m = h.pop('__metadata__', {})
print(",".join(sorted({v["dtype"] for v in h.values()})) if sys.argv[2] == "dtypes" else m.get(sys.argv[2], ''))
PY
}

@test "shipped weights: float16, task metadata, trained without the held-out models 7DDO and 4CUP" {
  for t in sharpen superres wedge; do
    w="$ROOT/share/models/$t.safetensors"
    [ -f "$w" ] || skip "no shipped $t weights"
    [ "$(header "$w" dtypes)" = F16 ]
    [ "$(header "$w" task)" = "$t" ]
    [ "$(header "$w" apix)" = 1 ]
    [ "$(header "$w" normalize)" = "quantile:0.01:0.99" ]
    run lvm-model info "$w"
    [ "$status" -eq 0 ]
    header "$w" provenance | "$PY" -c '
import json, sys
p = json.load(sys.stdin)
assert "--task" in p["command"] and "--init" in p["command"], p["command"]
assert p["inputs"] and "7DDO" not in p["inputs"] and "4CUP" not in p["inputs"], p["inputs"]
assert "7DDO" not in p["command"] and "4CUP" not in p["command"]'
    tr=$(header "$w" training)
    [[ "$tr" == *heldout* ]]
    printf '%s' "$tr" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)
assert set(t["heldout"]) >= {"7DDO", "4CUP"}, t
for m in t["pretrain_inputs"] + t["finetune_models"]:
    assert "7DDO" not in m and "4CUP" not in m, m'
  done
}

@test "weights-meta: adds keys, keeps the tensors byte for byte, refuses loader keys and broken files" {
  lvm-model init -q --config width=8,levels=2,depth=1,head_dim=4 --task wedge -o "$TMP/w.safetensors"
  cp "$TMP/w.safetensors" "$TMP/orig.safetensors"
  "$ROOT/scripts/weights-meta" "$TMP/w.safetensors" 'training={"heldout":["X"]}' note=hello
  [ "$(header "$TMP/w.safetensors" note)" = hello ]
  [ "$(header "$TMP/w.safetensors" task)" = wedge ]
  "$PY" - "$TMP/orig.safetensors" "$TMP/w.safetensors" <<'PY'
import sys, json, struct
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__')
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}, n
a, na = load(sys.argv[1]); b, nb = load(sys.argv[2])
assert a == b and len(a) > 10 and nb % 8 == 0
PY
  run lvm-model info "$TMP/w.safetensors"
  [ "$status" -eq 0 ]
  run "$ROOT/scripts/weights-meta" "$TMP/w.safetensors" task=sharpen
  [ "$status" -eq 1 ]; assert_one_error_line
  [[ "$output" == *"w.safetensors"*"'task'"* ]]
  [ "$(header "$TMP/w.safetensors" task)" = wedge ]
  printf 'xx' > "$TMP/bad.safetensors"
  run "$ROOT/scripts/weights-meta" "$TMP/bad.safetensors" a=b
  [ "$status" -eq 1 ]; assert_one_error_line
  [[ "$output" == *"bad.safetensors"* ]]
  assert_no_file "$TMP/bad.safetensors.tmp"
}

@test "shipped weights on real data (skips without ../shared/data): sharpen keeps EMD-20026's CC_mask and Q-score within 0.05 and raises CC_box; wedge fills a real tomogram's missing wedge at its own voxels" {
  require_data apoferritin_emd20026/emd20026_prot.mrc
  require_data tomo_microtubule/13pf_MT.tif
  require_py_module mrcfile
  local d="$DATA/apoferritin_emd20026"
  lvm-apply -q --task sharpen "$d/emd20026_prot.mrc" -o "$TMP/sharp.mrc"
  fsc-eval -q --json "$d/emd20026_prot.mrc" --model "$d/3ajo_fitted_refined.pdb" --res 1.75 > "$TMP/in.json"
  fsc-eval -q --json "$TMP/sharp.mrc" --model "$d/3ajo_fitted_refined.pdb" --res 1.75 > "$TMP/out.json"
  "$PY" - "$TMP/in.json" "$TMP/out.json" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(a["cc_box"], b["cc_box"], a["cc_mask"], b["cc_mask"], a["q_score"], b["q_score"])
assert b["cc_box"] > a["cc_box"], "sharpen lowered CC_box"
assert b["cc_mask"] > a["cc_mask"] - 0.05 and b["q_score"] > a["q_score"] - 0.05, "sharpen damaged a good real map"
PYEOF
  # the tomogram: 10.52 A voxels, tilt axis y, beam along z (the TIFF's page axis)
  vol-convert -q "$DATA/tomo_microtubule/13pf_MT.tif" -o "$TMP/tomo.mrc"
  lvm-apply -q --task wedge --apix native "$TMP/tomo.mrc" -o "$TMP/filled.mrc"
  "$PY" - "$TMP/tomo.mrc" "$TMP/filled.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
def wedge_power(path):   # Fourier power in 0.03-0.25 1/voxel inside the +-60 deg wedge about y
    v = mrcfile.open(path, permissive=True).data.astype(float); v -= v.mean()
    F = np.abs(np.fft.rfftn(v)) ** 2
    kz = np.fft.fftfreq(v.shape[0])[:, None, None]; ky = np.fft.fftfreq(v.shape[1])[None, :, None]
    kx = np.fft.rfftfreq(v.shape[2])[None, None, :]
    k = np.sqrt(kx ** 2 + ky ** 2 + kz ** 2); band = (k > 0.03) & (k < 0.25)
    miss = (np.abs(kz) > np.tan(np.radians(60)) * np.abs(kx)) & band
    return F[miss].sum() / F[band].sum()
a, b = wedge_power(sys.argv[1]), wedge_power(sys.argv[2])
print(a, b)
assert a < 0.15 and b > 2 * a, (a, b)
PYEOF
}
