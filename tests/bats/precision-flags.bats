#!/usr/bin/env bats
# precision-flags.bats — `--precision fp32|tf32|bf16` of jepa-train and lvm-model, and
# lvm-model's `--device cpu|cuda|auto` (issue #10), on this machine's CPU:
#   values    every documented value accepted, others a usage error (exit 2); the flag wins
#             over $CRYO_NN_PRECISION, which is the default
#   tf32      accepted on the CPU and bit for bit the fp32 result (run, grad, training), one
#             note on stderr
#   bf16      training on the CPU refused: one line naming the flag, exit 1, no output, no
#             run folder
#   metadata  jepa-train's checkpoints record the precision (jepa_train.precision, provenance);
#             --resume may change it, with a note, and continues the same run
#   device    cuda refused in one line naming --device where there is no GPU, no output;
#             auto is the CPU here, bit for bit
# Tiny networks on 8^3..16^3 boxes, one thread: a few seconds in all.

load helpers

NET=width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2
JT="--config $NET --threads 1 --predictor embed=24,depth=1,head_dim=8 --batch 2"

setup_file() {
  D=$BATS_FILE_TMPDIR
  "$PY" - "$D/map.mrc" "$D/in.mrc" "$D/batch.safetensors" <<'PYEOF'
import sys, json, struct, numpy as np, mrcfile
rng = np.random.default_rng(5)
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(rng.random((32, 32, 32)).astype(np.float32)); m.voxel_size = 1.0
with mrcfile.new(sys.argv[2], overwrite=True) as m:
    m.set_data(rng.standard_normal((16, 16, 16)).astype(np.float32)); m.voxel_size = 1.0
# a grad batch: input and output gradient, N,D,H,W,C = 1,8,8,8,1 (safetensors by hand)
x = rng.standard_normal((1, 8, 8, 8, 1)).astype("<f4"); g = rng.standard_normal((1, 8, 8, 8, 1)).astype("<f4")
h = {"input": {"dtype": "F32", "shape": list(x.shape), "data_offsets": [0, x.nbytes]},
     "dout": {"dtype": "F32", "shape": list(g.shape), "data_offsets": [x.nbytes, x.nbytes + g.nbytes]}}
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[3], "wb").write(struct.pack("<Q", len(hb)) + hb + x.tobytes() + g.tobytes())
PYEOF
  vol-patch --random 8 --size 16 --seed 3 "$D/map.mrc" > "$D/crops.cvol"
  lvm-model init -q --seed 3 --config "$NET" -o "$D/w.safetensors"
}

no_gpu() {
  ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }
}

cpu_has_bf16() {
  grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null && [ -z "${ONEDNN_MAX_CPU_ISA:-}${DNNL_MAX_CPU_ISA:-}" ]
}

same_voxels() { # A.mrc B.mrc: identical arrays (the headers' labels name the command)
  "$PY" -c 'import sys, mrcfile, numpy as np; a, b = (mrcfile.read(p) for p in sys.argv[1:]); assert a.shape == b.shape and np.array_equal(a, b), "differ"' "$1" "$2"
}

meta() { # FILE KEY: a safetensors metadata value
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n]).get('__metadata__', {}).get(sys.argv[2], ''))
PYEOF
}

same_tensors() { # A B: every tensor's bytes equal (metadata may differ)
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, json, struct
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = [k for k in a if a[k] != b.get(k)]
assert a.keys() == b.keys() and not bad, f"{len(bad)} tensors differ, e.g. {bad[:3]}"
PYEOF
}

