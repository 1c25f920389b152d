#!/usr/bin/env bats
# lvm-apply.bats — fine-tuned weights on maps: geometry kept for every task, tiling against
# whole-map inference and an independent numpy/PyTorch pipeline (tests/ref/apply_ref.py),
# the weights lookup (installed tree too), every bad input.
# Weights are tiny random networks from `lvm-model init --task` (so the tests take seconds);
# they test the plumbing, not the quality of a trained model.

load helpers

SMALL=width=8,levels=2,depth=1,head_dim=4

weights() { # PATH TASK [SEED]
  lvm-model init -q --config "$SMALL" --seed "${3:-3}" --task "$2" -o "$1"
}

make_map() { # PATH NX NY NZ APIX OX OY OZ [AXES]  blobs + noise; AXES "c,r,s" stores permuted axes
  "$PY" - "$@" <<'PYEOF'
import sys, numpy as np, mrcfile
p = sys.argv[1]
nx, ny, nz = map(int, sys.argv[2:5]); apix = float(sys.argv[5]); o = tuple(map(float, sys.argv[6:9]))
axes = tuple(map(int, sys.argv[9].split(","))) if len(sys.argv) > 9 else (1, 2, 3)
rng = np.random.default_rng(7)
z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
d = np.zeros((nz, ny, nx), np.float32)
for c in rng.uniform([2, 2, 2], [nz - 2, ny - 2, nx - 2], (25, 3)):
    d += np.exp(-((z - c[0])**2 + (y - c[1])**2 + (x - c[2])**2) / 4.0)
d += 0.05 * rng.standard_normal(d.shape).astype(np.float32)
# a[z, y, x] -> stored[section, row, col] with col = axis mapc, row = mapr, section = maps
perm = [3 - axes[2], 3 - axes[1], 3 - axes[0]]
with mrcfile.new(p, overwrite=True) as m:
    m.set_data(np.ascontiguousarray(d.transpose(perm)))
    m.header.mapc, m.header.mapr, m.header.maps = axes
    m.voxel_size = apix
    m.header.origin = o
PYEOF
}

# The output's header against what it must be: shape (x y z), voxel size, origin, a label.
check_geometry() { # OUT NX NY NZ APIX OX OY OZ LABEL
  "$PY" - "$@" <<'PYEOF'
import sys, numpy as np, mrcfile
p = sys.argv[1]; n = tuple(map(int, sys.argv[2:5])); a = float(sys.argv[5]); o = np.array(sys.argv[6:9], float)
with mrcfile.open(p, permissive=False) as m:
    assert m.data.shape[::-1] == n, (m.data.shape[::-1], n)
    vs = m.voxel_size
    assert np.allclose([vs.x, vs.y, vs.z], a, rtol=1e-5), (vs, a)
    org = np.array([m.header.origin.x, m.header.origin.y, m.header.origin.z], float)
    assert np.allclose(org, o, atol=1e-3 * a), (org, o)
    assert (m.header.mapc, m.header.mapr, m.header.maps) == (1, 2, 3)
    labels = [bytes(l).decode(errors="replace") for l in m.header.label[: m.header.nlabl]]
    assert any(sys.argv[9] in l for l in labels), labels
    assert np.isfinite(m.data).all() and m.data.std() > 0
PYEOF
}

@test "--help and usage errors (exit 2, no output)" {
  run lvm-apply --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--task"* && "$output" == *"--half2"* && "$output" == *"--mask"* && "$output" == *"--tile"* ]]
  run lvm-apply -o "$TMP/out.mrc" /dev/null
  [ "$status" -eq 2 ]
  [[ "$output" == *"--task"* ]]
  run lvm-apply --task blur -o "$TMP/out.mrc" /dev/null
  [ "$status" -eq 2 ]
  run lvm-apply --task sharpen --tile 32 --stride 40 -o "$TMP/out.mrc" /dev/null
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/out.mrc"
}

@test "geometry kept for sharpen and wedge: non-cubic box, odd voxel size, non-zero origin" {
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 38 30 26 1.37 12.5 -7.25 3.0
  for task in sharpen wedge; do
    weights "$TMP/$task.safetensors" $task
    run lvm-apply --task $task --model "$TMP/$task.safetensors" --tile 16 "$TMP/in.mrc" -o "$TMP/$task.mrc"
    [ "$status" -eq 0 ]
    check_geometry "$TMP/$task.mrc" 38 30 26 1.37 12.5 -7.25 3.0 "lvm-apply --model $task.safetensors"
  done
}

