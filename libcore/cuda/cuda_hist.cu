/* cuda_hist.cu — the HistKL loss on the GPU (nn_train.h's cryo_nn_histkl_loss). The
 * reference is cryo_histkl_loss (libcore/hist.c): the same bins, kernel span (CUTOFF·σ),
 * formulas and order of operations per term, so the loss agrees to ~1e-15 relative and the
 * gradient to float rounding.
 *
 * 1. k_hist, once for the prediction and once for the target: each value adds its kernel
 *    exp(−½((x − c_j)/σ)²) to the bins within CUTOFF·σ, in double: into a per-block
 *    histogram in shared memory (bins <= HIST_SHARED_MAX), flushed into the global one with
 *    one double atomicAdd per nonzero bin, else straight into the global one. Every term and
 *    partial is a double, so for n ≈ 10⁶ values × ~20 bins each the sums differ from the
 *    CPU's (another order) by ~1e-16 relative. A non-finite value raises a flag (hist.c's
 *    NaN/Inf error).
 * 2. The two histograms (2·bins doubles) and the flags come down; the host normalises them,
 *    forms the JS divergence and g_j = (∂D/∂p_j − Σ_k p_k ∂D/∂p_k)/H exactly as hist.c does
 *    and sends g (bins doubles) up: nothing of size n crosses the bus.
 * 3. k_histgrad: per value, Σ_j g_j·k_ij·(c_j − x_i)/σ² over the same span, scaled and added
 *    to grad.
 * The plugin cannot call libcore (cuda_priv.h), so the few host lines of step 2 repeat
 * hist.c's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_priv.h"

#define CUTOFF 8.0           /* hist.c's */
#define HPER 256             /* threads per block */
#define HIST_SHARED_MAX 4096 /* bins of a per-block shared histogram: 32 KiB of doubles */
#define HIST_MAX_BLOCKS 1024 /* grid-stride beyond: bounds the shared histograms' flushes */

struct hspec {
    int bins;
    double lo, sigma, w;
    double inv2s2_h;         /* 0.5/σ², as hist.c's soft histogram */
    double inv_s2, inv2s2_g; /* 1/σ² and 0.5·(1/σ²), as hist.c's gradient */
};

/* Bins [*j0, *j1) within CUTOFF·σ of a finite x (hist.c's kernel_span). */
__device__ static inline void kernel_span(const hspec &s, double x, int *j0, int *j1)
{
    double a = floor((x - CUTOFF * s.sigma - s.lo) / s.w - 0.5);
    double b = ceil((x + CUTOFF * s.sigma - s.lo) / s.w - 0.5) + 1;
    *j0 = a < 0 ? 0 : a > s.bins ? s.bins : (int)a;
    *j1 = b < 0 ? 0 : b > s.bins ? s.bins : (int)b;
}

__device__ static inline double bin_centre(const hspec &s, int j) { return s.lo + (j + 0.5) * s.w; }

/* hist[j] += Σ_i exp(−½((x_i − c_j)/σ)²); *bad |= 1 if some x_i is not finite.
 * `shared` (the same for every thread) selects the per-block shared histogram, whose
 * dynamic size is then bins doubles. */
__global__ void k_hist(const float *__restrict__ x, size_t n, hspec s, double *hist, unsigned int *bad,
                       int shared)
{
    extern __shared__ double sh[];
    double *h = shared ? sh : hist;
    if (shared) {
        for (int j = threadIdx.x; j < s.bins; j += blockDim.x)
            sh[j] = 0.0;
        __syncthreads();
    }
    int nonfinite = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double xi = x[i];
        if (!isfinite(xi)) {
            nonfinite = 1;
            continue;
        }
        int j0, j1;
        kernel_span(s, xi, &j0, &j1);
        for (int j = j0; j < j1; j++) {
            double d = xi - bin_centre(s, j);
            atomicAdd(&h[j], exp(-d * d * s.inv2s2_h));
        }
    }
    if (nonfinite)
        atomicOr(bad, 1u);
    if (shared) {
        __syncthreads();
        for (int j = threadIdx.x; j < s.bins; j += blockDim.x)
            if (sh[j] != 0.0)
                atomicAdd(&hist[j], sh[j]);
    }
}

/* grad[i] += (float)(gscale·(float)Σ_j g_j·k_ij·(c_j − x_i)/σ²), the sum as hist.c's. */
__global__ void k_histgrad(float *grad, const float *pred, size_t n, hspec s, const double *__restrict__ g,
                           double gscale)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double xi = pred[i], acc = 0;
        int j0, j1;
        kernel_span(s, xi, &j0, &j1);
        for (int j = j0; j < j1; j++) {
            double d = bin_centre(s, j) - xi;
            acc += g[j] * exp(-d * d * s.inv2s2_g) * d * s.inv_s2;
        }
        grad[i] += (float)(gscale * (double)(float)acc);
    }
}

/* hist.c's cryo_js_divergence, term by term. */
static double js_divergence(const double *p, const double *q, int bins)
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

