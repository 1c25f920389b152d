/* cuda_wmsa.cu — 3D (shifted) window multi-head self-attention on the GPU (maths in
 * nn_layers.h, the CPU version in cpu_wmsa.c).
 *
 * As on the CPU, the two projections run over all tokens in NDHWC order (cuBLAS, through
 * cu_linear_*), and the shift and window partition are index arithmetic: one thread block
 * per (window, head), one thread per query token. The block lists the rows its tokens
 * occupy (rolled position r reads original (r + shift) mod L), loads the window's K and V
 * (and, backward, Q and dY) rows of this head into shared memory, and writes results
 * straight back to the tokens' own rows; each token belongs to one window, so writes never
 * collide. Forward: two passes over the keys (row maximum, then exponentials, sum and
 * P·V), a third writing the probabilities when the cache is given; inference stores no
 * probabilities at all. Backward: a row pass (dP = dY·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)),
 * dQ = scale·dS·K, dS kept in the workspace), then a column pass (dV = Pᵀ·dY,
 * dK = scale·dSᵀ·Q). The relative-position-bias gradient sums dS over windows: full windows
 * share one (query, key) → table map, so a thread per (head, query, key) sums its entry
 * over a range of windows in double and adds it once; partial windows add entry by entry
 * (double atomics).
 *
 * At CRYO_NN_PRECISION_BF16 the attention core (between the projections) is instead bf16
 * GEMMs with a float32 softmax (cuda_wmsa_bf16.cu); the cache and dS keep the same layout.
 *
 * Limits: up to 1024 tokens per window (window ≤ 10), head_dim ≤ 64, and the forward's K
 * and V tiles must fit the device's shared memory (the backward's Q and dY tiles join them
 * where they fit, else those rows are read from global memory: 8³ windows at head_dim 32
 * need 137 KB, not 268); beyond, CRYO_E_UNSUPPORTED (the bf16 path keeps only the token
 * lists in shared memory). head_dim 16 (CryoLVM) has a compile-time path.
 */
#include <math.h>

#include "cuda/cuda_priv.h"
#include "cuda/cuda_wmsa_geo.cuh"

#define HD_MAX 64

static size_t round256(size_t b) { return (b + 255) & ~(size_t)255; }

/* __launch_bounds__(1024): windows of up to 1024 tokens run one thread per token, so the
 * compiler must keep to 64 registers a thread (spilling, if it must, to local memory)
 * rather than make a launch of 1024 threads fail for want of registers. */
template <int HDC>
__global__ void __launch_bounds__(1024) k_wmsa_fwd(float *y, float *P, const float *qkv, const float *rel_bias,
                           const struct cryo_nn_wmsa_plan p, int c, int hd_rt, int window, float scale)
{
    constexpr int HM = HDC > 0 ? HDC : HD_MAX;
    const int hd = HDC > 0 ? HDC : hd_rt, ntmax = p.ntmax;
    extern __shared__ float sm[];
    float *ks = sm, *vs = ks + (size_t)ntmax * hd;
    int *tok = (int *)(vs + (size_t)ntmax * hd), *lab = tok + ntmax, *loc = lab + ntmax;
    const int h = (int)(blockIdx.x % p.heads);
    const int64_t wg = blockIdx.x / p.heads;
    struct win_geo g;
    window_geo(&g, p, wg);
    const int nt = g.nt, i = threadIdx.x;
    const size_t c3 = (size_t)3 * c;
    if (i < nt)
        token_of(p, g, i, &tok[i], &lab[i], &loc[i]);
    __syncthreads();
    for (int e = threadIdx.x; e < nt * hd; e += blockDim.x) {
        int j = e / hd, d = e % hd;
        const float *row = qkv + (size_t)tok[j] * c3 + (size_t)h * hd;
        ks[e] = row[c + d];
        vs[e] = row[2 * c + d];
    }
    __syncthreads();
    if (i >= nt)
        return;
    const int table = p.table, off = window - 1;
    const float *bias = rel_bias + (size_t)h * table * table * table;
    float q[HM], acc[HM];
    const float *qrow = qkv + (size_t)tok[i] * c3 + (size_t)h * hd;
    for (int d = 0; d < hd; d++) {
        q[d] = qrow[d];
        acc[d] = 0.0f;
    }
    const int li = lab[i], lo = loc[i];
    float m = -INFINITY;
    for (int j = 0; j < nt; j++) {
        if (lab[j] != li)
            continue;
        float s = 0.0f;
        for (int d = 0; d < hd; d++)
            s += q[d] * ks[j * hd + d];
        s = s * scale + bias[rel_index(lo, loc[j], table, off)];
        m = fmaxf(m, s);
    }
    float sum = 0.0f;
    for (int j = 0; j < nt; j++) {
        if (lab[j] != li)
            continue;
        float s = 0.0f;
        for (int d = 0; d < hd; d++)
            s += q[d] * ks[j * hd + d];
        float e = expf(s * scale + bias[rel_index(lo, loc[j], table, off)] - m);
        sum += e;
        for (int d = 0; d < hd; d++)
            acc[d] += e * vs[j * hd + d];
    }
    const float inv = 1.0f / sum;
    float *yrow = y + (size_t)tok[i] * c + (size_t)h * hd;
    for (int d = 0; d < hd; d++)
        yrow[d] = acc[d] * inv;
    if (!P)
        return;
    float *prow = P + ((size_t)wg * p.heads + h) * ntmax * ntmax + (size_t)i * ntmax;
    for (int j = 0; j < ntmax; j++) {
        float v = 0.0f;
        if (j < nt && lab[j] == li) {
            float s = 0.0f;
            for (int d = 0; d < hd; d++)
                s += q[d] * ks[j * hd + d];
            v = expf(s * scale + bias[rel_index(lo, loc[j], table, off)] - m) * inv;
        }
        prow[j] = v;
    }
}

