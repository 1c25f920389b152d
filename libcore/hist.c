/* hist.c — Gaussian-kernel soft histograms, JS/KL divergences and the HistKL loss gradient.
 *
 * Each value spreads exp(−½((x − c_j)/σ)²) over the bins; only bins within CUTOFF·σ of x
 * get a term (below exp(−½·8²) ≈ 1e-14 the rest cannot change a double sum). Per-thread
 * partial histograms avoid atomics. The loss gradient follows from
 *   p_j = h_j / H,  h_j = (1/N) Σ_i k_ij,  H = Σ_j h_j,
 *   ∂D/∂p_j = ½ log(p_j / m_j)            (the q-terms' derivative cancels to this),
 *   ∂p_j/∂h_l = (δ_jl − p_j) / H,
 *   ∂D/∂x_i = (1/N) Σ_l g_l · k_il · (c_l − x_i)/σ²,  g_l = (∂D/∂p_l − Σ_j p_j ∂D/∂p_j) / H.
 */
#include "cryolvm/hist.h"
#include "cryolvm/mem.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define CUTOFF 8.0

int cryo_hist_spec_check(const struct cryo_hist_spec *s, struct cryo_error *err)
{
    if (s->bins < 1 || s->bins > 1 << 20)
        return cryo_fail(err, CRYO_E_INVALID, "histogram needs 1 to 1048576 bins, not %d", s->bins);
    if (!(isfinite(s->lo) && isfinite(s->hi) && s->hi > s->lo))
        return cryo_fail(err, CRYO_E_INVALID, "histogram range [%g, %g] is empty", s->lo, s->hi);
    if (!(isfinite(s->sigma) && s->sigma > 0))
        return cryo_fail(err, CRYO_E_INVALID, "histogram kernel sigma must be > 0, not %g", s->sigma);
    return CRYO_OK;
}

static double bin_width(const struct cryo_hist_spec *s) { return (s->hi - s->lo) / s->bins; }
static double bin_centre(const struct cryo_hist_spec *s, int j) { return s->lo + (j + 0.5) * bin_width(s); }

/* Bins [*j0, *j1) within CUTOFF·σ of x. */
static void kernel_span(const struct cryo_hist_spec *s, double x, int *j0, int *j1)
{
    double w = bin_width(s);
    double a = floor((x - CUTOFF * s->sigma - s->lo) / w - 0.5);
    double b = ceil((x + CUTOFF * s->sigma - s->lo) / w - 0.5) + 1;
    *j0 = a < 0 ? 0 : a > s->bins ? s->bins : (int)a;
    *j1 = b < 0 ? 0 : b > s->bins ? s->bins : (int)b;
}

/* Unnormalised h (length bins) = Σ_i k_ij over unmasked values; *count = number used. */
static int soft_hist_raw(double *h, const float *x, size_t n, const float *mask,
                         const struct cryo_hist_spec *s, double *count, struct cryo_error *err)
{
    int bins = s->bins, nthreads = omp_get_max_threads();
    double *part = cryo_alloc_array((size_t)nthreads * (size_t)bins, sizeof *part, err);
    if (!part)
        return CRYO_E_NOMEM;
    double used = 0;
    int bad = 0;
    double inv2s2 = 0.5 / (s->sigma * s->sigma);
    #pragma omp parallel reduction(+ : used) reduction(| : bad)
    {
        double *mine = part + (size_t)omp_get_thread_num() * (size_t)bins;
        #pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            if (mask && mask[i] == 0)
                continue;
            double xi = x[i];
            if (!isfinite(xi)) {
                bad = 1;
                continue;
            }
            used += 1;
            int j0, j1;
            kernel_span(s, xi, &j0, &j1);
            for (int j = j0; j < j1; j++) {
                double d = xi - bin_centre(s, j);
                mine[j] += exp(-d * d * inv2s2);
            }
        }
    }
    if (bad) {
        free(part);
        return cryo_fail(err, CRYO_E_NUMERIC, "histogram input contains NaN or Inf");
    }
    memset(h, 0, (size_t)bins * sizeof *h);
    for (int t = 0; t < nthreads; t++)
        for (int j = 0; j < bins; j++)
            h[j] += part[(size_t)t * (size_t)bins + (size_t)j];
    free(part);
    *count = used;
    if (used == 0)
        return cryo_fail(err, CRYO_E_INVALID, "histogram of no values (empty input or mask)");
    return CRYO_OK;
}

