/* cpu_wmsa.c — 3D window multi-head self-attention on the CPU (math in nn_layers.h).
 *
 * The idea: the two big projections (qkv: c -> 3c, output: c -> c) are token-wise, so they
 * commute with the cyclic shift and the window partition and run as single OpenBLAS sgemms
 * over all tokens in their natural NDHWC order. Only the attention itself is per window,
 * and there the shift, the partition and its reverse are fused into index arithmetic: each
 * window lists the token rows it owns (rolled position r reads original (r + shift) mod L),
 * gathers its q, k, v rows for one head into small contiguous tiles, does scores, bias,
 * mask and softmax in one pass over a row held in registers, and writes its result rows
 * straight back to their original positions. No rolled or partitioned copy of the
 * activations is ever made.
 *
 * The per-window matmuls are tiny (≤ 64 × 64 × 16), below where a BLAS call pays for its
 * overhead. CryoLVM's shape (window 4 → ≤ 64 tokens, head dim 16) has a path with
 * compile-time tile sizes: tiles padded to 64 tokens (padding keys masked, padding values
 * zero), every loop a fixed trip count the compiler unrolls and vectorises, accumulators
 * in registers. Other shapes take a generic path with the same arithmetic. Windows are
 * independent, so OpenMP threads take whole windows; each token belongs to exactly one
 * window, so writes never collide. The relative-position-bias gradient is the one
 * reduction: full windows all share one (query, key) -> table-entry map, so each thread
 * sums their dS matrices densely and maps them through the table once at the end; partial
 * windows scatter directly.
 *
 * Cache layout (floats): qkv [T × 3c] | y [T × c] | probabilities [N·windows·heads ×
 * ntmax × ntmax] (row i of a window's matrix at i·ntmax, columns < its token count).
 */
/* Let the compiler fuse a·b + c into one FMA in these kernels (ISO C mode turns that off
 * by default); it only changes rounding, by at most half an ulp per operation. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/cpu_math.h"
#include "cryolvm/mem.h"
#include "nn/wmsa_plan.h"

#define NT 64 /* fast path: tokens per window (padded) */
#define HD 16 /* fast path: head dimension */

/* Per-window index tables (row stride of rel: ntmax). */
struct win_idx {
    int nt;      /* tokens in this window */
    int ext[3];  /* extent of the window along D, H, W; rel is valid for this extent */
    int *tok;    /* [ntmax] row of each token in the T × ... token matrices */
    int *lab;    /* [ntmax] mask region (3 bits, one per shifted axis); −1 for padding */
    int *rel;    /* [ntmax × ntmax] index into a head's (2w−1)³ bias table; 0 for padding */
};

static int full_window(const struct win_idx *x, const struct cryo_nn_wmsa_plan *p)
{
    return x->ext[0] == p->win[0] && x->ext[1] == p->win[1] && x->ext[2] == p->win[2];
}

/* Table entry of local token a vs b in a window of extent e. */
static int rel_of(int a, int b, const int e[3], int table, int window)
{
    int az = a / (e[1] * e[2]), ay = a / e[2] % e[1], ax = a % e[2];
    int bz = b / (e[1] * e[2]), by = b / e[2] % e[1], bx = b % e[2];
    int off = window - 1;
    return ((az - bz + off) * table + (ay - by + off)) * table + (ax - bx + off);
}

/* Fill the index tables of window `wi` of sample `s`. The rel table is recomputed only when
 * the window extent differs from the previous window's (it rarely does). */