@test "superres from a coarser map: the model's 1 A grid, same extent; from a finer map: the input's grid" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" superres
  make_map "$TMP/coarse.mrc" 30 24 20 1.6 12.5 -7.25 3.0
  run lvm-apply --task superres --model "$TMP/w.safetensors" "$TMP/coarse.mrc" -o "$TMP/fine.mrc"
  [ "$status" -eq 0 ]
  # n' = round(n 1.6) = 48 x 38 x 32; a' = n a / n' (extent kept exactly: Fourier resampling);
  # the low edge of the box stays: o' = o - a/2 + a'/2 per axis
  "$PY" - "$TMP/fine.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
with mrcfile.open(sys.argv[1], permissive=False) as m:
    n = np.array(m.data.shape[::-1]); vs = m.voxel_size
    a = np.array([vs.x, vs.y, vs.z], float); o = np.array([m.header.origin.x, m.header.origin.y, m.header.origin.z], float)
n0 = np.array([30, 24, 20]); a0 = 1.6; o0 = np.array([12.5, -7.25, 3.0])
assert (n == np.round(n0 * a0)).all(), n
assert np.allclose(n * a, n0 * a0, rtol=1e-5), (n * a, n0 * a0)
assert np.allclose(a, 1, atol=0.02), a
assert np.allclose(o, o0 - a0 / 2 + a / 2, atol=1e-3), (o, o0 - a0 / 2 + a / 2)
PYEOF
  make_map "$TMP/finer.mrc" 34 28 22 0.85 -3.0 4.5 100.0
  run lvm-apply --task superres --model "$TMP/w.safetensors" "$TMP/finer.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 0 ]
  check_geometry "$TMP/out.mrc" 34 28 22 0.85 -3.0 4.5 100.0 "lvm-apply --model w.safetensors"
}

@test "--apix native: no resampling (the map's own voxels); --apix A; a large upsampling warns; bad values refused" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" wedge
  make_map "$TMP/a137.mrc" 30 26 22 1.37 5 6 7
  make_map "$TMP/a100.mrc" 30 26 22 1.0 5 6 7
  lvm-apply -q --task wedge --model "$TMP/w.safetensors" --tile 16 --apix native "$TMP/a137.mrc" -o "$TMP/native.mrc"
  lvm-apply -q --task wedge --model "$TMP/w.safetensors" --tile 16 --apix 1.37 "$TMP/a137.mrc" -o "$TMP/a.mrc"
  lvm-apply -q --task wedge --model "$TMP/w.safetensors" --tile 16 "$TMP/a100.mrc" -o "$TMP/one.mrc"
  check_geometry "$TMP/native.mrc" 30 26 22 1.37 5 6 7 "--apix native"
  # the same voxels as the 1 A map through the weights' own grid: the network saw the same input
  "$PY" - "$TMP/native.mrc" "$TMP/a.mrc" "$TMP/one.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
n, a, o = (mrcfile.open(p).data for p in sys.argv[1:4])
assert np.array_equal(n, a), "--apix 1.37 differs from native on a 1.37 A map"
assert np.array_equal(n, o), "native differs from the same voxels at the weights' voxel size"
PYEOF
  # a 10 A map onto the weights' 1 A grid is 1000 times larger: one warning naming --apix native
  make_map "$TMP/a10.mrc" 8 8 8 10.0 0 0 0
  run lvm-apply --task wedge --model "$TMP/w.safetensors" --tile 32 "$TMP/a10.mrc" -o "$TMP/up.mrc"
  [ "$status" -eq 0 ]
  [[ "$output" == *"a10.mrc: resampling 10 Å voxels to the network's 1 Å makes the map 1000 times larger (80x80x80)"*"--apix native"* ]]
  run lvm-apply --task wedge --model "$TMP/w.safetensors" --tile 16 --apix native "$TMP/a10.mrc" -o "$TMP/nat10.mrc"
  [ "$status" -eq 0 ]
  [[ "$output" != *"warning"* ]]
  check_geometry "$TMP/nat10.mrc" 8 8 8 10.0 0 0 0 "--apix native"
  run lvm-apply --task superres --apix native "$TMP/a10.mrc" -o "$TMP/bad.mrc"
  [ "$status" -eq 2 ]
  [[ "${lines[0]}" == *"--apix native: superres puts the map on a finer grid"* ]]
  for bad in 0 -1 abc 1.5x 200; do
    run lvm-apply --task wedge --model "$TMP/w.safetensors" --apix "$bad" "$TMP/a10.mrc" -o "$TMP/bad.mrc"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == *"--apix '$bad'"* ]]
  done
  assert_no_file "$TMP/bad.mrc"
}

