#!/usr/bin/env bash
# stream.sh — size and speed of the CVOL stream (cryolvm-stream(5)) against plain zstd.
#
# Builds three 256^3 float32 maps (x fastest, 64 MiB raw):
#   tiled     EMD-5168 (real, 100^3) tiled to 256^3 plus Gaussian noise of 0.1 x its std,
#             so that the tiles are not exact repeats (which zstd would find);
#   upnoise   EMD-5168 upsampled 2.56x (cubic) plus Gaussian noise of 0.3 x its std;
#   simulated a noise-free map: 4000 Gaussian "atoms" (B ~ 2 A^2 at 1 A/voxel), no noise;
# and the shared real maps at their own size. For each: raw bytes, CVOL bytes and ratio at
# level 3 (shuffled, 4 MiB chunks), the ratio of the `zstd -3` command on the raw bytes, and
# median in-memory encode/decode MB/s of the C library against plain zstd -3 on the same
# buffer with 2 workers (bench/stream_bench.c; OMP_NUM_THREADS=2).
# Needs the shared data (../shared/data or $CRYO_DATA); prints a Markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data=${CRYO_DATA:-$root/../shared/data}
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Only the stream and the core it needs, so that work in progress elsewhere cannot break it.
(cd "$root" && cc -std=c11 -O2 -march=native -fopenmp -D_GNU_SOURCE -Ilibcore/include -Ilibcore \
  -o "$tmp/stream_bench" bench/stream_bench.c libcore/stream.c libcore/stream_read.c \
  libcore/stream_write.c libcore/error.c libcore/mem.c libcore/meta.c libcore/volume.c libcore/dtype.c \
  -lzstd -lz -lm)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

[ -f "$data/tempy_emd5168_actin/emd_5168.map" ] || { echo "stream.sh: no shared data in $data" >&2; exit 1; }
"$PY" - "$data" "$tmp" <<'EOF'
import sys, numpy as np, mrcfile, scipy.ndimage as ndi
data, tmp = sys.argv[1], sys.argv[2]
m = mrcfile.open(f"{data}/tempy_emd5168_actin/emd_5168.map", permissive=True).data.astype(np.float32)
n = 256
rng = np.random.default_rng(1)
t = np.tile(m, (3, 3, 3))[:n, :n, :n]
t = t + rng.normal(0, 0.1 * t.std(), t.shape)
np.ascontiguousarray(t, np.float32).tofile(f"{tmp}/tiled.raw")
u = ndi.zoom(m, n / m.shape[0], order=3)[:n, :n, :n]
u = u + rng.normal(0, 0.3 * u.std(), u.shape)
np.ascontiguousarray(u, np.float32).tofile(f"{tmp}/upnoise.raw")
pts = np.zeros((n, n, n), np.float32)
idx = rng.integers(40, n - 40, size=(4000, 3))
np.add.at(pts, (idx[:, 0], idx[:, 1], idx[:, 2]), rng.uniform(6, 16, 4000).astype(np.float32))
s = ndi.gaussian_filter(pts, 1.2)
s.astype(np.float32).tofile(f"{tmp}/simulated.raw")
import glob, os
with open(f"{tmp}/list", "w") as f:
    for name in ("tiled", "upnoise", "simulated"):
        f.write(f"{name} {n} {n} {n}\n")
    for p in sorted(glob.glob(f"{data}/*/*.map") + glob.glob(f"{data}/*/*.mrc") + glob.glob(f"{data}/*/*.ccp4")):
        v = mrcfile.open(p, permissive=True).data
        if v.dtype != np.float32 or v.ndim != 3:
            continue
        b = os.path.basename(p).split(".")[0]
        np.ascontiguousarray(v).tofile(f"{tmp}/{b}.raw")
        f.write(f"{b} {v.shape[2]} {v.shape[1]} {v.shape[0]}\n")
EOF

