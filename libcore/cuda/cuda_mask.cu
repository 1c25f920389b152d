/* cuda_mask.cu — the JEPA/MAE trainers' token-mask ops on the GPU (backend_impl.h; the CPU's
 * cpu_mask.c is the reference): the masked context input and the MAE target rows, both
 * copies and so exact, the JEPA predictor's mask-token rows (a float add per element forward;
 * backward one thread per column summing the masked rows in t order in float, as the CPU),
 * and the collapse statistics.
 *
 * The statistics repeat the CPU's arithmetic operation for operation and in the same order —
 * one thread per row for the layer-norm moments, one per (sample, channel) for the sums over
 * rows and that column's mean and standard deviation, one for the final sums over channels
 * and samples — with every double product and sum written as
 * an _rn intrinsic, which nvcc never contracts into an FMA (the CPU build is ISO C, where GCC
 * contracts nothing), so they equal the CPU's bit for bit. The work is tiny next to a step
 * (T·F reads); only the two doubles come back. */
#include <math.h>

#include "cuda/cuda_priv.h"

#define PER 256

#define GRID_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* out[v] = in[v], or 0 where voxel v's token is masked; v over n·d·h·w·C (out == in allowed:
 * each element is read and written by one thread) */
__global__ void k_mask_patches(float *out, const float *in, const float *rowmask, size_t total, int d, int h, int w,
                               int C, int p)
{
    const size_t gd = (size_t)(d / p), gh = (size_t)(h / p), gw = (size_t)(w / p);
    GRID_LOOP(i, total)
    {
        size_t vox = i / (size_t)C;
        size_t x = vox % (size_t)w, y = vox / (size_t)w % (size_t)h, r = vox / ((size_t)w * (size_t)h);
        size_t z = r % (size_t)d, s = r / (size_t)d;
        size_t tok = ((s * gd + z / (size_t)p) * gh + y / (size_t)p) * gw + x / (size_t)p;
        out[i] = rowmask[tok] != 0.0f ? 0.0f : in[i];
    }
}

/* out[k·W + j] (W = p³·C): voxel (a, b, c) of token k's patch, channel ch, j = ((a·p + b)·p
 * + c)·C + ch */
__global__ void k_patchify(float *out, const float *in, size_t total, int d, int h, int w, int C, int p)
{
    const size_t P = (size_t)p, gd = (size_t)d / P, gh = (size_t)h / P, gw = (size_t)w / P, per = gd * gh * gw;
    const size_t W = P * P * P * (size_t)C;
    GRID_LOOP(o, total)
    {
        size_t k = o / W, j = o % W;
        size_t ch = j % (size_t)C, vox = j / (size_t)C;
        size_t a = vox / (P * P), b = vox / P % P, c = vox % P;
        size_t s = k / per, r = k % per;
        size_t tz = r / (gh * gw), ty = r / gw % gh, tx = r % gw;
        out[o] = in[(((s * (size_t)d + tz * P + a) * (size_t)h + ty * P + b) * (size_t)w + tx * P + c) * (size_t)C + ch];
    }
}

/* z[i] = token[i mod E] + pos[i] where row i / E is masked, i over T·E; one float add,
 * written _rn as on the CPU */
__global__ void k_mask_rows(float *z, const float *rowmask, const float *token, const float *pos, size_t total,
                            size_t E)
{
    GRID_LOOP(i, total)
    {
        if (rowmask[i / E] != 0.0f)
            z[i] = __fadd_rn(token[i % E], pos[i]);
    }
}

/* one thread per column c: dtoken[c] += g[t·E + c] over the masked rows in increasing t,
 * summed in float in that order as the CPU, each such element then zeroed (only this thread
 * touches column c: no race; a warp reads consecutive columns of one row) */
__global__ void k_mask_rows_backward(float *dtoken, float *g, const float *rowmask, size_t T, size_t E)
{
    GRID_LOOP(c, E)
    {
        float acc = dtoken[c];
        for (size_t t = 0; t < T; t++)
            if (rowmask[t] != 0.0f) {
                acc = __fadd_rn(acc, g[t * E + c]);
                g[t * E + c] = 0.0f;
            }
        dtoken[c] = acc;
    }
}

/* per row k: mu[k], rs[k] = 1/sqrt(var + 1e-5), two passes over the row in column order */
__global__ void k_rowstats(const float *x, size_t T, size_t E, double *mu, double *rs)
{
    GRID_LOOP(k, T)
    {
        const float *r = x + k * E;
        double m = 0.0, var = 0.0;
        for (size_t i = 0; i < E; i++)
            m = __dadd_rn(m, (double)r[i]);
        m = __ddiv_rn(m, (double)E);
        for (size_t i = 0; i < E; i++) {
            double dv = __dsub_rn((double)r[i], m);
            var = __dadd_rn(var, __dmul_rn(dv, dv));
        }
        mu[k] = m;
        rs[k] = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(__ddiv_rn(var, (double)E), 1e-5)));
    }
}

/* per (sample s, channel i), u = s·E + i: over the rows k of sample s in order, the sums of v
 * and v², v = the normalised value rounded to float; then mean[u] = Σv/per and sd[u] =
 * sqrt(max(Σv²/per − mean², 0)) */