@test "lvm-model --precision: fp32, tf32 (bf16 where the CPU has it) accepted; tf32 on the CPU is fp32 bit for bit, noted once" {
  w="$BATS_FILE_TMPDIR/w.safetensors" in="$BATS_FILE_TMPDIR/in.mrc"
  lvm-model run -q --device cpu --threads 1 "$w" "$in" -o "$TMP/default.mrc"
  lvm-model run -q --device cpu --threads 1 --precision fp32 "$w" "$in" -o "$TMP/fp32.mrc"
  run lvm-model run --device cpu --threads 1 --precision tf32 "$w" "$in" -o "$TMP/tf32.mrc"
  [ "$status" -eq 0 ]
  [ "$(grep -c 'tf32 on the cpu computes float32' <<<"$output")" -eq 1 ]
  same_voxels "$TMP/default.mrc" "$TMP/fp32.mrc"
  same_voxels "$TMP/fp32.mrc" "$TMP/tf32.mrc"
  run lvm-model run -q --device cpu --threads 1 --precision tf32 "$w" "$in" -o "$TMP/q.mrc"
  [ "$status" -eq 0 ] && [ -z "$output" ] # -q: no note
  if cpu_has_bf16; then
    lvm-model run -q --device cpu --threads 1 --precision bf16 "$w" "$in" -o "$TMP/bf16.mrc"
    [ -s "$TMP/bf16.mrc" ]
  else
    run lvm-model run --device cpu --precision bf16 "$w" "$in" -o "$TMP/bf16.mrc"
    [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"--precision: bf16:"* ]]
    assert_no_file "$TMP/bf16.mrc"
  fi
  # grad (forward and backward) in tf32 on the CPU: the fp32 gradients bit for bit
  lvm-model grad -q --device cpu --threads 1 --precision fp32 "$w" "$BATS_FILE_TMPDIR/batch.safetensors" -o "$TMP/g32.safetensors"
  lvm-model grad -q --device cpu --threads 1 --precision tf32 "$w" "$BATS_FILE_TMPDIR/batch.safetensors" -o "$TMP/gtf.safetensors"
  cmp "$TMP/g32.safetensors" "$TMP/gtf.safetensors"
}

@test "lvm-model bench prints the precision and device it used; \$CRYO_NN_PRECISION is the default, the flag wins" {
  w="$BATS_FILE_TMPDIR/w.safetensors"
  b=(bench "$w" --box 8 --repeat 1 --threads 1 --device cpu)
  for p in fp32 tf32; do
    run lvm-model "${b[@]}" -q --precision "$p"
    [ "$status" -eq 0 ]
    [[ "$output" == *"precision=$p "*'device="cpu:'* ]]
    run lvm-model "${b[@]}" -q --train --precision "$p"
    [ "$status" -eq 0 ]
    [[ "$output" == "what=train_step"*"precision=$p "* ]]
  done
  CRYO_NN_PRECISION=tf32 run lvm-model "${b[@]}" -q
  [ "$status" -eq 0 ] && [[ "$output" == *"precision=tf32 "* ]]
  run lvm-model "${b[@]}" -q
  [ "$status" -eq 0 ] && [[ "$output" == *"precision=fp32 "* ]]
  # the flag over the variable: a bf16 or an invalid variable does not stop --precision fp32
  CRYO_NN_PRECISION=bf16 run lvm-model "${b[@]}" -q --train --precision fp32
  [ "$status" -eq 0 ] && [[ "$output" == *"precision=fp32 "* ]]
  CRYO_NN_PRECISION=fp16 run lvm-model "${b[@]}" -q --precision tf32
  [ "$status" -eq 0 ] && [[ "$output" == *"precision=tf32 "* ]]
  CRYO_NN_PRECISION=fp16 run lvm-model "${b[@]}"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"CRYO_NN_PRECISION: 'fp16' is not fp32, tf32 or bf16"* ]]
  # the device: auto is the CPU here
  if no_gpu; then
    run lvm-model bench "$w" --box 8 --repeat 1 --threads 1 -q
    [ "$status" -eq 0 ] && [[ "$output" == *'device="cpu:'* ]]
  fi
}

