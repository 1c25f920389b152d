/* mask.h — masks for masked FSC and lvm-apply --mask, as relion_mask_create makes them.
 *
 * The steps, in relion's order (src/mask.cpp autoMask, relion 3.1):
 *   1. optional low-pass of the map (relion's lowPassFilterMap: cut-off at Fourier shell
 *      round(L/R), L the box edge in Å, raised cosine from one shell below to one above);
 *   2. binary mask: voxels with value >= threshold; and/or the zone within R Å of any atom
 *      of a model (cryo_atom_mask, as EMReady's and Chimera's zone); both given: both must hold;
 *   3. extend by N: a voxel joins the mask when a mask voxel lies at distance < N; N < 0
 *      shrinks: a mask voxel leaves it when a non-mask voxel lies at distance < |N|;
 *   4. soft edge of width W: outside the mask, value 0.5 + 0.5 cos(pi d / W) where the
 *      distance d to the nearest mask voxel is < W, else 0; 1 inside.
 * Distances are Euclidean between voxel centres, measured here with an exact distance
 * transform (not relion's search of a cube around each voxel, which gives the same minima);
 * voxels beyond the box edge count as neither mask nor background, as in relion.
 *
 * Units: distances are in voxels of the finest axis ("voxels"; on the usual cubic grid
 * simply voxels). struct cryo_mask_grid carries each axis's spacing in those units
 * (apix[d] / min apix), so squared distances on a cubic grid are exact integers and
 * relion's strict comparisons (d < N) give exactly its result.
 *
 * Errors: CRYO_E_INVALID (bad sizes or options, non-float32 map), CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_MASK_H
#define CRYOLVM_MASK_H

#include <stdint.h>
#include "cryolvm/model.h"
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_mask_grid {
    int64_t nx, ny, nz;
    double spacing[3]; /* x, y, z: voxel size in units of the finest axis (1 on a cubic grid) */
};
/* The grid of a volume; returns the finest voxel size in Å (the unit of distances). */
double cryo_mask_grid_of(const struct cryo_volume *v, struct cryo_mask_grid *g);

/* Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher, 2012):
 * d2[i] = squared distance (grid units) from voxel i to the nearest voxel with fg != 0,
 * 0 on those, +INFINITY when fg is empty. fg and d2 hold nx*ny*nz values, x fastest. */
int cryo_mask_edt2(const uint8_t *fg, const struct cryo_mask_grid *g, float *d2, struct cryo_error *err);

/* bin[i] = 1 where v (float32, one channel) >= threshold, else 0. Returns the count. */
size_t cryo_mask_threshold(const struct cryo_volume *v, double threshold, uint8_t *bin);

/* Extend (n > 0) or shrink (n < 0) a binary mask in place by n voxels (strictly closer than
 * |n|, as relion's --extend_inimask). n = 0 does nothing. */
int cryo_mask_extend(uint8_t *bin, const struct cryo_mask_grid *g, double n, struct cryo_error *err);

/* out[i] = 1 in the mask, 0.5 + 0.5 cos(pi d / width) at distance d < width outside it, 0
 * beyond (relion's --width_soft_edge). width = 0 gives the binary mask as 0/1 floats. */
int cryo_mask_soft_edge(const uint8_t *bin, const struct cryo_mask_grid *g, double width, float *out,
                        struct cryo_error *err);

/* relion's lowPassFilterMap in place on a float32 volume: with L = the longest box edge in Å
 * and shell width 1/L, cut-off shell i = round(L / res); weight 1 below shell i-1, 0 above
 * shell i+1, raised cosine between. CRYO_E_INVALID when res is coarser than the box (i = 0). */
int cryo_mask_lowpass(struct cryo_volume *v, double res, struct cryo_error *err);

/* A length as the tools take it: "6" is 6 voxels, "4.5A" or "4.5Å" 4.5 Å. *value gets the
 * number, *angstrom 1 for Å. CRYO_E_INVALID ("WHAT: ...") for anything else or a non-finite
 * number. */
int cryo_mask_parse_length(const char *text, const char *what, double *value, int *angstrom,
                           struct cryo_error *err);

struct cryo_mask_opts {
    int use_threshold;                 /* 1: threshold the map */
    double threshold;
    double lowpass;                    /* Å before thresholding, 0 = off */
    const struct cryo_model *model;    /* NULL = no zone */
    double zone;                       /* Å around each atom, > 0 with a model */
    double extend;                     /* voxels (finest axis), < 0 shrinks, 0 = off */
    double soft_edge;                  /* voxels (finest axis), 0 = hard edge */
    int invert;                        /* 1: 1 - mask at the end (relion's --invert) */
};
void cryo_mask_opts_default(struct cryo_mask_opts *o);

/* The whole recipe: `out` (freed first) becomes a float32 mask on the grid of `map` (its
 * shape, apix, origin; no metadata). `map` is float32, one channel; it is read only (the
 * low-pass works on a copy) and needs finite data when thresholded. *n_binary (may be NULL)
 * receives the voxels of the binary mask after extension. */
int cryo_mask_make(struct cryo_volume *out, const struct cryo_volume *map, const struct cryo_mask_opts *o,
                   size_t *n_binary, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
