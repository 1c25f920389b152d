/* fft.c — cached FFTW3 float plans for 3-D real transforms (see fft.h for the why).
 *
 * A 3-D r2c is done as one 2-D r2c per z plane (threads over planes), then 1-D complex
 * transforms along z: for each pair of y rows (threads over pairs) the 2(nx/2+1) z lines
 * are gathered into contiguous lines in a per-thread scratch (it fits in L2), transformed
 * as one batch and scattered back.
 * The inverse runs the same steps backwards; its plans are made on first use, since most
 * callers only go forward. Planes whose start is not aligned like the planning buffers go
 * through a per-thread scratch plane. */
#include "cryolvm/fft.h"
#include "cryolvm/mem.h"

#include <fftw3.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

struct cryo_fft3 {
    int64_t nx, ny, nz, nhx;
    fftwf_plan r2c, c2r;         /* one plane: ny x nx real <-> ny x nhx complex */
    fftwf_plan zf[2], zb[2];     /* z columns of two y rows [0], of the last row of odd ny [1] */
    int al_r;                    /* alignment of the real planning buffer */
    int have_inverse;            /* c2r and zb are made on first use */
    struct cryo_fft3 *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cryo_fft3 *cache;

static void plans_destroy(struct cryo_fft3 *p)
{
    fftwf_plan *all[6] = {&p->r2c, &p->c2r, &p->zf[0], &p->zf[1], &p->zb[0], &p->zb[1]};
    for (int i = 0; i < 6; i++)
        if (*all[i])
            fftwf_destroy_plan(*all[i]);
    free(p);
}

void cryo_fft_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    while (cache) {
        struct cryo_fft3 *n = cache->next;
        plans_destroy(cache);
        cache = n;
    }
    pthread_mutex_unlock(&cache_lock);
}

size_t cryo_fft3_complex_count(const struct cryo_fft3 *p)
{
    return (size_t)p->nz * (size_t)p->ny * (size_t)p->nhx;
}

/* One direction's plans, called with cache_lock held. Measured here for 256^3: the 2-D
 * plane transforms run as fast with FFTW_ESTIMATE as with FFTW_MEASURE (30 vs 26 ms per
 * volume), and so do the z batches once their lines are contiguous; strided in place they
 * needed MEASURE (4x slower estimated), whose 0.1 s of planning cost more than the
 * gather/scatter. */
static int plans_make(struct cryo_fft3 *p, int inverse, struct cryo_error *err)
{
    static int threads_ready;
    if (!threads_ready)
        threads_ready = fftwf_init_threads() ? 1 : -1;
    if (threads_ready > 0)
        fftwf_plan_with_nthreads(1); /* we parallelise over planes and rows ourselves */
    const int nx = (int)p->nx, ny = (int)p->ny, nz = (int)p->nz, nhx = (int)p->nhx;
    size_t plane_c = (size_t)ny * (size_t)nhx, plane_r = (size_t)ny * (size_t)nx;
    float *rp = cryo_alloc_big(plane_r * sizeof(float), err);
    fftwf_complex *cp = cryo_alloc_big(plane_c * sizeof(fftwf_complex), err);
    /* z lines of a row pair, gathered contiguous (see z_pass); ESTIMATE does not touch it */
    fftwf_complex *zb = fftwf_malloc((size_t)2 * (size_t)nhx * (size_t)nz * sizeof(fftwf_complex));
    if (!rp || !cp || !zb) {
        cryo_free_big(rp);
        cryo_free_big(cp);
        fftwf_free(zb);
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory planning a %dx%dx%d FFT", nx, ny, nz);
    }
    const int dir = inverse ? FFTW_BACKWARD : FFTW_FORWARD;
    fftwf_plan *z = inverse ? p->zb : p->zf;
    if (inverse)
        p->c2r = fftwf_plan_dft_c2r_2d(ny, nx, cp, rp, FFTW_ESTIMATE);
    else
        p->r2c = fftwf_plan_dft_r2c_2d(ny, nx, rp, cp, FFTW_ESTIMATE);
    int ok = inverse ? p->c2r != NULL : p->r2c != NULL;
    if (nz > 1) {
        if (ny >= 2)
            z[0] = fftwf_plan_many_dft(1, &nz, 2 * nhx, zb, NULL, 1, nz, zb, NULL, 1, nz, dir, FFTW_ESTIMATE);
        if (ny % 2)
            z[1] = fftwf_plan_many_dft(1, &nz, nhx, zb, NULL, 1, nz, zb, NULL, 1, nz, dir, FFTW_ESTIMATE);
        ok = ok && (ny < 2 || z[0]) && (ny % 2 == 0 || z[1]);
    }
    p->al_r = fftwf_alignment_of(rp);
    cryo_free_big(rp);
    cryo_free_big(cp);
    fftwf_free(zb);
    if (!ok)
        return cryo_fail(err, CRYO_E_NOMEM, "FFTW could not plan a %dx%dx%d transform", nx, ny, nz);
    return CRYO_OK;
}

