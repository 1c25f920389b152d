#!/usr/bin/env bats
# precision.bats — `--precision bf16` (lvm-apply, lvm-model run/bench): bfloat16 convolutions
# on oneDNN's AVX-512 BF16 / AMX kernels, everything else float32.
#   quality   with the shipped weights, on a simulated map (always) and a real map (shared
#             data), the bf16 output against the fp32 output: Pearson CC >= 0.999, and not
#             bit-identical (the bf16 path really ran)
#   refusal   where oneDNN finds neither AVX-512 BF16 nor AMX (forced here with
#             ONEDNN_MAX_CPU_ISA=AVX512_CORE, oneDNN's own cap), one stderr line, exit 1, no output
# The quality tests skip where this CPU lacks both (/proc/cpuinfo: avx512_bf16, amx_bf16).

load helpers

SHIPPED=$BATS_TEST_DIRNAME/../../share/models

cpu_has_bf16() {
  grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null
}

require_bf16() {
  cpu_has_bf16 || skip "this CPU has neither AVX-512 BF16 nor AMX"
  [ -z "${ONEDNN_MAX_CPU_ISA:-}${DNNL_MAX_CPU_ISA:-}" ] || skip "oneDNN's ISA is capped by the environment"
}

sim_map() { # PATH N APIX: Gaussian "atoms" + a little noise
  "$PY" - "$@" <<'PYEOF'
import sys, numpy as np, mrcfile
p, n, apix = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = np.random.default_rng(11)
z, y, x = np.mgrid[0:n, 0:n, 0:n].astype(np.float32)
d = np.zeros((n, n, n), np.float32)
for c in rng.uniform(4, n - 4, (120, 3)):
    d += np.exp(-((z - c[0])**2 + (y - c[1])**2 + (x - c[2])**2) / 3.0)
d += 0.02 * rng.standard_normal(d.shape).astype(np.float32)
with mrcfile.new(p, overwrite=True) as m:
    m.set_data(d); m.voxel_size = apix
PYEOF
}

cc_at_least() { # A B MIN: Pearson CC(A, B) >= MIN and A != B
  "$PY" - "$@" <<'PYEOF'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1], permissive=False).data.astype(np.float64)
b = mrcfile.open(sys.argv[2], permissive=False).data.astype(np.float64)
assert a.shape == b.shape, (a.shape, b.shape)
assert np.isfinite(b).all()
cc = np.corrcoef(a.ravel(), b.ravel())[0, 1]
rel = np.linalg.norm(a - b) / np.linalg.norm(a)
print(f"CC {cc:.6f}, rel. L2 {rel:.3g}")
assert cc >= float(sys.argv[3]), cc
assert rel > 0, "bf16 output identical to fp32: the bf16 path did not run"
PYEOF
}

@test "bf16 against fp32, every shipped task, simulated 40^3 map: CC >= 0.999" {
  require_py_module mrcfile
  require_bf16
  [ -e "$SHIPPED/sharpen.safetensors" ] || skip "no shipped weights"
  sim_map "$TMP/sim.mrc" 40 1.0
  for task in sharpen superres wedge; do
    lvm-apply -q --task "$task" --model "$SHIPPED/$task.safetensors" --threads 2 "$TMP/sim.mrc" -o "$TMP/$task-fp32.mrc"
    lvm-apply -q --task "$task" --model "$SHIPPED/$task.safetensors" --threads 2 --precision bf16 "$TMP/sim.mrc" \
      -o "$TMP/$task-bf16.mrc"
    run cc_at_least "$TMP/$task-fp32.mrc" "$TMP/$task-bf16.mrc" 0.999
    echo "$task: $output"
    [ "$status" -eq 0 ]
  done
}

