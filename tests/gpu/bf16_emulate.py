#!/usr/bin/python3
"""bf16_emulate.py — the CUDA backend's CRYO_NN_PRECISION_BF16 arithmetic emulated in PyTorch
on the CPU, against float64, to size test_gpu's bf16 tolerances (no GPU needed; not run by
make check).

What is emulated (nn_backend.h, libcore/cuda):
  convolutions and transposed convolutions (cuDNN, every direction): both operands rounded
    to bfloat16 (round to nearest even), float accumulation, the result rounded to
    bfloat16, bias and weight-gradient accumulation float32;
  linear layers (cuBLAS): both operands of every product rounded, float32 results;
  window attention: Q·Kᵀ, P·V and their backward products with both operands rounded,
    float32 results; softmax, bias, mask float32.
With --tf32, CRYO_NN_PRECISION_TF32 instead: the operands of convolutions, transposed
convolutions and linear layers rounded to TF32 (10-bit mantissa, round to nearest, ties
away from zero), float32 results (no rounding of the output); window attention runs the
float32 kernels there, so its products are not rounded.
Metric as test_gpu: max|emulated − reference| / max|reference| per tensor; for the whole
network also the parameter gradients as one vector, ‖·‖₂ relative.

Usage:
  bf16_emulate.py [--tf32] ops [SEED]                 test_gpu's conv, convT and wmsa cases
  bf16_emulate.py [--tf32] net W.safetensors N BOX [SEED]   SCUNet-3D (weights from `lvm-model init`)
"""
import copy
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.grad import conv3d_input, conv3d_weight

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import torch_scunet as ts  # noqa: E402

conv3d, convt3d, linear, einsum = F.conv3d, F.conv_transpose3d, F.linear, torch.einsum


MODE = "bf16"


def r(a):
    """An operand as the tensor cores see it."""
    if MODE == "tf32":  # float32 values (held in float64): keep 10 of the 23 mantissa bits
        i = a.float().view(torch.int32)
        return ((i + 0x1000) & ~0x1FFF).view(torch.float32).to(a.dtype)
    return a.to(torch.bfloat16).to(a.dtype)


def ro(a):
    """A convolution's result: bf16 tensors in bf16 mode, float32 in tf32 mode."""
    return r(a) if MODE == "bf16" else a


class Lin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i, w, b):
        ctx.save_for_backward(i, w)
        ctx.hb = b is not None
        out = r(i) @ r(w).t()
        return out + b if b is not None else out

    @staticmethod
    def backward(ctx, g):
        i, w = ctx.saved_tensors
        g2, i2 = g.reshape(-1, g.shape[-1]), i.reshape(-1, i.shape[-1])
        return r(g) @ r(w), r(g2).t() @ r(i2), g2.sum(0) if ctx.hb else None


class Mm(torch.autograd.Function):  # batched a @ b
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return r(a) @ r(b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return r(g) @ r(b).transpose(-1, -2), r(a).transpose(-1, -2) @ r(g)


class Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i, w, b, stride, pad, tr):
        ctx.save_for_backward(i, w)
        ctx.a = (stride, pad, tr, b is not None)
        out = ro((convt3d if tr else conv3d)(r(i), r(w), None, stride, pad))
        return out + b.view(1, -1, 1, 1, 1) if b is not None else out

    @staticmethod
    def backward(ctx, g):
        i, w = ctx.saved_tensors
        stride, pad, tr, hb = ctx.a
        if tr:  # dinp = conv(dout), dweight = BackwardFilter(X = dout, dY = inp)
            di = ro(conv3d(r(g), r(w), None, stride, pad))
            dw = ro(conv3d_weight(r(g), w.shape, r(i), stride, pad))
        else:
            di = ro(conv3d_input(i.shape, r(w), r(g), stride, pad))
            dw = ro(conv3d_weight(r(i), w.shape, r(g), stride, pad))
        return di, dw, g.sum((0, 2, 3, 4)) if hb else None, None, None, None


def _one(x):
    return x if isinstance(x, int) else x[0]


def emulate(on):
    """Route F.conv3d / conv_transpose3d / linear and the attention's einsums through the
    emulation (on) or back to PyTorch (off)."""
    if not on:
        F.conv3d, F.conv_transpose3d, F.linear, torch.einsum = conv3d, convt3d, linear, einsum
        return
    F.conv3d = lambda i, w, b=None, stride=1, padding=0, *a, **k: Conv.apply(i, w, b, _one(stride), _one(padding),
                                                                            False)
    F.conv_transpose3d = lambda i, w, b=None, stride=1, padding=0, *a, **k: Conv.apply(i, w, b, _one(stride),
                                                                                     _one(padding), True)
    F.linear = lambda i, w, b=None: Lin.apply(i, w, b)
    if MODE == "tf32":  # attention: the float32 kernels
        return

    def es(eq, *ops):
        if eq == "bhpc,bhqc->bhpq":
            return Mm.apply(ops[0], ops[1].transpose(-1, -2))
        if eq == "bhpq,bhqc->bhpc":
            return Mm.apply(ops[0], ops[1])
        return einsum(eq, *ops)
    torch.einsum = es


def rel(a, ref):
    return ((a.double() - ref).abs().max() / ref.abs().max()).item()


def uni(shape, lo, hi):  # float32 values, held in float64
    return (lo + (hi - lo) * torch.rand(shape, dtype=torch.float64)).float().double()


