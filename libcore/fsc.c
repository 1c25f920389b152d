/* fsc.c — Fourier shell correlation, and relion_postprocess's correction of a masked FSC
 * by phase randomisation (definitions in fsc.h).
 *
 * The idea: transform each map once (fft.c, cached plans) and sum the three shell sums
 * Re(F1 F2*), |F1|², |F2|² in one pass over the half spectrum, per thread, in double.
 * With a mask the unmasked spectra are reused: their phases are randomised in place, they
 * are transformed back, masked and transformed again — 8 transforms in all, no re-reading. */
#include "cryolvm/fsc.h"
#include "cryolvm/fft.h"
#include "cryolvm/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void cryo_fsc_opts_default(struct cryo_fsc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->randomize_fsc = 0.8;
    o->seed = 1;
}

void cryo_fsc_init(struct cryo_fsc *f)
{
    memset(f, 0, sizeof *f);
    f->randomize_at = -1;
}

void cryo_fsc_free(struct cryo_fsc *f)
{
    free(f->s);
    free(f->fsc);
    free(f->count);
    free(f->fsc_masked);
    free(f->fsc_rand);
    free(f->fsc_true);
    cryo_fsc_init(f);
}

void cryo_fsc_shells(const struct cryo_volume *v, double *ds, size_t *nshell)
{
    const double n[3] = {(double)v->nx, (double)v->ny, (double)v->nz};
    double ext = 0, nyq = INFINITY;
    for (int d = 0; d < 3; d++) {
        if (n[d] * v->apix[d] > ext)
            ext = n[d] * v->apix[d];
        /* an axis of length 1 has no frequencies: it does not limit Nyquist */
        if (n[d] > 1 && 0.5 / v->apix[d] < nyq)
            nyq = 0.5 / v->apix[d];
    }
    if (!isfinite(nyq))
        nyq = 0.5 / v->apix[0];
    *ds = 1.0 / ext;
    *nshell = (size_t)floor(nyq * ext + 1e-9) + 1;
}

/* Squared frequency (1/Å)² along one axis for each index, wrapped to signed. */
static double *axis_freq2(int64_t n, int64_t count, double apix, struct cryo_error *err)
{
    double *f = cryo_alloc_array((size_t)count, sizeof *f, err);
    if (!f)
        return NULL;
    for (int64_t i = 0; i < count; i++) {
        int64_t w = i <= n / 2 ? i : i - n;
        double s = (double)w / ((double)n * apix);
        f[i] = s * s;
    }
    return f;
}

struct geom {
    int64_t nx, ny, nz, nhx;
    double inv_ds;
    size_t nshell;
    double *fx2, *fy2, *fz2;
};

static void geom_free(struct geom *g)
{
    free(g->fx2);
    free(g->fy2);
    free(g->fz2);
}

static int geom_make(struct geom *g, const struct cryo_volume *v, struct cryo_error *err)
{
    memset(g, 0, sizeof *g);
    g->nx = v->nx, g->ny = v->ny, g->nz = v->nz, g->nhx = v->nx / 2 + 1;
    double ds;
    cryo_fsc_shells(v, &ds, &g->nshell);
    g->inv_ds = 1.0 / ds;
    g->fx2 = axis_freq2(g->nx, g->nhx, v->apix[0], err);
    g->fy2 = axis_freq2(g->ny, g->ny, v->apix[1], err);
    g->fz2 = axis_freq2(g->nz, g->nz, v->apix[2], err);
    if (!g->fx2 || !g->fy2 || !g->fz2) {
        geom_free(g);
        return CRYO_E_NOMEM;
    }
    return CRYO_OK;
}

