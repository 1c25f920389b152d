/* resample.c — Fourier crop/pad and separable real-space interpolation onto a new grid
 * (definitions and geometry in resample.h).
 *
 * Fourier path: each axis is a small table mapping every output frequency index to at most
 * two input indices with complex weights (phase ramp for the a'/2 - a/2 grid shift, the 1/2
 * of a split Nyquist plane, the 1/N of the unnormalised FFT folded into the z table). The
 * output spectrum is then one pass over the output: G[qz,qy,qx] = sum wz wy wx F[sz,sy,sx].
 * The x axis is the half axis of the r2c layout; cropping an even x size to an even size
 * merges the +-mx/2 planes, and the -mx/2 one lives only in the mirrored (y,z) half, so that
 * plane is finished in a second small pass: G = e^{i t} A(q) + e^{-i t} conj(A(-q)).
 * Plans are made once per shape pair and kept in the cryo_resampler with their buffers.
 *
 * Real-space path: separable passes x, then y, then z, each with a tap table per output
 * index (2 taps linear, 4 taps Keys cubic), indices clamped to the edge. */
#include "cryolvm/resample.h"
#include "cryolvm/mem.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_SIDE ((int64_t)1 << 30)

int cryo_resample_method_from_name(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "fourier") == 0)
        return CRYO_RESAMPLE_FOURIER;
    if (strcmp(name, "linear") == 0)
        return CRYO_RESAMPLE_LINEAR;
    if (strcmp(name, "cubic") == 0)
        return CRYO_RESAMPLE_CUBIC;
    return -1;
}

int cryo_resample_box_for_apix(const struct cryo_volume *v, const double apix_new[3], int64_t box[3],
                               struct cryo_error *err)
{
    const int64_t n[3] = {v->nx, v->ny, v->nz};
    static const char axis[3] = {'x', 'y', 'z'};
    for (int d = 0; d < 3; d++) {
        if (!(apix_new[d] > 0) || !isfinite(apix_new[d]))
            return cryo_fail(err, CRYO_E_INVALID, "voxel size along %c must be > 0 Å", axis[d]);
        if (!(v->apix[d] > 0))
            return cryo_fail(err, CRYO_E_INVALID, "input voxel size along %c is %g Å; cannot resample",
                             axis[d], v->apix[d]);
        double m = round((double)n[d] * v->apix[d] / apix_new[d]);
        if (!(m < (double)MAX_SIDE))
            return cryo_fail(err, CRYO_E_INVALID, "resampling to %g Å makes the %c side %.0f voxels (too large)",
                             apix_new[d], axis[d], m);
        box[d] = m < 1 ? 1 : (int64_t)m;
    }
    return CRYO_OK;
}

double cryo_keys_cubic(double t)
{
    const double a = -0.5;
    t = fabs(t);
    if (t <= 1)
        return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2)
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
}

static int check_input(const struct cryo_volume *in, const int64_t box[3], struct cryo_error *err)
{
    if (in->dtype != CRYO_DTYPE_F32 || !in->data)
        return cryo_fail(err, CRYO_E_INVALID, "resampling needs a float32 volume");
    for (int d = 0; d < 3; d++)
        if (box[d] < 1 || box[d] > MAX_SIDE)
            return cryo_fail(err, CRYO_E_INVALID, "new box side %lld out of range (1..2^30)", (long long)box[d]);
    return CRYO_OK;
}

/* A new volume with in's channels, placement and metadata (minus mrc.*), shape box. */
static int alloc_out(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                     struct cryo_error *err)
{
    struct cryo_volume t;
    cryo_volume_init(&t);
    CRYO_TRY(cryo_volume_alloc(&t, CRYO_DTYPE_F32, in->c, box[2], box[1], box[0], err));
    if (cryo_meta_copy(&t.meta, &in->meta, err) < 0) {
        cryo_volume_free(&t);
        return CRYO_E_NOMEM;
    }
    cryo_meta_remove_prefix(&t.meta, "mrc.");
    t.ndim = in->ndim;
    memcpy(t.apix, in->apix, sizeof t.apix);
    memcpy(t.origin, in->origin, sizeof t.origin);
    cryo_volume_move(out, &t);
    return CRYO_OK;
}