/* QS: Q and dY tiles in shared memory beside K and V (four tiles); without, only K and V
 * are there and the column pass reads the Q and dY rows from global memory (every thread
 * of a warp reads the same row at once: one broadcast load through L1), for windows
 * whose four tiles do not fit (512 tokens at head_dim 32 need 268 KB). */
template <int HDC, bool QS>
__global__ void __launch_bounds__(1024) k_wmsa_bwd(float *dqkv, float *dS, const float *qkv, const float *dyb,
                                                   const float *P, const struct cryo_nn_wmsa_plan p, int c, int hd_rt,
                                                   float scale)
{
    constexpr int HM = HDC > 0 ? HDC : HD_MAX;
    const int hd = HDC > 0 ? HDC : hd_rt, ntmax = p.ntmax;
    extern __shared__ float sm[];
    const size_t th = (size_t)ntmax * hd;
    float *ks = sm, *vs = ks + th;
    float *qs = QS ? vs + th : NULL, *dys = QS ? qs + th : NULL;
    int *tok = (int *)(sm + (QS ? 4 : 2) * th), *lab = tok + ntmax, *loc = lab + ntmax;
    const int h = (int)(blockIdx.x % p.heads);
    const int64_t wg = blockIdx.x / p.heads;
    struct win_geo g;
    window_geo(&g, p, wg);
    const int nt = g.nt, i = threadIdx.x;
    const size_t c3 = (size_t)3 * c, nn = (size_t)ntmax * ntmax;
    if (i < nt)
        token_of(p, g, i, &tok[i], &lab[i], &loc[i]);
    __syncthreads();
    for (int e = threadIdx.x; e < nt * hd; e += blockDim.x) {
        int j = e / hd, d = e % hd;
        const float *row = qkv + (size_t)tok[j] * c3 + (size_t)h * hd;
        ks[e] = row[c + d];
        vs[e] = row[2 * c + d];
        if (QS) {
            qs[e] = row[d];
            dys[e] = dyb[(size_t)tok[j] * c + (size_t)h * hd + d];
        }
    }
    __syncthreads();
    const float *Pw = P + ((size_t)wg * p.heads + h) * nn;
    float *dSw = dS + ((size_t)wg * p.heads + h) * nn;
    if (i < nt) { /* row pass: dS row i and dQ row i */
        const float *prow = Pw + (size_t)i * ntmax;
        float *srow = dSw + (size_t)i * ntmax;
        float dyi[HM], dq[HM]; /* own row in registers: rows of a tile share banks */
        const float *dyrow = QS ? dys + (size_t)i * hd : dyb + (size_t)tok[i] * c + (size_t)h * hd;
        for (int d = 0; d < hd; d++) {
            dyi[d] = dyrow[d];
            dq[d] = 0.0f;
        }
        float sdot = 0.0f;
        for (int j = 0; j < nt; j++) {
            float dp = 0.0f;
            for (int d = 0; d < hd; d++)
                dp += dyi[d] * vs[j * hd + d];
            sdot += prow[j] * dp;
        }
        for (int j = 0; j < nt; j++) {
            float dp = 0.0f;
            for (int d = 0; d < hd; d++)
                dp += dyi[d] * vs[j * hd + d];
            float s = prow[j] * (dp - sdot); /* masked entries: P = 0 */
            srow[j] = s;
            for (int d = 0; d < hd; d++)
                dq[d] += s * ks[j * hd + d];
        }
        float *out = dqkv + (size_t)tok[i] * c3 + (size_t)h * hd;
        for (int d = 0; d < hd; d++)
            out[d] = dq[d] * scale;
    }
    __syncthreads(); /* dS rows of every thread are in global memory, visible to the block */
    const int j = threadIdx.x;
    if (j >= nt)
        return;
    float dk[HM], dv[HM];
    for (int d = 0; d < hd; d++)
        dk[d] = dv[d] = 0.0f;
    for (int r = 0; r < nt; r++) {
        float pr = Pw[(size_t)r * ntmax + j], sr = dSw[(size_t)r * ntmax + j];
        const float *qr = QS ? qs + (size_t)r * hd : qkv + (size_t)tok[r] * c3 + (size_t)h * hd;
        const float *dr = QS ? dys + (size_t)r * hd : dyb + (size_t)tok[r] * c + (size_t)h * hd;
        for (int d = 0; d < hd; d++) {
            dv[d] += pr * dr[d];
            dk[d] += sr * qr[d];
        }
    }
    float *out = dqkv + (size_t)tok[j] * c3 + (size_t)h * hd;
    for (int d = 0; d < hd; d++) {
        out[c + d] = dk[d] * scale;
        out[2 * c + d] = dv[d];
    }
}

