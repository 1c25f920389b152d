#!/usr/bin/env bats
# The CVOL wire format against an independent implementation: tests/ref/cvol.py, written
# from cryolvm-stream(5) alone. C writes / Python reads and Python writes / C reads, every
# dtype, bit for bit; the worked example in the man page decodes as the page says.
load helpers

@test "C-written streams read bit-exactly by the Python reference (every MRC dtype, odd shapes)" {
  require_py_module mrcfile
  require_py_module zstandard
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, mrcfile
t = sys.argv[1]
rng = np.random.default_rng(7)
for name, dt in [("f32", np.float32), ("i16", np.int16), ("u16", np.uint16), ("i8", np.int8), ("f16", np.float16)]:
    if np.dtype(dt).kind == "f":
        a = rng.normal(0, 3, (5, 7, 3)).astype(dt)
    else:
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, (5, 7, 3), endpoint=True).astype(dt)
    with mrcfile.new(f"{t}/{name}.mrc") as m:
        m.set_data(a)
        m.voxel_size = (1.5, 1.25, 0.75)
        m.header.origin = (10.0, -20.0, 30.5)
    np.save(f"{t}/{name}.npy", a)
PY
  for n in f32 i16 u16 i8 f16; do
    run vol-convert "$TMP/$n.mrc" -o "$TMP/$n.cvol"
    [ "$status" -eq 0 ]
  done
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, cvol
t = sys.argv[1]
for n in ["f32", "i16", "u16", "i8", "f16"]:
    a = np.load(f"{t}/{n}.npy")
    fr = cvol.read_stream(f"{t}/{n}.cvol")
    assert len(fr) == 1, n
    d = fr[0]["data"]
    assert d.dtype == a.dtype and d.shape == a.shape, (n, d.dtype, d.shape)
    assert d.tobytes() == a.tobytes(), n
    assert np.allclose(fr[0]["apix"], (1.5, 1.25, 0.75)), fr[0]["apix"]
    assert any(k.startswith("history.") and v.startswith("vol-convert") for k, v in fr[0]["meta"].items()), fr[0]["meta"]
PY
}

@test "Python-written streams (all 8 dtypes, 1-4 dims, several chunks, metadata) read by C and rewritten bit-exactly" {
  require_py_module zstandard
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, cvol
t = sys.argv[1]
rng = np.random.default_rng(3)
frames = []
shapes = [(13,), (9, 11), (5, 7, 3), (3, 2, 5, 7), (17, 19, 23), (1,), (2, 1, 1, 1)]
names = ["float32", "float16", "bfloat16", "uint8", "int8", "int16", "uint16", "int32"]
np_of = {"float32": "<f4", "float16": "<f2", "bfloat16": "<u2", "uint8": "u1", "int8": "i1",
         "int16": "<i2", "uint16": "<u2", "int32": "<i4"}
for i, name in enumerate(names):
    shape = shapes[i % len(shapes)]
    raw = rng.integers(0, 256, int(np.prod(shape)) * np.dtype(np_of[name]).itemsize, dtype=np.uint8)
    a = raw.view(np_of[name]).reshape(shape)
    frames.append({"data": a, "dtype": name, "apix": (0.5 + i, 1.0, 2.0), "origin": (-1.0 * i, 2.5, 1e3),
                   "meta": {"history.0": f"made by cvol.py {i}", "x-unknown:key": "\u00c5 kept", "empty": ""}})
cvol.write_stream(f"{t}/py.cvol", frames, chunk=64)           # many small chunks
cvol.write_stream(f"{t}/py_noshuf.cvol", frames, shuffle=False, level=1)
np.save(f"{t}/frames.npy", np.array(frames, dtype=object), allow_pickle=True)
PY
  for f in py py_noshuf; do
    run vol-convert "$TMP/$f.cvol" -o "$TMP/$f.c.cvol"
    [ "$status" -eq 0 ]
    run vol-info "$TMP/$f.cvol"
    [ "$status" -eq 0 ]
  done
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, cvol
t = sys.argv[1]
want = np.load(f"{t}/frames.npy", allow_pickle=True)
for f in ["py", "py_noshuf"]:
    got = cvol.read_stream(f"{t}/{f}.c.cvol")
    assert len(got) == len(want)
    for w, g in zip(want, got):
        assert g["dtype"] == w["dtype"], (g["dtype"], w["dtype"])
        assert g["data"].shape == w["data"].shape, (g["data"].shape, w["data"].shape)
        assert g["data"].tobytes() == np.ascontiguousarray(w["data"]).tobytes(), w["dtype"]
        assert g["apix"] == w["apix"] and g["origin"] == w["origin"]
        for k, v in w["meta"].items():
            assert g["meta"][k] == v, (k, g["meta"].get(k))
        assert g["meta"]["history.1"].startswith("vol-convert"), g["meta"]
PY
}

