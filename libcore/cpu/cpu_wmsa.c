/* cpu_wmsa.c — 3D window multi-head self-attention on the CPU (math in nn_layers.h).
 *
 * The idea: the two big projections (qkv: c -> 3c, output: c -> c) are token-wise, so they
 * commute with the cyclic shift and the window partition and run as single OpenBLAS sgemms
 * over all tokens in their natural NDHWC order. Only the attention itself is per window,
 * and there the shift, the partition and its reverse are fused into index arithmetic: each
 * window lists the token rows it owns (rolled position r reads original (r + shift) mod L),
 * gathers its q, k, v rows for one head into small contiguous tiles, does scores, bias,
 * mask and softmax in one pass, and writes its result rows straight back to their original
 * positions. No rolled copy or partitioned copy of the activations is ever made.
 *
 * The per-window matmuls are tiny (≤ 64 × 64 × 16), below where a BLAS call pays for its
 * overhead; they are written as loops whose inner dimension is contiguous (64 keys or 16
 * channels), which the compiler vectorises. Windows are independent, so OpenMP threads
 * take whole windows; each token belongs to exactly one window, so writes never collide.
 * The relative-position-bias gradient is the one reduction: per-thread tables, summed at
 * the end.
 *
 * Cache layout (floats): qkv [T × 3c] | y [T × c] | probabilities [N·windows·heads × nt²].
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cryolvm/mem.h"
#include "nn/wmsa_plan.h"

/* Per-window index tables. */
struct win_idx {
    int nt;       /* tokens in this window */
    int *tok;     /* [nt] row of each token in the T × ... token matrices */
    int *lab;     /* [nt] mask region (3 bits, one per shifted axis) */
    int *pos;     /* [3 × nt] local z, y, x of each token */
    int *rel;     /* [nt × nt] index into a head's (2w−1)³ bias table */
};

/* Fill the index tables of window `wi` of sample `s`. */
static void window_index(struct win_idx *wx, const struct cryo_nn_wmsa_plan *p, int window,
                         int s, int wi)
{
    int wz = wi / (p->nwin[1] * p->nwin[2]), wy = wi / p->nwin[2] % p->nwin[1],
        wxx = wi % p->nwin[2];
    int w0[3] = {wz * p->win[0], wy * p->win[1], wxx * p->win[2]};
    int ext[3];
    for (int a = 0; a < 3; a++) {
        int rest = p->len[a] - w0[a];
        ext[a] = rest < p->win[a] ? rest : p->win[a];
    }
    int nt = ext[0] * ext[1] * ext[2];
    wx->nt = nt;
    int *pz = wx->pos, *py = pz + nt, *px = py + nt;
    int i = 0;
    for (int z = 0; z < ext[0]; z++)
        for (int y = 0; y < ext[1]; y++)
            for (int x = 0; x < ext[2]; x++, i++) {
                int r[3] = {w0[0] + z, w0[1] + y, w0[2] + x}, o[3], lab = 0;
                for (int a = 0; a < 3; a++) {
                    o[a] = (r[a] + p->shift[a]) % p->len[a];
                    if (p->shift[a] && r[a] >= p->len[a] - p->shift[a])
                        lab |= 1 << a;
                }
                wx->tok[i] = (int)((((size_t)s * p->len[0] + o[0]) * p->len[1] + o[1]) * p->len[2] + o[2]);
                wx->lab[i] = lab;
                pz[i] = z;
                py[i] = y;
                px[i] = x;
            }
    int t = p->table, off = window - 1;
    for (int a = 0; a < nt; a++)
        for (int b = 0; b < nt; b++)
            wx->rel[a * nt + b] =
                ((pz[a] - pz[b] + off) * t + (py[a] - py[b] + off)) * t + (px[a] - px[b] + off);
}

/* Floats of per-thread scratch: tiles Q, K, V, Vt, dY, dQ, dK, dV (ntmax × hd each), S and
 * dP (ntmax²), the bias-gradient table (heads × table³), and the int index tables. */
