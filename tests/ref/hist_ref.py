#!/usr/bin/python3
"""hist_ref.py — numpy soft histograms and divergences written from the definition in
libcore/include/cryolvm/hist.h (every kernel term, no cutoff), for hist-compare.bats.

  hist_ref.py check MAP1 MAP2 TOOL.json [--mask M]   the tool's JSON equals numpy's
      (histograms to 1e-9 absolute, JS and KL to 1e-7 relative)
  hist_ref.py histkl PRED TARGET GRAD BINS LO HI SIGMA LOSS   the HistKL training loss
      (cryo_histkl_loss / cryo_nn_histkl_loss) of raw float32 files PRED against TARGET is
      LOSS to 1e-9 relative and its gradient is GRAD (raw float32) to 1e-5 of its largest
      magnitude, both from PyTorch autograd in float64 (test_histkl_op.c)
"""
import json
import sys

import mrcfile
import numpy as np


def read(path):
    with mrcfile.open(path, permissive=True) as m:
        return np.asarray(m.data, dtype=np.float64).ravel()


def soft_hist(x, bins, lo, hi, sigma):
    c = lo + (np.arange(bins) + 0.5) * (hi - lo) / bins
    h = np.zeros(bins)
    for chunk in np.array_split(x, max(1, x.size // 20000)):
        h += np.exp(-0.5 * ((chunk[:, None] - c[None, :]) / sigma) ** 2).sum(axis=0)
    h /= x.size
    return h / h.sum()


def kl(p, q):
    nz = p > 0
    with np.errstate(divide="ignore", over="ignore"):
        return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def js(p, q):
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def histkl(argv):
    import torch

    pred = np.fromfile(argv[0], dtype=np.float32).astype(np.float64)
    target = np.fromfile(argv[1], dtype=np.float32).astype(np.float64)
    grad = np.fromfile(argv[2], dtype=np.float32).astype(np.float64)
    bins, lo, hi, sigma, loss = int(argv[3]), float(argv[4]), float(argv[5]), float(argv[6]), float(argv[7])
    c = torch.tensor(lo + (np.arange(bins) + 0.5) * (hi - lo) / bins)

    def hist(v):
        h = torch.exp(-0.5 * ((v[:, None] - c[None, :]) / sigma) ** 2).sum(dim=0)
        return h / h.sum()

    x = torch.tensor(pred, requires_grad=True)
    p, q = hist(x), hist(torch.tensor(target))
    m = 0.5 * (p + q)
    d = 0.5 * torch.sum(p * torch.log(p / m)) + 0.5 * torch.sum(q * torch.log(q / m))
    d.backward()
    ref = x.grad.numpy()
    el = abs(loss - d.item()) / abs(d.item())
    eg = np.max(np.abs(grad - ref)) / np.max(np.abs(ref))
    print(f"HistKL n={pred.size}: loss C {loss:.15g} torch {d.item():.15g} (rel {el:.2e}); gradient rel {eg:.2e}")
    return 0 if el <= 1e-9 and eg <= 1e-5 else 1


def main(argv):
    if argv[1] == "histkl":
        return histkl(argv[2:])
    args = argv[2:]
    mask = None
    if "--mask" in args:
        i = args.index("--mask")
        mask = read(args[i + 1]) > 0.5
        del args[i:i + 2]
    a, b = read(args[0]), read(args[1])
    j = json.load(open(args[2]))
    if mask is not None:
        a, b = a[mask], b[mask]
    lo, hi = j["range"]
    p = soft_hist(a, j["bins"], lo, hi, j["sigma"])
    q = soft_hist(b, j["bins"], lo, hi, j["sigma"])
    ep = np.max(np.abs(p - np.array(j["hist_1"])))
    eq = np.max(np.abs(q - np.array(j["hist_2"])))
    want = {"js": js(p, q), "kl_12": kl(p, q), "kl_21": kl(q, p)}
    got = {k: (float("inf") if j[k] is None else j[k]) for k in want}  # JSON null = +Inf (hist.h)
    print(f"hist err {ep:.3g} {eq:.3g};", " ".join(f"{k} tool {got[k]:.10g} numpy {v:.10g}" for k, v in want.items()))
    ok = ep <= 1e-9 and eq <= 1e-9
    pairs = {"kl_12": (p, q), "kl_21": (q, p)}
    for k, v in want.items():
        if np.isinf(got[k]) and not np.isinf(v) and k in pairs:
            # hist.h lets the kernel stop at >= 6 sigma: a bin that only far tails reach is
            # exactly 0 there, and KL is +Inf. Accept only if numpy's bin is that small.
            a_, b_ = pairs[k]
            tiny = float(np.min(b_[a_ > 0]))
            print(f"{k}: tool +Inf from a bin numpy puts at {tiny:.3g} (< exp(-18) needed)")
            ok &= tiny < np.exp(-18.0)
        elif np.isinf(v) or np.isinf(got[k]):
            ok &= bool(got[k] == v)
        else:
            ok &= abs(got[k] - v) <= 1e-7 * max(abs(v), 1e-12)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