int cryo_fft3_get(const struct cryo_fft3 **plan, int64_t nx, int64_t ny, int64_t nz, struct cryo_error *err)
{
    if (nx < 1 || ny < 1 || nz < 1 || nx > INT_MAX / 2 || ny > INT_MAX || nz > INT_MAX ||
        (nx / 2 + 1) * ny > INT_MAX / 2)
        return cryo_fail(err, CRYO_E_INVALID, "FFT size %lldx%lldx%lld out of range", (long long)nx,
                         (long long)ny, (long long)nz);
    pthread_mutex_lock(&cache_lock);
    for (struct cryo_fft3 *p = cache; p; p = p->next)
        if (p->nx == nx && p->ny == ny && p->nz == nz) {
            pthread_mutex_unlock(&cache_lock);
            *plan = p;
            return CRYO_OK;
        }
    struct cryo_fft3 *p = calloc(1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&cache_lock);
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory for FFT plans");
    }
    p->nx = nx, p->ny = ny, p->nz = nz, p->nhx = nx / 2 + 1;
    int st = plans_make(p, 0, err);
    if (st < 0) {
        plans_destroy(p);
        pthread_mutex_unlock(&cache_lock);
        return st;
    }
    p->next = cache;
    cache = p;
    pthread_mutex_unlock(&cache_lock);
    *plan = p;
    return CRYO_OK;
}

static int ensure_inverse(const struct cryo_fft3 *cp, struct cryo_error *err)
{
    struct cryo_fft3 *p = (struct cryo_fft3 *)cp; /* the cache owns it; only this adds plans */
    pthread_mutex_lock(&cache_lock);
    int st = p->have_inverse ? CRYO_OK : plans_make(p, 1, err);
    if (st == CRYO_OK)
        p->have_inverse = 1;
    pthread_mutex_unlock(&cache_lock);
    return st;
}

static int nthreads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Per-thread plane scratch: a real plane and a complex plane each. */
struct scratch {
    float *r;
    fftwf_complex *c;
    size_t nr, nc;
};

static int scratch_alloc(struct scratch *s, const struct cryo_fft3 *p, int nt, struct cryo_error *err)
{
    s->nr = ((size_t)p->ny * (size_t)p->nx + 15) & ~(size_t)15;
    s->nc = ((size_t)p->ny * (size_t)p->nhx + 7) & ~(size_t)7;
    s->r = cryo_alloc_big((size_t)nt * s->nr * sizeof(float), err);
    s->c = cryo_alloc_big((size_t)nt * s->nc * sizeof(fftwf_complex), err);
    if (!s->r || !s->c) {
        cryo_free_big(s->r);
        cryo_free_big(s->c);
        return CRYO_E_NOMEM;
    }
    return CRYO_OK;
}

static void scratch_free(struct scratch *s)
{
    cryo_free_big(s->r);
    cryo_free_big(s->c);
}

/* z transforms of `cols` contiguous columns at col (stride `plane` between z planes):
 * gathered into contiguous lines in the thread's scratch, transformed, scattered back. */
static void z_cols(fftwf_complex *col, int64_t cols, int64_t nz, size_t plane, fftwf_plan z, fftwf_complex *scr)
{
    for (int64_t k = 0; k < nz; k++) {
        const fftwf_complex *s = col + (size_t)k * plane;
        for (int64_t i = 0; i < cols; i++) {
            scr[i * nz + k][0] = s[i][0];
            scr[i * nz + k][1] = s[i][1];
        }
    }
    fftwf_execute_dft(z, scr, scr);
    for (int64_t k = 0; k < nz; k++) {
        fftwf_complex *d = col + (size_t)k * plane;
        for (int64_t i = 0; i < cols; i++) {
            d[i][0] = scr[i * nz + k][0];
            d[i][1] = scr[i * nz + k][1];
        }
    }
}

