#!/usr/bin/env bash
# apply.sh — lvm-apply: tile size against quality and speed, and a 128^3 map against PyTorch.
#
# Default network (widths 32-64-128-256, two Swin-Conv blocks per stage), random weights
# from `lvm-model init --task sharpen` (no trained weights ship yet: the quality column
# measures how much the output depends on the box the network sees, which it does through
# FRN's per-box statistics and the box-anchored attention windows; remeasure with trained
# weights). Map: EMD-1461 (cropped, 1.23 Å, shared data) resampled by lvm-apply to 1 Å
# (92 x 98 x 118), or a simulated map of that size when the shared data are absent.
#   table 1  for each --tile (stride 3/4 of the tile, every tile run): seconds, network GFLOP,
#            peak RSS, and the output against whole-map inference (--tile 0): Pearson CC and
#            relative L2 difference.
#   table 2  sharpening a 128^3 map at 1 Å with the default tiling: lvm-apply against
#            tests/ref/apply_ref.py (the same network, tiling and blend in PyTorch).
# 2 threads each; the machine is shared, so times carry the load of the moment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${CRYO_BIN:-$root/bin}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin/lvm-apply" ] || { echo "apply.sh: $bin/lvm-apply not built" >&2; exit 1; }
"$PY" -c 'import torch, mrcfile' 2>/dev/null || { echo "apply.sh: PyTorch/mrcfile missing for $PY" >&2; exit 1; }
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2
export PYTHONPATH=$root/tests/ref
TILES=${TILES:-"0 32 48 64 96"}

"$bin/lvm-model" init -q --seed 1 --task sharpen -o "$tmp/w.safetensors"
map=$root/../shared/data/real_maps_nomodel/emd_1461_cropped_dmm.mrc
if [ ! -e "$map" ]; then
  map=$tmp/sim.mrc
  "$PY" - "$map" <<'PYEOF'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(1)
z, y, x = np.mgrid[0:96, 0:80, 0:75].astype(np.float32)
d = np.zeros(z.shape, np.float32)
for c in rng.uniform([8, 8, 8], [88, 72, 67], (300, 3)):
    d += np.exp(-((z - c[0])**2 + (y - c[1])**2 + (x - c[2])**2) / 4.5)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(d); m.voxel_size = 1.23
PYEOF
fi

echo "| tile | stride | tiles | seconds | GFLOP | peak RSS MiB | CC vs whole map | rel. L2 diff |"
echo "|---|---|---|---|---|---|---|---|"
for t in $TILES; do
  s=$((t - t / 4))
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin/lvm-apply" --task sharpen --model "$tmp/w.safetensors" \
    --tile "$t" --no-skip --threads 2 --progress "$map" -o "$tmp/t$t.mrc" 2> "$tmp/log"
  read -r sec rss < "$tmp/time"
  tiles=$(sed -nE 's/.*: (whole map|tiled), ([0-9]+) tiles.*/\2/p' "$tmp/log")
  gf=$(sed -nE 's/.*, ([0-9.]+) GFLOP.*/\1/p' "$tmp/log")
  q=$("$PY" - "$tmp/t0.mrc" "$tmp/t$t.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1]).data.astype(np.float64); b = mrcfile.open(sys.argv[2]).data.astype(np.float64)
print(f"{np.corrcoef(a.ravel(), b.ravel())[0, 1]:.4f} | {np.linalg.norm(a - b) / np.linalg.norm(a):.4f}")
PYEOF
)
  echo "| ${t/#0/whole} | $([ "$t" = 0 ] && echo - || echo $s) | $tiles | $sec | $gf | $((rss / 1024)) | $q |"
done

# 128^3 at 1 Å, default tiling (tile 64, stride 48: 27 tiles), ours against PyTorch
"$PY" - "$tmp/m128.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(np.random.default_rng(1).random((128, 128, 128)).astype(np.float32)); m.voxel_size = 1.0
PYEOF
echo
echo "| 128^3, tile 64 stride 48 | seconds | peak RSS MiB |"
echo "|---|---|---|"
/usr/bin/time -f "%e %M" -o "$tmp/time" "$bin/lvm-apply" --task sharpen --model "$tmp/w.safetensors" --no-skip \
  --threads 2 "$tmp/m128.mrc" -o "$tmp/o128.mrc"
read -r sec rss < "$tmp/time"
echo "| lvm-apply | $sec | $((rss / 1024)) |"
/usr/bin/time -f "%e %M" -o "$tmp/time" "$PY" "$root/tests/ref/apply_ref.py" bench "$tmp/w.safetensors" 128 64 48 2 \
  > "$tmp/py.out"
read -r sec rss < "$tmp/time"
echo "| PyTorch (apply_ref.py, $(sed -nE 's/.*seconds=([0-9.]+).*/\1/p' "$tmp/py.out") s in the network loop) | $sec | $((rss / 1024)) |"
