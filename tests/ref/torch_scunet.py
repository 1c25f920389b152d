#!/usr/bin/python3
"""torch_scunet.py — an independent PyTorch SCUNet-3D and safetensors reader/writer.

Used by tests/bats/engine-model.bats and bench/engine.sh to check the C engine:
the module's state_dict names and shapes are those of libcore's parameter table
(libcore/nn/model_params.c), so weights pass between the two through safetensors.

Architecture: see libcore/include/cryolvm/nn_model.h. Written from the SCUNet paper and
the CryoLVM description (FRN instead of ReLU in the convolution half), NCDHW for the
convolutions and channels-last for the transformer half, like SCUNet's code. Window
attention pads each axis to a multiple of its window and masks padded keys; shifted
windows roll by -window/2 and mask tokens whose rolled position falls on different sides
of L - window/2 (Swin). An axis shorter than the window uses one window of its length and
no shift.

Commands:
  torch_scunet.py write-st OUT.safetensors           numpy-written test file (several dtypes)
  torch_scunet.py check-st IN.safetensors            verify a file written by test code (see bats)
  torch_scunet.py load-state W.safetensors CONFIG    torch.load_state_dict(strict) of our weights
  torch_scunet.py make-batch OUT.safetensors N D H W CIN COUT SEED
  torch_scunet.py parity W.safetensors BATCH.safetensors OURS.safetensors [TOL]
  torch_scunet.py init W.safetensors CONFIG SEED     weights initialised by PyTorch
  torch_scunet.py forward W.safetensors IN.safetensors OUT.safetensors
  torch_scunet.py optim DIR/optim.safetensors        compare test_optim --dump with PyTorch
  torch_scunet.py set-tau W OUT VALUE                copy of W with every FRN threshold = VALUE
  torch_scunet.py check-run W IN.mrc OUT.mrc [TOL]   lvm-model run output against PyTorch
  torch_scunet.py bench W BOX BATCH train|forward|forward-bf16 REPEAT [THREADS]   PyTorch timing
                                                     (forward-bf16: torch.autocast CPU bfloat16)
  torch_scunet.py jepa DIR/jepa.safetensors [TOL]    compare test_model --dump-jepa with PyTorch
  torch_scunet.py jepa-bench W BOX BATCH REPEAT [THREADS]   PyTorch timing of one JEPA step
  torch_scunet.py flops CONFIG BOX                   GFLOP of one forward, counted by hooks
  torch_scunet.py train-steps DIR [TOL]              replay test_model --dump-train with torch.optim
"""
import json
import math
import struct
import sys

import numpy as np

ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
    "U64": np.uint64, "BOOL": np.bool_,
}
NP_TO_ST = {np.dtype(v).str: k for k, v in ST_DTYPES.items()}


def st_write(path, tensors, metadata=None):
    """Write a safetensors file by hand (the format spec, no library)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    blobs = []
    for name, arr in tensors.items():
        a = np.array(arr, order="C")  # ascontiguousarray would turn a scalar into shape (1,)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {"dtype": NP_TO_ST[a.dtype.str], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    """Read a safetensors file by hand; returns (dict name -> array, metadata)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
    header = json.loads(raw[8:8 + n].decode())
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    covered = 0
    for name, e in header.items():
        b, en = e["data_offsets"]
        dt = np.dtype(ST_DTYPES[e["dtype"]]).newbyteorder("<")
        a = np.frombuffer(data[b:en], dtype=dt).reshape(e["shape"])
        out[name] = a.copy()
        covered += en - b
    assert covered == len(data), "tensors do not cover the data section"
    return out, meta


def parse_config(text):
    cfg = dict(in_ch=1, out_ch=1, width=32, levels=3, depth=2, window=4, head_dim=16, mlp_ratio=4,
               drop_path=0.0)
    for item in filter(None, text.split(",")):
        k, v = item.split("=")
        assert k in cfg, k
        cfg[k] = float(v) if k == "drop_path" else int(v)
    return cfg  # drop_path only acts in training mode; these modules run in eval mode


