#!/usr/bin/env bash
# precision.sh — `--precision bf16` against fp32: quality with the shipped weights, and speed
# of a 64^3 forward and of lvm-apply on a 128^3 (and, with RUN256=1, 256^3) map, side by side
# with PyTorch (tests/ref/torch_scunet.py, tests/ref/apply_ref.py: torch.autocast CPU
# bfloat16, LayerNorm fed float32 as autocast does on CUDA).
#
#   table 1  quality: lvm-apply fp32 and bf16 outputs of each shipped task on real maps
#            (shared data) and a map simulated from an atomic model (model-map, actin 1J6Z
#            when the shared data are there, else Gaussian blobs): Pearson CC and relative
#            L2 difference of bf16 against fp32. Gate: CC >= 0.999.
#   table 2  one 64^3 forward (lvm-model bench / torch_scunet.py bench), the shipped sharpen
#            weights (width 16, 10.7 GFLOP) and the default network with random weights
#            (width 32, 82.3 GFLOP)
#   table 3  lvm-apply, shipped sharpen weights, a random 128^3 map at 1 Å (27 tiles of
#            64^3, every tile run; SIZES="128 256" adds 256^3, 216 tiles) against
#            apply_ref.py (TORCH_APPLY=0 skips PyTorch)
# Speed is measured as CPU time of one thread (T=2 for two), see below.
# Environment: SECTIONS (default "quality forward apply"), T, SIZES, TORCH_APPLY.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin/lvm-apply" ] || { echo "precision.sh: $bin/lvm-apply not built" >&2; exit 1; }
"$PY" -c 'import torch, mrcfile' 2>/dev/null || { echo "precision.sh: PyTorch/mrcfile missing for $PY" >&2; exit 1; }
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2
export PYTHONPATH=$root/tests/ref
models=$root/share/models
data=$root/../shared/data
SECTIONS=${SECTIONS:-"quality forward apply"}
field() { sed -nE "s/(^|.* )$1=([0-9.]+).*/\2/p" "$2" | head -1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
cc() { "$PY" - "$1" "$2" <<'PYEOF'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1]).data.astype(np.float64).ravel(); b = mrcfile.open(sys.argv[2]).data.astype(np.float64).ravel()
print(f"{np.corrcoef(a, b)[0, 1]:.6f} | {np.linalg.norm(a - b) / np.linalg.norm(a):.2e}")
PYEOF
}

if [[ " $SECTIONS " == *" quality "* ]]; then
  maps=()
  for m in real_maps_nomodel/emd_1461_cropped_dmm.mrc real_maps_nomodel/emd_2513_cropped_dmm.mrc; do
    [ -e "$data/$m" ] && maps+=("$data/$m")
  done
  if [ -e "$data/tempy_emd5168_actin/1J6Z.pdb" ]; then
    "$bin/model-map" -q --res 3 --apix 1 "$data/tempy_emd5168_actin/1J6Z.pdb" -o "$tmp/sim_1J6Z_3A.mrc"
  else
    "$PY" - "$tmp/sim_1J6Z_3A.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(1)
z, y, x = np.mgrid[0:72, 0:72, 0:72].astype(np.float32)
d = np.zeros(z.shape, np.float32)
for c in rng.uniform(8, 64, (400, 3)):
    d += np.exp(-((z - c[0])**2 + (y - c[1])**2 + (x - c[2])**2) / 2.0)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(d); m.voxel_size = 1.0
PYEOF
  fi
  maps+=("$tmp/sim_1J6Z_3A.mrc")
  echo "| task | map | CC bf16 vs fp32 | rel. L2 diff | fp32 s | bf16 s |"
  echo "|---|---|---|---|---|---|"
  for m in "${maps[@]}"; do
    for task in sharpen superres wedge; do
      for p in fp32 bf16; do
        /usr/bin/time -f "%e" -o "$tmp/t_$p" "$bin/lvm-apply" -q --task "$task" --model "$models/$task.safetensors" \
          --threads 2 --precision "$p" "$m" -o "$tmp/o_$p.mrc"
      done
      echo "| $task | $(basename "$m") | $(cc "$tmp/o_fp32.mrc" "$tmp/o_bf16.mrc") | $(cat "$tmp/t_fp32") | $(cat "$tmp/t_bf16") |"
    done
  done
  echo
fi

