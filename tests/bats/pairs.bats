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
        # crops were redrawn to hold density (MIN_DENSITY 0.2, MIN_FRACTION 0.05)
        dense = [np.mean(f["data"][1] > 0.2) >= 0.05 for f in fr]
        assert sum(dense) >= 2, (t, m, dense)
PY
  # a rerun after removing one product reproduces it exactly
  cp "$TMP/out/wedge/4ZHL.cvol" "$TMP/keep.cvol"
  rm "$TMP/out/wedge/4ZHL.cvol"
  make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" \
    OUT="$TMP/out" PATCHES=3 SIZE=24 >/dev/null
  cmp "$TMP/keep.cvol" "$TMP/out/wedge/4ZHL.cvol"
}

@test "pairs.mk: the input channel is the degraded whole map normalised exactly as lvm-apply normalises it" {
  # The crops' input channel must be what lvm-apply feeds the network for the same degraded
  # map: its 0.01/0.99 quantiles (numpy) clipped to [0,1]; the target stays the normalised
  # clean map. lvm-apply's own normalisation is checked through its output (tiny random
  # weights, one whole-map pass) against numpy + the PyTorch network (tests/ref/apply_ref.py).
  need_tools
  require_py_module torch
  [ -x "$CRYO_BIN/lvm-apply" ] && [ -x "$CRYO_BIN/lvm-model" ] || skip "lvm-apply is not built"
  mkdir -p "$TMP/models"
  ln -s "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  run make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" \
    OUT="$TMP/out" PATCHES=3 SIZE=24 SEED=5 "$TMP/out/sharpen/1A8O.cvol" "$TMP/out/wedge/1A8O.cvol"
  echo "$output"
  [ "$status" -eq 0 ]
  # the degraded whole maps a user would hand to lvm-apply: same recipe and seed, no --pair
  seed=$(( 5 + $(printf '%s' 1A8O | cksum | cut -d' ' -f1) % 1000000 ))
  vol-degrade -q --seed $seed --local-res 3,6 --bfactor 80 --snr 0.5 --noise-shape shell \
    "$TMP/out/clean/1A8O.cvol" -o "$TMP/sharpen-in.mrc"
  vol-degrade -q --seed $seed --wedge 60 --snr 0.5 "$TMP/out/clean/1A8O.cvol" -o "$TMP/wedge-in.mrc"
  vol-convert -q "$TMP/out/clean/1A8O.cvol" -o "$TMP/clean.mrc"
  lvm-model init -q --config width=8,levels=2,depth=1,head_dim=4 --task sharpen -o "$TMP/w.safetensors"
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 0 "$TMP/sharpen-in.mrc" -o "$TMP/lvm.mrc"
  run "$PY" "$REF/apply_ref.py" check "$TMP/w.safetensors" "$TMP/sharpen-in.mrc" "$TMP/lvm.mrc" 0 0 1e-4
  echo "$output"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP" <<'PY'
import sys, os, numpy as np, mrcfile, cvol
d = sys.argv[1]
clean = np.array(mrcfile.open(os.path.join(d, "clean.mrc")).data, np.float64)
for task in ("sharpen", "wedge"):
    x = np.array(mrcfile.open(os.path.join(d, task + "-in.mrc")).data, np.float64)
    qlo, qhi = np.quantile(x, [0.01, 0.99])
    xn = np.clip((x - qlo) / (qhi - qlo), 0, 1)            # lvm-apply's input (apply_ref.py)
    qn = np.quantile(xn, [0.01, 0.99])  # ~0, ~1 (interpolated quantiles of a clipped map)
    assert np.allclose(qn, [0, 1], atol=1e-4), qn
    # the raw degraded map is NOT in [0,1]: the old pairs (no renormalisation) differed
    assert qlo < -0.01 or qhi > 1.01 or task == "wedge", (task, qlo, qhi)
    fr = cvol.read_stream(os.path.join(d, "out", task, "1A8O.cvol"))
    assert len(fr) == 3
    for f in fr:
        x0, y0, z0 = map(int, f["meta"]["patch.origin"].split(","))
        inp, tgt = f["data"][0], f["data"][1]
        sl = np.s_[z0:z0 + 24, y0:y0 + 24, x0:x0 + 24]
        e_in = np.abs(inp - xn[sl]).max()
        e_tg = np.abs(tgt - clean[sl]).max()
        print(task, (x0, y0, z0), "input vs lvm-apply normalisation", e_in, "target vs clean", e_tg)
        assert e_in < 2e-6, e_in
        assert e_tg < 1e-4, e_tg  # renormalising the clipped target: identity up to ~1e-5
        assert 0 <= inp.min() and inp.max() <= 1
PY
}

