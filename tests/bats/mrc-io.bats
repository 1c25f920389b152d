#!/usr/bin/env bats
# MRC2014 and TIFF I/O through the tools (vol-convert, vol-info), checked against independent
# readers: files are built by tests/ref/make_mrc.py (header packed by hand with struct), and
# what cryolvm writes must pass mrcfile.validate and read the same in mrcfile and gemmi
# (values, voxel size, origin); TIFF output is read with tifffile.
load helpers
bats_require_minimum_version 1.5.0

MK() { "$PY" "$REF/make_mrc.py" "$@"; }

need_tools() {
  [ -x "$CRYO_BIN/vol-convert" ] && [ -x "$CRYO_BIN/vol-info" ] || skip "vol-convert/vol-info not built"
}

# Build case $1, convert it to MRC with vol-convert, check the input reads as expected and
# the output is valid MRC2014 that mrcfile and gemmi read identically.
roundtrip_case() {
  MK case "$1" "$TMP/$1.map" "$TMP/$1.npz"
  run vol-convert "$TMP/$1.map" -o "$TMP/$1.out.mrc"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run MK same "$TMP/$1.out.mrc" "$TMP/$1.npz"
  [ "$status" -eq 0 ] || { echo "$1: $output"; false; }
  run MK check "$TMP/$1.out.mrc" "$TMP/$1.npz"
  [ "$status" -eq 0 ] || { echo "$1: $output"; false; }
}

@test "modes 0, 1, 2, 6, 12 round trip; output passes mrcfile.validate and reads the same in gemmi" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  for c in mode0 mode1 mode2 mode6 mode12; do roundtrip_case "$c"; done
}

@test "mode 0: signed by default, unsigned when IMOD's stamp says so; uint8 written back as mode 6" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  MK case imod_unsigned "$TMP/u.map" "$TMP/u.npz"
  run vol-info --json "$TMP/u.map"
  [ "$status" -eq 0 ]
  [[ "$output" == *'"dtype": "uint8"'* ]]
  roundtrip_case imod_unsigned
  run vol-info --json "$TMP/imod_unsigned.out.mrc"
  [[ "$output" == *'"dtype": "uint16"'* ]]
  roundtrip_case imod_signed
  run vol-info --json "$TMP/imod_signed.map"
  [[ "$output" == *'"dtype": "int8"'* ]]
}

