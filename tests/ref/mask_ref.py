#!/usr/bin/python3
"""mask_ref.py — independent reference for vol-mask (numpy, scipy.ndimage, scipy.spatial, gemmi).

  mask_ref.py MAP OUT.mrc [--threshold T] [--lowpass RES] [--model PDB --zone R]
                          [--extend N] [--soft-edge W] [--angstrom] [--invert]

relion_mask_create's recipe (src/mask.cpp autoMask, src/fftw.cpp lowPassFilterMap) written
from its definitions, with scipy's exact Euclidean distance transform in place of relion's
search of a cube around each voxel:
  low-pass   numpy rfftn; L = longest box edge (Å), shell i = round(L/RES); weight 1 for
             |s| < (i-1)/L, 0 for |s| > (i+1)/L, 0.5 + 0.5 cos(pi (|s| - (i-1)/L) / (2/L)) between
  binary     map >= T; and/or voxel centres within R Å of an atom (cKDTree; gemmi reads the
             model, hydrogens and waters removed, as cryolvm's reader does by default)
  extend     N > 0: edt(not binary) < N; N < 0: binary and not (edt(binary) < |N|)
  soft edge  1 inside, 0.5 + 0.5 cos(pi d / W) for 0 < d < W, d = edt(not binary), 0 beyond
Distances are in voxels of the finest axis (edt sampling = apix / min apix); --angstrom
takes N and W in Å. The map is read with mrcfile, permuted to x,y,z (MAPC/MAPR/MAPS), and
placed by the ORIGIN words, or NXSTART.. times the voxel size when those are zero.
"""
import argparse
import math

import mrcfile
import numpy as np
from scipy import ndimage


def read_map(path):
    with mrcfile.open(path, permissive=True) as m:
        h = m.header
        data = np.asarray(m.data, dtype=np.float64)
        order = (int(h.mapc), int(h.mapr), int(h.maps))
        axes_file = [order[2] - 1, order[1] - 1, order[0] - 1]
        data = np.transpose(data, [axes_file.index(2), axes_file.index(1), axes_file.index(0)])
        apix = np.array([float(h.cella.x) / int(h.mx), float(h.cella.y) / int(h.my), float(h.cella.z) / int(h.mz)])
        start = [0, 0, 0]
        nst = (int(h.nxstart), int(h.nystart), int(h.nzstart))
        for k in range(3):
            start[order[k] - 1] = nst[k]
        org = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        if np.all(org == 0):
            org = np.array(start, float) * apix
    return data, apix, org


def lowpass(a, apix, res):
    nz, ny, nx = a.shape
    L = max(nx * apix[0], ny * apix[1], nz * apix[2])
    i = round(L / res)
    if i < 1:
        raise SystemExit("low-pass coarser than the box")
    fz = np.fft.fftfreq(nz, apix[2])[:, None, None]
    fy = np.fft.fftfreq(ny, apix[1])[None, :, None]
    fx = np.fft.rfftfreq(nx, apix[0])[None, None, :]
    s = np.sqrt(fx ** 2 + fy ** 2 + fz ** 2)
    lo, hi = max(0.0, (i - 1) / L), (i + 1) / L
    w = np.where(s < lo, 1.0, np.where(s > hi, 0.0, 0.5 + 0.5 * np.cos(np.pi * (s - lo) / (hi - lo))))
    return np.fft.irfftn(np.fft.rfftn(a) * w, s=a.shape, axes=(0, 1, 2))


def zone(shape, apix, org, model, radius):
    import gemmi
    from scipy.spatial import cKDTree
    st = gemmi.read_structure(model)
    st.remove_hydrogens()
    st.remove_waters()
    xyz = np.array([[at.pos.x, at.pos.y, at.pos.z] for ch in st[0] for res in ch for at in res], float)
    nz, ny, nx = shape
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing='ij')
    pts = np.stack([org[0] + i * apix[0], org[1] + j * apix[1], org[2] + k * apix[2]], axis=-1).reshape(-1, 3)
    d, _ = cKDTree(xyz).query(pts, k=1, distance_upper_bound=radius * (1 + 1e-9))
    return (d <= radius).reshape(shape)


def edt(inside, sampling):
    """Distance from each voxel to the nearest False voxel; inf when there is none (scipy
    returns meaningless values for an input without background)."""
    if inside.all():
        return np.full(inside.shape, np.inf)
    return ndimage.distance_transform_edt(inside, sampling=sampling)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("map")
    ap.add_argument("out")
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--lowpass", type=float)
    ap.add_argument("--model")
    ap.add_argument("--zone", type=float)
    ap.add_argument("--extend", type=float, default=0.0)
    ap.add_argument("--soft-edge", type=float, default=0.0)
    ap.add_argument("--angstrom", action="store_true")
    ap.add_argument("--invert", action="store_true")
    a = ap.parse_args()

    data, apix, org = read_map(a.map)
    amin = apix.min()
    sampling = (apix[2] / amin, apix[1] / amin, apix[0] / amin)  # z, y, x
    unit = 1.0 / amin if a.angstrom else 1.0
    ext, width = a.extend * unit, a.soft_edge * unit

    binary = np.ones(data.shape, bool)
    if a.threshold is not None:
        src = lowpass(data, apix, a.lowpass) if a.lowpass else data
        binary &= src >= a.threshold
    if a.model:
        binary &= zone(data.shape, apix, org, a.model, a.zone)
    if ext > 0:
        binary = edt(~binary, sampling) < ext
    elif ext < 0:
        binary = binary & ~(edt(binary, sampling) < -ext)
    mask = binary.astype(np.float64)
    if width > 0:
        d = edt(~binary, sampling)
        edge = (~binary) & (d < width)
        mask[edge] = 0.5 + 0.5 * np.cos(math.pi * d[edge] / width)
    if a.invert:
        mask = 1.0 - mask
    with mrcfile.new(a.out, overwrite=True) as m:
        m.set_data(mask.astype(np.float32))
        m.voxel_size = tuple(apix)
        m.header.origin = tuple(org)
    print("binary voxels %d" % int(binary.sum()))


if __name__ == "__main__":
    main()
