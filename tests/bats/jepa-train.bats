#!/usr/bin/env bats
# jepa-train: learning (JEPA loss falls without collapse, MAE too; a tiny fine-tune cuts the
# validation loss >= 5x), exact resume after SIGKILL, SIGTERM checkpoint, every refusal,
# fine-tuning weights metadata, export, --show-mask. Tiny network (width 8, 2 levels, depth 1)
# on 16^3 crops, one thread, so each run takes seconds on shared cores.
load helpers
bats_require_minimum_version 1.5.0

NET="--config width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2 --threads 1"
PRED="--predictor embed=24,depth=1,head_dim=8"

# A 48^3 map of Gaussian blobs at 1 Å, clipped to [0, 1] (the model's input convention).
setup_file() {
  D=$BATS_FILE_TMPDIR
  "$PY" - "$D/map.mrc" "$D/map13.mrc" <<'PY'
import sys, numpy as np, mrcfile
rng = np.random.default_rng(3)
n = 48
z, y, x = np.mgrid[:n, :n, :n]
a = np.zeros((n, n, n))
for i in range(60):
    c = rng.uniform(4, n - 4, 3); s = rng.uniform(1.2, 2.5)
    a += np.exp(-((z - c[0])**2 + (y - c[1])**2 + (x - c[2])**2) / (2 * s * s))
a = np.clip(a / np.quantile(a, 0.99), 0, 1).astype(np.float32)
for path, apix in ((sys.argv[1], 1.0), (sys.argv[2], 1.3)):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(a); m.voxel_size = apix
PY
  vol-patch --random 32 --size 16 --seed 3 "$D/map.mrc" > "$D/crops.cvol"
  vol-patch --random 4 --size 16 --seed 3 "$D/map13.mrc" > "$D/crops13.cvol"
  vol-patch --random 4 --size 16 --seed 77 "$D/map.mrc" > "$D/pval.cvol"
  vol-degrade --pair --lowpass 6 "$D/map.mrc" > "$D/pair.cvol"
  vol-patch --random 24 --size 16 --seed 4 "$D/pair.cvol" > "$D/pairs.cvol"
  vol-patch --random 4 --size 16 --seed 99 "$D/pair.cvol" > "$D/val.cvol"
  vol-degrade --pair --wedge 45 "$D/map.mrc" > "$D/wpair.cvol"
  vol-patch --random 24 --size 16 --seed 4 "$D/wpair.cvol" > "$D/wpairs.cvol"
  vol-patch --random 4 --size 16 --seed 99 "$D/wpair.cvol" > "$D/wval.cvol"
  vol-degrade --pair --bin 2 --snr 5 "$D/map.mrc" > "$D/spair.cvol"
  vol-patch --random 24 --size 16 --seed 4 "$D/spair.cvol" > "$D/spairs.cvol"
  vol-patch --random 4 --size 16 --seed 99 "$D/spair.cvol" > "$D/sval.cvol"
}

# The input baseline of validation pairs $1 (numpy, tests/ref/hist_ref.py): the mean over the
# crops of alpha*MSE(input, target) + (1-alpha)*JS(soft histograms, 100 bins on [0,1], sigma
# one bin), the loss a network that returns its input would have.
input_baseline() {
  "$PY" - "$1" "$2" <<'PY'
import sys, numpy as np, cvol, hist_ref
alpha = float(sys.argv[2]); losses = []
for f in cvol.read_stream(sys.argv[1]):
    x, t = (c.astype(np.float64).ravel() for c in f["data"])
    js = hist_ref.js(hist_ref.soft_hist(x, 100, 0, 1, 0.01), hist_ref.soft_hist(t, 100, 0, 1, 0.01))
    losses.append(alpha * np.mean((x - t) ** 2) + (1 - alpha) * js)
print(np.mean(losses))
PY
}

# Validation losses of log $1: "first last" (step 0, the untrained network, and the end).
val_first_last() {
  awk -F'\t' '$6 != "-" && NR > 1 {if (first == "") first = $6; last = $6} END {print first, last}' "$1"
}