@test "the worked example in cryolvm-stream(5) decodes as the page describes, in C and in Python" {
  require_py_module zstandard
  man="$BATS_TEST_DIRNAME/../../man/man5/cryolvm-stream.5"
  "$PY" - "$man" "$TMP/example.cvol" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = text.split(".SH EXAMPLE", 1)[1].split(".ft\n", 1)[0]
data = b""
for line in block.splitlines():
    m = re.match(r"^[0-9a-f]{8}: ((?:[0-9a-f]{2} ){1,16})", line)
    if m:
        data += bytes.fromhex(m.group(1).replace(" ", ""))
assert len(data) == 220, len(data)
open(sys.argv[2], "wb").write(data)
import cvol, numpy as np
fr = cvol.read_stream(data)
assert len(fr) == 1
d = fr[0]["data"]
assert d.dtype == np.float32 and d.shape == (1, 2, 4), d.shape
assert (d.ravel() == np.arange(8, dtype=np.float32) * 0.5).all()
assert fr[0]["apix"] == (1.5, 1.5, 1.5) and fr[0]["meta"] == {"source": "a.mrc"}
PY
  run vol-info --json "$TMP/example.cvol"
  [ "$status" -eq 0 ]
  "$PY" -c '
import json, sys
j = json.loads(sys.argv[1])["inputs"][0]["frames"][0]
assert j["shape"] == [1, 2, 4] and j["dtype"] == "float32", j
assert j["stats"]["min"] == 0 and j["stats"]["max"] == 3.5 and j["stats"]["mean"] == 1.75, j["stats"]
assert j["stream_bytes"] == 220 - 16 - 20 and j["raw_bytes"] == 32, j
' "$output"
}

@test "the Python reference also refuses cut and corrupted C streams" {
  require_py_module zstandard
  "$PY" - "$TMP/a.cvol" <<'PY'
import sys, numpy as np, cvol
cvol.write_stream(sys.argv[1], [{"data": np.linspace(0, 1, 3000, dtype=np.float32).reshape(10, 300)}], chunk=1000)
PY
  run vol-convert "$TMP/a.cvol" -o "$TMP/c.cvol"
  [ "$status" -eq 0 ]
  "$PY" - "$TMP/c.cvol" <<'PY'
import sys, cvol
b = open(sys.argv[1], "rb").read()
cvol.read_stream(b)
bad = 0
for i in range(0, len(b), 7):
    try:
        cvol.read_stream(b[:i])
    except cvol.CvolError:
        bad += 1
    f = bytearray(b); f[i] ^= 0x10
    try:
        cvol.read_stream(bytes(f))
    except cvol.CvolError:
        bad += 1
n = len(range(0, len(b), 7))
assert bad == 2 * n, (bad, 2 * n)
PY
}

@test "a producer that fails mid-stream leaves its consumer an error, not a short result" {
  require_py_module zstandard
  "$PY" - "$TMP/two.cvol" <<'PY'
import sys, numpy as np, cvol
r = np.random.default_rng(1)
cvol.write_stream(sys.argv[1], [{"data": r.normal(size=(8, 9, 10)).astype(np.float32)} for _ in range(2)])
PY
  size=$(stat -c %s "$TMP/two.cvol")
  head -c $((size - 40)) "$TMP/two.cvol" > "$TMP/cut.cvol"
  run bash -c "vol-convert '$TMP/cut.cvol' 2>/dev/null | vol-info - >/dev/null"
  [ "$status" -eq 1 ]
  [[ "$output" == "vol-info: stdin: stream ends after frame 1 without an end record (the upstream process died?)" ]]
  run bash -c "vol-convert '$TMP/cut.cvol' 2>/dev/null | vol-convert - -o '$TMP/out.cvol'"
  [ "$status" -eq 1 ]
  assert_no_file "$TMP/out.cvol"
}