/* ---- crop / pad about the centre ------------------------------------------------ */

int cryo_volume_crop_pad(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                         double fill, struct cryo_error *err)
{
    CRYO_TRY(check_input(in, box, err));
    struct cryo_volume t;
    cryo_volume_init(&t);
    CRYO_TRY(alloc_out(&t, in, box, err));
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    int64_t shift[3]; /* input index = output index + shift */
    for (int d = 0; d < 3; d++) {
        shift[d] = n[d] / 2 - box[d] / 2;
        t.origin[d] = in->origin[d] + (double)shift[d] * in->apix[d];
    }
    const float f = (float)fill;
    const int64_t mx = box[0], my = box[1], mz = box[2];
    const int64_t rows = in->c * mz * my;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = r / (mz * my), k = (r / my) % mz, j = r % my;
        float *dst = (float *)t.data + (size_t)r * (size_t)mx;
        int64_t sk = k + shift[2], sj = j + shift[1];
        if (sk < 0 || sk >= n[2] || sj < 0 || sj >= n[1]) {
            for (int64_t i = 0; i < mx; i++)
                dst[i] = f;
            continue;
        }
        const float *src = (const float *)in->data + (((size_t)c * (size_t)n[2] + (size_t)sk) * (size_t)n[1] +
                                                      (size_t)sj) * (size_t)n[0];
        for (int64_t i = 0; i < mx; i++) {
            int64_t si = i + shift[0];
            dst[i] = si >= 0 && si < n[0] ? src[si] : f;
        }
    }
    cryo_volume_move(out, &t);
    return CRYO_OK;
}

/* ---- real-space interpolation --------------------------------------------------- */

struct taps {
    int n;         /* taps per output index: 2 or 4 */
    int64_t *idx;  /* [m][n] */
    float *w;      /* [m][n] */
};

static void taps_free(struct taps *t)
{
    free(t->idx);
    free(t->w);
}

static int64_t clamp_i(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Taps for n input samples of size a -> m output samples of size ap (box-edge aligned). */
static int taps_build(struct taps *t, int64_t n, double a, int64_t m, double ap, int cubic,
                      struct cryo_error *err)
{
    t->n = cubic ? 4 : 2;
    t->idx = cryo_alloc_array((size_t)m * (size_t)t->n, sizeof *t->idx, err);
    t->w = cryo_alloc_array((size_t)m * (size_t)t->n, sizeof *t->w, err);
    if (!t->idx || !t->w) {
        taps_free(t);
        return CRYO_E_NOMEM;
    }
    for (int64_t j = 0; j < m; j++) {
        double u = ((double)j + 0.5) * ap / a - 0.5;
        if (u < 0)
            u = 0;
        if (u > (double)(n - 1))
            u = (double)(n - 1);
        int64_t i0 = (int64_t)floor(u);
        double s = u - (double)i0;
        int64_t *ix = t->idx + j * t->n;
        float *w = t->w + j * t->n;
        if (!cubic) {
            ix[0] = clamp_i(i0, n), w[0] = (float)(1 - s);
            ix[1] = clamp_i(i0 + 1, n), w[1] = (float)s;
        } else {
            for (int k = 0; k < 4; k++) {
                ix[k] = clamp_i(i0 - 1 + k, n);
                w[k] = (float)cryo_keys_cubic(s - (double)(k - 1));
            }
        }
    }
    return CRYO_OK;
}

/* One separable pass along an axis. The volume is seen as [outer][len][inner]
 * (inner = 1 for x): dst[o][j][i] = sum_k w[j][k] src[o][idx[j][k]][i]. */
static void interp_pass(float *dst, const float *src, int64_t outer, int64_t n, int64_t m, int64_t inner,
                        const struct taps *t)
{
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        const float *s = src + (size_t)o * (size_t)n * (size_t)inner;
        float *d = dst + (size_t)o * (size_t)m * (size_t)inner;
        for (int64_t j = 0; j < m; j++) {
            const int64_t *ix = t->idx + j * t->n;
            const float *w = t->w + j * t->n;
            float *dr = d + (size_t)j * (size_t)inner;
            if (inner == 1) {
                float acc = 0;
                for (int k = 0; k < t->n; k++)
                    acc += w[k] * s[ix[k]];
                dr[0] = acc;
                continue;
            }
            for (int64_t i = 0; i < inner; i++)
                dr[i] = 0;
            for (int k = 0; k < t->n; k++) {
                const float *sr = s + (size_t)ix[k] * (size_t)inner;
                const float wk = w[k];
                for (int64_t i = 0; i < inner; i++)
                    dr[i] += wk * sr[i];
            }
        }
    }
}

