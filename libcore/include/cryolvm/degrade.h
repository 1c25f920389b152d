/* degrade.h — make the degraded inputs a map-repair model learns from (vol-degrade).
 *
 * Each effect works in place on every channel of a float32 volume and is usable alone;
 * cryo_degrade_apply() runs the enabled ones in this fixed, documented order:
 *   1. local resolution  (--local-res LO,HI) spatially varying low-pass, smoothly blended
 *   2. B-factor          (--bfactor B)       F(s) *= exp(-B s^2 / 4), s = |k| in 1/Å
 *   3. low-pass          (--lowpass R)       raised-cosine edge around 1/R
 *   4. binning           (--bin N)           N^3 block means, trilinear back onto the grid
 *   5. noise             (--snr S)           Gaussian noise with var(signal)/var(noise) = S,
 *                                            white, or shaped per Fourier shell like the
 *                                            clean map's spectrum (--noise-shape shell)
 *   6. sharpening        (--sharpen B,R)     post-processing as deposited maps have it:
 *                                            F(s) *= exp(+B s^2 / 4) on signal and noise
 *                                            alike, then the low-pass of 3 at R
 *   7. missing wedge     (--wedge A)         zero Fourier coefficients outside the tilt
 *                                            range +-A (IsoNet's definition), or a cone
 * Blur comes first, then the sampling loss, then noise at the final sampling, then the
 * sharpening a user applies to the reconstruction (relion_postprocess: a negative B-factor
 * and a low-pass at the resolution, which amplify the noise with the signal), and the
 * acquisition geometry (wedge) last because it removes signal and noise alike.
 *
 * Fourier geometry: coefficient (i,j,k) has frequency k = (i/(nx ax), j'/(ny ay), k'/(nz az))
 * with j', k' the signed indices, so non-cubic boxes and voxels are handled physically.
 * Shells are rings of width ds = 1 / max(n_d a_d).
 *
 * Randomness: a counter-based generator keyed by (seed, frame, stream) so output depends
 * only on the seed and the volume, never on thread count.
 *
 * Errors: CRYO_E_INVALID (bad parameters, non-float32 volume), CRYO_E_NUMERIC (NaN/Inf
 * input, or a flat map where an SNR is asked for), CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_DEGRADE_H
#define CRYOLVM_DEGRADE_H

#include <stdint.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_tilt_axis { CRYO_TILT_AXIS_X = 0, CRYO_TILT_AXIS_Y = 1 };

/* F *= exp(-B s^2 / 4): the Debye-Waller factor of the amplitude (B > 0 blurs). */
int cryo_degrade_bfactor(struct cryo_volume *v, double bfactor, struct cryo_error *err);

/* Low-pass at resolution `res` Å with a raised-cosine edge `edge` shells wide centred on
 * 1/res (relion's convention; edge 0 = hard cut at s <= 1/res). */
int cryo_degrade_lowpass(struct cryo_volume *v, double res, double edge, struct cryo_error *err);
/* The transfer value used by cryo_degrade_lowpass at frequency s (1/Å). */
double cryo_degrade_lowpass_weight(double s, double res, double edge_width_inv_a);

/* Missing wedge for single-axis tilt of +-max_tilt degrees about the x or y axis, beam
 * along z: a coefficient is kept iff the angle between its frequency vector, projected on
 * the plane normal to the tilt axis, and the plane of that axis is <= max_tilt, i.e.
 * |kz| <= tan(max_tilt) |k_perp| (IsoNet's mw2d; coefficients on the tilt axis are kept).
 * cone = 1: missing cone instead, |kz| <= tan(max_tilt) sqrt(kx^2 + ky^2).
 * Returns the kept fraction in *kept when non-NULL. */
int cryo_degrade_wedge(struct cryo_volume *v, double max_tilt_deg, enum cryo_tilt_axis axis, int cone,
                       double *kept, struct cryo_error *err);
/* 1 if frequency (kx,ky,kz) (any unit) is measured under that geometry. */
int cryo_degrade_wedge_keeps(double kx, double ky, double kz, double max_tilt_deg,
                             enum cryo_tilt_axis axis, int cone);

/* Down-sample by block means of factor^3 voxels (partial blocks at the far edges average
 * what they hold), then trilinear interpolation from the block centres back onto the
 * original grid (clamped at the edges). factor >= 1; 1 is a no-op. */
int cryo_degrade_bin(struct cryo_volume *v, int factor, struct cryo_error *err);

/* Add zero-mean Gaussian noise with var(v)/var(noise) = snr over each channel.
 * shape_like == NULL: white; else coloured so each Fourier shell's noise power is
 * proportional to shape_like's shell power (same shape as v; usually the clean map). */
int cryo_degrade_noise(struct cryo_volume *v, double snr, const struct cryo_volume *shape_like,
                       uint64_t seed, struct cryo_error *err);

/* Spatially varying resolution between lo and hi Å (lo < hi): a smooth random weight
 * field w in [0,1] (white noise blurred by a Gaussian of `scale` Å, min-max normalised)
 * blends the map low-passed at `levels` resolutions from lo (w = 0) to hi (w = 1),
 * linearly between neighbouring levels. If w_out is non-NULL it receives the weight
 * field (float32, one channel). */
int cryo_degrade_local_res(struct cryo_volume *v, double lo, double hi, double scale, int levels,
                           uint64_t seed, struct cryo_volume *w_out, struct cryo_error *err);

/* Gaussian random number from the counter-based generator: stream s, index i. */
double cryo_degrade_gauss(uint64_t seed, uint64_t s, uint64_t i);

struct cryo_degrade_opts {
    double local_lo, local_hi; /* 0 = off */
    double local_scale;        /* Å, default 20 */
    double bfactor;            /* 0 = off */
    double lowpass;            /* Å, 0 = off */
    double lowpass_edge;       /* shells, default 2 */
    int bin;                   /* 1 = off */
    double snr;                /* 0 = off */
    int noise_shell;           /* 1 = shell-shaped noise */
    double sharpen_b;          /* Å^2, > 0 sharpens after the noise; 0 = off */
    double sharpen_res;        /* Å, low-pass after that sharpening (needs sharpen_b) */
    double wedge;              /* max tilt in degrees, 0 = off */
    enum cryo_tilt_axis tilt_axis;
    int cone;
    uint64_t seed;
};
void cryo_degrade_opts_default(struct cryo_degrade_opts *o);

/* Apply the enabled effects in the order above to every channel of v (float32). */
int cryo_degrade_apply(struct cryo_volume *v, const struct cryo_degrade_opts *o, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