static size_t thread_floats(const struct cryo_nn_wmsa_plan *p, int hd)
{
    size_t nt = (size_t)p->ntmax, tab = (size_t)p->table * p->table * p->table;
    size_t f = 8 * nt * hd + 2 * nt * nt + (size_t)p->heads * tab;
    f += 5 * nt + nt * nt; /* ints, same size as float */
    return (f + 15) & ~(size_t)15;
}

struct tiles {
    float *q, *k, *v, *vt, *dy, *dq, *dk, *dv, *s, *dp, *drel;
    struct win_idx ix;
};

static void tiles_at(struct tiles *t, float *base, const struct cryo_nn_wmsa_plan *p, int hd)
{
    size_t nt = (size_t)p->ntmax, th = nt * hd;
    t->q = base;
    t->k = t->q + th;
    t->v = t->k + th;
    t->vt = t->v + th;
    t->dy = t->vt + th;
    t->dq = t->dy + th;
    t->dk = t->dq + th;
    t->dv = t->dk + th;
    t->s = t->dv + th;
    t->dp = t->s + nt * nt;
    t->drel = t->dp + nt * nt;
    size_t tab = (size_t)p->table * p->table * p->table;
    int *ip = (int *)(t->drel + (size_t)p->heads * tab);
    t->ix.tok = ip;
    t->ix.lab = ip + nt;
    t->ix.pos = ip + 2 * nt;
    t->ix.rel = ip + 5 * nt;
}

/* Gather head h's q, k, v rows of the window into tiles (row-major nt × hd), plus Vᵀ. */
static void gather_qkv(struct tiles *t, const float *qkv, int c, int hd, int h, int want_vt)
{
    int nt = t->ix.nt;
    size_t c3 = (size_t)3 * c;
    for (int i = 0; i < nt; i++) {
        const float *row = qkv + (size_t)t->ix.tok[i] * c3 + (size_t)h * hd;
        memcpy(t->q + (size_t)i * hd, row, sizeof(float) * hd);
        memcpy(t->k + (size_t)i * hd, row + c, sizeof(float) * hd);
        memcpy(t->v + (size_t)i * hd, row + 2 * c, sizeof(float) * hd);
    }
    if (want_vt)
        for (int i = 0; i < nt; i++)
            for (int d = 0; d < hd; d++)
                t->vt[(size_t)d * nt + i] = t->v[(size_t)i * hd + d];
}

