#!/usr/bin/python3
"""qscore_ref.py — independent numpy Q-score: a line-by-line numpy copy of mapq's own code.

Source read: gregdp/mapq, mapq/qscores.py at commit f73033803a22 (mapq_cmd.py says
mapqVersion 1.9.11): MinMaxD, SpherePts and Qscore(atoms=[atom], numPts=8, toRAD=2.0,
dRAD=0.1) as CalcQ / CalcQForAts call it, with allAtTree holding every non-hydrogen atom of
the model (waters included). Per atom:
  * A, B = maxD - minD, minD with maxD = min(avg + 10 sd, max), minD = max(avg - sd, min);
  * the map value at the atom, numPts times, against the reference A + B;
  * RAD = dRAD, then RAD += dRAD while RAD < toRAD + 0.01: for i in 0..49 take
    SpherePts(atom, RAD, numPts + 2 i), keep the points with no atom at squared distance
    < (0.9 RAD)^2, and at the first i that keeps >= numPts use them all; none: no points;
    reference value A exp(-0.5 (RAD / sigma)^2) + B for each;
  * Q = "corm" of Chimera's FitMap.overlap_and_correlation (0 if a side is constant).
Map values by trilinear interpolation (0 outside the box), as Chimera's interpolated_values.
Not copied: Chimera's float32 sums (float64 here). Alternate locations: the highest
occupancy per atom, the first on ties (what cryolvm's reader keeps).
Model read with gemmi (hydrogens removed), map with mrcfile, neighbours with scipy's cKDTree.
Writes one line per non-water atom: "chain resseq atom q".

usage: qscore_ref.py MAP MODEL OUT.tsv [--sigma 0.6] [--points 8] [--rmax 2.0] [--step 0.1]
"""
import argparse
import math

import gemmi
import mrcfile
import numpy as np
from scipy.spatial import cKDTree


def read_map(path):
    with mrcfile.open(path, permissive=True) as m:
        h = m.header
        data = np.asarray(m.data, dtype=np.float64)
        order = (int(h.mapc), int(h.mapr), int(h.maps))
        # file axes (slow..fast) = (maps, mapr, mapc); transpose to (z, y, x)
        axes_file = [order[2] - 1, order[1] - 1, order[0] - 1]  # physical axis of each array axis
        perm = [axes_file.index(2), axes_file.index(1), axes_file.index(0)]
        data = np.transpose(data, perm)
        n_file = (int(h.nx), int(h.ny), int(h.nz))
        mxyz = (int(h.mx), int(h.my), int(h.mz))
        cell = (float(h.cella.x), float(h.cella.y), float(h.cella.z))
        apix = np.array([cell[d] / mxyz[d] for d in range(3)])
        start = [0, 0, 0]
        nst = (int(h.nxstart), int(h.nystart), int(h.nzstart))
        for k in range(3):
            start[order[k] - 1] = nst[k]
        org = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        if np.all(org == 0):
            org = np.array(start, float) * apix
    return data, apix, org


def trilinear(data, apix, org, pts):
    nz, ny, nx = data.shape
    u = (pts - org) / apix  # x, y, z
    n = np.array([nx, ny, nz])
    out = np.zeros(len(pts))
    inside = np.all((u >= 0) & (u <= n - 1), axis=1)
    u = u[inside]
    i0 = np.floor(u).astype(int)
    i0 = np.minimum(i0, np.maximum(n - 2, 0))
    f = u - i0
    acc = np.zeros(len(u))
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                w = (np.where(dx, f[:, 0], 1 - f[:, 0]) * np.where(dy, f[:, 1], 1 - f[:, 1])
                     * np.where(dz, f[:, 2], 1 - f[:, 2]))
                acc += w * data[np.minimum(i0[:, 2] + dz, nz - 1), np.minimum(i0[:, 1] + dy, ny - 1),
                                np.minimum(i0[:, 0] + dx, nx - 1)]
    out[inside] = acc
    return out


def sphere_pts(ctr, rad, n):
    """mapq's SpherePts: the Saff-Kuijlaars spiral of n points, radius rad around ctr."""
    thetas, phis = [], []
    for k in range(1, n + 1):
        h = -1.0 + (2.0 * float(k - 1) / float(n - 1))
        phis.append(math.acos(h))
        thetas.append(0 if k == 1 or k == n else
                      (thetas[k - 2] + 3.6 / math.sqrt(n * (1.0 - h ** 2.0))) % (2 * math.pi))
    v = np.array([[math.sin(p) * math.cos(t), math.sin(p) * math.sin(t), math.cos(p)]
                  for t, p in zip(thetas, phis)])
    return ctr + v * rad


def corm(v1, v2):
    """Chimera FitMap.overlap_and_correlation's correlation about the mean."""
    v1 = np.asarray(v1, np.float64)
    v2 = np.asarray(v2, np.float64)
    n = len(v1)
    olap, n1, n2 = np.dot(v1, v2), np.dot(v1, v1), np.dot(v2, v2)
    m1, m2 = v1.sum() / n, v2.sum() / n
    d2 = max((n1 - n * m1 * m1) * (n2 - n * m2 * m2), 0.0)
    d = math.sqrt(d2)
    return (olap - n * m1 * m2) / d if d > 0 else 0.0


def read_atoms(path):
    st = gemmi.read_structure(path)
    st.remove_hydrogens()
    best = {}
    order = []
    for ch in st[0]:
        for res in ch:
            for at in res:
                key = (ch.name, res.seqid.num, res.seqid.icode, at.name)
                if key not in best:
                    order.append(key)
                    best[key] = (at.occ, res.name, at)
                elif at.occ > best[key][0]:
                    best[key] = (at.occ, res.name, at)
    return [(k[0], k[1], k[3], best[k][1], np.array(best[k][2].pos.tolist())) for k in order]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("map")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--sigma", type=float, default=0.6)
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--rmax", type=float, default=2.0)
    ap.add_argument("--step", type=float, default=0.1)
    a = ap.parse_args()
    data, apix, org = read_map(a.map)
    avg, sd = data.mean(), data.std()
    maxd = min(avg + 10 * sd, data.max())
    mind = max(avg - sd, data.min())
    A, B = maxd - mind, mind
    atoms = read_atoms(a.model)
    tree = cKDTree(np.array([t[4] for t in atoms]))  # every non-H atom, waters included
    num_pts, to_rad, d_rad = a.points, a.rmax, a.step
    with open(a.out, "w") as f:
        for chain, seq, name, resname, c in atoms:
            if resname in ("HOH", "WAT", "DOD", "H2O"):
                continue   # scored by mapq too, but cryolvm reports protein/ligand atoms only
            d_vals = list(trilinear(data, apix, org, c[None, :])) * num_pts
            g_vals = [A + B] * num_pts
            rad = d_rad
            while rad < to_rad + 0.01 * (d_rad / 0.1):
                out2 = (rad * 0.9) ** 2
                pts = []
                for i in range(0, 50):
                    cand = sphere_pts(c, rad, num_pts + i * 2)
                    dist, _ = tree.query(cand, k=1)
                    keep = cand[dist * dist >= out2]
                    if len(keep) >= num_pts:
                        pts = keep
                        break
                if len(pts):
                    d_vals.extend(trilinear(data, apix, org, pts))
                    g_vals.extend([A * math.exp(-0.5 * (rad / a.sigma) ** 2) + B] * len(pts))
                rad += d_rad
            q = corm(d_vals, g_vals)
            f.write(f"{chain}\t{seq}\t{name}\t{q:.6f}\n")


if __name__ == "__main__":
    main()