/* Bias-table gradient: thread (head, query, key), windows [chunk) of grid.y. */
__global__ void k_wmsa_drel(double *acc, const float *dS, const struct cryo_nn_wmsa_plan p, int window,
                            int64_t nwg)
{
    const int ntmax = p.ntmax, table = p.table, off = window - 1;
    const size_t nn = (size_t)ntmax * ntmax, tab = (size_t)table * table * table;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)p.heads * nn)
        return;
    const int h = (int)(idx / nn), i = (int)(idx % nn / ntmax), j = (int)(idx % ntmax);
    const int64_t per = (nwg + gridDim.y - 1) / gridDim.y, a = (int64_t)blockIdx.y * per;
    const int64_t b = a + per < nwg ? a + per : nwg;
    double full = 0.0;
    double *ah = acc + (size_t)h * tab;
    for (int64_t wg = a; wg < b; wg++) {
        struct win_geo g;
        window_geo(&g, p, wg);
        float v = dS[((size_t)wg * p.heads + h) * nn + (size_t)i * ntmax + j];
        if (g.nt == ntmax)
            full += (double)v;
        else if (i < g.nt && j < g.nt)
            atomicAdd(&ah[rel_index(local_of(i, g.ext), local_of(j, g.ext), table, off)], (double)v);
    }
    if (full != 0.0)
        atomicAdd(&ah[rel_index(local_of(i, p.win), local_of(j, p.win), table, off)], full);
}

__global__ void k_wmsa_drel_fin(float *drel, const double *acc, size_t n)
{
    size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k < n)
        drel[k] += (float)acc[k];
}

/* Threads per block (one per token, whole warps) and the shared memory a block may have
 * on this device (opt-in maximum); CRYO_E_UNSUPPORTED beyond 1024 tokens or HD_MAX. */
