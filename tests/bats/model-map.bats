#!/usr/bin/env bats
# model-map: molmap densities against the independent numpy reference (tests/ref/molmap_ref.py,
# which reads the model with gemmi), PDB = mmCIF = gzip, the --like grid, and bad input.
load helpers
bats_require_minimum_version 1.5.0

# A 3-residue peptide with a ligand ion, a water and a hydrogen, written inline so the
# test needs no shared data.
write_pdb() {
  cat > "$1" <<'PDB'
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 21.50           C
ATOM      3  C   ALA A   1      13.140   5.830  -5.184  1.00 22.10           C
ATOM      4  O   ALA A   1      13.720   5.710  -6.264  1.00 23.00           O
ATOM      5  CB  ALA A   1      11.300   7.380  -4.440  1.00 25.00           C
ATOM      6  H   ALA A   1      10.500   6.900  -6.800  1.00 20.00           H
ATOM      7  N   GLY A   2      13.760   5.760  -4.006  1.00 19.00           N
ATOM      8  CA  GLY A   2      15.200   5.540  -3.880  1.00 18.00           C
ATOM      9  C   GLY A   2      15.600   4.080  -3.700  1.00 18.50           C
ATOM     10  O   GLY A   2      14.760   3.180  -3.650  1.00 19.50           O
ATOM     11  N   SER A   3      16.900   3.840  -3.600  1.00 21.00           N
ATOM     12  CA  SER A   3      17.420   2.480  -3.420  1.00 22.00           C
ATOM     13  OG  SER A   3      18.100   2.300  -2.180  1.00 30.00           O
HETATM   14 ZN    ZN A 101      14.000   8.000  -2.000  1.00 15.00          ZN
HETATM   15  O   HOH A 201      10.000   2.000  -1.000  1.00 40.00           O
END
PDB
}

@test "--help and --version" {
  run model-map --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--res"* && "$output" == *"--like"* ]]
  run model-map --version
  [ "$status" -eq 0 ]
}

@test "box around the model matches the numpy molmap reference" {
  require_py_module gemmi
  write_pdb "$TMP/m.pdb"
  run model-map --res 3 --apix 0.8 --pad 5 "$TMP/m.pdb" -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  "$PY" "$REF/molmap_ref.py" "$TMP/m.pdb" "$TMP/ref.mrc" --res 3 --apix 0.8 --pad 5
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
  # same placement too
  "$PY" - "$TMP/ours.mrc" "$TMP/ref.mrc" <<'PY'
import sys, mrcfile, numpy as np
a, b = (mrcfile.open(p, permissive=True) for p in sys.argv[1:3])
assert a.data.shape == b.data.shape, (a.data.shape, b.data.shape)
for k in "xyz":
    assert abs(float(getattr(a.voxel_size, k)) - float(getattr(b.voxel_size, k))) < 1e-5
    assert abs(float(getattr(a.header.origin, k)) - float(getattr(b.header.origin, k))) < 1e-3, k
PY
}

@test "B-factor term and cutoff match the reference" {
  require_py_module gemmi
  write_pdb "$TMP/m.pdb"
  run model-map --res 2.5 --apix 0.7 --pad 4 --bfactor --cutoff 3 "$TMP/m.pdb" -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  "$PY" "$REF/molmap_ref.py" "$TMP/m.pdb" "$TMP/ref.mrc" --res 2.5 --apix 0.7 --pad 4 --bfactor --cutoff 3
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
}

@test "PDB, mmCIF (gemmi-converted) and gzip give the same map; stream on stdout" {
  require_py_module gemmi
  write_pdb "$TMP/m.pdb"
  gemmi convert "$TMP/m.pdb" "$TMP/m.cif"
  gzip -c "$TMP/m.cif" > "$TMP/m.cif.gz"
  model-map --res 4 "$TMP/m.pdb" -o "$TMP/a.mrc"
  model-map --res 4 "$TMP/m.cif" -o "$TMP/b.mrc"
  model-map --res 4 "$TMP/m.cif.gz" > "$TMP/c.cvol"
  assert_close_files "$TMP/b.mrc" "$TMP/a.mrc" 1e-6
  assert_close_files "$TMP/c.cvol" "$TMP/a.mrc" 1e-6
}

@test "--like puts the map on a real map's grid (apoferritin, 1.75 Å) and matches the reference" {
  require_py_module gemmi
  require_data apoferritin_emd20026/emd20026_prot.mrc
  local map="$DATA/apoferritin_emd20026/emd20026_prot.mrc" pdb="$DATA/apoferritin_emd20026/3ajo_fitted_refined.pdb"
  run model-map --res 1.75 --like "$map" "$pdb" -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  "$PY" "$REF/molmap_ref.py" "$pdb" "$TMP/ref.mrc" --res 1.75 --like "$map"
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
  "$PY" - "$TMP/ours.mrc" "$map" <<'PY'
import sys, mrcfile, numpy as np
a, b = (mrcfile.open(p, permissive=True) for p in sys.argv[1:3])
assert a.data.shape == b.data.shape
for k in "xyz":
    assert abs(float(getattr(a.header.origin, k)) - float(getattr(b.header.origin, k))) < 1e-3
# the simulated density correlates with the experimental map
cc = np.corrcoef(a.data.ravel(), b.data.ravel())[0, 1]
assert cc > 0.5, cc   # measured 0.585 over the whole box
PY
}