@test "--tilt-axis x: the map turned a quarter about z onto the weights' y axis and back (= numpy rot90 around a y run); geometry kept" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" wedge
  make_map "$TMP/in.mrc" 34 26 22 1.3 4 -2 9
  "$PY" - "$TMP/in.mrc" "$TMP/turned.mrc" "$TMP/mask.mrc" "$TMP/tmask.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
with mrcfile.open(sys.argv[1]) as m:
    a = np.array(m.data); o = m.header.origin
t = np.rot90(a, 1, axes=(1, 2))            # (x, y) -> (y, nx-1-x): the x axis onto y
mk = np.zeros_like(a); mk[2:-2, 3:-3, 4:-4] = 1
for path, d in ((sys.argv[2], t), (sys.argv[3], mk), (sys.argv[4], np.rot90(mk, 1, axes=(1, 2)))):
    with mrcfile.new(path, overwrite=True) as w:
        w.set_data(np.ascontiguousarray(d, np.float32)); w.voxel_size = 1.3; w.header.origin = o
PYEOF
  lvm-apply -q --task wedge --model "$TMP/w.safetensors" --tile 16 --tilt-axis x --mask "$TMP/mask.mrc" "$TMP/in.mrc" -o "$TMP/x.mrc"
  lvm-apply -q --task wedge --model "$TMP/w.safetensors" --tile 16 --mask "$TMP/tmask.mrc" "$TMP/turned.mrc" -o "$TMP/y.mrc"
  lvm-apply -q --task wedge --model "$TMP/w.safetensors" --tile 16 --mask "$TMP/mask.mrc" "$TMP/in.mrc" -o "$TMP/plain.mrc"
  check_geometry "$TMP/x.mrc" 34 26 22 1.3 4 -2 9 "lvm-apply --model w.safetensors"
  "$PY" - "$TMP/x.mrc" "$TMP/y.mrc" "$TMP/in.mrc" "$TMP/plain.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
x, y, a, plain = (np.array(mrcfile.open(p).data) for p in sys.argv[1:5])
back = np.rot90(y, -1, axes=(1, 2))
assert x.shape == a.shape and np.array_equal(x, back), np.abs(x - back).max()
assert not np.allclose(x, plain)   # the axis matters to the network
PYEOF
  run lvm-apply --task sharpen --tilt-axis x "$TMP/in.mrc" -o "$TMP/bad.mrc"
  [ "$status" -eq 2 ]
  [[ "${lines[0]}" == *"--tilt-axis applies to --task wedge"* ]]
  run lvm-apply --task wedge --model "$TMP/w.safetensors" --tilt-axis z "$TMP/in.mrc" -o "$TMP/bad.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/bad.mrc"
}

@test "stays in register: the same map stored with another axis order gives the same output" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  make_map "$TMP/a.mrc" 28 28 28 1.1 5 6 7
  make_map "$TMP/b.mrc" 28 28 28 1.1 5 6 7 3,1,2
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" "$TMP/a.mrc" -o "$TMP/oa.mrc"
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" "$TMP/b.mrc" -o "$TMP/ob.mrc"
  assert_close_files "$TMP/ob.mrc" "$TMP/oa.mrc" 1e-6
  check_geometry "$TMP/ob.mrc" 28 28 28 1.1 5 6 7 "lvm-apply"
}

@test "whole map and tiles equal an independent numpy/PyTorch pipeline (rel. 1e-4)" {
  require_py_module torch
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  make_map "$TMP/in.mrc" 40 36 30 1.0 0 0 0
  for ts in "0 0" "16 12" "24 18" "32 20"; do
    set -- $ts
    args="--tile $1"
    [ "$2" = 0 ] || args="$args --stride $2"
    run lvm-apply --task sharpen --model "$TMP/w.safetensors" $args --no-skip --batch 3 "$TMP/in.mrc" -o "$TMP/o$1.mrc"
    [ "$status" -eq 0 ]
    run "$PY" "$REF/apply_ref.py" check "$TMP/w.safetensors" "$TMP/in.mrc" "$TMP/o$1.mrc" $1 $2 1e-4
    echo "$output"
    [ "$status" -eq 0 ]
  done
}

