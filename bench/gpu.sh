#!/usr/bin/env bash
# gpu.sh — the engine's CUDA backend against the same network in PyTorch eager, on one GPU,
# side by side in one run (bench/README.md). Needs a CUDA build (make CUDA=1) and python3
# with torch+CUDA.
#   forward     a batch of B 64^3 tiles (inference; lvm-model bench --device cuda)
#   train step  a batch of B 48^3 crops: forward, MSE, backward, AdamW (PyTorch: also
#               clip_grad_norm_). The engine's trainer keeps the optimiser on the host and
#               refuses a GPU model today, so its row says so instead of a time.
# Precision: ours fp32 and tf32 (CRYO_NN_PRECISION; no bf16 yet); PyTorch fp32, tf32, bf16.
# TFLOP/s from the analytic FLOP count (lvm-model bench; train = 3 x forward) against the
# GPU's dense fp32 / TF32 / bf16 peak (H100/H200 SXM: 67 / 495 / 989 TFLOP/s).
# Environment: B_FWD (default 8), B_TRAIN (default 8), REPEAT (default 5), CRYO_BIN.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=${PY:-python3}
bf=${B_FWD:-8} bt=${B_TRAIN:-8} rep=${REPEAT:-5}
export CRYO_NN_CUDA_PLUGIN=${CRYO_NN_CUDA_PLUGIN:-$root/build/libcryolvm-cuda.so}
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu.sh: no NVIDIA GPU here: skipped"
  exit 0
fi
[ -f "$CRYO_NN_CUDA_PLUGIN" ] || { echo "gpu.sh: $CRYO_NN_CUDA_PLUGIN not built (make CUDA=1)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin/lvm-model" ] || { echo "gpu.sh: $bin/lvm-model not built" >&2; exit 1; }
"$bin/lvm-model" init -q --seed 1 -o "$tmp/w.safetensors" || exit 1
field() { sed -nE "s/.*[ ^]$1=([0-9.]+).*/\1/p" <<<" $2"; }
info=$("$bin/lvm-model" info "$tmp/w.safetensors")
per_tile() { sed -nE "s/.*FLOPs $1\\^3 +([0-9.]+) GFLOP.*/\\1/p" <<<"$info"; }
gf_fwd=$(awk -v g="$(per_tile 64)" -v b="$bf" 'BEGIN { print g * b }')
gf_train=$(awk -v g="$(per_tile 48)" -v b="$bt" 'BEGIN { print g * b }')
echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
echo
echo "| what | batch | engine | precision | median s | best s | TFLOP/s |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row() { # what batch engine precision line work_gflop
  local s b
  s=$(field seconds "$5"); b=$(field best "$5")
  if [ -z "$s" ]; then
    echo "| $1 | $2 | $3 | $4 | failed: $(tail -n 1 <<<"$5" | cut -c1-120) | | |"
  else
    echo "| $1 | $2 | $3 | $4 | $s | $b | $(awk -v g="$6" -v t="$b" 'BEGIN { printf "%.1f", g / t / 1000 }') |"
  fi
}
for p in fp32 tf32; do
  out=$(CRYO_NN_PRECISION=$p "$bin/lvm-model" bench "$tmp/w.safetensors" --device cuda --box 64 --batch "$bf" --repeat "$rep" 2>&1)
  row "forward 64³" "$bf" cryolvm "$p" "$out" "$gf_fwd"
done
for p in fp32 tf32 bf16; do
  out=$("$PY" "$here/gpu_torch.py" "$tmp/w.safetensors" forward 64 "$bf" "$rep" "$p" 2>&1)
  row "forward 64³" "$bf" "PyTorch eager" "$p" "$out" "$gf_fwd"
done
out=$("$bin/lvm-model" bench "$tmp/w.safetensors" --device cuda --train --box 48 --batch "$bt" --repeat "$rep" 2>&1)
row "train step 48³" "$bt" cryolvm fp32 "$out" "$(awk -v g="$gf_train" 'BEGIN { print 3 * g }')"
for p in fp32 tf32 bf16; do
  out=$("$PY" "$here/gpu_torch.py" "$tmp/w.safetensors" train 48 "$bt" "$rep" "$p" 2>&1)
  row "train step 48³" "$bt" "PyTorch eager" "$p" "$out" "$(awk -v g="$gf_train" 'BEGIN { print 3 * g }')"
done
# Largest forward batch of 64^3 tiles that fits (doubling until the device says no).
echo
fits=0
for b in 1 2 4 8 16 32 64 128 256; do
  "$bin/lvm-model" bench "$tmp/w.safetensors" --device cuda --box 64 --batch "$b" --repeat 1 >/dev/null 2>&1 || break
  fits=$b
done
echo "largest forward batch of 64³ tiles that fits (powers of two up to 256): $fits"
