#!/usr/bin/python3
"""make_mrc.py — independent builders and checkers of MRC/TIFF test files (numpy, mrcfile,
gemmi, tifffile), used by tests/bats/mrc-io.bats and bad-input.bats.

The MRC writer here packs the 1024-byte header itself with struct (not through cryolvm or
mrcfile), so unusual files can be made: any MAPC/MAPR/MAPS order, big-endian, zero machine
stamp, no "MAP " ID (old CCP4), IMOD's unsigned-byte flag, extended headers, lying sizes.
Arrays are numpy a[z, y, x] (x fastest), the layout cryolvm frames use.

  make_mrc.py case NAME OUT EXPECT.npz    build a good test map and what reading it must give
  make_mrc.py bad NAME OUT                build a broken file
  make_mrc.py check OUT EXPECT.npz        OUT (an MRC cryolvm wrote) passes mrcfile.validate,
                                          mrcfile and gemmi read EXPECT's values, voxel size, origin
  make_mrc.py same OUT EXPECT.npz         OUT (any MRC) read by numpy = EXPECT (values, dtype)
  make_mrc.py tiff KIND OUT EXPECT.npz    a TIFF stack made with tifffile
  make_mrc.py tiffcheck OUT EXPECT.npz    OUT read by tifffile = EXPECT (values, dtype, spacing)
  make_mrc.py real FILE OUT.mrc           OUT (cryolvm's conversion of FILE) = mrcfile's data of
                                          FILE permuted to x,y,z, with the voxel size and origin rule
"""
import gzip
import struct
import sys

import numpy as np

IMOD_STAMP = 1146047817