static int launch_shape(const struct cryo_nn_wmsa_plan *p, int hd, unsigned *threads, size_t *maxs,
                        struct cryo_error *err)
{
    if (p->ntmax > 1024 || hd > HD_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED,
                       "nn cuda: window attention with %d tokens per window and head_dim %d (at most 1024 and %d)",
                       p->ntmax, hd, HD_MAX);
    *threads = (unsigned)((p->ntmax + 31) / 32 * 32);
    int dev = 0, m = 0;
    CRYO_TRY(cu_check(cudaGetDevice(&dev), "cudaGetDevice", err));
    CRYO_TRY(cu_check(cudaDeviceGetAttribute(&m, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
                      "cudaDeviceGetAttribute (shared memory per block)", err));
    *maxs = (size_t)m;
    return CRYO_OK;
}

/* Dynamic shared memory of a block holding `tiles` ntmax × hd float tiles and the token lists. */
static size_t tile_smem(const struct cryo_nn_wmsa_plan *p, int hd, int tiles)
{
    return sizeof(float) * (size_t)tiles * p->ntmax * hd + sizeof(int) * 3 * (size_t)p->ntmax;
}

static int smem_too_small(size_t need, size_t maxs, struct cryo_error *err)
{
    return cu_fail(err, CRYO_E_UNSUPPORTED,
                   "nn cuda: window attention tiles need %zu bytes of shared memory, the device has %zu", need, maxs);
}

template <class K>
static int allow_smem(K kernel, size_t smem, struct cryo_error *err)
{
    if (smem <= 48 * 1024)
        return CRYO_OK;
    return cu_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                    "attention shared memory", err);
}

