#!/usr/bin/env bash
# maptools.sh — the map tools on a realistic 256^3 map, side by side with their peers.
#
# The map: EMD-5168 (shared data, 100^3 at 1.742 Å) brought to 1.0 Å by a numpy Fourier pad
# (174^3), centred in a 256^3 box and given Gaussian noise of 0.2x its standard deviation
# (so it is not band-limited and compresses like a real map). Without the shared data a
# smooth random map of the same size is used instead (said in the output).
# Each job is a whole process (start-up, reading the MRC from the page cache, writing an MRC),
# median of $BENCH_REPEAT runs (default 5), OMP_NUM_THREADS=2:
#   bench_resample   mrc-resample --apix 1.5 (Fourier; 256 -> 171 voxels of exactly 1.5 Å: the
#                    input is padded to 270, transformed to 180, 171 kept) vs
#                    relion_image_handler --rescale_angpix 1.5 (relion makes 170 of 1.506 Å) vs
#                    numpy (rfftn, crop, irfftn, mrcfile in/out: 171 of 1.497 Å)
#   bench_resample_up the same map labelled 2.02 Å, --apix 1 (256 -> 517 voxels of exactly 1 Å:
#                    pad 300 = 2.02 x 50 ... M = 606, the factor 101 of 2.02 = 101/50 is in
#                    every exact size) vs relion --rescale_angpix 1 (516 of 1.0019 Å)
#   bench_normalize  mrc-normalize (0.01/0.99 quantiles, clip to [0,1]) vs numpy
#                    (np.quantile, np.clip, mrcfile in/out); relion has no such job
#   bench_fsc        fsc-eval vs relion_image_handler --fsc and numpy; --mask vs relion_postprocess
# Floors, from numbers measured here by a small C program (FFTW's best plan, FFTW_MEASURE,
# 2 threads; memcpy bandwidth of a 256 MiB buffer; process start-up = `mrc-resample --version`):
#   resample  = start-up + 2 (in + out bytes) / bandwidth + (r2c 270^3 + c2r 180^3, the exact
#               job's transforms) at the measured FFTW times
#   normalize = start-up + (2 in + 2 out + 2 passes over the data) bytes / bandwidth
# (2x for a file: the kernel copies from the page cache, we touch it once more.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PY=/usr/bin/python3
bin=${CRYO_BIN:-$root/bin}
tmp=${BENCH_TMP:-$(mktemp -d)}
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
REPEAT=${BENCH_REPEAT:-5}
data=${CRYO_DATA:-$root/../shared/data}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # command... -> median wall seconds over $REPEAT runs
  for _ in $(seq "$REPEAT"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N)
    awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }'
  done | median
}

make_map() {
  "$PY" - "$data/tempy_emd5168_actin/emd_5168.map" "$tmp/m256.mrc" <<'EOF'
import sys, os, numpy as np, mrcfile
src, dst = sys.argv[1:3]
rng = np.random.default_rng(0)
if os.path.exists(src):
    a = mrcfile.open(src, permissive=True).data.astype(np.float64)
    n = a.shape[0]; m = int(round(n * 1.742))           # 174 voxels of 1.0 Å
    F = np.fft.fftshift(np.fft.fftn(a))
    G = np.zeros((m, m, m), complex); o = m // 2 - n // 2
    G[o:o + n, o:o + n, o:o + n] = F
    b = np.fft.ifftn(np.fft.ifftshift(G)).real * (m / n) ** 3
    what = "EMD-5168 at 1.0 Å in a 256^3 box + noise"
else:
    m = 174
    b = np.fft.irfftn(np.fft.rfftn(rng.standard_normal((m, m, m))) *
                      np.exp(-np.add.outer(np.add.outer(np.fft.fftfreq(m) ** 2, np.fft.fftfreq(m) ** 2),
                                           np.fft.rfftfreq(m) ** 2) * 200), s=(m, m, m))
    what = "smooth random map (shared data absent) in a 256^3 box + noise"
out = np.zeros((256, 256, 256)); o = 128 - m // 2
out[o:o + m, o:o + m, o:o + m] = b
out += rng.standard_normal(out.shape) * 0.2 * b.std()
with mrcfile.new(dst, overwrite=True) as f:
    f.set_data(out.astype(np.float32)); f.voxel_size = 1.0
print(what)
EOF
}

