#!/usr/bin/python3
"""mapmodel_ref.py — independent numpy map-vs-model metrics (phenix.map_model_cc definitions,
Afonine et al. 2018) for checking fsc-eval --model.

Model map: molmap_ref.molmap on the map's grid. Then Pearson correlations over
  box: all voxels; mask: voxels within R Å of an atom (cKDTree), R = phenix's automatic
  atom radius (atom_radius below: 2x the first inflection point of a carbon atom's image);
  volume: the N highest model-map voxels, N = mask size; peaks: union of the N highest of
  each map. FSC in shells of width 1/max(n*apix) up to the smallest Nyquist; the 0.143 and
  0.5 crossings by linear interpolation. Prints JSON.

usage: mapmodel_ref.py MAP MODEL RES
"""
import json
import math
import sys

import numpy as np
from scipy.spatial import cKDTree

import molmap_ref
import qscore_ref


def top(a, n):
    # n highest, ties by index (stable sort on -a)
    idx = np.argsort(-a, kind="stable")[:n]
    sel = np.zeros(a.size, bool)
    sel[idx] = True
    return sel


def cc(a, b, sel=None):
    if sel is not None:
        a, b = a[sel], b[sel]
    return float(np.corrcoef(a, b)[0, 1])


def crossing(s, f, thr):
    for i in range(1, len(f)):
        if f[i] < thr:
            if i == 1:
                return 1 / s[1]
            t = (f[i - 1] - thr) / (f[i - 1] - f[i])
            return 1 / (s[i - 1] + t * (s[i] - s[i - 1]))
    return 1 / s[-1]


def atom_radius(d_min, b_iso):
    """phenix.map_model_cc's mask radius (mmtbx five_cc._atom_radius), vectorised numpy:
    the image of carbon's Peng 1996 electron form factor truncated at 1/d_min, blurred by
    b_iso, integrated by composite Simpson (2000 intervals) at radii 0, 0.01, ... Å; radius
    = 2 x the midpoint where the discrete second difference first turns positive."""
    a = np.array([0.0489, 0.2091, 0.7537, 1.1420, 0.3555])
    b = np.array([0.1140, 1.0825, 5.4281, 17.8811, 51.1341])
    s = np.linspace(0.0, 1.0 / d_min, 2001)
    x = (s / 2) ** 2
    f = (a[:, None] * np.exp(-b[:, None] * x[None, :])).sum(0) * np.exp(-b_iso * x)
    w = np.ones(2001)
    w[1:-1:2], w[2:-1:2] = 4, 2
    h = s[1] - s[0]
    r = np.arange(0.0, max(10.0, d_min), 0.01)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(r[:, None] > 1e-9, 2 / r[:, None] * s * f * np.sin(2 * np.pi * r[:, None] * s),
                     4 * np.pi * s ** 2 * f)
    v = (g * w).sum(1) * h / 3
    dxx = v[:-2] + v[2:] - 2 * v[1:-1]
    i = int(np.argmax(dxx > 0)) + 1
    return (r[i - 1] + r[i])  # 2 x the midpoint of radii i-1 and i


def main():
    mpath, model, res = sys.argv[1], sys.argv[2], float(sys.argv[3])
    data, apix, org = qscore_ref.read_map(mpath)
    xyz, zs, bs = molmap_ref.load_atoms(model)
    mm = molmap_ref.molmap(xyz, zs, bs, data.shape, apix, org, res, 1 / (math.pi * math.sqrt(2)), 5.0, False)
    a, b = data.ravel(), mm.ravel()
    nz, ny, nx = data.shape
    R = atom_radius(res, float(np.mean(bs)))
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    pts = np.stack([org[0] + xx.ravel() * apix[0], org[1] + yy.ravel() * apix[1], org[2] + zz.ravel() * apix[2]], 1)
    d, _ = cKDTree(xyz).query(pts, k=1, distance_upper_bound=R + 1)
    mask = d <= R
    n = int(mask.sum())
    vol = top(b, n)
    peaks = vol | top(a, n)
    # FSC
    Fa, Fb = np.fft.rfftn(data), np.fft.rfftn(mm)
    kz = np.fft.fftfreq(nz, d=apix[2])[:, None, None]
    ky = np.fft.fftfreq(ny, d=apix[1])[None, :, None]
    kx = np.fft.rfftfreq(nx, d=apix[0])[None, None, :]
    s = np.sqrt(kx ** 2 + ky ** 2 + kz ** 2)
    ds = 1 / max(nx * apix[0], ny * apix[1], nz * apix[2])
    nyq = min(0.5 / apix[0], 0.5 / apix[1], 0.5 / apix[2])
    nsh = int(math.floor(nyq / ds + 1e-9)) + 1
    sh = np.rint(s / ds).astype(int)
    w = np.full(Fa.shape, 2.0)
    w[:, :, 0] = 1
    if nx % 2 == 0:
        w[:, :, -1] = 1
    num = np.bincount(sh.ravel(), (w * (Fa * np.conj(Fb)).real).ravel(), minlength=nsh + 2)[:nsh]
    pa = np.bincount(sh.ravel(), (w * np.abs(Fa) ** 2).ravel(), minlength=nsh + 2)[:nsh]
    pb = np.bincount(sh.ravel(), (w * np.abs(Fb) ** 2).ravel(), minlength=nsh + 2)[:nsh]
    fsc = num / np.sqrt(pa * pb)
    shells = np.arange(nsh) * ds
    print(json.dumps({
        "cc_box": cc(a, b), "cc_mask": cc(a, b, mask), "cc_volume": cc(a, b, vol),
        "cc_peaks": cc(a, b, peaks), "n_mask": n,
        "fsc_0143": crossing(shells, fsc, 0.143), "fsc_05": crossing(shells, fsc, 0.5),
    }))


if __name__ == "__main__":
    main()
