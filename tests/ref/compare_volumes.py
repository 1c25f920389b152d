#!/usr/bin/python3
"""compare_volumes.py A B TOL — exit 0 if the volumes in A and B agree within TOL.

Reads MRC (mrcfile), TIFF (via cryolvm's vol-convert to MRC is not assumed: tifffile is not
in Debian, so TIFF is read with PIL if present), or the cryolvm stream (cvol.py). Agreement:
same shape and max|a-b| <= TOL * max(1, max|b|); any NaN/Inf fails.
"""
import sys
import numpy as np


def load(path):
    with open(path, 'rb') as f:
        head = f.read(1024)
    if head[:4] == b'CVOL':
        import cvol
        frames = cvol.read_stream(path)
        return np.asarray(frames[0]['data'], dtype=np.float64)
    if head[:2] in (b'II', b'MM'):
        from PIL import Image
        im = Image.open(path)
        pages = []
        i = 0
        while True:
            try:
                im.seek(i)
            except EOFError:
                break
            pages.append(np.array(im))
            i += 1
        return np.stack(pages).astype(np.float64)
    import mrcfile
    with mrcfile.open(path, permissive=True) as m:
        return np.asarray(m.data, dtype=np.float64)


def main():
    a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
    a, b = np.squeeze(a), np.squeeze(b)
    if a.shape != b.shape:
        print(f"shape differs: {a.shape} vs {b.shape}")
        return 1
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        print("non-finite values")
        return 1
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    err = float(np.abs(a - b).max()) if a.size else 0.0
    if not err <= tol * scale:
        print(f"max abs diff {err:.6g} > {tol} * {scale:.6g}")
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
