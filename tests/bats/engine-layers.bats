#!/usr/bin/env bats
# engine-layers.bats — every layer of the engine (forward and all gradients) against PyTorch,
# via build/tests/test_layers --dump and tests/ref/torch_layers.py (relative error < 1e-4).

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

# The unit-test binary of the same build as $CRYO_BIN (bin -> build, bin-san -> build-san).
layers_bin() {
  local suffix=${CRYO_BIN##*/bin}
  local rel="build$suffix/tests/test_layers"
  if [ ! -x "$ROOT/$rel" ]; then
    make -s -C "$ROOT" "$rel" >&2 || return 1
  fi
  echo "$ROOT/$rel"
}

@test "engine layers: forward and gradients match PyTorch (rel err < 1e-4)" {
  require_py_module torch
  bin=$(layers_bin)
  run "$bin" --dump "$TMP"
  [ "$status" -eq 0 ]
  [ -s "$TMP/manifest.txt" ]
  run "$PY" "$REF/torch_layers.py" "$TMP"
  echo "$output"
  [ "$status" -eq 0 ]
  # every layer family took part
  for layer in conv3d convt3d linear layernorm frn gelu relu softmax wmsa concat roll droppath; do
    grep -q " $layer " "$TMP/manifest.txt"
  done
  [[ "$output" == *"0 failed"* ]]
}

@test "engine layers: PyTorch parity also with 1 and 3 threads (other work partitions)" {
  require_py_module torch
  bin=$(layers_bin)
  for t in 1 3; do
    mkdir -p "$TMP/t$t"
    run env CRYO_TEST_THREADS=$t "$bin" --dump "$TMP/t$t"
    [ "$status" -eq 0 ]
    run "$PY" "$REF/torch_layers.py" "$TMP/t$t"
    [ "$status" -eq 0 ] || { echo "$output" | grep -v '^ok'; false; }
  done
}

@test "engine layers: the reference catches a wrong gradient" {
  require_py_module torch
  bin=$(layers_bin)
  run "$bin" --dump "$TMP"
  [ "$status" -eq 0 ]
  # corrupt one float of one gradient: the comparison must fail and name it
  "$PY" -c "
import numpy as np, sys
p = sys.argv[1] + '/wmsa_sw.drel_bias.f32'
a = np.fromfile(p, dtype='<f4'); a[5] += 10 * np.abs(a).max(); a.tofile(p)" "$TMP"
  run "$PY" "$REF/torch_layers.py" "$TMP"
  [ "$status" -eq 1 ]
  [[ "$output" == *"FAIL wmsa_sw"*"drel_bias"* ]]
}

@test "engine layers: torch_layers.py refuses a missing dump" {
  require_py_module torch
  run "$PY" "$REF/torch_layers.py" "$TMP/nothing"
  [ "$status" -eq 2 ]
  assert_one_error_line
}

@test "engine: first context moves OpenBLAS from its Haswell fallback to the SkylakeX kernels" {
  for f in avx512f avx512bw avx512dq avx512vl; do
    grep -qw "$f" /proc/cpuinfo || skip "CPU lacks $f"
  done
  bin=$(layers_bin)
  run env OPENBLAS_CORETYPE=Haswell "$bin" --blas-core
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == "before Haswell "*", after SkylakeX "* ]]
  # CRYO_NN_BLAS_KEEP keeps what OpenBLAS chose at load time
  run env CRYO_NN_BLAS_KEEP=1 OPENBLAS_CORETYPE=Haswell "$bin" --blas-core
  [ "$status" -eq 0 ]
  [[ "$output" == *"after Haswell"* ]]
}
