/* degrade.c — the degradations of vol-degrade (see degrade.h for definitions and order).
 * Fourier work goes through one r2c/c2r pair of FFTW plans per call (FFTW_ESTIMATE, so
 * planning is cheap and input arrays are not touched while planning). Random numbers are
 * a hash of (seed, stream, index) pushed through Box-Muller, so every voxel's noise is
 * fixed by the seed alone, whatever the thread count. */
#include "cryolvm/degrade.h"
#include "cryolvm/mem.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- Fourier helpers ------------------------------------------------------------ */

struct ft {
    int64_t nx, ny, nz, nh; /* nh = nx/2 + 1 */
    size_t nreal, ncplx;
    float *r;
    fftwf_complex *c;
    fftwf_plan fwd, inv;
};

static void ft_free(struct ft *t)
{
    if (t->fwd)
        fftwf_destroy_plan(t->fwd);
    if (t->inv)
        fftwf_destroy_plan(t->inv);
    cryo_free_big(t->r);
    cryo_free_big(t->c);
    memset(t, 0, sizeof *t);
}

static int ft_init(struct ft *t, const struct cryo_volume *v, struct cryo_error *err)
{
    static int threads_ready;
    memset(t, 0, sizeof *t);
    t->nx = v->nx, t->ny = v->ny, t->nz = v->nz, t->nh = v->nx / 2 + 1;
    size_t bytes;
    CRYO_TRY(cryo_count4(1, t->nz, t->ny, t->nx, &t->nreal, err));
    CRYO_TRY(cryo_count4(1, t->nz, t->ny, t->nh, &t->ncplx, err));
    if (t->nz > INT32_MAX || t->ny > INT32_MAX || t->nx > INT32_MAX)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "volume too large for FFTW");
    CRYO_TRY(cryo_mul_size(t->nreal, sizeof(float), &bytes, err));
    t->r = cryo_alloc_big(bytes, err);
    CRYO_TRY(cryo_mul_size(t->ncplx, sizeof(fftwf_complex), &bytes, err));
    t->c = cryo_alloc_big(bytes, err);
    if (!t->r || !t->c) {
        ft_free(t);
        return CRYO_E_NOMEM;
    }
    if (!threads_ready) {
        threads_ready = fftwf_init_threads() ? 1 : -1;
    }
    /* FFTW's thread pool hands out many small tasks through semaphores; below ~8M points
     * (and on a loaded machine) that costs more than it saves, so small maps use one. */
    if (threads_ready > 0) {
        int nt = 1;
#ifdef _OPENMP
        if (t->nreal >= ((size_t)8 << 20))
            nt = omp_get_max_threads();
#endif
        fftwf_plan_with_nthreads(nt);
    }
    t->fwd = fftwf_plan_dft_r2c_3d((int)t->nz, (int)t->ny, (int)t->nx, t->r, t->c, FFTW_ESTIMATE);
    t->inv = fftwf_plan_dft_c2r_3d((int)t->nz, (int)t->ny, (int)t->nx, t->c, t->r, FFTW_ESTIMATE);
    if (!t->fwd || !t->inv) {
        ft_free(t);
        return cryo_fail(err, CRYO_E_NOMEM, "FFTW could not plan a %lldx%lldx%lld transform",
                         (long long)v->nx, (long long)v->ny, (long long)v->nz);
    }
    return CRYO_OK;
}

/* Physical frequency (1/Å) of complex coefficient index (i, j, k). */
static inline void ft_freq(const struct ft *t, const double apix[3], int64_t i, int64_t j, int64_t k,
                           double *kx, double *ky, double *kz)
{
    int64_t jj = j <= t->ny / 2 ? j : j - t->ny;
    int64_t kk = k <= t->nz / 2 ? k : k - t->nz;
    *kx = (double)i / ((double)t->nx * apix[0]);
    *ky = (double)jj / ((double)t->ny * apix[1]);
    *kz = (double)kk / ((double)t->nz * apix[2]);
}

/* Shell width in 1/Å: one Fourier pixel of the longest box edge. */
static double shell_width(const struct cryo_volume *v)
{
    double L = 0;
    double n[3] = {(double)v->nx, (double)v->ny, (double)v->nz};
    for (int d = 0; d < 3; d++)
        if (n[d] * v->apix[d] > L)
            L = n[d] * v->apix[d];
    return 1.0 / L;
}

