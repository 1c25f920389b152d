#!/usr/bin/env bash
# loader.sh — the training loader (loader.h) on a generated corpus: crops/s against the
# training step rate, and peak memory against corpus size (it must stay flat).
#
# Generates ${LOADER_MAPS:-200} synthetic maps with numpy/scipy (Gaussian-smoothed random
# points plus 2 % noise; every axis drawn from 64..160 voxels; 3 in 4 at 1 Å, the others at
# 1.1–1.4 Å so that preparation resamples them; 1 in 4 gzip-compressed). Then, for corpora of
# the first 50, 100 and 200 maps, runs bench/loader_bench.c twice under /usr/bin/time -v:
#   cold: a fresh cache folder, so the loader prepares (decodes, resamples, normalises,
#         writes) every map when it opens;
#   warm: the same cache again, so open only checks the cache entries.
# Crops are 48³ with rotations, flips and --min-density 0.05; the steps are batches of 2
# followed by STEP_MS (500) of sleep standing for the model's step (a 2 × 48³ JEPA step takes
# ~1–2 s on this machine), with 8 crops prefetched. Prints a Markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PY=/usr/bin/python3
NMAPS=${LOADER_MAPS:-200}
STEPS=${LOADER_STEPS:-20}
STEP_MS=${LOADER_STEP_MS:-500}
tmp=${BENCH_TMP:-$(mktemp -d)}
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && make -s build/libcryolvm.a)
libs=$(pkg-config --libs libzstd zlib libtiff-4 fftw3f jansson cairo 2>/dev/null || echo -lzstd -lz -ltiff -lfftw3f -ljansson -lcairo)
(cd "$root" && cc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -Ilibcore/include -o "$tmp/loader_bench" \
  bench/loader_bench.c build/libcryolvm.a $libs -lfftw3f_threads -lopenblas -ldnnl -lm -lpthread -ldl)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

mkdir -p "$tmp/maps"
"$PY" - "$root/tests/ref" "$tmp/maps" "$NMAPS" <<'EOF'
import gzip, sys
import numpy as np
from scipy.ndimage import gaussian_filter
sys.path.insert(0, sys.argv[1])
import make_mrc
out, n = sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(8)
names = []
for i in range(n):
    nz, ny, nx = (int(v) for v in rng.integers(64, 161, 3))
    a = np.zeros((nz, ny, nx), np.float32)
    k = int(rng.integers(20, 60))
    pts = (rng.integers(8, nz - 8, k), rng.integers(8, ny - 8, k), rng.integers(8, nx - 8, k))
    a[pts] = rng.uniform(0.5, 1.0, k).astype(np.float32)
    a = gaussian_filter(a, 3.0) * 100
    a += rng.normal(0, 0.02 * float(a.max()), a.shape).astype(np.float32)
    apix = 1.0 if i % 4 else float(rng.uniform(1.1, 1.4))
    data = make_mrc.mrc_bytes(a.astype(np.float32), apix=(apix,) * 3)
    name = "m%03d.mrc" % i
    if i % 4 == 1:
        name += ".gz"
        data = gzip.compress(data, 1)
    open("%s/%s" % (out, name), "wb").write(data)
    names.append(name)
open("%s/all.txt" % out, "w").write("\n".join(names) + "\n")
EOF

echo "| maps | corpus MiB (files) | cache MiB | largest prepared map MiB | run | open s | get crops/s | step wait mean ms | step wait max ms | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in 50 100 200; do
  [ "$n" -le "$NMAPS" ] || continue
  head -n "$n" "$tmp/maps/all.txt" > "$tmp/maps/list$n.txt"
  corpus=$(cd "$tmp/maps" && du -cm $(cat "list$n.txt") | tail -n 1 | cut -f1)
  rm -rf "$tmp/cache$n"
  for run in cold warm; do
    /usr/bin/time -v "$tmp/loader_bench" "$tmp/cache$n" 48 8 2 "$STEPS" "$STEP_MS" "$tmp/maps/list$n.txt" \
      > "$tmp/out" 2> "$tmp/time"
    rss=$(awk -F: '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tmp/time")
    cache=$(du -sm "$tmp/cache$n" | cut -f1)
    largest=$(find "$tmp/cache$n" -name '*.mrc' -printf '%s\n' | sort -n | tail -n 1 | awk '{ printf "%.1f", $1 / 1048576 }')
    v() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/out"; }
    echo "| $n | $corpus | $cache | $largest | $run | $(v open_s) | $(v get_crops_per_s) | $(v step_wait_mean_ms) | $(v step_wait_max_ms) | $rss |"
  done
done
