/* cuda_wmsa_bf16.cu — the attention core of window attention as bf16 GEMMs
 * (CRYO_NN_PRECISION_BF16; the fp32/TF32 path is the fused kernels of cuda_wmsa.cu).
 *
 * Per (window, head) b of B = windows·heads, with nt ≤ ntmax tokens: the Q, K, V (and,
 * backward, dY) rows of the head are gathered into bf16 tiles [B][ntmax][hd] (round to
 * nearest even; rows nt.. of a partial window zero), and cublasGemmStridedBatchedEx
 * (bf16 A and B, float32 C, CUBLAS_COMPUTE_32F) computes, row-major:
 *   forward   S = Q·Kᵀ (ntmax×ntmax), then P = softmax(scale·S + bias, mask) in float32
 *             (this file's kernel; P float32 into the cache when given, bf16 for the
 *             next GEMM), Y = P·V, scattered back to the tokens' rows;
 *   backward  dP = dY·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)) in float32 (P from the cache),
 *             dQ = scale·dS·K, dK = scale·dSᵀ·Q, dV = Pᵀ·dY, scattered into dqkv; dS stays
 *             float32 for the relative-position-bias gradient (cuda_wmsa.cu).
 * cuBLAS is column-major: a row-major r×c tile is its c×r transpose there, so with
 * ld = the row length, S = Q·Kᵀ is gemm(T, N, ntmax, ntmax, hd, K, Q); Y = P·V is
 * gemm(N, N, hd, ntmax, ntmax, V, P); dK = dSᵀ·Q is gemm(N, T, hd, ntmax, ntmax, Q, dS).
 * Masked and padded entries have P = 0, hence dS = 0. Each token belongs to one window,
 * so the scatters never collide.
 */
#include <math.h>

#include "cuda/cuda_priv.h"
#include "cuda/cuda_wmsa_geo.cuh"

#define WB_THREADS 256

/* dst[b][j][d] = bf16(src[tok_j·stride + off + h·hd + d]) for j < nt, 0 for nt ≤ j < ntmax */
__global__ void k_wb_gather(__nv_bfloat16 *dst, const float *src, size_t stride, int off,
                            const struct cryo_nn_wmsa_plan p, int hd)
{
    extern __shared__ int tok[];
    int *lab = tok + p.ntmax, *loc = lab + p.ntmax;
    const int h = (int)(blockIdx.x % p.heads), ntmax = p.ntmax;
    struct win_geo g;
    window_geo(&g, p, blockIdx.x / p.heads);
    for (int i = threadIdx.x; i < g.nt; i += blockDim.x)
        token_of(p, g, i, &tok[i], &lab[i], &loc[i]);
    __syncthreads();
    __nv_bfloat16 *out = dst + (size_t)blockIdx.x * ntmax * hd;
    for (int e = threadIdx.x; e < ntmax * hd; e += blockDim.x) {
        int j = e / hd, d = e % hd;
        out[e] = __float2bfloat16_rn(j < g.nt ? src[(size_t)tok[j] * stride + off + (size_t)h * hd + d] : 0.0f);
    }
}

/* dst[tok_j·stride + off + h·hd + d] = src[b][j][d] for j < nt */
__global__ void k_wb_scatter(float *dst, size_t stride, int off, const float *src, const struct cryo_nn_wmsa_plan p,
                             int hd)
{
    extern __shared__ int tok[];
    int *lab = tok + p.ntmax, *loc = lab + p.ntmax;
    const int h = (int)(blockIdx.x % p.heads);
    struct win_geo g;
    window_geo(&g, p, blockIdx.x / p.heads);
    for (int i = threadIdx.x; i < g.nt; i += blockDim.x)
        token_of(p, g, i, &tok[i], &lab[i], &loc[i]);
    __syncthreads();
    const float *in = src + (size_t)blockIdx.x * p.ntmax * hd;
    for (int e = threadIdx.x; e < g.nt * hd; e += blockDim.x) {
        int j = e / hd, d = e % hd;
        dst[(size_t)tok[j] * stride + off + (size_t)h * hd + d] = in[e];
    }
}

