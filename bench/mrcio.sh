#!/usr/bin/env bash
# mrcio.sh — MRC read/write speed of libcore against copying the same bytes.
#
# Makes 256^3 and 512^3 float32 maps (64 and 512 MiB; random values) in the standard axis
# order, a 256^3 copy with axis order 3 1 2, a big-endian one, a float16 (mode 12) one and a
# gzip one (level 1), all with tests/ref/make_mrc.py's independent writer. For each, the
# median of 5 in-process reads and writes (bench/mrcio_bench.c: cryo_read_one /
# cryo_write_one, warm page cache) against the median of 5 `cat FILE > /dev/null` (read;
# `zcat` for the gzip file, MB/s of its inflated bytes) and
# `cp FILE DIR/` (read + write) of the same file, and, as a peer, mrcfile.read + mrcfile.write
# (numpy) in one Python process. Prints a Markdown table of MB/s (1 MB = 10^6 bytes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PY=/usr/bin/python3
tmp=${BENCH_TMP:-$(mktemp -d)}
trap 'rm -rf "$tmp"' EXIT

# Only volio and what it needs, so that work in progress elsewhere cannot break it.
(cd "$root" && cc -std=c11 -O2 -march=native -fopenmp -D_GNU_SOURCE -Ilibcore/include -Ilibcore \
  -o "$tmp/mrcio_bench" bench/mrcio_bench.c libcore/volio.c libcore/mrc.c libcore/mrc_read.c \
  libcore/mrc_write.c libcore/tiffio.c libcore/gz.c libcore/stream.c libcore/stream_read.c \
  libcore/stream_write.c libcore/error.c libcore/mem.c libcore/meta.c libcore/volume.c libcore/dtype.c \
  -lzstd -lz -ltiff -lm)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

"$PY" - "$root/tests/ref" "$tmp" <<'EOF'
import sys, gzip, numpy as np
sys.path.insert(0, sys.argv[1])
import make_mrc
tmp = sys.argv[2]
rng = np.random.default_rng(3)
a = rng.standard_normal((256, 256, 256), dtype=np.float32)
open(f"{tmp}/std256.mrc", "wb").write(make_mrc.mrc_bytes(a))
open(f"{tmp}/axes312.mrc", "wb").write(make_mrc.mrc_bytes(a, axes=(3, 1, 2)))
open(f"{tmp}/be256.mrc", "wb").write(make_mrc.mrc_bytes(a, big=True))
open(f"{tmp}/f16.mrc", "wb").write(make_mrc.mrc_bytes(a.astype(np.float16)))
open(f"{tmp}/gz256.mrc.gz", "wb").write(gzip.compress(make_mrc.mrc_bytes(a), 1))
b = rng.standard_normal((512, 512, 512), dtype=np.float32)
open(f"{tmp}/std512.mrc", "wb").write(make_mrc.mrc_bytes(b))
EOF
mkdir -p "$tmp/out"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # runs a command 5 times, prints the median seconds
  for _ in 1 2 3 4 5; do
    local t0 t1
    t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
    awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }'
  done | median
}

echo "| map | MiB | cryolvm read MB/s | \`cat\` (\`zcat\` for .gz) MB/s | cryolvm write MB/s | \`cp\` MB/s | mrcfile read+write MB/s |"
echo "|---|---|---|---|---|---|---|"
for f in std256.mrc std512.mrc axes312.mrc be256.mrc f16.mrc gz256.mrc.gz; do
  read -r _ bytes tr tw < <("$tmp/mrcio_bench" 5 "$tmp/out" "$tmp/$f")
  fbytes=$(stat -c %s "$tmp/$f")
  cbytes=$fbytes
  case $f in *.gz) tcat=$(timeit zcat "$tmp/$f"); cbytes=$bytes ;; *) tcat=$(timeit cat "$tmp/$f") ;; esac
  tcp=$(timeit cp "$tmp/$f" "$tmp/out/copy")
  tpy=$("$PY" - "$tmp/$f" "$tmp/out/py.mrc" <<'EOF'
import sys, time, statistics, mrcfile, numpy as np
ts = []
for _ in range(3):
    t0 = time.perf_counter()
    with mrcfile.open(sys.argv[1], permissive=True) as m:
        d = np.asarray(m.data)
        if d.dtype.byteorder == '>':
            d = d.astype(d.dtype.newbyteorder('='))
        vs = m.voxel_size
    with mrcfile.new(sys.argv[2], overwrite=True) as o:
        o.set_data(d)
        o.voxel_size = vs
    ts.append(time.perf_counter() - t0)
print(statistics.median(ts))
EOF
)
  awk -v f="$f" -v b="$bytes" -v fb="$fbytes" -v cb="$cbytes" -v tr="$tr" -v tw="$tw" -v tc="$tcat" -v tp="$tcp" -v ty="$tpy" \
    'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", f, b/1048576, b/tr/1e6, cb/tc/1e6, b/tw/1e6, fb/tp/1e6, b/ty/1e6 }'
done