static inline double shell_pos(const struct geom *g, int64_t i, int64_t j, int64_t k)
{
    return sqrt(g->fx2[i] + g->fy2[j] + g->fz2[k]) * g->inv_ds;
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* fsc[q] (and count[q] if not NULL) from two half spectra. */
static int shell_fsc(const struct geom *g, const float *fa, const float *fb, double *fsc, int64_t *count,
                     int half, struct cryo_error *err)
{
    const size_t ns = g->nshell;
    const int nt = max_threads();
    double *acc = cryo_alloc_array((size_t)nt * 3 * ns, sizeof *acc, err);
    int64_t *cnt = cryo_alloc_array((size_t)nt * ns, sizeof *cnt, err);
    if (!acc || !cnt) {
        free(acc);
        free(cnt);
        return CRYO_E_NOMEM;
    }
    const int64_t nx = g->nx, ny = g->ny, nz = g->nz, nhx = g->nhx;
#pragma omp parallel
    {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        double *my = acc + (size_t)t * 3 * ns;
        int64_t *mc = cnt + (size_t)t * ns;
#pragma omp for schedule(static) collapse(2)
        for (int64_t k = 0; k < nz; k++)
            for (int64_t j = 0; j < ny; j++) {
                size_t row = ((size_t)k * (size_t)ny + (size_t)j) * (size_t)nhx;
                const float *a = fa + 2 * row, *b = fb + 2 * row;
                for (int64_t i = 0; i < nhx; i++) {
                    size_t q = (size_t)(shell_pos(g, i, j, k) + 0.5);
                    if (q >= ns)
                        continue;
                    /* Hermitian partners of 0 < i < nx/2 are not stored: count them */
                    double w = (half || i == 0 || (nx % 2 == 0 && i == nx / 2)) ? 1.0 : 2.0;
                    double ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
                    my[3 * q] += w * (ar * br + ai * bi);
                    my[3 * q + 1] += w * (ar * ar + ai * ai);
                    my[3 * q + 2] += w * (br * br + bi * bi);
                    mc[q] += (i == 0 || (nx % 2 == 0 && i == nx / 2)) ? 1 : 2;
                }
            }
    }
    for (size_t q = 0; q < ns; q++) {
        double num = 0, d1 = 0, d2 = 0;
        int64_t c = 0;
        for (int t = 0; t < nt; t++) {
            num += acc[(size_t)t * 3 * ns + 3 * q];
            d1 += acc[(size_t)t * 3 * ns + 3 * q + 1];
            d2 += acc[(size_t)t * 3 * ns + 3 * q + 2];
            c += cnt[(size_t)t * ns + q];
        }
        double den = sqrt(d1 * d2);
        fsc[q] = den > 0 ? num / den : 0.0;
        if (count)
            count[q] = c;
    }
    free(acc);
    free(cnt);
    return CRYO_OK;
}

static inline uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Random phases for every element with shell position >= q_from. Elements of the x = 0
 * (and even-nx Nyquist) plane are their own plane's Hermitian partners: the phase is drawn
 * for the one with the smaller index and negated for the other, so the map stays real. */
static void randomize_spectrum(const struct geom *g, float *f, double q_from, uint64_t key)
{
    const int64_t nx = g->nx, ny = g->ny, nz = g->nz, nhx = g->nhx;
#pragma omp parallel for schedule(static) collapse(2)
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++) {
            int64_t kp = (nz - k) % nz, jp = (ny - j) % ny;
            int64_t lin = k * ny + j, plin = kp * ny + jp;
            for (int64_t i = 0; i < nhx; i++) {
                if (shell_pos(g, i, j, k) < q_from - 1e-9)
                    continue;
                float *c = f + 2 * (((size_t)k * (size_t)ny + (size_t)j) * (size_t)nhx + (size_t)i);
                float mag = sqrtf(c[0] * c[0] + c[1] * c[1]);
                int plane = i == 0 || (nx % 2 == 0 && i == nx / 2);
                uint64_t id = (uint64_t)(plane && plin < lin ? plin : lin) * (uint64_t)nhx + (uint64_t)i;
                uint64_t r = splitmix64(key ^ splitmix64(id));
                if (plane && plin == lin) { /* self-conjugate: must stay real */
                    c[0] = (r & 1) ? -mag : mag;
                    c[1] = 0;
                    continue;
                }
                /* a uniform random direction without trigonometry: a point uniform in the
                 * unit disc (rejection from the square, 24-bit coordinates), normalised */
                double u, v, q;
                for (;;) {
                    u = (double)(r >> 40) * (2.0 / 16777216.0) - 1.0;
                    v = (double)((r >> 16) & 0xFFFFFFu) * (2.0 / 16777216.0) - 1.0;
                    q = u * u + v * v;
                    if (q <= 1.0 && q > 1e-12)
                        break;
                    r = splitmix64(r);
                }
                if (plane && plin < lin)
                    v = -v;
                double sc = mag / sqrt(q);
                c[0] = (float)(u * sc);
                c[1] = (float)(v * sc);
            }
        }
}

