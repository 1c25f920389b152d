#!/usr/bin/env bash
# engine.sh — the SCUNet-3D engine against the same network in PyTorch, on the CPU.
#
# Default network (4.74 M parameters, widths 32-64-128-256, two Swin-Conv blocks per stage),
# fresh weights from `lvm-model init`, loaded into tests/ref/torch_scunet.py for PyTorch:
#   forward     one 64^3 tile, inference (lvm-model bench; torch.no_grad)
#   train step  a batch of two 48^3 tiles: forward, MSE, backward, clip, AdamW
# Both with 2 threads; PyTorch in its best configuration on this machine
# (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, OPENBLAS_CORETYPE=SkylakeX). Best (minimum) of
# the repeats after a warm-up, median in parentheses: the machine is shared and its load
# inflates medians; each side in its own process, back to back. GFLOP/s from the analytic
# count of `lvm-model info` (training step = 3 x forward) against the ~375 GFLOP/s sgemm
# peak of two cores; peak memory = maximum resident set of the process (/usr/bin/time).
# Prints a Markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=/usr/bin/python3
REF=$root/tests/ref/torch_scunet.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin/lvm-model" ] || { echo "engine.sh: $bin/lvm-model not built" >&2; exit 1; }
"$PY" -c 'import torch' 2>/dev/null || { echo "engine.sh: PyTorch not installed for $PY" >&2; exit 1; }

export GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2
"$bin/lvm-model" init -q --seed 1 -o "$tmp/w.safetensors"

field() { sed -nE "s/.*$1=([0-9.]+).*/\1/p" "$2"; }
rss() { sed -nE 's/.*maxrss=([0-9]+)kB.*/\1/p' "$1"; }

run_c() { # name args...
  local n=$1; shift
  /usr/bin/time -f "maxrss=%MkB" -o "$tmp/$n.time" "$bin/lvm-model" bench "$tmp/w.safetensors" --device cpu --threads 2 "$@" > "$tmp/$n.out"
}
run_py() { # name box batch what repeat
  local n=$1; shift
  /usr/bin/time -f "maxrss=%MkB" -o "$tmp/$n.time" "$PY" "$REF" bench "$tmp/w.safetensors" "$@" 2 > "$tmp/$n.out"
}

run_c c_fwd --box 64 --repeat 5
run_py t_fwd 64 1 forward 3
run_c c_train --box 48 --batch 2 --train --repeat 3
run_py t_train 48 2 train 3

row() { # label cname tname
  local cs ts gf cg tg cm tm
  cs=$(field best "$tmp/$2.out"); ts=$(field best "$tmp/$3.out"); gf=$(field gflop "$tmp/$2.out")
  cm=$(field seconds "$tmp/$2.out"); tm=$(field seconds "$tmp/$3.out")
  cg=$(awk -v g="$gf" -v s="$cs" 'BEGIN{printf "%.0f", g/s}')
  tg=$(awk -v g="$gf" -v s="$ts" 'BEGIN{printf "%.0f", g/s}')
  printf '| %s | %.3f s (%.3f) | %.3f s (%.3f) | **%.2f** | %s (%.0f %%) | %s | %.0f MiB | %.0f MiB |\n' "$1" "$cs" "$cm" "$ts" "$tm" \
    "$(awk -v a="$cs" -v b="$ts" 'BEGIN{print a/b}')" "$cg" "$(awk -v g="$cg" 'BEGIN{print 100*g/375}')" "$tg" \
    "$(awk -v k="$(rss "$tmp/$2.time")" 'BEGIN{print k/1024}')" "$(awk -v k="$(rss "$tmp/$3.time")" 'BEGIN{print k/1024}')"
}
echo "| job | cryolvm best (median) | PyTorch best (median) | ratio | cryolvm GFLOP/s (of 375) | PyTorch GFLOP/s | cryolvm peak RSS | PyTorch peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
row "forward, one 64^3 tile ($(field gflop "$tmp/c_fwd.out") GFLOP)" c_fwd t_fwd
row "training step, 2 x 48^3 ($(field gflop "$tmp/c_train.out") GFLOP)" c_train t_train
echo
echo "cryolvm: $(sed -nE 's/.*device="(.*)"/\1/p' "$tmp/c_fwd.out"); PyTorch $(sed -nE 's/.*torch=(.*)/\1/p' "$tmp/t_fwd.out")"