@test "lvm-model: bf16 training on the CPU refused in one line (grad, bench --train), no output; bad values are usage errors" {
  w="$BATS_FILE_TMPDIR/w.safetensors"
  run lvm-model grad --device cpu --precision bf16 "$w" "$BATS_FILE_TMPDIR/batch.safetensors" -o "$TMP/g.safetensors"
  [ "$status" -eq 1 ] && assert_one_error_line
  [[ "$output" == "lvm-model: --precision: bf16: "*"forward-only"* ]]
  assert_no_file "$TMP/g.safetensors"
  run lvm-model bench "$w" --device cpu --box 8 --repeat 1 --train --precision bf16
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"--precision: bf16:"*"forward-only"* ]]
  CRYO_NN_PRECISION=bf16 run lvm-model bench "$w" --device cpu --box 8 --repeat 1 --train
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"CRYO_NN_PRECISION: bf16:"*"forward-only"* ]]
  for bad in fp16 TF32 ""; do
    run lvm-model run --precision "$bad" "$w" "$BATS_FILE_TMPDIR/in.mrc" -o "$TMP/o.mrc"
    [ "$status" -eq 2 ] && [[ "$output" == *"--precision"* ]]
  done
  assert_no_file "$TMP/o.mrc"
  run lvm-model info --precision tf32 "$w"
  [ "$status" -eq 2 ] && [[ "$output" == *"--precision is for run, grad and bench"* ]]
  run lvm-model run --device gpu "$w" "$BATS_FILE_TMPDIR/in.mrc" -o "$TMP/o.mrc"
  [ "$status" -eq 2 ] && [[ "$output" == *"--device"* ]]
}

@test "lvm-model --device: cuda refused in one line naming the flag, no output (run, grad, bench, init); auto equals cpu bit for bit" {
  no_gpu || skip "a GPU is present: tests/gpu/run covers it"
  w="$BATS_FILE_TMPDIR/w.safetensors" in="$BATS_FILE_TMPDIR/in.mrc"
  run lvm-model run --device cuda "$w" "$in" -o "$TMP/c.mrc"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == "lvm-model: --device cuda: "* ]]
  assert_no_file "$TMP/c.mrc"
  run lvm-model grad --device cuda "$w" "$BATS_FILE_TMPDIR/batch.safetensors" -o "$TMP/g.safetensors"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == "lvm-model: --device cuda: "* ]]
  assert_no_file "$TMP/g.safetensors"
  run lvm-model bench "$w" --device cuda --box 8 --repeat 1
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == "lvm-model: --device cuda: "* ]]
  run lvm-model init --device cuda --config "$NET" -o "$TMP/w2.safetensors"
  [ "$status" -eq 1 ] && assert_one_error_line
  assert_no_file "$TMP/w2.safetensors"
  lvm-model run -q --device cpu --threads 1 "$w" "$in" -o "$TMP/cpu.mrc"
  lvm-model run -q --device auto --threads 1 "$w" "$in" -o "$TMP/auto.mrc"
  lvm-model run -q --threads 1 "$w" "$in" -o "$TMP/dflt.mrc"
  same_voxels "$TMP/cpu.mrc" "$TMP/auto.mrc"
  same_voxels "$TMP/cpu.mrc" "$TMP/dflt.mrc"
}

@test "jepa-train --precision: tf32 on the CPU trains bit for bit as fp32, noted once; the checkpoints record the precision" {
  c="$BATS_FILE_TMPDIR/crops.cvol"
  jepa-train $JT --steps 3 --device cpu --out "$TMP/dflt" < "$c" 2>/dev/null
  jepa-train $JT --steps 3 --device cpu --precision fp32 --out "$TMP/fp32" < "$c" 2>/dev/null
  run jepa-train $JT --steps 3 --device cpu --precision tf32 --out "$TMP/tf32" < "$c"
  [ "$status" -eq 0 ]
  [ "$(grep -c 'tf32 on the cpu computes float32' <<<"$output")" -eq 1 ]
  same_tensors "$TMP/fp32/last.safetensors" "$TMP/tf32/last.safetensors"
  same_tensors "$TMP/fp32/last.safetensors" "$TMP/dflt/last.safetensors"
  diff <(cut -f1-11 "$TMP/fp32/log.tsv") <(cut -f1-11 "$TMP/tf32/log.tsv")
  [ "$(meta "$TMP/dflt/last.safetensors" jepa_train.precision)" = fp32 ]
  [ "$(meta "$TMP/fp32/last.safetensors" jepa_train.precision)" = fp32 ]
  [ "$(meta "$TMP/tf32/last.safetensors" jepa_train.precision)" = tf32 ]
  [[ "$(meta "$TMP/tf32/last.safetensors" provenance)" == *'"precision":"tf32"'* ]]
  # $CRYO_NN_PRECISION is the default
  CRYO_NN_PRECISION=tf32 jepa-train $JT -q --steps 1 --device cpu --out "$TMP/env" < "$c"
  [ "$(meta "$TMP/env/last.safetensors" jepa_train.precision)" = tf32 ]
  # exported weights keep it in their provenance
  jepa-train -q export "$TMP/tf32/last.safetensors" --out "$TMP/w.safetensors"
  [[ "$(meta "$TMP/w.safetensors" provenance)" == *'"precision":"tf32"'* ]]
}

