#!/usr/bin/env bats
# pipelines/evaluate.mk end to end on a tiny case: a small real map and its model (from
# ../shared/data when present, else a map simulated from a Debian-shipped model) -> input,
# relion --adhoc_bfac, lvm-apply (tiny test weights) -> one table (TSV, Markdown) and plots.
load helpers
bats_require_minimum_version 1.5.0

PDBDIR=/usr/share/doc/python-biopython-doc/Tests/PDB
MK="$BATS_TEST_DIRNAME/../../pipelines/evaluate.mk"

need() {
  local t
  for t in vol-convert lvm-apply lvm-model fsc-eval model-map vol-degrade; do
    [ -x "$CRYO_BIN/$t" ] || skip "$t is not built"
  done
  command -v relion_postprocess >/dev/null || skip "relion not installed"
  command -v jq >/dev/null || skip "jq not installed"
  lvm-model init --task sharpen -c width=8,levels=2,depth=1,head_dim=4 -o "$TMP/w.safetensors" 2>/dev/null
  if [ -e "$DATA/emringer_axisorder/test_map.ccp4" ]; then
    printf '# map model resolution\n%s %s 3\n' "$DATA/emringer_axisorder/test_map.ccp4" \
      "$DATA/emringer_axisorder/test_model.pdb" > "$TMP/list.txt"
    NAME=test_map
  else
    [ -f "$PDBDIR/1A8O.pdb.gz" ] || skip "neither shared data nor python-biopython-doc"
    model-map -q --res 4 --apix 1.3 "$PDBDIR/1A8O.pdb.gz" | vol-degrade -q --bfactor 100 --snr 2 --seed 3 -o "$TMP/sim.mrc"
    printf 'sim.mrc %s 4\n' "$PDBDIR/1A8O.pdb.gz" > "$TMP/list.txt"
    NAME=sim
  fi
}

@test "evaluate.mk: one table row per map and method, figures equal fsc-eval's, plots; rerun is a no-op" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" LIST="$TMP/list.txt" OUT="$TMP/ev" WEIGHTS="$TMP/w.safetensors" \
    BFACTORS="50 100" THREADS=1 -j2
  echo "$output"
  [ "$status" -eq 0 ]
  cat "$TMP/ev/table.md"
  # header + input, 2 B-factors, lvm
  [ "$(wc -l < "$TMP/ev/table.tsv")" -eq 5 ]
  [ "$(cut -f2 "$TMP/ev/table.tsv" | tail -n +2 | tr '\n' ' ')" = "input bfac-50 bfac-100 lvm " ]
  [ "$(grep -c '^|' "$TMP/ev/table.md")" -eq 6 ]
  for m in input bfac-50 bfac-100 lvm; do
    [ -s "$TMP/ev/$NAME/$m-fsc.png" ] && [ -s "$TMP/ev/$NAME/$m-fsc.tsv" ]
  done
  # the input row is fsc-eval --model on the map itself
  model=$(awk '!/^#/ {print $2}' "$TMP/list.txt"); res=$(awk '!/^#/ {print $3}' "$TMP/list.txt")
  [[ "$model" = /* ]] || model="$TMP/$model"
  want=$(fsc-eval -q --model "$model" --res "$res" --json "$TMP/ev/$NAME/input.mrc" | jq -r '.cc_mask')
  got=$(awk -F'\t' '$2 == "input" {print $6}' "$TMP/ev/table.tsv")
  [ "$want" = "$got" ]
  # relion's ad hoc B-factor: below the low-pass, |F_B| / |F_input| = exp(B s^2 / 4) (numpy fit
  # of log amplitude ratio against s^2 over 0.03..0.2 1/Å; the slope gives B within 10 %)
  "$PY" - "$TMP/ev/$NAME" <<'PY'
import sys, numpy as np, mrcfile
d = sys.argv[1]
m0 = mrcfile.open(f"{d}/input.mrc"); a = m0.data.astype(float); ap = float(m0.voxel_size.x)
g = np.meshgrid(*[np.fft.fftfreq(n, ap) for n in a.shape[:2]], np.fft.rfftfreq(a.shape[2], ap), indexing="ij")
s2 = sum(x * x for x in g)
Fa = np.fft.rfftn(a)
for B in (50, 100):
    mb = mrcfile.open(f"{d}/bfac-{B}.mrc"); b = mb.data.astype(float)
    assert b.shape == a.shape
    # relion writes origin 0; evaluate.mk puts the input's origin and start back
    for k in ("origin", "nxstart", "nystart", "nzstart"):
        assert np.all(np.asarray(mb.header[k]) == np.asarray(m0.header[k])), (k, mb.header[k], m0.header[k])
    Fb = np.fft.rfftn(b)
    m = (s2 > 0.03 ** 2) & (s2 < 0.2 ** 2) & (np.abs(Fa) > 1e-6 * np.abs(Fa).max())
    fit = 4 * np.polyfit(s2[m], np.log(np.abs(Fb[m]) / np.abs(Fa[m])), 1)[0]
    print(f"B {B}: fitted {fit:.1f}")
    assert abs(fit - B) < 0.1 * B, (B, fit)
PY
  # the lvm-apply output has the input's grid
  run vol-info "$TMP/ev/$NAME/lvm.mrc"
  [[ "$output" == *"$(vol-info "$TMP/ev/$NAME/input.mrc" | grep 'frame 1' | cut -d, -f1 | sed 's/.*: //')"* ]]
  run make -n -f "$MK" BIN="$CRYO_BIN" LIST="$TMP/list.txt" OUT="$TMP/ev" WEIGHTS="$TMP/w.safetensors" BFACTORS="50 100"
  [[ "$output" != *fsc-eval* && "$output" != *relion* && "$output" != *lvm-apply* ]]
}

@test "evaluate.mk refuses a missing or empty LIST and a missing map; no table is left" {
  need
  run make -f "$MK" BIN="$CRYO_BIN" OUT="$TMP/ev"
  [ "$status" -ne 0 ] && [[ "$output" == *"LIST="* ]]
  : > "$TMP/empty.txt"
  run make -f "$MK" BIN="$CRYO_BIN" LIST="$TMP/empty.txt" OUT="$TMP/ev"
  [ "$status" -ne 0 ] && [[ "$output" == *"names no maps"* ]]
  printf 'nothere.mrc %s 3\n' "$PDBDIR/1A8O.pdb.gz" > "$TMP/bad.txt"
  run make -f "$MK" BIN="$CRYO_BIN" LIST="$TMP/bad.txt" OUT="$TMP/ev" WEIGHTS="$TMP/w.safetensors"
  [ "$status" -ne 0 ]
  assert_no_file "$TMP/ev/table.tsv"
}
