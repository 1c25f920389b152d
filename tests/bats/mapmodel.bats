#!/usr/bin/env bats
# fsc-eval's map-model mode (libcore/mapmodel.c, qscore.c): CC_box/mask/volume/peaks and the
# map-model FSC against an independent numpy implementation (tests/ref/mapmodel_ref.py),
# per-atom Q-scores against tests/ref/qscore_ref.py (a numpy copy of mapq 1.9.11's Qscore)
# on three real maps, the TSV / PDB / mmCIF / ChimeraX .defattr outputs, real-data sanity
# (apoferritin at 1.75 Å against Pintilie's expected Q), -q, and bad input.
load helpers
bats_require_minimum_version 1.5.0

need_mode() {
  [ -x "$CRYO_BIN/fsc-eval" ] || skip "fsc-eval is not built"
  "$CRYO_BIN/fsc-eval" --help | grep -q -- "--model" || skip "fsc-eval has no --model mode yet"
  require_py_module gemmi
  require_py_module scipy
}

@test "map-model CCs and FSC match numpy (emringer map, axis order 3 2 1)" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run --separate-stderr fsc-eval "$map" --model "$pdb" --res 3 --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/ours.json"
  "$PY" "$REF/mapmodel_ref.py" "$map" "$pdb" 3 > "$TMP/ref.json"
  "$PY" - "$TMP/ours.json" "$TMP/ref.json" <<'PY'
import sys, json
o, r = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("cc_box", "cc_mask", "cc_volume", "cc_peaks", "fsc_0143", "fsc_05"):
    assert k in o, k
    assert abs(o[k] - r[k]) <= 1e-4 * max(1, abs(r[k])), (k, o[k], r[k])
assert 0 < o["q_score"] < 1, o["q_score"]
PY
}

@test "per-atom Q-scores match the numpy reference; TSVs and the model with Q as B-factor" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run fsc-eval "$map" --model "$pdb" --res 3 --q-atoms "$TMP/atoms.tsv" --q-residues "$TMP/res.tsv" \
    --q-model "$TMP/q.pdb"
  [ "$status" -eq 0 ]
  "$PY" "$REF/qscore_ref.py" "$map" "$pdb" "$TMP/ref.tsv"
  "$PY" - "$TMP/atoms.tsv" "$TMP/ref.tsv" "$TMP/res.tsv" "$TMP/q.pdb" <<'PY'
import sys, csv, gemmi, numpy as np
ours = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
ref = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()]
assert len(ours) == len(ref) == 218, (len(ours), len(ref))
q = np.array([float(r["q"]) for r in ours]); qr = np.array([float(r[3]) for r in ref])
assert all(o["atom"] == r[2] and int(o["resseq"]) == int(r[1]) for o, r in zip(ours, ref))
assert np.max(np.abs(q - qr)) < 1e-4, np.max(np.abs(q - qr))
res = list(csv.DictReader(open(sys.argv[3]), delimiter="\t"))
assert len(res) == 28, len(res)
assert sum(int(r["n_atoms"]) for r in res) == 218
first = [x for o, x in zip(ours, q) if int(o["resseq"]) == int(res[0]["resseq"]) and o["chain"] == res[0]["chain"]]
assert abs(np.mean(first) - float(res[0]["q"])) < 1e-3
st = gemmi.read_structure(sys.argv[4])
b = np.array([a.b_iso for ch in st[0] for r in ch for a in r])
assert len(b) == 218 and np.max(np.abs(b - q)) < 0.006   # PDB column has 2 decimals
PY
}

@test "--q-sigma 0.4 changes Q as the reference does" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run fsc-eval "$map" --model "$pdb" --res 3 --q-sigma 0.4 --q-atoms "$TMP/atoms.tsv"
  [ "$status" -eq 0 ]
  "$PY" "$REF/qscore_ref.py" "$map" "$pdb" "$TMP/ref.tsv" --sigma 0.4
  "$PY" - "$TMP/atoms.tsv" "$TMP/ref.tsv" <<'PY'
import sys, csv, numpy as np
q = np.array([float(r["q"]) for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")])
qr = np.array([float(l.split("\t")[3]) for l in open(sys.argv[2])])
assert np.max(np.abs(q - qr)) < 1e-4
PY
}

# per-atom Q from fsc-eval (TSV, 4 decimals) against qscore_ref.py: same atoms in the same
# order, r >= 0.9999, means within 1e-4, every atom within 1e-4
compare_q_with_mapq_copy() {
  local map=$1 pdb=$2
  run fsc-eval "$map" --model "$pdb" --res 3 -q --q-atoms "$TMP/atoms.tsv"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  "$PY" "$REF/qscore_ref.py" "$map" "$pdb" "$TMP/ref.tsv"
  "$PY" - "$TMP/atoms.tsv" "$TMP/ref.tsv" <<'PY'
import sys, csv, numpy as np
o = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
r = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()]
assert len(o) == len(r) > 100, (len(o), len(r))
assert all(a["atom"] == b[2] and int(a["resseq"]) == int(b[1]) and a["chain"] == b[0] for a, b in zip(o, r))
q = np.array([float(x["q"]) for x in o]); qr = np.array([float(x[3]) for x in r])
rr = np.corrcoef(q, qr)[0, 1]
print("atoms %d r %.6f mean %.4f vs %.4f max|d| %.1e" % (len(q), rr, q.mean(), qr.mean(), np.abs(q - qr).max()))
assert rr > 0.9999 and abs(q.mean() - qr.mean()) < 1e-4 and np.abs(q - qr).max() < 1e-4
PY
}