int cpu_wmsa_forward(struct cryo_nn_ctx *ctx, float *out, float *cache, const float *inp,
                     const float *qkv_weight, const float *qkv_bias, const float *rel_bias,
                     const float *proj_weight, const float *proj_bias, const struct cryo_nn_wmsa *a,
                     struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    CRYO_TRY(cryo_nn_wmsa_plan(&p, a, err));
    const int c = a->c, hd = a->head_dim, nt_max = p.ntmax;
    const int nthr = omp_get_max_threads();
    const size_t per = thread_floats(&p, hd);
    size_t need = (size_t)nthr * per, act = p.tokens * (size_t)4 * c;
    if (!cache)
        need += act; /* inference: qkv and y in the workspace, probabilities not kept */
    float *ws = cryo_nn_workspace(ctx, need * sizeof(float), err);
    if (!ws)
        return CRYO_E_NOMEM;
    float *qkv = cache ? cache : ws + (size_t)nthr * per;
    float *y = qkv + p.tokens * (size_t)3 * c;
    float *att = cache ? y + p.tokens * (size_t)c : NULL;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t tab = (size_t)p.table * p.table * p.table;

    CRYO_TRY(cpu_linear_forward(ctx, qkv, inp, qkv_weight, qkv_bias, (int64_t)p.tokens, c, 3 * c, err));

    const int64_t nwin = (int64_t)a->n * p.nwin_all;
#pragma omp parallel num_threads(nthr)
    {
        struct tiles t;
        tiles_at(&t, ws + (size_t)omp_get_thread_num() * per, &p, hd);
#pragma omp for schedule(dynamic, 4)
        for (int64_t wg = 0; wg < nwin; wg++) {
            window_index(&t.ix, &p, a->window, (int)(wg / p.nwin_all), (int)(wg % p.nwin_all));
            const int nt = t.ix.nt;
            for (int h = 0; h < p.heads; h++) {
                gather_qkv(&t, qkv, c, hd, h, 0);
                /* Kᵀ into vt's slot: scores read keys along a contiguous row */
                float *kt = t.vt;
                for (int i = 0; i < nt; i++)
                    for (int d = 0; d < hd; d++)
                        kt[(size_t)d * nt + i] = t.k[(size_t)i * hd + d];
                const float *bias = rel_bias + (size_t)h * tab;
                float *P = att ? att + ((size_t)wg * p.heads + h) * nt_max * nt_max : t.s;
                for (int i = 0; i < nt; i++) {
                    float *srow = P + (size_t)i * nt;
                    const float *qi = t.q + (size_t)i * hd;
                    for (int j = 0; j < nt; j++)
                        srow[j] = 0.0f;
                    for (int d = 0; d < hd; d++) {
                        float qd = qi[d];
                        const float *kr = kt + (size_t)d * nt;
#pragma omp simd
                        for (int j = 0; j < nt; j++)
                            srow[j] += qd * kr[j];
                    }
                    const int *rel = t.ix.rel + (size_t)i * nt;
                    float m = -INFINITY;
                    for (int j = 0; j < nt; j++) {
                        float v = srow[j] * scale + bias[rel[j]];
                        if (t.ix.lab[j] != t.ix.lab[i])
                            v = -INFINITY;
                        srow[j] = v;
                        m = v > m ? v : m;
                    }
                    float sum = 0.0f;
                    for (int j = 0; j < nt; j++) {
                        float e = expf(srow[j] - m); /* masked: exp(-inf) = 0 */
                        srow[j] = e;
                        sum += e;
                    }
                    float inv = 1.0f / sum; /* sum >= 1: the token attends to itself */
                    float *yr = y + (size_t)t.ix.tok[i] * c + (size_t)h * hd;
                    for (int d = 0; d < hd; d++)
                        yr[d] = 0.0f;
                    for (int j = 0; j < nt; j++) {
                        float pj = srow[j] * inv;
                        srow[j] = pj;
                        const float *vj = t.v + (size_t)j * hd;
#pragma omp simd
                        for (int d = 0; d < hd; d++)
                            yr[d] += pj * vj[d];
                    }
                }
            }
        }
    }
    return cpu_linear_forward(ctx, out, y, proj_weight, proj_bias, (int64_t)p.tokens, c, c, err);
}

int cpu_wmsa_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dqkv_weight, float *dqkv_bias,
                      float *drel_bias, float *dproj_weight, float *dproj_bias, const float *dout,
                      const float *inp, const float *cache, const float *qkv_weight,
                      const float *rel_bias, const float *proj_weight, const struct cryo_nn_wmsa *a,
                      struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    CRYO_TRY(cryo_nn_wmsa_plan(&p, a, err));
    const int c = a->c, hd = a->head_dim, nt_max = p.ntmax;
    const int nthr = omp_get_max_threads();
    const size_t per = thread_floats(&p, hd);
    const size_t tab = (size_t)p.table * p.table * p.table;
    size_t need = (size_t)nthr * per + p.tokens * (size_t)4 * c;
    float *ws = cryo_nn_workspace(ctx, need * sizeof(float), err);
    if (!ws)
        return CRYO_E_NOMEM;
    float *dy = ws + (size_t)nthr * per;          /* T × c */
    float *dqkv = dy + p.tokens * (size_t)c;       /* T × 3c */
    const float *qkv = cache, *y = cache + p.tokens * (size_t)3 * c;
    const float *att = y + p.tokens * (size_t)c;
    const float scale = 1.0f / sqrtf((float)hd);

    /* output projection */
    CRYO_TRY(cpu_linear_backward(ctx, dy, dproj_weight, dproj_bias, dout, y, proj_weight,
                                 (int64_t)p.tokens, c, c, err));

    const int64_t nwin = (int64_t)a->n * p.nwin_all;
    int used = 1;
