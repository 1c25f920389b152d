#!/usr/bin/env bash
# mpi.sh — data-parallel jepa-train: one process against 2 MPI ranks at the same global batch.
#
# JEPA pre-training steps of the default network (4.74 M parameters) and predictor on a
# global batch of two 48^3 crops: 1 process x 1 thread, 1 process x 2 threads, and
# jepa-train-mpi under mpirun with 2 ranks x 1 thread (one crop each, gradients summed by
# MPI_Allreduce over shared memory). Per-step wall time from log.tsv (steps after the first):
# best of the repeats, median in parentheses. Needs bin/jepa-train-mpi (make MPI=1) and
# mpirun. Prints a Markdown table; the last column is the speed-up over 1 process x 1 thread.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=/usr/bin/python3
REP=${REP:-4}
SIZE=${SIZE:-48}
[ -x "$bin/jepa-train-mpi" ] || { echo "mpi.sh: $bin/jepa-train-mpi not built (make MPI=1)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpi.sh: mpirun not installed (openmpi-bin)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OPENBLAS_CORETYPE=SkylakeX
# one machine, root or not, ssh or not (as tests/bats/jepa-train.bats)
export OMPI_MCA_plm_rsh_agent= OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)

"$PY" - "$tmp/map.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = np.random.default_rng(1).random((96, 96, 96)).astype(np.float32)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a); m.voxel_size = 1.0
PY
"$bin/vol-patch" --random 16 --size "$SIZE" "$tmp/map.mrc" -o "$tmp/crops.cvol"

steps() { # DIR: best and median seconds per step from log.tsv (steps after the first)
  awk -F'\t' 'NR>2 {print $13 - prev} NR>1 {prev = $13}' "$1/log.tsv" | sort -g |
    awk '{a[NR] = $1} END {printf "%.3f %.3f\n", a[1], a[int((NR + 1) / 2)]}'
}
args=(-q --steps $((REP + 1)) --batch 2 --save-every 100000 --keep 0)
OMP_NUM_THREADS=1 "$bin/jepa-train" "${args[@]}" --threads 1 --out "$tmp/p1" "$tmp/crops.cvol"
OMP_NUM_THREADS=2 "$bin/jepa-train" "${args[@]}" --threads 2 --out "$tmp/p2" "$tmp/crops.cvol"
OMP_NUM_THREADS=1 timeout 3600 mpirun "${root_flag[@]}" --oversubscribe --bind-to none -np 2 \
  "$bin/jepa-train-mpi" "${args[@]}" --threads 1 --out "$tmp/r2" "$tmp/crops.cvol"
read -r b1 m1 < <(steps "$tmp/p1")
read -r b2 m2 < <(steps "$tmp/p2")
read -r b3 m3 < <(steps "$tmp/r2")
sp() { awk -v a="$b1" -v b="$1" 'BEGIN{printf "%.2f", a/b}'; }
echo "| JEPA step, global batch 2 x ${SIZE}^3 | best (median) s/step | speed-up |"
echo "|---|---|---|"
printf '| 1 process x 1 thread | %.3f (%.3f) | 1.00 |\n' "$b1" "$m1"
printf '| 1 process x 2 threads | %.3f (%.3f) | %s |\n' "$b2" "$m2" "$(sp "$b2")"
printf '| 2 MPI ranks x 1 thread | %.3f (%.3f) | %s |\n' "$b3" "$m3" "$(sp "$b3")"
echo
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
