#!/usr/bin/env bats
# The weights in share/models: float16, the metadata lvm-apply reads, provenance that shows
# the held-out models (7DDO, the demo's input, and 4CUP) were in no training input; and
# scripts/weights-meta, which records that provenance without touching the tensors.
load helpers
bats_require_minimum_version 1.5.0

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

header() {  # FILE KEY: a metadata value, or "dtypes" (the set of tensor dtypes)
  "$PY" - "$1" "$2" <<'PY'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); m = h.pop('__metadata__', {})
print(",".join(sorted({v["dtype"] for v in h.values()})) if sys.argv[2] == "dtypes" else m.get(sys.argv[2], ''))
PY
}

@test "shipped weights: float16, task metadata, trained without the held-out models 7DDO and 4CUP" {
  for t in sharpen superres wedge; do
    w="$ROOT/share/models/$t.safetensors"
    [ -f "$w" ] || skip "no shipped $t weights"
    [ "$(header "$w" dtypes)" = F16 ]
    [ "$(header "$w" task)" = "$t" ]
    [ "$(header "$w" apix)" = 1 ]
    [ "$(header "$w" normalize)" = "quantile:0.01:0.99" ]
    run lvm-model info "$w"
    [ "$status" -eq 0 ]
    header "$w" provenance | "$PY" -c '
import json, sys
p = json.load(sys.stdin)
assert "--task" in p["command"] and "--init" in p["command"], p["command"]
assert p["inputs"] and "7DDO" not in p["inputs"] and "4CUP" not in p["inputs"], p["inputs"]
assert "7DDO" not in p["command"] and "4CUP" not in p["command"]'
    tr=$(header "$w" training)
    [[ "$tr" == *heldout* ]]
    printf '%s' "$tr" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)
assert set(t["heldout"]) >= {"7DDO", "4CUP"}, t
for m in t["pretrain_inputs"] + t["finetune_models"]:
    assert "7DDO" not in m and "4CUP" not in m, m'
  done
}

@test "weights-meta: adds keys, keeps the tensors byte for byte, refuses loader keys and broken files" {
  lvm-model init -q --config width=8,levels=2,depth=1,head_dim=4 --task wedge -o "$TMP/w.safetensors"
  cp "$TMP/w.safetensors" "$TMP/orig.safetensors"
  "$ROOT/scripts/weights-meta" "$TMP/w.safetensors" 'training={"heldout":["X"]}' note=hello
  [ "$(header "$TMP/w.safetensors" note)" = hello ]
  [ "$(header "$TMP/w.safetensors" task)" = wedge ]
  "$PY" - "$TMP/orig.safetensors" "$TMP/w.safetensors" <<'PY'
import sys, json, struct
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__')
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}, n
a, na = load(sys.argv[1]); b, nb = load(sys.argv[2])
assert a == b and len(a) > 10 and nb % 8 == 0
PY
  run lvm-model info "$TMP/w.safetensors"
  [ "$status" -eq 0 ]
  run "$ROOT/scripts/weights-meta" "$TMP/w.safetensors" task=sharpen
  [ "$status" -eq 1 ]; assert_one_error_line
  [[ "$output" == *"w.safetensors"*"'task'"* ]]
  [ "$(header "$TMP/w.safetensors" task)" = wedge ]
  printf 'xx' > "$TMP/bad.safetensors"
  run "$ROOT/scripts/weights-meta" "$TMP/bad.safetensors" a=b
  [ "$status" -eq 1 ]; assert_one_error_line
  [[ "$output" == *"bad.safetensors"* ]]
  assert_no_file "$TMP/bad.safetensors.tmp"
}