typedef double (*transfer_fn)(double kx, double ky, double kz, const void *ctx);

/* Per-axis physical frequencies of the half spectrum: fx[nh], fy[ny], fz[nz] (1/Å). */
static double *axis_freqs(const struct ft *t, const double apix[3], struct cryo_error *err)
{
    double *f = cryo_alloc_array((size_t)(t->nh + t->ny + t->nz), sizeof *f, err);
    if (!f)
        return NULL;
    for (int64_t i = 0; i < t->nh; i++)
        f[i] = (double)i / ((double)t->nx * apix[0]);
    for (int64_t j = 0; j < t->ny; j++)
        f[t->nh + j] = (double)(j <= t->ny / 2 ? j : j - t->ny) / ((double)t->ny * apix[1]);
    for (int64_t k = 0; k < t->nz; k++)
        f[t->nh + t->ny + k] = (double)(k <= t->nz / 2 ? k : k - t->nz) / ((double)t->nz * apix[2]);
    return f;
}

/* x <- IFFT(T(k) * FFT(x)) for one channel. T is fn(kx, ky, kz), or, when fn is NULL, the
 * separable product sep[i] * sep[nh + j] * sep[nh + ny + k] (no per-coefficient call). */
static int fourier_filter_any(float *x, const struct cryo_volume *v, transfer_fn fn, const void *ctx,
                              double (*sep_fn)(double k, const void *ctx), double *kept,
                              struct cryo_error *err)
{
    struct ft t;
    CRYO_TRY(ft_init(&t, v, err));
    double *f = axis_freqs(&t, v->apix, err);
    if (!f) {
        ft_free(&t);
        return CRYO_E_NOMEM;
    }
    const double *fx = f, *fy = f + t.nh, *fz = f + t.nh + t.ny;
    double *sep = NULL;
    if (!fn) {
        sep = cryo_alloc_array((size_t)(t.nh + t.ny + t.nz), sizeof *sep, err);
        if (!sep) {
            free(f);
            ft_free(&t);
            return CRYO_E_NOMEM;
        }
        for (int64_t i = 0; i < t.nh + t.ny + t.nz; i++)
            sep[i] = sep_fn(f[i], ctx);
    }
    memcpy(t.r, x, t.nreal * sizeof(float));
    fftwf_execute(t.fwd);
    const double scale = 1.0 / (double)t.nreal;
    double nkept = 0;
#pragma omp parallel for reduction(+ : nkept) schedule(static)
    for (int64_t k = 0; k < t.nz; k++)
        for (int64_t j = 0; j < t.ny; j++) {
            fftwf_complex *row = t.c + ((size_t)k * (size_t)t.ny + (size_t)j) * (size_t)t.nh;
            double wyz = sep ? sep[t.nh + j] * sep[t.nh + t.ny + k] * scale : scale;
            for (int64_t i = 0; i < t.nh; i++) {
                double w = sep ? sep[i] : fn(fx[i], fy[j], fz[k], ctx);
                /* count each coefficient of the full (Hermitian) spectrum once */
                double mult = (i == 0 || (t.nx % 2 == 0 && i == t.nx / 2)) ? 1.0 : 2.0;
                nkept += w != 0 ? mult : 0;
                w *= wyz;
                row[i][0] = (float)(row[i][0] * w);
                row[i][1] = (float)(row[i][1] * w);
            }
        }
    fftwf_execute(t.inv);
    memcpy(x, t.r, t.nreal * sizeof(float));
    if (kept)
        *kept = nkept / (double)t.nreal;
    free(sep);
    free(f);
    ft_free(&t);
    return CRYO_OK;
}

static int fourier_filter(float *x, const struct cryo_volume *v, transfer_fn fn, const void *ctx,
                          double *kept, struct cryo_error *err)
{
    return fourier_filter_any(x, v, fn, ctx, NULL, kept, err);
}

static int check_volume(const struct cryo_volume *v, struct cryo_error *err)
{
    if (v->dtype != CRYO_DTYPE_F32 || !v->data)
        return cryo_fail(err, CRYO_E_INVALID, "degradations need a float32 volume");
    for (int d = 0; d < 3; d++)
        if (!(v->apix[d] > 0) || !isfinite(v->apix[d]))
            return cryo_fail(err, CRYO_E_INVALID, "voxel size must be > 0 (got %g)", v->apix[d]);
    return CRYO_OK;
}