static int resample_real(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                         const double ap[3], int cubic, struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    struct taps t[3];
    memset(t, 0, sizeof t);
    int st = CRYO_OK;
    for (int d = 0; d < 3 && st == CRYO_OK; d++)
        st = taps_build(&t[d], n[d], in->apix[d], box[d], ap[d], cubic, err);
    float *t1 = NULL, *t2 = NULL;
    struct cryo_volume o;
    cryo_volume_init(&o);
    size_t c1 = 0, c2 = 0, b1, b2;
    if (st == CRYO_OK)
        st = cryo_count4(in->c, n[2], n[1], box[0], &c1, err);
    if (st == CRYO_OK)
        st = cryo_count4(in->c, n[2], box[1], box[0], &c2, err);
    if (st == CRYO_OK)
        st = cryo_mul_size(c1, sizeof(float), &b1, err);
    if (st == CRYO_OK)
        st = cryo_mul_size(c2, sizeof(float), &b2, err);
    if (st == CRYO_OK && (!(t1 = cryo_alloc_big(b1, err)) || !(t2 = cryo_alloc_big(b2, err))))
        st = CRYO_E_NOMEM;
    if (st == CRYO_OK)
        st = alloc_out(&o, in, box, err);
    if (st == CRYO_OK) {
        interp_pass(t1, in->data, in->c * n[2] * n[1], n[0], box[0], 1, &t[0]);
        interp_pass(t2, t1, in->c * n[2], n[1], box[1], box[0], &t[1]);
        interp_pass(o.data, t2, in->c, n[2], box[2], box[1] * box[0], &t[2]);
        for (int d = 0; d < 3; d++) {
            o.origin[d] = in->origin[d] - in->apix[d] / 2 + ap[d] / 2;
            o.apix[d] = ap[d];
        }
        cryo_volume_move(out, &o);
    }
    cryo_volume_free(&o);
    cryo_free_big(t1);
    cryo_free_big(t2);
    for (int d = 0; d < 3; d++)
        taps_free(&t[d]);
    return st;
}

/* ---- Fourier crop / pad ----------------------------------------------------------- */

/* Up to two (source index, complex weight) pairs per output index of one axis. */
struct fmap {
    int n;
    int64_t src[2];
    float w[2][2]; /* re, im */
};

struct cryo_resampler {
    int64_t n[3], m[3];      /* input and output shapes, x y z */
    float *rin, *rout;       /* real buffers planned with; used when a channel is misaligned */
    fftwf_complex *fin, *fout;
    fftwf_plan fwd, inv;
    int align_in, align_out; /* fftwf_alignment_of the planned real arrays */
    fftwf_complex *plane;    /* my*mz scratch for the merged x-Nyquist plane */
};

int cryo_resampler_create(struct cryo_resampler **r, struct cryo_error *err)
{
    *r = cryo_alloc_array(1, sizeof **r, err);
    return *r ? CRYO_OK : CRYO_E_NOMEM;
}

static void resampler_reset(struct cryo_resampler *r)
{
    if (r->fwd)
        fftwf_destroy_plan(r->fwd);
    if (r->inv)
        fftwf_destroy_plan(r->inv);
    cryo_free_big(r->rin);
    cryo_free_big(r->rout);
    cryo_free_big(r->fin);
    cryo_free_big(r->fout);
    free(r->plane);
    memset(r, 0, sizeof *r);
}

void cryo_resampler_free(struct cryo_resampler *r)
{
    if (!r)
        return;
    resampler_reset(r);
    free(r);
}

static void *big_array(size_t n, size_t size, struct cryo_error *err)
{
    size_t bytes;
    if (cryo_mul_size(n, size, &bytes, err) < 0)
        return NULL;
    return cryo_alloc_big(bytes ? bytes : 1, err);
}

