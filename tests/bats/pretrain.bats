#!/usr/bin/env bats
# pipelines/pretrain.mk end to end on a tiny case (seconds): a synthetic map and a small
# Debian-shipped model -> prepared 1 Å crops -> a few JEPA (and MAE) steps of a tiny network;
# a rerun does nothing, a changed option retrains without re-preparing, bad inputs refused.
load helpers
bats_require_minimum_version 1.5.0

PDBDIR=/usr/share/doc/python-biopython-doc/Tests/PDB
MK="$BATS_TEST_DIRNAME/../../pipelines/pretrain.mk"
TINY="SIZE=24 PATCHES=3 STEPS=3 BATCH=2 THREADS=1 CONFIG=width=8,levels=2,depth=1,head_dim=4 PREDICTOR=embed=48,depth=1,head_dim=16"

need() {
  local t
  for t in model-map mrc-resample mrc-normalize vol-patch jepa-train; do
    [ -x "$CRYO_BIN/$t" ] || skip "$t is not built"
  done
  [ -f "$PDBDIR/1A8O.pdb.gz" ] || skip "python-biopython-doc not installed"
  require_py_module mrcfile
  require_py_module zstandard
  mkdir -p "$TMP/maps" "$TMP/models"
  ln -s "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  # a smooth random map at 1.5 Å, 30^3 (45 Å: room for 24^3 crops at 1 Å)
  "$PY" - "$TMP/maps/exp.mrc" <<'PY'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(3)
a = rng.standard_normal((30, 30, 30))
k = np.sqrt(sum(g**2 for g in np.meshgrid(*[np.fft.fftfreq(30)] * 2, np.fft.rfftfreq(30), indexing="ij")))
a = np.fft.irfftn(np.fft.rfftn(a) * np.exp(-(k * 8) ** 2), s=a.shape)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a.astype(np.float32)); m.voxel_size = 1.5
PY
}

meta() {
  "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n]).get('__metadata__', {}).get(sys.argv[2], ''))
PY
}

@test "pretrain.mk: maps and models -> prepared crops -> JEPA checkpoint and backbone; rerun is a no-op" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" MAPS="$TMP/maps" MODELS="$TMP/models" OUT="$TMP/pre" $TINY -j2
  echo "$output"
  [ "$status" -eq 0 ]
  [ -s "$TMP/pre/pretrained.safetensors" ] && [ -s "$TMP/pre/backbone.safetensors" ]
  [ ! -e "$TMP/pre/run.tmp" ]
  "$PY" - "$TMP/pre" <<'PY'
import sys, os, numpy as np, cvol
d = sys.argv[1]
for n in ("map-exp", "model-1A8O"):
    fr = cvol.read_stream(os.path.join(d, "prepared", n + ".cvol"))
    assert len(fr) == 3, (n, len(fr))
    for f in fr:
        assert f["data"].shape[-3:] == (24, 24, 24), f["data"].shape
        assert abs(f["apix"][0] - 1.0) < 1e-6 and np.all(np.isfinite(f["data"]))
rows = [l.split("\t") for l in open(os.path.join(d, "run", "log.tsv")).read().split("\n")[1:] if l]
assert [int(r[0]) for r in rows] == [1, 2, 3], rows
assert all(np.isfinite(float(r[4])) and float(r[4]) > 0 for r in rows), rows
PY
  meta "$TMP/pre/pretrained.safetensors" provenance | "$PY" -c 'import json,sys; p=json.load(sys.stdin); assert p["steps"]==3 and "jepa" in p["command"], p'
  run lvm-model info "$TMP/pre/backbone.safetensors"
  [ "$status" -eq 0 ]
  # nothing changed: nothing to do
  run make -n -f "$MK" BIN="$CRYO_BIN" MAPS="$TMP/maps" MODELS="$TMP/models" OUT="$TMP/pre" $TINY
  [ "$status" -eq 0 ]
  [[ "$output" != *jepa-train* && "$output" != *vol-patch* ]]
  # another step count retrains, without preparing the crops again
  run make -n -f "$MK" BIN="$CRYO_BIN" MAPS="$TMP/maps" MODELS="$TMP/models" OUT="$TMP/pre" $TINY STEPS=4
  [[ "$output" == *"jepa-train"*"--steps 4"* ]]
  [[ "$output" != *vol-patch* ]]
}

@test "pretrain.mk OBJECTIVE=mae trains the MAE baseline; models only" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/mae" $TINY OBJECTIVE=mae
  echo "$output"
  [ "$status" -eq 0 ]
  [ -s "$TMP/mae/pretrained.safetensors" ]
  [[ "$(meta "$TMP/mae/pretrained.safetensors" provenance)" == *mae* ]]
}

@test "pretrain.mk refuses an empty input and leaves no checkpoint when training fails" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" MAPS="$TMP/none" OUT="$TMP/x"
  [ "$status" -ne 0 ]
  [[ "$output" == *"no maps"* ]]
  # a model too small for the crop size: vol-patch refuses, nothing is left behind
  run make -f "$MK" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/big" $TINY SIZE=512
  [ "$status" -ne 0 ]
  assert_no_file "$TMP/big/prepared/model-1A8O.cvol"
  assert_no_file "$TMP/big/pretrained.safetensors"
}
