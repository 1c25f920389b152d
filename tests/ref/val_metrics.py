#!/usr/bin/python3
"""val_metrics.py — held-out validation of fine-tuned weights, independent of the C code.

  val_metrics.py W.safetensors VAL.cvol     one JSON line

VAL.cvol holds 2-channel crops (0 = input, 1 = target; pairs.mk / vol-degrade --pair at 1 Å).
The network of torch_scunet.py (PyTorch, float32; float16 weights widened) is run on every
input crop; for the untouched input (the baseline) and for the prediction, against the
target, averaged over the crops:
  mse       mean squared error;
  fsc0143   resolution (Å) where the FSC (numpy FFT, shells of width one Fourier voxel,
            rounded radius) first falls below 0.143, linearly interpolated; Nyquist if never;
  cc_mask   Pearson correlation over the voxels where the target exceeds its mean
            (as jepa-train's val_cc_mask).
"""
import json
import sys

import numpy as np

import cvol
from torch_scunet import load_model


def fsc_resolution(a, b, apix=1.0, thr=0.143):
    n = a.shape[0]
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    g = np.meshgrid(*[np.fft.fftfreq(s) * n for s in a.shape], indexing="ij")
    shell = np.rint(np.sqrt(sum(x * x for x in g))).astype(int).ravel()
    num = np.bincount(shell, (fa * np.conj(fb)).real.ravel())
    da = np.bincount(shell, (np.abs(fa) ** 2).ravel())
    db = np.bincount(shell, (np.abs(fb) ** 2).ravel())
    nyq = n // 2
    f = num[:nyq + 1] / np.sqrt(np.maximum(da[:nyq + 1] * db[:nyq + 1], 1e-30))
    for s in range(1, nyq + 1):
        if f[s] < thr:
            x = s - 1 + (f[s - 1] - thr) / (f[s - 1] - f[s]) if f[s - 1] != f[s] else s
            return n * apix / max(x, 1e-9)
    return 2 * apix


def cc_mask(p, t):
    m = t > t.mean()
    return float(np.corrcoef(p[m], t[m])[0, 1])


def main():
    import torch
    torch.set_num_threads(2)
    model, _ = load_model(sys.argv[1])
    model = model.float().eval()
    frames = cvol.read_stream(sys.argv[2])
    res = {"input": [], "model": []}
    for fr in frames:
        d = np.asarray(fr["data"], np.float32)
        x, t = d[0], d[1]
        with torch.no_grad():
            y = model(torch.from_numpy(x)[None, None]).numpy()[0, 0]
        for k, p in (("input", x), ("model", y)):
            res[k].append((float(np.mean((p - t) ** 2)), fsc_resolution(p, t), cc_mask(p, t)))
    out = {"crops": len(frames)}
    for k, v in res.items():
        a = np.array(v)
        out[k] = {"mse": round(float(a[:, 0].mean()), 6), "fsc0143": round(float(a[:, 1].mean()), 3),
                  "cc_mask": round(float(a[:, 2].mean()), 4)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
