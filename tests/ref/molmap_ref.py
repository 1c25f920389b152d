#!/usr/bin/python3
"""molmap_ref.py — independent numpy reference for model-map (Chimera molmap definition).

Reads the model with gemmi (not our parser), drops hydrogens and waters (model-map's
defaults), and sums per-atom Gaussians
    Z * (2 pi)^-1.5 * sigma^-3 * exp(-|r - r_atom|^2 / (2 sigma^2)),  sigma = f * res
(sigma^2 += B/(8 pi^2) with --bfactor), each evaluated inside the box |x - x_atom| <=
cutoff*sigma per axis, in float64 on either the grid of --like MAP or a box around the
atoms (origin = min - pad, n = ceil((max - min + 2 pad)/apix) + 1).

usage: molmap_ref.py MODEL OUT.mrc --res R [--like MAP | --apix A --pad P] [--cutoff C]
                     [--bfactor] [--sigma-factor F]
"""
import argparse
import math

import gemmi
import mrcfile
import numpy as np


def load_atoms(path):
    st = gemmi.read_structure(path)
    st.remove_hydrogens()
    st.remove_waters()
    xyz, z, b = [], [], []
    model = st[0]
    for ch in model:
        for res in ch:
            for at in res:
                if at.altloc not in ("\0", " ") and at.altloc != res[at.name][0].altloc:
                    continue  # keep one conformer per atom (test models put the best first)
                xyz.append([at.pos.x, at.pos.y, at.pos.z])
                z.append(at.element.atomic_number)
                b.append(at.b_iso)
    return np.array(xyz, float), np.array(z, float), np.array(b, float)


def molmap(xyz, zs, bs, shape_zyx, apix, origin, res, f, cutoff, use_b):
    nz, ny, nx = shape_zyx
    out = np.zeros((nz, ny, nx))
    axes = [np.arange(nx), np.arange(ny), np.arange(nz)]
    for p, z, b in zip(xyz, zs, bs):
        s2 = (f * res) ** 2 + (b / (8 * math.pi ** 2) if use_b and b > 0 else 0.0)
        s = math.sqrt(s2)
        fac = []
        for d in range(3):
            u = (p[d] - origin[d]) / apix[d]
            sv = s / apix[d]
            g = np.exp(-((axes[d] - u) ** 2) / (2 * sv * sv))
            g[np.abs(axes[d] - u) > cutoff * sv + 1e-9] = 0.0
            fac.append(g)
        w = z * (2 * math.pi) ** -1.5 / (s2 * s)
        out += w * fac[2][:, None, None] * fac[1][None, :, None] * fac[0][None, None, :]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--res", type=float, required=True)
    ap.add_argument("--like")
    ap.add_argument("--apix", type=float)
    ap.add_argument("--pad", type=float)
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--sigma-factor", type=float, default=1 / (math.pi * math.sqrt(2)))
    ap.add_argument("--bfactor", action="store_true")
    a = ap.parse_args()
    xyz, zs, bs = load_atoms(a.model)
    if a.like:
        with mrcfile.open(a.like, permissive=True) as m:
            h = m.header
            order = (int(h.mapc), int(h.mapr), int(h.maps))
            n_file = (int(h.nx), int(h.ny), int(h.nz))
            n_xyz = [0, 0, 0]
            start = [0, 0, 0]
            nst = (int(h.nxstart), int(h.nystart), int(h.nzstart))
            for k in range(3):
                n_xyz[order[k] - 1] = n_file[k]
                start[order[k] - 1] = nst[k]
            cell = (float(h.cella.x), float(h.cella.y), float(h.cella.z))
            mxyz = (int(h.mx), int(h.my), int(h.mz))
            apix = [cell[d] / mxyz[d] for d in range(3)]
            org = [float(h.origin.x), float(h.origin.y), float(h.origin.z)]
            if all(o == 0 for o in org):
                org = [start[d] * apix[d] for d in range(3)]
        shape = (n_xyz[2], n_xyz[1], n_xyz[0])
    else:
        apix = [a.apix or a.res / 3] * 3
        pad = a.pad if a.pad is not None else 3 * a.res
        lo, hi = xyz.min(0), xyz.max(0)
        n = [int(math.ceil((hi[d] - lo[d] + 2 * pad) / apix[d] - 1e-9)) + 1 for d in range(3)]
        org = [lo[d] - pad for d in range(3)]
        shape = (n[2], n[1], n[0])
    rho = molmap(xyz, zs, bs, shape, apix, org, a.res, a.sigma_factor, a.cutoff, a.bfactor)
    with mrcfile.new(a.out, overwrite=True) as m:
        m.set_data(rho.astype(np.float32))
        m.voxel_size = tuple(apix)
        m.header.origin = tuple(org)


if __name__ == "__main__":
    main()
