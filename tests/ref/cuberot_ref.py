#!/usr/bin/python3
"""cuberot_ref.py — numpy reference for cuberot.h (the 24 cube rotations), from its comment.

    cuberot_ref.py check IN.f32 OUT.f32 TABLE.txt S C

IN.f32: an S³ × C cube (float32, channel fastest, x then y then z: numpy shape (S, S, S, C)
indexed [z, y, x, c]). OUT.f32: 48 cubes, the C library's rotations r = 0..23, then the same
rotations mirrored. TABLE.txt: 24 lines "p0 p1 p2 s0 s1 s2" (perm and sign of rotation r).

Checks, exiting non-zero with a message on the first failure:
  * the 24 rotations numpy reaches by composing np.rot90 about the three axes are exactly
    the C library's 24 outputs (as a set; each matched once), and contain no mirror;
  * each output r equals the documented definition built with numpy index arrays:
    out[p] = in[q], q[d] = p[perm[d]] if sign[d] > 0 else S-1-p[perm[d]] (d = x, y, z);
  * rotation 0 is the identity; mirrored output r = np.flip(output r, x axis).
"""
import sys

import numpy as np


def rot90_group(a):
    """All distinct arrays reachable from a by np.rot90 about the (z,y), (z,x), (y,x) planes."""
    planes = [(0, 1), (0, 2), (1, 2)]
    seen = {a.tobytes(): a}
    frontier = [a]
    while frontier:
        nxt = []
        for b in frontier:
            for ax in planes:
                c = np.ascontiguousarray(np.rot90(b, 1, axes=ax))
                key = c.tobytes()
                if key not in seen:
                    seen[key] = c
                    nxt.append(c)
        frontier = nxt
    return seen


def by_definition(a, perm, sign):
    s = a.shape[0]
    z, y, x = np.meshgrid(np.arange(s), np.arange(s), np.arange(s), indexing="ij")
    p = [x, y, z]
    q = [p[perm[d]] if sign[d] > 0 else s - 1 - p[perm[d]] for d in range(3)]
    return a[q[2], q[1], q[0]]


def main():
    if len(sys.argv) != 7 or sys.argv[1] != "check":
        sys.exit(__doc__)
    s, c = int(sys.argv[5]), int(sys.argv[6])
    a = np.fromfile(sys.argv[2], dtype="<f4").reshape(s, s, s, c)
    outs = np.fromfile(sys.argv[3], dtype="<f4").reshape(48, s, s, s, c)
    table = [list(map(int, line.split())) for line in open(sys.argv[4]) if line.strip()]
    if len(table) != 24:
        sys.exit("table: want 24 rotations, got %d" % len(table))
    group = rot90_group(a)
    if len(group) != 24:
        sys.exit("numpy: rot90 compositions gave %d arrays, not 24 (input too symmetric?)" % len(group))
    matched = set()
    for r in range(24):
        key = np.ascontiguousarray(outs[r]).tobytes()
        if key not in group:
            sys.exit("rotation %d is none of numpy's rot90 compositions" % r)
        if key in matched:
            sys.exit("rotation %d repeats an earlier one" % r)
        matched.add(key)
        perm, sign = table[r][:3], table[r][3:]
        if sorted(perm) != [0, 1, 2] or any(v not in (-1, 1) for v in sign):
            sys.exit("rotation %d: bad table line %s" % (r, table[r]))
        if not np.array_equal(outs[r], by_definition(a, perm, sign)):
            sys.exit("rotation %d differs from its definition (perm %s, sign %s)" % (r, perm, sign))
        if not np.array_equal(outs[24 + r], np.flip(outs[r], axis=2)):
            sys.exit("mirrored rotation %d is not np.flip(rotation %d, x)" % (r, r))
        if np.ascontiguousarray(outs[24 + r]).tobytes() in group:
            sys.exit("mirrored rotation %d is a proper rotation" % r)
    if not np.array_equal(outs[0], a):
        sys.exit("rotation 0 is not the identity")
    # every signed permutation of determinant +1 appears once
    dets = set()
    for perm, sign in ((t[:3], t[3:]) for t in table):
        m = np.zeros((3, 3), int)
        for d in range(3):
            m[d, perm[d]] = sign[d]
        if round(np.linalg.det(m)) != 1:
            sys.exit("perm %s sign %s has determinant %g" % (perm, sign, np.linalg.det(m)))
        dets.add(m.tobytes())
    if len(dets) != 24:
        sys.exit("the table repeats a rotation")
    print("cuberot: 24 rotations = numpy rot90 compositions, definition and mirrors match")


if __name__ == "__main__":
    main()