static float *channel(const struct cryo_volume *v, int64_t c)
{
    return (float *)v->data + (size_t)c * cryo_volume_channel_count(v);
}

/* ---- B-factor and low-pass --------------------------------------------------------- */

/* exp(-B s^2/4) factorises over the axes: exp(-B kx^2/4) exp(-B ky^2/4) exp(-B kz^2/4). */
static double bfactor_axis(double k, const void *ctx)
{
    double B = *(const double *)ctx;
    return exp(-B * k * k / 4.0);
}

int cryo_degrade_bfactor(struct cryo_volume *v, double bfactor, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    if (!isfinite(bfactor))
        return cryo_fail(err, CRYO_E_INVALID, "B-factor must be finite");
    for (int64_t c = 0; c < v->c; c++)
        CRYO_TRY(fourier_filter_any(channel(v, c), v, NULL, &bfactor, bfactor_axis, NULL, err));
    return CRYO_OK;
}

double cryo_degrade_lowpass_weight(double s, double res, double edge_width)
{
    double s0 = 1.0 / res;
    if (edge_width <= 0)
        return s <= s0 ? 1.0 : 0.0;
    double a = s0 - edge_width / 2, b = s0 + edge_width / 2;
    if (s <= a)
        return 1.0;
    if (s >= b)
        return 0.0;
    return 0.5 * (1.0 + cos(M_PI * (s - a) / edge_width));
}

struct lowpass_ctx { double res, width; };

static double lowpass_fn(double kx, double ky, double kz, const void *ctx)
{
    const struct lowpass_ctx *l = ctx;
    return cryo_degrade_lowpass_weight(sqrt(kx * kx + ky * ky + kz * kz), l->res, l->width);
}

int cryo_degrade_lowpass(struct cryo_volume *v, double res, double edge, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    if (!(res > 0) || !isfinite(res))
        return cryo_fail(err, CRYO_E_INVALID, "low-pass resolution must be > 0 Å (got %g)", res);
    if (!(edge >= 0) || !isfinite(edge))
        return cryo_fail(err, CRYO_E_INVALID, "low-pass edge must be >= 0 shells (got %g)", edge);
    struct lowpass_ctx l = {res, edge * shell_width(v)};
    for (int64_t c = 0; c < v->c; c++)
        CRYO_TRY(fourier_filter(channel(v, c), v, lowpass_fn, &l, NULL, err));
    return CRYO_OK;
}

/* ---- missing wedge / cone ---------------------------------------------------------- */

int cryo_degrade_wedge_keeps(double kx, double ky, double kz, double max_tilt_deg,
                             enum cryo_tilt_axis axis, int cone)
{
    if (max_tilt_deg >= 90)
        return 1;
    double t = tan(max_tilt_deg * M_PI / 180.0);
    double perp = cone ? sqrt(kx * kx + ky * ky) : fabs(axis == CRYO_TILT_AXIS_Y ? kx : ky);
    if (kz == 0)
        return 1; /* includes the tilt axis itself and DC */
    /* on the boundary (to float rounding of voxel sizes read from files) counts as kept */
    return fabs(kz) <= t * perp * (1 + 1e-6);
}

struct wedge_ctx { double tilt; enum cryo_tilt_axis axis; int cone; };

static double wedge_fn(double kx, double ky, double kz, const void *ctx)
{
    const struct wedge_ctx *w = ctx;
    return cryo_degrade_wedge_keeps(kx, ky, kz, w->tilt, w->axis, w->cone) ? 1.0 : 0.0;
}

int cryo_degrade_wedge(struct cryo_volume *v, double max_tilt_deg, enum cryo_tilt_axis axis, int cone,
                       double *kept, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    if (!(max_tilt_deg > 0 && max_tilt_deg <= 90))
        return cryo_fail(err, CRYO_E_INVALID, "wedge tilt range must be in (0, 90] degrees (got %g)",
                         max_tilt_deg);
    struct wedge_ctx w = {max_tilt_deg, axis, cone};
    for (int64_t c = 0; c < v->c; c++)
        CRYO_TRY(fourier_filter(channel(v, c), v, wedge_fn, &w, kept, err));
    return CRYO_OK;
}

