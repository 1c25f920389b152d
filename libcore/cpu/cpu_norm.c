/* cpu_norm.c — LayerNorm over channels and FRN+TLU over space, on the CPU.
 *
 * LayerNorm: one token per iteration (C contiguous), two passes over the row for mean and
 * variance; the backward is llm.c's closed form:
 *   dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = dout·γ.
 * FRN (Singh & Krishnan 2020): ν² per (sample, channel) is a reduction over space, done
 * with per-thread partial sums over token ranges (C contiguous, so vectorised over C), in
 * float within blocks of CPU_RED_BLOCK voxels and in double across blocks (cpu.h); the
 * LayerNorm parameter gradients are summed the same way. With
 * r = rsqrt(ν² + ε), y = γ·x·r + β, out = max(y, τ) and g = dout·[y ≥ τ]:
 *   dx = γ·r·(g − r²·x·mean_s(g·x)),  dγ += r·Σ g·x,  dβ += Σ g,  dτ += Σ dout·[y < τ].
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cryolvm/mem.h"

int cpu_layernorm_forward(struct cryo_nn_ctx *ctx, float *out, float *mean, float *rstd,
                          const float *inp, const float *gamma, const float *beta, int64_t T,
                          int C, float eps, struct cryo_error *err)
{
#pragma omp parallel for schedule(static) if (T * C > (1 << 14))
    for (int64_t t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *y = out + (size_t)t * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= (float)C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        v /= (float)C;
        float r = 1.0f / sqrtf(v + eps);
#pragma omp simd
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * r * gamma[c] + beta[c];
        if (mean) {
            mean[t] = m;
            rstd[t] = r;
        }
    }
    return CRYO_OK;
}

int cpu_layernorm_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                           const float *dout, const float *inp, const float *gamma,
                           const float *mean, const float *rstd, int64_t T, int C,
                           struct cryo_error *err)
{
    int nt = omp_get_max_threads();
    float *part = NULL;
    double *tot = NULL;
    const int want = dgamma || dbeta;
    if (want) { /* per thread: 2C float block sums, then 2C double totals */
        size_t bytes;
        CRYO_TRY(cryo_mul_size((size_t)nt * 2 * (size_t)C, sizeof(float) + sizeof(double), &bytes, err));
        part = cpu_red_scratch(ctx, bytes + sizeof(double), err);
        if (!part)
            return CRYO_E_NOMEM;
        tot = (double *)(void *)(part + (size_t)nt * 2 * C); /* 2·nt·C floats: 8-byte aligned */
        memset(tot, 0, sizeof(double) * (size_t)nt * 2 * C);
    }
#pragma omp parallel num_threads(nt) if (T * C > (1 << 14))
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        float *pg = want ? part + (size_t)id * 2 * C : NULL, *pb = want ? pg + C : NULL;
        double *tg = want ? tot + (size_t)id * 2 * C : NULL, *tb = want ? tg + C : NULL;
        int64_t a = T * id / n, b = T * (id + 1) / n;
        for (int64_t t0 = a; t0 < b; t0 += CPU_RED_BLOCK) {
            int64_t t1 = t0 + CPU_RED_BLOCK < b ? t0 + CPU_RED_BLOCK : b;
            if (want)
                for (int c = 0; c < C; c++)
                    pg[c] = pb[c] = 0.0f;
            for (int64_t t = t0; t < t1; t++) {
                const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
                const float m = mean[t], r = rstd[t];
                float s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
                for (int c = 0; c < C; c++) {
                    float xh = (x[c] - m) * r, dxh = dy[c] * gamma[c];
                    s1 += dxh;
                    s2 += dxh * xh;
                }
                if (want)
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        pg[c] += dy[c] * (x[c] - m) * r;
                        pb[c] += dy[c];
                    }
                s1 /= (float)C;
                s2 /= (float)C;
                if (dinp) {
                    float *dx = dinp + (size_t)t * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float xh = (x[c] - m) * r;
                        dx[c] = r * (dy[c] * gamma[c] - s1 - xh * s2);
                    }
                }
            }
            if (want)
                for (int c = 0; c < C; c++) {
                    tg[c] += pg[c];
                    tb[c] += pb[c];
                }
        }
    }
    if (want)
        for (int c = 0; c < C; c++) {
            double g = 0.0, bb = 0.0;
            for (int i = 0; i < nt; i++) {
                g += tot[(size_t)i * 2 * C + c];
                bb += tot[(size_t)i * 2 * C + C + c];
            }
            if (dgamma)
                dgamma[c] += (float)g;
            if (dbeta)
                dbeta[c] += (float)bb;
        }
    return CRYO_OK;
}

