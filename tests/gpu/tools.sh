#!/usr/bin/env bash
# tools.sh — the tools' --device and --precision on a GPU (tests/gpu/run runs it after
# memcheck; about 20-40 s). The CPU side of the same flags is tests/bats/precision-flags.bats.
#   lvm-model bench --device cuda, forward and --train, in fp32, tf32 and bf16: runs, prints
#     that precision and a GPU device (bf16 training is allowed on the GPU, refused on the CPU)
#   lvm-model bench --device auto: takes the GPU
#   lvm-model run --device cuda --precision tf32: an output the size of the input, finite
#   jepa-train --device cuda --precision bf16 (JEPA pre-training, then MSE fine-tuning) and
#     tf32: trains, the checkpoint records jepa_train.precision and a non-cpu device
# Needs only python3's standard library (the maps are written by hand). $CRYO_BIN: the tools
# (tests/gpu/run sets it). GPU_TOOLS_SELFTEST=1: the same on the CPU (device cpu, bf16 only
# for forward passes), to check the script where there is no GPU. Exit 0 all passed, 1 a failure.
set -uo pipefail
bin=${CRYO_BIN:-$(cd "$(dirname "$0")/../../bin" && pwd)}
py=$(command -v python3 || true)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
D=cuda
[ "${GPU_TOOLS_SELFTEST:-0}" = 1 ] && D=cpu
on_device() { [ "$D" = cpu ] || [[ -n "$1" && "$1" != cpu* ]]; } # a context name from the right device
ok() { echo "ok   $*"; passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n 1; }

meta() { # FILE KEY
  "$py" - "$1" "$2" <<'PYEOF'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n]).get('__metadata__', {}).get(sys.argv[2], ''))
PYEOF
}

[ -n "$py" ] || { echo "tools.sh: no python3"; exit 1; }
"$bin/lvm-model" init -q --device cpu --seed 3 --config width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2 \
  -o "$tmp/w.safetensors" || { echo "tools.sh: lvm-model init failed"; exit 1; }

# lvm-model bench on the GPU in every precision, forward and training
for p in fp32 tf32 bf16; do
  for mode in forward train; do
    [ "$D$p$mode" = cpubf16train ] && continue # refused on the CPU (precision-flags.bats)
    args=(bench "$tmp/w.safetensors" --device "$D" --box 16 --repeat 1 --precision "$p")
    [ "$mode" = train ] && args+=(--train)
    if out=$(timeout 60 "$bin/lvm-model" "${args[@]}" 2>&1); then
      dev=$(sed -n 's/.*device="\([^"]*\)".*/\1/p' <<<"$out")
      if [ "$(field precision "$out")" = "$p" ] && on_device "$dev"; then
        ok "lvm-model bench --device $D --precision $p ($mode): $(field seconds "$out") s on $dev"
      else
        bad "lvm-model bench --device $D --precision $p ($mode): $out"
      fi
    else
      bad "lvm-model bench --device $D --precision $p ($mode): $(tail -n 1 <<<"$out")"
    fi
  done
done
out=$(timeout 60 "$bin/lvm-model" bench "$tmp/w.safetensors" --box 16 --repeat 1 2>&1)
if [[ "$out" == *'device="'* ]] && on_device "$(sed -n 's/.*device="\([^"]*\)".*/\1/p' <<<"$out")"; then
  ok "lvm-model bench --device auto (the default) takes the GPU"
else
  bad "lvm-model bench --device auto: $(tail -n 1 <<<"$out")"
fi

# two 32^3 maps at 1 A (MRC mode 2, by hand): input and a smoothed target
"$py" - "$tmp/a.mrc" "$tmp/b.mrc" <<'PYEOF'
import sys, struct, random, array
n = 32
random.seed(1)
a = array.array('f', (random.random() for _ in range(n ** 3)))
b = array.array('f', ((a[i] + a[i - 1] + a[i - n]) / 3 for i in range(n ** 3)))
for path, d in ((sys.argv[1], a), (sys.argv[2], b)):
    h = [0] * 256
    ints = {0: n, 1: n, 2: n, 3: 2, 7: n, 8: n, 9: n, 16: 1, 17: 2, 18: 3, 22: 1, 27: 20140, 53: 0x4444}
    floats = {10: float(n), 11: float(n), 12: float(n), 13: 90.0, 14: 90.0, 15: 90.0,
              19: min(d), 20: max(d), 21: sum(d) / len(d), 54: 0.3}
    words = b''.join(struct.pack('<f', floats[i]) if i in floats else
                     (b'MAP ' if i == 52 else struct.pack('<i', ints.get(i, 0))) for i in range(256))
    open(path, 'wb').write(words + d.tobytes())
PYEOF
out=$(timeout 60 "$bin/lvm-model" run -q --device "$D" --precision tf32 "$tmp/w.safetensors" "$tmp/a.mrc" \
  -o "$tmp/o.mrc" 2>&1)
if [ $? -eq 0 ] && [ "$(stat -c %s "$tmp/o.mrc" 2>/dev/null)" -ge $((32 * 32 * 32 * 4)) ] &&
  "$py" -c 'import sys, struct, math; b = open(sys.argv[1], "rb").read(); n = struct.unpack("<i", b[92:96])[0]
d = struct.unpack("<%df" % (32 ** 3), b[1024 + n:]); sys.exit(0 if all(map(math.isfinite, d)) else 1)' "$tmp/o.mrc"; then
  ok "lvm-model run --device $D --precision tf32: a finite 32^3 map"
else
  bad "lvm-model run --device $D --precision tf32: $(tail -n 1 <<<"$out")"
fi

# jepa-train on the GPU: bf16 and tf32 pre-training, bf16 fine-tuning
jt=(--config width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2 --predictor embed=24,depth=1,head_dim=8 --batch 2
  --steps 3 --size 16 --device "$D")
echo "$tmp/a.mrc $tmp/b.mrc" >"$tmp/pairs.txt"
runs=("pre bf16" "pre tf32" "fine bf16")
[ "$D" = cpu ] && runs=("pre fp32" "pre tf32" "fine tf32")
for run in "${runs[@]}"; do
  set -- $run
  extra=("$tmp/a.mrc")
  [ "$1" = fine ] && extra=(--task sharpen --from-scratch --pairs "$tmp/pairs.txt")
  d=$tmp/run-$1-$2 what=$([ "$1" = fine ] && echo "MSE fine-tuning" || echo "JEPA pre-training")
  if out=$(timeout 90 "$bin/jepa-train" -q "${jt[@]}" --precision "$2" --out "$d" "${extra[@]}" 2>&1) &&
    [ -s "$d/last.safetensors" ]; then
    pr=$(meta "$d/last.safetensors" jepa_train.precision) dev=$(meta "$d/last.safetensors" jepa_train.device)
    if [ "$pr" = "$2" ] && on_device "$dev"; then
      ok "jepa-train --device $D --precision $2 ($what): 3 steps on $dev"
    else
      bad "jepa-train --device $D --precision $2 ($what): recorded precision '$pr', device '$dev'"
    fi
  else
    bad "jepa-train --device $D --precision $2 ($what): $(tail -n 1 <<<"$out")"
  fi
done
echo "tools.sh: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
