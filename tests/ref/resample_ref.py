#!/usr/bin/python3
"""resample_ref.py — independent numpy references for mrc-resample (float64 throughout).

    resample_ref.py fourier IN OUT NX NY NZ        Fourier resampling to a box
    resample_ref.py linear|cubic IN OUT AX AY AZ   real-space, exact new voxel size
    resample_ref.py crop IN OUT NX NY NZ FILL      crop/pad about the centre
    resample_ref.py grid METHOD IN OUT NX NY NZ AX AY AZ OX OY OZ FILL [PX PY PZ MX MY MZ]
                                                   onto a grid (box, voxel size, origin); the
                                                   Fourier pad N and transform size M per axis
                                                   (the tool's resample.pad / resample.fft)

Geometry (cryolvm's convention): the box [o - a/2, o - a/2 + n a) is kept, new voxel j sits
at input voxel coordinate x_j = (j + 1/2) a'/a - 1/2 and the new origin is o - a/2 + a'/2.

Fourier: instead of cropping an FFT array, this evaluates the trigonometric polynomial of
the input directly at x_j with explicit per-axis matrices applied to numpy.fft.fftn: terms
|k| < min(n, m)/2 always; on padding an even n the Nyquist term enters as a cosine (half at
+n/2, half at -n/2); on cropping to an even m both +-m/2 terms of the input are kept in full
(they alias to the same output bin). The output is real to rounding (asserted).
Linear / cubic: separable interpolation, coordinates clamped to [0, n-1]; cubic uses the
Keys kernel with a = -0.5 and edge-replicated taps.
Grid: grid voxel j sits at input coordinate u_j = (o_g + j a_g - o) / a; voxels whose cell
[u_j - s/2, u_j + s/2] (s = a_g/a) overlaps [-1/2, n - 1/2) are data, the rest FILL. Fourier:
the input is padded at the high end of x, then y, then z to N by a linear ramp from the last
voxel back to the first (t = 1..g over g + 1), and the trigonometric polynomial of the padded
input, with the term set of an N -> M crop/pad as above, is evaluated at
u_first + j N / M for the data voxels. Linear / cubic: as above at u_j.
IN/OUT are MRC (mrcfile) or cryolvm streams (cvol.py); OUT is written as MRC.
"""
import sys

import numpy as np


def load(path):
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'CVOL':
        import cvol
        fr = cvol.read_stream(path)[0]
        return np.asarray(fr['data'], np.float64), np.array(fr['apix'], float), np.array(fr['origin'], float)
    import mrcfile
    with mrcfile.open(path, permissive=True) as m:
        d = np.asarray(m.data, np.float64)
        vs = m.voxel_size
        apix = np.array([float(vs.x), float(vs.y), float(vs.z)])
        o = m.header.origin
        ns = (int(m.header.nxstart), int(m.header.nystart), int(m.header.nzstart))
        origin = np.array([float(o.x), float(o.y), float(o.z)]) + np.array(ns) * apix
    return d, apix, origin


def save(path, data, apix, origin):
    import mrcfile
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(data, dtype=np.float32))
        m.voxel_size = tuple(float(a) for a in apix)
        m.header.origin = tuple(float(o) for o in origin)