int cu_wmsa_forward(struct cryo_nn_ctx *ctx, float *out, float *cache, const float *inp, const float *qkv_weight,
                    const float *qkv_bias, const float *rel_bias, const float *proj_weight,
                    const float *proj_bias, const struct cryo_nn_wmsa *a, struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    CRYO_TRY(cu_host->wmsa_plan(&p, a, err));
    const int c = a->c, hd = a->head_dim;
    unsigned threads;
    size_t maxs;
    CRYO_TRY(launch_shape(&p, hd, &threads, &maxs, err));
    const size_t smem = tile_smem(&p, hd, 2); /* K and V */
    const int64_t nblocks = (int64_t)a->n * p.nwin_all * p.heads;
    if (nblocks > (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: window attention over %lld window-heads",
                       (long long)nblocks);
    /* bf16: the attention core as bf16 GEMMs (cuda_wmsa_bf16.cu), its scratch after ours */
    const int bf16 = ctx->precision == CRYO_NN_PRECISION_BF16;
    if (!bf16 && smem > maxs) /* the bf16 path keeps only the token lists in shared memory */
        return smem_too_small(smem, maxs, err);
    const size_t own = cache ? 0 : round256(sizeof(float) * p.tokens * (size_t)4 * c);
    const size_t extra = bf16 ? cu_wmsa_bf16_scratch(&p, c, 0) : 0;
    char *ws = NULL;
    if (own + extra) {
        ws = (char *)cu_host->workspace(ctx, own + extra, err);
        if (!ws)
            return CRYO_E_NOMEM;
    }
    float *qkv, *y, *att = NULL;
    if (cache) {
        qkv = cache;
        y = cache + p.tokens * (size_t)3 * c;
        att = y + p.tokens * (size_t)c;
    } else {
        qkv = (float *)ws;
        y = qkv + p.tokens * (size_t)3 * c;
    }
    const float scale = 1.0f / sqrtf((float)hd);
    CRYO_TRY(cu_linear_forward(ctx, qkv, inp, qkv_weight, qkv_bias, (int64_t)p.tokens, c, 3 * c, err));
    if (bf16) {
        CRYO_TRY(cu_wmsa_bf16_forward(ctx, y, att, qkv, rel_bias, &p, c, hd, a->window, scale, ws + own, err));
    } else if (hd == 16) {
        CRYO_TRY(allow_smem(k_wmsa_fwd<16>, smem, err));
        k_wmsa_fwd<16><<<(unsigned)nblocks, threads, smem>>>(y, att, qkv, rel_bias, p, c, hd, a->window, scale);
    } else {
        CRYO_TRY(allow_smem(k_wmsa_fwd<0>, smem, err));
        k_wmsa_fwd<0><<<(unsigned)nblocks, threads, smem>>>(y, att, qkv, rel_bias, p, c, hd, a->window, scale);
    }
    CRYO_TRY(cu_launched("window attention forward", err));
    return cu_linear_forward(ctx, out, y, proj_weight, proj_bias, (int64_t)p.tokens, c, c, err);
}

int cu_wmsa_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dqkv_weight, float *dqkv_bias, float *drel_bias,
                     float *dproj_weight, float *dproj_bias, const float *dout, const float *inp,
                     const float *cache, const float *qkv_weight, const float *rel_bias,
                     const float *proj_weight, const struct cryo_nn_wmsa *a, struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    CRYO_TRY(cu_host->wmsa_plan(&p, a, err));
    const int c = a->c, hd = a->head_dim;
    unsigned threads;
    size_t maxs;
    CRYO_TRY(launch_shape(&p, hd, &threads, &maxs, err));
    /* Q, K, V and dY in shared memory where they fit, else K and V only (k_wmsa_bwd) */
    const int four = tile_smem(&p, hd, 4) <= maxs;
    const size_t smem = tile_smem(&p, hd, four ? 4 : 2);
    const int64_t nwg = (int64_t)a->n * p.nwin_all, nblocks = nwg * p.heads;
    if (nblocks > (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: window attention over %lld window-heads",
                       (long long)nblocks);
    const int bf16 = ctx->precision == CRYO_NN_PRECISION_BF16;
    if (!bf16 && smem > maxs)
        return smem_too_small(smem, maxs, err);
    const size_t need = round256(sizeof(float) * (p.tokens * (size_t)4 * c + p.att));
    char *ws = (char *)cu_host->workspace(ctx, need + (bf16 ? cu_wmsa_bf16_scratch(&p, c, 1) : 0), err);
    if (!ws)
        return CRYO_E_NOMEM;
    float *dy = (float *)ws;
    float *dqkv = dy + p.tokens * (size_t)c, *dS = dqkv + p.tokens * (size_t)3 * c;
    const float *qkv = cache, *y = cache + p.tokens * (size_t)3 * c, *att = y + p.tokens * (size_t)c;
    const float scale = 1.0f / sqrtf((float)hd);

    CRYO_TRY(cu_linear_backward(ctx, dy, dproj_weight, dproj_bias, dout, y, proj_weight, (int64_t)p.tokens, c, c,
                                err));
    if (bf16) {
        CRYO_TRY(cu_wmsa_bf16_backward(ctx, dqkv, dS, qkv, dy, att, &p, c, hd, scale, ws + need, err));
    } else if (hd == 16 && four) {
        CRYO_TRY(allow_smem(k_wmsa_bwd<16, true>, smem, err));
        k_wmsa_bwd<16, true><<<(unsigned)nblocks, threads, smem>>>(dqkv, dS, qkv, dy, att, p, c, hd, scale);
    } else if (hd == 16) {
        CRYO_TRY(allow_smem(k_wmsa_bwd<16, false>, smem, err));
        k_wmsa_bwd<16, false><<<(unsigned)nblocks, threads, smem>>>(dqkv, dS, qkv, dy, att, p, c, hd, scale);
    } else if (four) {
        CRYO_TRY(allow_smem(k_wmsa_bwd<0, true>, smem, err));
        k_wmsa_bwd<0, true><<<(unsigned)nblocks, threads, smem>>>(dqkv, dS, qkv, dy, att, p, c, hd, scale);
    } else {
        CRYO_TRY(allow_smem(k_wmsa_bwd<0, false>, smem, err));
        k_wmsa_bwd<0, false><<<(unsigned)nblocks, threads, smem>>>(dqkv, dS, qkv, dy, att, p, c, hd, scale);
    }
    CRYO_TRY(cu_launched("window attention backward", err));
    if (drel_bias) {
        const size_t tabn = (size_t)p.heads * p.table * p.table * p.table;
        double *acc = (double *)cu_red_scratch(ctx, sizeof(double) * tabn, err);
        if (!acc)
            return CRYO_E_NOMEM;
        CRYO_TRY(cu_check(cudaMemsetAsync(acc, 0, sizeof(double) * tabn, 0), "memset", err));
        size_t pairs = (size_t)p.heads * p.ntmax * p.ntmax;
        int64_t chunks = nwg / 64 + 1;
        if (chunks > 256)
            chunks = 256;
        dim3 grid((unsigned)((pairs + 255) / 256), (unsigned)chunks);
        k_wmsa_drel<<<grid, 256>>>(acc, dS, p, a->window, nwg);
        k_wmsa_drel_fin<<<(unsigned)((tabn + 255) / 256), 256>>>(drel_bias, acc, tabn);
        CRYO_TRY(cu_launched("window attention bias gradient", err));
    }
    (void)rel_bias;
    return cu_linear_backward(ctx, dinp, dqkv_weight, dqkv_bias, dqkv, inp, qkv_weight, (int64_t)p.tokens, c,
                              3 * c, err);
}