@test "the writer's output does not depend on --threads; --level trades size only" {
  require_py_module mrcfile
  "$PY" - "$TMP/in.mrc" <<'PY'
import sys, numpy as np, mrcfile
r = np.random.default_rng(4)
a = np.cumsum(r.normal(size=(96, 128, 128)), axis=2).astype(np.float32)   # 6 MiB: two chunks
with mrcfile.new(sys.argv[1]) as m:
    m.set_data(a)
PY
  vol-convert --threads 1 "$TMP/in.mrc" -o "$TMP/t1.cvol"
  vol-convert --threads 2 "$TMP/in.mrc" -o "$TMP/t2.cvol"
  cmp "$TMP/t1.cvol" "$TMP/t2.cvol"
  vol-convert --level 1 "$TMP/in.mrc" -o "$TMP/l1.cvol"
  vol-convert --level 19 "$TMP/in.mrc" -o "$TMP/l19.cvol"
  [ "$(stat -c %s "$TMP/l19.cvol")" -lt "$(stat -c %s "$TMP/l1.cvol")" ]
  for f in l1 l19; do
    vol-convert "$TMP/$f.cvol" -o "$TMP/$f.mrc"
    "$PY" -c 'import sys, mrcfile; assert mrcfile.read(sys.argv[1]).tobytes() == mrcfile.read(sys.argv[2]).tobytes()' \
      "$TMP/in.mrc" "$TMP/$f.mrc"
  done
}

@test "a chunk must be exactly one zstd frame: two concatenated frames are refused" {
  require_py_module zstandard
  "$PY" - "$TMP/two-frames-in-chunk.cvol" <<'PY'
import sys, struct, zlib, numpy as np, zstandard, cvol
good = cvol.write_stream(None, [{"data": np.arange(64, dtype=np.uint8)}])   # one chunk, no shuffle
hl = 120 + 0 + 4                                   # no metadata
start = 16
raw = np.arange(64, dtype=np.uint8).tobytes()
c = zstandard.ZstdCompressor(level=3, write_checksum=True)
comp = c.compress(raw[:32]) + c.compress(raw[32:])  # decodes to the right 64 bytes, but as two frames
rec = good[start:start + hl] + struct.pack("<I", len(comp)) + comp
rec += struct.pack("<I", zlib.crc32(rec))
end = good[-20:]
open(sys.argv[1], "wb").write(good[:start] + rec + end)
try:
    cvol.read_stream(sys.argv[1])
    raise SystemExit("the Python reference accepted it")
except cvol.CvolError as e:
    assert "zstd frame" in str(e), e
PY
  run vol-convert "$TMP/two-frames-in-chunk.cvol" -o "$TMP/out.cvol"
  [ "$status" -eq 1 ]
  assert_one_error_line
  [[ "$output" == *"frame 1, chunk 1: not one zstd frame of the chunk's size (corrupt data)"* ]]
  assert_no_file "$TMP/out.cvol"
}

@test "memory is bounded by one frame: 16 frames of 8 MiB take no more than 1" {
  require_py_module zstandard
  [ -x /usr/bin/time ] || skip "/usr/bin/time not installed"
  "$PY" - "$TMP" <<'PY'
import sys, numpy as np, cvol
a = np.random.default_rng(0).normal(size=(128, 128, 128)).astype(np.float32)
cvol.write_stream(f"{sys.argv[1]}/one.cvol", [{"data": a}])
cvol.write_stream(f"{sys.argv[1]}/many.cvol", [{"data": a}] * 16)
PY
  for f in one many; do
    /usr/bin/time -f %M -o "$TMP/$f.rss" vol-convert "$TMP/$f.cvol" -o "$TMP/$f.out.cvol"
  done
  one=$(cat "$TMP/one.rss"); many=$(cat "$TMP/many.rss")
  echo "max RSS: one frame $one KiB, 16 frames $many KiB"
  [ "$many" -lt $((one + 8192)) ]    # within 8 MiB of the one-frame run (the frame is 8 MiB)
}