floors() { # prints: bandwidth_GB/s t_r2c256 t_c2r171 t_r2c270 t_c2r180
  cat > "$tmp/floor.c" <<'EOF'
#include <fftw3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static double best_fft(int n, int r2c) {
    size_t N = (size_t)n * n * n, C = (size_t)n * n * (n / 2 + 1);
    float *r = fftwf_alloc_real(N); fftwf_complex *c = fftwf_alloc_complex(C);
    fftwf_plan p = r2c ? fftwf_plan_dft_r2c_3d(n, n, n, r, c, FFTW_MEASURE)
                       : fftwf_plan_dft_c2r_3d(n, n, n, c, r, FFTW_MEASURE);
    for (size_t i = 0; i < N; i++) r[i] = (float)(i % 13);
    for (size_t i = 0; i < C; i++) c[i][0] = c[i][1] = 1;
    double best = 1e9;
    for (int k = 0; k < 5; k++) { double t = now(); fftwf_execute(p); t = now() - t; if (t < best) best = t; }
    fftwf_destroy_plan(p); fftwf_free(r); fftwf_free(c);
    return best;
}
int main(void) {
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n); memset(b, 2, n);
    double best = 1e9;
    for (int k = 0; k < 5; k++) { double t = now(); memcpy(b, a, n); t = now() - t; if (t < best) best = t; }
    fftwf_init_threads(); fftwf_plan_with_nthreads(2);
    fftwf_set_timelimit(60);
    printf("%.3f %.5f %.5f %.5f %.5f\n", 2.0 * n / best / 1e9, best_fft(256, 1), best_fft(171, 0),
           best_fft(270, 1), best_fft(180, 0));
    return b[7] == 0;
}
EOF
  cc -O2 -o "$tmp/floor" "$tmp/floor.c" -lfftw3f_threads -lfftw3f -lm
  "$tmp/floor"
}

bench_resample() {
  local ours relion np
  ours=$(timeit "$bin/mrc-resample" -q --apix 1.5 "$tmp/m256.mrc" -o "$tmp/o.mrc")
  if command -v relion_image_handler >/dev/null; then
    relion=$(cd "$tmp" && timeit relion_image_handler --i m256.mrc --o rl.mrc --rescale_angpix 1.5)
  else
    relion=nan
  fi
  cat > "$tmp/np_resample.py" <<'EOF'
import sys, numpy as np, mrcfile
a = mrcfile.read(sys.argv[1]); m = 171; h = m // 2
F = np.fft.rfftn(a)
G = np.concatenate([F[:h + 1], F[-h:]], 0)
G = np.concatenate([G[:, :h + 1], G[:, -h:]], 1)[:, :, :h + 1]
b = np.fft.irfftn(G, s=(m, m, m)) * (m ** 3 / a.size)
mrcfile.write(sys.argv[2], b.astype(np.float32), overwrite=True, voxel_size=256 / 171)
EOF
  np=$(timeit "$PY" "$tmp/np_resample.py" "$tmp/m256.mrc" "$tmp/np.mrc")
  local floor
  floor=$(awk -v s="$startup" -v bw="$bw" -v f1="$t_r2c270" -v f2="$t_c2r180" \
    'BEGIN { printf "%.3f", s + 2 * (256^3 + 171^3) * 4 / (bw * 1e9) + f1 + f2 }')
  printf '| resample 1.0 → 1.5 Å (256³ → 171³, exact) | %.3f | %s | %s | %.3f | %s |\n' "$ours" \
    "$(awk -v a="$relion" -v b="$ours" 'BEGIN { if (a == "nan") print "–"; else printf "%.2f s (%.1f×)", a, a / b }')" \
    "$(awk -v a="$np" -v b="$ours" 'BEGIN { printf "%.2f s (%.1f×)", a, a / b }')" "$floor" \
    "$(awk -v a="$ours" -v b="$floor" 'BEGIN { printf "%.1f×", a / b }')"
}

