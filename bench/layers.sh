#!/usr/bin/env bash
# layers.sh — per-layer speed of the engine's CPU backend vs PyTorch (bench/README.md,
# "Model engine: layers"). Both sides: float32, the same shapes, the same thread count
# (CRYO_THREADS, default 2), best of 7 runs after 2 warm-ups; PyTorch in its best
# configuration on this machine (MACHINE.md): OPENBLAS_CORETYPE=SkylakeX and huge pages for
# malloc. Ours and PyTorch's runs alternate (ours, torch, ours, torch) and the better of
# each pair counts, to damp the noise of a shared machine.
#   bash bench/layers.sh            full table
#   bash bench/layers.sh wmsa       only layers whose name contains "wmsa"
set -euo pipefail
cd "$(dirname "$0")/.."
export CRYO_THREADS=${CRYO_THREADS:-2}
PY=/usr/bin/python3
make -s build/libcryolvm.a
mkdir -p build/bench
PKG=$(pkg-config --libs libzstd zlib libtiff-4 fftw3f jansson cairo 2>/dev/null || echo "-lzstd -lz -ltiff -lfftw3f -ljansson -lcairo")
# shellcheck disable=SC2086
cc -std=c11 -O2 -march=native -fopenmp -D_GNU_SOURCE -Ilibcore/include -o build/bench/layers_bench \
  bench/layers_bench.c build/libcryolvm.a $PKG -lfftw3f_threads -lopenblas -ldnnl -lm -lpthread -ldl

only=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); threads: $CRYO_THREADS"
echo
echo "Activation layout for oneDNN 3x3x3 conv forward (channels-last vs blocked):"
build/bench/layers_bench --layout 2>/dev/null | sed 's/^/  /'
echo
for round in 1 2; do
  build/bench/layers_bench $only >"$tmp/ours.$round" 2>"$tmp/ctx"
  OPENBLAS_CORETYPE=SkylakeX GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$PY" bench/layers_torch.py $only >"$tmp/torch.$round"
done
echo "engine: $(cat "$tmp/ctx" | sed 's/^layers_bench: //')"
"$PY" - "$tmp" <<'PYEOF'
import sys
d = sys.argv[1]
def rd(name):
    rows = {}
    for r in (1, 2):
        for line in open(f"{d}/{name}.{r}"):
            p = line.split()
            v = [float(x) for x in p[1:]]
            rows[p[0]] = [min(a, b) for a, b in zip(rows[p[0]], v)] if p[0] in rows else v
    return rows
ours, torch = rd("ours"), rd("torch")
PEAK = 375.0
print("| layer | fwd ms (ours / torch) | ratio | fwd+bwd ms (ours / torch) | ratio | fwd GFLOP/s | % of sgemm peak |")
print("|---|---|---|---|---|---|---|")
for k, (f, fb, gf) in ours.items():
    tf, tfb = torch.get(k, (float("nan"), float("nan")))
    gfs = gf / (f * 1e-3) if gf > 0 else 0
    rate = f"{gfs:.0f}" if gf > 0 else "–"
    pct = f"{100 * gfs / PEAK:.0f} %" if gf > 0 else "–"
    print(f"| {k} | {f:.1f} / {tf:.1f} | {f / tf:.2f} | {fb:.1f} / {tfb:.1f} | {fb / tfb:.2f} | {rate} | {pct} |")
PYEOF