static void window_index(struct win_idx *wx, const struct cryo_nn_wmsa_plan *p, int window,
                         int s, int wi)
{
    int wc[3] = {wi / (p->nwin[1] * p->nwin[2]), wi / p->nwin[2] % p->nwin[1], wi % p->nwin[2]};
    int w0[3], ext[3];
    for (int a = 0; a < 3; a++) {
        w0[a] = wc[a] * p->win[a];
        int rest = p->len[a] - w0[a];
        ext[a] = rest < p->win[a] ? rest : p->win[a];
    }
    int nt = ext[0] * ext[1] * ext[2], i = 0;
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
            }
    for (; i < p->ntmax; i++) {
        wx->tok[i] = -1;
        wx->lab[i] = -1;
    }
    if (wx->nt != nt || memcmp(wx->ext, ext, sizeof ext) != 0) {
        const int m = p->ntmax, T = p->table, off = window - 1;
        for (int a = 0; a < m; a++) {
            int *row = wx->rel + (size_t)a * m, b = 0;
            if (a < nt) {
                int az = a / (ext[1] * ext[2]), ay = a / ext[2] % ext[1], ax = a % ext[2];
                for (int bz = 0; bz < ext[0]; bz++)
                    for (int by = 0; by < ext[1]; by++) {
                        int base = ((az - bz + off) * T + (ay - by + off)) * T + ax + off;
                        for (int bx = 0; bx < ext[2]; bx++)
                            row[b++] = base - bx;
                    }
            }
            for (; b < m; b++)
                row[b] = 0;
        }
        memcpy(wx->ext, ext, sizeof ext);
        wx->nt = nt;
    }
}

struct tiles {
    float *q, *k, *v, *vt, *dy, *dq, *dk, *dv; /* ntmax × hd (vt: hd × ntmax) */
    float *s;    /* ntmax × ntmax: a score row (forward), dS (backward) */
    float *drel; /* heads × table³: bias gradient from partial windows */
    float *dsum; /* heads × ntmax²: Σ dS over full windows */
    struct win_idx ix;
};

static size_t thread_floats(const struct cryo_nn_wmsa_plan *p, int hd)
{
    size_t nt = (size_t)p->ntmax, tab = (size_t)p->table * p->table * p->table;
    size_t f = 8 * nt * hd + nt * nt + (size_t)p->heads * (tab + nt * nt);
    f += 2 * nt + nt * nt; /* int tables, same size as float */
    return (f + 15) & ~(size_t)15;
}

static void tiles_at(struct tiles *t, float *base, const struct cryo_nn_wmsa_plan *p, int hd)
{
    size_t nt = (size_t)p->ntmax, th = nt * hd, tab = (size_t)p->table * p->table * p->table;
    float **f[] = {&t->q, &t->k, &t->v, &t->vt, &t->dy, &t->dq, &t->dk, &t->dv};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        *f[i] = base + i * th;
    t->s = base + 8 * th;
    t->drel = t->s + nt * nt;
    t->dsum = t->drel + (size_t)p->heads * tab;
    int *ip = (int *)(t->dsum + (size_t)p->heads * nt * nt);
    t->ix.tok = ip;
    t->ix.lab = ip + nt;
    t->ix.rel = ip + 2 * nt;
    t->ix.nt = -1; /* force the first rel computation */
}

/* Gather head h's q, k, v rows of the window into row-major ntmax × hd tiles (padding rows
 * zero), plus Vᵀ or Kᵀ (hd × ntmax) into vt. */
static void gather_qkv(struct tiles *t, const float *qkv, int c, int hd, int h, int ntmax,
                       int transpose_k)
{
    int nt = t->ix.nt;
    size_t c3 = (size_t)3 * c;
    for (int i = 0; i < nt; i++) {
        const float *row = qkv + (size_t)t->ix.tok[i] * c3 + (size_t)h * hd;
        memcpy(t->q + (size_t)i * hd, row, sizeof(float) * hd);
        memcpy(t->k + (size_t)i * hd, row + c, sizeof(float) * hd);
        memcpy(t->v + (size_t)i * hd, row + 2 * c, sizeof(float) * hd);
    }
    if (nt < ntmax) {
        size_t pad = sizeof(float) * (size_t)(ntmax - nt) * hd;
        memset(t->q + (size_t)nt * hd, 0, pad);
        memset(t->k + (size_t)nt * hd, 0, pad);
        memset(t->v + (size_t)nt * hd, 0, pad);
    }
    const float *src = transpose_k ? t->k : t->v;
    for (int i = 0; i < ntmax; i++)
        for (int d = 0; d < hd; d++)
            t->vt[(size_t)d * ntmax + i] = src[(size_t)i * hd + d];
}

/* ---- forward of one head in one window -------------------------------------------------- */