@test "uint8 into MRC: mode 6 read right by mrcfile and gemmi; mode0 only <= 127; imod on request, with a warning" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  MK case imod_unsigned "$TMP/u.map" "$TMP/u.npz"
  run "$PY" -c "import numpy as np; d = np.load('$TMP/u.npz')['data']; assert d.dtype == np.uint8 and d.max() > 127, d.max()"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  # default: mode 6, values equal in mrcfile and gemmi (MK check compares both)
  vol-convert "$TMP/u.map" -o "$TMP/six.mrc"
  run MK check "$TMP/six.mrc" "$TMP/u.npz"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  # mode0 refused for values above 127: one line, nothing written
  run --separate-stderr vol-convert --mrc-uint8 mode0 "$TMP/u.map" -o "$TMP/zero.mrc"
  [ "$status" -eq 1 ]
  [[ "$stderr" == *"zero.mrc: uint8 values up to"*"mode 0"* ]]
  [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
  assert_no_file "$TMP/zero.mrc"
  # mode0 accepted when every value is <= 127 (the same bytes halved): mode 0, same values in
  # mrcfile and gemmi (which read it as signed)
  "$PY" - "$TMP/u.npz" "$TMP/low.npz" <<'PY'
import sys, numpy as np
e = dict(np.load(sys.argv[1]))
e['data'] = (e['data'] // 2).astype(np.uint8)
np.savez(sys.argv[2], **e)
PY
  MK case imod_unsigned "$TMP/u2.map" "$TMP/u2.npz"
  "$PY" - "$TMP/u2.map" <<'PY'
import sys, numpy as np
b = bytearray(open(sys.argv[1], 'rb').read())
b[1024:] = bytes(x // 2 for x in b[1024:])
open(sys.argv[1], 'wb').write(bytes(b))
PY
  run vol-convert --mrc-uint8 mode0 "$TMP/u2.map" -o "$TMP/low.mrc"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run "$PY" - "$TMP/low.mrc" "$TMP/low.npz" <<'PY'
import sys, numpy as np, mrcfile, gemmi
want = np.load(sys.argv[2])['data']
with mrcfile.open(sys.argv[1]) as m:
    assert m.header.mode == 0, m.header.mode
    assert np.array_equal(m.data.astype(np.int16), want.astype(np.int16))
g = np.array(gemmi.read_ccp4_map(sys.argv[1]).grid, copy=False)
assert np.array_equal(g, want.transpose(2, 1, 0).astype(np.float32))
print('ok')
PY
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  # imod: mode 0 with IMOD's unsigned flag, a warning, and cryolvm reads it back as uint8
  run --separate-stderr vol-convert --mrc-uint8 imod "$TMP/u.map" -o "$TMP/imod.mrc"
  [ "$status" -eq 0 ]
  [[ "$stderr" == *"warning"*"read those above 127 as negative"* ]]
  run MK same "$TMP/imod.mrc" "$TMP/u.npz"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run vol-convert --mrc-uint8 mode7 "$TMP/u.map" -o "$TMP/x.mrc"
  [ "$status" -eq 2 ]
}

@test "non-standard axis orders (3 1 2, 2 3 1, 3 2 1, 1 3 2, 2 1 3) read as numpy says" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  for c in axes312 axes231 axes321 axes132 axes213; do roundtrip_case "$c"; done
}

@test "big-endian maps and maps without a machine stamp read correctly" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  for c in bigendian bigendian_int16_axes231 zerostamp_be zerostamp_le; do roundtrip_case "$c"; done
}

@test "origin rule: ORIGIN words when non-zero, else NSTART x voxel size; old CCP4 without MAP ID" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  for c in originwords oldccp4 axes312; do roundtrip_case "$c"; done
  run vol-info --json "$TMP/originwords.map"
  [[ "$output" == *'"mrc.origin_rule": "origin"'* ]]
  run vol-info --json "$TMP/oldccp4.map"
  [[ "$output" == *'"mrc.origin_rule": "nstart"'* ]]
}

@test "voxel size is CELLA / MX (not / NX)" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  roundtrip_case sampling
}

@test "extended header is skipped on read and re-emitted unchanged when the geometry is kept" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  roundtrip_case exthdr
}

