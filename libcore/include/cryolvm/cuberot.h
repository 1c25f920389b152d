/* cuberot.h — the 24 proper rotations of a cube of voxels, and its mirror (augmentation).
 *
 * A rotation is a signed permutation of the axes with determinant +1: in coordinates
 * centred on the cube, p = (x, y, z), the rotated cube holds at p the voxel of the input at
 * q with q[d] = sign[d] p[perm[d]]; on voxel indices 0..s-1 a sign of -1 reads s-1-i.
 * The 48 signed permutations split into 24 of determinant +1 (the rotation group of the cube,
 * isomorphic to S4) and 24 mirrors. Numbering: permutations in lexicographic order
 * (012, 021, 102, 120, 201, 210), within each the sign triples (+++, ++-, +-+, ...) with
 * x's sign slowest; those of determinant +1 are rotations 0..23, so 0 is the identity.
 * The mirror is x -> s-1-x, applied after the rotation.
 *
 * Volumes are cubes of s³ voxels with `channels` interleaved values per voxel, channel
 * fastest: element ((z s + y) s + x) channels + c, as the loader's crops.
 */
#ifndef CRYOLVM_CUBEROT_H
#define CRYOLVM_CUBEROT_H

#ifdef __cplusplus
extern "C" {
#endif

#define CRYO_CUBEROT_COUNT 24

/* perm[3] and sign[3] (+1/-1) of rotation r (0 <= r < 24). */
void cryo_cuberot_get(int r, int perm[3], int sign[3]);
/* The rotation c with apply(c) = apply(a) followed by apply(b): M_c = M_a M_b for the
 * matrices M with q = M p above. */
int cryo_cuberot_compose(int a, int b);
/* out = rotation r of in (mirrored in x after when mirror != 0). out must not be in. */
void cryo_cuberot_apply(float *out, const float *in, int s, int channels, int r, int mirror);

#ifdef __cplusplus
}
#endif
#endif
