/* normalize.h — exact quantiles and the density normalisations of mrc-normalize.
 *
 * Quantiles follow numpy.quantile's default ('linear', Hyndman & Fan type 7): for sorted
 * values x[0..n-1] and probability p, h = (n-1) p, q = x[floor h] + (h - floor h)(x[floor h + 1]
 * - x[floor h]), computed in double. They are exact order statistics found without sorting
 * (two radix-histogram passes over the data, see quantile.c).
 *
 * Normalisations map every voxel by one affine y = scale x + offset per channel:
 *   QUANTILE (CryoLVM's pre-processing, the default): qlo, qhi = quantiles at probabilities
 *            (lo, hi) (default 0.01, 0.99); scale = 1/(qhi - qlo), offset = -qlo scale, then
 *            y is clipped to [0, 1].
 *   ZSCORE   scale = 1/std, offset = -mean/std (population std, numpy's default ddof = 0);
 *            no clipping.
 * Statistics come from the voxels where the mask is > 0.5 when a mask is given (same grid),
 * else from all voxels. The inverse x = (y - offset)/scale restores densities except where
 * the quantile mode clipped them.
 *
 * Errors: CRYO_E_NUMERIC for NaN/Inf input (naming the voxel) or a flat map (qhi == qlo,
 * std == 0); CRYO_E_INVALID for bad probabilities, an empty mask or a mask on another grid;
 * CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_NORMALIZE_H
#define CRYOLVM_NORMALIZE_H

#include <stddef.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = quantile of values[0..n-1] at probability probs[i] (0 <= p <= 1), i < k.
 * values is not modified. CRYO_E_NUMERIC if a value is NaN or Inf (naming its index), CRYO_E_INVALID
 * if n == 0 or a probability is outside [0, 1]. */
int cryo_quantiles(const float *values, size_t n, const double *probs, size_t k, double *out,
                   struct cryo_error *err);

enum cryo_normalize_mode { CRYO_NORMALIZE_QUANTILE = 0, CRYO_NORMALIZE_ZSCORE = 1 };

struct cryo_normalize_opts {
    enum cryo_normalize_mode mode;
    double lo, hi;                    /* quantile probabilities, 0 <= lo < hi <= 1 */
    const struct cryo_volume *mask;   /* NULL, or a one-channel volume on the same grid */
    const char *mask_name;            /* for messages */
};
void cryo_normalize_opts_default(struct cryo_normalize_opts *o);

/* The affine map of one channel (ch) of a float32 volume: y = scale x + offset. */
int cryo_normalize_fit(const struct cryo_volume *v, int64_t ch, const struct cryo_normalize_opts *o,
                       double *scale, double *offset, struct cryo_error *err);

/* Normalise every channel of a float32 volume in place and record in its metadata
 * normalize.mode ("quantile" or "zscore"), normalize.scale and normalize.offset (one value per
 * channel, comma-separated, %.17g), and for the quantile mode normalize.quantiles "lo,hi" and
 * normalize.clip "0,1". NaN/Inf input is refused naming the voxel (`what` names the data). */
int cryo_normalize_volume(struct cryo_volume *v, const struct cryo_normalize_opts *o, const char *what,
                          struct cryo_error *err);

/* Undo cryo_normalize_volume from the normalize.* metadata (removed afterwards).
 * CRYO_E_INVALID if the frame carries no or broken normalize.* keys. */
int cryo_normalize_invert(struct cryo_volume *v, const char *what, struct cryo_error *err);

/* Undo only the scale of cryo_normalize_volume: x = y / scale, so 0 stays 0 (for a network
 * output whose 0 means "no density", as lvm-apply's targets are molmaps; see lvm-apply(1)).
 * Same metadata rules and errors as cryo_normalize_invert. */
int cryo_normalize_unscale(struct cryo_volume *v, const char *what, struct cryo_error *err);


/* 0 if the mask (first channel) matches v's grid: same nx, ny, nz, voxel size within 1e-4
 * relative, origin within 1e-3 voxel; else CRYO_E_INVALID saying what differs. */
int cryo_normalize_check_mask(const struct cryo_volume *v, const struct cryo_volume *mask,
                              const char *mask_name, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