/* ---- binning ------------------------------------------------------------------------ */

/* Coarse coordinate of fine index i: block centres sit at N*I + (N-1)/2. */
static inline void coarse_pos(int64_t i, int N, int64_t m, int64_t *i0, double *f)
{
    double t = ((double)i - (N - 1) / 2.0) / N;
    if (t < 0)
        t = 0;
    if (t > (double)(m - 1))
        t = (double)(m - 1);
    int64_t a = (int64_t)floor(t);
    if (a > m - 2)
        a = m >= 2 ? m - 2 : 0;
    *i0 = a;
    *f = m >= 2 ? t - (double)a : 0.0;
}

int cryo_degrade_bin(struct cryo_volume *v, int factor, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    if (factor < 1 || factor > 64)
        return cryo_fail(err, CRYO_E_INVALID, "bin factor must be 1..64 (got %d)", factor);
    if (factor == 1)
        return CRYO_OK;
    const int N = factor;
    const int64_t nx = v->nx, ny = v->ny, nz = v->nz;
    const int64_t mx = (nx + N - 1) / N, my = (ny + N - 1) / N, mz = (nz + N - 1) / N;
    size_t mcount;
    CRYO_TRY(cryo_count4(1, mz, my, mx, &mcount, err));
    double *coarse = cryo_alloc_array(mcount, sizeof *coarse, err);
    if (!coarse)
        return CRYO_E_NOMEM;
    for (int64_t c = 0; c < v->c; c++) {
        float *x = channel(v, c);
        memset(coarse, 0, mcount * sizeof *coarse);
#pragma omp parallel for schedule(static)
        for (int64_t K = 0; K < mz; K++)
            for (int64_t J = 0; J < my; J++)
                for (int64_t I = 0; I < mx; I++) {
                    double s = 0;
                    long cnt = 0;
                    for (int64_t k = K * N; k < (K + 1) * N && k < nz; k++)
                        for (int64_t j = J * N; j < (J + 1) * N && j < ny; j++)
                            for (int64_t i = I * N; i < (I + 1) * N && i < nx; i++, cnt++)
                                s += x[((size_t)k * (size_t)ny + (size_t)j) * (size_t)nx + (size_t)i];
                    coarse[((size_t)K * (size_t)my + (size_t)J) * (size_t)mx + (size_t)I] = s / (double)cnt;
                }
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < nz; k++) {
            int64_t k0;
            double fz;
            coarse_pos(k, N, mz, &k0, &fz);
            int64_t k1 = mz >= 2 ? k0 + 1 : k0;
            for (int64_t j = 0; j < ny; j++) {
                int64_t j0;
                double fy;
                coarse_pos(j, N, my, &j0, &fy);
                int64_t j1 = my >= 2 ? j0 + 1 : j0;
                for (int64_t i = 0; i < nx; i++) {
                    int64_t i0;
                    double fx;
                    coarse_pos(i, N, mx, &i0, &fx);
                    int64_t i1 = mx >= 2 ? i0 + 1 : i0;
#define C(K_, J_, I_) coarse[((size_t)(K_) * (size_t)my + (size_t)(J_)) * (size_t)mx + (size_t)(I_)]
                    double c00 = C(k0, j0, i0) * (1 - fx) + C(k0, j0, i1) * fx;
                    double c01 = C(k0, j1, i0) * (1 - fx) + C(k0, j1, i1) * fx;
                    double c10 = C(k1, j0, i0) * (1 - fx) + C(k1, j0, i1) * fx;
                    double c11 = C(k1, j1, i0) * (1 - fx) + C(k1, j1, i1) * fx;
#undef C
                    double c0 = c00 * (1 - fy) + c01 * fy, c1 = c10 * (1 - fy) + c11 * fy;
                    x[((size_t)k * (size_t)ny + (size_t)j) * (size_t)nx + (size_t)i] =
                        (float)(c0 * (1 - fz) + c1 * fz);
                }
            }
        }
    }
    free(coarse);
    return CRYO_OK;
}