@test "tiled against whole map: identical when a tile covers the map; batch size changes nothing" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  make_map "$TMP/in.mrc" 30 26 22 1.0 0 0 0
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 0 "$TMP/in.mrc" -o "$TMP/whole.mrc"
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 32 "$TMP/in.mrc" -o "$TMP/t32.mrc"
  cmp <(tail -c +1025 "$TMP/whole.mrc") <(tail -c +1025 "$TMP/t32.mrc")
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 16 --no-skip "$TMP/in.mrc" -o "$TMP/b1.mrc"
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 16 --no-skip --batch 4 "$TMP/in.mrc" -o "$TMP/b4.mrc"
  assert_close_files "$TMP/b4.mrc" "$TMP/b1.mrc" 1e-5
}

@test "--device lists: cpu,cpu equals cpu byte for byte (tf32 computes float32 there); bad lists refused in one line, no output" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  make_map "$TMP/in.mrc" 30 26 22 1.0 0 0 0
  a=(-q --task sharpen --model "$TMP/w.safetensors" --tile 16 --stride 12 --batch 2 "$TMP/in.mrc")
  # one thread per context everywhere: the CPU contexts share --threads
  lvm-apply "${a[@]}" --threads 1 --device cpu -o "$TMP/one.mrc"
  lvm-apply "${a[@]}" --threads 2 --device cpu,cpu -o "$TMP/two.mrc"
  lvm-apply "${a[@]}" --threads 1 --device cpu,cpu,cpu --precision tf32 -o "$TMP/three.mrc"
  cmp <(tail -c +1025 "$TMP/one.mrc") <(tail -c +1025 "$TMP/two.mrc")
  cmp <(tail -c +1025 "$TMP/one.mrc") <(tail -c +1025 "$TMP/three.mrc")
  for d in cuda:x cuda:-1 cuda: cpu,,cpu ,cpu cpu, "" cuda:0,cuda:0 cpu,cuda:1,cuda:1 cuda:all,cuda:0 auto,cpu gpu; do
    run lvm-apply "${a[@]}" --device "$d" -o "$TMP/bad.mrc"
    [ "$status" -eq 1 ] || { echo "--device '$d': status $status"; false; }
    assert_one_error_line
    [[ "$output" == *"--device"* ]]
    assert_no_file "$TMP/bad.mrc"
  done
  # no GPU 7 here (no plugin, no GPU, or fewer GPUs): refused naming it
  if ! { command -v nvidia-smi >/dev/null && [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -ge 8 ]; }; then
    run lvm-apply "${a[@]}" --device cpu,cuda:7 -o "$TMP/bad.mrc"
    [ "$status" -eq 1 ] && assert_one_error_line && [[ "$output" == *"cuda:7"* ]]
    assert_no_file "$TMP/bad.mrc"
  fi
  run lvm-apply "${a[@]}" --precision fp16 -o "$TMP/bad.mrc"
  [ "$status" -eq 2 ]
  assert_no_file "$TMP/bad.mrc"
}

@test "tiled against whole map: stated tolerance for tiles of 32 (CC >= 0.5 with random weights)" {
  # The network is not exactly translation-equivariant: FRN normalises by each box's own
  # mean square and attention windows are anchored at the box corner, so a tile sees other
  # statistics than the whole map. With random weights on a stationary field, tiles of 32
  # (stride 24) keep CC >= 0.5 with the whole-map output (measured 0.78); bench/README.md
  # has the table for the default network.
  require_py_module scipy
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  "$PY" - "$TMP/in.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
from scipy.ndimage import gaussian_filter
d = gaussian_filter(np.random.default_rng(3).standard_normal((48, 56, 64)), 1.5, mode="wrap").astype(np.float32)
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(d); m.voxel_size = 1.0
PYEOF
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 0 "$TMP/in.mrc" -o "$TMP/whole.mrc"
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" --tile 32 --stride 24 "$TMP/in.mrc" -o "$TMP/t.mrc"
  "$PY" - "$TMP/whole.mrc" "$TMP/t.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1]).data.ravel(); b = mrcfile.open(sys.argv[2]).data.ravel()
cc = np.corrcoef(a, b)[0, 1]
print("CC tiled vs whole", cc)
assert cc >= 0.5, cc
PYEOF
}