def trig_matrix(n, m, x=None):
    """m x n complex matrix (len(x) x n when x is given): row j evaluates the kept terms of an
    n-point spectrum, cropped or padded to m, at x_j (default: the box-edge rule)."""
    if x is None:
        x = (np.arange(m) + 0.5) * n / m - 0.5
    terms = []  # (frequency k, source bin, weight)
    if m >= n:
        for k in range(-(n // 2), (n - 1) // 2 + 1):
            if n % 2 == 0 and abs(k) == n // 2:
                terms += [(n // 2, n // 2, 0.5), (-(n // 2), n // 2, 0.5)]
            else:
                terms.append((k, k % n, 1.0))
    else:
        for k in range(-(m // 2), (m - 1) // 2 + 1):
            if m % 2 == 0 and k == -(m // 2):
                terms += [(m // 2, m // 2, 1.0), (-(m // 2), n - m // 2, 1.0)]
            else:
                terms.append((k, k % n, 1.0))
    A = np.zeros((len(x), n), complex)
    for k, src, w in terms:
        A[:, src] += w * np.exp(2j * np.pi * k * x / n)
    return A / n


def fourier(a, box):
    F = np.fft.fftn(a)  # axes z, y, x
    for axis, m in zip((2, 1, 0), box):  # box is x, y, z
        A = trig_matrix(a.shape[axis], m)
        F = np.moveaxis(np.tensordot(A, np.moveaxis(F, axis, 0), axes=(1, 0)), 0, axis)
    assert np.abs(F.imag).max() <= 1e-9 * max(1.0, np.abs(F.real).max()), np.abs(F.imag).max()
    return F.real


def pad_ramp(a, pads):
    """Pad the high end of x, then y, then z to pads (x, y, z) with a ramp from last to first."""
    for d, axis in ((0, 2), (1, 1), (2, 0)):
        n = a.shape[axis]
        g = pads[d] - n
        if g <= 0:
            continue
        t = np.arange(1, g + 1) / (g + 1)
        shape = [1, 1, 1]
        shape[axis] = g
        t = t.reshape(shape)
        last = np.take(a, [n - 1], axis=axis)
        first = np.take(a, [0], axis=axis)
        a = np.concatenate([a, last * (1 - t) + first * t], axis=axis)
    return a


def data_span(n, a, o, gn, ga, go):
    """First data voxel and count along one axis (cells overlapping the input box)."""
    s = ga / a
    u = (go + np.arange(gn) * ga - o) / a
    inside = np.nonzero((u + s / 2 > -0.5) & (u - s / 2 < n - 0.5))[0]
    return int(inside[0]), len(inside), u


def grid(method, a, apix, origin, gn, ga, go, fill, pads=None, ffts=None):
    n = a.shape[::-1]
    spans = [data_span(n[d], apix[d], origin[d], gn[d], ga[d], go[d]) for d in range(3)]
    if method == 'fourier':
        F = np.fft.fftn(pad_ramp(a, pads))
        for d, axis in ((0, 2), (1, 1), (2, 0)):
            first, keep, u = spans[d]
            x = u[first] + np.arange(keep) * pads[d] / ffts[d]
            A = trig_matrix(pads[d], ffts[d], x)
            F = np.moveaxis(np.tensordot(A, np.moveaxis(F, axis, 0), axes=(1, 0)), 0, axis)
        assert np.abs(F.imag).max() <= 1e-9 * max(1.0, np.abs(F.real).max()), np.abs(F.imag).max()
        block = F.real
    else:
        block = a
        for d, axis in ((0, 2), (1, 1), (2, 0)):
            first, keep, u = spans[d]
            block = interp_at(block, axis, u[first:first + keep], method == 'cubic')
    out = np.full(gn[::-1], fill, np.float64)
    out[tuple(slice(spans[d][0], spans[d][0] + spans[d][1]) for d in (2, 1, 0))] = block
    return out


def interp_at(a, axis, x, cubic):
    n = a.shape[axis]
    x = np.clip(x, 0, n - 1)
    i0 = np.floor(x).astype(int)
    s = x - i0
    out = 0
    for k in (range(-1, 3) if cubic else range(0, 2)):
        idx = np.clip(i0 + k, 0, n - 1)
        w = keys(s - k) if cubic else (1 - s if k == 0 else s)
        shape = [1, 1, 1]
        shape[axis] = len(x)
        out = out + np.take(a, idx, axis=axis) * w.reshape(shape)
    return out


def keys(t, a=-0.5):
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def interp_axis(a, axis, m, ratio, cubic):
    n = a.shape[axis]
    x = np.clip((np.arange(m) + 0.5) * ratio - 0.5, 0, n - 1)
    i0 = np.floor(x).astype(int)
    s = x - i0
    taps = range(-1, 3) if cubic else range(0, 2)
    out = 0
    for k in taps:
        idx = np.clip(i0 + k, 0, n - 1)
        w = keys(s - k) if cubic else (1 - s if k == 0 else s)
        shape = [1, 1, 1]
        shape[axis] = m
        out = out + np.take(a, idx, axis=axis) * w.reshape(shape)
    return out


def realspace(a, apix, new_apix, cubic):
    n = a.shape[::-1]
    box = [max(1, int(np.floor(n[d] * apix[d] / new_apix[d] + 0.5))) for d in range(3)]
    for d, axis in ((0, 2), (1, 1), (2, 0)):
        a = interp_axis(a, axis, box[d], new_apix[d] / apix[d], cubic)
    return a


def crop(a, box, fill):
    n = a.shape[::-1]
    out = np.full(box[::-1], fill, np.float64)
    sl_out, sl_in = [], []
    for d in (2, 1, 0):
        shift = n[d] // 2 - box[d] // 2  # input index = output index + shift
        lo = max(0, -shift)
        hi = min(box[d], n[d] - shift)
        sl_out.append(slice(lo, hi))
        sl_in.append(slice(lo + shift, hi + shift))
    out[tuple(sl_out)] = a[tuple(sl_in)]
    return out, [n[d] // 2 - box[d] // 2 for d in range(3)]


def main():
    mode = sys.argv[1]
    if mode == 'grid':
        method, src, dst = sys.argv[2:5]
        v = [float(t) for t in sys.argv[5:]]
        gn, ga, go, fill = [int(t) for t in v[0:3]], v[3:6], v[6:9], v[9]
        pads = [int(t) for t in v[10:13]] or None
        ffts = [int(t) for t in v[13:16]] or None
        a, apix, origin = load(src)
        save(dst, grid(method, a, apix, origin, gn, ga, go, fill, pads, ffts), ga, go)
        return
    src, dst = sys.argv[2:4]
    a, apix, origin = load(src)
    if mode == 'fourier':
        box = [int(v) for v in sys.argv[4:7]]
        n = a.shape[::-1]
        out = fourier(a, box)
        new_apix = np.array([apix[d] * n[d] / box[d] for d in range(3)])
        save(dst, out, new_apix, origin - apix / 2 + new_apix / 2)
    elif mode in ('linear', 'cubic'):
        new_apix = np.array([float(v) for v in sys.argv[4:7]])
        out = realspace(a, apix, new_apix, mode == 'cubic')
        save(dst, out, new_apix, origin - apix / 2 + new_apix / 2)
    elif mode == 'crop':
        box = [int(v) for v in sys.argv[4:7]]
        out, shift = crop(a, box, float(sys.argv[7]))
        save(dst, out, apix, origin + np.array(shift) * apix)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == '__main__':
    main()