/* ---- noise --------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Box-Muller on hashed uniforms; both outputs of a pair are used (index i takes the cosine
 * output of pair i/2 when even, the sine one when odd), so the bulk fill pays one log and
 * one sincos per two samples. */
static inline void gauss_pair(uint64_t base, uint64_t pair, double *g0, double *g1)
{
    uint64_t a = mix64(base ^ (2 * pair)), b = mix64(base ^ (2 * pair + 1));
    double u1 = ((double)(a >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);         /* [0, 1) */
    double r = sqrt(-2.0 * log(u1)), sn, cs;
    sincos(2 * M_PI * u2, &sn, &cs);
    *g0 = r * cs;
    *g1 = r * sn;
}

static inline uint64_t gauss_base(uint64_t seed, uint64_t s)
{
    return mix64(mix64(seed) ^ (s * 0xd1b54a32d192ed03ULL));
}

double cryo_degrade_gauss(uint64_t seed, uint64_t s, uint64_t i)
{
    double g0, g1;
    gauss_pair(gauss_base(seed, s), i >> 1, &g0, &g1);
    return (i & 1) ? g1 : g0;
}

/* out[i] = cryo_degrade_gauss(seed, s, i) for i < n. */
static void gauss_fill(float *out, size_t n, uint64_t seed, uint64_t s)
{
    const uint64_t base = gauss_base(seed, s);
    const size_t npair = (n + 1) / 2;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < npair; p++) {
        double g0, g1;
        gauss_pair(base, p, &g0, &g1);
        out[2 * p] = (float)g0;
        if (2 * p + 1 < n)
            out[2 * p + 1] = (float)g1;
    }
}

static void mean_var(const float *x, size_t n, double *mean, double *var)
{
    double s = 0, s2 = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double m = s / (double)n;
#pragma omp parallel for reduction(+ : s2) schedule(static)
    for (size_t i = 0; i < n; i++)
        s2 += (x[i] - m) * (x[i] - m);
    *mean = m;
    *var = s2 / (double)n;
}