/* Fast path: ntmax == NT (padded), hd == HD, written with GCC vector types so that a score
 * row (64 floats = 4 AVX-512 registers) and an output row (16 floats) stay in registers.
 * bfull: this head's bias for a full window as a dense NT × NT matrix (NULL: gather through
 * rel, for partial windows). P: this head's probabilities, row stride NT. */
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int i16u __attribute__((vector_size(64), aligned(4)));
typedef int i16 __attribute__((vector_size(64)));
static inline v16 ld(const float *p) { return *(const v16u *)p; }
/* lane-wise m ? a : b (m all-ones or zero per lane; C has no vector ?:) */
static inline v16 vsel(i16 m, v16 a, v16 b) { return (v16)(((i16)a & m) | ((i16)b & ~m)); }
static inline v16 splat(float x) { return (v16){0} + x; }

/* cpu_expf (cpu_math.h) on 16 lanes: same clamp, reduction and polynomial. */
static inline v16 v_exp(v16 x)
{
    x = vsel(x < splat(-87.0f), splat(-87.0f), x);
    x = vsel(x > splat(88.0f), splat(88.0f), x);
    v16 kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    v16 r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
    v16 p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    i16 bits = (__builtin_convertvector(kf, i16) + 127) << 23;
    return p * (v16)bits;
}

/* Horizontal sum and maximum by halving instead of a 16-step scalar chain. */
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
static inline float hsum(v16 v)
{
    v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}
static inline v8 vmax8(v8 a, v8 b)
{
    typedef int i8v __attribute__((vector_size(32)));
    i8v m = a > b;
    return (v8)(((i8v)a & m) | ((i8v)b & ~m));
}
static inline float hmax(v16 v)
{
    v8 a = vmax8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7),
                 __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
    float m0 = a[0] > a[4] ? a[0] : a[4], m1 = a[1] > a[5] ? a[1] : a[5];
    float m2 = a[2] > a[6] ? a[2] : a[6], m3 = a[3] > a[7] ? a[3] : a[7];
    m0 = m0 > m2 ? m0 : m2;
    m1 = m1 > m3 ? m1 : m3;
    return m0 > m1 ? m0 : m1;
}
static inline void st(float *p, v16 v) { *(v16u *)p = v; }

/* gather_qkv for head dim 16: one 64-byte load/store per row instead of a memcpy call. */
static void gather_qkv_fast(struct tiles *t, const float *qkv, int c, int h, int transpose_k)
{
    const int nt = t->ix.nt;
    const size_t c3 = (size_t)3 * c;
    const v16 zero = {0};
    for (int i = 0; i < nt; i++) {
        const float *row = qkv + (size_t)t->ix.tok[i] * c3 + (size_t)h * HD;
        st(t->q + i * HD, ld(row));
        st(t->k + i * HD, ld(row + c));
        st(t->v + i * HD, ld(row + 2 * c));
    }
    for (int i = nt; i < NT; i++) {
        st(t->q + i * HD, zero);
        st(t->k + i * HD, zero);
        st(t->v + i * HD, zero);
    }
    const float *restrict src = transpose_k ? t->k : t->v;
    float *restrict dst = t->vt;
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 16
        for (int d = 0; d < HD; d++)
            dst[d * NT + i] = src[i * HD + d];
}

static void head_fwd_fast(float *restrict P, float *restrict y, int c, int h, const struct tiles *t,
                          const float *restrict bias, const float *restrict bfull, float scale)
{
    const int nt = t->ix.nt;
    const float *restrict q = t->q, *restrict kt = t->vt, *restrict v = t->v;
    const int *restrict lab = t->ix.lab;
    const v16 ninf = (v16){0} - INFINITY, zero = {0};
    for (int i = 0; i < nt; i++) {
        v16 s[4] = {zero, zero, zero, zero};
#pragma GCC unroll 16
        for (int d = 0; d < HD; d++) {
            float qd = q[i * HD + d];
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++)
                s[b] += qd * ld(kt + d * NT + 16 * b);
        }
        float brow[NT];
        if (bfull) {
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++)
                st(brow + 16 * b, ld(bfull + i * NT + 16 * b));
        } else {
            const int *restrict rel = t->ix.rel + i * NT;
            for (int j = 0; j < NT; j++)
                brow[j] = bias[rel[j]];
        }
        const int li = lab[i];
        v16 m = ninf;
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            i16u lb = *(const i16u *)(lab + 16 * b);
            s[b] = vsel(lb == li, s[b] * scale + ld(brow + 16 * b), ninf);
            m = vsel(s[b] > m, s[b], m);
        }
        const float mx = hmax(m);
        v16 vs = zero;
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            s[b] = vsel(s[b] == ninf, zero, v_exp(s[b] - mx)); /* masked: exactly 0 */
            vs += s[b];
        }
        float inv = 1.0f / hsum(vs); /* sum >= 1: the token attends to itself */
        float *restrict pr = P + i * NT;
        v16 acc[4] = {zero, zero, zero, zero};
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++)
            st(pr + 16 * b, s[b] * inv);
        /* padding rows of v are zero and their probabilities 0: run all NT, 4 chains */
