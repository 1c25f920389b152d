/* fsc.h — Fourier shell correlation between two maps, with relion's masked-FSC correction.
 *
 * Shells. Spatial frequency of half-spectrum element (i, j, k), with j, k wrapped to
 * signed indices, is s = |(i/(nx ax), j/(ny ay), k/(nz az))| in 1/Å. Shells are 1 Fourier
 * pixel of the largest box edge wide: ds = 1/max(n_d a_d); element goes to shell
 * round(s/ds), and shells 0..floor(s_nyq/ds) are kept, s_nyq = min_d 1/(2 a_d) (Nyquist of
 * the coarsest axis; corners beyond are dropped). For a cubic box of N with cubic voxels
 * this is exactly relion's getFSC binning: shell = ROUND(sqrt(i²+j²+k²)), N/2+1 shells.
 * Shell q is reported at s_q = q·ds (1/Å) and d_q = 1/s_q (Å).
 * FSC_q = Σ Re(F1 F2*) / sqrt(Σ|F1|² Σ|F2|²) over every element of the full sphere (the
 * half spectrum with its Hermitian partners counted: weight 2 except the x = 0 and, for even
 * nx, x = nx/2 planes). relion sums the half spectrum with weight 1, which gives the x = 0
 * plane half of its due weight (differences up to ~0.015 in the lowest shells, a few 1e-3
 * beyond); opts.half_weights = 1 reproduces relion's sums for like-for-like comparison.
 *
 * Masked FSC (relion_postprocess, Chen et al. 2013 Ultramicroscopy 135:24): with a mask M,
 *   fsc          FSC(A, B) unmasked
 *   fsc_masked   FSC(M·A, M·B)
 *   randomize_at the first shell q ≥ 1 where the unmasked FSC < randomize_fsc (0.8), or the
 *                shell of a given resolution (relion: int(N a / d))
 *   fsc_rand     FSC(M·A', M·B') where A', B' have the phases of every element with
 *                s ≥ randomize_at·ds replaced by uniform random ones (amplitudes kept,
 *                Hermitian symmetry kept, so A' stays real)
 *   fsc_true     fsc_masked for q < randomize_at + 2, else (fsc_masked − fsc_rand)/(1 − fsc_rand)
 *                (relion moves the switch 2 shells out "because of small artefacts").
 * The random phases come from a counter-based generator of (seed, element), so a seed
 * gives the same maps whatever the thread count.
 *
 * Resolution at a threshold t (cryo_fsc_resolution): q* = the first shell q ≥ 1 with
 * FSC_q < t. relion_postprocess reports d_{q*−1} (the last shell before the drop; 999 Å if
 * q* = 1); we report that as `shell` and also the linear interpolation of the crossing in
 * s between shells q*−1 and q* as `interp`. When the curve never drops below t, both are
 * the Nyquist shell's d and `reached` is 0.
 *
 * Ownership: a struct cryo_fsc owns its arrays; cryo_fsc_free releases them.
 * Errors: CRYO_E_INVALID (shapes differ, not float32, more than one channel, bad voxel
 * size, mask of another shape), CRYO_E_NUMERIC (NaN/Inf in a map or the mask; the unmasked
 * FSC never drops below randomize_fsc, so there is nowhere to randomise from),
 * CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_FSC_H
#define CRYOLVM_FSC_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_fsc_opts {
    const struct cryo_volume *mask; /* NULL = unmasked only; else same grid, float32 */
    double randomize_fsc;           /* 0.8 (relion's --randomize_at_fsc) */
    double randomize_at_A;          /* > 0: randomise beyond this resolution instead, Å */
    uint64_t seed;                  /* phase randomisation */
    int half_weights;               /* 1 = relion's sums: stored half spectrum, weight 1 */
};
void cryo_fsc_opts_default(struct cryo_fsc_opts *o);

struct cryo_fsc {
    size_t nshell;
    double ds;            /* shell width, 1/Å */
    double *s;            /* [nshell] shell frequency q·ds, 1/Å */
    double *fsc;          /* [nshell] unmasked */
    int64_t *count;       /* [nshell] Fourier elements (full sphere) in the shell */
    /* only with a mask (else NULL): */
    double *fsc_masked, *fsc_rand, *fsc_true;
    int randomize_at;     /* shell, -1 without a mask */
};
void cryo_fsc_init(struct cryo_fsc *f);
void cryo_fsc_free(struct cryo_fsc *f);

/* FSC of a and b (same shape, float32, one channel; voxel size taken from a). */
int cryo_fsc_compute(struct cryo_fsc *f, const struct cryo_volume *a, const struct cryo_volume *b,
                     const struct cryo_fsc_opts *o, struct cryo_error *err);

/* Shell geometry of a grid: width ds (1/Å) and the number of shells. */
void cryo_fsc_shells(const struct cryo_volume *like, double *ds, size_t *nshell);

struct cryo_fsc_res {
    double interp;  /* Å, crossing interpolated linearly in s */
    double shell;   /* Å, relion's rule: last shell before the first one below t */
    int reached;    /* 0 if the curve never drops below t (both = Nyquist) */
    int shell_index;/* q*, the first shell below t (nshell if not reached) */
};
void cryo_fsc_resolution(const double *s, const double *fsc, size_t nshell, double t, struct cryo_fsc_res *r);

/* Replace the phases of v's Fourier elements with s >= s_from (1/Å) by random ones
 * (amplitudes and realness kept). In place; float32 one channel. */
int cryo_fsc_randomize_phases(struct cryo_volume *v, double s_from, uint64_t seed, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
