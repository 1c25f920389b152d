#!/usr/bin/python3
"""torch_layers.py — PyTorch reference for every layer of the engine (forward and gradients).

Usage: torch_layers.py DIR
DIR holds what `build/tests/test_layers --dump DIR` wrote: manifest.txt with one line
"<case> <layer> key=value ..." per case, and raw little-endian float32 files
<case>.<tensor>.f32 with the inputs, weights, upstream gradient `dout`, and our outputs and
gradients (activations channels-last N×D×H×W×C, weights in PyTorch layout).

For each case this recomputes the forward with torch.nn.functional (in float64, so the
reference carries no float32 rounding of its own), back-propagates `dout` with autograd, and
compares every output and gradient by relative error ||ours - ref|| / ||ref||; it passes when
each is below 1e-4 (--tol). Window attention has two independent references written here:
a 3D transcription of SCUNet's WMSA module (rearranges, generate_mask, torch.roll by -w/2),
usable when every grid extent is a multiple of the window, and a token-level one (full
attention per sample with an explicit same-window-and-same-region mask) that also covers
partial and shrunk windows; where both apply they must agree with each other too.

Exit status: 0 all cases pass, 1 a comparison failed, 2 bad input.
"""
import argparse
import itertools
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)
DT = torch.float64


def load(d, case, name, shape):
    a = np.fromfile(os.path.join(d, f"{case}.{name}.f32"), dtype="<f4")
    n = int(np.prod(shape))
    if a.size != n:
        raise SystemExit(f"torch_layers.py: {case}.{name}.f32: {a.size} floats, expected {n}")
    return torch.from_numpy(a.astype(np.float64)).reshape(shape)


def leaf(t):
    return t.clone().requires_grad_(True)


def ndhwc_to_ncdhw(x):
    return x.permute(0, 4, 1, 2, 3)


def ncdhw_to_ndhwc(x):
    return x.permute(0, 2, 3, 4, 1)


# ---- window attention references -------------------------------------------------------


def rel_index(coords, window):
    """Index triples into a (2w-1)^3 table for every (query, key) pair of local coords."""
    rel = coords[:, None, :] - coords[None, :, :] + window - 1
    return rel[..., 0], rel[..., 1], rel[..., 2]


