#!/usr/bin/env bats
# pipelines/ablation.mk end to end on a tiny case (seconds): JEPA and MAE pre-training of a
# tiny network on one Debian-shipped model, then the same fine-tuning from each and from
# scratch, with MSE+HistKL and MSE alone, validated on another model -> one table.
load helpers
bats_require_minimum_version 1.5.0

PDBDIR=/usr/share/doc/python-biopython-doc/Tests/PDB
MK="$BATS_TEST_DIRNAME/../../pipelines/ablation.mk"
TINY="SIZE=24 PATCHES=3 VAL_PATCHES=2 PRE_STEPS=2 STEPS=3 BATCH=2 VAL_EVERY=3 THREADS=1
  CONFIG=width=8,levels=2,depth=1,head_dim=4 PREDICTOR=embed=48,depth=1,head_dim=16"

need() {
  local t
  for t in model-map vol-degrade mrc-resample mrc-normalize vol-patch vol-convert jepa-train; do
    [ -x "$CRYO_BIN/$t" ] || skip "$t is not built"
  done
  [ -f "$PDBDIR/1A8O.pdb.gz" ] && [ -f "$PDBDIR/4ZHL.cif.gz" ] || skip "python-biopython-doc not installed"
  mkdir -p "$TMP/models" "$TMP/val"
  ln -s "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  ln -s "$PDBDIR/4ZHL.cif.gz" "$TMP/val/"
}

@test "ablation.mk: five variants on the same pairs, one table of finite validation figures; rerun trains nothing" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" MODELS="$TMP/models" VAL_MODELS="$TMP/val" OUT="$TMP/ab" $TINY -j2
  echo "$output"
  [ "$status" -eq 0 ]
  cat "$TMP/ab/ablation.md"
  [ "$(cut -f1-3 "$TMP/ab/ablation.tsv" | tr '\t\n' ',,')" = \
    "variant,pretraining,alpha,jepa-histkl,jepa,0.5,mae-histkl,mae,0.5,scratch-histkl,scratch,0.5,jepa-mse,jepa,1,scratch-mse,scratch,1," ]
  [ "$(grep -c '^|' "$TMP/ab/ablation.md")" -eq 7 ]
  # every figure is a finite number, after the same number of steps, and the row is the
  # run's last validation (log.tsv's last row)
  "$PY" - "$TMP/ab" <<'PY'
import csv, math, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/ablation.tsv"), delimiter="\t"))
assert len(rows) == 5
for r in rows:
    for k in ("val_loss", "val_fsc0143_A", "val_cc_mask", "best_val_loss"):
        assert math.isfinite(float(r[k])), (r["variant"], k, r[k])
    assert r["steps"] == "3" and r["best_step"] == "3", r
    log = list(csv.DictReader(open(f"{d}/ft-{r['variant']}/sharpen/run/log.tsv"), delimiter="\t"))
    assert float(log[-1]["val_loss"]) == float(r["val_loss"]), (r, log[-1])
    assert float(log[-1]["val_cc_mask"]) == float(r["val_cc_mask"])
PY
  # the same data: every variant trained and validated on identical pairs
  for v in mae-histkl scratch-histkl jepa-mse scratch-mse; do
    cmp "$TMP/ab/ft-jepa-histkl/pairs/sharpen/1A8O.cvol" "$TMP/ab/ft-$v/pairs/sharpen/1A8O.cvol"
    cmp "$TMP/ab/ft-jepa-histkl/val-sharpen.cvol" "$TMP/ab/ft-$v/val-sharpen.cvol"
  done
  # the variants differ where they should: pre-training, loss
  grep -q -- '--objective mae' "$TMP/ab/pre-mae/pretrain.args"
  grep -q -- '--from-scratch' "$TMP/ab/ft-scratch-mse/sharpen.args"
  grep -q -- '--alpha 1 ' "$TMP/ab/ft-jepa-mse/sharpen.args"
  grep -q -- '--alpha 0.5 ' "$TMP/ab/ft-mae-histkl/sharpen.args"
  grep -q -- "--init $TMP/ab/pre-mae/pretrained.safetensors" "$TMP/ab/ft-mae-histkl/sharpen.args"
  run make -f "$MK" BIN="$CRYO_BIN" MODELS="$TMP/models" VAL_MODELS="$TMP/val" OUT="$TMP/ab" $TINY -j2
  [ "$status" -eq 0 ]
  [[ "$output" != *"jepa-train -q"* && "$output" != *ablation.tsv.tmp* ]]
}

@test "ablation.mk refuses missing MODELS or VAL_MODELS and an unknown TASK" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" VAL_MODELS="$TMP/val" OUT="$TMP/ab"
  [ "$status" -ne 0 ]
  [[ "$output" == *"give MODELS"* ]]
  run make -f "$MK" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/ab"
  [ "$status" -ne 0 ]
  [[ "$output" == *"give VAL_MODELS"* ]]
  run make -f "$MK" BIN="$CRYO_BIN" MODELS="$TMP/models" VAL_MODELS="$TMP/val" TASK=denoise OUT="$TMP/ab"
  [ "$status" -ne 0 ]
  [[ "$output" == *"TASK=denoise"* ]]
  [ ! -e "$TMP/ab/ablation.tsv" ]
}