__global__ void k_colsums(const float *x, int n, size_t per, size_t E, const double *mu, const double *rs,
                          double *mean, double *sd)
{
    GRID_LOOP(u, (size_t)n * E)
    {
        size_t s = u / E, i = u % E;
        double a = 0.0, q = 0.0;
        for (size_t k = s * per; k < (s + 1) * per; k++) {
            double v = (double)__double2float_rn(__dmul_rn(__dsub_rn((double)x[k * E + i], mu[k]), rs[k]));
            a = __dadd_rn(a, v);
            q = __dadd_rn(q, __dmul_rn(v, v));
        }
        double m = __ddiv_rn(a, (double)per), var = __dsub_rn(__ddiv_rn(q, (double)per), __dmul_rn(m, m));
        mean[u] = m;
        sd[u] = __dsqrt_rn(var > 0 ? var : 0.0);
    }
}

/* one thread: the sums over channels and samples, channel-major as the CPU; out[0] tokens,
 * out[1] samples */
__global__ void k_spread(const double *mean, const double *sd, int n, size_t E, double *out)
{
    if (blockIdx.x != 0 || threadIdx.x != 0)
        return;
    double tok = 0.0, smp = 0.0;
    for (size_t i = 0; i < E; i++) {
        double gsum = 0.0, gsq = 0.0;
        for (int s = 0; s < n; s++) {
            double m = mean[(size_t)s * E + i];
            tok = __dadd_rn(tok, sd[(size_t)s * E + i]);
            gsum = __dadd_rn(gsum, m);
            gsq = __dadd_rn(gsq, __dmul_rn(m, m));
        }
        double gm = __ddiv_rn(gsum, (double)n), gv = __dsub_rn(__ddiv_rn(gsq, (double)n), __dmul_rn(gm, gm));
        smp = __dadd_rn(smp, n > 1 ? __dsqrt_rn(gv > 0 ? gv : 0.0) : 0.0);
    }
    out[0] = __ddiv_rn(tok, __dmul_rn((double)E, (double)n));
    out[1] = __ddiv_rn(smp, (double)E);
}

int cu_mask_patches(struct cryo_nn_ctx *ctx, float *out, const float *in, const float *rowmask, int n, int d, int h,
                    int w, int C, int p, struct cryo_error *err)
{
    size_t total = (size_t)n * (size_t)d * (size_t)h * (size_t)w * (size_t)C;
    k_mask_patches<<<cu_blocks(total, PER), PER>>>(out, in, rowmask, total, d, h, w, C, p);
    return cu_launched("mask patches", err);
}

int cu_mask_rows(struct cryo_nn_ctx *ctx, float *z, const float *rowmask, const float *token, const float *pos,
                 int64_t T, int E, struct cryo_error *err)
{
    size_t total = (size_t)T * (size_t)E;
    k_mask_rows<<<cu_blocks(total, PER), PER>>>(z, rowmask, token, pos, total, (size_t)E);
    return cu_launched("mask rows", err);
}

int cu_mask_rows_backward(struct cryo_nn_ctx *ctx, float *dtoken, float *g, const float *rowmask, int64_t T, int E,
                          struct cryo_error *err)
{
    k_mask_rows_backward<<<cu_blocks((size_t)E, PER), PER>>>(dtoken, g, rowmask, (size_t)T, (size_t)E);
    return cu_launched("mask rows backward", err);
}

int cu_patchify(struct cryo_nn_ctx *ctx, float *out, const float *in, int n, int d, int h, int w, int C, int p,
                struct cryo_error *err)
{
    size_t total = (size_t)n * (size_t)d * (size_t)h * (size_t)w * (size_t)C; /* T rows of p³·C */
    k_patchify<<<cu_blocks(total, PER), PER>>>(out, in, total, d, h, w, C, p);
    return cu_launched("patchify", err);
}

int cu_collapse_stats(struct cryo_nn_ctx *ctx, double *tokens, double *samples, const float *x, int n, size_t per,
                      int F, struct cryo_error *err)
{
    size_t T = (size_t)n * per, E = (size_t)F, nE = (size_t)n * E;
    /* scratch (doubles): the result, then mu, rs (T each), mean, sd (n·E each) */
    double *res = (double *)cu_red_scratch(ctx, (2 + 2 * T + 2 * nE) * sizeof(double), err);
    if (!res)
        return CRYO_E_NOMEM; /* recorded by cu_red_scratch */
    double *mu = res + 2, *rs = mu + T, *mean = rs + T, *sd = mean + nE;
    k_rowstats<<<cu_blocks(T, PER), PER>>>(x, T, E, mu, rs);
    CRYO_TRY(cu_launched("collapse statistics: row moments", err));
    k_colsums<<<cu_blocks(nE, PER), PER>>>(x, n, per, E, mu, rs, mean, sd);
    CRYO_TRY(cu_launched("collapse statistics: sums", err));
    k_spread<<<1, 1>>>(mean, sd, n, E, res);
    CRYO_TRY(cu_launched("collapse statistics", err));
    double h[2];
    CRYO_TRY(cu_check(cudaMemcpy(h, res, sizeof h, cudaMemcpyDeviceToHost), "collapse statistics", err));
    *tokens = h[0];
    *samples = h[1];
    return CRYO_OK;
}