def wmsa_scunet(x, wq, bq, table, wp, bp, hd, p, shifted):
    """SCUNet's WMSA, written for 3D: x is b×D×H×W×c, every extent a multiple of p."""
    b, D, H, W, c = x.shape
    heads = c // hd
    if shifted:
        x = torch.roll(x, shifts=(-(p // 2),) * 3, dims=(1, 2, 3))
    nd, nh, nw = D // p, H // p, W // p
    x = x.reshape(b, nd, p, nh, p, nw, p, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    x = x.reshape(b, nd * nh * nw, p ** 3, c)
    qkv = F.linear(x, wq, bq)
    # 'b nw np (threeh c) -> threeh b nw np c', then chunk into q, k, v
    qkv = qkv.reshape(b, nd * nh * nw, p ** 3, 3 * heads, hd).permute(3, 0, 1, 2, 4)
    q, k, v = qkv.chunk(3, dim=0)
    sim = torch.einsum("hbwpc,hbwqc->hbwpq", q, k) * hd ** -0.5
    cord = torch.tensor(list(itertools.product(range(p), repeat=3)))
    iz, iy, ix = rel_index(cord, p)
    sim = sim + table[:, iz, iy, ix][:, None, None]
    if shifted:
        s = p - p // 2
        m = torch.zeros(nd, nh, nw, p, p, p, p, p, p, dtype=torch.bool)
        m[-1, :, :, :s, :, :, s:, :, :] = True
        m[-1, :, :, s:, :, :, :s, :, :] = True
        m[:, -1, :, :, :s, :, :, s:, :] = True
        m[:, -1, :, :, s:, :, :, :s, :] = True
        m[:, :, -1, :, :, :s, :, :, s:] = True
        m[:, :, -1, :, :, s:, :, :, :s] = True
        m = m.reshape(1, 1, nd * nh * nw, p ** 3, p ** 3)
        sim = sim.masked_fill(m, float("-inf"))
    probs = torch.softmax(sim, dim=-1)
    out = torch.einsum("hbwij,hbwjc->hbwic", probs, v)
    out = out.permute(1, 2, 3, 0, 4).reshape(b, nd * nh * nw, p ** 3, c)
    out = F.linear(out, wp, bp)
    out = out.reshape(b, nd, nh, nw, p, p, p, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    out = out.reshape(b, D, H, W, c)
    if shifted:
        out = torch.roll(out, shifts=(p // 2,) * 3, dims=(1, 2, 3))
    return out


def wmsa_tokens(x, wq, bq, table, wp, bp, hd, window, shifted):
    """Token-level definition from nn_layers.h: any grid, partial and shrunk windows."""
    b, D, H, W, c = x.shape
    heads = c // hd
    L = [D, H, W]
    win = [min(window, l) for l in L]
    shift = [window // 2 if shifted and l >= window else 0 for l in L]
    x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    r = torch.tensor(list(itertools.product(range(D), range(H), range(W))))  # rolled coords
    wid = r // torch.tensor(win)
    local = r - wid * torch.tensor(win)
    region = (r >= torch.tensor([l - s for l, s in zip(L, shift)])) & (torch.tensor(shift) > 0)
    same = (wid[:, None, :] == wid[None, :, :]).all(-1) & (region[:, None, :] == region[None, :, :]).all(-1)
    iz, iy, ix = rel_index(local, window)
    bias = table[:, iz, iy, ix]  # heads × T × T
    t = x.reshape(b, D * H * W, c)
    qkv = F.linear(t, wq, bq).reshape(b, D * H * W, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # b × heads × T × hd
    sim = q @ k.transpose(-1, -2) * hd ** -0.5 + bias[None]
    sim = sim.masked_fill(~same[None, None], float("-inf"))
    y = torch.softmax(sim, dim=-1) @ v  # b × heads × T × hd
    y = y.permute(0, 2, 1, 3).reshape(b, D * H * W, c)
    out = F.linear(y, wp, bp).reshape(b, D, H, W, c)
    return torch.roll(out, shifts=tuple(shift), dims=(1, 2, 3))


# ---- cases -----------------------------------------------------------------------------


def run_case(d, case, layer, kv):
    """Returns {tensor name: (ours, reference)}."""
    i = lambda k: int(kv[k])
    L = lambda name, shape: load(d, case, name, shape)
    res = {}

    def grads(out, dout, named):
        out.backward(dout)
        for name, (t, shape) in named.items():
            res[name] = (L(name, shape), t.grad.reshape(shape))

    if layer in ("conv3d", "convt3d"):
        n, dd, h, w, cin, cout, k, s, p = (i(x) for x in "n d h w cin cout k s p".split())
        tr = layer == "convt3d"
        x = leaf(L("inp", (n, dd, h, w, cin)))
        wshape = (cin, cout, k, k, k) if tr else (cout, cin, k, k, k)
        wt = leaf(L("weight", wshape))
        bt = leaf(L("bias", (cout,))) if i("bias") else None
        f = F.conv_transpose3d if tr else F.conv3d
        y = ncdhw_to_ndhwc(f(ndhwc_to_ncdhw(x), wt, bt, stride=s, padding=p))
        ours = L("out", tuple(y.shape))
        res["out"] = (ours, y.detach())
        named = {"dinp": (x, tuple(x.shape)), "dweight": (wt, wshape)}
        if bt is not None:
            named["dbias"] = (bt, (cout,))
        grads(y, L("dout", tuple(y.shape)), named)
    elif layer == "linear":
        T, cin, cout = i("T"), i("cin"), i("cout")
        x, wt, bt = leaf(L("inp", (T, cin))), leaf(L("weight", (cout, cin))), leaf(L("bias", (cout,)))
        y = F.linear(x, wt, bt)
        res["out"] = (L("out", (T, cout)), y.detach())
        grads(y, L("dout", (T, cout)), {"dinp": (x, (T, cin)), "dweight": (wt, (cout, cin)), "dbias": (bt, (cout,))})
    elif layer == "layernorm":
        T, C, eps = i("T"), i("C"), float(kv["eps"])
        x, g, b = leaf(L("inp", (T, C))), leaf(L("gamma", (C,))), leaf(L("beta", (C,)))
        y = F.layer_norm(x, (C,), g, b, eps)
        res["out"] = (L("out", (T, C)), y.detach())
        grads(y, L("dout", (T, C)), {"dinp": (x, (T, C)), "dgamma": (g, (C,)), "dbeta": (b, (C,))})
    elif layer == "frn":
        N, dd, h, w, C, eps = i("N"), i("d"), i("h"), i("w"), i("C"), float(kv["eps"])
        shape = (N, dd, h, w, C)
        x, g, b, tau = leaf(L("inp", shape)), leaf(L("gamma", (C,))), leaf(L("beta", (C,))), leaf(L("tau", (C,)))
        xc = ndhwc_to_ncdhw(x)
        nu2 = xc.pow(2).mean(dim=(2, 3, 4), keepdim=True)
        v = lambda t: t.view(1, C, 1, 1, 1)
        yc = torch.max(v(g) * xc * torch.rsqrt(nu2 + eps) + v(b), v(tau))
        y = ncdhw_to_ndhwc(yc)
        res["out"] = (L("out", shape), y.detach())
        grads(y, L("dout", shape), {"dinp": (x, shape), "dgamma": (g, (C,)), "dbeta": (b, (C,)), "dtau": (tau, (C,))})
    elif layer in ("gelu", "relu", "softmax"):
        shape = (i("rows"), i("cols"))
        x = leaf(L("inp", shape))
        y = {"gelu": F.gelu, "relu": F.relu, "softmax": lambda t: F.softmax(t, dim=-1)}[layer](x)
        res["out"] = (L("out", shape), y.detach())
        grads(y, L("dout", shape), {"dinp": (x, shape)})
    elif layer == "wmsa":
        n, dd, h, w, c, hd, win, sh = (i(x) for x in "n d h w c head_dim window shifted".split())
        heads, t = c // hd, 2 * win - 1
        shape = (n, dd, h, w, c)
        x = leaf(L("inp", shape))
        wq, bq = leaf(L("qkv_weight", (3 * c, c))), leaf(L("qkv_bias", (3 * c,)))
        tab = leaf(L("rel_bias", (heads, t, t, t)))
        wp, bp = leaf(L("proj_weight", (c, c))), leaf(L("proj_bias", (c,)))
        y = wmsa_tokens(x, wq, bq, tab, wp, bp, hd, win, sh)
        if all(e % win == 0 for e in (dd, h, w)):
            y2 = wmsa_scunet(x, wq, bq, tab, wp, bp, hd, win, sh)
            res["out(scunet vs token ref)"] = (y2.detach(), y.detach())
        res["out"] = (L("out", shape), y.detach())
        grads(y, L("dout", shape), {
            "dinp": (x, shape), "dqkv_weight": (wq, (3 * c, c)), "dqkv_bias": (bq, (3 * c,)),
            "drel_bias": (tab, (heads * t ** 3,)), "dproj_weight": (wp, (c, c)), "dproj_bias": (bp, (c,))})
    elif layer == "concat":
        T, ca, cb = i("T"), i("ca"), i("cb")
        a, b = leaf(L("a", (T, ca))), leaf(L("b", (T, cb)))
        y = torch.cat([a, b], dim=-1)
        res["out"] = (L("out", (T, ca + cb)), y.detach())
        grads(y, L("dout", (T, ca + cb)), {"da": (a, (T, ca)), "db": (b, (T, cb))})
    elif layer == "roll":
        shape = tuple(i(k) for k in "n d h w c".split())
        x = leaf(L("inp", shape))
        y = torch.roll(x, shifts=(i("sd"), i("sh"), i("sw")), dims=(1, 2, 3))
        res["out"] = (L("out", shape), y.detach())
        grads(y, L("dout", shape), {"dinp": (x, shape)})
    elif layer == "droppath":
        N, per, p = i("N"), i("per"), float(kv["p"])
        x = leaf(L("inp", (N, per)))
        m = L("mask", (N,))
        ok = bool(((m == 0) | ((m - 1 / (1 - p)).abs() < 1e-6)).all())
        if not ok:
            raise SystemExit(f"torch_layers.py: {case}: mask values are not 0 or 1/(1-p)")
        y = x * m[:, None]  # timm drop_path given the same per-sample draw
        res["out"] = (L("out", (N, per)), y.detach())
        grads(y, L("dout", (N, per)), {"dinp": (x, (N, per))})
    else:
        raise SystemExit(f"torch_layers.py: {case}: unknown layer '{layer}'")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    path = os.path.join(a.dir, "manifest.txt")
    try:
        lines = [l.split() for l in open(path) if l.strip()]
    except OSError as e:
        print(f"torch_layers.py: {path}: {e.strerror}", file=sys.stderr)
        return 2
    if not lines:
        print(f"torch_layers.py: {path}: no cases", file=sys.stderr)
        return 2
    failed = 0
    worst = 0.0
    for parts in lines:
        case, layer = parts[0], parts[1]
        kv = dict(p.split("=", 1) for p in parts[2:])
        for name, (ours, ref) in run_case(a.dir, case, layer, kv).items():
            ours = ours.to(DT).reshape(-1)
            ref = ref.to(DT).reshape(-1)
            den = ref.norm().item()
            err = (ours - ref).norm().item() / den if den > 0 else (ours - ref).norm().item()
            bad = not (err < a.tol) or not np.isfinite(err) or not torch.isfinite(ours).all()
            worst = max(worst, err) if np.isfinite(err) else float("inf")
            print(f"{'FAIL' if bad else 'ok  '} {case:18s} {layer:9s} {name:26s} rel err {err:.2e}")
            failed += bad
    print(f"torch_layers.py: {len(lines)} cases, worst relative error {worst:.2e}, {failed} failed (tol {a.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