#pragma GCC unroll 4
        for (int j = 0; j < NT; j += 4)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++)
                acc[u] += pr[j + u] * ld(v + (j + u) * HD);
        st(y + (size_t)t->ix.tok[i] * c + (size_t)h * HD, (acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
}

/* Windows of at least this many tokens (global attention) do their matmuls with sgemm. */
#define BLAS_TOKENS 128

/* Generic path: any ntmax and hd; kt = t->vt with row stride ntmax; P row stride ntmax.
 * Small windows: loops along contiguous rows, the output row accumulated in the t->dq tile
 * (restrict: stays in registers or L1). Large windows: S = Q·Kᵀ and Y = P·V by sgemm
 * (single-threaded inside this OpenMP thread), only bias, mask and softmax in between. */
static void head_fwd_generic(float *restrict P, float *restrict y, int c, int h, int hd, int ntmax,
                             struct tiles *t, const float *restrict bias, float scale)
{
    const int nt = t->ix.nt, blas = nt >= BLAS_TOKENS;
    const float *restrict q = t->q, *restrict kt = t->vt, *restrict v = t->v;
    const int *restrict lab = t->ix.lab;
    float *restrict acc = t->dq;
    if (blas)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nt, hd, 1.0f, q, hd, t->k, hd, 0.0f,
                    P, ntmax);
    for (int i = 0; i < nt; i++) {
        float *restrict srow = P + (size_t)i * ntmax;
        if (!blas) {
            for (int j = 0; j < nt; j++)
                srow[j] = 0.0f;
            for (int d = 0; d < hd; d++) {
                const float qd = q[(size_t)i * hd + d];
                const float *restrict kr = kt + (size_t)d * ntmax;
#pragma omp simd
                for (int j = 0; j < nt; j++)
                    srow[j] += qd * kr[j];
            }
        }
        const int *restrict rel = t->ix.rel + (size_t)i * ntmax;
        const int li = lab[i];
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int j = 0; j < nt; j++) {
            float val = lab[j] == li ? srow[j] * scale + bias[rel[j]] : -INFINITY;
            srow[j] = val;
            m = val > m ? val : m;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < nt; j++) {
            float e = srow[j] == -INFINITY ? 0.0f : cpu_expf(srow[j] - m);
            srow[j] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < nt; j++)
            srow[j] *= inv;
        if (blas)
            continue;
        for (int d = 0; d < hd; d++)
            acc[d] = 0.0f;
        for (int j = 0; j < nt; j++) {
            const float pj = srow[j];
            const float *restrict vj = v + (size_t)j * hd;
#pragma omp simd
            for (int d = 0; d < hd; d++)
                acc[d] += pj * vj[d];
        }
        memcpy(y + (size_t)t->ix.tok[i] * c + (size_t)h * hd, acc, sizeof(float) * hd);
    }
    if (blas) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hd, nt, 1.0f, P, ntmax, v, hd, 0.0f,
                    acc, hd);
        for (int i = 0; i < nt; i++)
            memcpy(y + (size_t)t->ix.tok[i] * c + (size_t)h * hd, acc + (size_t)i * hd, sizeof(float) * hd);
    }
}

