#!/usr/bin/env bash
# mpi.sh — data-parallel jepa-train: one process against 2 MPI ranks at the same global batch.
#
# JEPA pre-training steps of the default network (4.74 M parameters) and predictor on a
# global batch of two 48^3 crops: 1 process x 1 thread, 1 process x 2 threads, and
# jepa-train-mpi under mpirun with 2 ranks x 1 thread (one crop each, gradients summed by
# MPI_Allreduce over shared memory). Per-step wall time from log.tsv (steps after the first
# of each run; ROUNDS rounds of REP timed steps, the set-ups taking turns): best, median in
# parentheses. Needs bin/jepa-train-mpi (make MPI=1) and
# mpirun. Prints a Markdown table; the last column is the speed-up over 1 process x 1 thread.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=/usr/bin/python3
REP=${REP:-3}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-48}
[ -x "$bin/jepa-train-mpi" ] || { echo "mpi.sh: skipped: $bin/jepa-train-mpi not built (make MPI=1)"; exit 0; }
command -v mpirun >/dev/null || { echo "mpi.sh: skipped: mpirun not installed (openmpi-bin)"; exit 0; }
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

times() { # DIR: seconds of each step after the first, from log.tsv
  awk -F'\t' 'NR>2 {print $13 - prev} NR>1 {prev = $13}' "$1/log.tsv"
}
summary() { sort -g | awk '{a[NR] = $1} END {printf "%.3f %.3f\n", a[1], a[int((NR + 1) / 2)]}'; }
args=(-q --steps $((REP + 1)) --batch 2 --save-every 100000 --keep 0)
# the three set-ups take turns, ROUNDS times, so that a change of the machine's load falls on
# all of them alike; best and median over every timed step of every round
for r in $(seq "$ROUNDS"); do
  OMP_NUM_THREADS=1 "$bin/jepa-train" "${args[@]}" --threads 1 --out "$tmp/p1.$r" "$tmp/crops.cvol"
  times "$tmp/p1.$r" >> "$tmp/p1.t"
  OMP_NUM_THREADS=2 "$bin/jepa-train" "${args[@]}" --threads 2 --out "$tmp/p2.$r" "$tmp/crops.cvol"
  times "$tmp/p2.$r" >> "$tmp/p2.t"
  OMP_NUM_THREADS=1 timeout 3600 mpirun "${root_flag[@]}" --oversubscribe --bind-to none -np 2 \
    "$bin/jepa-train-mpi" "${args[@]}" --threads 1 --out "$tmp/r2.$r" "$tmp/crops.cvol"
  times "$tmp/r2.$r" >> "$tmp/r2.t"
done
read -r b1 m1 < <(summary < "$tmp/p1.t")
read -r b2 m2 < <(summary < "$tmp/p2.t")
read -r b3 m3 < <(summary < "$tmp/r2.t")
sp() { awk -v a="$b1" -v b="$1" 'BEGIN{printf "%.2f", a/b}'; }
echo "| JEPA step, global batch 2 x ${SIZE}^3 | best (median) s/step | speed-up |"
echo "|---|---|---|"
printf '| 1 process x 1 thread | %.3f (%.3f) | 1.00 |\n' "$b1" "$m1"
printf '| 1 process x 2 threads | %.3f (%.3f) | %s |\n' "$b2" "$m2" "$(sp "$b2")"
printf '| 2 MPI ranks x 1 thread | %.3f (%.3f) | %s |\n' "$b3" "$m3" "$(sp "$b3")"
echo
echo "$(nproc) cores, $ROUNDS rounds x $REP timed steps each, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