int cryo_degrade_noise(struct cryo_volume *v, double snr, const struct cryo_volume *shape_like,
                       uint64_t seed, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    if (!(snr > 0) || !isfinite(snr))
        return cryo_fail(err, CRYO_E_INVALID, "SNR must be > 0 (got %g)", snr);
    if (shape_like && (shape_like->dtype != CRYO_DTYPE_F32 || shape_like->nx != v->nx ||
                       shape_like->ny != v->ny || shape_like->nz != v->nz || shape_like->c < 1))
        return cryo_fail(err, CRYO_E_INVALID, "noise shape volume must be float32 of the same size");
    const size_t n = cryo_volume_channel_count(v);
    float *noise = NULL;
    struct ft t;
    memset(&t, 0, sizeof t);
    double *power = NULL;
    size_t nshell = 0;
    double ds = shell_width(v);
    if (shape_like) {
        CRYO_TRY(ft_init(&t, v, err));
        double kmax = 0.5 / v->apix[0] + 0.5 / v->apix[1] + 0.5 / v->apix[2];
        nshell = (size_t)(kmax / ds) + 2;
        power = cryo_alloc_array(2 * nshell, sizeof *power, err);
        if (!power) {
            ft_free(&t);
            return CRYO_E_NOMEM;
        }
    } else {
        size_t bytes;
        CRYO_TRY(cryo_mul_size(n, sizeof(float), &bytes, err));
        noise = cryo_alloc_big(bytes, err);
        if (!noise)
            return CRYO_E_NOMEM;
    }
    int s = CRYO_OK;
    for (int64_t c = 0; c < v->c && s == CRYO_OK; c++) {
        float *x = channel(v, c);
        double mean, var;
        mean_var(x, n, &mean, &var);
        if (!(var > 0)) {
            s = cryo_fail(err, CRYO_E_NUMERIC, "map channel %lld is flat (variance 0): SNR undefined",
                          (long long)c);
            break;
        }
        float *nz_buf = shape_like ? t.r : noise;
        if (!shape_like) {
            gauss_fill(nz_buf, n, seed, (uint64_t)c * 16 + 1);
        } else {
            /* shell power of the shape volume (its channel c, or 0 if it has fewer) */
            const float *sh = channel(shape_like, c < shape_like->c ? c : 0);
            memset(power, 0, 2 * nshell * sizeof *power);
            double *cnt = power + nshell;
            memcpy(t.r, sh, n * sizeof(float));
            fftwf_execute(t.fwd);
            for (int64_t k = 0; k < t.nz; k++)
                for (int64_t j = 0; j < t.ny; j++)
                    for (int64_t i = 0; i < t.nh; i++) {
                        double kx, ky, kz;
                        ft_freq(&t, v->apix, i, j, k, &kx, &ky, &kz);
                        size_t sh_i = (size_t)lround(sqrt(kx * kx + ky * ky + kz * kz) / ds);
                        size_t idx = ((size_t)k * (size_t)t.ny + (size_t)j) * (size_t)t.nh + (size_t)i;
                        if (sh_i < nshell) {
                            power[sh_i] += (double)t.c[idx][0] * t.c[idx][0] + (double)t.c[idx][1] * t.c[idx][1];
                            cnt[sh_i] += 1;
                        }
                    }
            for (size_t q = 0; q < nshell; q++)
                power[q] = cnt[q] > 0 ? sqrt(power[q] / cnt[q]) : 0; /* amplitude per shell */
            gauss_fill(t.r, n, seed, (uint64_t)c * 16 + 1);
            fftwf_execute(t.fwd);
#pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < t.nz; k++)
                for (int64_t j = 0; j < t.ny; j++)
                    for (int64_t i = 0; i < t.nh; i++) {
                        double kx, ky, kz;
                        ft_freq(&t, v->apix, i, j, k, &kx, &ky, &kz);
                        size_t sh_i = (size_t)lround(sqrt(kx * kx + ky * ky + kz * kz) / ds);
                        double a = sh_i < nshell && sh_i > 0 ? power[sh_i] : 0; /* no DC */
                        size_t idx = ((size_t)k * (size_t)t.ny + (size_t)j) * (size_t)t.nh + (size_t)i;
                        t.c[idx][0] = (float)(t.c[idx][0] * a);
                        t.c[idx][1] = (float)(t.c[idx][1] * a);
                    }
            fftwf_execute(t.inv);
        }
        double nmean, nvar;
        mean_var(nz_buf, n, &nmean, &nvar);
        if (!(nvar > 0)) {
            s = cryo_fail(err, CRYO_E_NUMERIC, "noise shape volume has no power outside DC");
            break;
        }
        /* Standardise the drawn noise so the requested SNR holds exactly for this map. */
        double scale = sqrt(var / snr / nvar);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(x[i] + (nz_buf[i] - nmean) * scale);
    }
    free(power);
    ft_free(&t);
    cryo_free_big(noise);
    return s;
}

/* ---- local resolution ---------------------------------------------------------------- */

static double gauss_blur_axis(double k, const void *ctx)
{
    double sigma = *(const double *)ctx;
    return exp(-2 * M_PI * M_PI * sigma * sigma * k * k);
}

