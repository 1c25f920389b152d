/* hist.h — Gaussian-kernel soft histograms and their divergences (hist-compare, HistKL loss).
 *
 * Definition (the CryoLVM HistKL term): for values x_1..x_N and bin centres
 *   c_j = lo + (j + 1/2)(hi − lo)/bins,  j = 0..bins−1,
 *   h(x)_j = (1/N) Σ_i exp(−½((x_i − c_j)/σ)²),  then p_j = h_j / Σ_k h_k  (sums to 1).
 * D_JS(p‖q) = ½ KL(p‖m) + ½ KL(q‖m), m = (p+q)/2, natural logarithm, terms with p_j = 0
 * contribute 0. KL(p‖q) = Σ p_j log(p_j/q_j) (infinite if some q_j = 0 < p_j; reported as
 * +Inf). Only values inside [lo − cutoff·σ, hi + cutoff·σ] contribute measurably; the
 * implementation may skip kernel terms below exp(−½·cutoff²) with cutoff ≥ 6.
 *
 * The same code serves hist-compare and the training loss (with gradient), so the numbers a
 * user sees are the numbers the model was trained on.
 */
#ifndef CRYOLVM_HIST_H
#define CRYOLVM_HIST_H

#include <stddef.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_hist_spec {
    int bins;      /* > 0 */
    double lo, hi; /* range of bin centres' span, hi > lo */
    double sigma;  /* kernel width, > 0 */
};

/* CRYO_E_INVALID naming the problem unless 1 <= bins <= 2^20, lo < hi (finite) and sigma > 0. */
int cryo_hist_spec_check(const struct cryo_hist_spec *spec, struct cryo_error *err);

/* p[bins] = normalised soft histogram of x[0..n) (mask: NULL, or weights/0-1 per value;
 * values with mask 0 are left out). CRYO_E_INVALID on bad spec or no (unmasked) values,
 * CRYO_E_NUMERIC on NaN/Inf input or all-zero kernel mass (values far outside the range). */
int cryo_soft_hist(double *p, const float *x, size_t n, const float *mask,
                   const struct cryo_hist_spec *spec, struct cryo_error *err);

double cryo_js_divergence(const double *p, const double *q, int bins);
double cryo_kl_divergence(const double *p, const double *q, int bins);

/* HistKL loss for training: *loss = D_JS(hist(pred) ‖ hist(target)); if grad is not NULL,
 * grad[i] = ∂loss/∂pred[i] (float, n values). The target histogram is treated as constant. */
int cryo_histkl_loss(double *loss, float *grad, const float *pred, const float *target, size_t n,
                     const struct cryo_hist_spec *spec, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
