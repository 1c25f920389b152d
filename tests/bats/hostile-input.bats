#!/usr/bin/env bats
# Hostile inputs of issue 12 (found by fuzzing and by hand): each is refused before the
# memory it claims is allocated, or accepted with a warning that names the file, never
# silently. Reproducers of fuzzer findings live in tests/fuzz/regress/ (make check-fuzz).
load helpers
bats_require_minimum_version 1.5.0

# A 4x4x4 float32 map (header + 256 bytes of data) at $1.
small_map() {
  "$PY" - "$1" <<'PY'
import sys, numpy as np, mrcfile
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(np.arange(64, dtype=np.float32).reshape(4, 4, 4))
PY
}

@test "MRC: bytes after the voxel data are counted in a warning, the map still read" {
  require_py_module mrcfile
  small_map "$TMP/a.mrc"
  head -c 5000 /dev/urandom >> "$TMP/a.mrc"
  run --separate-stderr vol-convert "$TMP/a.mrc" -o "$TMP/out.mrc"
  [ "$status" -eq 0 ]
  [ "$stderr" = "vol-convert: warning: $TMP/a.mrc: 5000 bytes after the voxel data ignored (not part of the map)" ]
  assert_close_files "$TMP/out.mrc" "$TMP/a.mrc" 0
  # the same from a pipe: counted as read, up to 64 KiB
  run --separate-stderr bash -c 'cat "$1" | vol-info - >/dev/null' _ "$TMP/a.mrc"
  [ "$status" -eq 0 ]
  [ "$stderr" = "vol-info: warning: stdin: 5000 bytes after the voxel data ignored (not part of the map)" ]
  # -q silences it
  run --separate-stderr vol-info -q "$TMP/a.mrc"
  [ "$status" -eq 0 ] && [ -z "$stderr" ]
}

@test "MRC: a gzip member with 1 GiB of zeros after a 4^3 map is not inflated past 64 KiB" {
  require_py_module mrcfile
  small_map "$TMP/a.mrc"
  { cat "$TMP/a.mrc"; head -c 1073741824 /dev/zero; } | gzip -1 > "$TMP/a.mrc.gz"
  run --separate-stderr /usr/bin/time -f '%M' vol-info "$TMP/a.mrc.gz"
  [ "$status" -eq 0 ]
  [[ "$stderr" == "vol-info: warning: $TMP/a.mrc.gz: at least 65536 bytes after the voxel data ignored"* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 100000 ]
}

@test "MRC: a gzipped header claiming more than the compressed file can hold is refused at once" {
  require_py_module mrcfile
  small_map "$TMP/a.mrc"
  # NX NY NZ = 1024 (4 GiB of float32) in a 1.3 KiB gzip file
  "$PY" - "$TMP/a.mrc" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[0:12] = struct.pack('<3i', 1024, 1024, 1024)
b[28:40] = struct.pack('<3i', 1024, 1024, 1024)
open(sys.argv[1], 'wb').write(b)
PY
  gzip -9 "$TMP/a.mrc"
  run --separate-stderr /usr/bin/time -f '%M' vol-info "$TMP/a.mrc.gz"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "vol-info: $TMP/a.mrc.gz: header says 1024x1024x1024 float32 (4.0 GiB) but the compressed input can hold at most "* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 100000 ]
}

@test "MRC: a gzip member whose CRC is wrong after the map is refused" {
  require_py_module mrcfile
  small_map "$TMP/a.mrc"
  gzip -9 "$TMP/a.mrc"
  # the CRC-32 is the 8th to 5th last byte
  "$PY" - "$TMP/a.mrc.gz" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[-8] ^= 0xff
open(sys.argv[1], 'wb').write(b)
PY
  run --separate-stderr vol-info "$TMP/a.mrc.gz"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "vol-info: $TMP/a.mrc.gz: corrupt gzip data"* ]] || { echo "$stderr"; false; }
}