def build(cfg):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class FRN(nn.Module):
        def __init__(self, c, eps=1e-6):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(c))
            self.beta = nn.Parameter(torch.zeros(c))
            self.tau = nn.Parameter(torch.zeros(c))
            self.eps = eps

        def forward(self, x):  # N C D H W
            nu2 = x.pow(2).mean(dim=(2, 3, 4), keepdim=True)
            x = x * torch.rsqrt(nu2 + self.eps)
            v = lambda p: p.view(1, -1, 1, 1, 1)
            return torch.max(v(self.gamma) * x + v(self.beta), v(self.tau))

    class WMSA(nn.Module):
        def __init__(self, dim, head_dim, window, shifted):
            super().__init__()
            self.dim, self.hd, self.w, self.shifted = dim, head_dim, window, shifted
            self.heads = dim // head_dim
            r = 2 * window - 1
            self.embedding_layer = nn.Linear(dim, 3 * dim)
            self.relative_position_params = nn.Parameter(torch.zeros(self.heads, r, r, r))
            nn.init.trunc_normal_(self.relative_position_params, std=0.02)
            self.linear = nn.Linear(dim, dim)
            self._geom = {}

        def geometry(self, N, L, win, sh, nw, nt):
            w = self.w
            # rolled global position of every (window, token) per axis
            pos = []
            for a in range(3):
                g = torch.arange(nw[a]).view(-1, 1) * win[a] + torch.arange(win[a]).view(1, -1)
                pos.append(g)  # nw[a] x win[a]
            def per_token(a):  # (nwin_all, nt) global rolled position along axis a
                shape_w = [1, 1, 1]
                shape_w[a] = nw[a]
                shape_t = [1, 1, 1]
                shape_t[a] = win[a]
                g = pos[a].view(*(shape_w + shape_t))  # axes: wD wH wW tD tH tW
                g = g.expand(nw[0], nw[1], nw[2], win[0], win[1], win[2])
                return g.reshape(nw[0] * nw[1] * nw[2], nt)
            gp = [per_token(a) for a in range(3)]
            valid = (gp[0] < L[0]) & (gp[1] < L[1]) & (gp[2] < L[2])  # nwin x nt
            allow = valid[:, None, :].expand(-1, nt, -1).clone()
            for a in range(3):
                if sh[a]:
                    reg = gp[a] >= L[a] - sh[a]
                    allow &= reg[:, :, None] == reg[:, None, :]
            allow = allow.repeat(N, 1, 1)  # (N nwin) nt nt, sample-major like x
            # relative position bias
            loc = [torch.arange(win[a]) for a in range(3)]
            lz, ly, lx = torch.meshgrid(loc[0], loc[1], loc[2], indexing="ij")
            lz, ly, lx = lz.reshape(-1), ly.reshape(-1), lx.reshape(-1)
            iz = lz[:, None] - lz[None, :] + w - 1
            iy = ly[:, None] - ly[None, :] + w - 1
            ix = lx[:, None] - lx[None, :] + w - 1
            # the mask forbids a key: padding, or another side of a shifted boundary
            return allow, iz, iy, ix

        def forward(self, x):  # N D H W C
            N, L = x.shape[0], list(x.shape[1:4])
            C, w = self.dim, self.w
            win = [min(w, l) for l in L]
            sh = [w // 2 if (self.shifted and l >= w) else 0 for l in L]
            if any(sh):
                x = torch.roll(x, shifts=(-sh[0], -sh[1], -sh[2]), dims=(1, 2, 3))
            nw = [(l + s - 1) // s for l, s in zip(L, win)]
            P = [n * s for n, s in zip(nw, win)]
            x = F.pad(x, (0, 0, 0, P[2] - L[2], 0, P[1] - L[1], 0, P[0] - L[0]))
            # partition: N nD wD nH wH nW wW C -> (N nwin) nt C
            x = x.view(N, nw[0], win[0], nw[1], win[1], nw[2], win[2], C)
            x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, win[0] * win[1] * win[2], C)
            nt = x.shape[1]
            key = (N, tuple(L))
            if key not in self._geom:  # masks and bias indices depend on the grid only
                self._geom[key] = self.geometry(N, L, win, sh, nw, nt)
            allow, iz, iy, ix = self._geom[key]
            bias = self.relative_position_params[:, iz, iy, ix]  # heads nt nt
            qkv = self.embedding_layer(x)  # B nt 3C
            B = qkv.shape[0]
            qkv = qkv.view(B, nt, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # B heads nt hd
            sim = torch.einsum("bhpc,bhqc->bhpq", q, k) * self.hd ** -0.5 + bias[None]
            sim = sim.masked_fill(~allow[:, None], float("-inf"))
            att = torch.softmax(sim, dim=-1)
            y = torch.einsum("bhpq,bhqc->bhpc", att, v).permute(0, 2, 1, 3).reshape(B, nt, C)
            y = self.linear(y)
            y = y.view(N, nw[0], nw[1], nw[2], win[0], win[1], win[2], C)
            y = y.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(N, P[0], P[1], P[2], C)
            y = y[:, :L[0], :L[1], :L[2]]
            if any(sh):
                y = torch.roll(y, shifts=(sh[0], sh[1], sh[2]), dims=(1, 2, 3))
            return y

    class TransBlock(nn.Module):
        def __init__(self, dim, head_dim, window, shifted, mlp_ratio):
            super().__init__()
            self.ln1 = nn.LayerNorm(dim)
            self.msa = WMSA(dim, head_dim, window, shifted)
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                     nn.Linear(mlp_ratio * dim, dim))

        def forward(self, x):
            x = x + self.msa(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class SCBlock(nn.Module):
        def __init__(self, C, shifted):
            super().__init__()
            h = C // 2
            self.h = h
            self.conv1_1 = nn.Conv3d(C, C, 1, 1, 0, bias=True)
            self.conv1_2 = nn.Conv3d(C, C, 1, 1, 0, bias=True)
            self.conv_block = nn.Sequential(nn.Conv3d(h, h, 3, 1, 1, bias=False), FRN(h),
                                            nn.Conv3d(h, h, 3, 1, 1, bias=False), FRN(h))
            self.trans_block = TransBlock(h, cfg["head_dim"], cfg["window"], shifted,
                                          cfg["mlp_ratio"])

        def forward(self, x):
            a, b = torch.split(self.conv1_1(x), (self.h, self.h), dim=1)
            a = self.conv_block(a) + a
            b = self.trans_block(b.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
            return x + self.conv1_2(torch.cat((a, b), dim=1))

    def blocks(C):
        return nn.ModuleList([SCBlock(C, i % 2 == 1) for i in range(cfg["depth"])])

    class Enc(nn.Module):
        def __init__(self, C):
            super().__init__()
            self.blocks = blocks(C)
            self.down = nn.Conv3d(C, 2 * C, 2, 2, 0, bias=False)

    class Dec(nn.Module):
        def __init__(self, C):
            super().__init__()
            self.up = nn.ConvTranspose3d(2 * C, C, 2, 2, 0, bias=False)
            self.blocks = blocks(C)

    class SCUNet3D(nn.Module):
        def __init__(self):
            super().__init__()
            W, Lv = cfg["width"], cfg["levels"]
            self.head = nn.Conv3d(cfg["in_ch"], W, 3, 1, 1, bias=False)
            self.enc = nn.ModuleList([Enc(W << l) for l in range(Lv)])
            self.body = blocks(W << Lv)
            self.dec = nn.ModuleList([Dec(W << l) for l in range(Lv)])
            self.tail = nn.Conv3d(W, cfg["out_ch"], 3, 1, 1, bias=False)

        def forward(self, x):  # N C D H W
            skips = [self.head(x)]
            y = skips[0]
            for e in self.enc:
                for b in e.blocks:
                    y = b(y)
                y = e.down(y)
                skips.append(y)
            for b in self.body:
                y = b(y)
            for l in reversed(range(len(self.dec))):
                y = self.dec[l].up(y + skips[l + 1])
                for b in self.dec[l].blocks:
                    y = b(y)
            return self.tail(y + skips[0])

    return SCUNet3D()


def posenc(N, gd, gh, gw, E):
    """MAE-style 1D sin-cos per axis, concatenated z | y | x (nn_jepa.h)."""
    q = E // 6
    w = 10000.0 ** (-np.arange(q) / q)
    def axis(n):
        a = np.arange(n)[:, None] * w[None, :]
        return np.concatenate([np.sin(a), np.cos(a)], axis=1)  # n x 2q
    z, y, x = axis(gd), axis(gh), axis(gw)
    P = np.concatenate([
        np.broadcast_to(z[:, None, None, :], (gd, gh, gw, 2 * q)),
        np.broadcast_to(y[None, :, None, :], (gd, gh, gw, 2 * q)),
        np.broadcast_to(x[None, None, :, :], (gd, gh, gw, 2 * q))], axis=3)
    return np.broadcast_to(P, (N, gd, gh, gw, E)).copy()


def build_jepa(cfg):
    """JEPA predictor + MAE head with the names of libcore/nn/model_jepa.c."""
    import torch
    import torch.nn as nn

    E, hd = cfg["embed"], cfg["head_dim"]

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(E, 3 * E)
            self.proj = nn.Linear(E, E)

        def forward(self, x):  # B T E, attention over all T
            B, T, _ = x.shape
            h = E // hd
            qkv = self.qkv(x).view(B, T, 3, h, hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1)
            return self.proj((a @ v).transpose(1, 2).reshape(B, T, E))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(E, cfg["mlp_ratio"] * E)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(cfg["mlp_ratio"] * E, E)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(E)
            self.attn = Attn()
            self.norm2 = nn.LayerNorm(E)
            self.mlp = Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class JEPAPredictor(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = nn.Linear(cfg["features"], E)
            self.mask_token = nn.Parameter(torch.zeros(E))
            self.blocks = nn.ModuleList([Block() for _ in range(cfg["depth"])])
            self.norm = nn.LayerNorm(E)
            self.proj = nn.Linear(E, E)
            self.mae = nn.Linear(E, cfg["patch"] ** 3 * cfg["out_ch"])

        def forward(self, feat, mask):  # feat N gd gh gw F, mask N gd gh gw bool
            N, gd, gh, gw, _ = feat.shape
            P = torch.from_numpy(posenc(N, gd, gh, gw, E)).to(feat.dtype)
            e = self.patch_embed(feat) + P
            z = torch.where(mask[..., None], self.mask_token + P, e)
            x = z.reshape(N, gd * gh * gw, E)
            for b in self.blocks:
                x = b(x)
            y = self.norm(x)
            return self.proj(y).reshape(N, gd, gh, gw, E), self.mae(y).reshape(N, gd, gh, gw, -1), e

    return JEPAPredictor()


def check_jepa(path, tol):
    import torch
    torch.set_num_threads(2)
    d, meta = st_read(path)
    cfg = {k: int(v) for k, v in (item.split("=") for item in meta["jepa"].split(","))}
    model = build_jepa(cfg).double()
    sd = {k: torch.from_numpy(v).double() for k, v in d.items() if k in dict(model.named_parameters())}
    model.load_state_dict(sd, strict=True)
    feat = torch.from_numpy(d["features"]).double().requires_grad_(True)
    mask = torch.from_numpy(d["mask"]).bool()
    pred, vox, e = model(feat, mask)
    (pred * torch.from_numpy(d["dpred"]).double()).sum().add_(
        (vox * torch.from_numpy(d["dvox"]).double()).sum()).backward()
    errs = [(rel(d["pred"], pred.detach().numpy()), "pred"), (rel(d["vox"], vox.detach().numpy()), "vox"),
            (rel(d["embeddings"], e.detach().numpy()), "embeddings"),
            (rel(d["dfeatures"], feat.grad.numpy()), "dfeatures")]
    for n, p in model.named_parameters():
        errs.append((rel(d["grad." + n], p.grad.numpy()), "grad." + n))
    errs.sort(reverse=True)
    for e_, n in errs[:4]:
        print(f"{n}: rel err {e_:.3g}")
    print(f"jepa: compared {len(errs)} tensors, worst {errs[0][0]:.3g} (tol {tol}), "
          f"{int(d['mask'].sum())} of {d['mask'].size} tokens masked")
    return 0 if all(e_ <= tol for e_, _ in errs) else 1


def load_model(wpath):
    import torch
    w, meta = st_read(wpath)
    cfg = parse_config(meta["config"])
    model = build(cfg)
    sd = {k: torch.from_numpy(v) for k, v in w.items() if not k.startswith(("optim.", "ema.", "train."))}
    model.load_state_dict(sd, strict=True)
    return model, cfg


def autocast_ready(model):
    """PyTorch 1.13's CPU autocast runs convolutions and matmuls in bfloat16 but leaves
    LayerNorm alone, which then refuses a bfloat16 input with float32 weights: feed every
    LayerNorm float32 (what autocast does on CUDA). Returns the model."""
    import torch
    for mod in model.modules():
        if isinstance(mod, torch.nn.LayerNorm):
            mod.register_forward_pre_hook(lambda m, a: tuple(t.float() for t in a))
    return model


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


def main(argv):
    cmd = argv[1]
    if cmd == "write-st":
        rng = np.random.default_rng(7)
        st_write(argv[2], {
            "layer.0.weight": rng.standard_normal((4, 3, 2)).astype(np.float32),
            "layer.0.bias": rng.standard_normal(4).astype(np.float64),
            "steps": np.array([3, -5, 1 << 40], np.int64),
            "scalar": np.array(2.5, np.float32),
            "empty": np.zeros((0, 3), np.float32),
        }, {"config": "width=8", "note": "written by numpy"})
        return 0
    if cmd == "load-state":
        import torch
        w, meta = st_read(argv[2])
        cfg = parse_config(argv[3] if len(argv) > 3 else meta["config"])
        model = build(cfg)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
        n = sum(p.numel() for p in model.parameters())
        print(f"loaded {len(w)} tensors, {n} parameters")
        return 0
    if cmd == "init":
        import torch
        cfg = parse_config(argv[3])
        torch.manual_seed(int(argv[4]))
        model = build(cfg)
        st_write(argv[2], {k: v.detach().numpy() for k, v in model.state_dict().items()},
                 {"config": ",".join(f"{k}={v}" for k, v in cfg.items()), "format": "cryolvm-scunet3d"})
        return 0
    if cmd == "make-batch":
        n, d, h, w, cin, cout, seed = map(int, argv[3:10])
        rng = np.random.default_rng(seed)
        st_write(argv[2], {
            "input": rng.standard_normal((n, d, h, w, cin)).astype(np.float32),
            "dout": rng.standard_normal((n, d, h, w, cout)).astype(np.float32),
        })
        return 0
    if cmd == "parity":
        import torch
        torch.set_num_threads(2)
        model, cfg = load_model(argv[2])
        batch, _ = st_read(argv[3])
        ours, _ = st_read(argv[4])
        tol = float(argv[5]) if len(argv) > 5 else 1e-4
        model = model.double()  # the reference in float64
        x = torch.from_numpy(batch["input"]).double().permute(0, 4, 1, 2, 3)
        out = model(x)
        dout = torch.from_numpy(batch["dout"]).double().permute(0, 4, 1, 2, 3)
        (out * dout).sum().backward()
        worst = []
        e = rel(ours["output"], out.detach().permute(0, 2, 3, 4, 1).numpy())
        worst.append((e, "output"))
        for name, p in model.named_parameters():
            g = ours.get("grad." + name)
            if g is None:
                print(f"missing gradient grad.{name}")
                return 1
            worst.append((rel(g, p.grad.numpy()), "grad." + name))
        worst.sort(reverse=True)
        bad = [t for t in worst if not t[0] <= tol]
        for e, n in worst[:5]:
            print(f"{n}: rel err {e:.3g}")
        print(f"compared output and {len(worst) - 1} gradients, worst {worst[0][0]:.3g} (tol {tol})")
        return 1 if bad else 0
    if cmd == "forward":
        import torch
        torch.set_num_threads(2)
        model, cfg = load_model(argv[2])
        inp, _ = st_read(argv[3])
        with torch.no_grad():
            y = model(torch.from_numpy(inp["input"]).permute(0, 4, 1, 2, 3))
        st_write(argv[4], {"output": y.permute(0, 2, 3, 4, 1).contiguous().numpy()})
        return 0
    if cmd == "set-tau":
        # FRN thresholds far below the data: the TLU max(y, tau) then never clips. At the
        # default tau = 0 it is a ReLU, and voxels with y within float32 rounding of 0 take
        # different branches in float32 and float64, which moves some gradients of the
        # default network by ~1e-2 relative in PyTorch's own float32 as much as in ours.
        w, meta = st_read(argv[2])
        for k in w:
            if k.endswith(".tau"):
                w[k][:] = float(argv[4])
        st_write(argv[3], w, meta)
        return 0
    if cmd == "check-run":
        # lvm-model run output (MRC) against the PyTorch forward on the same MRC input
        import mrcfile
        import torch
        torch.set_num_threads(2)
        model, cfg = load_model(argv[2])
        with mrcfile.open(argv[3], permissive=False) as m:
            x = np.array(m.data, np.float32)
        with mrcfile.open(argv[4], permissive=False) as m:
            y = np.array(m.data, np.float32)
            vs = m.voxel_size
        with mrcfile.open(argv[3]) as m:
            vs_in = m.voxel_size
        assert y.shape == x.shape, (y.shape, x.shape)
        assert np.allclose([vs.x, vs.y, vs.z], [vs_in.x, vs_in.y, vs_in.z]), "voxel size changed"
        with torch.no_grad():
            ref = model.double()(torch.from_numpy(x).double()[None, None])[0, 0].numpy()
        e = rel(y, ref)
        tol = float(argv[5]) if len(argv) > 5 else 1e-4
        print(f"run vs PyTorch: rel err {e:.3g} (tol {tol})")
        return 0 if e <= tol else 1
    if cmd == "flops":
        # flops CONFIG BOX: multiply-adds x 2 of one forward, counted by hooks on the module's
        # Conv3d, ConvTranspose3d and Linear calls plus the attention products of every
        # window (real tokens only), independently of libcore's formula
        import torch
        cfg = parse_config(argv[2])
        box = int(argv[3])
        model = build(cfg)
        total = [0.0]

        def hook(mod, inp, out):
            x = inp[0]
            if isinstance(mod, torch.nn.Conv3d):
                k = mod.kernel_size[0] ** 3
                total[0] += 2.0 * mod.in_channels * mod.out_channels * k * out[0, 0].numel() * out.shape[0]
            elif isinstance(mod, torch.nn.ConvTranspose3d):
                k = mod.kernel_size[0] ** 3
                total[0] += 2.0 * mod.in_channels * mod.out_channels * k * x[0, 0].numel() * x.shape[0]
            elif isinstance(mod, torch.nn.Linear) and not getattr(mod, "in_wmsa", False):
                total[0] += 2.0 * mod.in_features * mod.out_features * (x.numel() // mod.in_features)
        for mod in model.modules():
            mod.register_forward_hook(hook)
            if hasattr(mod, "relative_position_params"):
                def att_hook(mod, inp, out):
                    x = inp[0]
                    N, L = x.shape[0], list(x.shape[1:4])
                    allow, _, _, _ = mod._geom[(N, tuple(L))]
                    # every (query, key) pair of real tokens in a window is computed
                    valid = allow.any(dim=1)  # key valid in its window
                    real = valid.sum(dim=1).double()
                    total[0] += 2.0 * 2.0 * float((real ** 2).sum()) * mod.dim
                    # the projections over the real tokens (this module also runs them on
                    # its zero padding, which is not arithmetic the network needs)
                    total[0] += 2.0 * 4 * mod.dim * mod.dim * N * L[0] * L[1] * L[2]
                mod.embedding_layer.in_wmsa = mod.linear.in_wmsa = True
                mod.register_forward_hook(att_hook)
        with torch.no_grad():
            model(torch.zeros(1, cfg["in_ch"], box, box, box))
        print(f"{total[0] / 1e9:.6f}")
        return 0
    if cmd == "train-steps":
        # train-steps DIR [TOL]: the C trainer's two steps replayed with torch.optim.AdamW
        # (decay on Conv3d/ConvTranspose3d/Linear weights only), F.mse_loss, clip_grad_norm_
        # and an independent warm-up + cosine schedule, in float64
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(2)
        d = argv[2]
        tol = float(argv[3]) if len(argv) > 3 else 1e-4
        model, cfg = load_model(f"{d}/w0.safetensors")
        model = model.double()
        batch, meta = st_read(f"{d}/batch.safetensors")
        o = {k: float(v) for k, v in (i.split("=") for i in meta["train"].split(","))}
        decay, other = [], []
        for mod in model.modules():
            for name, p in mod.named_parameters(recurse=False):
                is_w = isinstance(mod, (torch.nn.Conv3d, torch.nn.ConvTranspose3d, torch.nn.Linear)) and name == "weight"
                (decay if is_w else other).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                                 {"params": other, "weight_decay": 0.0}],
                                lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
        def lr_at(t):
            if t <= o["warmup"]:
                return o["lr"] * t / o["warmup"]
            f = (t - o["warmup"]) / (o["total"] - o["warmup"])
            return o["min_lr"] + 0.5 * (o["lr"] - o["min_lr"]) * (1 + math.cos(math.pi * f))
        x = torch.from_numpy(batch["input"]).double().permute(0, 4, 1, 2, 3)
        y = torch.from_numpy(batch["target"]).double().permute(0, 4, 1, 2, 3)
        for step in range(1, int(o["steps"]) + 1):
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), o["clip"])
            opt.step()
        ours, _ = st_read(f"{d}/w2.safetensors")
        w0, _ = st_read(f"{d}/w0.safetensors")

        def part(n, a):
            # The key third of the qkv bias has an exactly zero gradient (adding a constant
            # to every key score of a query leaves its softmax unchanged), so both sides
            # update it by lr·sign(rounding noise): compare the query and value parts only.
            if n.endswith("embedding_layer.bias"):
                h = a.shape[0] // 3
                return np.concatenate([a[:h], a[2 * h:]])
            return a
        # The weights after the steps must agree to `tol`; the updates themselves to 1e-3:
        # AdamW's early steps move a weight by ≈ lr·g/|g|, which turns float32 rounding of
        # a tiny gradient into an O(lr) difference of that one update.
        werr = sorted(((rel(part(n, ours[n]), part(n, p.detach().numpy())), n) for n, p in model.named_parameters()),
                      reverse=True)
        uerr = sorted(((rel(part(n, ours[n] - w0[n]), part(n, p.detach().numpy() - w0[n])), n)
                       for n, p in model.named_parameters()), reverse=True)
        for e_, n in uerr[:3]:
            print(f"update of {n}: rel err {e_:.3g}")
        print(f"train-steps: {len(werr)} tensors; weights worst {werr[0][0]:.3g} ({werr[0][1]}, tol {tol}), "
              f"updates worst {uerr[0][0]:.3g} (tol 1e-3)")
        return 0 if werr[0][0] <= tol and uerr[0][0] <= 1e-3 else 1
    if cmd == "bench":
        # bench W BOX BATCH train|forward REPEAT: the same network in PyTorch, median seconds
        import time
        import torch
        torch.set_num_threads(int(argv[7]) if len(argv) > 7 else 2)
        model, cfg = load_model(argv[2])
        box, batch, what, rep = int(argv[3]), int(argv[4]), argv[5], int(argv[6])
        if what == "forward-bf16":
            autocast_ready(model)
        x = torch.rand(batch, cfg["in_ch"], box, box, box) - 0.5
        y = x.clone()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times, cpu = [], []
        for r in range(rep + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            if what == "train":
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            elif what == "forward-bf16":
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    model(x)
            else:
                with torch.no_grad():
                    model(x)
            if r:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        times.sort()
        print(f"what={what} box={box} batch={batch} seconds={times[len(times) // 2]:.4f} "
              f"best={times[0]:.4f} cpu={min(cpu):.4f} torch={torch.__version__}")
        return 0
    if cmd == "jepa-bench":
        return jepa_bench(argv[2], int(argv[3]), int(argv[4]), int(argv[5]),
                          int(argv[6]) if len(argv) > 6 else 2)
    if cmd == "optim":
        return check_optim(argv[2])
    if cmd == "jepa":
        return check_jepa(argv[2], float(argv[3]) if len(argv) > 3 else 1e-4)
    print(__doc__, file=sys.stderr)
    return 2


def check_optim(path):
    """Compare test_optim --dump results with torch.optim.AdamW (two parameter groups,
    decay and no decay, lr set per step by an independent warm-up + cosine), EMA,
    F.mse_loss, F.smooth_l1_loss and clip_grad_norm_."""
    import torch
    import torch.nn.functional as F
    d, meta = st_read(path)
    cfg = {}
    for item in meta["optim"].split(","):
        k, v = item.split("=")
        cfg[k] = v
    lr0, mn = float(cfg["lr"]), float(cfg["min_lr"])
    warm, total, nd = int(cfg["warmup"]), int(cfg["total"]), int(cfg["decay_count"])

    def lr_at(t):
        if t <= warm:
            return lr0 * t / warm
        return mn + 0.5 * (lr0 - mn) * (1 + math.cos(math.pi * (t - warm) / (total - warm)))

    p = torch.tensor(d["p0"])
    a = torch.nn.Parameter(p[:nd].clone())
    b = torch.nn.Parameter(p[nd:].clone())
    opt = torch.optim.AdamW([{"params": [a], "weight_decay": float(cfg["weight_decay"])},
                             {"params": [b], "weight_decay": 0.0}],
                            lr=lr0, betas=(float(cfg["beta1"]), float(cfg["beta2"])),
                            eps=float(cfg["eps"]))
    ema = p.clone().double()
    errs = {}
    for t in range(1, d["grads"].shape[0] + 1):
        lr = lr_at(t)
        errs[f"lr step {t}"] = abs(lr - float(d["lr"][t - 1])) / lr
        for grp in opt.param_groups:
            grp["lr"] = lr
        g = torch.tensor(d["grads"][t - 1])
        a.grad = g[:nd].clone()
        b.grad = g[nd:].clone()
        opt.step()
        cur = torch.cat([a.detach(), b.detach()])
        ema = 0.9 * ema + 0.1 * cur.double()
        errs[f"AdamW step {t}"] = rel(d["after"][t - 1], cur.numpy())
    errs["EMA"] = rel(d["ema"], ema.numpy())
    pred = torch.tensor(d["pred"], dtype=torch.float64, requires_grad=True)
    targ = torch.tensor(d["target"], dtype=torch.float64)
    sc = d["scalars"]
    l = F.mse_loss(pred, targ)
    (gp,) = torch.autograd.grad(l, pred)
    errs["mse"] = abs(float(l) - float(sc[0])) / float(l)
    errs["mse grad"] = rel(d["grad_mse"], gp.numpy())
    for k, beta in enumerate([0.0, 0.5, 1.0]):
        l = F.smooth_l1_loss(pred, targ, beta=beta)
        (gp,) = torch.autograd.grad(l, pred)
        errs[f"smooth_l1 beta={beta}"] = abs(float(l) - float(sc[1 + k])) / float(l)
        errs[f"smooth_l1 beta={beta} grad"] = rel(d["grad_smooth_l1"][k], gp.numpy())
    c = torch.tensor(d["pred"]).clone().requires_grad_(True)
    c.grad = c.detach().clone()
    n = torch.nn.utils.clip_grad_norm_([c], float(cfg["clip"]))
    errs["clip norm"] = abs(float(n) - float(sc[4])) / float(n)
    errs["clipped"] = rel(d["clipped"], c.grad.numpy())
    bad = 0
    for k, e in errs.items():
        ok = e <= 2e-6
        bad += not ok
        if not ok or "step 6" in k or "grad" in k:
            print(f"{k}: rel err {e:.3g}{'' if ok else '  FAIL'}")
    print(f"optim: {len(errs)} comparisons, worst {max(errs.values()):.3g}")
    return 1 if bad else 0



def jepa_bench(wpath, box, batch, rep, threads):
    """One JEPA pre-training step as jepa-train runs it (nn_jepa.h), timed: target branch
    (EMA encoder + patch embedding, no grad, per-token layer norm), context branch on the
    input with the target patches zeroed, predictor with mask tokens, Smooth-L1 on the target
    tokens, backward, clipping, AdamW, EMA of both branches. Default predictor (embed 192,
    depth 2, head_dim 32). Masks: 4 random blocks per crop of ~17 % of the token grid."""
    import copy
    import time
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    model, cfg = load_model(wpath)
    L = cfg["levels"]
    p = 1 << L
    jc = {"features": cfg["width"] << L, "patch": p, "out_ch": cfg["in_ch"], "embed": 192, "depth": 2,
          "head_dim": 32, "mlp_ratio": 4}
    pred = build_jepa(jc)
    tenc, tpred = copy.deepcopy(model), copy.deepcopy(pred)
    for q in list(tenc.parameters()) + list(tpred.parameters()):
        q.requires_grad_(False)

    def encode(m, x):
        y = m.head(x)
        for e in m.enc:
            for b in e.blocks:
                y = b(y)
            y = e.down(y)
        for b in m.body:
            y = b(y)
        return y.permute(0, 2, 3, 4, 1)  # N g g g F

    params = [q for n, q in model.named_parameters() if n.split(".")[0] in ("head", "enc", "body")]
    params += list(pred.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.04)
    g = box // p
    rng = np.random.default_rng(1)
    x = torch.rand(batch, cfg["in_ch"], box, box, box)
    times = []
    for r in range(rep + 1):
        mask = np.zeros((batch, g, g, g), bool)
        side = max(1, round((0.17 * g ** 3) ** (1 / 3)))
        for i in range(batch):
            for _ in range(4):
                z0, y0, x0 = rng.integers(0, g - side + 1, 3)
                mask[i, z0:z0 + side, y0:y0 + side, x0:x0 + side] = True
        m = torch.from_numpy(mask)
        t0 = time.perf_counter()
        with torch.no_grad():
            e = tpred(encode(tenc, x), torch.zeros_like(m))[2]
            target = F.layer_norm(e, (e.shape[-1],))
        vm = m.repeat_interleave(p, 1).repeat_interleave(p, 2).repeat_interleave(p, 3)[:, None]
        xm = x.masked_fill(vm, 0.0)
        out = pred(encode(model, xm), m)[0]
        loss = F.smooth_l1_loss(out[m], target[m], beta=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for a, b in ((tenc, model), (tpred, pred)):
                for qa, qb in zip(a.parameters(), b.parameters()):
                    qa.mul_(0.996).add_(qb, alpha=0.004)
        if r:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(f"what=jepa_step box={box} batch={batch} seconds={times[len(times) // 2]:.4f} "
          f"best={times[0]:.4f} torch={torch.__version__}")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
