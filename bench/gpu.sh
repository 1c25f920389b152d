#!/usr/bin/env bash
# gpu.sh — the engine's CUDA backend against the same network in PyTorch eager, on one GPU,
# side by side in one run (bench/README.md). Needs a CUDA build (make CUDA=1) and python3
# with torch+CUDA (numpy only besides; no mrcfile needed).
#   forward     a batch of B 64^3 tiles (inference; lvm-model bench --device cuda)
#   train step  a batch of B 48^3 crops: forward, MSE, backward, clipping, AdamW, all on the
#               device (lvm-model bench --train: the library's trainer)
#   lvm-apply   sharpen a 300^3 map (random weights of the default network, default tiles)
#   batch       the largest forward batch of 64^3 tiles that fits (doubling)
# Precision: both sides fp32, tf32 and bf16 (ours: CRYO_NN_PRECISION; bf16 = convolutions,
# linear layers and attention products on bf16 tensor cores, float32 tensors in memory;
# PyTorch: autocast to bfloat16).
# TFLOP/s from the analytic FLOP count (lvm-model info; train = 3 x forward) against the
# GPU's dense peak (H100/H200 SXM: fp32 67, TF32 495, bf16 989 TFLOP/s).
# Environment: B_FWD (8), B_TRAIN (8), REPEAT (5), CRYO_BIN, GPU_SH_BUDGET (seconds, 240:
# later parts are skipped, saying so, when it runs out).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=${PY:-python3}
bf=${B_FWD:-8} bt=${B_TRAIN:-8} rep=${REPEAT:-5}
t_start=$(date +%s) budget=${GPU_SH_BUDGET:-240}
left() { echo $((budget - ($(date +%s) - t_start))); }
lim() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $((l > 1 ? l : 1)) || echo "$1"; } # LIMIT
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
gf_train=$(awk -v g="$(per_tile 48)" -v b="$bt" 'BEGIN { print 3 * g * b }')
peak() { case $1 in fp32) echo 67 ;; tf32) echo 495 ;; *) echo 989 ;; esac; }
echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
echo
echo "| what | batch | engine | precision | median s | best s | TFLOP/s | % of dense peak |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
row() { # what batch engine precision line work_gflop
  local s b
  s=$(field seconds "$5"); b=$(field best "$5")
  if [ -z "$s" ]; then
    echo "| $1 | $2 | $3 | $4 | failed: $(tail -n 1 <<<"$5" | tr '|' '/' | cut -c1-120) | | | |"
  else
    echo "| $1 | $2 | $3 | $4 | $s | $b | $(awk -v g="$6" -v t="$b" 'BEGIN { printf "%.1f", g / t / 1000 }') |" \
      "$(awk -v g="$6" -v t="$b" -v p="$(peak "$4")" 'BEGIN { printf "%.1f", 100 * g / t / 1000 / p }') |"
  fi
}
ours() { # precision args...
  local p=$1
  shift
  CRYO_NN_PRECISION=$p timeout "$(lim 60)" "$bin/lvm-model" bench "$tmp/w.safetensors" --device cuda "$@" 2>&1
}
theirs() { timeout "$(lim 90)" "$PY" "$here/gpu_torch.py" "$tmp/w.safetensors" "$@" 2>&1; }
for p in fp32 tf32 bf16; do
  row "forward 64³" "$bf" cryolvm "$p" "$(ours "$p" --box 64 --batch "$bf" --repeat "$rep")" "$gf_fwd"
  row "forward 64³" "$bf" "PyTorch eager" "$p" "$(theirs forward 64 "$bf" "$rep" "$p")" "$gf_fwd"
done
for p in fp32 tf32 bf16; do
  row "train step 48³" "$bt" cryolvm "$p" "$(ours "$p" --train --box 48 --batch "$bt" --repeat "$rep")" "$gf_train"
  row "train step 48³" "$bt" "PyTorch eager" "$p" "$(theirs train 48 "$bt" "$rep" "$p")" "$gf_train"
done
echo
# lvm-apply on a 300^3 map (written with numpy alone: MRC mode 2, 1 Å voxels)
if [ "$(left)" -gt 40 ] && "$PY" - "$tmp/map300.mrc" <<'PYEOF'
import sys, numpy as np
n = 300
a = np.random.default_rng(1).random((n, n, n), dtype=np.float32)
h = np.zeros(256, "<i4"); f = h.view("<f4")
h[0:3] = n; h[3] = 2; h[7:10] = n; f[10:13] = float(n); f[13:16] = 90.0; h[16:19] = (1, 2, 3)
f[19], f[20], f[21] = a.min(), a.max(), a.mean(); h[22] = 1; h[27] = 20140
h[52] = int.from_bytes(b"MAP ", "little"); h[53] = 0x4444; f[54] = a.std()
open(sys.argv[1], "wb").write(h.tobytes() + a.tobytes())
PYEOF
then
  "$bin/lvm-model" init -q --seed 2 --task sharpen -o "$tmp/sharpen.safetensors"
  for p in fp32 tf32; do
    t0=$(date +%s.%N)
    if msg=$(CRYO_NN_PRECISION=$p timeout "$(lim 60)" "$bin/lvm-apply" --task sharpen --model "$tmp/sharpen.safetensors" \
        --device cuda "$tmp/map300.mrc" -o "$tmp/out300.mrc" 2>&1); then
      echo "lvm-apply sharpen 300³ ($p, whole tool: read, tiles, write): $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    else
      echo "lvm-apply sharpen 300³ ($p): failed: $(tail -n 1 <<<"$msg" | cut -c1-160)"
    fi
  done
else
  echo "lvm-apply sharpen 300³: skipped (time budget or no numpy)"
fi
# Largest forward batch of 64^3 tiles that fits (doubling until the device says no, or a
# pass takes over 30 s, or the budget runs out).
fits=0 why="up to 256"
for b in 1 2 4 8 16 32 64 128 256; do
  [ "$(left)" -gt 35 ] || { why="stopped at the time budget"; break; }
  t0=$(date +%s)
  if ! out=$(timeout 40 "$bin/lvm-model" bench "$tmp/w.safetensors" --device cuda --box 64 --batch "$b" --repeat 1 2>&1); then
    why="batch $b: $(tail -n 1 <<<"$out" | cut -c1-100)"
    break
  fi
  fits=$b
  mib=$(field activation_mib "$out")
  [ $(($(date +%s) - t0)) -gt 30 ] && { why="stopped: batch $b took over 30 s"; break; }
done
echo "largest forward batch of 64³ tiles that fits: $fits (${mib:-?} MiB of activations; $why)"