# Tensor bytes of two safetensors files equal (metadata may differ: it names the run dir).
same_tensors() {
  "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = [k for k in a if a[k] != b.get(k)]
assert a.keys() == b.keys() and not bad, f"{len(bad)} tensors differ, e.g. {bad[:3]}"
print(f"{len(a)} tensors identical")
PY
}

meta() {
  "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n]).get('__metadata__', {}).get(sys.argv[2], ''))
PY
}

@test "JEPA pre-training learns: the loss falls and the embedding spread stays above the collapse threshold" {
  run jepa-train $NET $PRED --steps 40 --batch 2 --save-every 20 --out "$TMP/run" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 0 ]
  [[ "$output" != *collaps* ]]
  [ -f "$TMP/run/last.safetensors" ] && [ -f "$TMP/run/step-20.safetensors" ] && [ -f "$TMP/run/step-40.safetensors" ]
  head -1 "$TMP/run/log.tsv" | grep -q $'^step\tlr\twd\tema\tloss\tval_loss\tgrad_norm\tspread_tokens\tspread_samples'
  # schedules: lr warms up then falls to min-lr, wd 0.04 -> 0.4, EMA 0.996 -> 1
  awk -F'\t' 'NR==2{ok = $4 == 0.996} NR==41{ok = ok && $3 == 0.4 && $2 == 1e-06 && $4 > 0.9998} END{exit !ok}' "$TMP/run/log.tsv"
  awk -F'\t' 'NR>=2 && NR<=6 {f += $5} NR>=37 {l += $5} $8 < 0.05 {low = 1}
              END {printf "loss %.4f -> %.4f\n", f/5, l/5; exit !(l < 0.6 * f && !low)}' "$TMP/run/log.tsv"
  # the checkpoint loads as backbone weights
  run lvm-model info "$TMP/run/last.safetensors"
  [ "$status" -eq 0 ] && [[ "$output" == *"JEPA predictor"* ]]
}

@test "pre-training --val: fixed held-out crops and masks; the validation loss falls, best.safetensors follows it, the run is unchanged" {
  a="$NET $PRED --steps 30 --batch 2 --save-every 30"
  jepa-train $a --out "$TMP/plain" < "$BATS_FILE_TMPDIR/crops.cvol" 2>/dev/null
  run jepa-train $a --val "$BATS_FILE_TMPDIR/pval.cvol" --val-every 10 --out "$TMP/val" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 0 ]
  same_tensors "$TMP/plain/last.safetensors" "$TMP/val/last.safetensors"
  awk -F'\t' '$6 != "-" && NR > 1 {n++; v[n] = $6; s[n] = $1; if ($10 != "-" || $11 != "-") bad = 1}
              END {printf "val loss at steps %s %s %s %s: %s %s %s %s\n", s[1], s[2], s[3], s[4], v[1], v[2], v[3], v[4];
                   exit !(n == 4 && s[1] == 0 && s[4] == 30 && v[4] < 0.6 * v[1] && !bad)}' "$TMP/val/log.tsv"
  best=$(awk -F'\t' '$6 != "-" && NR > 2 && (b == "" || $6 < b) {b = $6} END {print b}' "$TMP/val/log.tsv")
  [ "$(meta "$TMP/val/best.safetensors" jepa_train.best_val)" = "$best" ] || \
    "$PY" -c "import sys; a, b = map(float, sys.argv[1:]); assert abs(a - b) <= 1e-8 * b, (a, b)" \
      "$(meta "$TMP/val/best.safetensors" jepa_train.best_val)" "$best"
  meta "$TMP/val/last.safetensors" provenance | "$PY" -c 'import json,sys; p=json.load(sys.stdin); assert "val_loss" in p and "val_fsc0143" not in p, p'
  # the MAE objective validates its masked-voxel MSE the same way
  run jepa-train $NET $PRED --objective mae --steps 2 --val "$BATS_FILE_TMPDIR/pval.cvol" --out "$TMP/mae" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 0 ] && [ "$(awk -F'\t' '$6 != "-" && NR > 1' "$TMP/mae/log.tsv" | wc -l)" -eq 2 ]
  # held-out crops of the wrong kind are refused before anything is written
  run jepa-train $a --val "$BATS_FILE_TMPDIR/val.cvol" --out "$TMP/bad" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"val.cvol"*"2 channels"* ]]
  [ ! -e "$TMP/bad" ]
}