static int check_vol(const struct cryo_volume *v, const char *what, struct cryo_error *err)
{
    if (v->dtype != CRYO_DTYPE_F32 || v->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: FSC needs a single-channel float32 volume", what);
    for (int d = 0; d < 3; d++)
        if (!(v->apix[d] > 0) || !isfinite(v->apix[d]))
            return cryo_fail(err, CRYO_E_INVALID, "%s: voxel size %g Å is not usable", what, v->apix[d]);
    return cryo_volume_check_finite(v, what, err);
}

int cryo_fsc_randomize_phases(struct cryo_volume *v, double s_from, uint64_t seed, struct cryo_error *err)
{
    CRYO_TRY(check_vol(v, "volume", err));
    const struct cryo_fft3 *p;
    CRYO_TRY(cryo_fft3_get(&p, v->nx, v->ny, v->nz, err));
    struct geom g;
    CRYO_TRY(geom_make(&g, v, err));
    float *f = cryo_alloc_big(2 * cryo_fft3_complex_count(p) * sizeof(float), err);
    int st = f ? CRYO_OK : CRYO_E_NOMEM;
    if (st == CRYO_OK)
        st = cryo_fft3_forward(p, v->data, f, err);
    if (st == CRYO_OK) {
        randomize_spectrum(&g, f, s_from * g.inv_ds, splitmix64(seed));
        st = cryo_fft3_inverse(p, f, v->data, err);
    }
    if (st == CRYO_OK) {
        size_t n = cryo_volume_channel_count(v);
        float *x = v->data, sc = (float)(1.0 / (double)n);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            x[i] *= sc;
    }
    cryo_free_big(f);
    geom_free(&g);
    return st;
}

static void mul_mask(float *dst, const float *src, const float *m, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] * m[i];
}

static double *new_curve(size_t n, struct cryo_error *err)
{
    return cryo_alloc_array(n, sizeof(double), err);
}