int cryo_degrade_local_res(struct cryo_volume *v, double lo, double hi, double scale, int levels,
                           uint64_t seed, struct cryo_volume *w_out, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    if (!(lo > 0) || !(hi > lo) || !isfinite(hi))
        return cryo_fail(err, CRYO_E_INVALID, "local resolution needs 0 < LO < HI (got %g,%g)", lo, hi);
    if (!(scale > 0) || !isfinite(scale))
        return cryo_fail(err, CRYO_E_INVALID, "local resolution scale must be > 0 Å (got %g)", scale);
    if (levels < 2 || levels > 64)
        return cryo_fail(err, CRYO_E_INVALID, "local resolution levels must be 2..64 (got %d)", levels);
    const size_t n = cryo_volume_channel_count(v);
    struct cryo_volume w, tmp;
    cryo_volume_init(&w);
    cryo_volume_init(&tmp);
    CRYO_TRY(cryo_volume_alloc(&w, CRYO_DTYPE_F32, 1, v->nz, v->ny, v->nx, err));
    memcpy(w.apix, v->apix, sizeof w.apix);
    memcpy(w.origin, v->origin, sizeof w.origin);
    int s = cryo_volume_alloc(&tmp, CRYO_DTYPE_F32, 1, v->nz, v->ny, v->nx, err);
    memcpy(tmp.apix, v->apix, sizeof tmp.apix);
    float *acc = NULL;
    if (s == CRYO_OK) {
        size_t bytes;
        s = cryo_mul_size(n, sizeof(float), &bytes, err);
        if (s == CRYO_OK && !(acc = cryo_alloc_big(bytes, err)))
            s = CRYO_E_NOMEM;
    }
    /* weight field: blurred white noise, min-max normalised to [0,1] */
    float *wf = w.data;
    if (s == CRYO_OK) {
        gauss_fill(wf, n, seed, 7);
        s = fourier_filter_any(wf, &w, NULL, &scale, gauss_blur_axis, NULL, err);
    }
    if (s == CRYO_OK) {
        float mn = wf[0], mx = wf[0];
        for (size_t i = 1; i < n; i++) {
            mn = wf[i] < mn ? wf[i] : mn;
            mx = wf[i] > mx ? wf[i] : mx;
        }
        float range = mx > mn ? mx - mn : 1;
        for (size_t i = 0; i < n; i++)
            wf[i] = (wf[i] - mn) / range;
    }
    for (int64_t c = 0; c < v->c && s == CRYO_OK; c++) {
        float *x = channel(v, c);
        memset(acc, 0, n * sizeof *acc);
        for (int l = 0; l < levels && s == CRYO_OK; l++) {
            double res = lo + (hi - lo) * l / (levels - 1);
            memcpy(tmp.data, x, n * sizeof(float));
            s = cryo_degrade_lowpass(&tmp, res, 2.0, err);
            if (s < 0)
                break;
            const float *f = tmp.data;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) {
                double hat = 1.0 - fabs(wf[i] * (levels - 1) - l); /* linear between levels */
                if (hat > 0)
                    acc[i] += (float)hat * f[i];
            }
        }
        if (s == CRYO_OK)
            memcpy(x, acc, n * sizeof(float));
    }
    cryo_free_big(acc);
    cryo_volume_free(&tmp);
    if (s == CRYO_OK && w_out)
        cryo_volume_move(w_out, &w);
    cryo_volume_free(&w);
    return s;
}

/* ---- all together -------------------------------------------------------------------- */

void cryo_degrade_opts_default(struct cryo_degrade_opts *o)
{
    memset(o, 0, sizeof *o);
    o->local_scale = 20.0;
    o->lowpass_edge = 2.0;
    o->bin = 1;
    o->tilt_axis = CRYO_TILT_AXIS_Y;
}

int cryo_degrade_apply(struct cryo_volume *v, const struct cryo_degrade_opts *o, struct cryo_error *err)
{
    CRYO_TRY(check_volume(v, err));
    CRYO_TRY(cryo_volume_check_finite(v, "input", err));
    struct cryo_volume clean;
    cryo_volume_init(&clean);
    if (o->snr > 0 && o->noise_shell)
        CRYO_TRY(cryo_volume_copy(&clean, v, err));
    int s = CRYO_OK;
    if (s == CRYO_OK && o->local_lo > 0)
        s = cryo_degrade_local_res(v, o->local_lo, o->local_hi, o->local_scale, 5, o->seed, NULL, err);
    if (s == CRYO_OK && o->bfactor != 0)
        s = cryo_degrade_bfactor(v, o->bfactor, err);
    if (s == CRYO_OK && o->lowpass > 0)
        s = cryo_degrade_lowpass(v, o->lowpass, o->lowpass_edge, err);
    if (s == CRYO_OK && o->bin > 1)
        s = cryo_degrade_bin(v, o->bin, err);
    if (s == CRYO_OK && o->snr > 0)
        s = cryo_degrade_noise(v, o->snr, o->noise_shell ? &clean : NULL, o->seed, err);
    if (s == CRYO_OK && o->sharpen_b > 0)
        s = cryo_degrade_bfactor(v, -o->sharpen_b, err);
    if (s == CRYO_OK && o->sharpen_b > 0)
        s = cryo_degrade_lowpass(v, o->sharpen_res, o->lowpass_edge, err);
    if (s == CRYO_OK && o->wedge > 0)
        s = cryo_degrade_wedge(v, o->wedge, o->tilt_axis, o->cone, NULL, err);
    cryo_volume_free(&clean);
    return s;
}