def pattern(shape, dtype, seed=1):
    """Reproducible values that fill the dtype's range (distinct per voxel where possible)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == 'f':
        return rng.standard_normal(shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dt)


def mode_of(dtype):
    return {np.dtype(np.int8): 0, np.dtype(np.uint8): 0, np.dtype(np.int16): 1,
            np.dtype(np.float32): 2, np.dtype(np.uint16): 6, np.dtype(np.float16): 12}[np.dtype(dtype)]


def mrc_bytes(a, apix=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), nstart=(0, 0, 0), axes=(1, 2, 3),
              big=False, stamp=None, map_id=True, imod=None, labels=(), ext=b'', exttyp=b'    ',
              mode=None, dims=None, cella=None, nsymbt=None, ispg=1, sampling=None):
    """The bytes of an MRC file holding a[z,y,x] stored with axis order `axes` (MAPC MAPR MAPS).
    nstart is in file (column,row,section) order, apix/origin in x,y,z."""
    e = '>' if big else '<'
    a = np.asarray(a)
    # file array F[s][r][c]: its numpy axes are spatial axes maps, mapr, mapc (x=1..z=3),
    # and spatial axis k (1..3) is numpy axis 3-k of a[z,y,x].
    F = a.transpose([3 - axes[2], 3 - axes[1], 3 - axes[0]])
    ncrs = F.shape[::-1]
    nxyz = a.shape[::-1]
    m = sampling if sampling is not None else nxyz
    cell = cella if cella is not None else [apix[i] * m[i] for i in range(3)]
    h = bytearray(1024)
    n = dims if dims is not None else ncrs
    struct.pack_into(e + '3i', h, 0, *n)
    struct.pack_into(e + 'i', h, 12, mode_of(a.dtype) if mode is None else mode)
    struct.pack_into(e + '3i', h, 16, *nstart)
    struct.pack_into(e + '3i', h, 28, *m)
    struct.pack_into(e + '3f', h, 40, *cell)
    struct.pack_into(e + '3f', h, 52, 90, 90, 90)
    struct.pack_into(e + '3i', h, 64, *axes)
    af = a.astype(np.float64)
    struct.pack_into(e + '3f', h, 76, af.min(), af.max(), af.mean())
    struct.pack_into(e + '2i', h, 88, ispg, len(ext) if nsymbt is None else nsymbt)
    h[104:108] = exttyp
    struct.pack_into(e + 'i', h, 108, 20140)
    if imod is not None:
        struct.pack_into(e + '2i', h, 152, IMOD_STAMP, 1 if imod == 'signed' else 0)
    struct.pack_into(e + '3f', h, 196, *origin)
    if map_id:
        h[208:212] = b'MAP '
    if stamp is None:
        stamp = b'\x11\x11\x00\x00' if big else b'\x44\x44\x00\x00'
    h[212:216] = stamp
    struct.pack_into(e + 'f', h, 216, af.std())
    struct.pack_into(e + 'i', h, 220, len(labels))
    for i, lab in enumerate(labels):
        h[224 + 80 * i:224 + 80 * (i + 1)] = lab.encode().ljust(80)[:80]
    data = np.ascontiguousarray(F).astype(F.dtype.newbyteorder(e)).tobytes()
    return bytes(h) + ext + data


def save_expect(path, a, apix, origin, **extra):
    np.savez(path, data=a, apix=np.array(apix, float), origin=np.array(origin, float), **extra)


# Good cases: name -> (array, mrc_bytes kwargs, expected apix, expected origin)
def case(name):
    sh = (5, 6, 7)  # z y x
    if name.startswith('mode'):
        dt = {'mode0': np.int8, 'mode1': np.int16, 'mode2': np.float32, 'mode6': np.uint16,
              'mode12': np.float16}[name]
        a = pattern(sh, dt)
        return a, dict(apix=(1.5, 1.5, 1.5), origin=(10.0, -20.0, 30.0)), (1.5,) * 3, (10.0, -20.0, 30.0)
    if name == 'imod_unsigned':
        a = pattern(sh, np.uint8)
        return a, dict(imod='unsigned'), (1,) * 3, (0,) * 3
    if name == 'imod_signed':
        a = pattern(sh, np.int8)
        return a, dict(imod='signed'), (1,) * 3, (0,) * 3
    if name.startswith('axes'):
        axes = tuple(int(c) for c in name[4:])
        a = pattern(sh, np.float32)
        apix = (1.1, 1.3, 1.7)
        nstart_xyz = (-3, 4, -5)
        nstart = tuple(nstart_xyz[ax - 1] for ax in axes)  # file order
        origin = tuple(nstart_xyz[i] * apix[i] for i in range(3))
        return a, dict(apix=apix, nstart=nstart, axes=axes), apix, origin
    if name == 'bigendian':
        a = pattern(sh, np.float32)
        return a, dict(big=True, apix=(2.0, 2.0, 2.0), origin=(1.0, 2.0, 3.0)), (2.0,) * 3, (1.0, 2.0, 3.0)
    if name == 'bigendian_int16_axes231':
        a = pattern(sh, np.int16)
        return a, dict(big=True, axes=(2, 3, 1)), (1,) * 3, (0,) * 3
    if name == 'zerostamp_be':
        a = pattern(sh, np.float32)
        return a, dict(big=True, stamp=b'\0\0\0\0'), (1,) * 3, (0,) * 3
    if name == 'zerostamp_le':
        a = pattern(sh, np.uint16)
        return a, dict(stamp=b'\0\0\0\0'), (1,) * 3, (0,) * 3
    if name == 'oldccp4':  # no "MAP ": origin words ignored, nstart used
        a = pattern(sh, np.float32)
        return a, dict(map_id=False, stamp=b'\0\0\0\0', nstart=(1, 2, 3), origin=(9.0, 9.0, 9.0),
                       apix=(2.0, 2.0, 2.0)), (2.0,) * 3, (2.0, 4.0, 6.0)
    if name == 'originwords':  # ORIGIN words win over nstart when non-zero
        a = pattern(sh, np.float32)
        return a, dict(nstart=(1, 2, 3), origin=(-7.5, 0.0, 12.25), apix=(2.0, 2.0, 2.0)), (2.0,) * 3, (-7.5, 0.0, 12.25)
    if name == 'sampling':  # voxel size is CELLA / MX, not / NX
        a = pattern(sh, np.float32)
        return a, dict(sampling=(14, 12, 10), cella=(28.0, 36.0, 50.0)), (2.0, 3.0, 5.0), (0,) * 3
    if name == 'exthdr':
        a = pattern(sh, np.float32)
        ext = bytes(range(256)) * 4
        return a, dict(ext=ext, exttyp=b'FEI1'), (1,) * 3, (0,) * 3
    if name == 'labels':
        a = pattern(sh, np.float32)
        labs = ['label number %d' % i for i in range(10)]
        return a, dict(labels=labs), (1,) * 3, (0,) * 3
    raise SystemExit('unknown case ' + name)


def cmd_case(name, out, expect):
    a, kw, apix, origin = case(name)
    b = mrc_bytes(a, **kw)
    if out.endswith('.gz'):
        b = gzip.compress(b)
    open(out, 'wb').write(b)
    extra = {}
    if 'ext' in kw:
        extra['ext'] = np.frombuffer(kw['ext'], np.uint8)
        extra['exttyp'] = np.frombuffer(kw['exttyp'], np.uint8)
    if 'labels' in kw:
        extra['labels'] = np.array(kw['labels'])
    save_expect(expect, a, apix, origin, **extra)


def cmd_bad(name, out):
    a = pattern((4, 4, 4), np.float32)
    good = mrc_bytes(a)
    if name == 'truncated_header':
        b = good[:500]
    elif name == 'truncated_data':
        b = mrc_bytes(pattern((100, 100, 100), np.float32))[:1024 + 1258291]
    elif name == 'absurd_dims':
        b = mrc_bytes(a, dims=(100000, 100000, 100000))
    elif name == 'overflow_dims':
        b = mrc_bytes(a, dims=(2147483647, 2147483647, 2147483647))
    elif name == 'negative_dims':
        b = mrc_bytes(a, dims=(4, -4, 4))
    elif name == 'zero_dims':
        b = mrc_bytes(a, dims=(4, 0, 4))
    elif name == 'unknown_mode':
        b = mrc_bytes(a, mode=5)
    elif name == 'complex_mode':
        b = mrc_bytes(a, mode=4)
    elif name == 'nan_cella':
        b = mrc_bytes(a, cella=(float('nan'), 4.0, 4.0))
    elif name == 'inf_cella':
        b = mrc_bytes(a, cella=(4.0, float('inf'), 4.0))
    elif name == 'bad_axes':
        b = mrc_bytes(a)
        b = b[:64] + struct.pack('<3i', 1, 1, 3) + b[76:]
    elif name == 'huge_nsymbt':
        b = mrc_bytes(a, nsymbt=1 << 30)
    elif name == 'garbage':
        b = np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    elif name == 'text':
        b = b'<html><body>404 Not Found</body></html>\n' * 40
    elif name == 'empty':
        b = b''
    elif name == 'truncated_gzip':
        z = gzip.compress(mrc_bytes(pattern((20, 20, 20), np.float32)))
        b = z[:len(z) // 2]
    elif name == 'corrupt_gzip':
        z = bytearray(gzip.compress(mrc_bytes(pattern((20, 20, 20), np.float32))))
        for i in range(len(z) // 3, len(z) // 3 + 16):
            z[i] ^= 0x5a
        b = bytes(z)
    elif name == 'tiff_mismatch':
        import tifffile
        with tifffile.TiffWriter(out) as w:
            w.write(np.zeros((8, 8), np.uint8))
            w.write(np.zeros((8, 9), np.uint8))
        return
    elif name == 'tiff_rgb':
        import tifffile
        tifffile.imwrite(out, np.zeros((8, 8, 3), np.uint8), photometric='rgb')
        return
    elif name == 'truncated_tiff':
        import tifffile
        tifffile.imwrite(out, pattern((5, 40, 40), np.uint16), photometric='minisblack')
        b = open(out, 'rb').read()
        b = b[:len(b) // 2]
    else:
        raise SystemExit('unknown bad case ' + name)
    open(out, 'wb').write(b)


def fail(msg):
    print('FAIL: ' + msg)
    sys.exit(1)


def compare(got, want, what, tol=0.0):
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        fail('%s: shape %s, expected %s' % (what, got.shape, want.shape))
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    if not np.all(np.isfinite(g)):
        fail('%s: non-finite values' % what)
    err = np.max(np.abs(g - w)) if g.size else 0.0
    if not err <= tol * max(1.0, np.max(np.abs(w))):
        fail('%s: max abs diff %g > tol %g' % (what, err, tol))


def cmd_check(out, expect):
    """OUT was written by cryolvm: it must be valid MRC2014 and read the same in mrcfile and gemmi."""
    import io
    import mrcfile
    import gemmi
    e = np.load(expect)
    want = e['data']
    buf = io.StringIO()
    with mrcfile.open(out, permissive=True, header_only=True) as m:
        mode = int(m.header.mode)
    # uint8 is written as mode 6 (uint16, every reader agrees) unless mode 0 was asked for
    unsigned = want.dtype == np.uint8 and mode == 0
    if want.dtype == np.uint8 and mode == 6:
        want = want.astype(np.uint16)
    if not unsigned or want.max() <= 127:
        if not mrcfile.validate(out, print_file=buf):
            fail('mrcfile.validate: ' + buf.getvalue().replace('\n', ' | '))
    with mrcfile.open(out, permissive=False) as m:
        data = np.asarray(m.data)
        if unsigned:
            data = data.view(np.uint8)  # mrcfile ignores IMOD's unsigned flag
            if int(m.header.extra2.tobytes()[40:44] == struct.pack('<i', IMOD_STAMP)) != 1:
                fail('uint8 written without the IMOD stamp')
        if data.dtype != want.dtype:
            fail('dtype %s, expected %s' % (data.dtype, want.dtype))
        compare(data, want, 'mrcfile data')
        vs = m.voxel_size
        compare([vs.x, vs.y, vs.z], e['apix'], 'mrcfile voxel size', 1e-6)
        o = m.header.origin
        compare([o.x, o.y, o.z], e['origin'], 'mrcfile origin', 1e-6)
        if (m.header.mapc, m.header.mapr, m.header.maps) != (1, 2, 3):
            fail('axis order not 1 2 3')
    if want.dtype == np.float16:
        print('ok (gemmi %s cannot read mode 12; checked with mrcfile only)' % gemmi.__version__)
        return
    g = gemmi.read_ccp4_map(out)
    g.setup(float('nan'))
    arr = np.array(g.grid, copy=False)  # [x, y, z]
    if not unsigned:  # gemmi, like mrcfile, reads mode 0 as signed
        compare(arr, want.transpose(2, 1, 0).astype(np.float32), 'gemmi data')
    uc = g.grid.unit_cell
    compare([uc.a / g.grid.nu, uc.b / g.grid.nv, uc.c / g.grid.nw], e['apix'], 'gemmi spacing', 1e-6)
    compare([g.header_float(50), g.header_float(51), g.header_float(52)], e['origin'], 'gemmi origin', 1e-6)
    print('ok')


def cmd_same(out, expect):
    """OUT (any MRC, raw numpy read honouring byte order, axes and IMOD flag) equals EXPECT."""
    e = np.load(expect)
    want = e['data']
    b = open(out, 'rb').read()
    if b[:2] == b'\x1f\x8b':
        b = gzip.decompress(b)
    order = '>' if b[212] == 0x11 else '<'
    if b[212] not in (0x11, 0x44) and struct.unpack('<i', b[12:16])[0] not in (0, 1, 2, 6, 12):
        order = '>'  # no machine stamp: the byte order in which the mode makes sense
    nx, ny, nz, mode = struct.unpack(order + '4i', b[:16])
    axes = struct.unpack(order + '3i', b[64:76])
    nsym = struct.unpack(order + 'i', b[92:96])[0]
    stamp, flags = struct.unpack(order + '2i', b[152:160])
    dt = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}[mode]
    if mode == 0 and stamp == IMOD_STAMP and not flags & 1:
        dt = np.uint8
    F = np.frombuffer(b, np.dtype(dt).newbyteorder(order), count=nx * ny * nz, offset=1024 + nsym)
    F = F.reshape(nz, ny, nx)
    # undo: F axes are spatial (maps, mapr, mapc); a[z,y,x] axis of spatial k is 3-k
    perm = [3 - axes[2], 3 - axes[1], 3 - axes[0]]
    a = F.transpose(np.argsort(perm))
    if want.dtype == np.uint8 and mode == 6:
        pass  # uint8 is written as mode 6 (uint16) unless asked otherwise: values compared below
    elif a.dtype.newbyteorder('=') != want.dtype:
        fail('dtype %s, expected %s' % (a.dtype, want.dtype))
    compare(a, want, 'data')
    if 'ext' in e.files:
        got = np.frombuffer(b[1024:1024 + nsym], np.uint8)
        compare(got, e['ext'], 'extended header')
        if b[104:108] != e['exttyp'].tobytes():
            fail('exttyp %r' % b[104:108])
    print('ok')


def cmd_tiff(kind, out, expect):
    import tifffile
    dt = {'u8': np.uint8, 'i8': np.int8, 'u16': np.uint16, 'i16': np.int16, 'i32': np.int32,
          'u32': np.uint32, 'f32': np.float32}[kind.split('_')[0]]
    a = pattern((5, 9, 11), dt)
    if dt == np.uint32:
        a = (a // 2).astype(np.uint32)  # fits int32
    if kind.endswith('_imagej'):
        # ImageJ calibration: 0.5 nm pixels, 0.8 nm slices -> 5 Å, 5 Å, 8 Å
        tifffile.imwrite(out, a, imagej=True, resolution=(2.0, 2.0),
                         metadata={'spacing': 0.8, 'unit': 'nm', 'axes': 'ZYX'})
        apix = (5.0, 5.0, 8.0)
    else:
        tifffile.imwrite(out, a, photometric='minisblack')
        apix = (1.0, 1.0, 1.0)
    save_expect(expect, a.astype(np.int32) if dt == np.uint32 else a, apix, (0, 0, 0))


def cmd_tiffcheck(out, expect):
    import tifffile
    e = np.load(expect)
    want = e['data']
    with tifffile.TiffFile(out) as t:
        a = t.asarray()
        if a.ndim == 2:
            a = a[None]
        if a.dtype != want.dtype:
            fail('dtype %s, expected %s' % (a.dtype, want.dtype))
        compare(a, want, 'tifffile data')
        ij = t.imagej_metadata
        if not ij:
            fail('no ImageJ description')
        p = t.pages[0]
        xr = p.tags['XResolution'].value
        compare([xr[1] / xr[0], float(ij['spacing'])], [e['apix'][0], e['apix'][2]], 'TIFF calibration', 1e-6)
    print('ok')


def cmd_real(src, out):
    """cryolvm's MRC conversion of src = mrcfile's data of src permuted to x,y,z order, with
    voxel size CELLA/MX.. and the origin rule of cryolvm-formats(5)."""
    import mrcfile
    with mrcfile.open(src, permissive=True) as m:
        h = m.header
        d = np.asarray(m.data)
        axes = (int(h.mapc), int(h.mapr), int(h.maps))
        perm = [3 - axes[2], 3 - axes[1], 3 - axes[0]]
        want = d.transpose(np.argsort(perm))
        apix = np.array([h.cella.x / h.mx, h.cella.y / h.my, h.cella.z / h.mz], float)
        ow = np.array([h.origin.x, h.origin.y, h.origin.z], float)
        start_crs = [int(h.nxstart), int(h.nystart), int(h.nzstart)]
        start = [0, 0, 0]
        for i in range(3):
            start[axes[i] - 1] = start_crs[i]
        origin = ow if np.any(ow != 0) else np.array(start, float) * apix
    with mrcfile.open(out) as m:
        got = np.asarray(m.data)
        compare(got, want, 'data')
        vs = m.voxel_size
        compare([vs.x, vs.y, vs.z], apix, 'voxel size', 1e-5)
        o = m.header.origin
        compare([o.x, o.y, o.z], origin, 'origin', 1e-5)
    if not mrcfile.validate(out, print_file=open('/dev/null', 'w')):
        fail('output does not pass mrcfile.validate')
    print('ok')


if __name__ == '__main__':
    cmds = {'case': cmd_case, 'bad': cmd_bad, 'check': cmd_check, 'same': cmd_same,
            'tiff': cmd_tiff, 'tiffcheck': cmd_tiffcheck, 'real': cmd_real}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        raise SystemExit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