/* Plan for in shape n -> out shape m unless already planned. */
static int resampler_prepare(struct cryo_resampler *r, const int64_t n[3], const int64_t m[3],
                             struct cryo_error *err)
{
    static int threads_ready;
    if (r->fwd && memcmp(r->n, n, sizeof r->n) == 0 && memcmp(r->m, m, sizeof r->m) == 0)
        return CRYO_OK;
    resampler_reset(r);
    for (int d = 0; d < 3; d++)
        if (n[d] > INT32_MAX || m[d] > INT32_MAX)
            return cryo_fail(err, CRYO_E_UNSUPPORTED, "volume too large for FFTW");
    size_t nr, nc, mr, mc;
    CRYO_TRY(cryo_count4(1, n[2], n[1], n[0], &nr, err));
    CRYO_TRY(cryo_count4(1, n[2], n[1], n[0] / 2 + 1, &nc, err));
    CRYO_TRY(cryo_count4(1, m[2], m[1], m[0], &mr, err));
    CRYO_TRY(cryo_count4(1, m[2], m[1], m[0] / 2 + 1, &mc, err));
    r->rin = big_array(nr, sizeof(float), err);
    r->rout = big_array(mr, sizeof(float), err);
    r->fin = big_array(nc, sizeof(fftwf_complex), err);
    r->fout = big_array(mc, sizeof(fftwf_complex), err);
    r->plane = cryo_alloc_array((size_t)(m[1] * m[2]), sizeof(fftwf_complex), err);
    if (!r->rin || !r->rout || !r->fin || !r->fout || !r->plane) {
        resampler_reset(r);
        return CRYO_E_NOMEM;
    }
    if (!threads_ready)
        threads_ready = fftwf_init_threads() ? 1 : -1;
#ifdef _OPENMP
    if (threads_ready > 0)
        fftwf_plan_with_nthreads(omp_get_max_threads());
#endif
    /* FFTW_ESTIMATE plans without touching the arrays. */
    r->fwd = fftwf_plan_dft_r2c_3d((int)n[2], (int)n[1], (int)n[0], r->rin, r->fin, FFTW_ESTIMATE);
    r->inv = fftwf_plan_dft_c2r_3d((int)m[2], (int)m[1], (int)m[0], r->fout, r->rout, FFTW_ESTIMATE);
    if (!r->fwd || !r->inv) {
        resampler_reset(r);
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "FFTW could not plan a %lldx%lldx%lld -> %lldx%lldx%lld resampling",
                         (long long)n[0], (long long)n[1], (long long)n[2], (long long)m[0], (long long)m[1],
                         (long long)m[2]);
    }
    r->align_in = fftwf_alignment_of(r->rin);
    r->align_out = fftwf_alignment_of(r->rout);
    memcpy(r->n, n, sizeof r->n);
    memcpy(r->m, m, sizeof r->m);
    return CRYO_OK;
}

/* e^{2 pi i f s / L} with s/L = (1/m - 1/n)/2, times c. */
static void phase_w(float w[2], int64_t f, int64_t n, int64_t m, double c)
{
    double t = M_PI * (double)f * (1.0 / (double)m - 1.0 / (double)n);
    w[0] = (float)(c * cos(t));
    w[1] = (float)(c * sin(t));
}

/* Table for a full (y or z) axis, n -> m, every weight times `scale`. */
static void fmap_full(struct fmap *t, int64_t n, int64_t m, double scale)
{
    for (int64_t q = 0; q < m; q++) {
        struct fmap *e = &t[q];
        int64_t f = q <= (m - 1) / 2 ? q : q - m; /* even m: index m/2 is -m/2 */
        e->n = 0;
        if (m == n) {
            e->n = 1, e->src[0] = q;
            phase_w(e->w[0], f, n, m, scale);
        } else if (m > n) { /* pad */
            int64_t af = f < 0 ? -f : f;
            if (n % 2 == 0 && af == n / 2) {
                e->n = 1, e->src[0] = n / 2;
                phase_w(e->w[0], f, n, m, 0.5 * scale);
            } else if (af <= (n - 1) / 2) {
                e->n = 1, e->src[0] = f < 0 ? f + n : f;
                phase_w(e->w[0], f, n, m, scale);
            }
        } else { /* crop */
            if (m % 2 == 0 && q == m / 2) {
                e->n = 2;
                e->src[0] = m / 2, e->src[1] = n - m / 2;
                phase_w(e->w[0], m / 2, n, m, scale);
                phase_w(e->w[1], -m / 2, n, m, scale);
            } else {
                e->n = 1, e->src[0] = f < 0 ? f + n : f;
                phase_w(e->w[0], f, n, m, scale);
            }
        }
    }
}

