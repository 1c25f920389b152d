#!/usr/bin/python3
"""apply_ref.py — lvm-apply's map pipeline written independently with numpy and PyTorch.

For a map already at the model's voxel size (no resampling): numpy quantiles (0.01, 0.99 by
default, from the weights' "normalize" metadata), affine map and clip to [0, 1]; the SCUNet
module of torch_scunet.py run on tiles (start k*stride - (tile - stride)//2, numpy 'reflect'
padding outside the map, Gaussian weight exp(-(i - c)^2 / (2 (s/8)^2)), c = (s - 1)/2, merged
as sum(w y) / sum(w)), tiles whose input is all <= skip skipped (output 0), or the whole map
padded by reflection at the high end to a multiple of 2^levels; then x = y (q_hi - q_lo) (the
network's 0, no density, stays 0).

Commands:
  apply_ref.py check W IN.mrc OUT.mrc TILE STRIDE [TOL]   OUT against the reference
                                                          (TILE 0: whole map); rel. L2 error
  apply_ref.py bench W BOX TILE STRIDE THREADS [fp32|bf16]  seconds for a random BOX^3 map
                                                          (bf16: torch.autocast CPU bfloat16)
"""
import sys
import time

import numpy as np

from torch_scunet import autocast_ready, load_model, rel, st_read


def reflect(i, n):
    if n == 1:
        return np.zeros_like(i)
    p = 2 * (n - 1)
    i = np.mod(i, p)
    return np.where(i > n - 1, p - i, i)


def gauss(s):
    i = np.arange(s, dtype=np.float64)
    c, sig = (s - 1) / 2, s / 8
    return np.exp(-((i - c) ** 2) / (2 * sig * sig))


AUTOCAST_BF16 = False


def run_net(model, box):
    import torch
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST_BF16):
        dt = next(model.parameters()).dtype
        y = model(torch.from_numpy(np.ascontiguousarray(box)).to(dt)[None, None])[0, 0]
        return y.float().numpy()


def infer(model, levels, x, tile, stride, skip=0.0):
    """x: z, y, x array (normalised). Returns the merged network output."""
    q = 2 ** levels
    n = x.shape
    if tile == 0 or all(tile >= -(-k // q) * q for k in n):
        b = [-(-k // q) * q for k in n]
        idx = np.ix_(*[reflect(np.arange(b[d]), n[d]) for d in range(3)])
        return run_net(model, x[idx])[: n[0], : n[1], : n[2]]
    m = (tile - stride) // 2
    counts = [-(-k // stride) for k in n]
    w1 = gauss(tile)
    acc = np.zeros(n, np.float64)
    wsum = np.zeros(n, np.float64)
    for kz in range(counts[0]):
        for ky in range(counts[1]):
            for kx in range(counts[2]):
                st = [kz * stride - m, ky * stride - m, kx * stride - m]
                ranges = [np.arange(st[d], st[d] + tile) for d in range(3)]
                box = x[np.ix_(*[reflect(r, n[d]) for d, r in enumerate(ranges)])]
                y = np.zeros(box.shape) if box.max() <= skip else run_net(model, box)
                wt = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
                inside = [(r >= 0) & (r < n[d]) for d, r in enumerate(ranges)]
                sel = np.ix_(*[ranges[d][inside[d]] for d in range(3)])
                loc = np.ix_(*[np.nonzero(inside[d])[0] for d in range(3)])
                acc[sel] += (wt * y)[loc]
                wsum[sel] += wt[loc]
    return acc / wsum


def main(argv):
    import mrcfile
    import torch
    torch.set_num_threads(int(argv[6]) if argv[1] == "bench" else 2)
    model, cfg = load_model(argv[2])
    model = model.eval()
    if argv[1] == "check":
        _, meta = st_read(argv[2])
        lo, hi = map(float, meta["normalize"].split(":")[1:])
        with mrcfile.open(argv[3], permissive=False) as f:
            x = np.array(f.data, np.float64)
        with mrcfile.open(argv[4], permissive=False) as f:
            out = np.array(f.data, np.float64)
        tile, stride = int(argv[5]), int(argv[6])
        tol = float(argv[7]) if len(argv) > 7 else 1e-4
        qlo, qhi = np.quantile(x, [lo, hi])
        xn = np.clip((x - qlo) / (qhi - qlo), 0, 1)
        model = model.double()
        y = infer(model, cfg["levels"], xn, tile, stride)
        ref = y * (qhi - qlo)
        e = rel(out, ref)
        print(f"lvm-apply vs numpy/PyTorch (tile {tile}, stride {stride}): rel err {e:.3g} (tol {tol})")
        return 0 if e <= tol else 1
    if argv[1] == "bench":
        global AUTOCAST_BF16
        AUTOCAST_BF16 = len(argv) > 7 and argv[7] == "bf16"
        if AUTOCAST_BF16:
            autocast_ready(model)
        box, tile, stride = int(argv[3]), int(argv[4]), int(argv[5])
        x = np.random.default_rng(1).random((box, box, box)).astype(np.float32)
        t0, c0 = time.perf_counter(), time.process_time()
        infer(model, cfg["levels"], x, tile, stride, skip=-1.0)
        print(f"torch tiled box={box} tile={tile} stride={stride} seconds={time.perf_counter() - t0:.2f} "
              f"cpu={time.process_time() - c0:.2f} "
              f"threads={torch.get_num_threads()} precision={'bf16' if AUTOCAST_BF16 else 'fp32'}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
