#!/usr/bin/env bash
# simulate.sh — model-map (molmap) speed against numpy and gemmi on a ~100,000-atom model
# and a 300^3 grid, and vol-degrade against numpy on a 256^3 map. Prints a Markdown table
# for bench/README.md ("Simulation"). Medians of 3 runs, whole process.
#
# The model: 16 copies of 7DDO (python-biopython-doc, Tests/PDB/7DDO.pdb.gz, cryo-EM,
# 6,468 atoms) translated on a 4x4 lattice in a 300 Å box (~103,000 atoms), written as mmCIF.
# Peers doing the same job:
#   numpy   the molmap definition with per-atom cut-off boxes (a Python loop over atoms,
#           separable exponentials, numpy inside each box) — the fair numpy version;
#   gemmi   gemmi.DensityCalculatorE (electron form factors, its own cutoff) on the same
#           grid spacing, put_model_density_on_grid (C++; a different density model, the
#           closest thing gemmi has).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CRYO_BIN:-$here/bin}
PY=/usr/bin/python3
SRC=/usr/share/doc/python-biopython-doc/Tests/PDB/7DDO.pdb.gz
[ -f "$SRC" ] || { echo "simulate.sh: $SRC missing (apt-get install python-biopython-doc)" >&2; exit 1; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

"$PY" - "$SRC" "$T/big.cif" "$T/grid.mrc" <<'PY'
import sys, gemmi, numpy as np, mrcfile
st = gemmi.read_structure(sys.argv[1]); st.remove_hydrogens(); st.remove_waters()
st.setup_entities()
m = st[0]
xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in m for r in ch for a in r])
c = xyz.mean(0)
out = gemmi.Structure(); out.cell = gemmi.UnitCell(300, 300, 300, 90, 90, 90)
nm = gemmi.Model("1"); k = 0
for i in range(4):
    for j in range(4):
        shift = np.array([50 + 200 / 3 * i, 50 + 200 / 3 * j, 150.0]) - c
        for ch in m:
            nc = gemmi.Chain(ch.name); nc.name = "%s%d" % (ch.name, k)
            for r in ch:
                nr = r.clone()
                for a in nr:
                    a.pos = gemmi.Position(a.pos.x + shift[0], a.pos.y + shift[1], a.pos.z + shift[2])
                nc.add_residue(nr)
            nm.add_chain(nc)
        k += 1
out.add_model(nm)
out.setup_entities()
out.make_mmcif_document().write_file(sys.argv[2])
with mrcfile.new(sys.argv[3], overwrite=True) as g:
    g.set_data(np.zeros((300, 300, 300), np.float32)); g.voxel_size = 1.0
PY

cat > "$T/np_molmap.py" <<'PY'
import sys, math, time, numpy as np, gemmi
st = gemmi.read_structure(sys.argv[1]); st.remove_hydrogens(); st.remove_waters()
xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in st[0] for r in ch for a in r])
z = np.array([a.element.atomic_number for ch in st[0] for r in ch for a in r], float)
res, n = 3.0, 300
s = res / (math.pi * math.sqrt(2)); cut = 5 * s
rho = np.zeros((n, n, n), np.float32)
w = z * (2 * math.pi) ** -1.5 / s ** 3
for p, wi in zip(xyz, w):
    lo = np.maximum(np.ceil(p - cut).astype(int), 0); hi = np.minimum(np.floor(p + cut).astype(int), n - 1)
    gx = np.exp(-(np.arange(lo[0], hi[0] + 1) - p[0]) ** 2 / (2 * s * s))
    gy = np.exp(-(np.arange(lo[1], hi[1] + 1) - p[1]) ** 2 / (2 * s * s))
    gz = np.exp(-(np.arange(lo[2], hi[2] + 1) - p[2]) ** 2 / (2 * s * s))
    rho[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] += (wi * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]).astype(np.float32)
PY

cat > "$T/gemmi_dc.py" <<'PY'
import sys, gemmi
st = gemmi.read_structure(sys.argv[1]); st.remove_hydrogens(); st.remove_waters()
st.cell = gemmi.UnitCell(300, 300, 300, 90, 90, 90); st.spacegroup_hm = "P 1"
dc = gemmi.DensityCalculatorE()
dc.d_min = 3.0
dc.rate = 1.5          # grid spacing d_min / (2 rate) = 1 Å, as ours
dc.set_grid_cell_and_spacegroup(st)
dc.put_model_density_on_grid(st[0])
PY

cat > "$T/np_degrade.py" <<'PY'
import sys, numpy as np, mrcfile
v = mrcfile.open(sys.argv[1]).data.astype(np.float32)
F = np.fft.rfftn(v)
kz = np.fft.fftfreq(v.shape[0])[:, None, None]; ky = np.fft.fftfreq(v.shape[1])[None, :, None]; kx = np.fft.rfftfreq(v.shape[2])[None, None, :]
out = np.fft.irfftn(F * np.exp(-100 * (kx**2 + ky**2 + kz**2) / 4), s=v.shape).astype(np.float32)
rng = np.random.default_rng(1)
out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(np.sqrt(out.var() / 0.5))
with mrcfile.new(sys.argv[2], overwrite=True) as m:
    m.set_data(out)
PY

median3() { # command... -> median wall seconds of 3 runs
  local t=()
  for i in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p
}

natoms=$("$PY" -c "import gemmi, sys; print(gemmi.read_structure(sys.argv[1])[0].count_atom_sites())" "$T/big.cif")
ours=$(median3 "$BIN/model-map" --res 3 --like "$T/grid.mrc" "$T/big.cif" -o "$T/ours.mrc")
nump=$(median3 "$PY" "$T/np_molmap.py" "$T/big.cif")
gemm=$(median3 "$PY" "$T/gemmi_dc.py" "$T/big.cif")

"$PY" - "$T/vol.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.random.default_rng(0).standard_normal((256, 256, 256)).astype(np.float32)
with mrcfile.new(sys.argv[1], overwrite=True) as m: m.set_data(a); m.voxel_size = 1.0
PY
deg=$(median3 "$BIN/vol-degrade" --bfactor 100 --snr 0.5 "$T/vol.mrc" -o "$T/d.mrc")
degnp=$(median3 "$PY" "$T/np_degrade.py" "$T/vol.mrc" "$T/dn.mrc")

r() { printf "%.2f" "$(echo "$1 / $2" | bc -l)"; }
echo "| job ($natoms atoms, 300^3 grid, 1 Å, res 3 Å; 256^3 for vol-degrade) | cryolvm | peer | ratio (ours/peer) |"
echo "|---|---|---|---|"
printf '| model-map vs numpy molmap (per-atom boxes) | %.2f s | %.2f s | %s |\n' "$ours" "$nump" "$(r "$ours" "$nump")"
printf '| model-map vs gemmi DensityCalculatorE | %.2f s | %.2f s | %s |\n' "$ours" "$gemm" "$(r "$ours" "$gemm")"
printf '| vol-degrade --bfactor 100 --snr 0.5 vs numpy | %.2f s | %.2f s | %s |\n' "$deg" "$degnp" "$(r "$deg" "$degnp")"
