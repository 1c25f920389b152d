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
 * Onto a grid (cryo_resample_to_grid, sizes from resample_plan.c) the input is padded on the
 * fly, plane by plane, to the transform size N (a linear ramp from the last voxel back to
 * the first), the phase ramps put output sample 0 at any input coordinate, and the inverse
 * makes only the kept samples; an up-sampling's zero rows and x columns are skipped.
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

/* A new volume with in's channels, placement and metadata (minus mrc.*), shape box; its
 * data is `buf` (from cryo_alloc_big, big enough; taken over only on success) or new. */
static int alloc_out(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3], void *buf,
                     struct cryo_error *err)
{
    struct cryo_volume t;
    cryo_volume_init(&t);
    if (buf) {
        t.dtype = CRYO_DTYPE_F32;
        t.c = in->c, t.nz = box[2], t.ny = box[1], t.nx = box[0];
        t.data = buf;
    } else {
        CRYO_TRY(cryo_volume_alloc(&t, CRYO_DTYPE_F32, in->c, box[2], box[1], box[0], err));
    }
    if (cryo_meta_copy(&t.meta, &in->meta, err) < 0) {
        if (buf)
            t.data = NULL;
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
    CRYO_TRY(alloc_out(&t, in, box, NULL, err));
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

/* Taps for n input samples -> m output samples at input coordinates u0 + j step. */
static int taps_build(struct taps *t, int64_t n, int64_t m, double u0, double step, int cubic,
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
        double u = u0 + (double)j * step;
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

/* out (shape box) = in interpolated at input coordinates u0 + j step along each axis;
 * placement (apix, origin) is the caller's. */
static int real_core(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3], const double u0[3],
                     const double step[3], int cubic, struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    struct taps t[3];
    memset(t, 0, sizeof t);
    int st = CRYO_OK;
    for (int d = 0; d < 3 && st == CRYO_OK; d++)
        st = taps_build(&t[d], n[d], box[d], u0[d], step[d], cubic, err);
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
        st = alloc_out(&o, in, box, NULL, err);
    if (st == CRYO_OK) {
        interp_pass(t1, in->data, in->c * n[2] * n[1], n[0], box[0], 1, &t[0]);
        interp_pass(t2, t1, in->c * n[2], n[1], box[1], box[0], &t[1]);
        interp_pass(o.data, t2, in->c, n[2], box[2], box[1] * box[0], &t[2]);
        cryo_volume_move(out, &o);
    }
    cryo_volume_free(&o);
    cryo_free_big(t1);
    cryo_free_big(t2);
    for (int d = 0; d < 3; d++)
        taps_free(&t[d]);
    return st;
}

/* Box-edge aligned real-space resampling to voxel size ap (cryo_resample). */
static int resample_real(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                         const double ap[3], int cubic, struct cryo_error *err)
{
    double u0[3], step[3];
    for (int d = 0; d < 3; d++) {
        step[d] = ap[d] / in->apix[d];
        u0[d] = (step[d] - 1) / 2;
    }
    struct cryo_volume o;
    cryo_volume_init(&o);
    CRYO_TRY(real_core(&o, in, box, u0, step, cubic, err));
    for (int d = 0; d < 3; d++) {
        o.origin[d] = in->origin[d] - in->apix[d] / 2 + ap[d] / 2;
        o.apix[d] = ap[d];
    }
    cryo_volume_move(out, &o);
    return CRYO_OK;
}

/* ---- Fourier crop / pad ----------------------------------------------------------- */

/* Up to two (source index, complex weight) pairs per output index of one axis. */
struct fmap {
    int n;
    int64_t src[2];
    float w[2][2]; /* re, im */
};

/* The 3-D transforms are done axis by axis with batched 1-D FFTW plans (FFTW_ESTIMATE plans
 * of 1-D batches are good, unlike ESTIMATE plans of large 3-D transforms, and MEASURE
 * planning costs seconds per shape), pruned to what the new box needs: x, then y on each z
 * plane (only the kept x columns), the y map into B (kept y rows only), then z on gathered
 * contiguous lines with the z and x maps written straight into the output spectrum G; the
 * inverse runs z, then y and x per plane. Planes and lines are spread over OpenMP threads;
 * each thread executes the shared plans on its own scratch (new-array execute). */
struct cryo_resampler {
    int64_t n[3], m[3];     /* input and output transform shapes, x y z */
    int64_t k[3];           /* output samples kept (k <= m): the inverse makes only these */
    int64_t nhx, mhx, kx;   /* half x sizes; x columns kept from the input */
    int64_t bs, gs;         /* plane strides of B and G (complex elements; gs even) */
    fftwf_complex *b, *g;   /* B: nz x my x kx; G: mz planes of my x kx (the x columns
                               above kx of an x pad are zero and not stored) */
    fftwf_complex *crow;    /* nt x (ky * mhx): G rows widened to mhx for the c2r */
    size_t crow_n;
    size_t b_bytes;         /* B's allocation: also big enough for a one-channel output */
    int nt;                 /* threads the scratch is made for */
    fftwf_complex *plane;   /* nt x (ny * nhx): x/y scratch of one input plane */
    fftwf_complex *lines;   /* nt x max(kx * nz, mhx * mz): z lines */
    float *rbuf;            /* nt x max(ny * nx, my * mx): misaligned real planes */
    size_t plane_n, lines_n, rbuf_n;
    fftwf_plan px, py, pz, pzi, pyi, pxi;
    int align_r;            /* alignment the real-plane plans were made for */
    fftwf_complex *merge;   /* my * mz: the merged x-Nyquist plane */
    double u0[3];           /* input voxel coordinate of output sample 0 (this call) */
    float *edge;            /* a z pad's ends: input planes 0 and nz-1, padded in x and y */
};

int cryo_resampler_create(struct cryo_resampler **r, struct cryo_error *err)
{
    *r = cryo_alloc_array(1, sizeof **r, err);
    return *r ? CRYO_OK : CRYO_E_NOMEM;
}

static void resampler_reset(struct cryo_resampler *r)
{
    fftwf_plan *p[6] = {&r->px, &r->py, &r->pz, &r->pzi, &r->pyi, &r->pxi};
    for (int i = 0; i < 6; i++)
        if (*p[i])
            fftwf_destroy_plan(*p[i]);
    cryo_free_big(r->b);
    cryo_free_big(r->g);
    cryo_free_big(r->plane);
    cryo_free_big(r->lines);
    cryo_free_big(r->rbuf);
    cryo_free_big(r->crow);
    free(r->merge);
    cryo_free_big(r->edge);
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
    if (cryo_mul_size(n ? n : 1, size, &bytes, err) < 0)
        return NULL;
    return cryo_alloc_big(bytes, err);
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Plan for in shape n -> out shape m, of which k is kept, unless already planned. */
static int resampler_prepare(struct cryo_resampler *r, const int64_t n[3], const int64_t m[3], const int64_t k[3],
                             struct cryo_error *err)
{
    static int threads_ready;
    int nt = max_threads();
    if (r->px && memcmp(r->n, n, sizeof r->n) == 0 && memcmp(r->m, m, sizeof r->m) == 0 &&
        memcmp(r->k, k, sizeof r->k) == 0 && r->nt == nt)
        return CRYO_OK;
    resampler_reset(r);
    for (int d = 0; d < 3; d++)
        if (n[d] > INT32_MAX / 4 || m[d] > INT32_MAX / 4)
            return cryo_fail(err, CRYO_E_UNSUPPORTED, "volume too large for FFTW");
    const int64_t nhx = n[0] / 2 + 1, mhx = m[0] / 2 + 1, kx = nhx < mhx ? nhx : mhx;
    r->nhx = nhx, r->mhx = mhx, r->kx = kx, r->nt = nt;
    r->bs = m[1] * kx;
    r->gs = (m[1] * kx + 1) & ~(int64_t)1; /* 16-byte aligned planes for FFTW */
    r->crow_n = ((size_t)(k[1] * mhx) + 7) & ~(size_t)7;
    size_t nb, ng;
    CRYO_TRY(cryo_count4(1, 1, n[2], r->bs, &nb, err));
    CRYO_TRY(cryo_count4(1, 1, m[2], r->gs, &ng, err));
    r->plane_n = (size_t)(n[1] * nhx);
    r->lines_n = (size_t)(kx * n[2] > mhx * m[2] ? kx * n[2] : mhx * m[2]);
    r->rbuf_n = (size_t)(n[1] * n[0] > m[1] * m[0] ? n[1] * n[0] : m[1] * m[0]);
    /* keep per-thread scratch 64-byte aligned */
    r->plane_n = (r->plane_n + 7) & ~(size_t)7;
    r->lines_n = (r->lines_n + 7) & ~(size_t)7;
    r->rbuf_n = (r->rbuf_n + 15) & ~(size_t)15;
    size_t mr;
    CRYO_TRY(cryo_count4(1, k[2], k[1], k[0], &mr, err));
    r->b_bytes = nb * sizeof(fftwf_complex) > mr * sizeof(float) ? nb * sizeof(fftwf_complex) : mr * sizeof(float);
    r->b = cryo_alloc_big(r->b_bytes, err);
    r->g = big_array(ng, sizeof(fftwf_complex), err);
    r->plane = big_array((size_t)nt * r->plane_n, sizeof(fftwf_complex), err);
    r->lines = big_array((size_t)nt * r->lines_n, sizeof(fftwf_complex), err);
    r->rbuf = big_array((size_t)nt * r->rbuf_n, sizeof(float), err);
    r->crow = big_array((size_t)nt * r->crow_n, sizeof(fftwf_complex), err);
    r->merge = cryo_alloc_array((size_t)(m[1] * m[2]), sizeof(fftwf_complex), err);
    if (!r->b || !r->g || !r->plane || !r->lines || !r->rbuf || !r->merge || !r->crow) {
        resampler_reset(r);
        return CRYO_E_NOMEM;
    }
    if (!threads_ready)
        threads_ready = fftwf_init_threads() ? 1 : -1;
    if (threads_ready > 0)
        fftwf_plan_with_nthreads(1); /* parallel over planes and lines instead */
    const unsigned fl = FFTW_ESTIMATE; /* plans without touching the arrays */
    const int inx = (int)n[0], iny = (int)n[1], inz = (int)n[2];
    const int imx = (int)m[0], imy = (int)m[1], imz = (int)m[2], iky = (int)k[1];
    /* x: r2c of the ny rows of a plane; y: kx columns of that plane, stride nhx */
    r->px = fftwf_plan_many_dft_r2c(1, &inx, iny, r->rbuf, NULL, 1, inx, r->plane, NULL, 1, (int)nhx, fl);
    r->py = fftwf_plan_many_dft(1, &iny, (int)kx, r->plane, NULL, (int)nhx, 1, r->plane, NULL, (int)nhx, 1,
                                FFTW_FORWARD, fl);
    /* z: kx contiguous lines of nz */
    r->pz = fftwf_plan_many_dft(1, &inz, (int)kx, r->lines, NULL, 1, inz, r->lines, NULL, 1, inz, FFTW_FORWARD, fl);
    /* inverse z: kx contiguous lines of mz; y: kx columns of a G plane (the columns above are
     * zero padding); x: c2r of the ky kept rows */
    r->pzi = fftwf_plan_many_dft(1, &imz, (int)kx, r->lines, NULL, 1, imz, r->lines, NULL, 1, imz, FFTW_BACKWARD, fl);
    r->pyi = fftwf_plan_many_dft(1, &imy, (int)kx, r->g, NULL, (int)kx, 1, r->g, NULL, (int)kx, 1, FFTW_BACKWARD, fl);
    r->pxi = fftwf_plan_many_dft_c2r(1, &imx, iky, r->crow, NULL, 1, (int)mhx, r->rbuf, NULL, 1, imx, fl);
    if (!r->px || !r->py || !r->pz || !r->pzi || !r->pyi || !r->pxi) {
        resampler_reset(r);
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "FFTW could not plan a %lldx%lldx%lld -> %lldx%lldx%lld resampling",
                         (long long)n[0], (long long)n[1], (long long)n[2], (long long)m[0], (long long)m[1],
                         (long long)m[2]);
    }
    r->align_r = fftwf_alignment_of(r->rbuf);
    memcpy(r->n, n, sizeof r->n);
    memcpy(r->m, m, sizeof r->m);
    memcpy(r->k, k, sizeof r->k);
    return CRYO_OK;
}

/* c e^{2 pi i f u0 / n}: output sample 0 at input voxel coordinate u0. */
static void phase_w(float w[2], int64_t f, int64_t n, double u0, double c)
{
    double t = 2 * M_PI * (double)f * u0 / (double)n;
    w[0] = (float)(c * cos(t));
    w[1] = (float)(c * sin(t));
}

/* Table for a full (y or z) axis, n -> m, every weight times `scale`. */
static void fmap_full(struct fmap *t, int64_t n, int64_t m, double u0, double scale)
{
    for (int64_t q = 0; q < m; q++) {
        struct fmap *e = &t[q];
        int64_t f = q <= (m - 1) / 2 ? q : q - m; /* even m: index m/2 is -m/2 */
        e->n = 0;
        if (m == n) {
            e->n = 1, e->src[0] = q;
            phase_w(e->w[0], f, n, u0, scale);
        } else if (m > n) { /* pad */
            int64_t af = f < 0 ? -f : f;
            if (n % 2 == 0 && af == n / 2) {
                e->n = 1, e->src[0] = n / 2;
                phase_w(e->w[0], f, n, u0, 0.5 * scale);
            } else if (af <= (n - 1) / 2) {
                e->n = 1, e->src[0] = f < 0 ? f + n : f;
                phase_w(e->w[0], f, n, u0, scale);
            }
        } else { /* crop */
            if (m % 2 == 0 && q == m / 2) {
                e->n = 2;
                e->src[0] = m / 2, e->src[1] = n - m / 2;
                phase_w(e->w[0], m / 2, n, u0, scale);
                phase_w(e->w[1], -m / 2, n, u0, scale);
            } else {
                e->n = 1, e->src[0] = f < 0 ? f + n : f;
                phase_w(e->w[0], f, n, u0, scale);
            }
        }
    }
}

/* Table for the half x axis; returns 1 if the plane mx/2 must be merged afterwards. */
static int fmap_half(struct fmap *t, int64_t n, int64_t m, double u0)
{
    int64_t mh = m / 2 + 1;
    int merge = 0;
    for (int64_t q = 0; q < mh; q++) {
        struct fmap *e = &t[q];
        e->n = 0;
        if (m == n) {
            e->n = 1, e->src[0] = q;
            phase_w(e->w[0], q, n, u0, 1);
        } else if (m > n) {
            if (n % 2 == 0 && q == n / 2) {
                e->n = 1, e->src[0] = q;
                phase_w(e->w[0], q, n, u0, 0.5);
            } else if (q <= (n - 1) / 2) {
                e->n = 1, e->src[0] = q;
                phase_w(e->w[0], q, n, u0, 1);
            }
        } else {
            e->n = 1, e->src[0] = q;
            if (m % 2 == 0 && q == m / 2) {
                e->w[0][0] = 1, e->w[0][1] = 0; /* phases applied in the merge pass */
                merge = 1;
            } else {
                phase_w(e->w[0], q, n, u0, 1);
            }
        }
    }
    return merge;
}

static inline void cmul_acc(float acc[2], const float w[2], const float f[2])
{
    acc[0] += w[0] * f[0] - w[1] * f[1];
    acc[1] += w[0] * f[1] + w[1] * f[0];
}

/* dst (Ny x Nx) = the plane src (ny x nx) padded at the high end of x, then of y over the
 * padded rows, by a linear ramp from the last voxel back to the first. With the same ramp
 * between the padded planes nz-1 and 0 along z (forward_map), the periodic continuation the
 * FFT sees is continuous (resample.h, "Onto a grid"). */
static void pad_plane(float *dst, const float *src, int64_t nx, int64_t ny, int64_t Nx, int64_t Ny)
{
    for (int64_t j = 0; j < ny; j++) {
        const float *s = src + (size_t)j * (size_t)nx;
        float *d = dst + (size_t)j * (size_t)Nx;
        memcpy(d, s, (size_t)nx * sizeof(float));
        for (int64_t i = nx; i < Nx; i++) {
            const float t = (float)(i - nx + 1) / (float)(Nx - nx + 1);
            d[i] = (1 - t) * s[nx - 1] + t * s[0];
        }
    }
    const float *lo = dst + (size_t)(ny - 1) * (size_t)Nx, *hi = dst;
    for (int64_t j = ny; j < Ny; j++) {
        const float t = (float)(j - ny + 1) / (float)(Ny - ny + 1);
        float *d = dst + (size_t)j * (size_t)Nx;
        for (int64_t i = 0; i < Nx; i++)
            d[i] = (1 - t) * lo[i] + t * hi[i];
    }
}

/* Forward transform of one channel and the maps: G = mapped FFT(src), src of shape n0
 * padded on the fly to r->n (planes padded in the per-thread real buffer; the z pad is
 * the ramp between r->edge's two planes, which the caller has filled). */
static void forward_map(struct cryo_resampler *r, const float *src, const int64_t n0[3], const struct fmap *tx,
                        const struct fmap *ty, const struct fmap *tz)
{
    const int64_t nx = r->n[0], ny = r->n[1], nz = r->n[2], nhx = r->nhx, kx = r->kx;
    const int64_t my = r->m[1], mz = r->m[2];
    const int padded = n0[0] != nx || n0[1] != ny || n0[2] != nz;
    /* x and y per input plane, y map into B */
#pragma omp parallel for schedule(static)
    for (int64_t z = 0; z < nz; z++) {
        const int t = thread_num();
        fftwf_complex *p = r->plane + (size_t)t * r->plane_n;
        float *in = (float *)src + (size_t)z * (size_t)(ny * nx);
        if (padded) {
            in = r->rbuf + (size_t)t * r->rbuf_n;
            if (z < n0[2]) {
                pad_plane(in, src + (size_t)z * (size_t)(n0[1] * n0[0]), n0[0], n0[1], nx, ny);
            } else {
                const float w = (float)(z - n0[2] + 1) / (float)(nz - n0[2] + 1);
                const float *hi = r->edge, *lo = r->edge + (size_t)(ny * nx);
                for (int64_t i = 0; i < ny * nx; i++)
                    in[i] = (1 - w) * lo[i] + w * hi[i];
            }
        } else if (fftwf_alignment_of(in) != r->align_r) {
            float *buf = r->rbuf + (size_t)t * r->rbuf_n;
            memcpy(buf, in, (size_t)(ny * nx) * sizeof(float));
            in = buf;
        }
        fftwf_execute_dft_r2c(r->px, in, p);
        fftwf_execute_dft(r->py, p, p);
        fftwf_complex *bz = r->b + (size_t)z * (size_t)r->bs;
        for (int64_t qy = 0; qy < my; qy++) {
            fftwf_complex *d = bz + qy * kx;
            memset(d, 0, (size_t)kx * sizeof *d);
            for (int b = 0; b < ty[qy].n; b++) {
                const fftwf_complex *s = p + ty[qy].src[b] * nhx;
                for (int64_t i = 0; i < kx; i++)
                    cmul_acc(d[i], ty[qy].w[b], s[i]);
            }
        }
    }
    /* z on gathered lines, z and x maps into G; rows no input frequency maps to (the added
     * ones of a y pad) are zero */
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t qy = 0; qy < my; qy++) {
        if (!ty[qy].n) {
            for (int64_t qz = 0; qz < mz; qz++)
                memset(r->g + (size_t)qz * (size_t)r->gs + qy * kx, 0, (size_t)kx * sizeof(fftwf_complex));
            continue;
        }
        fftwf_complex *l = r->lines + (size_t)thread_num() * r->lines_n;
        for (int64_t z = 0; z < nz; z++) {
            const fftwf_complex *s = r->b + (size_t)z * (size_t)r->bs + qy * kx;
            for (int64_t i = 0; i < kx; i++) {
                l[i * nz + z][0] = s[i][0];
                l[i * nz + z][1] = s[i][1];
            }
        }
        fftwf_execute_dft(r->pz, l, l);
        for (int64_t qz = 0; qz < mz; qz++) {
            fftwf_complex *g = r->g + (size_t)qz * (size_t)r->gs + qy * kx;
            const struct fmap *ez = &tz[qz];
            for (int64_t qx = 0; qx < kx; qx++) { /* tx is zero above kx */
                float acc[2] = {0, 0};
                if (tx[qx].n) {
                    const fftwf_complex *col = l + tx[qx].src[0] * nz;
                    float zs[2] = {0, 0};
                    for (int a = 0; a < ez->n; a++)
                        cmul_acc(zs, ez->w[a], col[ez->src[a]]);
                    cmul_acc(acc, tx[qx].w[0], zs);
                }
                g[qx][0] = acc[0];
                g[qx][1] = acc[1];
            }
        }
    }
}

/* Finish the plane qx = mx/2 of a crop to even mx: G(q) = e^{it} A(q) + e^{-it} conj(A(-q)). */
static void merge_nyquist_x(struct cryo_resampler *r)
{
    const int64_t my = r->m[1], mz = r->m[2], gx = r->kx, qx = r->m[0] / 2; /* a crop: kx = mhx */
    float p[2];
    phase_w(p, qx, r->n[0], r->u0[0], 1);
    const float pc[2] = {p[0], -p[1]};
    for (int64_t qz = 0; qz < mz; qz++)
        for (int64_t qy = 0; qy < my; qy++) {
            const float *a = r->g[(size_t)qz * (size_t)r->gs + qy * gx + qx];
            r->merge[qz * my + qy][0] = a[0];
            r->merge[qz * my + qy][1] = a[1];
        }
    for (int64_t qz = 0; qz < mz; qz++)
        for (int64_t qy = 0; qy < my; qy++) {
            const float *a = r->merge[qz * my + qy];
            const float *b = r->merge[((mz - qz) % mz) * my + (my - qy) % my];
            const float bc[2] = {b[0], -b[1]};
            float *g = r->g[(size_t)qz * (size_t)r->gs + qy * gx + qx];
            g[0] = g[1] = 0;
            cmul_acc(g, p, a);
            cmul_acc(g, pc, bc);
        }
}

/* dst (one channel of the kept output, kz x ky x kx) = the first k samples of the inverse
 * FFT of G along each axis; G is destroyed. Only the x columns below r->kx and the y rows
 * `ty` fills can be non-zero (the others are zero padding): z and y run on those alone. */
static void inverse(struct cryo_resampler *r, const struct fmap *ty, float *dst)
{
    const int64_t mx = r->m[0], my = r->m[1], mz = r->m[2], mhx = r->mhx, cols = r->kx;
    const int64_t kx = r->k[0], ky = r->k[1], kz = r->k[2];
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t qy = 0; qy < my; qy++) {
        if (!ty[qy].n)
            continue; /* zero, and left zero by forward_map */
        fftwf_complex *l = r->lines + (size_t)thread_num() * r->lines_n;
        for (int64_t qz = 0; qz < mz; qz++) {
            const fftwf_complex *s = r->g + (size_t)qz * (size_t)r->gs + qy * cols;
            for (int64_t i = 0; i < cols; i++) {
                l[i * mz + qz][0] = s[i][0];
                l[i * mz + qz][1] = s[i][1];
            }
        }
        fftwf_execute_dft(r->pzi, l, l);
        for (int64_t qz = 0; qz < kz; qz++) {
            fftwf_complex *s = r->g + (size_t)qz * (size_t)r->gs + qy * cols;
            for (int64_t i = 0; i < cols; i++) {
                s[i][0] = l[i * mz + qz][0];
                s[i][1] = l[i * mz + qz][1];
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t qz = 0; qz < kz; qz++) {
        fftwf_complex *gp = r->g + (size_t)qz * (size_t)r->gs;
        float *out = dst + (size_t)qz * (size_t)(ky * kx);
        fftwf_execute_dft(r->pyi, gp, gp);
        fftwf_complex *rows = gp; /* the c2r reads rows of mhx: widen those of an x pad */
        if (cols < mhx) {
            rows = r->crow + (size_t)thread_num() * r->crow_n;
            for (int64_t j = 0; j < ky; j++) {
                memcpy(rows + j * mhx, gp + j * cols, (size_t)cols * sizeof *rows);
                memset(rows + j * mhx + cols, 0, (size_t)(mhx - cols) * sizeof *rows);
            }
        }
        if (kx == mx && fftwf_alignment_of(out) == r->align_r) {
            fftwf_execute_dft_c2r(r->pxi, rows, out);
        } else {
            float *buf = r->rbuf + (size_t)thread_num() * r->rbuf_n;
            fftwf_execute_dft_c2r(r->pxi, rows, buf);
            for (int64_t j = 0; j < ky; j++)
                memcpy(out + j * kx, buf + j * mx, (size_t)kx * sizeof(float));
        }
    }
}

/* The Fourier core: out (shape k, kept samples of an m-point output transform) from in
 * (shape n, or padded to N = pad when pad is given and differs), output sample 0 at input
 * voxel coordinate u0 along each axis. Placement (apix, origin) is the caller's. */
static int fourier_core(struct cryo_volume *out, const struct cryo_volume *in, const int64_t N[3], const int64_t m[3],
                        const int64_t k[3], const double u0[3], struct cryo_resampler *r, struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    CRYO_TRY(resampler_prepare(r, N, m, k, err));
    if (!r->b && !(r->b = cryo_alloc_big(r->b_bytes, err)))
        return CRYO_E_NOMEM;
    if (N[2] > n[2] && !r->edge && !(r->edge = big_array((size_t)(2 * N[1] * N[0]), sizeof(float), err)))
        return CRYO_E_NOMEM;
    memcpy(r->u0, u0, sizeof r->u0);
    /* One channel: B is dead once the forward pass is done, so the output is written into
     * it and the volume takes the buffer (one fresh allocation fewer per frame; first
     * touch of fresh memory is what costs most here). */
    const int reuse_b = in->c == 1;
    struct cryo_volume o;
    cryo_volume_init(&o);
    CRYO_TRY(alloc_out(&o, in, k, reuse_b ? r->b : NULL, err));
    if (reuse_b)
        r->b = NULL; /* owned by o from here on, still usable as B for this one channel */
    const int64_t mhx = m[0] / 2 + 1;
    struct fmap *tx = cryo_alloc_array((size_t)mhx, sizeof *tx, err);
    struct fmap *ty = cryo_alloc_array((size_t)m[1], sizeof *ty, err);
    struct fmap *tz = cryo_alloc_array((size_t)m[2], sizeof *tz, err);
    if (!tx || !ty || !tz) {
        free(tx), free(ty), free(tz);
        cryo_volume_free(&o);
        return CRYO_E_NOMEM;
    }
    const double ntot = (double)N[0] * (double)N[1] * (double)N[2];
    int merge_x = fmap_half(tx, N[0], m[0], u0[0]);
    fmap_full(ty, N[1], m[1], u0[1], 1.0);
    fmap_full(tz, N[2], m[2], u0[2], 1.0 / ntot); /* unnormalised FFT pair: keep the mean */
    const size_t nch = cryo_volume_channel_count(in), mch = cryo_volume_channel_count(&o);
    for (int64_t c = 0; c < in->c; c++) {
        const float *src = (const float *)in->data + (size_t)c * nch;
        if (N[2] > n[2]) { /* the z pad ramps from the last plane (padded) back to the first */
            pad_plane(r->edge, src, n[0], n[1], N[0], N[1]);
            pad_plane(r->edge + (size_t)(N[1] * N[0]), src + (size_t)(n[2] - 1) * (size_t)(n[1] * n[0]), n[0], n[1],
                      N[0], N[1]);
        }
        if (reuse_b)
            r->b = o.data;
        forward_map(r, src, n, tx, ty, tz);
        if (reuse_b)
            r->b = NULL;
        if (merge_x)
            merge_nyquist_x(r);
        inverse(r, ty, (float *)o.data + (size_t)c * mch);
    }
    free(tx), free(ty), free(tz);
    cryo_volume_move(out, &o);
    return CRYO_OK;
}

/* Box-to-box Fourier resampling (cryo_resample): no pad, every output sample kept. */
static int resample_fourier(struct cryo_volume *out, const struct cryo_volume *in, const int64_t box[3],
                            struct cryo_resampler *r, struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    double u0[3];
    for (int d = 0; d < 3; d++)
        u0[d] = ((double)n[d] / (double)box[d] - 1) / 2; /* box edge kept */
    struct cryo_volume o;
    cryo_volume_init(&o);
    CRYO_TRY(fourier_core(&o, in, n, box, box, u0, r, err));
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

/* ---- onto a grid ------------------------------------------------------------------ */

int cryo_resample_to_grid(struct cryo_volume *out, const struct cryo_volume *in, const struct cryo_grid *g,
                          enum cryo_resample_method method, double fill, struct cryo_resampler *r,
                          struct cryo_resample_axis ax_out[3], struct cryo_error *err)
{
    CRYO_TRY(check_input(in, g->n, err));
    if (method != CRYO_RESAMPLE_FOURIER && method != CRYO_RESAMPLE_LINEAR && method != CRYO_RESAMPLE_CUBIC)
        return cryo_fail(err, CRYO_E_INVALID, "unknown resampling method %d", (int)method);
    struct cryo_resample_axis ax[3];
    CRYO_TRY(cryo_resample_plan(in, g, method, ax, err));
    if (ax_out)
        memcpy(ax_out, ax, sizeof ax);
    int64_t k[3], first[3];
    double u0[3], apix[3];
    for (int d = 0; d < 3; d++) {
        k[d] = ax[d].keep, first[d] = ax[d].first, u0[d] = ax[d].shift;
        apix[d] = ax[d].exact ? g->apix[d] : ax[d].apix;
    }
    struct cryo_volume kept;
    cryo_volume_init(&kept);
    if (method == CRYO_RESAMPLE_FOURIER) {
        const int64_t N[3] = {ax[0].pad, ax[1].pad, ax[2].pad}, M[3] = {ax[0].fft, ax[1].fft, ax[2].fft};
        struct cryo_resampler *tmp = NULL;
        if (!r)
            CRYO_TRY(cryo_resampler_create(&tmp, err));
        int st = fourier_core(&kept, in, N, M, k, u0, r ? r : tmp, err);
        cryo_resampler_free(tmp);
        CRYO_TRY(st);
    } else {
        double step[3];
        for (int d = 0; d < 3; d++)
            step[d] = g->apix[d] / in->apix[d];
        CRYO_TRY(real_core(&kept, in, k, u0, step, method == CRYO_RESAMPLE_CUBIC, err));
    }
    /* the kept block starts at grid voxel `first` */
    for (int d = 0; d < 3; d++) {
        kept.apix[d] = apix[d];
        kept.origin[d] = g->origin[d] + (double)first[d] * g->apix[d];
    }
    if (memcmp(k, g->n, sizeof k) == 0) {
        cryo_volume_move(out, &kept);
        return CRYO_OK;
    }
    /* place it in the grid's box, the rest = fill */
    struct cryo_volume t;
    cryo_volume_init(&t);
    int st = alloc_out(&t, &kept, g->n, NULL, err);
    if (st == CRYO_OK) {
        const float f = (float)fill;
        const int64_t gx = g->n[0], gy = g->n[1], gz = g->n[2], rows = kept.c * gz * gy;
#pragma omp parallel for schedule(static)
        for (int64_t row = 0; row < rows; row++) {
            const int64_t c = row / (gz * gy), z = (row / gy) % gz, y = row % gy;
            float *dst = (float *)t.data + (size_t)row * (size_t)gx;
            const int64_t sz = z - first[2], sy = y - first[1];
            for (int64_t i = 0; i < gx; i++)
                dst[i] = f;
            if (sz < 0 || sz >= k[2] || sy < 0 || sy >= k[1])
                continue;
            const float *src = (const float *)kept.data +
                               (((size_t)c * (size_t)k[2] + (size_t)sz) * (size_t)k[1] + (size_t)sy) * (size_t)k[0];
            memcpy(dst + first[0], src, (size_t)k[0] * sizeof(float));
        }
        for (int d = 0; d < 3; d++)
            t.origin[d] = kept.origin[d] - (double)first[d] * apix[d];
        cryo_volume_move(out, &t);
    }
    cryo_volume_free(&kept);
    return st;
}