@test "bf16 against fp32 on a real map (EMD-1461, shared data), shipped sharpen weights: CC >= 0.999" {
  require_py_module mrcfile
  require_bf16
  require_data real_maps_nomodel/emd_1461_cropped_dmm.mrc
  [ -e "$SHIPPED/sharpen.safetensors" ] || skip "no shipped weights"
  # the map's central 48^3 (1.23 A): one 64^3 tile after resampling to the model's 1 A
  "$PY" - "$DATA/real_maps_nomodel/emd_1461_cropped_dmm.mrc" "$TMP/crop.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
with mrcfile.open(sys.argv[1], permissive=True) as m:
    d = np.asarray(m.data, np.float32); vs = float(m.voxel_size.x)
c = [s // 2 for s in d.shape]
with mrcfile.new(sys.argv[2], overwrite=True) as o:
    o.set_data(np.ascontiguousarray(d[c[0] - 24:c[0] + 24, c[1] - 24:c[1] + 24, c[2] - 24:c[2] + 24]))
    o.voxel_size = vs
PYEOF
  lvm-apply -q --task sharpen --model "$SHIPPED/sharpen.safetensors" --threads 2 "$TMP/crop.mrc" -o "$TMP/fp32.mrc"
  lvm-apply -q --task sharpen --model "$SHIPPED/sharpen.safetensors" --threads 2 --precision bf16 "$TMP/crop.mrc" \
    -o "$TMP/bf16.mrc"
  run cc_at_least "$TMP/fp32.mrc" "$TMP/bf16.mrc" 0.999
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "lvm-model run --precision bf16 against fp32 (random default-width network): CC >= 0.999" {
  require_py_module mrcfile
  require_bf16
  lvm-model init -q --seed 2 --config width=16,levels=2,depth=1,head_dim=8 -o "$TMP/w.safetensors"
  sim_map "$TMP/in.mrc" 32 1.0
  lvm-model run -q "$TMP/w.safetensors" "$TMP/in.mrc" --threads 2 -o "$TMP/fp32.mrc"
  lvm-model run -q "$TMP/w.safetensors" "$TMP/in.mrc" --threads 2 --precision bf16 -o "$TMP/bf16.mrc"
  run cc_at_least "$TMP/fp32.mrc" "$TMP/bf16.mrc" 0.999
  echo "$output"
  [ "$status" -eq 0 ]
  run lvm-model bench "$TMP/w.safetensors" --box 16 --repeat 1 --threads 2 --precision bf16
  [ "$status" -eq 0 ]
  [[ "$output" == *"precision=bf16"* ]]
}

@test "a CPU without AVX-512 BF16 and AMX: --precision bf16 refused in one line, exit 1, no output" {
  require_py_module mrcfile
  [ -e "$SHIPPED/sharpen.safetensors" ] || skip "no shipped weights"
  sim_map "$TMP/sim.mrc" 16 1.0
  export ONEDNN_MAX_CPU_ISA=AVX512_CORE
  run lvm-apply --task sharpen --model "$SHIPPED/sharpen.safetensors" --precision bf16 "$TMP/sim.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"--precision: bf16: this CPU lacks AVX-512 BF16 and AMX"* ]]
  assert_no_file "$TMP/out.mrc"
  # fp32 runs as always under the same cap
  lvm-apply -q --task sharpen --model "$SHIPPED/sharpen.safetensors" "$TMP/sim.mrc" -o "$TMP/out.mrc"
  [ -s "$TMP/out.mrc" ]
  lvm-model init -q --seed 2 --config width=8,levels=2,depth=1,head_dim=4 -o "$TMP/w.safetensors"
  run lvm-model run "$TMP/w.safetensors" "$TMP/sim.mrc" --precision bf16 -o "$TMP/run.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"lacks AVX-512 BF16 and AMX"* ]]
  assert_no_file "$TMP/run.mrc"
  CRYO_NN_PRECISION=bf16 run lvm-model bench "$TMP/w.safetensors" --box 8 --repeat 1
  [ "$status" -eq 1 ]
  [[ "$output" == *"CRYO_NN_PRECISION"*"lacks AVX-512 BF16 and AMX"* ]]
}

@test "--precision: a bad value is a usage error (exit 2); bf16 training on the CPU is refused (exit 1)" {
  lvm-model init -q --seed 2 --config width=8,levels=2,depth=1,head_dim=4 -o "$TMP/w.safetensors"
  run lvm-apply --task sharpen --precision fp16 /dev/null -o "$TMP/out.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/out.mrc"
  run lvm-model bench "$TMP/w.safetensors" --device cpu --box 8 --train --precision bf16
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"forward-only"* ]]
}
