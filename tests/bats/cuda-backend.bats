#!/usr/bin/env bats
# cuda-backend.bats — the CUDA backend is a plugin loaded at run time: binaries carry no
# CUDA dependency, the CPU path runs without it, and `--device cuda` fails with one line
# saying what is missing. (The GPU itself is tested by tests/gpu/run on a GPU machine.)

load helpers

SMALL=width=16,head_dim=8,levels=2,depth=1

setup_file() {
  lvm-model init --config "$SMALL" -o "$BATS_FILE_TMPDIR/w.safetensors" 2>/dev/null
  "$PY" - "$BATS_FILE_TMPDIR/in.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(np.random.default_rng(1).standard_normal((8, 8, 8)).astype(np.float32))
PYEOF
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