int cpu_wmsa_forward(struct cryo_nn_ctx *ctx, float *out, float *cache, const float *inp,
                     const float *qkv_weight, const float *qkv_bias, const float *rel_bias,
                     const float *proj_weight, const float *proj_bias, const struct cryo_nn_wmsa *a,
                     struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    CRYO_TRY(cryo_nn_wmsa_plan(&p, a, err));
    const int c = a->c, hd = a->head_dim, ntmax = p.ntmax;
    const int fast = ntmax == NT && hd == HD;
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

    /* Fast path: every full window has the same bias matrix per head; expand it once (in
     * the first thread's dsum area, unused by the forward) so rows need no gather. */
    float *bfull = NULL;
    if (fast) {
        struct tiles t0;
        tiles_at(&t0, ws, &p, hd);
        bfull = t0.dsum;
        for (int h = 0; h < p.heads; h++)
            for (int i = 0; i < NT; i++)
                for (int j = 0; j < NT; j++)
                    bfull[((size_t)h * NT + i) * NT + j] =
                        rel_bias[(size_t)h * tab + rel_of(i, j, p.win, p.table, a->window)];
    }

    /* Work items: a window with all its heads, or, when there are too few windows to keep
     * the threads busy (global attention over small grids), a window and one head. */
    const int64_t nwin = (int64_t)a->n * p.nwin_all;
    const int hper = nwin >= 4 * nthr ? p.heads : 1, hgroups = p.heads / hper;
    const int64_t nitems = nwin * hgroups;
#pragma omp parallel num_threads(nthr)
    {
        struct tiles t;
        tiles_at(&t, ws + (size_t)omp_get_thread_num() * per, &p, hd);
        int64_t last = -1;
#pragma omp for schedule(dynamic, 4)
        for (int64_t it = 0; it < nitems; it++) {
            const int64_t wg = it / hgroups;
            const int h0 = (int)(it % hgroups) * hper;
            if (wg != last) {
                window_index(&t.ix, &p, a->window, (int)(wg / p.nwin_all), (int)(wg % p.nwin_all));
                last = wg;
            }
            const int full = full_window(&t.ix, &p);
            for (int h = h0; h < h0 + hper; h++) {
                if (fast)
                    gather_qkv_fast(&t, qkv, c, h, 1);
                else
                    gather_qkv(&t, qkv, c, hd, h, ntmax, 1);
                float *P = att ? att + ((size_t)wg * p.heads + h) * ntmax * ntmax : t.s;
                if (fast)
                    head_fwd_fast(P, y, c, h, &t, rel_bias + (size_t)h * tab,
                                  full ? bfull + (size_t)h * NT * NT : NULL, scale);
                else
                    head_fwd_generic(P, y, c, h, hd, ntmax, &t, rel_bias + (size_t)h * tab, scale);
            }
        }
    }
    return cpu_linear_forward(ctx, out, y, proj_weight, proj_bias, (int64_t)p.tokens, c, c, err);
}

/* ---- backward of one head in one window ------------------------------------------------- */

/* Fast path. In: P (row stride NT), t->q, t->k, t->vt = Vᵀ, t->dy (padding rows zero).
 * Out: t->dq, t->dk, t->dv (rows < nt), bias gradient into dsum (full window) or drel
 * (partial window). */
static void head_bwd_fast(const float *restrict P, struct tiles *t, float *restrict dsum,
                          float *restrict drel, float scale)
{
    const int nt = t->ix.nt;
    const float *restrict q = t->q, *restrict k = t->k, *restrict vt = t->vt, *restrict dy = t->dy;
    float *restrict ds = t->s;
    const v16 zero = {0};
    for (int i = 0; i < nt; i++) {
        const float *restrict pr = P + i * NT;
        v16 dp[4] = {zero, zero, zero, zero};
#pragma GCC unroll 16
        for (int d = 0; d < HD; d++) {
            float g = dy[i * HD + d];
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++)
                dp[b] += g * ld(vt + d * NT + 16 * b);
        }
        /* P is 0 at masked and padding entries, so sums may run over all NT */
        v16 pd = zero;
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++)
            pd += ld(pr + 16 * b) * dp[b];
        const float sdot = hsum(pd);
        float *restrict dsr = ds + i * NT;
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++)
            st(dsr + 16 * b, ld(pr + 16 * b) * (dp[b] - sdot));
        if (dsum) {
            float *restrict sr = dsum + i * NT;
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++)
                st(sr + 16 * b, ld(sr + 16 * b) + ld(dsr + 16 * b));
        } else {
            const int *rel = t->ix.rel + i * NT;
            for (int j = 0; j < nt; j++)
                drel[rel[j]] += dsr[j];
        }
        v16 acc[4] = {zero, zero, zero, zero};
