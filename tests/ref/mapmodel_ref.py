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


def trial_resolutions(amax):
    """mtriage's trial list (cctbx resolution_from_map_and_model.get_trial_resolutions)."""
    lo, hi = round(2 * amax, 1), max(8.0, round(10 * amax, 1))
    l = [i / 10 for i in range(17, 30)] + [i / 100 for i in range(300, 610, 10)] \
        + [i / 10 for i in range(65, 105)] + [float(i) for i in range(11, 100)]
    return [d for d in l if lo - 1e-9 <= d <= hi + 1e-9]


def d_model(data, apix, org, xyz, zs, bs):
    """phenix.mtriage's d_model, written from cctbx's cc_complex_complex definition with
    plain numpy: for each B in -500..500 (step 10) and trial d, the correlation of all Fo
    (F000 excluded, up to the finest trial d) with Fc*exp(-B s^2/4) truncated at d; Fc from
    the molmap at sigma = half the largest voxel. Returns the d of the largest value (ties:
    smallest d), brute force over every (B, d) pair."""
    amax = max(apix)
    fine = molmap_ref.molmap(xyz, zs, bs, data.shape, apix, org, 0.5 * amax * math.pi * math.sqrt(2),
                             1 / (math.pi * math.sqrt(2)), 5.0, False)
    nz, ny, nx = data.shape
    Fo, Fc = np.fft.rfftn(data).ravel(), np.fft.rfftn(fine).ravel()
    kz = np.fft.fftfreq(nz, d=apix[2])[:, None, None]
    ky = np.fft.fftfreq(ny, d=apix[1])[None, :, None]
    kx = np.fft.rfftfreq(nx, d=apix[0])[None, None, :]
    s2 = np.broadcast_to(kx ** 2 + ky ** 2 + kz ** 2, (nz, ny, nx // 2 + 1)).ravel()
    g = np.full((nz, ny, nx // 2 + 1), 2.0)
    g[:, :, 0] = 1
    if nx % 2 == 0:
        g[:, :, -1] = 1
    g = g.ravel()
    ds = sorted(trial_resolutions(amax))
    keep = (s2 > 0) & (s2 <= 1 / ds[0] ** 2)
    Fo, Fc, s2, g = Fo[keep], Fc[keep], s2[keep], g[keep]
    fo_all = np.sum(g * np.abs(Fo) ** 2)
    best, best_d = -np.inf, None
    for d in ds:
        inside = s2 <= 1 / d ** 2
        for B in range(-500, 510, 10):
            w = np.exp(-B * s2[inside] / 4)
            num = np.sum(g[inside] * w * (Fo[inside] * np.conj(Fc[inside])).real)
            den = math.sqrt(fo_all * np.sum(g[inside] * (w * np.abs(Fc[inside])) ** 2))
            if den > 0 and num / den > best + 1e-12:
                best, best_d = num / den, d
    return best_d, best


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
    out = {
        "cc_box": cc(a, b), "cc_mask": cc(a, b, mask), "cc_volume": cc(a, b, vol),
        "cc_peaks": cc(a, b, peaks), "n_mask": n,
        "fsc_0143": crossing(shells, fsc, 0.143), "fsc_05": crossing(shells, fsc, 0.5),
    }
    if "--d-model" in sys.argv[4:]:
        out["d_model"], out["d_model_cc"] = d_model(data, apix, org, xyz, zs, bs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