echo "| map | shape | raw MiB | CVOL ratio | \`zstd -3\` ratio | CVOL, no shuffle | CVOL enc MB/s | zstd enc MB/s | CVOL dec MB/s | zstd dec MB/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
while read -r name nx ny nz; do
  f=$tmp/$name.raw
  raw=$(stat -c %s "$f")
  reps=5; [ "$raw" -lt 4000000 ] && reps=21
  out=$("$tmp/stream_bench" "$f" float32 "$nx" "$ny" "$nz" 3 1 0 $reps)
  ours=$(sed -n 1p <<<"$out"); peer=$(sed -n 2p <<<"$out")
  ratio=$(awk '{print $6}' <<<"$ours"); enc=$(awk '{print $8}' <<<"$ours"); dec=$(awk '{print $11}' <<<"$ours")
  penc=$(awk '{print $9}' <<<"$peer"); pdec=$(awk '{print $12}' <<<"$peer")
  noshuf=$("$tmp/stream_bench" "$f" float32 "$nx" "$ny" "$nz" 3 0 0 1 | sed -n 1p | awk '{print $6}')
  z=$(zstd -3 -q -c "$f" | wc -c)
  zr=$(awk -v a="$raw" -v b="$z" 'BEGIN{printf "%.3f", a/b}')
  mib=$(awk -v a="$raw" 'BEGIN{printf "%.2f", a/1048576}')
  echo "| $name | ${nx}x${ny}x${nz} | $mib | $ratio | $zr | $noshuf | $enc | $penc | $dec | $pdec |"
done <"$tmp/list"
# Plain zstd speed on the tiled map for scale (one thread, file to /dev/null, incl. I/O).
t0=$(date +%s.%N); zstd -3 -q -c "$tmp/tiled.raw" >/dev/null; t1=$(date +%s.%N)
awk -v a="$(stat -c %s "$tmp/tiled.raw")" -v t="$(echo "$t1 - $t0" | bc)" \
  'BEGIN{printf "\nzstd -3 (1 thread, whole process) on tiled: %.0f MB/s\n", a/1e6/t}'

# ---- whole processes on the 256^3 tiled map as an MRC file (median of 5) ----------------
bin=${CRYO_BIN:-$root/bin}
if [ -x "$bin/vol-convert" ]; then
  "$PY" -c '
import sys, numpy as np, mrcfile
a = np.fromfile(sys.argv[1], np.float32).reshape(256, 256, 256)
with mrcfile.new(sys.argv[2], overwrite=True) as m:
    m.set_data(a); m.voxel_size = 1.0' "$tmp/tiled.raw" "$tmp/map.mrc"
  med() { # median wall seconds of "$@" over 5 runs
    local ts=()
    for _ in 1 2 3 4 5; do
      local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; t1=$(date +%s.%N)
      ts+=("$(echo "$t1 - $t0" | bc)")
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p
  }
  row() { # label, ours..., --, peer...
    local label=$1; shift; local ours=() peer=(); while [ "$1" != -- ]; do ours+=("$1"); shift; done; shift; peer=("$@")
    local a b; a=$(med "${ours[@]}"); b=$(med "${peer[@]}")
    awk -v l="$label" -v a="$a" -v b="$b" 'BEGIN{printf "| %s | %.3f | %.3f | %.2f |\n", l, a, b, a/b}'
  }
  echo
  echo "| whole process, 256^3 float32 (64 MiB) | ours s | peer s | ours/peer |"
  echo "|---|---|---|---|"
  row "MRC -> stream: vol-convert vs zstd -3 -T2 of the MRC file" \
    "$bin/vol-convert" "$tmp/map.mrc" -o "$tmp/map.cvol" -- zstd -3 -T2 -q -f "$tmp/map.mrc" -o "$tmp/map.mrc.zst"
  row "stream -> MRC: vol-convert vs zstd -d" \
    "$bin/vol-convert" "$tmp/map.cvol" -o "$tmp/back.mrc" -- zstd -d -q -f "$tmp/map.mrc.zst" -o "$tmp/back2.mrc"
  row "MRC -> MRC: vol-convert vs gemmi (Python, read + write)" \
    "$bin/vol-convert" "$tmp/map.mrc" -o "$tmp/copy.mrc" -- \
    "$PY" -c 'import sys, gemmi; m = gemmi.read_ccp4_map(sys.argv[1]); m.write_ccp4_map(sys.argv[2])' "$tmp/map.mrc" "$tmp/copy2.mrc"
  row "stream -> stats: vol-info vs numpy+mrcfile on the MRC" \
    "$bin/vol-info" "$tmp/map.cvol" -- \
    "$PY" -c 'import sys, mrcfile, numpy as np; a = mrcfile.read(sys.argv[1]).astype(np.float64); print(a.min(), a.max(), a.mean(), np.sqrt((a*a).mean()))' "$tmp/map.mrc"
fi