int cpu_frn_forward(struct cryo_nn_ctx *ctx, float *out, float *rstd, const float *inp,
                    const float *gamma, const float *beta, const float *tau, int N, int64_t S,
                    int C, float eps, struct cryo_error *err)
{
    int nt = omp_get_max_threads();
    size_t bytes;
    /* per thread C float block sums and C double totals; one row for this sample's rstd */
    CRYO_TRY(cryo_mul_size((size_t)(nt + 1) * (size_t)C, sizeof(float) + sizeof(double), &bytes, err));
    float *part = cpu_red_scratch(ctx, bytes + sizeof(double), err);
    if (!part)
        return CRYO_E_NOMEM;
    float *r = part + (size_t)nt * C;
    double *tot = (double *)(void *)(part + (size_t)(nt + 1) * C + ((size_t)(nt + 1) * C & 1));
    for (int s = 0; s < N; s++) {
        const float *x = inp + (size_t)s * S * C;
        float *y = out + (size_t)s * S * C;
        memset(tot, 0, sizeof(double) * (size_t)nt * C);
#pragma omp parallel num_threads(nt) if (S * C > (1 << 14))
        {
            int id = omp_get_thread_num(), n = omp_get_num_threads();
            float *p = part + (size_t)id * C;
            double *d = tot + (size_t)id * C;
            int64_t a = S * id / n, b = S * (id + 1) / n;
            for (int64_t v0 = a; v0 < b; v0 += CPU_RED_BLOCK) {
                int64_t v1 = v0 + CPU_RED_BLOCK < b ? v0 + CPU_RED_BLOCK : b;
                for (int c = 0; c < C; c++)
                    p[c] = 0.0f;
                for (int64_t v = v0; v < v1; v++) {
                    const float *xv = x + (size_t)v * C;
#pragma omp simd
                    for (int c = 0; c < C; c++)
                        p[c] += xv[c] * xv[c];
                }
                for (int c = 0; c < C; c++)
                    d[c] += p[c];
            }
        }
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int i = 0; i < nt; i++)
                acc += tot[(size_t)i * C + c];
            r[c] = (float)(1.0 / sqrt(acc / (double)S + (double)eps));
            if (rstd)
                rstd[(size_t)s * C + c] = r[c];
        }
#pragma omp parallel for schedule(static) if (S * C > (1 << 14))
        for (int64_t v = 0; v < S; v++) {
            const float *xv = x + (size_t)v * C;
            float *yv = y + (size_t)v * C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float z = gamma[c] * xv[c] * r[c] + beta[c];
                yv[c] = z > tau[c] ? z : tau[c];
            }
        }
    }
    return CRYO_OK;
}

int cpu_frn_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                     float *dtau, const float *dout, const float *inp, const float *gamma,
                     const float *beta, const float *tau, const float *rstd, int N, int64_t S,
                     int C, struct cryo_error *err)
{
    int nt = omp_get_max_threads();
    size_t bytes;
    /* per thread: Σ g·x, Σ g, Σ dout·[y<τ] as float block sums and double totals; then one
     * row of per-channel factors */
    CRYO_TRY(cryo_mul_size((size_t)(3 * nt + 1) * (size_t)C, sizeof(float) + sizeof(double), &bytes, err));
    float *part = cpu_red_scratch(ctx, bytes + sizeof(double), err);
    if (!part)
        return CRYO_E_NOMEM;
    float *k = part + (size_t)3 * nt * C;
    double *tot = (double *)(void *)(part + (size_t)(3 * nt + 1) * C + ((size_t)(3 * nt + 1) * C & 1));
    for (int s = 0; s < N; s++) {
        const float *x = inp + (size_t)s * S * C, *dy = dout + (size_t)s * S * C;
        const float *r = rstd + (size_t)s * C;
        memset(tot, 0, sizeof(double) * (size_t)3 * nt * C);
#pragma omp parallel num_threads(nt) if (S * C > (1 << 14))
        {
            int id = omp_get_thread_num(), n = omp_get_num_threads();
            float *pgx = part + (size_t)id * 3 * C, *pg = pgx + C, *pt = pg + C;
            double *d = tot + (size_t)id * 3 * C;
            int64_t a = S * id / n, b = S * (id + 1) / n;
            for (int64_t v0 = a; v0 < b; v0 += CPU_RED_BLOCK) {
                int64_t v1 = v0 + CPU_RED_BLOCK < b ? v0 + CPU_RED_BLOCK : b;
                for (int c = 0; c < 3 * C; c++)
                    pgx[c] = 0.0f;
                for (int64_t v = v0; v < v1; v++) {
                    const float *xv = x + (size_t)v * C, *dv = dy + (size_t)v * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float z = gamma[c] * xv[c] * r[c] + beta[c];
                        float g = z >= tau[c] ? dv[c] : 0.0f;
                        pgx[c] += g * xv[c];
                        pg[c] += g;
                        pt[c] += dv[c] - g;
                    }
                }
                for (int c = 0; c < 3 * C; c++)
                    d[c] += pgx[c];
            }
        }
        for (int c = 0; c < C; c++) {
            double gx = 0.0, g = 0.0, t = 0.0;
            for (int i = 0; i < nt; i++) {
                gx += tot[(size_t)i * 3 * C + c];
                g += tot[(size_t)i * 3 * C + C + c];
                t += tot[(size_t)i * 3 * C + 2 * C + c];
            }
            if (dgamma)
                dgamma[c] += (float)(gx * r[c]);
            if (dbeta)
                dbeta[c] += (float)g;
            if (dtau)
                dtau[c] += (float)t;
            k[c] = (float)((double)r[c] * r[c] * gx / (double)S); /* r²·mean(g·x) */
        }
        if (!dinp)
            continue;
        float *dx = dinp + (size_t)s * S * C;
#pragma omp parallel for schedule(static) if (S * C > (1 << 14))
        for (int64_t v = 0; v < S; v++) {
            const float *xv = x + (size_t)v * C, *dv = dy + (size_t)v * C;
            float *o = dx + (size_t)v * C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float z = gamma[c] * xv[c] * r[c] + beta[c];
                float g = z >= tau[c] ? dv[c] : 0.0f;
                o[c] = gamma[c] * r[c] * (g - k[c] * xv[c]);
            }
        }
    }
    return CRYO_OK;
}