@test "MAE baseline objective learns too" {
  run jepa-train $NET $PRED --objective mae --steps 30 --batch 2 --lr 3e-3 --out "$TMP/mae" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 0 ]
  awk -F'\t' 'NR>=2 && NR<=6 {f += $5} NR>=27 {l += $5} END {printf "loss %.4f -> %.4f\n", f/5, l/5; exit !(l < 0.5 * f)}' "$TMP/mae/log.tsv"
}

@test "SIGKILL mid-run, then --resume, ends bit-identical to the uninterrupted run" {
  args="$NET $PRED --steps 60 --batch 2 --save-every 5"
  mkdir -p "$TMP/a" "$TMP/b"
  (cd "$TMP/a" && jepa-train $args --out run < "$BATS_FILE_TMPDIR/crops.cvol" 2>/dev/null)
  cd "$TMP/b"
  jepa-train $args --out run < "$BATS_FILE_TMPDIR/crops.cvol" 2>/dev/null &
  pid=$!
  while [ ! -e run/step-15.safetensors ]; do sleep 0.02; done
  kill -9 $pid
  wait $pid || true
  [ ! -e run/step-60.safetensors ]
  run jepa-train $args --out run --resume < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 0 ]
  same_tensors "$TMP/a/run/last.safetensors" run/last.safetensors
  cmp "$TMP/a/run/last.safetensors" run/last.safetensors
  diff <(cut -f1-11 "$TMP/a/run/log.tsv") <(cut -f1-11 run/log.tsv)
}

@test "SIGTERM finishes the step, writes a checkpoint of that step and exits 1" {
  args="$NET $PRED --steps 100000 --batch 2 --save-every 100000"
  jepa-train $args --out "$TMP/run" < "$BATS_FILE_TMPDIR/crops.cvol" 2>"$TMP/err" &
  pid=$!
  while [ "$(wc -l < "$TMP/run/log.tsv" 2>/dev/null || echo 0)" -lt 4 ]; do sleep 0.02; done
  kill -TERM $pid
  rc=0; wait $pid || rc=$?
  [ "$rc" -eq 1 ]
  grep -q "stopped by signal 15" "$TMP/err"
  step=$(tail -1 "$TMP/run/log.tsv" | cut -f1)
  [ "$(meta "$TMP/run/last.safetensors" step)" = "$step" ]
}

@test "refusals: another run in DIR, a different config on resume (values, not bytes), empty corpus, wrong voxel size, cuda" {
  c="$BATS_FILE_TMPDIR/crops.cvol"
  jepa-train $NET $PRED --steps 2 --lr 1e-3 --out "$TMP/run" < "$c" 2>/dev/null
  run jepa-train $NET $PRED --steps 2 --out "$TMP/run" < "$c"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"holds another run"* ]]
  run jepa-train $NET $PRED --steps 2 --lr 2e-3 --out "$TMP/run" --resume < "$c"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"lr=0.001"*"lr=0.002"* ]]
  run jepa-train $NET $PRED --steps 2 --lr 0.0010 --out "$TMP/run" --resume < "$c"
  [ "$status" -eq 0 ]
  run jepa-train $NET $PRED --steps 2 --out "$TMP/run2" < /dev/null
  [ "$status" -eq 1 ] && [[ "$output" == *"empty"* ]]
  [ ! -e "$TMP/run2" ]
  run jepa-train $NET $PRED --steps 2 --out "$TMP/run3" < "$BATS_FILE_TMPDIR/crops13.cvol"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"voxel size 1.3"* ]]
  [ ! -e "$TMP/run3" ]
  run jepa-train $NET $PRED --steps 2 --out "$TMP/run4" --device cuda < "$c"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *cuda* ]]
  run jepa-train $NET --task sharpen --steps 2 --out "$TMP/run5" < "$BATS_FILE_TMPDIR/pairs.cvol"
  [ "$status" -eq 2 ] && [[ "$output" == *"--init"* ]]
  run jepa-train $NET --task sharpen --from-scratch --steps 2 --out "$TMP/run6" < "$c"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"2 channels"*"pairs"* || "$output" == *"needs 2"* ]]
}

