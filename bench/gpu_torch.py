#!/usr/bin/env python3
"""gpu_torch.py — the same SCUNet-3D in PyTorch eager on the GPU, for bench/gpu.sh.

  gpu_torch.py W.safetensors forward|train BOX BATCH REPEAT fp32|tf32|bf16

The network is tests/ref/torch_scunet.py's module (the engine's parity reference) with the
weights of W. forward: torch.no_grad() on a batch of BOX³ tiles. train: zero_grad, forward,
MSE, backward, clip_grad_norm_(1.0), AdamW step. Precision: fp32 (TF32 off everywhere),
tf32 (TF32 on for matmuls and cuDNN convolutions), bf16 (autocast to bfloat16, fp32 master
weights). Times with CUDA events after one warm-up; prints one line
  what=... precision=... box=... batch=... seconds=MEDIAN best=MIN peak_mib=... torch=...
"""
import importlib.util
import os
import sys


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    import torch
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("torch_scunet", os.path.join(here, "..", "tests", "ref", "torch_scunet.py"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    wpath, what, box, batch, rep, prec = argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6]
    if what not in ("forward", "train") or prec not in ("fp32", "tf32", "bf16"):
        print(__doc__, file=sys.stderr)
        return 2
    tf32 = prec == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    model, cfg = ref.load_model(wpath)
    model = model.to(dev)
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.rand(batch, cfg["in_ch"], box, box, box, device=dev, generator=g) - 0.5
    y = x.clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    auto = torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16")

    def step():
        if what == "train":
            opt.zero_grad(set_to_none=True)
            with auto:
                loss = torch.nn.functional.mse_loss(model(x).float(), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        else:
            with torch.no_grad(), auto:
                model(x)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(rep):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1000.0)
    times.sort()
    print(f"what={what} precision={prec} box={box} batch={batch} seconds={times[len(times) // 2]:.4f} "
          f"best={times[0]:.4f} peak_mib={torch.cuda.max_memory_allocated() / 2**20:.0f} torch={torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
