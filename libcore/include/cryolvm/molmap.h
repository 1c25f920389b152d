/* molmap.h — simulated density of an atomic model, as UCSF Chimera's `molmap`.
 *
 * Each atom contributes a normalised 3D Gaussian weighted by its atomic number Z:
 *     rho(r) = Z * (2 pi)^(-3/2) * sigma^(-3) * exp(-|r - r_atom|^2 / (2 sigma^2))   [Å^-3]
 * so the integral of one atom's density is Z (molmap's normalisation: the sum of Gaussians
 * times (2 pi)^-1.5 sigma^-3). sigma = sigma_factor * resolution with molmap's default
 * sigma_factor = 1/(pi sqrt 2) ≈ 0.225, which puts the Fourier transform of the Gaussian at
 * 1/e of its peak at spatial frequency 1/resolution. Optionally each atom's B-factor widens
 * its Gaussian: sigma^2 += B / (8 pi^2) (the isotropic mean-square displacement).
 * Each Gaussian is evaluated only inside the box of +- cutoff sigma around the atom (per
 * axis, as molmap's cutoffRange; default 5), as a product of per-axis exponentials.
 *
 * Threads: the grid is cut into z slabs; atoms are bucketed by the slabs their boxes touch
 * and each thread owns whole slabs, so no two threads write the same voxel.
 *
 * Grid placement follows volume.h: voxel (i,j,k) centre at origin + (i,j,k)*apix.
 */
#ifndef CRYOLVM_MOLMAP_H
#define CRYOLVM_MOLMAP_H

#include "cryolvm/model.h"
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRYO_MOLMAP_SIGMA_FACTOR 0.22507907903927651 /* 1 / (pi * sqrt(2)) */
#define CRYO_MOLMAP_CUTOFF 5.0                        /* molmap's cutoffRange default */

struct cryo_molmap_opts {
    double resolution;   /* Å, > 0 */
    double sigma_factor; /* sigma = sigma_factor * resolution */
    double cutoff;       /* in sigma, > 0 */
    int use_bfactor;     /* 1: sigma^2 += B/(8 pi^2) per atom */
    int threads;         /* 0 = OpenMP default */
};
void cryo_molmap_opts_default(struct cryo_molmap_opts *o, double resolution);

/* Allocate a zeroed float32 volume on a box around the model: each face offset outward by
 * `pad` Å from the atom centres' bounding box, voxel size `apix` (molmap's gridSpacing and
 * edgePadding). CRYO_E_INVALID for apix <= 0, pad < 0 or an empty model; CRYO_E_NOMEM. */
int cryo_molmap_grid(struct cryo_volume *v, const struct cryo_model *m, double apix, double pad,
                     struct cryo_error *err);

/* Overwrite channel 0 of the float32 volume `v` (its shape, apix and origin are kept) with
 * the density of `m`. Atoms with unknown element (Z = 0) contribute nothing.
 * CRYO_E_INVALID (bad options, non-float32 volume), CRYO_E_NOMEM. */
int cryo_molmap_render(struct cryo_volume *v, const struct cryo_model *m,
                       const struct cryo_molmap_opts *o, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
