#!/usr/bin/env bats
# pipelines/finetune.mk end to end on a tiny case (seconds): simulated pairs of one small
# Debian-shipped model (another held out for validation) -> a few fine-tuning steps per task
# from a tiny pretrain.mk checkpoint -> float16 weights that carry their task and load;
# real map + model pairs (molmap target on the map's grid); reruns; bad inputs.
load helpers
bats_require_minimum_version 1.5.0

PDBDIR=/usr/share/doc/python-biopython-doc/Tests/PDB
HERE_MK="$BATS_TEST_DIRNAME/../../pipelines"
NET="CONFIG=width=8,levels=2,depth=1,head_dim=4"
TINY="SIZE=24 PATCHES=3 VAL_PATCHES=2 STEPS=3 BATCH=2 VAL_EVERY=3 THREADS=1 $NET"

need() {
  local t
  for t in model-map vol-degrade mrc-resample mrc-normalize vol-patch vol-convert jepa-train lvm-model; do
    [ -x "$CRYO_BIN/$t" ] || skip "$t is not built"
  done
  [ -f "$PDBDIR/1A8O.pdb.gz" ] && [ -f "$PDBDIR/4ZHL.cif.gz" ] || skip "python-biopython-doc not installed"
  require_py_module zstandard
  mkdir -p "$TMP/models" "$TMP/val"
  ln -s "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  ln -s "$PDBDIR/4ZHL.cif.gz" "$TMP/val/"
}

header() {  # KEY of the safetensors header: a metadata value, or "dtypes" (the set of dtypes)
  "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); m = h.pop('__metadata__', {})
print(",".join(sorted({v["dtype"] for v in h.values()})) if sys.argv[2] == "dtypes" else m.get(sys.argv[2], ''))
PY
}

@test "finetune.mk: three tasks from a pretrain.mk checkpoint, validated on a held-out model, f16 weights; rerun is a no-op" {
  need
  run make -f "$HERE_MK/pretrain.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/pre" SIZE=24 PATCHES=3 \
    STEPS=2 BATCH=2 THREADS=1 $NET PREDICTOR=embed=48,depth=1,head_dim=16
  [ "$status" -eq 0 ]
  run make -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" VAL_MODELS="$TMP/val" \
    PRE="$TMP/pre/pretrained.safetensors" OUT="$TMP/ft" $TINY -j2
  echo "$output"
  [ "$status" -eq 0 ]
  for t in sharpen superres wedge; do
    [ "$(header "$TMP/ft/$t.safetensors" task)" = "$t" ]
    [ "$(header "$TMP/ft/$t.safetensors" dtypes)" = F16 ]
    [[ "$(header "$TMP/ft/$t.safetensors" provenance)" == *"--init"*pretrained.safetensors* ]]
    run lvm-model info "$TMP/ft/$t.safetensors"
    [ "$status" -eq 0 ]
    # validation ran on the held-out model's pairs: row 0 and the last step have a val loss
    awk -F'\t' 'NR > 1 && $6 != "-" {n++} END {exit !(n >= 2)}' "$TMP/ft/$t/run/log.tsv"
    [ ! -e "$TMP/ft/$t/run.tmp" ]
  done
  # the validation pairs are the held-out model's, not the training model's
  [ -s "$TMP/ft/valpairs/sharpen/4ZHL.cvol" ] && [ ! -e "$TMP/ft/pairs/sharpen/4ZHL.cvol" ]
  run make -n -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" VAL_MODELS="$TMP/val" \
    PRE="$TMP/pre/pretrained.safetensors" OUT="$TMP/ft" $TINY
  [ "$status" -eq 0 ]
  [[ "$output" != *jepa-train* && "$output" != *vol-degrade* ]]
  # one task's option changed: only that task trains again
  run make -n -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" VAL_MODELS="$TMP/val" \
    PRE="$TMP/pre/pretrained.safetensors" OUT="$TMP/ft" $TINY TASKS=wedge ALPHA=1
  [[ "$output" == *"--task wedge"*"--alpha 1"* && "$output" != *"--task sharpen"* ]]
}

@test "finetune.mk REAL: a map and its model -> molmap target on the map's grid -> sharpen weights" {
  need
  require_data emringer_axisorder/test_map.ccp4
  require_py_module mrcfile
  printf '# map model resolution\n%s %s 3\n' "$DATA/emringer_axisorder/test_map.ccp4" \
    "$DATA/emringer_axisorder/test_model.pdb" > "$TMP/real.txt"
  run make -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" REAL="$TMP/real.txt" OUT="$TMP/r" TASKS=sharpen \
    SIZE=16 STEPS=2 BATCH=2 THREADS=1 $NET
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(header "$TMP/r/sharpen.safetensors" task)" = sharpen ]
  # the target shares the map's grid (voxel size, shape, origin) as the loader needs
  "$PY" - "$DATA/emringer_axisorder/test_map.ccp4" "$TMP/r/real/test_map-target.mrc" <<'PY'
import sys, numpy as np, mrcfile
a, b = mrcfile.open(sys.argv[1], permissive=True), mrcfile.open(sys.argv[2])
# the map's axis order is 3 2 1; compare the geometry in x y z
na = [int(a.header[k]) for k in ("nx", "ny", "nz")]; order = [int(a.header[k]) for k in ("mapc", "mapr", "maps")]
sa = [0, 0, 0]
for i, ax in enumerate(order): sa[ax - 1] = na[i]
assert sa == [int(b.header.nx), int(b.header.ny), int(b.header.nz)], (sa, b.header.nx, b.header.ny, b.header.nz)
assert np.allclose([a.voxel_size.x, a.voxel_size.y, a.voxel_size.z], [b.voxel_size.x, b.voxel_size.y, b.voxel_size.z], atol=1e-4)
assert b.data.max() > 0
PY
}

@test "finetune.mk refuses an unknown task and no inputs; a failed run leaves no weights" {
  need
  run make -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/x" TASKS=denoise
  [ "$status" -ne 0 ] && [[ "$output" == *"unknown task"* ]]
  run make -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" MODELS="$TMP/nothing" OUT="$TMP/x"
  [ "$status" -ne 0 ] && [[ "$output" == *"no models"* ]]
  # a pre-trained checkpoint of another network: jepa-train refuses, no weights are written
  run make -f "$HERE_MK/finetune.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/y" TASKS=sharpen \
    PRE=/dev/null $TINY
  [ "$status" -ne 0 ]
  assert_no_file "$TMP/y/sharpen.safetensors"
}