# A stream whose only frame header (checksums valid) claims 1x2048x2048x3840 float32 = 60 GiB,
# followed by nothing but 4 bytes: 144 bytes in all.
lying_stream() {
  "$PY" - "$1" <<'PY'
import struct, sys, zlib
hdr = b"CVOL" + struct.pack("<HHI", 1, 0, 0)
out = hdr + struct.pack("<I", zlib.crc32(hdr))
raw, cb = 2048 * 2048 * 3840 * 4, 4 << 20
fixed = (b"FRAM" + struct.pack("<I", 120) + bytes([1, 3, 1, 1]) + struct.pack("<I", 0)
         + struct.pack("<4Q", 1, 3840, 2048, 2048) + struct.pack("<3d", 1, 1, 1) + struct.pack("<3d", 0, 0, 0)
         + struct.pack("<QIIII", raw, cb, -(-raw // cb), 0, 0))
out += fixed + struct.pack("<I", zlib.crc32(fixed)) + struct.pack("<I", 100)
assert len(out) == 144
open(sys.argv[1], "wb").write(out)
PY
}

@test "stream: a 144-byte stream claiming a 60 GiB frame is refused before allocating, naming the file" {
  lying_stream "$TMP/lie.cvol"
  run --separate-stderr /usr/bin/time -f '%M' vol-info "$TMP/lie.cvol"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "vol-info: $TMP/lie.cvol: stream ends before frame 1 is complete: its header claims 64424509440 data bytes"*"and only 4 bytes follow"* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 200000 ]
  # from a pipe the length is unknown: the buffer grows only with data that arrives
  run --separate-stderr bash -c 'cat "$1" | /usr/bin/time -f %M vol-info -' _ "$TMP/lie.cvol"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "vol-info: stdin: stream ends in the middle of frame 1"* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 300000 ]
}

@test "stream: a frame larger than the first pipe buffer (64 MiB) crosses a pipe intact" {
  require_py_module mrcfile
  "$PY" -c '
import numpy as np, mrcfile, sys
a = np.random.default_rng(3).standard_normal((90, 448, 448)).astype(np.float32)
with mrcfile.new(sys.argv[1], overwrite=True) as m: m.set_data(a)' "$TMP/big.mrc"
  vol-convert "$TMP/big.mrc" | cat | vol-convert - -o "$TMP/back.mrc"
  cmp <(tail -c +1025 "$TMP/big.mrc") <(tail -c +1025 "$TMP/back.mrc")
}

# A hand-made little-endian TIFF: one 8-bit page of $2 x $3 pixels, one uncompressed strip of
# $4 bytes, 8 directory entries.
tiny_tiff() {
  "$PY" - "$@" <<'PY'
import struct, sys
out, w, h, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0), (278, 4, h), (279, 4, n)]
ifd_off = 8
data_off = ifd_off + 2 + 12 * len(tags) + 4
b = b"II*\0" + struct.pack("<I", ifd_off) + struct.pack("<H", len(tags))
for tag, typ, val in tags:
    if tag == 273:
        val = data_off
    b += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
b += struct.pack("<I", 0) + bytes(range(256)) * (n // 256) + bytes(n % 256)
open(out, "wb").write(b)
PY
}

@test "TIFF: a 390-byte file whose page claims 13 GB is refused before allocating" {
  tiny_tiff "$TMP/lie.tif" 114000 114000 280
  [ "$(stat -c %s "$TMP/lie.tif")" -eq 390 ]
  run --separate-stderr /usr/bin/time -f '%M' vol-info "$TMP/lie.tif"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "vol-info: $TMP/lie.tif: 1 page of 114000x114000 8-bit need 12394.0 MiB, more than the file's data (390 bytes) can hold"* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 100000 ]
  # the honest version of the same layout still reads
  tiny_tiff "$TMP/ok.tif" 16 16 256
  run vol-info "$TMP/ok.tif"
  [ "$status" -eq 0 ]
}

