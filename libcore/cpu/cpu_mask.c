/* cpu_mask.c — the CPU backend's token-mask ops (the reference; backend_impl.h): the masked
 * context input and the MAE target rows, both plain copies, the JEPA predictor's mask-token
 * rows (forward and backward), and the collapse statistics of the JEPA/MAE trainers, summed
 * in the order the trainer always summed them (so a trainer on the CPU logs the same bits it
 * did when the statistics were computed on the host). */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

int cpu_mask_patches(struct cryo_nn_ctx *ctx, float *out, const float *in, const float *rowmask, int n, int d,
                     int h, int w, int C, int p, struct cryo_error *err)
{
    size_t gd = (size_t)(d / p), gh = (size_t)(h / p), gw = (size_t)(w / p), row = (size_t)w * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++)
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++) {
                size_t base = (((size_t)s * (size_t)d + (size_t)z) * (size_t)h + (size_t)y) * row;
                size_t tok0 = (((size_t)s * gd + (size_t)z / (size_t)p) * gh + (size_t)y / (size_t)p) * gw;
                for (int x = 0; x < w; x++) {
                    size_t v = base + (size_t)x * (size_t)C;
                    if (rowmask[tok0 + (size_t)x / (size_t)p] != 0.0f)
                        memset(out + v, 0, (size_t)C * sizeof(float));
                    else if (out != in)
                        memcpy(out + v, in + v, (size_t)C * sizeof(float));
                }
            }
    return CRYO_OK;
}

/* z[t,:] = token + pos[t,:] on the masked rows: one float add per element, the same bits as
 * the copy of the token followed by an accumulate of pos that the predictor did before */
int cpu_mask_rows(struct cryo_nn_ctx *ctx, float *z, const float *rowmask, const float *token, const float *pos,
                  int64_t T, int E, struct cryo_error *err)
{
    size_t n = (size_t)E;
#pragma omp parallel for schedule(static) if (T > 4096)
    for (int64_t t = 0; t < T; t++)
        if (rowmask[t] != 0.0f) {
            float *r = z + (size_t)t * n;
            const float *q = pos + (size_t)t * n;
            for (size_t i = 0; i < n; i++)
                r[i] = token[i] + q[i];
        }
    return CRYO_OK;
}

/* dtoken += the masked rows of g, row by row in increasing t (so each column is summed in
 * float in t order), each masked row then zeroed */
int cpu_mask_rows_backward(struct cryo_nn_ctx *ctx, float *dtoken, float *g, const float *rowmask, int64_t T, int E,
                           struct cryo_error *err)
{
    size_t n = (size_t)E;
    for (int64_t t = 0; t < T; t++)
        if (rowmask[t] != 0.0f) {
            float *r = g + (size_t)t * n;
            for (size_t i = 0; i < n; i++) {
                dtoken[i] += r[i];
                r[i] = 0.0f;
            }
        }
    return CRYO_OK;
}

int cpu_patchify(struct cryo_nn_ctx *ctx, float *out, const float *in, int n, int d, int h, int w, int C, int p,
                 struct cryo_error *err)
{
    size_t P = (size_t)p, gd = (size_t)d / P, gh = (size_t)h / P, gw = (size_t)w / P, per = gd * gh * gw;
    size_t T = (size_t)n * per, W = P * P * P * (size_t)C;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < T; k++) {
        size_t s = k / per, r = k % per;
        size_t tz = r / (gh * gw), ty = r / gw % gh, tx = r % gw;
        float *o = out + k * W;
        for (size_t a = 0; a < P; a++)
            for (size_t b = 0; b < P; b++) {
                /* p voxels along x of the patch, C channels each: contiguous in the input */
                size_t v = (((s * (size_t)d + tz * P + a) * (size_t)h + ty * P + b) * (size_t)w + tx * P) * (size_t)C;
                memcpy(o + (a * P + b) * P * (size_t)C, in + v, P * (size_t)C * sizeof(float));
            }
    }
    return CRYO_OK;
}

/* Per row: mean and 1/sqrt(var + 1e-5) in double, two passes in column order (F.layer_norm's
 * definition); then per (sample, channel) the sums of the rounded normalised values and of
 * their squares, rows in order, and from them that column's mean and standard deviation; then
 * the sums over channels and samples, channel-major. Scratch: 2 doubles per row and per
 * (sample, channel). */
int cpu_collapse_stats(struct cryo_nn_ctx *ctx, double *tokens, double *samples, const float *x, int n, size_t per,
                       int F, struct cryo_error *err)
{
    size_t T = (size_t)n * per, E = (size_t)F, nE = (size_t)n * E;
    double *mu = (double *)cpu_red_scratch(ctx, (2 * T + 2 * nE) * sizeof(double), err);
    if (!mu)
        return CRYO_E_NOMEM;
    double *rs = mu + T, *mean = rs + T, *sd = mean + nE;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < T; k++) {
        const float *r = x + k * E;
        double m = 0, var = 0;
        for (size_t i = 0; i < E; i++)
            m += r[i];
        m /= (double)E;
        for (size_t i = 0; i < E; i++)
            var += (r[i] - m) * (r[i] - m);
        mu[k] = m;
        rs[k] = 1.0 / sqrt(var / (double)E + 1e-5);
    }
#pragma omp parallel for schedule(static)
    for (int s = 0; s < n; s++) {
        double *a = mean + (size_t)s * E, *q = sd + (size_t)s * E; /* the sums first */
        for (size_t i = 0; i < E; i++)
            a[i] = q[i] = 0;
        for (size_t k = (size_t)s * per; k < (size_t)(s + 1) * per; k++)
            for (size_t i = 0; i < E; i++) {
                double v = (float)((x[k * E + i] - mu[k]) * rs[k]);
                a[i] += v;
                q[i] += v * v;
            }
        for (size_t i = 0; i < E; i++) {
            double m = a[i] / (double)per, var = q[i] / (double)per - m * m;
            a[i] = m;
            q[i] = sqrt(var > 0 ? var : 0);
        }
    }
    double tok = 0, smp = 0;
    for (size_t i = 0; i < E; i++) {
        double gsum = 0, gsq = 0;
        for (int s = 0; s < n; s++) {
            double m = mean[(size_t)s * E + i];
            tok += sd[(size_t)s * E + i];
            gsum += m;
            gsq += m * m;
        }
        double gm = gsum / n, gv = gsq / n - gm * gm;
        smp += n > 1 ? sqrt(gv > 0 ? gv : 0) : 0;
    }
    *tokens = tok / ((double)E * n);
    *samples = smp / (double)E;
    return CRYO_OK;
}