#pragma GCC unroll 4
        for (int j = 0; j < NT; j += 4)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++)
                acc[u] += dsr[j + u] * ld(k + (j + u) * HD);
        st(t->dq + i * HD, ((acc[0] + acc[1]) + (acc[2] + acc[3])) * scale);
    }
    for (int i = nt; i < NT; i++) /* rows the j loop below reads */
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++)
            st(ds + i * NT + 16 * b, zero);
    /* dV = Pᵀ·dY, dK = dSᵀ·Q, two key rows at a time (4 independent FMA chains; rows i < nt
     * of P and dS are zero beyond column nt, so the odd partner row j + 1 is harmless) */
    for (int j = 0; j < nt; j += 2) {
        v16 av0 = zero, av1 = zero, ak0 = zero, ak1 = zero;
        for (int i = 0; i < nt; i++) {
            v16 g = ld(dy + i * HD), qi = ld(q + i * HD);
            av0 += P[i * NT + j] * g;
            av1 += P[i * NT + j + 1] * g;
            ak0 += ds[i * NT + j] * qi;
            ak1 += ds[i * NT + j + 1] * qi;
        }
        st(t->dv + j * HD, av0);
        st(t->dv + (j + 1) * HD, av1);
        st(t->dk + j * HD, ak0 * scale);
        st(t->dk + (j + 1) * HD, ak1 * scale);
    }
}

/* Generic backward, in the fast path's two passes: rows of dS (kept in t->s) with dQ, then
 * dV and dK per key row; every inner loop runs along a contiguous head row. */
static void head_bwd_generic(const float *restrict P, struct tiles *t, float *restrict drel, int hd,
                             int ntmax, float scale)
{
    const int nt = t->ix.nt;
    const float *restrict q = t->q, *restrict k = t->k, *restrict vt = t->vt, *restrict dy = t->dy;
    float *restrict ds = t->s, *restrict dq = t->dq, *restrict dk = t->dk, *restrict dv = t->dv;
    const int blas = nt >= BLAS_TOKENS;
    if (blas) /* dP = dY·Vᵀ for all rows at once */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nt, hd, 1.0f, dy, hd, t->v, hd, 0.0f,
                    ds, ntmax);
    for (int i = 0; i < nt; i++) {
        const float *restrict pr = P + (size_t)i * ntmax;
        float *restrict dsr = ds + (size_t)i * ntmax;
        if (!blas) {
            for (int j = 0; j < nt; j++)
                dsr[j] = 0.0f;
            for (int d = 0; d < hd; d++) { /* dP row into dsr */
                const float g = dy[(size_t)i * hd + d];
                const float *restrict vr = vt + (size_t)d * ntmax;
#pragma omp simd
                for (int j = 0; j < nt; j++)
                    dsr[j] += g * vr[j];
            }
        }
        float sdot = 0.0f;
#pragma omp simd reduction(+ : sdot)
        for (int j = 0; j < nt; j++)
            sdot += pr[j] * dsr[j];
        const int *restrict rel = t->ix.rel + (size_t)i * ntmax;
        for (int j = 0; j < nt; j++) {
            const float sij = pr[j] * (dsr[j] - sdot); /* masked entries: P = 0 */
            dsr[j] = sij;
            drel[rel[j]] += sij;
        }
        if (blas)
            continue;
        float *restrict dqi = dq + (size_t)i * hd;
        for (int d = 0; d < hd; d++)
            dqi[d] = 0.0f;
        for (int j = 0; j < nt; j++) {
            const float sij = dsr[j];
            const float *restrict kj = k + (size_t)j * hd;
#pragma omp simd
            for (int d = 0; d < hd; d++)
                dqi[d] += sij * kj[d];
        }
        for (int d = 0; d < hd; d++)
            dqi[d] *= scale;
    }
    if (blas) /* dQ = scale·dS·K */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hd, nt, scale, ds, ntmax, k, hd, 0.0f,
                    dq, hd);
    /* dV = Pᵀ·dY and dK = scale·dSᵀ·Q read P and dS by columns: with windows of hundreds of
     * tokens (global attention) that walks a megabyte at a stride, so hand both to sgemm
     * (single-threaded inside this OpenMP thread, see cpu_linear.c). */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nt, hd, nt, 1.0f, P, ntmax, dy, hd, 0.0f,
                dv, hd);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nt, hd, nt, scale, ds, ntmax, q, hd, 0.0f,
                dk, hd);
}