def ops(seed):
    torch.manual_seed(seed)
    convs = [(0, 2, 10, 9, 8, 5, 7, 3, 1, 1, 1), (0, 1, 8, 8, 8, 8, 16, 2, 2, 0, 0), (0, 2, 6, 5, 4, 16, 8, 1, 1, 0, 1),
             (0, 1, 12, 12, 12, 32, 32, 3, 1, 1, 0), (1, 2, 4, 5, 3, 16, 8, 2, 2, 0, 1),
             (1, 1, 6, 6, 6, 32, 16, 2, 2, 0, 0)]
    for tr, n, d, h, w, cin, cout, k, s, p, b in convs:
        x = uni((n, cin, d, h, w), -1, 1)
        W = uni((cin, cout, k, k, k) if tr else (cout, cin, k, k, k), -0.3, 0.3)
        bias = uni((cout,), -0.5, 0.5) if b else None
        f = (lambda a, ww, bb: F.conv_transpose3d(a, ww, bb, s, p)) if tr else \
            (lambda a, ww, bb: F.conv3d(a, ww, bb, s, p))
        res, dy = [], None
        for on in (False, True):
            emulate(on)
            xr, wr = x.clone().requires_grad_(), W.clone().requires_grad_()
            y = f(xr, wr, bias)
            if dy is None:
                dy = uni(y.shape, -1, 1)
            y.backward(dy)
            res.append((y.detach(), xr.grad, wr.grad))
        emulate(False)
        (y0, dx0, dw0), (y1, dx1, dw1) = res
        print(f"{'convT' if tr else 'conv'} k{k} s{s} p{p} {n}x{d}x{h}x{w} {cin}->{cout}: fwd {rel(y1, y0):.1e} "
              f"dinp {rel(dx1, dx0):.1e} dweight {rel(dw1, dw0):.1e}")
    model = ts.build(ts.parse_config("width=16,head_dim=8,levels=1,depth=2"))
    WMSA = [type(m) for m in model.modules() if type(m).__name__ == "WMSA"][0]
    for n, d, h, w, c, hd, win, sh in [(1, 8, 8, 8, 32, 16, 4, 0), (1, 8, 8, 8, 32, 16, 4, 1), (2, 6, 6, 6, 16, 8, 4, 1),
                                       (1, 3, 8, 4, 16, 16, 4, 1), (2, 12, 8, 16, 64, 16, 4, 1),
                                       (1, 6, 6, 6, 64, 32, 6, 0), (1, 8, 8, 8, 64, 32, 8, 0)]:
        m = WMSA(c, hd, win, bool(sh)).double()
        with torch.no_grad():
            m.embedding_layer.weight.uniform_(-0.4, 0.4)
            m.embedding_layer.bias.uniform_(-0.2, 0.2)
            m.relative_position_params.uniform_(-1, 1)
            m.linear.weight.uniform_(-0.3, 0.3)
            m.linear.bias.uniform_(-0.2, 0.2)
        x, dy = uni((n, d, h, w, c), -1, 1), uni((n, d, h, w, c), -1, 1)
        out = []
        for on in (False, True):
            emulate(on)
            mm = copy.deepcopy(m)
            xr = x.clone().requires_grad_()
            y = mm(xr)
            y.backward(dy)
            out.append([y.detach(), xr.grad] + [p_.grad for p_ in mm.parameters()])
        emulate(False)
        names = ["fwd", "dinp"] + [nm for nm, _ in m.named_parameters()]
        print(f"wmsa {n}x{d}x{h}x{w} c{c} hd{hd} w{win}{' shifted' if sh else ''}: " +
              ", ".join(f"{nm} {rel(a, b):.1e}" for nm, a, b in zip(names, out[1], out[0])))


def net(wpath, n, box, seed):
    w, meta = ts.st_read(wpath)
    m = ts.build(ts.parse_config(meta["config"]))
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()}, strict=True)
    m = m.double().eval()
    torch.manual_seed(seed)
    x, t = uni((n, 1, box, box, box), -1, 1), uni((n, 1, box, box, box), -1, 1)
    res = []
    for on in (False, True):
        emulate(on)
        mm = copy.deepcopy(m)
        y = mm(x)
        loss = ((y - t) ** 2).mean()
        loss.backward()
        res.append((y.detach(), loss.item(), [p.grad for p in mm.parameters()]))
    emulate(False)
    (y0, l0, g0), (y1, l1, g1) = res
    names = [nm for nm, _ in m.named_parameters()]
    worst = max((rel(a, b), nm) for a, b, nm in zip(g1, g0, names))
    v0, v1 = torch.cat([g.reshape(-1) for g in g0]), torch.cat([g.reshape(-1) for g in g1])
    print(f"scunet {meta['config']} {n}x{box}^3: forward {rel(y1, y0):.2e}, loss {abs(l1 - l0) / abs(l0):.1e}, "
          f"gradients as one vector (rel L2) {((v1 - v0).norm() / v0.norm()).item():.2e}, "
          f"worst tensor {worst[0]:.2e} ({worst[1]})")


def main(argv):
    global MODE
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    if len(argv) >= 2 and argv[1] == "--tf32":
        MODE = "tf32"
        argv = argv[:1] + argv[2:]
    if len(argv) >= 2 and argv[1] == "ops":
        ops(int(argv[2]) if len(argv) > 2 else 0)
    elif len(argv) >= 5 and argv[1] == "net":
        net(argv[2], int(argv[3]), int(argv[4]), int(argv[5]) if len(argv) > 5 else 1)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