@test "a NaN loss stops the run, names the step and keeps the last good checkpoint" {
  run jepa-train $NET $PRED --steps 20 --lr 1e30 --warmup 0 --save-every 1 --out "$TMP/run" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 1 ]
  [[ "$output" == *"stopped at step "*"not finite"*"last.safetensors"* ]]
  bad=$(sed -n 's/.*stopped at step \([0-9]*\).*/\1/p' <<<"$output")
  [ "$(meta "$TMP/run/last.safetensors" step)" -eq $((bad - 1)) ]
}

@test "fine-tuning (low-passed -> original) cuts the validation loss at least 5x; weights carry task, apix, normalize, provenance" {
  run jepa-train $NET --task sharpen --from-scratch --alpha 1 --steps 100 --batch 2 --lr 3e-3 --save-every 50 \
    --val "$BATS_FILE_TMPDIR/val.cvol" --out "$TMP/ft" < "$BATS_FILE_TMPDIR/pairs.cvol"
  [ "$status" -eq 0 ]
  awk -F'\t' '$6 != "-" && NR > 1 {if (!first) first = $6; last = $6; fsc = $10; cc = $11}
              END {printf "val loss %.4g -> %.4g (%.1fx), FSC-0.143 %s Å, CC_mask %s\n", first, last, first/last, fsc, cc;
                   exit !(first > 5 * last)}' "$TMP/ft/log.tsv"
  [ -f "$TMP/ft/best.safetensors" ]
  [ "$(meta "$TMP/ft/best.safetensors" task)" = sharpen ]
  [ "$(meta "$TMP/ft/best.safetensors" apix)" = 1 ]
  [ "$(meta "$TMP/ft/best.safetensors" normalize)" = quantile:0.01:0.99 ]
  meta "$TMP/ft/last.safetensors" provenance | "$PY" -c 'import json,sys; p=json.load(sys.stdin); assert p["steps"]==100 and "val_fsc0143" in p and "jepa-train" in p["command"], p'
  # lean export: float32 loads and runs like the checkpoint; float16 is half the size
  jepa-train export "$TMP/ft/last.safetensors" --out "$TMP/w32.safetensors"
  jepa-train export "$TMP/ft/last.safetensors" --out "$TMP/w16.safetensors" --export-dtype f16
  [ "$(meta "$TMP/w32.safetensors" task)" = sharpen ]
  s32=$(stat -c %s "$TMP/w32.safetensors"); s16=$(stat -c %s "$TMP/w16.safetensors")
  [ "$s16" -lt $((s32 * 6 / 10)) ]
  run lvm-model info "$TMP/w32.safetensors"
  [ "$status" -eq 0 ] && [[ "$output" != *optimiser* ]]
}

@test "--task wedge fine-tuning learns: validation MSE falls 5x and ends below the missing-wedge input's own" {
  run jepa-train $NET --task wedge --from-scratch --alpha 1 --steps 200 --batch 2 --lr 3e-3 --save-every 100 \
    --val "$BATS_FILE_TMPDIR/wval.cvol" --out "$TMP/w" < "$BATS_FILE_TMPDIR/wpairs.cvol"
  [ "$status" -eq 0 ]
  base=$(input_baseline "$BATS_FILE_TMPDIR/wval.cvol" 1)
  read -r first last < <(val_first_last "$TMP/w/log.tsv")
  echo "wedge val MSE $first -> $last; the input itself: $base"
  awk -v f="$first" -v l="$last" -v b="$base" 'BEGIN {exit !(f > 5 * l && l < 0.75 * b)}'
  [ "$(meta "$TMP/w/last.safetensors" task)" = wedge ]
}