/* Step 2 on the host: h (raw prediction histogram) becomes p, q (raw target histogram) is
 * normalised, g = ∂D/∂(raw h). Returns the loss in *loss, or an error as hist.c's. */
static int js_and_bin_gradient(double *loss, double *h, double *q, double *g, int B,
                               const struct cryo_hist_spec *spec, struct cryo_error *err)
{
    double tq = 0;
    for (int j = 0; j < B; j++)
        tq += q[j];
    if (!(tq > 0))
        return cu_fail(err, CRYO_E_NUMERIC, "no value lies within %g sigma of the histogram range [%g, %g]", CUTOFF,
                       spec->lo, spec->hi);
    for (int j = 0; j < B; j++)
        q[j] /= tq;
    double total = 0;
    for (int j = 0; j < B; j++)
        total += h[j];
    if (!(total > 0))
        return cu_fail(err, CRYO_E_NUMERIC, "no prediction lies within %g sigma of the histogram range", CUTOFF);
    double dot = 0;
    for (int j = 0; j < B; j++) {
        double p = h[j] / total, m = 0.5 * (p + q[j]);
        g[j] = p > 0 ? 0.5 * log(p / m) : 0;
        dot += p * g[j];
        h[j] = p;
    }
    *loss = js_divergence(h, q, B);
    for (int j = 0; j < B; j++)
        g[j] = (g[j] - dot) / total;
    return CRYO_OK;
}

int cu_histkl(struct cryo_nn_ctx *ctx, double *loss, float *grad, const float *pred, const float *target, size_t n,
              const struct cryo_hist_spec *spec, double gscale, struct cryo_error *err)
{
    const int B = spec->bins; /* 1 .. 2^20, checked by the caller */
    hspec s;
    s.bins = B;
    s.lo = spec->lo;
    s.sigma = spec->sigma;
    s.w = (spec->hi - spec->lo) / B;
    s.inv2s2_h = 0.5 / (spec->sigma * spec->sigma);
    s.inv_s2 = 1.0 / (spec->sigma * spec->sigma);
    s.inv2s2_g = 0.5 * s.inv_s2;

    /* device scratch: h[B], q[B], then the two flags (in a double's room) */
    const size_t hbytes = 2 * (size_t)B * sizeof(double), bytes = hbytes + sizeof(double);
    char *scr = (char *)cu_red_scratch(ctx, bytes, err);
    if (!scr)
        return CRYO_E_NOMEM; /* recorded by cu_red_scratch */
    double *dh = (double *)scr, *dq = dh + B;
    unsigned int *dflag = (unsigned int *)(scr + hbytes);
    CRYO_TRY(cu_check(cudaMemsetAsync(scr, 0, bytes, 0), "HistKL: zero the histograms", err));
    const int shared = B <= HIST_SHARED_MAX;
    const size_t shbytes = shared ? (size_t)B * sizeof(double) : 0;
    unsigned blocks = cu_blocks(n, HPER);
    if (blocks > HIST_MAX_BLOCKS)
        blocks = HIST_MAX_BLOCKS;
    k_hist<<<blocks, HPER, shbytes>>>(pred, n, s, dh, dflag, shared);
    k_hist<<<blocks, HPER, shbytes>>>(target, n, s, dq, dflag + 1, shared);
    CRYO_TRY(cu_launched("HistKL histograms", err));

    /* host: h[B], q[B] and the flags as on the device (one download), then g[B] */
    char *host = (char *)malloc(bytes + (size_t)B * sizeof(double));
    if (!host)
        return cu_fail(err, CRYO_E_NOMEM, "nn cuda: HistKL: out of host memory for %d bins", B);
    double *h = (double *)host, *q = h + B, *g = (double *)(host + bytes);
    int rc = cu_check(cudaMemcpy(host, scr, bytes, cudaMemcpyDeviceToHost), "HistKL: download the histograms", err);
    unsigned int flag[2] = {0, 0};
    if (rc == CRYO_OK)
        memcpy(flag, host + hbytes, sizeof flag);
    if (rc == CRYO_OK && (flag[0] || flag[1]))
        rc = cu_fail(err, CRYO_E_NUMERIC, "histogram input contains NaN or Inf");
    double d = 0;
    if (rc == CRYO_OK)
        rc = js_and_bin_gradient(&d, h, q, g, B, spec, err);
    if (rc == CRYO_OK && grad) { /* g replaces h on the device (the stream orders the reuse) */
        rc = cu_check(cudaMemcpy(dh, g, (size_t)B * sizeof(double), cudaMemcpyHostToDevice), "HistKL: upload the bin gradient",
                      err);
        if (rc == CRYO_OK) {
            k_histgrad<<<cu_blocks(n, HPER), HPER>>>(grad, pred, n, s, dh, gscale);
            rc = cu_launched("HistKL gradient", err);
        }
    }
    free(host);
    if (rc == CRYO_OK)
        *loss = d;
    return rc;
}