@test "safetensors: a small file whose config claims a huge network fails on its tensors, not on memory" {
  "$PY" - "$TMP/lie.safetensors" <<'PY'
import json, struct, sys
meta = {"__metadata__": {"format": "cryolvm-scunet3d",
                         "config": "width=4096,levels=4,depth=16,head_dim=256,mlp_ratio=16"}}
h = json.dumps(meta, separators=(",", ":")).encode()
h += b" " * (-(8 + len(h)) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h)
PY
  require_py_module mrcfile
  "$PY" -c 'import numpy as np, mrcfile, sys; mrcfile.new(sys.argv[1], np.zeros((16, 16, 16), np.float32))' "$TMP/m.mrc"
  for args in "info $TMP/lie.safetensors" "run $TMP/lie.safetensors $TMP/m.mrc"; do
    run --separate-stderr /usr/bin/time -f '%M' lvm-model $args -o "$TMP/out.mrc"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "lvm-model: $TMP/lie.safetensors: "*"head.weight"* ]] || { echo "$stderr"; false; }
    [[ "$stderr" != *tiles* ]]
    [ "$(tail -n 1 <<<"$stderr")" -lt 200000 ]
    assert_no_file "$TMP/out.mrc"
  done
}

@test "models: a bad first record fails before the rest is read (even an endless input)" {
  { echo "ATOM      1  CA  GLY A   1       x.000   1.000   1.000  1.00  0.00           C"
    yes "REMARK 999 garbage garbage garbage garbage garbage garbage garbage" | head -n 10000000; } > "$TMP/bad.pdb"
  run --separate-stderr /usr/bin/time -f '%M' model-map --res 3 --apix 1 "$TMP/bad.pdb" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "model-map: $TMP/bad.pdb:1: x coordinate 'x.000' is not a number"* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 100000 ]
  assert_no_file "$TMP/out.mrc"
  # from a pipe that never ends: a reader of the whole text would hit the timeout (124)
  run --separate-stderr bash -c '{ head -n 1 "$1"; yes "REMARK 999 garbage"; } | timeout 60 model-map --res 3 --apix 1 - -o "$2"' \
    _ "$TMP/bad.pdb" "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "model-map: stdin:1: x coordinate"* ]] || { echo "$stderr"; false; }
}

@test "models: a small gzip that inflates past 1 GiB is refused without holding it" {
  { echo "ATOM      1  CA  GLY A   1       1.000   1.000   1.000  1.00  0.00           C"
    head -c 1100M /dev/zero | tr '\0' '\n'; } | gzip -1 > "$TMP/bomb.pdb.gz"
  [ "$(stat -c %s "$TMP/bomb.pdb.gz")" -lt 8000000 ]
  run --separate-stderr /usr/bin/time -f '%M' model-map --res 3 --apix 1 "$TMP/bomb.pdb.gz" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "model-map: $TMP/bomb.pdb.gz: more than 1024 MiB of PDB text (refusing absurd size)"* ]] || { echo "$stderr"; false; }
  [ "$(tail -n 1 <<<"$stderr")" -lt 100000 ]
  # the same as mmCIF
  { printf 'data_x\nloop_\n_atom_site.type_symbol\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\nC 1 2 3\n'
    head -c 1100M /dev/zero | tr '\0' ' '; } | gzip -1 > "$TMP/bomb.cif.gz"
  run --separate-stderr model-map --res 3 --apix 1 "$TMP/bomb.cif.gz" -o "$TMP/out.mrc"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "model-map: $TMP/bomb.cif.gz: more than 1024 MiB of mmCIF text (refusing absurd size)"* ]] || { echo "$stderr"; false; }
}

@test "a broken pipe downstream ends the tool quietly, status 1, no temporary left" {
  require_py_module mrcfile
  "$PY" -c 'import numpy as np, mrcfile, sys; mrcfile.new(sys.argv[1], np.random.default_rng(1).standard_normal((64, 256, 256)).astype(np.float32))' "$TMP/big.mrc"
  mkdir "$TMP/t"
  for fmt in stream mrc tiff; do
    run --separate-stderr bash -c 'TMPDIR="$1" vol-convert "$2" -f "$3" | head -c 100 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$TMP/t" "$TMP/big.mrc" $fmt
    [ "$output" = 1 ] || { echo "$fmt: status $output"; false; }
    [ -z "$stderr" ] || { echo "$fmt: $stderr"; false; }
    [ -z "$(ls -A "$TMP/t")" ] || { ls -la "$TMP/t"; false; }
  done
  run --separate-stderr bash -c 'mrc-normalize "$1" | head -c 100 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$TMP/big.mrc"
  [ "$output" = 1 ] && [ -z "$stderr" ]
}
