/* cuda_norm.cu — LayerNorm over channels and FRN+TLU over space on the GPU, the CPU
 * backend's formulas (cpu_norm.c):
 * LayerNorm: one warp per token, mean then biased variance (two passes over the row);
 *   backward dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dout·γ; dγ, dβ are column
 *   sums over tokens (cuda_reduce.cuh, in double).
 * FRN: ν² per (sample, channel) a column sum over the sample's voxels in double;
 *   r = 1/sqrt(ν²/S + ε) in double then rounded, as on the CPU; with y = γ·x·r + β,
 *   g = dout·[y ≥ τ]: dx = γ·r·(g − r²·x·mean(g·x)), dγ += r·Σg·x, dβ += Σg,
 *   dτ += Σ dout·[y < τ].
 */
#include <math.h>

#include "cuda/cuda_priv.h"
#include "cuda/cuda_reduce.cuh"

#define PER 256

__device__ static float warp_sum(float s)
{
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

__global__ void k_ln_fwd(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                         const float *beta, int64_t T, int C, float eps)
{
    int64_t t = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (t >= T)
        return;
    const float *x = inp + (size_t)t * C;
    float *y = out + (size_t)t * C;
    float m = 0.0f;
    for (int c = lane; c < C; c += 32)
        m += x[c];
    m = warp_sum(m) / (float)C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    v = warp_sum(v) / (float)C;
    float r = 1.0f / sqrtf(v + eps);
    __syncwarp();
    for (int c = lane; c < C; c += 32)
        y[c] = (x[c] - m) * r * gamma[c] + beta[c];
    if (mean && lane == 0) {
        mean[t] = m;
        rstd[t] = r;
    }
}

__global__ void k_ln_bwd(float *dinp, const float *dout, const float *inp, const float *gamma,
                         const float *mean, const float *rstd, int64_t T, int C)
{
    int64_t t = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (t >= T)
        return;
    const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
    const float m = mean[t], r = rstd[t];
    float s1 = 0.0f, s2 = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - m) * r, dxh = dy[c] * gamma[c];
        s1 += dxh;
        s2 += dxh * xh;
    }
    s1 = warp_sum(s1) / (float)C;
    s2 = warp_sum(s2) / (float)C;
    float *dx = dinp + (size_t)t * C;
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - m) * r;
        dx[c] = r * (dy[c] * gamma[c] - s1 - xh * s2);
    }
}

struct ln_param_value {
    const float *dout, *inp, *mean, *rstd;
    int C;
    __device__ void operator()(int z, int64_t t, int c, float *o) const
    {
        float dy = dout[(size_t)t * C + c];
        o[0] = dy * (inp[(size_t)t * C + c] - mean[t]) * rstd[t];
        o[1] = dy;
    }
};

__global__ void k_ln_param_fin(float *dgamma, float *dbeta, const double *acc, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    if (dgamma)
        dgamma[c] += (float)acc[c];
    if (dbeta)
        dbeta[c] += (float)acc[C + c];
}

static unsigned warp_blocks(int64_t rows) { return (unsigned)((rows * 32 + PER - 1) / PER); }

int cu_layernorm_forward(struct cryo_nn_ctx *ctx, float *out, float *mean, float *rstd,
                         const float *inp, const float *gamma, const float *beta, int64_t T, int C,
                         float eps, struct cryo_error *err)
{
    if (T * 32 / PER >= (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: layernorm over %lld tokens", (long long)T);
    k_ln_fwd<<<warp_blocks(T), PER>>>(out, mean, rstd, inp, gamma, beta, T, C, eps);
    return cu_launched("layernorm forward", err);
}

int cu_layernorm_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                          const float *dout, const float *inp, const float *gamma, const float *mean,
                          const float *rstd, int64_t T, int C, struct cryo_error *err)
{
    if (T * 32 / PER >= (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: layernorm over %lld tokens", (long long)T);
    if (dgamma || dbeta) {
        double *acc = (double *)cu_red_scratch(ctx, sizeof(double) * 2 * (size_t)C, err);
        if (!acc)
            return CRYO_E_NOMEM;
        CRYO_TRY(cu_check(cudaMemsetAsync(acc, 0, sizeof(double) * 2 * (size_t)C, 0), "memset", err));
        launch_segsum<2>(ln_param_value{dout, inp, mean, rstd, C}, 1, T, C, acc);
        k_ln_param_fin<<<(C + 255) / 256, 256>>>(dgamma, dbeta, acc, C);
        CRYO_TRY(cu_launched("layernorm parameter gradients", err));
    }
    if (dinp) {
        k_ln_bwd<<<warp_blocks(T), PER>>>(dinp, dout, inp, gamma, mean, rstd, T, C);
        CRYO_TRY(cu_launched("layernorm backward", err));
    }
    return CRYO_OK;
}

/* ---- FRN ------------------------------------------------------------------------------- */

struct frn_sq_value {
    const float *inp;
    int64_t S;
    int C;
    __device__ void operator()(int z, int64_t v, int c, float *o) const
    {
        float x = inp[((size_t)z * S + v) * C + c];
        o[0] = x * x;
    }
};

__global__ void k_frn_rstd(float *r, float *rstd, const double *acc, int NC, int64_t S, float eps)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= NC)
        return;
    float v = (float)(1.0 / sqrt(acc[i] / (double)S + (double)eps));
    r[i] = v;
    if (rstd)
        rstd[i] = v;
}

__global__ void k_frn_apply(float *out, const float *inp, const float *r, const float *gamma,
                            const float *beta, const float *tau, int N, int64_t S, int C)
{
    size_t n = (size_t)N * S * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t z = i / ((size_t)S * C);
        float y = gamma[c] * inp[i] * r[z * C + c] + beta[c];
        out[i] = y > tau[c] ? y : tau[c];
    }
}