@test "empty tiles are skipped: flat solvent gives 0 after normalisation and 0 after (no density), whatever the input's solvent level" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  "$PY" - "$TMP/in.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
d = np.full((48, 48, 48), -5, np.float32)   # solvent at -5: q_lo = -5
d[:16, :16, :16] = np.random.default_rng(1).random((16, 16, 16)) + 1
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(d); m.voxel_size = 1.0
PYEOF
  run lvm-apply --progress --task sharpen --model "$TMP/w.safetensors" --tile 16 --stride 16 "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 0 ]
  [[ "$output" == *"27 tiles of 16x16x16 (26 skipped)"* ]]
  "$PY" - "$TMP/out.mrc" <<'PYEOF'
import sys, numpy as np, mrcfile
y = mrcfile.open(sys.argv[1]).data
assert (y[16:, 16:, 16:] == 0).all()  # skipped: network output 0 -> 0 (not q_lo = -5)
assert np.abs(y[:16, :16, :16]).max() > 0
PYEOF
}

@test "half maps are averaged; a mask multiplies the output" {
  require_py_module mrcfile
  weights "$TMP/w.safetensors" sharpen
  "$PY" - "$TMP" <<'PYEOF'
import sys, numpy as np, mrcfile
t = sys.argv[1]; rng = np.random.default_rng(2)
a = rng.random((20, 24, 28)).astype(np.float32); b = rng.random((20, 24, 28)).astype(np.float32)
mask = np.zeros_like(a); mask[4:16, 4:20, 4:24] = 1
for name, d in (("h1", a), ("h2", b), ("avg", (a + b) / 2), ("mask", mask)):
    with mrcfile.new(f"{t}/{name}.mrc") as m:
        m.set_data(d); m.voxel_size = 1.0
PYEOF
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" "$TMP/h1.mrc" --half2 "$TMP/h2.mrc" -o "$TMP/o1.mrc"
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" "$TMP/avg.mrc" -o "$TMP/o2.mrc"
  assert_close_files "$TMP/o1.mrc" "$TMP/o2.mrc" 1e-5
  lvm-apply -q --task sharpen --model "$TMP/w.safetensors" "$TMP/avg.mrc" --mask "$TMP/mask.mrc" -o "$TMP/om.mrc"
  "$PY" - "$TMP" <<'PYEOF'
import sys, numpy as np, mrcfile
t = sys.argv[1]
y = mrcfile.open(f"{t}/om.mrc").data; m = mrcfile.open(f"{t}/mask.mrc").data
assert (y[m == 0] == 0).all() and np.abs(y[m == 1]).max() > 0
PYEOF
}

@test "weights found without flags: \$CRYOLVM_MODELS, the source tree's share/models, after make install" {
  weights "$TMP/sharpen.safetensors" sharpen
  require_py_module mrcfile
  make_map "$TMP/in.mrc" 20 20 20 1.0 0 0 0
  mkdir -p "$TMP/models"
  cp "$TMP/sharpen.safetensors" "$TMP/models/"
  CRYOLVM_MODELS="$TMP/models" run lvm-apply --task sharpen "$TMP/in.mrc" -o "$TMP/o1.mrc"
  [ "$status" -eq 0 ]
  # a source-tree layout: bin/lvm-apply next to share/models
  mkdir -p "$TMP/tree/bin" "$TMP/tree/share/models"
  cp "$CRYO_BIN/lvm-apply" "$TMP/tree/bin/"
  cp "$TMP/sharpen.safetensors" "$TMP/tree/share/models/"
  env -u CRYOLVM_MODELS "$TMP/tree/bin/lvm-apply" -q --task sharpen "$TMP/in.mrc" -o "$TMP/o2.mrc"
  cmp "$TMP/o1.mrc" "$TMP/o2.mrc" || assert_close_files "$TMP/o1.mrc" "$TMP/o2.mrc" 0
  # make install to a prefix: weights in PREFIX/share/cryolvm/models are found
  command -v make >/dev/null || skip "make not installed"
  root=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
  run make -s -C "$root" install PREFIX="$TMP/prefix"
  [ "$status" -eq 0 ]
  [ -d "$TMP/prefix/share/cryolvm/models" ]
  cp "$TMP/sharpen.safetensors" "$TMP/prefix/share/cryolvm/models/"
  env -u CRYOLVM_MODELS "$TMP/prefix/bin/lvm-apply" -q --task sharpen "$TMP/in.mrc" -o "$TMP/o3.mrc"
  assert_close_files "$TMP/o3.mrc" "$TMP/o1.mrc" 0
}