@test "--like a map with axis order 3 2 1 (emringer) puts density where the map has it" {
  require_py_module gemmi
  require_data emringer_axisorder/test_map.ccp4
  local map="$DATA/emringer_axisorder/test_map.ccp4" pdb="$DATA/emringer_axisorder/test_model.pdb"
  run model-map --res 3 --like "$map" "$pdb" -o "$TMP/ours.mrc"
  [ "$status" -eq 0 ]
  "$PY" "$REF/molmap_ref.py" "$pdb" "$TMP/ref.mrc" --res 3 --like "$map"
  assert_close_files "$TMP/ours.mrc" "$TMP/ref.mrc" 1e-5
}

@test "hydrogens, waters and ligands are options" {
  write_pdb "$TMP/m.pdb"
  model-map --res 3 --apix 1 --pad 6 "$TMP/m.pdb" -o "$TMP/def.mrc"
  model-map --res 3 --apix 1 --pad 6 --no-ligands "$TMP/m.pdb" -o "$TMP/nolig.mrc"
  model-map --res 3 --apix 1 --pad 6 --waters --hydrogens "$TMP/m.pdb" -o "$TMP/all.mrc"
  # total density = sum of atomic numbers (molmap normalisation): 5 C, 3 N... computed here
  "$PY" - "$TMP/def.mrc" "$TMP/nolig.mrc" "$TMP/all.mrc" <<'PY'
import sys, mrcfile
tot = [float(mrcfile.open(p).data.sum()) for p in sys.argv[1:4]]  # apix 1: sum = integral
protein = 6 * 6 + 3 * 7 + 3 * 8          # C x6, N x3, O x3 (OG included)
assert abs(tot[0] - (protein + 30)) < 0.01 * protein, tot   # + Zn
assert abs(tot[1] - protein) < 0.01 * protein, tot
assert abs(tot[2] - (protein + 30 + 8 + 1)) < 0.01 * protein, tot  # + water O + H
PY
}

@test "bad input: one line naming the file and line, no output left behind" {
  write_pdb "$TMP/m.pdb"
  sed -i '5s/ 7.380/ 7.3x0/' "$TMP/m.pdb"
  run model-map --res 3 "$TMP/m.pdb" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"m.pdb:5:"* ]]
  assert_no_file "$TMP/out.mrc"
  printf 'data_x\nloop_\n_atom_site.type_symbol\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\nC 1 2 3\nC 1 2\n' > "$TMP/r.cif"
  run model-map --res 3 "$TMP/r.cif" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"r.cif:8:"* ]]
  run model-map --res 3 "$TMP/missing.pdb" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"missing.pdb"* ]]
  head -c 100 /dev/urandom > "$TMP/bin.pdb"
  run model-map --res 3 "$TMP/bin.pdb" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  assert_no_file "$TMP/out.mrc"
}

@test "usage errors exit 2" {
  write_pdb "$TMP/m.pdb"
  run model-map "$TMP/m.pdb" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  [[ "$output" == *"--res"* ]]
  run model-map --res -1 "$TMP/m.pdb" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run model-map --res 3x "$TMP/m.pdb" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run model-map --res 3 --like "$TMP/m.pdb" --apix 1 "$TMP/m.pdb" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ]
  run model-map --res 3 --bogus "$TMP/m.pdb"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/o.mrc"
}

@test "element columns holding other text (EMBOSS test entries): elements come from the atom names; no known element at all is refused" {
  write_pdb "$TMP/m.pdb"
  # columns 77-78 replaced by a line-number-like field, as EMBOSS's 2hhb.ent has
  awk '/^(ATOM|HETATM)/ { $0 = sprintf("%-72s%-4s%4d", substr($0, 1, 72), "2HHB", NR + 200) } { print }' "$TMP/m.pdb" > "$TMP/j.pdb"
  grep -q '^ATOM.* 2HHB 201$' "$TMP/j.pdb"
  model-map --res 3 "$TMP/m.pdb" -o "$TMP/m.mrc"
  model-map --res 3 "$TMP/j.pdb" -o "$TMP/j.mrc"
  run "$PY" - "$TMP/m.mrc" "$TMP/j.mrc" <<'PY'
import sys, numpy as np, mrcfile
a, b = (mrcfile.open(f).data for f in sys.argv[1:3])
assert a.shape == b.shape and a.max() > 0, (a.shape, b.shape, a.max())
assert np.allclose(a, b, rtol=0, atol=1e-6 * a.max()), np.abs(a - b).max()
print('ok')
PY
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  printf 'ATOM      1  QQ  VAL A   1       6.130  16.559   4.905  1.00 41.29          ZZ\n' > "$TMP/u.pdb"
  run model-map --res 3 "$TMP/u.pdb" -o "$TMP/u.mrc"
  [ "$status" -eq 1 ]
  [[ "$output" == *"u.pdb"*"none of the 1 atoms has a known element"* ]] || { echo "$output"; false; }
  [ ! -e "$TMP/u.mrc" ]
}
