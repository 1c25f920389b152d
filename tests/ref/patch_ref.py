#!/usr/bin/python3
"""patch_ref.py — numpy reference for vol-patch, written from vol-patch(1) alone.

    patch_ref.py tiles IN SIZE STRIDE PAD       prints one line per tile: "i j k" start, and
                                                 checks nothing; use check_tiles to compare
    patch_ref.py check_tiles SRC TILES.cvol SIZE STRIDE PAD
        every tile of TILES equals numpy.pad(SRC, mode) sliced at the documented start, has
        origin = src origin + start * apix, and the tiles come in the documented order
    patch_ref.py check_random SRC CROPS.cvol SIZE K SEED [FRAME]
        crop starts equal the documented splitmix64 draws and contents equal SRC slices

SIZE/STRIDE are single integers (cubic) or x,y,z. PAD: zero|reflect.
"""
import math
import sys

import numpy as np

M64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class SplitMix:
    def __init__(self, seed, frame):
        self.s = mix64((seed + mix64(frame)) & M64)

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        return mix64(self.s)


def triple(text):
    v = [int(t) for t in text.split(',')]
    return v * 3 if len(v) == 1 else v


def load(path):
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'CVOL':
        import cvol
        fr = cvol.read_stream(path)[0]
        d = np.asarray(fr['data'], np.float64)
        return (d if d.ndim == 4 else d[None]), np.array(fr['apix']), np.array(fr['origin'])
    import mrcfile
    with mrcfile.open(path, permissive=True) as m:
        vs = m.voxel_size
        apix = np.array([float(vs.x), float(vs.y), float(vs.z)])
        o = m.header.origin
        ns = np.array([int(m.header.nxstart), int(m.header.nystart), int(m.header.nzstart)])
        return np.asarray(m.data, np.float64)[None], apix, np.array([float(o.x), float(o.y), float(o.z)]) + ns * apix


def frames(path):
    import cvol
    out = []
    for fr in cvol.read_stream(path):
        d = np.asarray(fr['data'], np.float64)
        out.append((d if d.ndim == 4 else d[None], np.array(fr['apix']), np.array(fr['origin']), fr['meta']))
    return out


def tile_starts(n, size, stride):
    """Documented rule: margin m = (s - t)//2, ceil(n/t) tiles at k t - m, x fastest."""
    per_axis = []
    for d in range(3):
        m = (size[d] - stride[d]) // 2
        per_axis.append([k * stride[d] - m for k in range(math.ceil(n[d] / stride[d]))])
    return [(x, y, z) for z in per_axis[2] for y in per_axis[1] for x in per_axis[0]]


def crop(src, start, size, pad):
    """src (C,Z,Y,X); numpy.pad then slice."""
    n = src.shape[1:][::-1]
    before = [max(0, -start[d]) for d in range(3)]
    after = [max(0, start[d] + size[d] - n[d]) for d in range(3)]
    widths = [(0, 0)] + [(before[d], after[d]) for d in (2, 1, 0)]
    p = np.pad(src, widths, mode='constant' if pad == 'zero' else 'reflect')
    s = [start[d] + before[d] for d in range(3)]
    return p[:, s[2]:s[2] + size[2], s[1]:s[1] + size[1], s[0]:s[0] + size[0]]


def check_tiles(srcp, tilesp, size, stride, pad):
    src, apix, origin = load(srcp)
    n = src.shape[1:][::-1]
    starts = tile_starts(n, size, stride)
    tiles = frames(tilesp)
    assert len(tiles) == len(starts), (len(tiles), len(starts))
    for i, ((d, ap, org, meta), st) in enumerate(zip(tiles, starts)):
        assert meta['patch.origin'] == '%d,%d,%d' % st, (meta['patch.origin'], st)
        assert meta['patch.index'] == str(i) and meta['patch.count'] == str(len(starts))
        ref = crop(src, st, size, pad)
        assert np.array_equal(d, ref), (i, np.abs(d - ref).max())
        assert np.allclose(org, origin + np.array(st) * apix, atol=1e-4), (org, st)
    print(f"{len(tiles)} tiles ok")


def check_random(srcp, cropsp, size, k, seed, frame=0):
    src, apix, origin = load(srcp)
    n = src.shape[1:][::-1]
    rng = SplitMix(seed, frame)
    crops = frames(cropsp)
    assert len(crops) == k, len(crops)
    for i, (d, ap, org, meta) in enumerate(crops):
        st = []
        for ax in range(3):
            u = (rng.next() >> 11) * 2.0 ** -53
            st.append(min(int(math.floor(u * (n[ax] - size[ax] + 1))), n[ax] - size[ax]))
        assert meta['patch.origin'] == '%d,%d,%d' % tuple(st), (meta['patch.origin'], st)
        assert np.array_equal(d, crop(src, st, size, 'zero'))
        assert np.allclose(org, origin + np.array(st) * apix, atol=1e-4)
    print(f"{k} crops ok")


def main():
    cmd = sys.argv[1]
    if cmd == 'check_tiles':
        check_tiles(sys.argv[2], sys.argv[3], triple(sys.argv[4]), triple(sys.argv[5]), sys.argv[6])
    elif cmd == 'check_random':
        check_random(sys.argv[2], sys.argv[3], triple(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
                     int(sys.argv[7]) if len(sys.argv) > 7 else 0)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == '__main__':
    main()