bench_resample_up() {
  local ours relion
  "$PY" -c "import mrcfile; m = mrcfile.open('$tmp/m256.mrc'); mrcfile.write('$tmp/m202.mrc', m.data, overwrite=True, voxel_size=2.02)"
  ours=$(timeit "$bin/mrc-resample" -q --apix 1 "$tmp/m202.mrc" -o "$tmp/up.mrc")
  if command -v relion_image_handler >/dev/null; then
    relion=$(cd "$tmp" && timeit relion_image_handler --i m202.mrc --o rlup.mrc --rescale_angpix 1)
  else
    relion=nan
  fi
  printf '| resample 2.02 → 1.0 Å (256³ → 517³, exact) | %.3f | %s | – | – | – |\n' "$ours" \
    "$(awk -v a="$relion" -v b="$ours" 'BEGIN { if (a == "nan") print "–"; else printf "%.2f s (%.1f×)", a, a / b }')"
}

bench_normalize() {
  local ours np floor
  ours=$(timeit "$bin/mrc-normalize" "$tmp/m256.mrc" -o "$tmp/n.mrc")
  cat > "$tmp/np_normalize.py" <<'EOF'
import sys, numpy as np, mrcfile
a = mrcfile.read(sys.argv[1]); lo, hi = np.quantile(a, [0.01, 0.99])
b = np.clip((a - lo) / (hi - lo), 0, 1)
mrcfile.write(sys.argv[2], b.astype(np.float32), overwrite=True, voxel_size=1.0)
EOF
  np=$(timeit "$PY" "$tmp/np_normalize.py" "$tmp/m256.mrc" "$tmp/npn.mrc")
  floor=$(awk -v s="$startup" -v bw="$bw" 'BEGIN { printf "%.3f", s + 6 * 256^3 * 4 / (bw * 1e9) }')
  printf '| normalise (0.01/0.99 quantiles, clip to [0,1]) | %.3f | – | %s | %.3f | %s |\n' "$ours" \
    "$(awk -v a="$np" -v b="$ours" 'BEGIN { printf "%.2f s (%.1f×)", a, a / b }')" "$floor" \
    "$(awk -v a="$ours" -v b="$floor" 'BEGIN { printf "%.1f×", a / b }')"
}

