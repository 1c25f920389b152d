#!/usr/bin/python3
"""fsc_ref.py — an independent numpy FSC (full complex np.fft.fftn in float64, no half
spectrum, no weights), half maps from a real map, soft masks, and relion STAR readers,
for tests/bats/fsc-eval.bats.

  fsc_ref.py halves MAP OUT1 OUT2 [--noise F] [--seed S]
        two "half maps": MAP plus independent white Gaussian noise of F x std(MAP) each
        (no real half maps are available offline; this stands in for them)
  fsc_ref.py mask MAP OUT [--radius R] [--edge E]
        a soft spherical mask (raised cosine from R to R+E voxels about the box centre)
  fsc_ref.py check A B TOOL.tsv [--mask M] [--tol T]
        the tool's fsc (and fsc_masked) columns equal numpy's to T (absolute); resolutions
        at 0.143 / 0.5 printed
  fsc_ref.py star POSTPROCESS.star TOOL.tsv COLUMN_STAR COLUMN_TSV TOL [--from Q]
        a relion curve (loop _rlnSpectralIndex ...) against a column of the tool's TSV
Shells: width 1/max(n_d a_d), element in shell round(|s|/ds), shells 0..floor(s_nyq/ds).
"""
import sys

import mrcfile
import numpy as np


def read(path):
    with mrcfile.open(path, permissive=True) as m:
        d = np.asarray(m.data, dtype=np.float64)
        v = m.voxel_size
        return d, (float(v.x), float(v.y), float(v.z))


def shells(shape, apix):
    nz, ny, nx = shape
    ext = max(nx * apix[0], ny * apix[1], nz * apix[2])
    ds = 1.0 / ext
    nyq = min(0.5 / a for n, a in zip((nx, ny, nz), apix) if n > 1)
    ns = int(np.floor(nyq * ext + 1e-9)) + 1
    fz = np.fft.fftfreq(nz, d=apix[2])[:, None, None]
    fy = np.fft.fftfreq(ny, d=apix[1])[None, :, None]
    fx = np.fft.fftfreq(nx, d=apix[0])[None, None, :]
    s = np.sqrt(fx * fx + fy * fy + fz * fz)
    q = np.floor(s / ds + 0.5).astype(np.int64)
    return q, ns, ds


def fsc(a, b, apix):
    q, ns, ds = shells(a.shape, apix)
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    sel = q < ns
    qq = q[sel]
    num = np.bincount(qq, (fa * np.conj(fb)).real[sel], ns)
    d1 = np.bincount(qq, (np.abs(fa) ** 2)[sel], ns)
    d2 = np.bincount(qq, (np.abs(fb) ** 2)[sel], ns)
    return num / np.sqrt(d1 * d2), np.arange(ns) * ds


def resolution(s, c, t):
    for q in range(1, len(c)):
        if c[q] < t:
            u = (c[q - 1] - t) / (c[q - 1] - c[q])
            return 1.0 / (s[q - 1] + u * (s[q] - s[q - 1]))
    return 1.0 / s[-1]


def read_tsv(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return {h: np.array([float(r[i]) for r in rows]) for i, h in enumerate(head)}


def opt(args, name, default, conv=float):
    if name in args:
        i = args.index(name)
        v = conv(args[i + 1])
        del args[i:i + 2]
        return v
    return default


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "halves":
        noise = opt(args, "--noise", 1.0)
        seed = opt(args, "--seed", 1, int)
        with mrcfile.open(args[0], permissive=True) as m:
            d = np.asarray(m.data, dtype=np.float32)
            vs = m.voxel_size
        rng = np.random.default_rng(seed)
        sd = float(d.std())
        for out in args[1:3]:
            h = d + rng.standard_normal(d.shape).astype(np.float32) * np.float32(noise * sd)
            with mrcfile.new(out, overwrite=True) as o:
                o.set_data(h.astype(np.float32))
                o.voxel_size = vs
        return 0
    if cmd == "mask":
        with mrcfile.open(args[0], permissive=True) as m:
            shape = m.data.shape
            vs = m.voxel_size
        r0 = opt(args, "--radius", min(shape) * 0.3)
        e = opt(args, "--edge", 4.0)
        z, y, x = np.indices(shape, dtype=np.float64)
        c = [(n - 1) / 2.0 for n in shape]  # centre of the box in voxel coordinates
        r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        w = np.where(r <= r0, 1.0, np.where(r >= r0 + e, 0.0, 0.5 + 0.5 * np.cos(np.pi * (r - r0) / e)))
        with mrcfile.new(args[1], overwrite=True) as o:
            o.set_data(w.astype(np.float32))
            o.voxel_size = vs
        return 0
    if cmd == "check":
        tol = opt(args, "--tol", 1e-4)
        mpath = opt(args, "--mask", None, str)
        a, apix = read(args[0])
        b, _ = read(args[1])
        t = read_tsv(args[2])
        c, s = fsc(a, b, apix)
        bad = 0
        if len(c) != len(t["fsc"]):
            print(f"shell count: numpy {len(c)}, tool {len(t['fsc'])}")
            return 1
        err = np.max(np.abs(c - t["fsc"]))
        serr = np.max(np.abs(s - t["inv_angstrom"]))
        print(f"unmasked: max |numpy - tool| = {err:.3g}; shells {len(c)}; s err {serr:.2g}; "
              f"d(0.143) {resolution(s, c, 0.143):.4f} d(0.5) {resolution(s, c, 0.5):.4f}")
        bad |= not (err <= tol) or not (serr <= 1e-5)
        if mpath:
            m, _ = read(mpath)
            cm, _ = fsc(a * m, b * m, apix)
            errm = np.max(np.abs(cm - t["fsc_masked"]))
            print(f"masked: max |numpy - tool| = {errm:.3g}")
            bad |= not (errm <= tol)
        return 1 if bad else 0
    if cmd == "star":
        frm = opt(args, "--from", 1, int)
        star, tsv, col_star, col_tsv, tol = args[0], args[1], args[2], args[3], float(args[4])
        cols, rows, inloop = [], [], False
        with open(star) as f:
            lines = f.read().splitlines()
        # the loop that holds _rlnSpectralIndex
        for i, line in enumerate(lines):
            if line.startswith("_rlnSpectralIndex"):
                j = i
                while j > 0 and lines[j - 1].startswith("_rln"):
                    j -= 1
                k = j
                while k < len(lines) and lines[k].startswith("_rln"):
                    cols.append(lines[k].split()[0])
                    k += 1
                while k < len(lines) and lines[k].strip() and not lines[k].startswith(("data_", "loop_", "_")):
                    rows.append(lines[k].split())
                    k += 1
                inloop = True
                break
        if not inloop:
            print("no FSC loop in", star)
            return 1
        rel = np.array([float(r[cols.index(col_star)]) for r in rows])
        t = read_tsv(tsv)[col_tsv]
        n = min(len(rel), len(t))
        d = np.abs(rel[frm:n] - t[frm:n])
        print(f"{col_star} vs {col_tsv}: shells {frm}..{n - 1}, max diff {d.max():.4f} at shell {frm + int(d.argmax())}")
        return 0 if d.max() <= tol else 1
    print("unknown command", cmd)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