@test "pairs.mk MAPS: an experimental map becomes a wedge pair at 1 Å" {
  need_tools
  require_py_module mrcfile
  mkdir -p "$TMP/models" "$TMP/maps"
  ln -s "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  "$PY" - "$TMP/maps/exp.mrc" <<'PY'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(2)
a = rng.standard_normal((20, 22, 24))
F = np.fft.rfftn(a)
kz = np.fft.fftfreq(20)[:, None, None]; ky = np.fft.fftfreq(22)[None, :, None]; kx = np.fft.rfftfreq(24)[None, None, :]
a = np.fft.irfftn(F * np.exp(-(kx**2 + ky**2 + kz**2) * 40), s=a.shape)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a.astype(np.float32)); m.voxel_size = 2.0
PY
  run make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/models" \
    MAPS="$TMP/maps" OUT="$TMP/out" PATCHES=2 SIZE=24
  echo "$output"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/out/wedge/map-exp.cvol" <<'PY'
import sys, numpy as np, cvol
fr = cvol.read_stream(sys.argv[1])
assert len(fr) == 2
for f in fr:
    assert f["data"].shape == (2, 24, 24, 24) and abs(f["apix"][0] - 1.0) < 1e-6
    assert not np.allclose(f["data"][0], f["data"][1])
PY
}

@test "pairs.mk refuses an empty model folder" {
  mkdir -p "$TMP/empty"
  run make -f "$BATS_TEST_DIRNAME/../../pipelines/pairs.mk" BIN="$CRYO_BIN" MODELS="$TMP/empty" OUT="$TMP/out"
  [ "$status" -ne 0 ]
  [[ "$output" == *"no models"* ]]
}

@test "pairs.mk SHARPEN_VARIANTS: PATCHES crops per entry; the default entry reproduces the default recipe; a bad entry is refused" {
  need_tools
  mkdir -p "$TMP/models"
  ln -s "$PDBDIR/1A8O.pdb.gz" "$TMP/models/"
  local mk="$BATS_TEST_DIRNAME/../../pipelines/pairs.mk"
  make -f "$mk" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/def" PATCHES=2 SIZE=24 "$TMP/def/sharpen/1A8O.cvol"
  # the defaults as one entry (RES 3, LOCAL_HI 6, BFACTOR 80, SNR 0.5, no sharpening),
  # then a high-resolution post-processed entry: 2 + 2 crops
  run make -f "$mk" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/mix" PATCHES=2 SIZE=24 \
    SHARPEN_VARIANTS=3:6:80:0.5:0,2:3:60:1:50 "$TMP/mix/sharpen/1A8O.cvol"
  echo "$output"
  [ "$status" -eq 0 ]
  [ ! -e "$TMP/mix/sharpen/1A8O.cvol.d" ]
  # the second entry by hand: molmap at 2 Å, degraded and sharpened by vol-degrade, seed + 1
  local seed=$(( 1 + $(printf '%s' 1A8O | cksum | cut -d' ' -f1) % 1000000 + 1 ))
  model-map -q --res 2 --apix 1.0 --pad 12 "$TMP/models/1A8O.pdb.gz" | mrc-resample -q --apix 1.0 | mrc-normalize -q \
    | vol-degrade -q --seed $seed --local-res 2,3 --bfactor 60 --snr 1 --noise-shape shell --sharpen 50,2 --pair \
    | mrc-normalize -q | vol-patch -q --random 2 --size 24 --seed $seed --min-density 0.2 --min-fraction 0.05 > "$TMP/hand.cvol"
  "$PY" - "$TMP/def/sharpen/1A8O.cvol" "$TMP/mix/sharpen/1A8O.cvol" "$TMP/hand.cvol" <<'PY'
import sys, numpy as np, cvol
d, m, h = (cvol.read_stream(p) for p in sys.argv[1:4])
assert len(d) == 2 and len(m) == 4 and len(h) == 2, (len(d), len(m), len(h))
for a, b in zip(d + h, m):
    assert np.array_equal(a["data"], b["data"]), "crop differs"
    assert a["origin"] == b["origin"]
# the sharpened 2 Å entry carries more high-frequency power in its input than the default one
def hf(x):
    F = np.abs(np.fft.rfftn(x - x.mean())) ** 2
    k = np.sqrt(sum(g ** 2 for g in np.meshgrid(np.fft.fftfreq(24), np.fft.fftfreq(24), np.fft.rfftfreq(24), indexing="ij")))
    return F[k > 0.3].sum() / F.sum()
assert hf(m[2]["data"][0]) > hf(m[0]["data"][0]), (hf(m[2]["data"][0]), hf(m[0]["data"][0]))
PY
  run make -f "$mk" BIN="$CRYO_BIN" MODELS="$TMP/models" OUT="$TMP/bad" PATCHES=2 SIZE=24 \
    SHARPEN_VARIANTS=3:6:80:0.5 "$TMP/bad/sharpen/1A8O.cvol"
  [ "$status" -ne 0 ]
  [[ "$output" == *"SHARPEN_VARIANTS entry '3:6:80:0.5' is not R:HI:B:SNR:SB"* ]]
  [ ! -e "$TMP/bad/sharpen/1A8O.cvol" ] && [ ! -e "$TMP/bad/sharpen/1A8O.cvol.tmp" ] && [ ! -e "$TMP/bad/sharpen/1A8O.cvol.d" ]
}
