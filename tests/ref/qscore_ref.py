#!/usr/bin/python3
"""qscore_ref.py — independent numpy Q-score (Pintilie et al. 2020, as mapq samples it).

Per atom: shells r = 0, step, ..., r_max; N points per shell on the Saff-Kuijlaars spiral,
rotated by try t (t = 0: identity, else Rz(t*2pi*0.618034) Ry(t*pi*0.414214)) until all N
points are at least 0.9 r from every other atom (up to 50 tries; else the try that kept the
most points, the first on ties). Map values by trilinear interpolation (0 outside the box),
and mapq's reference g(r) = (maxD - minD) exp(-r^2/(2 sigma^2)) + minD, maxD = min(avg + 10 sd,
max), minD = max(avg - sd, min), computed literally here (the C code uses an equivalent
normalised form: Pearson's correlation ignores positive affine changes); Q = Pearson
correlation over all the atom's points.
Model read with gemmi (hydrogens and waters removed), map with mrcfile; a neighbour search
with scipy's cKDTree. Writes one line per atom: "chain resseq atom q".

usage: qscore_ref.py MAP MODEL OUT.tsv [--sigma 0.6] [--points 8]
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


def spiral(n):
    pts = np.zeros((n, 3))
    if n == 1:
        return np.array([[0.0, 0.0, 1.0]])
    phi = 0.0
    for k in range(n):
        h = -1.0 + 2.0 * k / (n - 1)
        if k == 0 or k == n - 1:
            phi = 0.0
        else:
            phi = math.fmod(phi + 3.6 / math.sqrt(n * (1 - h * h)), 2 * math.pi)
        t = math.acos(max(-1.0, min(1.0, h)))
        pts[k] = [math.sin(t) * math.cos(phi), math.sin(t) * math.sin(phi), math.cos(t)]
    return pts


def rotation(t):
    a = t * 2 * math.pi * 0.6180339887498949
    b = t * math.pi * 0.4142135623730951
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    return rz @ ry


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
    st = gemmi.read_structure(a.model)
    st.remove_hydrogens()
    st.remove_waters()
    atoms = []
    for ch in st[0]:
        for res in ch:
            for at in res:
                if at.altloc not in ("\0", " ") and at.altloc != res[at.name][0].altloc:
                    continue
                atoms.append((ch.name, res.seqid.num, at.name, np.array([at.pos.x, at.pos.y, at.pos.z])))
    xyz = np.array([t[3] for t in atoms])
    tree = cKDTree(xyz)
    unit = spiral(a.points)
    rots = [rotation(t) for t in range(50)]
    nshell = int(math.floor(a.rmax / a.step + 1e-9)) + 1
    with open(a.out, "w") as f:
        for idx, (chain, seq, name, c) in enumerate(atoms):
            us, vs = [], []
            for sh in range(nshell):
                r = sh * a.step
                ref = (maxd - mind) * math.exp(-r * r / (2 * a.sigma ** 2)) + mind
                best = None
                for t in range(50):
                    p = c + r * (unit @ rots[t].T)
                    if r > 0:
                        d, j = tree.query(p, k=2)
                        # nearest atom other than this one
                        other = np.where(j[:, 0] == idx, d[:, 1], d[:, 0])
                        keep = other >= 0.9 * r
                        p = p[keep]
                    if best is None or len(p) > len(best):
                        best = p
                    if len(p) == a.points or r == 0:
                        break
                if len(best):
                    us.extend(trilinear(data, apix, org, best))
                    vs.extend([ref] * len(best))
            us, vs = np.array(us), np.array(vs)
            q = float("nan")
            if len(us) >= 2 and us.std() > 0 and vs.std() > 0:
                q = float(np.corrcoef(us, vs)[0, 1])
            f.write(f"{chain}\t{seq}\t{name}\t{q:.6f}\n")


if __name__ == "__main__":
    main()