@test "Q-scores equal the numpy copy of mapq's code: apoferritin EMD-20026 (waters in the model)" {
  need_mode
  require_data apoferritin_emd20026/emd20026_prot.mrc
  compare_q_with_mapq_copy "$DATA/apoferritin_emd20026/emd20026_prot.mrc" \
    "$DATA/apoferritin_emd20026/3ajo_fitted_refined.pdb"
}

@test "Q-scores equal the numpy copy of mapq's code: F-actin EMD-5168 with 3MFP" {
  need_mode
  require_data tempy_emd5168_actin/emd_5168.map
  compare_q_with_mapq_copy "$DATA/tempy_emd5168_actin/emd_5168.map" "$DATA/tempy_emd5168_actin/3MFP.pdb"
}

@test "--q-model out.cif writes mmCIF with Q in B_iso_or_equiv; --q-attr a ChimeraX .defattr" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run --separate-stderr fsc-eval "$map" --model "$pdb" --res 3 --json --q-atoms "$TMP/atoms.tsv" \
    --q-model "$TMP/q.cif" --q-attr "$TMP/q.defattr"
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/first.json"
  "$PY" - "$TMP/atoms.tsv" "$TMP/q.cif" "$TMP/q.defattr" "$pdb" <<'PY'
import sys, csv, re, gemmi, numpy as np
ours = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
q = np.array([float(r["q"]) for r in ours])
# mmCIF: gemmi reads it; same atoms, coordinates and Q in B_iso_or_equiv
doc = gemmi.cif.read(sys.argv[2])
site = doc.sole_block().find("_atom_site.", ["auth_atom_id", "auth_seq_id", "B_iso_or_equiv", "Cartn_x"])
assert len(site) == len(ours) == 218, len(site)
b = np.array([float(r[2]) for r in site])
assert np.max(np.abs(b - q)) < 1e-9, np.max(np.abs(b - q))
assert all(r[0] == o["atom"] and int(r[1]) == int(o["resseq"]) for r, o in zip(site, ours))
st = gemmi.read_structure(sys.argv[2]); ref = gemmi.read_structure(sys.argv[4])
xa = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
xr = np.array([a.pos.tolist() for ch in ref[0] for r in ch for a in r if a.element.name != "H"])
assert xa.shape == xr.shape and np.max(np.abs(xa - xr)) < 6e-4
# .defattr: control lines, then <TAB>/chain:resnum@atom<TAB>value, one per atom
lines = open(sys.argv[3]).read().splitlines()
body = [l for l in lines if l and not l.startswith("#")]
assert body[:3] == ["attribute: qscore", "recipient: atoms", "match mode: 1-to-1"], body[:3]
rows = body[3:]
assert len(rows) == 218
for l, o, qq in zip(rows, ours, q):
    m = re.fullmatch(r"\t/(\w+):(-?\d+)@(\S+)\t(-?\d+\.\d+)", l)
    assert m, repr(l)
    assert m.group(1) == o["chain"] and int(m.group(2)) == int(o["resseq"]) and m.group(3) == o["atom"], l
    assert abs(float(m.group(4)) - qq) < 1e-9
PY
  # the mmCIF reads back as the same model: the same metrics and Q
  run --separate-stderr fsc-eval "$map" --model "$TMP/q.cif" --res 3 --json
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/first.json" "$output" <<'PY'
import sys, json
a = json.load(open(sys.argv[1])); b = json.loads(sys.argv[2])
for k in ("q_score", "cc_mask", "cc_box", "n_atoms"):
    assert abs(a[k] - b[k]) < 1e-6, (k, a[k], b[k])
PY
  # other names are PDB
  run fsc-eval "$map" --model "$pdb" --res 3 -q --q-model "$TMP/q.ent"
  [ "$status" -eq 0 ]
  grep -q '^ATOM' "$TMP/q.ent"
}

@test "-q silences --model's summary (not --json); --help names phenix's automatic mask radius" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run --separate-stderr fsc-eval -q "$map" --model "$pdb" --res 3
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  run --separate-stderr fsc-eval -q "$map" --model "$pdb" --res 3 --json
  [ "$status" -eq 0 ]
  [[ "$output" == *'"q_score"'* ]]
  run fsc-eval --help
  [[ "$output" == *"phenix"* ]]
  [[ "$output" != *"max(3, min(10, res))"* ]]
  [[ "$output" == *"--q-attr"* ]]
}

