#!/usr/bin/python3
"""layers_torch.py — the PyTorch side of bench/layers.sh: the same layers and shapes as
bench/layers_bench.c, float32, 2 threads, NCDHW Conv3d as users write it, SCUNet's WMSA
(transcribed in tests/ref/torch_layers.py) for attention. One line per layer:
"name fwd_ms fwdbwd_ms". Best of 7 runs after 2 warm-ups."""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from torch_layers import wmsa_scunet  # noqa: E402

torch.set_num_threads(int(os.environ.get("CRYO_THREADS", "2")))
REPS = 7


def median_ms(fn):
    fn()
    fn()
    t = []
    for _ in range(REPS):
        a = time.perf_counter()
        fn()
        t.append((time.perf_counter() - a) * 1e3)
    return min(t)  # best of REPS: on a shared machine the minimum is the uncontended time


def bench(name, make):
    fwd, fwdbwd = make()
    print(f"{name} {median_ms(fwd):.3f} {median_ms(fwdbwd):.3f}", flush=True)


def conv(n, s, cin, cout, k, st, p, bias, tr=False):
    def make():
        x = torch.randn(n, cin, s, s, s, requires_grad=True)
        w = torch.randn(*((cin, cout) if tr else (cout, cin)), k, k, k, requires_grad=True)
        b = torch.randn(cout, requires_grad=True) if bias else None
        f = F.conv_transpose3d if tr else F.conv3d

        def fwd():
            with torch.no_grad():
                f(x, w, b, stride=st, padding=p)

        y0 = f(x, w, b, stride=st, padding=p)
        dy = torch.randn_like(y0)

        def fwdbwd():
            y = f(x, w, b, stride=st, padding=p)
            y.backward(dy)

        return fwd, fwdbwd
    return make


def wmsa(s, c, hd=16, win=4, shifted=True, n=1):
    def make():
        heads = c // hd
        t = 2 * win - 1
        x = torch.randn(n, s, s, s, c, requires_grad=True)
        wq = (torch.randn(3 * c, c) / c ** 0.5).requires_grad_(True)
        bq = torch.randn(3 * c, requires_grad=True)
        tab = torch.randn(heads, t, t, t, requires_grad=True)
        wp = (torch.randn(c, c) / c ** 0.5).requires_grad_(True)
        bp = torch.randn(c, requires_grad=True)
        run = lambda: wmsa_scunet(x, wq, bq, tab, wp, bp, hd, win, shifted)

        def fwd():
            with torch.no_grad():
                run()

        dy = torch.randn(n, s, s, s, c)

        def fwdbwd():
            run().backward(dy)

        return fwd, fwdbwd
    return make


def eltwise(kind, T, C):
    def make():
        x = torch.randn(T, C, requires_grad=True)
        g = torch.randn(C, requires_grad=True)
        b = torch.randn(C, requires_grad=True)
        tau = torch.randn(C, requires_grad=True)
        if kind == "gelu":
            f = lambda: F.gelu(x)
        elif kind == "layernorm":
            f = lambda: F.layer_norm(x, (C,), g, b, 1e-5)
        else:  # FRN + TLU on one sample, channels-last tokens
            f = lambda: torch.max(g * x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + 1e-6) + b, tau)
        dy = torch.randn(T, C)

        def fwd():
            with torch.no_grad():
                f()

        def fwdbwd():
            f().backward(dy)

        return fwd, fwdbwd
    return make


CASES = [
    ("conv3_c32_48", conv(1, 48, 32, 32, 3, 1, 1, True)),
    ("conv3_c64_24", conv(1, 24, 64, 64, 3, 1, 1, True)),
    ("conv3_c1to32_48", conv(1, 48, 1, 32, 3, 1, 1, False)),
    ("conv1_c64_48", conv(1, 48, 64, 64, 1, 1, 0, True)),
    ("down2_c32to64_48", conv(1, 48, 32, 64, 2, 2, 0, False)),
    ("up2_c64to32_24", conv(1, 24, 64, 32, 2, 2, 0, False, tr=True)),
    ("wmsa_c32_48", wmsa(48, 32)),
    ("wmsa_c64_24", wmsa(24, 64)),
    ("wmsa_global_c192_8", wmsa(8, 192, hd=32, win=8, shifted=False, n=2)),
    ("gelu_c128_48", eltwise("gelu", 48 ** 3, 128)),
    ("layernorm_c32_48", eltwise("layernorm", 48 ** 3, 32)),
    ("frn_c32_48", eltwise("frn", 48 ** 3, 32)),
]

if __name__ == "__main__":
    only = sys.argv[1] if len(sys.argv) > 1 else None
    for name, make in CASES:
        if only is None or only in name:
            bench(name, make)
