#!/usr/bin/env bats
# cuda-backend.bats — the CUDA backend is a plugin loaded at run time: binaries carry no
# CUDA dependency, the CPU path runs without it, and `--device cuda` fails with one line
# saying what is missing. (The GPU itself is tested by tests/gpu/run on a GPU machine.)

load helpers

SMALL=width=16,head_dim=8,levels=2,depth=1

setup_file() {
  lvm-model init --config "$SMALL" -o "$BATS_FILE_TMPDIR/w.safetensors" 2>/dev/null
  "$PY" - "$BATS_FILE_TMPDIR/in.mrc" "$BATS_FILE_TMPDIR/map.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(np.random.default_rng(1).standard_normal((8, 8, 8)).astype(np.float32))
with mrcfile.new(sys.argv[2], overwrite=True) as m:
    m.set_data(np.random.default_rng(2).random((32, 32, 32)).astype(np.float32)); m.voxel_size = 1.0
PYEOF
  vol-patch --random 4 --size 16 --seed 3 "$BATS_FILE_TMPDIR/map.mrc" > "$BATS_FILE_TMPDIR/crops.cvol"
}

# jepa-train and lvm-apply take --device cpu|cuda|cuda:N|auto; here (no GPU) cuda is refused with
# one line and auto runs on the CPU.
JT="--config width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2 --threads 1 --predictor embed=24,depth=1,head_dim=8 --steps 2 --batch 2"
no_gpu() {
  ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }
}

@test "tools and libcryolvm.so link no CUDA library" {
  run ldd "$CRYO_BIN/lvm-model"
  [ "$status" -eq 0 ]
  [[ "$output" != *libcuda* && "$output" != *libcublas* && "$output" != *libcudnn* ]]
  lib="$CRYO_BIN/../build/libcryolvm.so"
  [ -f "$lib" ] || skip "no build/libcryolvm.so"
  run ldd "$lib"
  [[ "$output" != *libcuda* && "$output" != *libcublas* && "$output" != *libcudnn* ]]
}

@test "--device cuda without the plugin: one line naming it, exit 1, no output; cpu still runs" {
  CRYO_NN_CUDA_PLUGIN=/nonexistent/libcryolvm-cuda.so run lvm-model run --device cuda \
    "$BATS_FILE_TMPDIR/w.safetensors" "$BATS_FILE_TMPDIR/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"cuda backend unavailable"*"/nonexistent/libcryolvm-cuda.so"* ]]
  assert_no_file "$TMP/out.mrc"
  run lvm-model run --device cpu "$BATS_FILE_TMPDIR/w.safetensors" "$BATS_FILE_TMPDIR/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 0 ]
  [ -s "$TMP/out.mrc" ]
}

@test "a plugin that is not one: the loader's reason in one line" {
  printf 'not an ELF file\n' >"$TMP/fake.so"
  CRYO_NN_CUDA_PLUGIN="$TMP/fake.so" run lvm-model run --device cuda \
    "$BATS_FILE_TMPDIR/w.safetensors" "$BATS_FILE_TMPDIR/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"fake.so"* ]]
  assert_no_file "$TMP/out.mrc"
}

@test "built plugin on a machine without a GPU: one clear line, exit 1" {
  so="$CRYO_BIN/../build/libcryolvm-cuda.so"
  [ -f "$so" ] || skip "CUDA plugin not built (make CUDA=1)"
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    skip "a GPU is present: tests/gpu/run covers it"
  fi
  CRYO_NN_CUDA_PLUGIN="$so" run lvm-model run --device cuda \
    "$BATS_FILE_TMPDIR/w.safetensors" "$BATS_FILE_TMPDIR/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"cuda"* ]]
  assert_no_file "$TMP/out.mrc"
}

@test "jepa-train --device cuda without a GPU or plugin: one line, exit 1, no run folder; auto trains on the cpu" {
  no_gpu || skip "a GPU is present: tests/gpu/run covers it"
  c="$BATS_FILE_TMPDIR/crops.cvol"
  CRYO_NN_CUDA_PLUGIN=/nonexistent/libcryolvm-cuda.so run jepa-train $JT --out "$TMP/r1" --device cuda < "$c"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"--device cuda"*"cuda backend unavailable"*"/nonexistent/libcryolvm-cuda.so"* ]]
  [ ! -e "$TMP/r1" ]
  so="$CRYO_BIN/../build/libcryolvm-cuda.so"
  if [ -f "$so" ]; then # the real plugin on a machine without a GPU or driver
    CRYO_NN_CUDA_PLUGIN="$so" run jepa-train $JT --out "$TMP/r2" --device cuda < "$c"
    [ "$status" -eq 1 ]
    assert_one_error_line
    [[ "$output" == *"--device cuda: nn cuda"* ]]
    [ ! -e "$TMP/r2" ]
  fi
  run jepa-train $JT --out "$TMP/r3" --device auto < "$c"
  [ "$status" -eq 0 ]
  [ -s "$TMP/r3/last.safetensors" ]
  run "$PY" - "$TMP/r3/last.safetensors" <<'PYEOF'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n])['__metadata__']['jepa_train.device'])
PYEOF
  [ "$status" -eq 0 ]
  [[ "$output" == cpu:* ]]
}

@test "jepa-train --device cuda:N: an index that is not a number, or no such GPU, refused in one line, no run folder" {
  c="$BATS_FILE_TMPDIR/crops.cvol"
  run jepa-train $JT --out "$TMP/r1" --device cuda:x < "$c"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"--device cuda:x"*"'x' is not a GPU index"* ]]
  [ ! -e "$TMP/r1" ]
  no_gpu || skip "a GPU is present: tests/gpu/run covers it"
  run jepa-train $JT --out "$TMP/r2" --device cuda:1 < "$c"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"--device cuda:1"* ]]
  [ ! -e "$TMP/r2" ]
}

@test "lvm-apply --device: cuda refused in one line without a GPU, auto equals cpu bit for bit" {
  no_gpu || skip "a GPU is present: tests/gpu/run covers it"
  lvm-model init -q --config width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2 --seed 4 --task sharpen -o "$TMP/w.safetensors"
  args=(--task sharpen --model "$TMP/w.safetensors" --tile 16 "$BATS_FILE_TMPDIR/map.mrc")
  CRYO_NN_CUDA_PLUGIN=/nonexistent/libcryolvm-cuda.so run lvm-apply "${args[@]}" --device cuda -o "$TMP/g.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"cuda"*"unavailable"* ]]
  assert_no_file "$TMP/g.mrc"
  run lvm-apply "${args[@]}" --device cpu -o "$TMP/c.mrc"
  [ "$status" -eq 0 ]
  CRYO_NN_CUDA_PLUGIN=/nonexistent/libcryolvm-cuda.so run lvm-apply "${args[@]}" --device auto -o "$TMP/a.mrc"
  [ "$status" -eq 0 ]
  "$PY" -c 'import sys, mrcfile, numpy as np; a, b = (mrcfile.read(p) for p in sys.argv[1:]); assert np.array_equal(a, b)' \
    "$TMP/c.mrc" "$TMP/a.mrc" # the headers' labels differ: they name the command
}