# bench_fsc: FSC of two 256^3 maps (the map above plus two independent noise draws of 0.5x
# its standard deviation: stand-in half maps), unmasked against relion_image_handler --fsc
# and numpy (rfftn both, shell sums with np.bincount, mrcfile in); masked (soft sphere,
# radius 90 voxels, 8-voxel cosine edge) with phase randomisation against relion_postprocess
# (no B-factor; it exits 1 after the STAR file when it cannot make its PDF log: timed anyway).
# Floors: start-up + the two maps (and the mask) read twice at memcpy bandwidth + the FFTs
# at FFTW's best measured time (r2c 256^3; c2r counted as r2c) + one read of the two
# half spectra (2 x 135 MB) per FSC.
quiet() { "$@" || true; }
bench_fsc() {
  "$PY" - "$tmp/m256.mrc" "$tmp/h1.mrc" "$tmp/h2.mrc" <<'EOF2'
import sys, numpy as np, mrcfile
a = mrcfile.read(sys.argv[1]).astype(np.float32)
rng = np.random.default_rng(7)
for out in sys.argv[2:4]:
    b = a + rng.standard_normal(a.shape).astype(np.float32) * np.float32(0.5 * a.std())
    mrcfile.write(out, b, overwrite=True, voxel_size=1.0)
EOF2
  "$PY" "$root/tests/ref/fsc_ref.py" mask "$tmp/h1.mrc" "$tmp/mask.mrc" --radius 90 --edge 8
  cat > "$tmp/np_fsc.py" <<'EOF2'
import sys, numpy as np, mrcfile
a = mrcfile.read(sys.argv[1]); b = mrcfile.read(sys.argv[2]); n = a.shape[0]
fa = np.fft.rfftn(a); fb = np.fft.rfftn(b)
k = np.fft.fftfreq(n) * n; x = np.arange(n // 2 + 1)
q = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + x[None, None, :] ** 2)).astype(np.int64)
sel = q <= n // 2; qq = q[sel]
num = np.bincount(qq, (fa * np.conj(fb)).real[sel]); d1 = np.bincount(qq, (np.abs(fa) ** 2)[sel])
d2 = np.bincount(qq, (np.abs(fb) ** 2)[sel])
fsc = num / np.sqrt(d1 * d2)
np.savetxt(sys.argv[3], fsc)
EOF2
  local ours np relion floor oursm relionm floorm
  ours=$(timeit "$bin/fsc-eval" -q "$tmp/h1.mrc" "$tmp/h2.mrc" --tsv "$tmp/f.tsv")
  np=$(timeit "$PY" "$tmp/np_fsc.py" "$tmp/h1.mrc" "$tmp/h2.mrc" "$tmp/np.txt")
  oursm=$(timeit "$bin/fsc-eval" -q "$tmp/h1.mrc" "$tmp/h2.mrc" --mask "$tmp/mask.mrc" --tsv "$tmp/fm.tsv")
  if command -v relion_image_handler >/dev/null; then
    relion=$(cd "$tmp" && timeit relion_image_handler --i h1.mrc --fsc h2.mrc)
    relionm=$(cd "$tmp" && timeit quiet relion_postprocess --i h1.mrc --i2 h2.mrc --mask mask.mrc --angpix 1 \
      --o pp --auto_bfac false --adhoc_bfac 0)
  else
    relion=nan relionm=nan
  fi
  floor=$(awk -v s="$startup" -v bw="$bw" -v f1="$t_r2c" \
    'BEGIN { printf "%.3f", s + (2 * 2 * 256^3 * 4 + 2 * 256^2 * 129 * 8) / (bw * 1e9) + 2 * f1 }')
  floorm=$(awk -v s="$startup" -v bw="$bw" -v f1="$t_r2c" \
    'BEGIN { printf "%.3f", s + (2 * 3 * 256^3 * 4 + 3 * 2 * 256^2 * 129 * 8) / (bw * 1e9) + 8 * f1 }')
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan") print "–"; else printf "%.2f s (%.1f×)", a, a / b }'; }
  printf '| FSC of two 256³ maps | %.3f | %s | %s | %.3f | %s |\n' "$ours" "$(ratio "$relion" "$ours")" \
    "$(ratio "$np" "$ours")" "$floor" "$(awk -v a="$ours" -v b="$floor" 'BEGIN { printf "%.1f×", a / b }')"
  printf '| masked FSC + phase randomisation (relion_postprocess) | %.3f | %s | – | %.3f | %s |\n' "$oursm" \
    "$(ratio "$relionm" "$oursm")" "$floorm" "$(awk -v a="$oursm" -v b="$floorm" 'BEGIN { printf "%.1f×", a / b }')"
}

what=$(make_map)
read -r bw t_r2c t_c2r t_r2c270 t_c2r180 < <(floors)
startup=$(timeit "$bin/mrc-resample" --version)
echo "Map: $what. Measured here: memcpy $bw GB/s, FFTW best plans (MEASURE, 2 threads) r2c 256³ ${t_r2c} s, c2r 171³ ${t_c2r} s, r2c 270³ ${t_r2c270} s, c2r 180³ ${t_c2r180} s, start-up ${startup} s."
echo
echo "| job | cryolvm s | relion (ratio) | numpy (ratio) | floor s | cryolvm / floor |"
echo "|---|---|---|---|---|---|"
# MAPTOOLS_JOBS picks jobs (default all)
for job in ${MAPTOOLS_JOBS:-resample resample_up normalize fsc}; do
  if declare -F "bench_$job" >/dev/null; then "bench_$job"; fi
done
