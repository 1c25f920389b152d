/* cpu_norm.c — LayerNorm over channels and FRN+TLU over space, on the CPU.
 *
 * LayerNorm: one token per iteration (C contiguous), two passes over the row for mean and
 * variance; the backward is llm.c's closed form:
 *   dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = dout·γ.
 * FRN (Singh & Krishnan 2020): ν² per (sample, channel) is a reduction over space, done
 * with per-thread partial sums over token ranges (C contiguous, so vectorised over C). With
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
    if (dgamma || dbeta) {
        size_t bytes;
        CRYO_TRY(cryo_mul_size((size_t)nt * 2 * (size_t)C, sizeof(float), &bytes, err));
        part = cpu_red_scratch(ctx, bytes, err);
        if (!part)
            return CRYO_E_NOMEM;
        memset(part, 0, bytes);
    }
#pragma omp parallel num_threads(nt) if (T * C > (1 << 14))
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        float *pg = part ? part + (size_t)id * 2 * C : NULL, *pb = pg ? pg + C : NULL;
        int64_t a = T * id / n, b = T * (id + 1) / n;
        for (int64_t t = a; t < b; t++) {
            const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
            float m = mean[t], r = rstd[t];
            float s1 = 0.0f, s2 = 0.0f;
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * r, dxh = dy[c] * gamma[c];
                s1 += dxh;
                s2 += dxh * xh;
                if (pg) {
                    pg[c] += dy[c] * xh;
                    pb[c] += dy[c];
                }
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
    }
    if (part)
        for (int i = 0; i < nt; i++)
            for (int c = 0; c < C; c++) {
                if (dgamma)
                    dgamma[c] += part[(size_t)i * 2 * C + c];
                if (dbeta)
                    dbeta[c] += part[(size_t)i * 2 * C + C + c];
            }
    return CRYO_OK;
}

int cpu_frn_forward(struct cryo_nn_ctx *ctx, float *out, float *rstd, const float *inp,
                    const float *gamma, const float *beta, const float *tau, int N, int64_t S,
                    int C, float eps, struct cryo_error *err)
{
    int nt = omp_get_max_threads();
    size_t bytes;
    CRYO_TRY(cryo_mul_size((size_t)(nt + 1) * (size_t)C, sizeof(float), &bytes, err));
    float *part = cpu_red_scratch(ctx, bytes, err);
    if (!part)
        return CRYO_E_NOMEM;
    float *r = part + (size_t)nt * C; /* this sample's rstd */
    for (int s = 0; s < N; s++) {
        const float *x = inp + (size_t)s * S * C;
        float *y = out + (size_t)s * S * C;
        memset(part, 0, sizeof(float) * (size_t)nt * C);
#pragma omp parallel num_threads(nt) if (S * C > (1 << 14))
        {
            int id = omp_get_thread_num(), n = omp_get_num_threads();
            float *p = part + (size_t)id * C;
            int64_t a = S * id / n, b = S * (id + 1) / n;
            for (int64_t v = a; v < b; v++) {
                const float *xv = x + (size_t)v * C;
#pragma omp simd
                for (int c = 0; c < C; c++)
                    p[c] += xv[c] * xv[c];
            }
        }
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int i = 0; i < nt; i++)
                acc += part[(size_t)i * C + c];
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
    /* per thread: Σ g·x, Σ g, Σ dout·[y<τ]; then one row of per-channel factors */
    CRYO_TRY(cryo_mul_size((size_t)(3 * nt + 1) * (size_t)C, sizeof(float), &bytes, err));
    float *part = cpu_red_scratch(ctx, bytes, err);
    if (!part)
        return CRYO_E_NOMEM;
    float *k = part + (size_t)3 * nt * C;
    for (int s = 0; s < N; s++) {
        const float *x = inp + (size_t)s * S * C, *dy = dout + (size_t)s * S * C;
        const float *r = rstd + (size_t)s * C;
        memset(part, 0, sizeof(float) * (size_t)3 * nt * C);
#pragma omp parallel num_threads(nt) if (S * C > (1 << 14))
        {
            int id = omp_get_thread_num(), n = omp_get_num_threads();
            float *pgx = part + (size_t)id * 3 * C, *pg = pgx + C, *pt = pg + C;
            int64_t a = S * id / n, b = S * (id + 1) / n;
            for (int64_t v = a; v < b; v++) {
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
        }
        for (int c = 0; c < C; c++) {
            double gx = 0.0, g = 0.0, t = 0.0;
            for (int i = 0; i < nt; i++) {
                gx += part[(size_t)i * 3 * C + c];
                g += part[(size_t)i * 3 * C + C + c];
                t += part[(size_t)i * 3 * C + 2 * C + c];
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