int cryo_fsc_compute(struct cryo_fsc *f, const struct cryo_volume *a, const struct cryo_volume *b,
                     const struct cryo_fsc_opts *o, struct cryo_error *err)
{
    struct cryo_fsc_opts def;
    if (!o) {
        cryo_fsc_opts_default(&def);
        o = &def;
    }
    cryo_fsc_init(f);
    CRYO_TRY(check_vol(a, "first map", err));
    CRYO_TRY(check_vol(b, "second map", err));
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz)
        return cryo_fail(err, CRYO_E_INVALID, "maps differ in shape: %lldx%lldx%lld and %lldx%lldx%lld",
                         (long long)a->nx, (long long)a->ny, (long long)a->nz, (long long)b->nx,
                         (long long)b->ny, (long long)b->nz);
    const struct cryo_volume *m = o->mask;
    if (m) {
        CRYO_TRY(check_vol(m, "mask", err));
        if (m->nx != a->nx || m->ny != a->ny || m->nz != a->nz)
            return cryo_fail(err, CRYO_E_INVALID, "mask is %lldx%lldx%lld but the maps are %lldx%lldx%lld",
                             (long long)m->nx, (long long)m->ny, (long long)m->nz, (long long)a->nx,
                             (long long)a->ny, (long long)a->nz);
        if (!(o->randomize_fsc > 0 && o->randomize_fsc < 1) && !(o->randomize_at_A > 0))
            return cryo_fail(err, CRYO_E_INVALID, "randomisation threshold %g is not in (0, 1)", o->randomize_fsc);
    }
    const struct cryo_fft3 *p;
    CRYO_TRY(cryo_fft3_get(&p, a->nx, a->ny, a->nz, err));
    struct geom g;
    CRYO_TRY(geom_make(&g, a, err));
    const size_t ns = g.nshell, nc2 = 2 * cryo_fft3_complex_count(p), nr = cryo_volume_channel_count(a);
    f->nshell = ns;
    f->ds = 1.0 / g.inv_ds;
    f->s = new_curve(ns, err);
    f->fsc = new_curve(ns, err);
    f->count = cryo_alloc_array(ns, sizeof *f->count, err);
    float *fa = cryo_alloc_big(nc2 * sizeof(float), err);
    float *fb = cryo_alloc_big(nc2 * sizeof(float), err);
    float *fc = NULL, *fd = NULL, *r = NULL;
    int st = (f->s && f->fsc && f->count && fa && fb) ? CRYO_OK : CRYO_E_NOMEM;
    if (st == CRYO_OK && m) {
        f->fsc_masked = new_curve(ns, err);
        f->fsc_rand = new_curve(ns, err);
        f->fsc_true = new_curve(ns, err);
        fc = cryo_alloc_big(nc2 * sizeof(float), err);
        fd = cryo_alloc_big(nc2 * sizeof(float), err);
        r = cryo_alloc_big(nr * sizeof(float), err);
        if (!f->fsc_masked || !f->fsc_rand || !f->fsc_true || !fc || !fd || !r)
            st = CRYO_E_NOMEM;
    }
    for (size_t q = 0; q < ns; q++)
        if (f->s)
            f->s[q] = (double)q * f->ds;
    if (st == CRYO_OK)
        st = cryo_fft3_forward(p, a->data, fa, err);
    if (st == CRYO_OK)
        st = cryo_fft3_forward(p, b->data, fb, err);
    if (st == CRYO_OK)
        st = shell_fsc(&g, fa, fb, f->fsc, f->count, o->half_weights, err);
    if (st == CRYO_OK && m) {
        const float *mk = m->data;
        mul_mask(r, a->data, mk, nr);
        st = cryo_fft3_forward(p, r, fc, err);
        if (st == CRYO_OK) {
            mul_mask(r, b->data, mk, nr);
            st = cryo_fft3_forward(p, r, fd, err);
        }
        if (st == CRYO_OK)
            st = shell_fsc(&g, fc, fd, f->fsc_masked, NULL, o->half_weights, err);
        if (st == CRYO_OK) {
            int at = -1;
            if (o->randomize_at_A > 0) {
                at = (int)(1.0 / (o->randomize_at_A * f->ds)); /* relion: int(N a / d) */
                if (at < 1)
                    at = 1;
            } else {
                for (size_t q = 1; q < ns; q++)
                    if (f->fsc[q] < o->randomize_fsc) {
                        at = (int)q;
                        break;
                    }
            }
            if (at < 0)
                st = cryo_fail(err, CRYO_E_NUMERIC,
                               "the unmasked FSC never drops below %g: no shell to randomise phases from "
                               "(give a resolution to randomise beyond)",
                               o->randomize_fsc);
            f->randomize_at = at;
        }
        /* A', B': the unmasked spectra with random phases beyond randomize_at, masked */
        const uint64_t key = splitmix64(o->seed);
        float *spec[2] = {fa, fb};
        for (int h = 0; h < 2 && st == CRYO_OK; h++) {
            randomize_spectrum(&g, spec[h], (double)f->randomize_at, key ^ (0xA5A5A5A5A5A5A5A5ull * (uint64_t)(h + 1)));
            st = cryo_fft3_inverse(p, spec[h], r, err);
            if (st == CRYO_OK) {
                mul_mask(r, r, mk, nr);
                st = cryo_fft3_forward(p, r, spec[h], err);
            }
        }
        if (st == CRYO_OK)
            st = shell_fsc(&g, fa, fb, f->fsc_rand, NULL, o->half_weights, err);
        if (st == CRYO_OK) {
            for (size_t q = 0; q < ns; q++) {
                double t = f->fsc_masked[q], n = f->fsc_rand[q];
                if ((int)q < f->randomize_at + 2)
                    f->fsc_true[q] = t;
                else
                    f->fsc_true[q] = n < 1 ? (t - n) / (1 - n) : 0.0;
            }
        }
    }
    cryo_free_big(fa);
    cryo_free_big(fb);
    cryo_free_big(fc);
    cryo_free_big(fd);
    cryo_free_big(r);
    geom_free(&g);
    if (st < 0)
        cryo_fsc_free(f);
    return st;
}

void cryo_fsc_resolution(const double *s, const double *fsc, size_t ns, double t, struct cryo_fsc_res *r)
{
    r->reached = 0;
    r->shell_index = (int)ns;
    r->interp = r->shell = ns > 1 ? 1.0 / s[ns - 1] : INFINITY;
    for (size_t q = 1; q < ns; q++)
        if (fsc[q] < t) {
            r->reached = 1;
            r->shell_index = (int)q;
            r->shell = q > 1 ? 1.0 / s[q - 1] : 999.0; /* relion reports 999 Å */
            double u = (fsc[q - 1] - t) / (fsc[q - 1] - fsc[q]);
            double sx = s[q - 1] + u * (s[q] - s[q - 1]);
            r->interp = sx > 0 ? 1.0 / sx : 999.0;
            return;
        }
}