@test "--alpha 0.5 (MSE + HistKL) superres fine-tuning learns: the combined validation loss falls 5x and ends below the input's (numpy)" {
  run jepa-train $NET --task superres --from-scratch --alpha 0.5 --steps 200 --batch 2 --lr 3e-3 --save-every 100 \
    --val "$BATS_FILE_TMPDIR/sval.cvol" --out "$TMP/s" < "$BATS_FILE_TMPDIR/spairs.cvol"
  [ "$status" -eq 0 ]
  base=$(input_baseline "$BATS_FILE_TMPDIR/sval.cvol" 0.5)
  read -r first last < <(val_first_last "$TMP/s/log.tsv")
  echo "superres val 0.5 MSE + 0.5 HistKL $first -> $last; the input itself: $base"
  awk -v f="$first" -v l="$last" -v b="$base" 'BEGIN {exit !(f > 5 * l && l < 0.5 * b)}'
  # the config records alpha: resuming with MSE only is another run
  run jepa-train $NET --task superres --from-scratch --alpha 1 --steps 200 --batch 2 --lr 3e-3 --save-every 100 \
    --val "$BATS_FILE_TMPDIR/sval.cvol" --out "$TMP/s" --resume < "$BATS_FILE_TMPDIR/spairs.cvol"
  [ "$status" -eq 1 ] && [[ "$output" == *"alpha=0.5"*"alpha=1"* ]]
}

@test "fine-tuning from a JEPA checkpoint: the EMA encoder is loaded and stays frozen for --freeze-encoder steps" {
  jepa-train $NET $PRED --steps 4 --out "$TMP/pre" < "$BATS_FILE_TMPDIR/crops.cvol" 2>/dev/null
  run jepa-train $NET --task sharpen --init "$TMP/pre/last.safetensors" --freeze-encoder 3 --steps 3 --save-every 3 \
    --out "$TMP/ft" < "$BATS_FILE_TMPDIR/pairs.cvol"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/pre/last.safetensors" "$TMP/ft/last.safetensors" <<'PY'
import sys, json, struct
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items()}
pre, ft = load(sys.argv[1]), load(sys.argv[2])
enc = [k for k in ft if k.split('.')[0] in ('head', 'enc', 'body')]
dec = [k for k in ft if k.split('.')[0] in ('dec', 'tail')]
assert enc and all(ft[k] == pre['ema.' + k] for k in enc), "encoder is not the frozen EMA encoder"
assert any(ft[k] != pre[k] for k in dec), "decoder did not train"
print(f"{len(enc)} encoder tensors frozen at the EMA weights, decoder trained")
PY
  run jepa-train $NET --task sharpen --init "$TMP/pre/last.safetensors" --config width=16,head_dim=4,levels=2,depth=1,mlp_ratio=2 --steps 1 \
    --out "$TMP/ft2" < "$BATS_FILE_TMPDIR/pairs.cvol"
  [ "$status" -eq 1 ] && [[ "$output" == *"pre-trained for config"* ]]
}

@test "--show-mask draws one multi-block mask as a PNG" {
  run jepa-train --show-mask "$TMP/mask.png" --size 48 --config levels=2
  [ "$status" -eq 0 ]
  [ "$(head -c 4 "$TMP/mask.png" | tail -c 3)" = PNG ]
}

@test "map mode (the loader): random crops of maps, resume after SIGKILL bit-identical; --pairs LIST fine-tuning learns (--val: fixed crops of a pairs list)" {
  m="$BATS_FILE_TMPDIR/map.mrc"
  args="$NET $PRED --size 16 --steps 40 --batch 2 --save-every 5 --prefetch 4"
  mkdir -p "$TMP/a" "$TMP/b"
  (cd "$TMP/a" && jepa-train $args --out run "$m" 2>/dev/null)
  awk -F'\t' 'NR>=2 && NR<=6 {f += $5} NR>=37 {l += $5} END {exit !(l < 0.7 * f)}' "$TMP/a/run/log.tsv"
  cd "$TMP/b"
  jepa-train $args --out run "$m" 2>/dev/null &
  pid=$!
  while [ ! -e run/step-10.safetensors ]; do sleep 0.02; done
  kill -9 $pid
  wait $pid || true
  run jepa-train $args --out run --resume "$m"
  [ "$status" -eq 0 ]
  cmp "$TMP/a/run/last.safetensors" run/last.safetensors
  # the 1.3 Å copy is resampled to 1 Å by the loader, but then it is another corpus
  run jepa-train $args --out run --resume "$BATS_FILE_TMPDIR/map13.mrc"
  [ "$status" -eq 1 ] && [[ "$output" == *"corpus="* ]]
  vol-degrade --lowpass 6 "$m" -o "$TMP/lp.mrc"
  printf '# input target\n%s %s\n' "$TMP/lp.mrc" "$m" > "$TMP/pairs.txt"
  run jepa-train $NET --task superres --from-scratch --alpha 1 --pairs "$TMP/pairs.txt" --size 16 --steps 60 --lr 3e-3 \
    --val "$TMP/pairs.txt" --val-crops 4 --val-every 60 --out "$TMP/ft"
  [ "$status" -eq 0 ]
  awk -F'\t' '$6 != "-" && NR > 1 {if (!first) first = $6; last = $6} END {printf "val %.4g -> %.4g\n", first, last; exit !(first > 5 * last)}' "$TMP/ft/log.tsv"
  printf '%s\n' "$TMP/lp.mrc" > "$TMP/bad.txt"
  run jepa-train $NET --task superres --from-scratch --pairs "$TMP/bad.txt" --size 16 --steps 1 --out "$TMP/ft2"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"line 1: needs two paths"* ]]
}