@test "jepa-train: bf16 training on the CPU refused in one line, exit 1, no run folder; bad values are usage errors" {
  c="$BATS_FILE_TMPDIR/crops.cvol"
  run jepa-train $JT --steps 2 --device cpu --precision bf16 --out "$TMP/r1" < "$c"
  [ "$status" -eq 1 ] && assert_one_error_line
  [[ "$output" == "jepa-train: --precision: bf16: "*"forward-only"* ]]
  [ ! -e "$TMP/r1" ]
  if no_gpu; then # auto is the CPU here: refused the same way
    run jepa-train $JT --steps 2 --precision bf16 --out "$TMP/r2" < "$c"
    [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"forward-only"* ]]
    [ ! -e "$TMP/r2" ]
  fi
  CRYO_NN_PRECISION=bf16 run jepa-train $JT --steps 2 --device cpu --out "$TMP/r3" < "$c"
  [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"CRYO_NN_PRECISION: bf16:"*"forward-only"* ]]
  [ ! -e "$TMP/r3" ]
  CRYO_NN_PRECISION=bf16 run jepa-train $JT -q --steps 1 --device cpu --precision fp32 --out "$TMP/r4" < "$c"
  [ "$status" -eq 0 ] && [ -s "$TMP/r4/last.safetensors" ]
  run jepa-train $JT --steps 2 --precision fp16 --out "$TMP/r5" < "$c"
  [ "$status" -eq 2 ] && [[ "$output" == *"--precision"* ]]
  [ ! -e "$TMP/r5" ]
  # the MPI build is the same source (started alone it is one plain process)
  if [ -x "$CRYO_BIN/jepa-train-mpi" ]; then
    run jepa-train-mpi $JT --steps 2 --device cpu --precision bf16 --out "$TMP/r6" < "$c"
    [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == "jepa-train-mpi: --precision: bf16: "* ]]
    [ ! -e "$TMP/r6" ]
  fi
}

@test "jepa-train --resume may change the precision: a note, the new one recorded, the same run (fp32 then tf32 on the CPU)" {
  c="$BATS_FILE_TMPDIR/crops.cvol"
  args="$JT --steps 8 --save-every 2 --keep 10 --device cpu"
  jepa-train $args -q --precision fp32 --out "$TMP/a" < "$c"
  # the run as it stood at step 4, then resumed in tf32
  mkdir "$TMP/b"
  cp "$TMP/a/step-4.safetensors" "$TMP/b/last.safetensors"
  cp "$TMP/a/log.tsv" "$TMP/b/log.tsv"
  [ "$(meta "$TMP/b/last.safetensors" jepa_train.precision)" = fp32 ]
  run jepa-train $args --precision tf32 --resume --out "$TMP/b" < "$c"
  [ "$status" -eq 0 ]
  [[ "$output" == *"the run so far trained in fp32; it continues in tf32"* ]]
  [ "$(meta "$TMP/b/last.safetensors" jepa_train.precision)" = tf32 ]
  [ "$(meta "$TMP/b/last.safetensors" step)" = 8 ]
  same_tensors "$TMP/a/last.safetensors" "$TMP/b/last.safetensors"
  diff <(cut -f1-11 "$TMP/a/log.tsv") <(cut -f1-11 "$TMP/b/log.tsv")
}
