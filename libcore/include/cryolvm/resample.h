/* resample.h — put a map on another grid (mrc-resample): new voxel size and/or new box.
 *
 * Geometry (volume.h convention: origin = Å position of the centre of voxel (0,0,0)).
 * Resampling keeps the physical box: along each axis the n voxels of size a cover
 * [o - a/2, o - a/2 + n a), and the n' new voxels of size a' start at the same edge, so
 *     o' = o - a/2 + a'/2,   voxel j' sits at input voxel coordinate u = (j' + 1/2) a'/a - 1/2
 * (the "align corners = false" rule of PyTorch and scipy's grid_mode). The output therefore
 * overlays the input (and its atomic model) in Å.
 *
 * Methods:
 *   FOURIER  crop or zero-pad the Fourier transform (r2c/c2r, FFTW single precision,
 *            threaded). Exact for band-limited maps. cryo_resample goes box to box: the new
 *            box is n' and the voxel size becomes a' = n a / n' (the extent n a is kept);
 *            for an exact voxel size or another grid, cryo_resample_to_grid pads the input
 *            first (below). The grid shift of a'/2 - a/2 above is applied
 *            as a Fourier phase ramp. The Nyquist plane of an even size is split in two halves
 *            (padding) or the two aliasing planes are summed (cropping), each after its own
 *            phase factor, so the result is real and a pad-then-crop returns the input. The
 *            transform is scaled so the mean density is kept.
 *   LINEAR   trilinear interpolation at the new voxel centres (separable, two taps per axis).
 *   CUBIC    Keys cubic convolution, a = -0.5 (separable, four taps per axis).
 *            Real-space methods take any a'; coordinates outside [0, n-1] clamp to the edge
 *            voxel. They do not low-pass: down-sampling with them aliases.
 *
 * Onto a grid (cryo_resample_to_grid: a voxel size and/or another map's box and origin):
 *   grid voxel j sits at input voxel coordinate u_j = (o_g + j a_g - o) / a. Voxels whose cell
 *   [u_j - s/2, u_j + s/2] (s = a_g / a) overlaps the input box [-1/2, n - 1/2) are data, the
 *   others take a fill value (cryo_resample_plan gives the data span, `first` and `keep`).
 *   FOURIER evaluates the trigonometric interpolant exactly on that grid: the input is padded
 *   at its high end to N >= n voxels so that M = N a / a_g is an integer (to a relative
 *   CRYO_RESAMPLE_APIX_TOL, float32's epsilon), the padded spectrum is cropped or zero-padded
 *   to M (the phase ramp puts sample 0 at u_first), and only the `keep` samples over the
 *   input's extent are transformed back. Among the N in [n, max(64, n + max(16, n/2))] that
 *   give an exact M, the cheapest is taken (cost N S(N) + M S(M), S = sum of prime factors, primes
 *   above 7 counted thrice: FFTW's fast codelets are for 2, 3, 5 and 7). The pad bridges the
 *   last voxel to the first with a linear ramp along each axis in turn (the periodic
 *   continuation the FFT sees is then continuous; measured against no pad, zero, edge-mean
 *   and mirror pads in bench/resample_fill.py: the least error of all, at half a Nyquist band
 *   0.081 of the signal's std in the three edge voxels and 0.0056 inside, against 0.113 and
 *   0.0104 for an edge-mean pad and 0.179 and 0.0142 unpadded). When no N in that range is
 *   exact (a ratio like 1.0 / 0.9999), the N in [n, n + max(16, n/8)] with the smallest residual
 *   |N a / M - a_g| / a_g is used, the voxel size written is N a / M and the residual is
 *   returned for the caller to report: the voxel size is never silently different.
 *   LINEAR/CUBIC interpolate at u_j (clamped to the edge voxels) and are always exact.
 *
 * Box change (cryo_volume_crop_pad): about the centre voxel, input voxel i goes to output
 * i - (n/2) + (n'/2) (integer halves, relion's centre), so the origin moves by
 * (n/2 - n'/2) voxels; new voxels take a fill value.
 *
 * Every function works on all channels of a float32 volume, keeps the metadata except mrc.*
 * (the MRC header facts no longer apply) and returns CRYO_E_INVALID for a non-float32 or
 * empty volume or bad sizes, CRYO_E_NOMEM, CRYO_E_UNSUPPORTED for sizes FFTW cannot take.
 */
#ifndef CRYOLVM_RESAMPLE_H
#define CRYOLVM_RESAMPLE_H