/* Table for the half x axis; returns 1 if the plane mx/2 must be merged afterwards. */
static int fmap_half(struct fmap *t, int64_t n, int64_t m)
{
    int64_t mh = m / 2 + 1;
    int merge = 0;
    for (int64_t q = 0; q < mh; q++) {
        struct fmap *e = &t[q];
        e->n = 0;
        if (m == n) {
            e->n = 1, e->src[0] = q;
            phase_w(e->w[0], q, n, m, 1);
        } else if (m > n) {
            if (n % 2 == 0 && q == n / 2) {
                e->n = 1, e->src[0] = q;
                phase_w(e->w[0], q, n, m, 0.5);
            } else if (q <= (n - 1) / 2) {
                e->n = 1, e->src[0] = q;
                phase_w(e->w[0], q, n, m, 1);
            }
        } else {
            e->n = 1, e->src[0] = q;
            if (m % 2 == 0 && q == m / 2) {
                e->w[0][0] = 1, e->w[0][1] = 0; /* phases applied in the merge pass */
                merge = 1;
            } else {
                phase_w(e->w[0], q, n, m, 1);
            }
        }
    }
    return merge;
}

static void cmul_acc(float acc[2], const float w[2], const float f[2])
{
    acc[0] += w[0] * f[0] - w[1] * f[1];
    acc[1] += w[0] * f[1] + w[1] * f[0];
}

/* fout = mapped fin. */
static void spectrum_map(struct cryo_resampler *r, const struct fmap *tx, const struct fmap *ty,
                         const struct fmap *tz, int merge_x)
{
    const int64_t nhx = r->n[0] / 2 + 1, ny = r->n[1];
    const int64_t mhx = r->m[0] / 2 + 1, my = r->m[1], mz = r->m[2];
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < mz * my; row++) {
        int64_t qz = row / my, qy = row % my;
        fftwf_complex *g = r->fout + (size_t)row * (size_t)mhx;
        memset(g, 0, (size_t)mhx * sizeof *g);
        const struct fmap *ez = &tz[qz], *ey = &ty[qy];
        for (int a = 0; a < ez->n; a++)
            for (int b = 0; b < ey->n; b++) {
                float w[2] = {0, 0};
                cmul_acc(w, ez->w[a], ey->w[b]);
                const fftwf_complex *f = r->fin + ((size_t)ez->src[a] * (size_t)ny + (size_t)ey->src[b]) * (size_t)nhx;
                for (int64_t qx = 0; qx < mhx; qx++) {
                    const struct fmap *ex = &tx[qx];
                    if (ex->n == 0)
                        continue;
                    float wx[2] = {0, 0};
                    cmul_acc(wx, w, ex->w[0]);
                    cmul_acc(g[qx], wx, f[ex->src[0]]);
                }
            }
    }
    if (!merge_x)
        return;
    /* G(q) = e^{it} A(q) + e^{-it} conj(A(-q)) on the plane qx = mx/2. */
    const int64_t qx = r->m[0] / 2;
    float p[2];
    phase_w(p, qx, r->n[0], r->m[0], 1);
    for (int64_t qz = 0; qz < mz; qz++)
        for (int64_t qy = 0; qy < my; qy++) {
            const fftwf_complex *a = &r->fout[((size_t)qz * (size_t)my + (size_t)qy) * (size_t)mhx + (size_t)qx];
            r->plane[qz * my + qy][0] = (*a)[0];
            r->plane[qz * my + qy][1] = (*a)[1];
        }
    for (int64_t qz = 0; qz < mz; qz++)
        for (int64_t qy = 0; qy < my; qy++) {
            const float *a = r->plane[qz * my + qy];
            const float *b = r->plane[((mz - qz) % mz) * my + (my - qy) % my];
            float *g = r->fout[((size_t)qz * (size_t)my + (size_t)qy) * (size_t)mhx + (size_t)qx];
            const float bc[2] = {b[0], -b[1]}, pc[2] = {p[0], -p[1]};
            g[0] = g[1] = 0;
            cmul_acc(g, p, a);
            cmul_acc(g, pc, bc);
        }
}