int cpu_wmsa_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dqkv_weight, float *dqkv_bias,
                      float *drel_bias, float *dproj_weight, float *dproj_bias, const float *dout,
                      const float *inp, const float *cache, const float *qkv_weight,
                      const float *rel_bias, const float *proj_weight, const struct cryo_nn_wmsa *a,
                      struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    CRYO_TRY(cryo_nn_wmsa_plan(&p, a, err));
    const int c = a->c, hd = a->head_dim, ntmax = p.ntmax;
    const int fast = ntmax == NT && hd == HD;
    const int nthr = omp_get_max_threads();
    const size_t per = thread_floats(&p, hd);
    const size_t tab = (size_t)p.table * p.table * p.table, nn = (size_t)ntmax * ntmax;
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
    const int hper = nwin >= 4 * nthr ? p.heads : 1, hgroups = p.heads / hper;
    const int64_t nitems = nwin * hgroups;
    int used = 1;
#pragma omp parallel num_threads(nthr)
    {
        struct tiles t;
        tiles_at(&t, ws + (size_t)omp_get_thread_num() * per, &p, hd);
        memset(t.drel, 0, sizeof(float) * p.heads * tab);
        if (fast)
            memset(t.dsum, 0, sizeof(float) * p.heads * nn);
        if (omp_get_thread_num() == 0)
            used = omp_get_num_threads();
        int64_t last = -1;
        /* static: each thread sums its own items into its drel copy, so the bias gradient is
         * bit-reproducible for a given thread count (dynamic would reorder the float sums) */
#pragma omp for schedule(static)
        for (int64_t it = 0; it < nitems; it++) {
            const int64_t wg = it / hgroups;
            const int h0 = (int)(it % hgroups) * hper;
            if (wg != last) {
                window_index(&t.ix, &p, a->window, (int)(wg / p.nwin_all), (int)(wg % p.nwin_all));
                last = wg;
            }
            const int nt = t.ix.nt, full = full_window(&t.ix, &p);
            for (int h = h0; h < h0 + hper; h++) {
                const float *P = att + ((size_t)wg * p.heads + h) * nn;
                if (fast) {
                    gather_qkv_fast(&t, qkv, c, h, 0);
                    const v16 zero = {0};
                    for (int i = 0; i < nt; i++)
                        st(t.dy + i * HD, ld(dy + (size_t)t.ix.tok[i] * c + (size_t)h * HD));
                    for (int i = nt; i < NT; i++)
                        st(t.dy + i * HD, zero);
                    head_bwd_fast(P, &t, full ? t.dsum + (size_t)h * nn : NULL, t.drel + (size_t)h * tab,
                                  scale);
                    for (int i = 0; i < nt; i++) {
                        float *row = dqkv + (size_t)t.ix.tok[i] * 3 * c + (size_t)h * HD;
                        st(row, ld(t.dq + i * HD));
                        st(row + c, ld(t.dk + i * HD));
                        st(row + 2 * c, ld(t.dv + i * HD));
                    }
                    continue;
                }
                gather_qkv(&t, qkv, c, hd, h, ntmax, 0);
                for (int i = 0; i < nt; i++)
                    memcpy(t.dy + (size_t)i * hd, dy + (size_t)t.ix.tok[i] * c + (size_t)h * hd,
                           sizeof(float) * hd);
                head_bwd_generic(P, &t, t.drel + (size_t)h * tab, hd, ntmax, scale);
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
            for (size_t k = 0; k < (size_t)p.heads * tab; k++)
                drel_bias[k] += t.drel[k];
            if (!fast)
                continue;
            for (int h = 0; h < p.heads; h++)
                for (int qi = 0; qi < ntmax; qi++)
                    for (int kj = 0; kj < ntmax; kj++)
                        drel_bias[(size_t)h * tab + rel_of(qi, kj, p.win, p.table, a->window)] +=
                            t.dsum[(size_t)h * nn + (size_t)qi * ntmax + kj];
        }
    (void)rel_bias;
    /* qkv projection */
    return cpu_linear_backward(ctx, dinp, dqkv_weight, dqkv_bias, dqkv, inp, qkv_weight,
                               (int64_t)p.tokens, c, 3 * c, err);
}