#pragma omp parallel num_threads(nthr)
    {
        struct tiles t;
        tiles_at(&t, ws + (size_t)omp_get_thread_num() * per, &p, hd);
        memset(t.drel, 0, sizeof(float) * p.heads * tab);
        if (omp_get_thread_num() == 0)
            used = omp_get_num_threads();
#pragma omp for schedule(dynamic, 4)
        for (int64_t wg = 0; wg < nwin; wg++) {
            window_index(&t.ix, &p, a->window, (int)(wg / p.nwin_all), (int)(wg % p.nwin_all));
            const int nt = t.ix.nt;
            for (int h = 0; h < p.heads; h++) {
                gather_qkv(&t, qkv, c, hd, h, 1);
                for (int i = 0; i < nt; i++)
                    memcpy(t.dy + (size_t)i * hd, dy + (size_t)t.ix.tok[i] * c + (size_t)h * hd,
                           sizeof(float) * hd);
                memset(t.dq, 0, sizeof(float) * nt * hd);
                memset(t.dk, 0, sizeof(float) * nt * hd);
                memset(t.dv, 0, sizeof(float) * nt * hd);
                const float *P = att + ((size_t)wg * p.heads + h) * nt_max * nt_max;
                float *drel = t.drel + (size_t)h * tab;
                for (int i = 0; i < nt; i++) {
                    const float *pr = P + (size_t)i * nt, *dyi = t.dy + (size_t)i * hd;
                    float *dpr = t.dp;
                    /* dP = dY·Vᵀ (row i), dV += Pᵀ·dY */
                    for (int j = 0; j < nt; j++)
                        dpr[j] = 0.0f;
                    for (int d = 0; d < hd; d++) {
                        float g = dyi[d];
                        const float *vr = t.vt + (size_t)d * nt;
#pragma omp simd
                        for (int j = 0; j < nt; j++)
                            dpr[j] += g * vr[j];
                    }
                    for (int j = 0; j < nt; j++) {
                        float pj = pr[j];
                        float *dvj = t.dv + (size_t)j * hd;
#pragma omp simd
                        for (int d = 0; d < hd; d++)
                            dvj[d] += pj * dyi[d];
                    }
                    /* dS = P ⊙ (dP − Σ P·dP); masked entries have P = 0 */
                    float sdot = 0.0f;
                    for (int j = 0; j < nt; j++)
                        sdot += pr[j] * dpr[j];
                    const int *rel = t.ix.rel + (size_t)i * nt;
                    const float *qi = t.q + (size_t)i * hd;
                    float *dqi = t.dq + (size_t)i * hd;
                    for (int j = 0; j < nt; j++) {
                        float ds = pr[j] * (dpr[j] - sdot);
                        drel[rel[j]] += ds;
                        ds *= scale;
                        const float *kj = t.k + (size_t)j * hd;
                        float *dkj = t.dk + (size_t)j * hd;
#pragma omp simd
                        for (int d = 0; d < hd; d++) {
                            dqi[d] += ds * kj[d];
                            dkj[d] += ds * qi[d];
                        }
                    }
                }
                for (int i = 0; i < nt; i++) {
                    float *row = dqkv + (size_t)t.ix.tok[i] * 3 * c + (size_t)h * hd;
                    memcpy(row, t.dq + (size_t)i * hd, sizeof(float) * hd);
                    memcpy(row + c, t.dk + (size_t)i * hd, sizeof(float) * hd);
                    memcpy(row + 2 * c, t.dv + (size_t)i * hd, sizeof(float) * hd);
                }
            }
        }
    }
    if (drel_bias)
        for (int i = 0; i < used; i++) {
            struct tiles t;
            tiles_at(&t, ws + (size_t)i * per, &p, hd);
            const float *part = t.drel;
            for (size_t k = 0; k < (size_t)p.heads * tab; k++)
                drel_bias[k] += part[k];
        }
    (void)rel_bias;
    /* qkv projection */
    return cpu_linear_backward(ctx, dinp, dqkv_weight, dqkv_bias, dqkv, inp, qkv_weight,
                               (int64_t)p.tokens, c, 3 * c, err);
}