@test "labels become history and come back as labels; a tool's line is added, the last 10 kept" {
  need_tools; require_py_module mrcfile
  MK case labels "$TMP/l.map" "$TMP/l.npz"
  run vol-info --json "$TMP/l.map"
  [[ "$output" == *'"history.9": "label number 9"'* ]]
  vol-convert "$TMP/l.map" -o "$TMP/l.mrc"
  run "$PY" - "$TMP/l.mrc" <<'PY'
import sys, mrcfile
with mrcfile.open(sys.argv[1]) as m:
    labs = [l.decode().rstrip() for l in m.header.label[:m.header.nlabl]]
    assert m.header.nlabl == 10, m.header.nlabl
assert labs[:9] == ['label number %d' % i for i in range(1, 10)], labs
assert labs[9].startswith('vol-convert'), labs[9]
print('ok')
PY
  [ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test ".map.gz input from a file and from stdin; .mrc.gz output that mrcfile reads" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  MK case axes231 "$TMP/a.map.gz" "$TMP/a.npz"
  vol-convert "$TMP/a.map.gz" -o "$TMP/a.mrc"
  MK check "$TMP/a.mrc" "$TMP/a.npz"
  vol-convert - -o "$TMP/b.mrc" < "$TMP/a.map.gz"
  MK check "$TMP/b.mrc" "$TMP/a.npz"
  vol-convert "$TMP/a.map.gz" -o "$TMP/c.mrc.gz"
  [ "$(head -c2 "$TMP/c.mrc.gz" | od -An -tx1 | tr -d ' ')" = 1f8b ]
  run "$PY" - "$TMP/c.mrc.gz" "$TMP/a.npz" <<'PY'
import sys, numpy as np, mrcfile
with mrcfile.open(sys.argv[1]) as m:
    assert np.array_equal(m.data, np.load(sys.argv[2])['data'])
print('ok')
PY
  [ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "MRC from stdin (a pipe) and MRC to stdout with --format mrc" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  MK case bigendian "$TMP/be.map" "$TMP/be.npz"
  cat "$TMP/be.map" | vol-convert -f mrc > "$TMP/out.mrc"
  MK check "$TMP/out.mrc" "$TMP/be.npz"
}

@test "TIFF stacks of 8/16/32-bit signed and unsigned integers and float32 round trip" {
  need_tools; require_py_module tifffile
  for k in u8 i8 u16 i16 i32 u32 f32; do
    MK tiff "$k" "$TMP/$k.tif" "$TMP/$k.npz"
    vol-convert "$TMP/$k.tif" -o "$TMP/$k.out.tif"
    run MK tiffcheck "$TMP/$k.out.tif" "$TMP/$k.npz"
    [ "$status" -eq 0 ] || { echo "$k: $output"; false; }
  done
}

@test "TIFF voxel size from ImageJ metadata; written TIFF carries an ImageJ description" {
  need_tools; require_py_module tifffile
  for k in u8_imagej u16_imagej f32_imagej; do
    MK tiff "$k" "$TMP/$k.tif" "$TMP/$k.npz"
    run vol-info --json "$TMP/$k.tif"
    [ "$status" -eq 0 ]
    "$PY" -c "import json,sys; v=json.loads(sys.argv[1])['inputs'][0]['frames'][0]['voxel_size']; assert max(abs(a-b) for a,b in zip(v,[5,5,8]))<1e-5, v" "$output"
    vol-convert "$TMP/$k.tif" -o "$TMP/$k.out.tif"
    run MK tiffcheck "$TMP/$k.out.tif" "$TMP/$k.npz"
    [ "$status" -eq 0 ] || { echo "$k: $output"; false; }
  done
}

@test "MRC -> TIFF -> MRC keeps values, voxel size and origin" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  MK case mode1 "$TMP/m.map" "$TMP/m.npz"
  vol-convert "$TMP/m.map" -o "$TMP/m.tif"
  vol-convert "$TMP/m.tif" -o "$TMP/m.mrc"
  MK check "$TMP/m.mrc" "$TMP/m.npz"
}

@test "a refused conversion leaves no file and does not touch an existing one" {
  need_tools
  MK case mode2 "$TMP/f.map" "$TMP/f.npz"
  echo keep > "$TMP/out.tif.gz"
  run vol-convert "$TMP/f.map" -o "$TMP/out.tif.gz"
  [ "$status" -ne 0 ]
  [ "$(cat "$TMP/out.tif.gz")" = keep ]
  run vol-convert "$TMP/f.map" -o "$TMP/out.xyz"
  [ "$status" -ne 0 ]
  assert_no_file "$TMP/out.xyz"
}

@test "real maps: header facts match the data README; data equal mrcfile's, permuted to x,y,z" {
  need_tools; require_py_module mrcfile; require_data README.md
  # file | nx ny nz | mode | voxel | origin words | nstart | axes   (from ../shared/data/README.md)
  while IFS='|' read -r f dims mode apix origin nstart axes; do
    [ -e "$DATA/$f" ] || continue
    run vol-info --json "$DATA/$f"
    [ "$status" -eq 0 ] || { echo "$f: $output"; false; }
    "$PY" - "$output" "$dims" "$mode" "$apix" "$origin" "$nstart" "$axes" "$f" <<'PY'
import json, sys
fr = json.loads(sys.argv[1])['inputs'][0]['frames'][0]
dims, mode, apix, origin, nstart, axes = [[float(x) for x in a.split()] for a in sys.argv[2:8]]
m = fr['meta']
ax = [int(x) for x in m['mrc.axes'].split(',')]
assert ax == [int(a) for a in axes], (sys.argv[8], ax)
zyx = fr['shape'][-3:]
xyz = zyx[::-1]
assert [xyz[a - 1] for a in ax] == dims, (sys.argv[8], xyz, dims)
assert int(m['mrc.mode']) == mode[0]
assert all(abs(a - b) <= 5e-4 * max(1, b) for a, b in zip(fr['voxel_size'], apix)), (sys.argv[8], fr['voxel_size'])  # README rounds
assert all(abs(float(a) - b) < 1e-4 for a, b in zip(m['mrc.origin_words'].split(','), origin))
assert [int(x) for x in m['mrc.nstart'].split(',')] == nstart
PY
    vol-convert "$DATA/$f" -o "$TMP/real.mrc"
    run MK real "$DATA/$f" "$TMP/real.mrc"
    [ "$status" -eq 0 ] || { echo "$f: $output"; false; }
  done <<'EOF'
mrcfile_tests/EMD-3197.map|20 20 20|2|11.4 11.4 11.4|0 0 0|-2 0 0|1 2 3
mrcfile_tests/EMD-3001.map|73 43 25|2|0.448 0.393 0.459|0 0 0|0 -21 -12|3 1 2
tempy_emd5168_actin/emd_5168.map|100 100 100|2|1.742 1.742 1.742|0 0 0|-50 -50 -50|1 2 3
tempy_emd5168_actin/emd_5170.map|100 100 100|2|2.38 2.38 2.38|0 0 0|-49 -49 -49|1 2 3
apoferritin_emd20026/emd20026_prot.mrc|94 104 112|2|0.65 0.65 0.65|117.0 65.65 101.4|0 0 0|1 2 3
emringer_axisorder/test_map.ccp4|20 34 27|2|1.2156 1.2156 1.2156|0 0 0|0 0 0|3 2 1
real_maps_nomodel/emd_1832.map|64 64 64|2|5.7 5.7 5.7|0 0 0|-32 -32 -32|1 2 3
real_maps_nomodel/emd_5625.map|56 56 56|2|4.23 4.23 4.23|0 0 0|-28 -28 -28|1 2 3
real_maps_nomodel/emd_6824_diffmodeler.mrc|70 70 70|2|2.64 2.64 2.64|0 0 0|0 0 0|1 2 3
real_maps_nomodel/emd_1461_cropped_dmm.mrc|75 80 96|2|1.23 1.23 1.23|54.12 -40.59 225.09|0 0 0|1 2 3
real_maps_nomodel/emd_2513_cropped_dmm.mrc|76 74 80|2|1.32 1.32 1.32|114.84 62.04 52.8|0 0 0|1 2 3
subtomogram/ribosome_sta_32px_12A.mrc|32 32 32|2|12 12 12|0 0 0|0 0 0|1 2 3
subtomogram/tiltstack_float16_mode12.mrcs|32 32 37|12|12 12 12|0 0 0|0 0 0|1 2 3
EOF
}

@test "real TIFF tomograms: 8-bit pages as Z, 10.52 Å from ImageJ calibration, data equal tifffile's" {
  need_tools; require_py_module tifffile; require_data tomo_microtubule/13pf_MT.tif
  for f in 13pf_MT 14pf_MT; do
    vol-convert "$DATA/tomo_microtubule/$f.tif" -o "$TMP/$f.mrc"
    run "$PY" - "$DATA/tomo_microtubule/$f.tif" "$TMP/$f.mrc" <<'PY'
import sys, numpy as np, tifffile, mrcfile
with tifffile.TiffFile(sys.argv[1]) as t:
    a = np.stack([p.asarray() for p in t.pages])
with mrcfile.open(sys.argv[2]) as m:
    assert m.header.mode == 6, m.header.mode  # uint8 as uint16: every reader agrees
    d = m.data
    assert d.shape == a.shape, (d.shape, a.shape)
    assert np.array_equal(d, a)
    assert abs(d.mean() - a.mean()) < 1e-9, (d.mean(), a.mean())
    vs = m.voxel_size
    assert abs(vs.x - 10.52) < 1e-3 and abs(vs.y - 10.52) < 1e-3 and abs(vs.z - 10.52) < 1e-3, vs
print('ok')
PY
    [ "$status" -eq 0 ] || { echo "$f: $output"; false; }
  done
}

@test "TIFF from a pipe is spooled and read like the file" {
  need_tools; require_py_module tifffile
  MK tiff u16_imagej "$TMP/p.tif" "$TMP/p.npz"
  cat "$TMP/p.tif" | vol-convert - -o "$TMP/p.out.tif"
  MK tiffcheck "$TMP/p.out.tif" "$TMP/p.npz"
}

@test "binary output to a terminal is refused; a file is still written with CRYO_FSYNC=1" {
  need_tools; require_py_module mrcfile; require_py_module gemmi
  command -v script >/dev/null || skip "script(1) not installed"
  MK case mode2 "$TMP/t.map" "$TMP/t.npz"
  run script -qec "'$CRYO_BIN/vol-convert' '$TMP/t.map' -f mrc" /dev/null
  [ "$status" -eq 1 ]
  [[ "$output" == *"vol-convert: stdout is a terminal: refusing to write binary mrc data there"* ]] || { echo "$output"; false; }
  CRYO_FSYNC=1 vol-convert "$TMP/t.map" -o "$TMP/t.mrc"
  MK check "$TMP/t.mrc" "$TMP/t.npz"
}

@test "ISPG 0 with MZ = NZ (a volume labelled as a stack, common in deposited files) is written back as read; .mrcs output is a stack with MZ = 1" {
  need_tools; require_py_module mrcfile
  "$PY" - "$TMP/v.map" <<'PY'
import sys, numpy as np, mrcfile
a = np.arange(5 * 6 * 7, dtype=np.float32).reshape(7, 6, 5)
with mrcfile.new(sys.argv[1], overwrite=True) as m:
    m.set_data(a)
    m.voxel_size = 0.65
    m.header.ispg = 0                      # what the apoferritin zone file of EMD-20026 says
    m.header.mz = 7                        # ... while sampling z like a volume
    m.header.cella.z = 7 * 0.65
PY
  vol-convert "$TMP/v.map" -o "$TMP/v.out.mrc"
  vol-convert "$TMP/v.map" -o "$TMP/v.out.mrcs"
  run "$PY" - "$TMP/v.map" "$TMP/v.out.mrc" "$TMP/v.out.mrcs" <<'PY'
import sys, numpy as np, mrcfile
src, vol, stk = (mrcfile.open(f, permissive=True) for f in sys.argv[1:4])
for m in (vol, stk):
    assert np.array_equal(m.data, src.data)
    assert abs(m.voxel_size.z - 0.65) < 1e-5, m.voxel_size
h, s = vol.header, src.header
assert (int(h.ispg), int(h.mx), int(h.my), int(h.mz)) == (0, 5, 6, 7), (h.ispg, h.mx, h.my, h.mz)
assert np.allclose([h.cella.x, h.cella.y, h.cella.z], [s.cella.x, s.cella.y, s.cella.z]), h.cella
assert (int(stk.header.ispg), int(stk.header.mz)) == (0, 1), (stk.header.ispg, stk.header.mz)
print('ok')
PY
  [ "$status" -eq 0 ] || { echo "$output"; false; }
}
