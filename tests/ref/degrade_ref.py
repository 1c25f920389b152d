#!/usr/bin/python3
"""degrade_ref.py — numpy references for vol-degrade's deterministic effects.

  degrade_ref.py IN.mrc OUT.mrc bfactor B       F *= exp(-B s^2/4)
  degrade_ref.py IN.mrc OUT.mrc lowpass R EDGE  raised cosine over EDGE shells centred on 1/R
  degrade_ref.py IN.mrc OUT.mrc wedge A AXIS [cone]   keep |kz| <= tan(A)|k_perp|
  degrade_ref.py IN.mrc OUT.mrc bin N           N^3 block means, trilinear back (clamped)
  degrade_ref.py IN.mrc - snr CLEAN.mrc S [shell]     check a noisy map: prints the measured SNR
                                               (and for shell noise the spread of the per-shell
                                               noise/clean power ratio)

Frequencies are physical (1/Å) from numpy.fft.fftfreq with the voxel size; shells have width
1/max(n*apix). Maps are read/written with mrcfile (z, y, x arrays).
"""
import math
import sys

import mrcfile
import numpy as np


def read(path):
    with mrcfile.open(path, permissive=True) as m:
        v = np.asarray(m.data, dtype=np.float64).copy()
        apix = np.array([float(m.voxel_size.x), float(m.voxel_size.y), float(m.voxel_size.z)])
        org = (float(m.header.origin.x), float(m.header.origin.y), float(m.header.origin.z))
    return v, apix, org


def write(path, v, apix, org):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(v.astype(np.float32))
        m.voxel_size = tuple(apix)
        m.header.origin = org


def freqs(shape, apix):
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz, d=apix[2])[:, None, None]
    ky = np.fft.fftfreq(ny, d=apix[1])[None, :, None]
    kx = np.fft.rfftfreq(nx, d=apix[0])[None, None, :]
    return kx, ky, kz


def filt(v, apix, fn):
    F = np.fft.rfftn(v)
    kx, ky, kz = freqs(v.shape, apix)
    return np.fft.irfftn(F * fn(kx, ky, kz), s=v.shape)


def shell_width(shape, apix):
    nz, ny, nx = shape
    return 1.0 / max(nx * apix[0], ny * apix[1], nz * apix[2])


def main():
    src, dst, what = sys.argv[1], sys.argv[2], sys.argv[3]
    v, apix, org = read(src)
    if what == "bfactor":
        B = float(sys.argv[4])
        out = filt(v, apix, lambda kx, ky, kz: np.exp(-B * (kx ** 2 + ky ** 2 + kz ** 2) / 4))
    elif what in ("lowpass", "sharpen"):
        # sharpen B R EDGE: exp(+B s^2/4) times the low-pass at R (vol-degrade --sharpen)
        B = float(sys.argv.pop(4)) if what == "sharpen" else 0.0
        R, edge = float(sys.argv[4]), float(sys.argv[5])
        w = edge * shell_width(v.shape, apix)
        s0 = 1 / R

        def fn(kx, ky, kz):
            s2 = kx ** 2 + ky ** 2 + kz ** 2
            t = np.clip((np.sqrt(s2) - (s0 - w / 2)) / w, 0, 1)
            return 0.5 * (1 + np.cos(np.pi * t)) * np.exp(B * s2 / 4)
        out = filt(v, apix, fn)
    elif what == "wedge":
        A, axis = float(sys.argv[4]), sys.argv[5]
        cone = len(sys.argv) > 6 and sys.argv[6] == "cone"
        t = math.tan(math.radians(A))

        def fn(kx, ky, kz):
            kx, ky, kz = np.broadcast_arrays(kx, ky, kz)
            perp = np.sqrt(kx ** 2 + ky ** 2) if cone else np.abs(kx if axis == "y" else ky)
            return ((np.abs(kz) <= t * perp * (1 + 1e-6)) | (kz == 0)).astype(float)
        out = filt(v, apix, fn)
    elif what == "bin":
        N = int(sys.argv[4])
        nz, ny, nx = v.shape
        mz, my, mx = -(-nz // N), -(-ny // N), -(-nx // N)
        pad = np.full((mz * N, my * N, mx * N), np.nan)
        pad[:nz, :ny, :nx] = v
        coarse = np.nanmean(pad.reshape(mz, N, my, N, mx, N), axis=(1, 3, 5))

        def pos(n, m):
            t = np.clip((np.arange(n) - (N - 1) / 2) / N, 0, m - 1)
            i0 = np.minimum(np.floor(t).astype(int), max(m - 2, 0))
            return i0, (t - i0 if m >= 2 else np.zeros(n)), (np.minimum(i0 + 1, m - 1))
        k0, fz, k1 = pos(nz, mz)
        j0, fy, j1 = pos(ny, my)
        i0, fx, i1 = pos(nx, mx)
        c = coarse
        fx_, fy_, fz_ = fx[None, None, :], fy[None, :, None], fz[:, None, None]
        def g(K, J, I):
            return c[np.ix_(K, J, I)]
        c00 = g(k0, j0, i0) * (1 - fx_) + g(k0, j0, i1) * fx_
        c01 = g(k0, j1, i0) * (1 - fx_) + g(k0, j1, i1) * fx_
        c10 = g(k1, j0, i0) * (1 - fx_) + g(k1, j0, i1) * fx_
        c11 = g(k1, j1, i0) * (1 - fx_) + g(k1, j1, i1) * fx_
        out = (c00 * (1 - fy_) + c01 * fy_) * (1 - fz_) + (c10 * (1 - fy_) + c11 * fy_) * fz_
    elif what == "snr":
        clean, _, _ = read(sys.argv[4])
        S = float(sys.argv[5])
        noise = v - clean
        print(f"snr {clean.var() / noise.var():.6f} noise_mean {noise.mean():.3e}")
        if len(sys.argv) > 6 and sys.argv[6] == "shell":
            Fn, Fc = np.fft.rfftn(noise), np.fft.rfftn(clean)
            kx, ky, kz = freqs(v.shape, apix)
            s = np.sqrt(kx ** 2 + ky ** 2 + kz ** 2)
            sh = np.rint(s / shell_width(v.shape, apix)).astype(int)
            nmax = min(v.shape) // 2 - 2
            ratios = []
            for q in range(2, nmax):
                sel = sh == q
                ratios.append((np.abs(Fn[sel]) ** 2).mean() / (np.abs(Fc[sel]) ** 2).mean())
            ratios = np.array(ratios)
            print(f"shell_ratio_spread {ratios.std() / ratios.mean():.4f}")
        return
    else:
        sys.exit(f"unknown effect {what}")
    write(dst, out, apix, org)


if __name__ == "__main__":
    main()