@test "no weights anywhere: one line saying where it looked and how to get them" {
  [ ! -e "$CRYO_BIN/../share/models/wedge.safetensors" ] || skip "wedge weights ship in this tree"
  [ ! -e "/usr/local/share/cryolvm/models/wedge.safetensors" ] || skip "wedge weights installed"
  mkdir -p "$TMP/tree/bin"
  cp "$CRYO_BIN/lvm-apply" "$TMP/tree/bin/"
  CRYOLVM_MODELS="$TMP/none" run "$TMP/tree/bin/lvm-apply" --task wedge /dev/null -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"no weights for task 'wedge'"*"--model FILE"*"jepa-train"* ]]
  assert_no_file "$TMP/out.mrc"
}

@test "bad input: weights of another task, config or kind; NaN map; mask or half map on another grid" {
  require_py_module mrcfile
  weights "$TMP/sharpen.safetensors" sharpen
  make_map "$TMP/in.mrc" 24 20 16 1.0 0 0 0
  # another task
  weights "$TMP/superres.safetensors" superres
  run lvm-apply --task sharpen --model "$TMP/superres.safetensors" "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  [[ "$output" == *"superres.safetensors"*"'superres', not 'sharpen'"* ]]
  # another config: the metadata says width 16, the tensors are width 8
  lvm-model init -q --config "$SMALL" --task sharpen \
    --meta "config=in_ch=1,out_ch=1,width=16,levels=2,depth=1,window=4,head_dim=4,mlp_ratio=4" -o "$TMP/cfg.safetensors"
  run lvm-apply --task sharpen --model "$TMP/cfg.safetensors" "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  [[ "$output" == *"cfg.safetensors"* ]]
  # a backbone without a task; a normalisation we do not know
  lvm-model init -q --config "$SMALL" -o "$TMP/plain.safetensors"
  run lvm-apply --task sharpen --model "$TMP/plain.safetensors" "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  [[ "$output" == *"no 'task'"* ]]
  lvm-model init -q --config "$SMALL" --task sharpen --meta "normalize=zscore" -o "$TMP/z.safetensors"
  run lvm-apply --task sharpen --model "$TMP/z.safetensors" "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  # a tile that is not a multiple of 2^levels
  run lvm-apply --task sharpen --model "$TMP/sharpen.safetensors" --tile 18 "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 2 ]; assert_no_file "$TMP/out.mrc"
  # NaN in the map, the mask, the half map
  "$PY" - "$TMP" <<'PYEOF'
import sys, numpy as np, mrcfile
t = sys.argv[1]
d = np.random.default_rng(1).random((16, 20, 24)).astype(np.float32)
n = d.copy(); n[3, 4, 5] = np.nan
for name, a, vs, o in (("nan", n, 1.0, 0), ("mask_grid", np.ascontiguousarray(d[:, :, :20]), 1.0, 0), ("mask_apix", d, 1.2, 0),
                       ("half_origin", d, 1.0, 5.0), ("half_nan", n, 1.0, 0)):
    with mrcfile.new(f"{t}/{name}.mrc") as m:
        m.set_data(a); m.voxel_size = vs; m.header.origin = (o, 0, 0)
PYEOF
  run lvm-apply --task sharpen --model "$TMP/sharpen.safetensors" "$TMP/nan.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  [[ "$output" == *"nan.mrc"* ]]
  for m in mask_grid mask_apix; do
    run lvm-apply --task sharpen --model "$TMP/sharpen.safetensors" --mask "$TMP/$m.mrc" "$TMP/in.mrc" -o "$TMP/out.mrc"
    [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
    [[ "$output" == *"$m.mrc"* ]]
  done
  for h in half_origin half_nan; do
    run lvm-apply --task sharpen --model "$TMP/sharpen.safetensors" --half2 "$TMP/$h.mrc" "$TMP/nan.mrc" -o "$TMP/out.mrc"
    [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  done
  run lvm-apply --task sharpen --model "$TMP/sharpen.safetensors" --half2 "$TMP/half_origin.mrc" "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]; assert_one_error_line; assert_no_file "$TMP/out.mrc"
  [[ "$output" == *"half_origin.mrc"*"origin"* ]]
}
