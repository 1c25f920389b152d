#!/usr/bin/python3
"""normalize_ref.py — numpy reference for mrc-normalize (float64 throughout).

    normalize_ref.py IN OUT [quantile LO HI | zscore] [MASK]

quantile: q = numpy.quantile(x, [LO, HI]) (default method 'linear'), y = clip((x - q_lo) /
(q_hi - q_lo), 0, 1); zscore: y = (x - mean) / std (ddof 0). With MASK, the statistics come
from the voxels where MASK > 0.5. Each channel of a stream frame is normalised on its own.
Prints "scale offset" per channel (y = scale x + offset before clipping). OUT is written as
an MRC (one channel) or a stream (cvol.py) when it ends in .cvol.
"""
import sys

import numpy as np


def load(path):
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'CVOL':
        import cvol
        fr = cvol.read_stream(path)[0]
        return np.asarray(fr['data'], np.float64), fr
    import mrcfile
    with mrcfile.open(path, permissive=True) as m:
        return np.asarray(m.data, np.float64), None


def main():
    src, dst = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else 'quantile'
    rest = sys.argv[4:]
    lo, hi = 0.01, 0.99
    if mode == 'quantile' and len(rest) >= 2:
        lo, hi = float(rest[0]), float(rest[1])
        rest = rest[2:]
    mask = load(rest[0])[0] > 0.5 if rest else None
    x, frame = load(src)
    chans = x if (frame is not None and x.ndim == 4) else x[None]
    out = np.empty_like(chans)
    for c, a in enumerate(chans):
        sel = a[mask] if mask is not None else a.ravel()
        if mode == 'quantile':
            qlo, qhi = np.quantile(sel, [lo, hi])
            scale = 1 / (qhi - qlo)
            offset = -qlo * scale
            out[c] = np.clip(a * scale + offset, 0, 1)
        else:
            scale = 1 / sel.std()
            offset = -sel.mean() * scale
            out[c] = a * scale + offset
        print(f"{scale!r} {offset!r}")
    if dst.endswith('.cvol'):
        import cvol
        cvol.write_stream(dst, [{'data': (out if x.ndim == 4 else out[0]).astype(np.float32)}])
    else:
        import mrcfile
        with mrcfile.new(dst, overwrite=True) as m:
            m.set_data(out[0].astype(np.float32))


if __name__ == '__main__':
    main()