@test "bad Q outputs: --q-attr without --model, unwritable paths leave no files" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run fsc-eval "$map" "$map" --q-attr "$TMP/a.defattr"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/a.defattr"
  run fsc-eval "$map" --model "$pdb" --res 3 -q --q-model "$TMP/q.cif" --q-attr "$TMP/nodir/a.defattr"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"nodir/a.defattr"* ]]
  run fsc-eval "$map" --model "$pdb" --res 3 -q --q-model "$TMP/nodir/q.cif"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"nodir/q.cif"* ]]
}

@test "apoferritin at 1.75 Å: Q-score near Pintilie's expected value, good CCs" {
  need_mode
  require_data apoferritin_emd20026/emd20026_prot.mrc
  run --separate-stderr fsc-eval "$DATA/apoferritin_emd20026/emd20026_prot.mrc" \
    --model "$DATA/apoferritin_emd20026/3ajo_fitted_refined.pdb" --res 1.75 --json
  [ "$status" -eq 0 ]
  "$PY" - "$output" <<'PY'
import sys, json
j = json.loads(sys.argv[1])
expected = -0.1775 * 1.75 + 1.1192          # Pintilie et al. 2020, proteins
print("Q", j["q_score"], "expected", expected)
assert 0.7 < j["q_score"] < 0.95, j["q_score"]
assert abs(j["q_score"] - expected) < 0.1
assert j["cc_mask"] > 0.5 and j["fsc_0143"] < 2.5, j
PY
}

@test "bad input: model outside the map, unreadable model, --model without --res" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4"
  printf 'ATOM      1  CA  GLY A   1     900.000 900.000 900.000  1.00  0.00           C\n' > "$TMP/far.pdb"
  run fsc-eval "$map" --model "$TMP/far.pdb" --res 3
  [ "$status" -eq 1 ]
  assert_one_error_line
  printf 'ATOM      1  CA  GLY A   1     9x0.000 900.000 900.000  1.00  0.00           C\n' > "$TMP/bad.pdb"
  run fsc-eval "$map" --model "$TMP/bad.pdb" --res 3
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"bad.pdb:1:"* ]]
  run fsc-eval "$map" --model "$DATA/emringer_axisorder/test_model.pdb"
  [ "$status" -eq 2 ]
  run fsc-eval "$map" "$map" --q-atoms "$TMP/a.tsv"
  [ "$status" -eq 2 ]
  run fsc-eval "$map" --model "$DATA/emringer_axisorder/test_model.pdb" --res 3 --q-sigma 0
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/a.tsv"
}

@test "--d-model finds the resolution of a map sharply truncated at 4.5 Å (mtriage definition)" {
  need_mode
  require_data emringer_axisorder/test_model.pdb
  local pdb="$DATA/emringer_axisorder/test_model.pdb"
  model-map --res 2 --apix 1 --pad 8 "$pdb" -o "$TMP/sim.mrc"
  # keep the Fourier coefficients with s <= 1/4.5 Å: the model's density at exactly 4.5 Å
  "$PY" - "$TMP/sim.mrc" "$TMP/cut.mrc" <<'PY'
import sys, numpy as np, mrcfile
m = mrcfile.open(sys.argv[1]); a = m.data.astype(np.float64); vs = float(m.voxel_size.x)
F = np.fft.rfftn(a)
kz = np.fft.fftfreq(a.shape[0], vs)[:, None, None]; ky = np.fft.fftfreq(a.shape[1], vs)[None, :, None]
kx = np.fft.rfftfreq(a.shape[2], vs)[None, None, :]
F[(kx**2 + ky**2 + kz**2) > 1 / 4.5**2 + 1e-12] = 0
with mrcfile.new(sys.argv[2], overwrite=True) as o:
    o.set_data(np.fft.irfftn(F, a.shape).astype(np.float32)); o.voxel_size = vs
    o.header.origin = m.header.origin
PY
  run --separate-stderr fsc-eval "$TMP/cut.mrc" --model "$pdb" --res 3 --d-model --json
  [ "$status" -eq 0 ]
  "$PY" - "$output" <<'PY'
import sys, json
j = json.loads(sys.argv[1])
assert abs(j["d_model"] - 4.5) < 1e-6, j["d_model"]
PY
}

@test "--d-model equals the numpy implementation of mtriage's definition on real maps" {
  need_mode
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run --separate-stderr fsc-eval "$map" --model "$pdb" --res 3 --d-model --json
  [ "$status" -eq 0 ]
  echo "$output" > "$TMP/ours.json"
  "$PY" "$REF/mapmodel_ref.py" "$map" "$pdb" 3 --d-model > "$TMP/ref.json"
  "$PY" - "$TMP/ours.json" "$TMP/ref.json" <<'PY'
import sys, json
o, r = (json.load(open(p)) for p in sys.argv[1:3])
assert abs(o["d_model"] - r["d_model"]) < 1e-6, (o["d_model"], r["d_model"])
PY
}
