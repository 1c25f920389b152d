/* patch.h — crops for training, tiles for inference and their blended merge (vol-patch).
 *
 * A crop takes size[3] voxels (x, y, z) of every channel starting at voxel start[3] of the
 * source; parts outside the source are padded with zeros or by reflection (numpy 'reflect':
 * d c b | a b c d | c b a, repeated as needed). The crop keeps the voxel size and gets
 * origin = source origin + start * apix, so it overlays its source in Å, and carries:
 *   patch.origin         "i,j,k"  start voxel in the source (may be negative for tiles)
 *   patch.grid           "nx,ny,nz" of the source
 *   patch.index, patch.count   this crop's number and how many were made from the source
 *   patch.source_apix, patch.source_origin   "x,y,z" in Å (%.17g), to restore the geometry
 * and the source's metadata except mrc.* (MRC header facts) and older patch.* keys.
 *
 * Tiling: along each axis with n voxels, tile size s and stride t (t <= s), the margin
 * m = (s - t)/2 and ceil(n/t) tiles start at k t - m; the central t voxels of tile k cover
 * [k t, (k+1) t), so every voxel lies at least m voxels inside some tile. Tiles are numbered
 * x fastest.
 *
 * Merging: each tile is added with a separable weight w(i) w(j) w(k) over its voxels:
 *   GAUSSIAN  exp(-(i - c)^2 / (2 sigma^2)), c = (s-1)/2, sigma = s/8 (nnU-Net's choice)
 *   COSINE    sin^2(pi (i + 1/2) / s) (Hann window; > 0 at every voxel)
 *   MEAN      1
 * and the merged value is sum(w x)/sum(w) over the tiles covering a voxel; voxels outside the
 * source grid are dropped. So unchanged tiles merge back to the source to float rounding.
 *
 * Random crops: splitmix64 (Vigna 2015): state += 0x9E3779B97F4A7C15, output = mix(state) with
 * mix(z) = z' ^ (z' >> 31), z' the Stafford variant-13 finaliser. Frame f of a stream starts
 * from state = mix(seed + mix(f)). Each crop draws x, then y, then z:
 * start = floor(u (n - s + 1)) with u = (output >> 11) 2^-53.
 *
 * Errors: CRYO_E_INVALID (sizes, a crop larger than the source for random crops, tiles
 * without or with broken patch.* metadata, missing or duplicate tiles), CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_PATCH_H
#define CRYOLVM_PATCH_H

#include <stdint.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_pad_mode { CRYO_PAD_ZERO = 0, CRYO_PAD_REFLECT = 1 };
enum cryo_blend { CRYO_BLEND_GAUSSIAN = 0, CRYO_BLEND_COSINE = 1, CRYO_BLEND_MEAN = 2 };

/* Index into [0, n) that numpy's 'reflect' padding puts at position i (any integer). */
int64_t cryo_reflect_index(int64_t i, int64_t n);

/* out = crop of in (float32, any channels) at start[3] of size[3] (x, y, z), with the
 * metadata above (index/count as given). out must not be in. */
int cryo_patch_crop(struct cryo_volume *out, const struct cryo_volume *in, const int64_t start[3],
                    const int64_t size[3], enum cryo_pad_mode pad, int64_t index, int64_t count,
                    struct cryo_error *err);

struct cryo_tiling {
    int64_t n[3], size[3], stride[3], margin[3], count[3];
};
/* Plan the tiles for a source of shape n[3]; CRYO_E_INVALID unless 1 <= stride <= size. */
int cryo_tiling_plan(struct cryo_tiling *t, const int64_t n[3], const int64_t size[3], const int64_t stride[3],
                     struct cryo_error *err);
int64_t cryo_tiling_total(const struct cryo_tiling *t);
void cryo_tiling_start(const struct cryo_tiling *t, int64_t index, int64_t start[3]);

/* The random-crop generator. */
uint64_t cryo_patch_rng_seed(uint64_t seed, uint64_t frame);  /* initial state */
uint64_t cryo_patch_rng_next(uint64_t *state);
/* Draw a start for a size[3] crop in a source of shape n[3] (needs n >= size on every axis). */
void cryo_patch_random_start(uint64_t *state, const int64_t n[3], const int64_t size[3], int64_t start[3]);

/* Fraction of the voxels of channel ch that are > threshold. */
double cryo_patch_fraction_above(const struct cryo_volume *v, int64_t ch, double threshold);

/* w[size[0]*size[1]*size[2]] (x fastest) = the blending weight of a tile of that size. */
void cryo_blend_weights(float *w, const int64_t size[3], enum cryo_blend b);
/* The 1-D factor at i of s. */
double cryo_blend_weight1(int64_t i, int64_t s, enum cryo_blend b);

/* Accumulates the tiles of one source at a time. */
struct cryo_merger;
int cryo_merger_create(struct cryo_merger **m, enum cryo_blend b, struct cryo_error *err);
void cryo_merger_free(struct cryo_merger *m); /* NULL is a no-op */
/* Add one tile (float32, with patch.* metadata); *complete = 1 when all patch.count tiles of
 * the source are in, and the merged volume can be taken. `what` names the tile for messages. */
int cryo_merger_add(struct cryo_merger *m, const struct cryo_volume *tile, const char *what, int *complete,
                    struct cryo_error *err);
/* Number of tiles added to the source in progress (0 = none in progress). */
int64_t cryo_merger_pending(const struct cryo_merger *m, int64_t *count);
/* Move the merged volume (source geometry, tile metadata without patch.*) into out and
 * start afresh. CRYO_E_INVALID if tiles are missing. */
int cryo_merger_take(struct cryo_merger *m, struct cryo_volume *out, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