@test "--list LIST names the maps: the same run as the maps given as arguments; refusals name the list" {
  m="$BATS_FILE_TMPDIR/map.mrc"
  a="$NET $PRED --size 16 --steps 3 --batch 2 --save-every 3"
  mkdir "$TMP/l" && cp "$m" "$TMP/l/map.mrc"
  printf '# corpus\n\n  map.mrc   # relative to the list\n' > "$TMP/l/corpus.txt"
  jepa-train $a --out "$TMP/list" --list "$TMP/l/corpus.txt" 2>/dev/null
  jepa-train $a --out "$TMP/args2" "$TMP/l/map.mrc" 2>/dev/null
  same_tensors "$TMP/args2/last.safetensors" "$TMP/list/last.safetensors"
  [[ "$(meta "$TMP/list/last.safetensors" provenance)" == *"list $TMP/l/corpus.txt (1 map)"* ]]
  run jepa-train $a --out "$TMP/x" --list "$TMP/l/corpus.txt" "$m"
  [ "$status" -eq 2 ] && [[ "$output" == *"--list LIST takes the maps from the list"* ]]
  # --val LIST: fixed crops of held-out maps (the 1.3 Å copy, resampled by the loader)
  printf '%s\n' "$BATS_FILE_TMPDIR/map13.mrc" > "$TMP/held.txt"
  run jepa-train $a --out "$TMP/vl" --list "$TMP/l/corpus.txt" --val "$TMP/held.txt" --val-crops 3
  [ "$status" -eq 0 ]
  [ "$(awk -F'\t' '$6 != "-" && NR > 1 {printf "%s ", $1}' "$TMP/vl/log.tsv")" = "0 3 " ]
  meta "$TMP/vl/last.safetensors" provenance | "$PY" -c 'import json,sys; p=json.load(sys.stdin); assert p["val"].endswith("held.txt (1 map, 3 crops)") and "val_loss" in p, p'
  printf '# nothing\n' > "$TMP/empty.txt"
  run jepa-train $a --out "$TMP/x" --list "$TMP/empty.txt"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"empty.txt: the list names no path"* ]]
  printf 'missing.mrc\n' > "$TMP/missing.txt"
  run jepa-train $a --out "$TMP/x" --list "$TMP/missing.txt"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"missing.mrc"* ]]
  [ ! -e "$TMP/x" ]
}

@test "the man page's mask picture is the tool's own --show-mask output" {
  page="$BATS_TEST_DIRNAME/../../man/man1/jepa-train.1"
  diff <(jepa-train --show-mask - --size 48 --seed 2 | sed 's/ *$//' | grep .) \
       <(sed -n '/^\.EX$/,/^\.EE$/p' "$page" | sed -n '2,/^\.EE$/p' | sed '$d' | sed 's/^\\&//; s/ *$//' | grep .)
}

# mpirun on one machine, robust in containers and as root: no ssh needed to start local ranks
# (plm_rsh_agent empty), shared memory without the CMA single copy that containers often forbid,
# no core binding (cpusets), oversubscribed cores; a hang fails after 120 s instead of blocking.
mpirun2() {
  local root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
  OMPI_MCA_plm_rsh_agent= OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none \
    timeout -k 5 120 mpirun "${root[@]}" --oversubscribe --bind-to none -np 2 "$@"
}

