#!/usr/bin/env bats
# vol-stage and the stage plugin interface (cryolvm-stage(7)).
load helpers

build_plugin() { # $1 = output .so, $2 = extra cflags
  cc -shared -fPIC -I"$BATS_TEST_DIRNAME/../../libcore/include" $2 \
     -o "$1" "$BATS_TEST_DIRNAME/../../share/examples/stage-scale.c"
}

make_map() {
  "$PY" - "$1" <<'PY'
import sys, numpy as np, mrcfile
a = (np.arange(4*5*6, dtype=np.float32).reshape(4, 5, 6) - 30) / 7
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(a); m.voxel_size = 1.5
PY
}

@test "vol-stage --list lists the built-in stages" {
  run vol-stage --list
  [ "$status" -eq 0 ]
  for s in $("$CRYO_BIN/vol-stage" --list | awk '{print $1}'); do
    run vol-stage "$s" --help
    [ "$status" -eq 0 ]
  done
}

@test "the example plugin runs through vol-stage, with its option and a history line" {
  require_py_module mrcfile
  build_plugin "$TMP/scale.so"
  make_map "$TMP/in.mrc"
  run vol-stage "$TMP/scale.so" --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--factor"* ]]
  run vol-stage "$TMP/scale.so" --factor 2.5 "$TMP/in.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/in.mrc" "$TMP/out.mrc" <<'PY'
import sys, numpy as np, mrcfile
a = mrcfile.open(sys.argv[1]).data; b = mrcfile.open(sys.argv[2])
assert np.allclose(b.data, 2.5 * a, rtol=1e-6, atol=1e-6), "values"
assert abs(float(b.voxel_size.x) - 1.5) < 1e-6, "voxel size kept"
labels = [l.decode().strip() for l in b.header.label[:int(b.header.nlabl)]]
assert any("vol-stage scale --factor 2.5" in l for l in labels), labels
PY
}

@test "a plugin with another API version is refused, naming both versions" {
  sed 's/\.api_version = CRYO_STAGE_API_VERSION/.api_version = 99/' \
    "$BATS_TEST_DIRNAME/../../share/examples/stage-scale.c" > "$TMP/old.c"
  cc -shared -fPIC -I"$BATS_TEST_DIRNAME/../../libcore/include" -o "$TMP/old.so" "$TMP/old.c"
  run vol-stage "$TMP/old.so" --factor 2 "$TMP/none.mrc"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"stage API version 99"*"needs version 1"* ]]
}

@test "a shared object that is not a stage is refused" {
  echo 'int x = 1;' > "$TMP/x.c"
  cc -shared -fPIC -o "$TMP/x.so" "$TMP/x.c"
  run vol-stage "$TMP/x.so"
  [ "$status" -eq 1 ]
  [[ "$output" == *"not a cryolvm stage"* ]]
}

@test "an unknown stage name is a usage error" {
  run vol-stage no-such-stage
  [ "$status" -eq 2 ]
  [[ "$output" == *"no built-in stage 'no-such-stage'"* ]]
}