/* Row i of block b: P = softmax over the allowed keys of scale·S + bias (float32), into
 * att (float32, may be NULL) and pb (bf16); 0 for masked keys, padded keys and padded rows. */
__global__ void k_wb_softmax(float *att, __nv_bfloat16 *pb, const float *S, const float *rel_bias,
                             const struct cryo_nn_wmsa_plan p, int window, float scale)
{
    extern __shared__ int tok[];
    int *lab = tok + p.ntmax, *loc = lab + p.ntmax;
    const int h = (int)(blockIdx.x % p.heads), ntmax = p.ntmax, table = p.table, off = window - 1;
    struct win_geo g;
    window_geo(&g, p, blockIdx.x / p.heads);
    const int nt = g.nt;
    for (int i = threadIdx.x; i < nt; i += blockDim.x)
        token_of(p, g, i, &tok[i], &lab[i], &loc[i]);
    __syncthreads();
    const float *bias = rel_bias + (size_t)h * table * table * table;
    const size_t base = (size_t)blockIdx.x * ntmax * ntmax;
    for (int i = threadIdx.x; i < ntmax; i += blockDim.x) {
        const float *srow = S + base + (size_t)i * ntmax;
        float *arow = att ? att + base + (size_t)i * ntmax : NULL;
        __nv_bfloat16 *prow = pb + base + (size_t)i * ntmax;
        if (i >= nt) {
            for (int j = 0; j < ntmax; j++) {
                if (arow)
                    arow[j] = 0.0f;
                prow[j] = __float2bfloat16_rn(0.0f);
            }
            continue;
        }
        const int li = lab[i], lo = loc[i];
        float m = -INFINITY;
        for (int j = 0; j < nt; j++)
            if (lab[j] == li)
                m = fmaxf(m, srow[j] * scale + bias[rel_index(lo, loc[j], table, off)]);
        float sum = 0.0f;
        for (int j = 0; j < nt; j++)
            if (lab[j] == li)
                sum += expf(srow[j] * scale + bias[rel_index(lo, loc[j], table, off)] - m);
        const float inv = 1.0f / sum; /* the query itself is always allowed: sum >= 1 */
        for (int j = 0; j < ntmax; j++) {
            float v = 0.0f;
            if (j < nt && lab[j] == li)
                v = expf(srow[j] * scale + bias[rel_index(lo, loc[j], table, off)] - m) * inv;
            if (arow)
                arow[j] = v;
            prow[j] = __float2bfloat16_rn(v);
        }
    }
}

/* Row i of block b: dS = P ⊙ (dP − Σ_j P·dP) in place over dP (float32), and bf16 copies of
 * dS and P; entries outside the window's nt×nt are 0 whatever the cache holds there. */
__global__ void k_wb_dsoftmax(float *dS, __nv_bfloat16 *dsb, __nv_bfloat16 *pb, const float *att,
                              const struct cryo_nn_wmsa_plan p)
{
    const int ntmax = p.ntmax;
    struct win_geo g;
    window_geo(&g, p, blockIdx.x / p.heads);
    const int nt = g.nt;
    const size_t base = (size_t)blockIdx.x * ntmax * ntmax;
    for (int i = threadIdx.x; i < ntmax; i += blockDim.x) {
        float *row = dS + base + (size_t)i * ntmax;
        const float *prow = att + base + (size_t)i * ntmax;
        __nv_bfloat16 *srow = dsb + base + (size_t)i * ntmax, *pbrow = pb + base + (size_t)i * ntmax;
        float sdot = 0.0f;
        if (i < nt)
            for (int j = 0; j < nt; j++)
                sdot += prow[j] * row[j];
        for (int j = 0; j < ntmax; j++) {
            const float pv = i < nt && j < nt ? prow[j] : 0.0f;
            const float s = pv * (row[j] - sdot);
            row[j] = s;
            srow[j] = __float2bfloat16_rn(s);
            pbrow[j] = __float2bfloat16_rn(pv);
        }
    }
}

