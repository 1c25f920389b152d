#!/usr/bin/env bash
# jepa.sh — one JEPA pre-training step of jepa-train against the same step in PyTorch, CPU.
#
# Default network (4.74 M parameters) and predictor (embed 192, depth 2), a batch of two 48^3
# crops, 2 threads each: target branch (EMA encoder, no grad), context branch on the masked
# input, predictor, Smooth-L1, backward, clipping, AdamW, EMA update. Ours: per-step wall
# time from jepa-train's log.tsv (steps after the first); PyTorch: tests/ref/torch_scunet.py
# jepa-bench (the same step, autograd). Best of the repeats, median in parentheses (shared
# machine). Prints a Markdown table. MPI ranks: bench/mpi.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=/usr/bin/python3
REF=$root/tests/ref/torch_scunet.py
REP=${REP:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin/jepa-train" ] || { echo "jepa.sh: $bin/jepa-train not built" >&2; exit 1; }
"$PY" -c 'import torch' 2>/dev/null || { echo "jepa.sh: PyTorch not installed for $PY" >&2; exit 1; }
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2

# 16 crops of 48^3 from a smooth random 96^3 map (content does not change the cost)
"$PY" - "$tmp/map.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.random.default_rng(1).random((96, 96, 96)).astype(np.float32)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a); m.voxel_size = 1.0
PY
"$bin/vol-patch" --random 16 --size 48 "$tmp/map.mrc" -o "$tmp/crops.cvol"
"$bin/lvm-model" init -q --seed 1 -o "$tmp/w.safetensors"

steps() { # DIR: best and median seconds per step from log.tsv (steps after the first)
  awk -F'\t' 'NR>2 {print $13 - prev} NR>1 {prev = $13}' "$1/log.tsv" | sort -g |
    awk '{a[NR] = $1} END {printf "%.3f %.3f\n", a[1], a[int((NR + 1) / 2)]}'
}
"$bin/jepa-train" -q --steps $((REP + 1)) --batch 2 --threads 2 --save-every 100000 --keep 0 \
  --out "$tmp/c" "$tmp/crops.cvol"
read -r cb cm < <(steps "$tmp/c")
"$PY" "$REF" jepa-bench "$tmp/w.safetensors" 48 2 "$REP" 2 > "$tmp/t.out"
tb=$(sed -nE 's/.*best=([0-9.]+).*/\1/p' "$tmp/t.out"); tm=$(sed -nE 's/.*seconds=([0-9.]+).*/\1/p' "$tmp/t.out")
echo "| job | cryolvm best (median) | PyTorch best (median) | ratio |"
echo "|---|---|---|---|"
printf '| JEPA step, 2 x 48^3, 2 threads | %.3f s (%.3f) | %.3f s (%.3f) | **%.2f** |\n' "$cb" "$cm" "$tb" "$tm" \
  "$(awk -v a="$cb" -v b="$tb" 'BEGIN{print a/b}')"
echo
echo "PyTorch $(sed -nE 's/.*torch=(.*)/\1/p' "$tmp/t.out")"