static int z_pass(const struct cryo_fft3 *p, fftwf_complex *c, const fftwf_plan z[2], struct cryo_error *err)
{
    const int64_t ny = p->ny, nhx = p->nhx, nz = p->nz;
    const size_t plane = (size_t)ny * (size_t)nhx, line = ((size_t)(2 * nhx * nz) + 7) & ~(size_t)7;
    fftwf_complex *scr = cryo_alloc_big((size_t)nthreads() * line * sizeof(fftwf_complex), err);
    if (!scr)
        return CRYO_E_NOMEM;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < ny - 1; j += 2)
        z_cols(c + j * nhx, 2 * nhx, nz, plane, z[0], scr + (size_t)thread_id() * line);
    if (ny % 2)
        z_cols(c + (ny - 1) * nhx, nhx, nz, plane, z[1], scr);
    cryo_free_big(scr);
    return CRYO_OK;
}

static int check_spectrum(const float *f, struct cryo_error *err)
{
    if (fftwf_alignment_of((float *)f) != 0)
        return cryo_fail(err, CRYO_E_INVALID, "FFT spectrum buffer is not 16-byte aligned (use cryo_alloc_big)");
    return CRYO_OK;
}

int cryo_fft3_forward(const struct cryo_fft3 *p, const float *in, float *out, struct cryo_error *err)
{
    CRYO_TRY(check_spectrum(out, err));
    struct scratch s;
    CRYO_TRY(scratch_alloc(&s, p, nthreads(), err));
    const size_t plane_r = (size_t)p->ny * (size_t)p->nx, plane_c = (size_t)p->ny * (size_t)p->nhx;
    fftwf_complex *c = (fftwf_complex *)out;
#pragma omp parallel for schedule(static)
    for (int64_t z = 0; z < p->nz; z++) {
        int t = thread_id();
        float *src = (float *)in + (size_t)z * plane_r;
        fftwf_complex *dst = c + (size_t)z * plane_c;
        if (fftwf_alignment_of(src) != p->al_r) {
            memcpy(s.r + (size_t)t * s.nr, src, plane_r * sizeof(float));
            src = s.r + (size_t)t * s.nr;
        }
        if (fftwf_alignment_of((float *)dst) != 0) {
            fftwf_complex *tmp = s.c + (size_t)t * s.nc;
            fftwf_execute_dft_r2c(p->r2c, src, tmp);
            memcpy(dst, tmp, plane_c * sizeof(fftwf_complex));
        } else {
            fftwf_execute_dft_r2c(p->r2c, src, dst);
        }
    }
    int st = p->nz > 1 ? z_pass(p, c, p->zf, err) : CRYO_OK;
    scratch_free(&s);
    return st;
}

int cryo_fft3_inverse(const struct cryo_fft3 *p, float *in, float *out, struct cryo_error *err)
{
    CRYO_TRY(check_spectrum(in, err));
    CRYO_TRY(ensure_inverse(p, err));
    struct scratch s;
    CRYO_TRY(scratch_alloc(&s, p, nthreads(), err));
    const size_t plane_r = (size_t)p->ny * (size_t)p->nx, plane_c = (size_t)p->ny * (size_t)p->nhx;
    fftwf_complex *c = (fftwf_complex *)in;
    if (p->nz > 1 && z_pass(p, c, p->zb, err) < 0) {
        scratch_free(&s);
        return CRYO_E_NOMEM;
    }
#pragma omp parallel for schedule(static)
    for (int64_t z = 0; z < p->nz; z++) {
        int t = thread_id();
        fftwf_complex *src = c + (size_t)z * plane_c;
        float *dst = out + (size_t)z * plane_r;
        if (fftwf_alignment_of((float *)src) != 0) {
            memcpy(s.c + (size_t)t * s.nc, src, plane_c * sizeof(fftwf_complex));
            src = s.c + (size_t)t * s.nc;
        }
        if (fftwf_alignment_of(dst) != p->al_r) {
            float *tmp = s.r + (size_t)t * s.nr;
            fftwf_execute_dft_c2r(p->c2r, src, tmp);
            memcpy(dst, tmp, plane_r * sizeof(float));
        } else {
            fftwf_execute_dft_c2r(p->c2r, src, dst);
        }
    }
    scratch_free(&s);
    return CRYO_OK;
}
