#!/usr/bin/env bats
# pipelines/pairs.mk on two small real models from Debian's python-biopython-doc: three
# pair streams per model, 2-channel crops of the asked size, input != target, reruns
# reproduce, a missing model folder is refused.
load helpers
bats_require_minimum_version 1.5.0

PDBDIR=/usr/share/doc/python-biopython-doc/Tests/PDB

need_tools() {
  local t
  for t in model-map vol-degrade mrc-resample mrc-normalize vol-patch; do
    [ -x "$CRYO_BIN/$t" ] || skip "$t is not built"
  done
  [ -f "$PDBDIR/4ZHL.cif.gz" ] && [ -f "$PDBDIR/1A8O.pdb.gz" ] || skip "python-biopython-doc not installed"
  require_py_module zstandard
}

@test "pairs.mk makes sharpen, superres and wedge pairs for two models" {
  need_tools
  mkdir -p "$TMP/models"
  ln -s "$PDBDIR/4ZHL.cif.gz" "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  run make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" \
    OUT="$TMP/out" PATCHES=3 SIZE=24 -j2
  echo "$output"
  [ "$status" -eq 0 ]
  for t in sharpen superres wedge; do
    for m in 4ZHL 1A8O; do [ -s "$TMP/out/$t/$m.cvol" ]; done
  done
  "$PY" - "$TMP/out" <<'PY'
import sys, os, numpy as np, cvol
for t in ("sharpen", "superres", "wedge"):
    for m in ("4ZHL", "1A8O"):
        fr = cvol.read_stream(os.path.join(sys.argv[1], t, m + ".cvol"))
        assert len(fr) == 3, (t, m, len(fr))
        for f in fr:
            d = f["data"]
            assert d.shape == (2, 24, 24, 24), d.shape
            assert np.all(np.isfinite(d))
            assert abs(f["apix"][0] - 1.0) < 1e-6, f["apix"]
            assert not np.allclose(d[0], d[1]), (t, m)
        # the target is a normalised map: within [0,1]
        assert all(f["data"][1].min() >= -1e-6 and f["data"][1].max() <= 1 + 1e-6 for f in fr)
PY
  # a rerun after removing one product reproduces it exactly
  cp "$TMP/out/wedge/4ZHL.cvol" "$TMP/keep.cvol"
  rm "$TMP/out/wedge/4ZHL.cvol"
  make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" \
    OUT="$TMP/out" PATCHES=3 SIZE=24 >/dev/null
  cmp "$TMP/keep.cvol" "$TMP/out/wedge/4ZHL.cvol"
}

@test "pairs.mk refuses an empty model folder" {
  mkdir -p "$TMP/empty"
  run make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/empty" OUT="$TMP/out"
  [ "$status" -ne 0 ]
  [[ "$output" == *"no models"* ]]
}