int cryo_soft_hist(double *p, const float *x, size_t n, const float *mask,
                   const struct cryo_hist_spec *spec, struct cryo_error *err)
{
    CRYO_TRY(cryo_hist_spec_check(spec, err));
    double count;
    CRYO_TRY(soft_hist_raw(p, x, n, mask, spec, &count, err));
    double total = 0;
    for (int j = 0; j < spec->bins; j++)
        total += p[j];
    if (!(total > 0))
        return cryo_fail(err, CRYO_E_NUMERIC,
                         "no value lies within %g sigma of the histogram range [%g, %g]", CUTOFF,
                         spec->lo, spec->hi);
    for (int j = 0; j < spec->bins; j++)
        p[j] /= total;
    return CRYO_OK;
}

double cryo_kl_divergence(const double *p, const double *q, int bins)
{
    double d = 0;
    for (int j = 0; j < bins; j++) {
        if (p[j] <= 0)
            continue;
        if (q[j] <= 0)
            return INFINITY;
        d += p[j] * log(p[j] / q[j]);
    }
    return d;
}

double cryo_js_divergence(const double *p, const double *q, int bins)
{
    double d = 0;
    for (int j = 0; j < bins; j++) {
        double m = 0.5 * (p[j] + q[j]);
        if (p[j] > 0)
            d += 0.5 * p[j] * log(p[j] / m);
        if (q[j] > 0)
            d += 0.5 * q[j] * log(q[j] / m);
    }
    return d;
}

int cryo_histkl_loss(double *loss, float *grad, const float *pred, const float *target, size_t n,
                     const struct cryo_hist_spec *spec, struct cryo_error *err)
{
    CRYO_TRY(cryo_hist_spec_check(spec, err));
    int bins = spec->bins;
    double *buf = cryo_alloc_array(3 * (size_t)bins, sizeof *buf, err);
    if (!buf)
        return CRYO_E_NOMEM;
    double *h = buf, *q = buf + bins, *g = buf + 2 * bins;
    double count;
    int s = soft_hist_raw(h, pred, n, NULL, spec, &count, err);
    if (s == 0)
        s = cryo_soft_hist(q, target, n, NULL, spec, err);
    double total = 0;
    for (int j = 0; s == 0 && j < bins; j++)
        total += h[j];
    if (s == 0 && !(total > 0))
        s = cryo_fail(err, CRYO_E_NUMERIC, "no prediction lies within %g sigma of the histogram range",
                      CUTOFF);
    if (s < 0) {
        free(buf);
        return s;
    }
    /* p = h / total; dD/dp_j = ½ log(p_j/m_j) (0 where p_j = 0). */
    double dot = 0;
    for (int j = 0; j < bins; j++) {
        double p = h[j] / total, m = 0.5 * (p + q[j]);
        g[j] = p > 0 ? 0.5 * log(p / m) : 0;
        dot += p * g[j];
        h[j] = p;
    }
    *loss = cryo_js_divergence(h, q, bins);
    if (grad) {
        for (int j = 0; j < bins; j++)
            g[j] = (g[j] - dot) / total; /* ∂D/∂(unnormalised h_j) */
        double inv_s2 = 1.0 / (spec->sigma * spec->sigma), inv2s2 = 0.5 * inv_s2;
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            double xi = pred[i], acc = 0;
            int j0, j1;
            kernel_span(spec, xi, &j0, &j1);
            for (int j = j0; j < j1; j++) {
                double d = bin_centre(spec, j) - xi;
                acc += g[j] * exp(-d * d * inv2s2) * d * inv_s2;
            }
            grad[i] = (float)acc;
        }
    }
    free(buf);
    return CRYO_OK;
}
