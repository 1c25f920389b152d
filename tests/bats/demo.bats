#!/usr/bin/env bats
# The demo (scripts/demo) end to end on a tiny case — a small Debian-shipped model, tiny
# untrained weights, no real map — and its evaluation step (scripts/demo-eval): the table's
# FSC figures against an independent numpy FSC (tests/ref/fsc_ref.py), its model figures
# against fsc-eval --model, the plot with both curves, bad input.
load helpers
bats_require_minimum_version 1.5.0

PDBDIR=/usr/share/doc/python-biopython-doc/Tests/PDB
TOP="$BATS_TEST_DIRNAME/../.."

need() {
  local t
  for t in model-map vol-degrade lvm-apply lvm-model fsc-eval vol-info; do
    [ -x "$CRYO_BIN/$t" ] || skip "$t is not built"
  done
  command -v jq >/dev/null || skip "jq not installed"
  [ -f "$PDBDIR/1A8O.pdb.gz" ] || skip "python-biopython-doc not installed"
  lvm-model init --task sharpen -c width=8,levels=2,depth=1,head_dim=4 -o "$TMP/w.safetensors" 2>/dev/null
}

@test "demo: simulate, degrade, sharpen, table before and after with both FSC curves (tiny case)" {
  need
  run env CRYO_BIN="$CRYO_BIN" DEMO_OUT="$TMP/demo" DEMO_MODEL="$PDBDIR/1A8O.pdb.gz" DEMO_RES=4 \
    DEMO_WEIGHTS="$TMP/w.safetensors" DEMO_REAL=0 bash "$TOP/scripts/demo"
  echo "$output"
  [ "$status" -eq 0 ]
  for f in clean experimental sharpened; do [ -s "$TMP/demo/$f.mrc" ]; done
  head -c 8 "$TMP/demo/fsc.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a"
  grep -q "<svg" "$TMP/demo/fsc.svg"
  # header, separator, input and processed rows, printed at the end
  [ "$(grep -c '^|' "$TMP/demo/table.md")" -eq 4 ]
  [[ "$output" == *"| simulated | input | experimental.mrc |"*"| simulated | processed | sharpened.mrc |"* ]]
  # the sharpened map keeps the input's grid
  [ "$(vol-info --no-stats "$TMP/demo/sharpened.mrc" | sed -n 2,4p)" = "$(vol-info --no-stats "$TMP/demo/experimental.mrc" | sed -n 2,4p)" ]
}

@test "demo-eval: FSC figures equal numpy's, model figures equal fsc-eval --model's; the truth itself reaches the last shell" {
  need
  require_py_module mrcfile
  m="$PDBDIR/1A8O.pdb.gz"
  model-map -q --res 4 --apix 1.5 "$m" -o "$TMP/truth.mrc"
  vol-degrade -q --seed 3 --bfactor 80 --snr 1 "$TMP/truth.mrc" -o "$TMP/in.mrc"
  run "$TOP/scripts/demo-eval" "$TMP/ev" "$TMP/truth.mrc" "$m" 4 tiny "$TMP/in.mrc" "$TMP/truth.mrc"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c '^|' <<<"$output")" -eq 4 ]
  [ -s "$TMP/ev/tiny-fsc.png" ] && [ -s "$TMP/ev/tiny-fsc.svg" ]
  [ -z "$(find "$TMP/ev" -name '.demo-eval.*')" ]
  "$PY" - "$TMP" <<'PY'
import csv, sys
import fsc_ref
d = sys.argv[1]
rows = {r["version"]: r for r in csv.DictReader(open(f"{d}/ev/tiny-table.tsv"), delimiter="\t")}
truth, apix = fsc_ref.read(f"{d}/truth.mrc")
for v, f in (("input", "in.mrc"), ("processed", "truth.mrc")):
    a, _ = fsc_ref.read(f"{d}/{f}")
    c, s = fsc_ref.fsc(a, truth, apix)
    for t, col in ((0.143, "FSC-0.143 vs truth (Å)"), (0.5, "FSC-0.5 vs truth (Å)")):
        want, got = fsc_ref.resolution(s, c, t), float(rows[v][col])
        print(v, t, want, got)
        assert abs(want - got) < 0.006, (v, t, want, got)
# the truth against itself never falls below the thresholds: the last shell (Nyquist, 2 x 1.5 Å
# rounded to whole shells of the longest edge)
assert abs(float(rows["processed"]["FSC-0.143 vs truth (Å)"]) - 3.0) < 0.1
PY
  want=$(fsc-eval -q --json "$TMP/in.mrc" --model "$m" --res 4 | jq -r '[.cc_box, .cc_mask, .q_score] | map(. * 1000 | round / 1000) | map(tostring) | join(" ")')
  got=$(awk -F'\t' '$2 == "input" {print $6, $7, $8}' "$TMP/ev/tiny-table.tsv")
  [ "$want" = "$got" ]
}

@test "demo-eval: a missing map gives one line, status 1 and no table" {
  need
  run "$TOP/scripts/demo-eval" "$TMP/ev" "$TMP/none.mrc" "$PDBDIR/1A8O.pdb.gz" 4 x "$TMP/none.mrc" "$TMP/none.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *none.mrc* ]]
  [ ! -e "$TMP/ev/x-table.md" ]
  run "$TOP/scripts/demo-eval" "$TMP/ev" only-three args
  [ "$status" -eq 2 ]
}