# Speed: one thread, process CPU time (all threads of the process), best of the repeats.
# On this shared machine (load average 15-20 on 2 cores while this was written) wall-clock
# seconds swing by 5x from minute to minute while one thread's CPU time does not: a single
# thread has no barrier to wait at, so its CPU time is the work itself. fp32 and bf16 runs
# alternate, so each ratio comes from one stretch of load. Wall seconds of the same runs in
# parentheses. GFLOP/s per core against the fp32 peak of one core (~187, sgemm) — bf16 on
# AMX has a peak many times that, so the percentage is the fp32 one only.
T=${T:-1}
if [[ " $SECTIONS " == *" forward "* ]]; then
  "$bin/lvm-model" init -q --seed 1 -o "$tmp/default.safetensors"
  echo "| 64³ forward, $T thread | GFLOP | ours fp32 | ours bf16 | bf16/fp32 | ours GFLOP/s fp32 (of 187) / bf16 | PyTorch fp32 | PyTorch bf16 (autocast) | bf16/fp32 | ours/PyTorch fp32 | ours/PyTorch bf16 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for w in "$models/sharpen.safetensors" "$tmp/default.safetensors"; do
    for round in 1 2; do
      for p in fp32 bf16; do
        OMP_NUM_THREADS=$T "$bin/lvm-model" bench "$w" --device cpu --box 64 --repeat 3 --threads "$T" --precision "$p" > "$tmp/c_${p}_$round"
      done
    done
    OMP_NUM_THREADS=$T "$PY" "$root/tests/ref/torch_scunet.py" bench "$w" 64 1 forward 2 "$T" > "$tmp/t_fp32"
    OMP_NUM_THREADS=$T "$PY" "$root/tests/ref/torch_scunet.py" bench "$w" 64 1 forward-bf16 2 "$T" > "$tmp/t_bf16"
    best() { for f in "$@"; do field "$key" "$f"; done | sort -g | head -1; }
    key=cpu; cf=$(best "$tmp"/c_fp32_*); cb=$(best "$tmp"/c_bf16_*)
    key=best; wf=$(best "$tmp"/c_fp32_*); wb=$(best "$tmp"/c_bf16_*)
    gf=$(field gflop "$tmp/c_fp32_1")
    tf=$(field cpu "$tmp/t_fp32"); tb=$(field cpu "$tmp/t_bf16")
    twf=$(field best "$tmp/t_fp32"); twb=$(field best "$tmp/t_bf16")
    name=$([ "$w" = "$tmp/default.safetensors" ] && echo "default network (random weights)" || echo "shipped sharpen")
    printf '| %s | %s | %.2f s (%.2f) | %.2f s (%.2f) | **%s** | %.0f (%.0f %%) / %.0f | %.2f s (%.2f) | %.2f s (%.2f) | %s | %s | %s |\n' \
      "$name" "$gf" "$cf" "$wf" "$cb" "$wb" "$(div "$cb" "$cf")" "$(div "$gf" "$cf")" \
      "$(awk -v g="$gf" -v s="$cf" -v t="$T" 'BEGIN{print 100*g/s/(187.5*t)}')" "$(div "$gf" "$cb")" \
      "$tf" "$twf" "$tb" "$twb" "$(div "$tb" "$tf")" "$(div "$cf" "$tf")" "$(div "$cb" "$tb")"
  done
  echo
fi

if [[ " $SECTIONS " == *" apply "* ]]; then
  sizes=${SIZES:-128}
  echo "| lvm-apply, shipped sharpen, tile 64 stride 48, every tile, $T thread | GFLOP | ours fp32 | ours bf16 | bf16/fp32 | PyTorch fp32 | PyTorch bf16 (autocast) | bf16/fp32 | ours/PyTorch fp32 | ours/PyTorch bf16 |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for n in $sizes; do
    "$PY" - "$tmp/m$n.mrc" "$n" <<'PYEOF'
import sys, numpy as np, mrcfile
n = int(sys.argv[2])
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(np.random.default_rng(1).random((n, n, n)).astype(np.float32)); m.voxel_size = 1.0
PYEOF
    for p in fp32 bf16; do
      OMP_NUM_THREADS=$T /usr/bin/time -f "%U %S %e" -o "$tmp/a_$p" "$bin/lvm-apply" --task sharpen \
        --model "$models/sharpen.safetensors" --no-skip --threads "$T" --progress --precision "$p" "$tmp/m$n.mrc" \
        -o "$tmp/o${n}_$p.mrc" 2> "$tmp/log_$p"
    done
    gf=$(sed -nE 's/.*, ([0-9.]+) GFLOP.*/\1/p' "$tmp/log_fp32")
    read -r u s w < "$tmp/a_fp32"; af=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}'); awf=$w
    read -r u s w < "$tmp/a_bf16"; ab=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}'); awb=$w
    pf=-; pb=-; rp=-; rf=-; rb=-
    if [ "${TORCH_APPLY:-1}" = 1 ]; then
      OMP_NUM_THREADS=$T "$PY" "$root/tests/ref/apply_ref.py" bench "$models/sharpen.safetensors" "$n" 64 48 "$T" fp32 > "$tmp/py_fp32"
      OMP_NUM_THREADS=$T "$PY" "$root/tests/ref/apply_ref.py" bench "$models/sharpen.safetensors" "$n" 64 48 "$T" bf16 > "$tmp/py_bf16"
      pf=$(field cpu "$tmp/py_fp32"); pb=$(field cpu "$tmp/py_bf16")
      rp=$(div "$pb" "$pf"); rf=$(div "$af" "$pf"); rb=$(div "$ab" "$pb")
      pf="$pf s ($(field seconds "$tmp/py_fp32"))"; pb="$pb s ($(field seconds "$tmp/py_bf16"))"
    fi
    echo "| ${n}³ | $gf | $af s ($awf) | $ab s ($awb) | **$(div "$ab" "$af")** | $pf | $pb | $rp | $rf | $rb |"
  done
fi