static int resample_fourier(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                            struct cryo_resampler *r, struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    CRYO_TRY(resampler_prepare(r, n, box, err));
    struct cryo_volume o;
    cryo_volume_init(&o);
    CRYO_TRY(alloc_out(&o, in, box, err));
    const int64_t mhx = box[0] / 2 + 1;
    struct fmap *tx = cryo_alloc_array((size_t)mhx, sizeof *tx, err);
    struct fmap *ty = cryo_alloc_array((size_t)box[1], sizeof *ty, err);
    struct fmap *tz = cryo_alloc_array((size_t)box[2], sizeof *tz, err);
    if (!tx || !ty || !tz) {
        free(tx), free(ty), free(tz);
        cryo_volume_free(&o);
        return CRYO_E_NOMEM;
    }
    const double ntot = (double)n[0] * (double)n[1] * (double)n[2];
    int merge_x = fmap_half(tx, n[0], box[0]);
    fmap_full(ty, n[1], box[1], 1.0);
    fmap_full(tz, n[2], box[2], 1.0 / ntot); /* unnormalised FFT pair: keep the mean */
    const size_t nch = cryo_volume_channel_count(in), mch = cryo_volume_channel_count(&o);
    for (int64_t c = 0; c < in->c; c++) {
        float *src = (float *)in->data + (size_t)c * nch;
        float *dst = (float *)o.data + (size_t)c * mch;
        if (fftwf_alignment_of(src) == r->align_in) {
            fftwf_execute_dft_r2c(r->fwd, src, r->fin); /* r2c leaves its input intact */
        } else {
            memcpy(r->rin, src, nch * sizeof(float));
            fftwf_execute_dft_r2c(r->fwd, r->rin, r->fin);
        }
        spectrum_map(r, tx, ty, tz, merge_x);
        if (fftwf_alignment_of(dst) == r->align_out) {
            fftwf_execute_dft_c2r(r->inv, r->fout, dst);
        } else {
            fftwf_execute_dft_c2r(r->inv, r->fout, r->rout);
            memcpy(dst, r->rout, mch * sizeof(float));
        }
    }
    free(tx), free(ty), free(tz);
    for (int d = 0; d < 3; d++) {
        o.apix[d] = in->apix[d] * (double)n[d] / (double)box[d];
        o.origin[d] = in->origin[d] - in->apix[d] / 2 + o.apix[d] / 2;
    }
    cryo_volume_move(out, &o);
    return CRYO_OK;
}

int cryo_resample(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                  const double *apix_new, enum cryo_resample_method method, struct cryo_resampler *r,
                  struct cryo_error *err)
{
    CRYO_TRY(check_input(in, box, err));
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    for (int d = 0; d < 3; d++)
        if (!(in->apix[d] > 0))
            return cryo_fail(err, CRYO_E_INVALID, "input voxel size %g Å is not > 0; cannot resample", in->apix[d]);
    if (method == CRYO_RESAMPLE_FOURIER) {
        if (r)
            return resample_fourier(out, in, box, r, err);
        struct cryo_resampler *tmp = NULL;
        CRYO_TRY(cryo_resampler_create(&tmp, err));
        int st = resample_fourier(out, in, box, tmp, err);
        cryo_resampler_free(tmp);
        return st;
    }
    if (method != CRYO_RESAMPLE_LINEAR && method != CRYO_RESAMPLE_CUBIC)
        return cryo_fail(err, CRYO_E_INVALID, "unknown resampling method %d", (int)method);
    double ap[3];
    for (int d = 0; d < 3; d++) {
        ap[d] = apix_new ? apix_new[d] : in->apix[d] * (double)n[d] / (double)box[d];
        if (!(ap[d] > 0) || !isfinite(ap[d]))
            return cryo_fail(err, CRYO_E_INVALID, "new voxel size %g Å is not > 0", ap[d]);
    }
    return resample_real(out, in, box, ap, method == CRYO_RESAMPLE_CUBIC, err);
}