struct frn_grad_value {
    const float *dout, *inp, *gamma, *beta, *tau, *rstd;
    int64_t S;
    int C;
    __device__ void operator()(int z, int64_t v, int c, float *o) const
    {
        size_t i = ((size_t)z * S + v) * C + c;
        float x = inp[i], dy = dout[i];
        float y = gamma[c] * x * rstd[(size_t)z * C + c] + beta[c];
        float g = y >= tau[c] ? dy : 0.0f;
        o[0] = g * x;
        o[1] = g;
        o[2] = dy - g;
    }
};

/* One thread per channel, samples in order (as the CPU adds them). */
__global__ void k_frn_grad_fin(float *dgamma, float *dbeta, float *dtau, float *k, const double *acc,
                               const float *rstd, int N, int64_t S, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    for (int z = 0; z < N; z++) {
        const double *a = acc + (size_t)z * 3 * C;
        double gx = a[c], g = a[C + c], t = a[2 * C + c];
        float r = rstd[(size_t)z * C + c];
        if (dgamma)
            dgamma[c] += (float)(gx * r);
        if (dbeta)
            dbeta[c] += (float)g;
        if (dtau)
            dtau[c] += (float)t;
        k[(size_t)z * C + c] = (float)((double)r * r * gx / (double)S);
    }
}

__global__ void k_frn_dinp(float *dinp, const float *dout, const float *inp, const float *gamma,
                           const float *beta, const float *tau, const float *rstd, const float *k, int N,
                           int64_t S, int C)
{
    size_t n = (size_t)N * S * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t zc = i / ((size_t)S * C) * C + c;
        float x = inp[i], r = rstd[zc];
        float y = gamma[c] * x * r + beta[c];
        float g = y >= tau[c] ? dout[i] : 0.0f;
        dinp[i] = gamma[c] * r * (g - k[zc] * x);
    }
}

int cu_frn_forward(struct cryo_nn_ctx *ctx, float *out, float *rstd, const float *inp, const float *gamma,
                   const float *beta, const float *tau, int N, int64_t S, int C, float eps,
                   struct cryo_error *err)
{
    size_t nc = (size_t)N * C;
    double *acc = (double *)cu_red_scratch(ctx, nc * (sizeof(double) + sizeof(float)), err);
    if (!acc)
        return CRYO_E_NOMEM;
    float *r = (float *)(acc + nc);
    CRYO_TRY(cu_check(cudaMemsetAsync(acc, 0, sizeof(double) * nc, 0), "memset", err));
    launch_segsum<1>(frn_sq_value{inp, S, C}, N, S, C, acc);
    k_frn_rstd<<<(unsigned)((nc + 255) / 256), 256>>>(r, rstd, acc, (int)nc, S, eps);
    k_frn_apply<<<cu_blocks(nc * S, PER), PER>>>(out, inp, r, gamma, beta, tau, N, S, C);
    return cu_launched("frn forward", err);
}

int cu_frn_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma, float *dbeta, float *dtau,
                    const float *dout, const float *inp, const float *gamma, const float *beta,
                    const float *tau, const float *rstd, int N, int64_t S, int C, struct cryo_error *err)
{
    size_t nc = (size_t)N * C;
    double *acc = (double *)cu_red_scratch(ctx, nc * (3 * sizeof(double) + sizeof(float)), err);
    if (!acc)
        return CRYO_E_NOMEM;
    float *k = (float *)(acc + 3 * nc);
    CRYO_TRY(cu_check(cudaMemsetAsync(acc, 0, sizeof(double) * 3 * nc, 0), "memset", err));
    launch_segsum<3>(frn_grad_value{dout, inp, gamma, beta, tau, rstd, S, C}, N, S, C, acc);
    k_frn_grad_fin<<<(C + 255) / 256, 256>>>(dgamma, dbeta, dtau, k, acc, rstd, N, S, C);
    if (dinp)
        k_frn_dinp<<<cu_blocks(nc * S, PER), PER>>>(dinp, dout, inp, gamma, beta, tau, rstd, k, N, S, C);
    return cu_launched("frn backward", err);
}