@test "MPI: 2 ranks with global batch B give the weights of 1 process with batch B (pre-training, MSE fine-tuning, map mode)" {
  command -v jepa-train-mpi >/dev/null || skip "jepa-train-mpi not built (make MPI=1; make check builds it when mpicc works: libopenmpi-dev)"
  command -v mpirun >/dev/null || skip "mpirun not installed (Debian's openmpi-bin)"
  a="$NET $PRED --steps 8 --batch 4 --save-every 8"
  jepa-train $a --out "$TMP/one" "$BATS_FILE_TMPDIR/crops.cvol" 2>/dev/null
  run mpirun2 jepa-train-mpi $a --out "$TMP/two" "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -eq 0 ] && [[ "$output" == *"data-parallel over 2 MPI ranks, 2 crops per rank"* ]]
  f="$NET --task wedge --from-scratch --alpha 1 --steps 8 --batch 4 --save-every 8"
  jepa-train $f --out "$TMP/fone" "$BATS_FILE_TMPDIR/pairs.cvol" 2>/dev/null
  run mpirun2 jepa-train-mpi $f --out "$TMP/ftwo" "$BATS_FILE_TMPDIR/pairs.cvol"
  [ "$status" -eq 0 ] && [[ "$output" == *"over 2 MPI ranks"* ]]
  [ "$(meta "$TMP/ftwo/last.safetensors" provenance | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ranks"])')" = 2 ]
  # map mode: each rank's loader makes and prefetches its own share of the crops
  mm="$NET $PRED --size 16 --steps 4 --batch 4 --save-every 4 --prefetch 2"
  jepa-train $mm --out "$TMP/mone" "$BATS_FILE_TMPDIR/map.mrc" 2>/dev/null
  run mpirun2 jepa-train-mpi $mm --out "$TMP/mtwo" "$BATS_FILE_TMPDIR/map.mrc"
  [ "$status" -eq 0 ]
  # without a launcher the MPI build is one plain process (no MPI_Init): the same weights again
  jepa-train-mpi $a --out "$TMP/plain" "$BATS_FILE_TMPDIR/crops.cvol" 2>/dev/null
  same_tensors "$TMP/one/last.safetensors" "$TMP/plain/last.safetensors"
  "$PY" - "$TMP" <<'PY'
import sys, json, struct, numpy as np
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None); d = b[8 + n:]
    return {k: np.frombuffer(d[v['data_offsets'][0]:v['data_offsets'][1]], np.float32) for k, v in h.items()}
for one, two in (("one", "two"), ("fone", "ftwo"), ("mone", "mtwo")):
    a, b = load(f"{sys.argv[1]}/{one}/last.safetensors"), load(f"{sys.argv[1]}/{two}/last.safetensors")
    assert a.keys() == b.keys()
    w = [k for k in a if not k.startswith("optim.")]
    x = np.concatenate([a[k] for k in w]); y = np.concatenate([b[k] for k in w])
    err = np.linalg.norm(x - y) / np.linalg.norm(x)
    print(f"{one} vs {two}: {len(w)} weight tensors, relative difference {err:.2g}")
    assert err < 1e-4, err
PY
  # the loss of every step agrees too (rank 0 logs the count-weighted global loss)
  paste <(cut -f5 "$TMP/one/log.tsv") <(cut -f5 "$TMP/two/log.tsv") | awk 'NR > 1 {d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) bad = 1} END {exit bad}'
  # the global batch must split over the ranks; stdin is refused (it reaches rank 0 only)
  run mpirun2 jepa-train-mpi $a --batch 3 --out "$TMP/bad" "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -ne 0 ] && [[ "$output" == *"multiple of the 2 ranks"* ]]
  [ ! -e "$TMP/bad" ]
  run mpirun2 jepa-train-mpi $a --out "$TMP/bad" < "$BATS_FILE_TMPDIR/crops.cvol"
  [ "$status" -ne 0 ] && [[ "$output" == *"standard input goes to rank 0 only"* ]]
  [ ! -e "$TMP/bad" ]
}