#include <stdint.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_resample_method {
    CRYO_RESAMPLE_FOURIER = 0,
    CRYO_RESAMPLE_LINEAR = 1,
    CRYO_RESAMPLE_CUBIC = 2
};

/* "fourier", "linear", "cubic" <-> enum; -1 for an unknown name. */
int cryo_resample_method_from_name(const char *name);

/* n' = max(1, round(n * apix / apix_new)) per axis (x, y, z). CRYO_E_INVALID if a size would
 * exceed 2^30 or an apix is not > 0. */
int cryo_resample_box_for_apix(const struct cryo_volume *v, const double apix_new[3], int64_t box[3],
                               struct cryo_error *err);

/* A grid in space: box (x, y, z) in voxels, voxel size and origin in Å (volume.h convention). */
struct cryo_grid {
    int64_t n[3];
    double apix[3];
    double origin[3];
};

/* Relative difference below which a voxel size counts as the one asked (float32's epsilon:
 * MRC headers hold the cell in float32). */
#define CRYO_RESAMPLE_APIX_TOL 1.2e-7

/* The grid of voxel size apix_new over v's box (the rule above): n' = max(1, round(n a / a')),
 * o' = o - a/2 + a'/2. CRYO_E_INVALID as cryo_resample_box_for_apix. */
int cryo_resample_grid_for_apix(const struct cryo_volume *v, const double apix_new[3], struct cryo_grid *g,
                                struct cryo_error *err);

/* How cryo_resample_to_grid meets a grid along one axis. */
struct cryo_resample_axis {
    int64_t first, keep; /* grid voxels [first, first + keep) are data; the rest are fill */
    double shift;        /* input voxel coordinate of grid voxel `first` */
    /* FOURIER only (0 for the real-space methods): */
    int64_t pad;         /* N: the input is padded at its high end to N voxels */
    int64_t fft;         /* M: size of the output transform; M = N a / a_g when exact */
    double apix;         /* voxel size obtained (N a / M; a_g for the real-space methods) */
    double residual;     /* |apix - a_g| / a_g */
    int exact;           /* residual <= CRYO_RESAMPLE_APIX_TOL */
};

/* The plan for in -> g by `method` along x, y, z (pure arithmetic, no data touched).
 * CRYO_E_INVALID for voxel sizes not > 0, a grid that does not overlap the input's box, or
 * sizes beyond 2^30. */
int cryo_resample_plan(const struct cryo_volume *in, const struct cryo_grid *g, enum cryo_resample_method method,
                       struct cryo_resample_axis ax[3], struct cryo_error *err);

/* Plans and buffers for Fourier resampling between two shapes, reused across frames of the
 * same shapes (FFTW plans are made once, FFTW_ESTIMATE, threads = omp_get_max_threads()).
 * Owned by the caller: create, use, free. Not for concurrent use from several threads. */
struct cryo_resampler;
int cryo_resampler_create(struct cryo_resampler **r, struct cryo_error *err);
void cryo_resampler_free(struct cryo_resampler *r); /* NULL is a no-op */

/* out = in resampled to box[3] (x, y, z) by `method`.
 * FOURIER: apix_new is ignored (NULL allowed): a' = n a / n'.
 * LINEAR/CUBIC: apix_new[3] is the exact new voxel size (NULL = n a / n' as for FOURIER).
 * `r` may be NULL for the real-space methods (and for FOURIER, at the cost of new plans).
 * out must not be in; it is replaced. */
int cryo_resample(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                  const double *apix_new, enum cryo_resample_method method, struct cryo_resampler *r,
                  struct cryo_error *err);

/* out = in on grid g by `method` (see "Onto a grid" above); voxels off the input's box are
 * `fill`. The voxel size written is g's along every exact axis and the one obtained along
 * the others; the origin is that of g's voxel `first` minus `first` voxels. `ax` (NULL
 * allowed) receives the plan, so the caller can report an inexact axis. `r` as for
 * cryo_resample. out must not be in; it is replaced. */
int cryo_resample_to_grid(struct cryo_volume *out, const struct cryo_volume *in, const struct cryo_grid *g,
                          enum cryo_resample_method method, double fill, struct cryo_resampler *r,
                          struct cryo_resample_axis ax[3], struct cryo_error *err);

/* out = in cropped or padded to box[3] (x, y, z) about the centre (see above), new voxels
 * = fill. float32 only. out must not be in. */
int cryo_volume_crop_pad(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                         double fill, struct cryo_error *err);

/* Keys cubic convolution kernel, a = -0.5 (exposed for tests). */
double cryo_keys_cubic(double t);

#ifdef __cplusplus
}
#endif
#endif