/* C[b] = alpha · op(A[b]) · op(B[b]) (column-major, bf16 A and B, float32 C, β = 0). */
static int gemm_bf16(struct cryo_nn_ctx *ctx, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                     float alpha, const __nv_bfloat16 *A, int lda, long long sa, const __nv_bfloat16 *B, int ldb,
                     long long sb, float *C, int ldc, long long sc, int batch, const char *what,
                     struct cryo_error *err)
{
    const float beta = 0.0f;
    return cu_check_blas(cublasGemmStridedBatchedEx(cu_state(ctx)->blas, ta, tb, m, n, k, &alpha, A, CUDA_R_16BF, lda,
                                                    sa, B, CUDA_R_16BF, ldb, sb, &beta, C, CUDA_R_32F, ldc, sc,
                                                    batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                         what, err);
}

static size_t r256(size_t b) { return (b + 255) & ~(size_t)255; }

size_t cu_wmsa_bf16_scratch(const struct cryo_nn_wmsa_plan *p, int c, int backward)
{
    const size_t blocks = p->att / ((size_t)p->ntmax * p->ntmax), E = blocks * p->ntmax * (size_t)(c / p->heads);
    const size_t A = p->att, bf = sizeof(__nv_bfloat16);
    if (!backward) /* Q, K, V bf16; S float; P bf16; Y float */
        return 3 * r256(E * bf) + r256(A * sizeof(float)) + r256(A * bf) + r256(E * sizeof(float));
    /* Q, K, V, dY bf16; dS, P bf16; dQ, dK, dV float */
    return 4 * r256(E * bf) + 2 * r256(A * bf) + 3 * r256(E * sizeof(float));
}

int cu_wmsa_bf16_forward(struct cryo_nn_ctx *ctx, float *y, float *att, const float *qkv, const float *rel_bias,
                         const struct cryo_nn_wmsa_plan *p, int c, int hd, int window, float scale, void *scratch,
                         struct cryo_error *err)
{
    const int nt = p->ntmax;
    const long long B = (long long)(p->att / ((size_t)nt * nt));
    const size_t E = (size_t)B * nt * hd, A = p->att, bf = sizeof(__nv_bfloat16);
    char *w = (char *)scratch;
    __nv_bfloat16 *qb = (__nv_bfloat16 *)w, *kb = (__nv_bfloat16 *)(w + r256(E * bf)),
                  *vb = (__nv_bfloat16 *)(w + 2 * r256(E * bf));
    float *S = (float *)(w + 3 * r256(E * bf));
    __nv_bfloat16 *pb = (__nv_bfloat16 *)((char *)S + r256(A * sizeof(float)));
    float *yw = (float *)((char *)pb + r256(A * bf));
    const size_t smem = sizeof(int) * 3 * (size_t)nt, c3 = (size_t)3 * c;
    const unsigned blocks = (unsigned)B;
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(qb, qkv, c3, 0, *p, hd);
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(kb, qkv, c3, c, *p, hd);
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(vb, qkv, c3, 2 * c, *p, hd);
    CRYO_TRY(cu_launched("attention gather (bf16)", err));
    const long long st = (long long)nt * hd, ss = (long long)nt * nt;
    CRYO_TRY(gemm_bf16(ctx, CUBLAS_OP_T, CUBLAS_OP_N, nt, nt, hd, 1.0f, kb, hd, st, qb, hd, st, S, nt, ss, (int)B,
                       "attention QK^T gemm (bf16)", err));
    k_wb_softmax<<<blocks, WB_THREADS, smem>>>(att, pb, S, rel_bias, *p, window, scale);
    CRYO_TRY(cu_launched("attention softmax (bf16)", err));
    CRYO_TRY(gemm_bf16(ctx, CUBLAS_OP_N, CUBLAS_OP_N, hd, nt, nt, 1.0f, vb, hd, st, pb, nt, ss, yw, hd, st, (int)B,
                       "attention PV gemm (bf16)", err));
    k_wb_scatter<<<blocks, WB_THREADS, smem>>>(y, (size_t)c, 0, yw, *p, hd);
    return cu_launched("attention scatter (bf16)", err);
}

int cu_wmsa_bf16_backward(struct cryo_nn_ctx *ctx, float *dqkv, float *dS, const float *qkv, const float *dy,
                          const float *att, const struct cryo_nn_wmsa_plan *p, int c, int hd, float scale,
                          void *scratch, struct cryo_error *err)
{
    const int nt = p->ntmax;
    const long long B = (long long)(p->att / ((size_t)nt * nt));
    const size_t E = (size_t)B * nt * hd, A = p->att, bf = sizeof(__nv_bfloat16), eb = r256(E * bf);
    char *w = (char *)scratch;
    __nv_bfloat16 *qb = (__nv_bfloat16 *)w, *kb = (__nv_bfloat16 *)(w + eb), *vb = (__nv_bfloat16 *)(w + 2 * eb),
                  *dyb = (__nv_bfloat16 *)(w + 3 * eb);
    __nv_bfloat16 *dsb = (__nv_bfloat16 *)(w + 4 * eb), *pb = (__nv_bfloat16 *)(w + 4 * eb + r256(A * bf));
    float *dq = (float *)(w + 4 * eb + 2 * r256(A * bf)), *dk = (float *)((char *)dq + r256(E * sizeof(float))),
          *dv = (float *)((char *)dk + r256(E * sizeof(float)));
    const size_t smem = sizeof(int) * 3 * (size_t)nt, c3 = (size_t)3 * c;
    const unsigned blocks = (unsigned)B;
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(qb, qkv, c3, 0, *p, hd);
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(kb, qkv, c3, c, *p, hd);
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(vb, qkv, c3, 2 * c, *p, hd);
    k_wb_gather<<<blocks, WB_THREADS, smem>>>(dyb, dy, (size_t)c, 0, *p, hd);
    CRYO_TRY(cu_launched("attention backward gather (bf16)", err));
    const long long st = (long long)nt * hd, ss = (long long)nt * nt;
    CRYO_TRY(gemm_bf16(ctx, CUBLAS_OP_T, CUBLAS_OP_N, nt, nt, hd, 1.0f, vb, hd, st, dyb, hd, st, dS, nt, ss, (int)B,
                       "attention dY V^T gemm (bf16)", err));
    k_wb_dsoftmax<<<blocks, WB_THREADS>>>(dS, dsb, pb, att, *p);
    CRYO_TRY(cu_launched("attention softmax backward (bf16)", err));
    CRYO_TRY(gemm_bf16(ctx, CUBLAS_OP_N, CUBLAS_OP_N, hd, nt, nt, scale, kb, hd, st, dsb, nt, ss, dq, hd, st, (int)B,
                       "attention dS K gemm (bf16)", err));
    CRYO_TRY(gemm_bf16(ctx, CUBLAS_OP_N, CUBLAS_OP_T, hd, nt, nt, scale, qb, hd, st, dsb, nt, ss, dk, hd, st, (int)B,
                       "attention dS^T Q gemm (bf16)", err));
    CRYO_TRY(gemm_bf16(ctx, CUBLAS_OP_N, CUBLAS_OP_T, hd, nt, nt, 1.0f, dyb, hd, st, pb, nt, ss, dv, hd, st, (int)B,
                       "attention P^T dY gemm (bf16)", err));
    k_wb_scatter<<<blocks, WB_THREADS, smem>>>(dqkv, c3, 0, dq, *p, hd);
    k_wb_scatter<<<blocks, WB_THREADS, smem>>>(dqkv, c3, c, dk, *p, hd);
    k_wb_scatter<<<blocks, WB_THREADS, smem>>>(dqkv, c3, 2 * c, dv, *p, hd);
    return cu_launched("attention backward scatter (bf16)", err);
}
