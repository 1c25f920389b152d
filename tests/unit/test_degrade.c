/* test_degrade.c — each degradation against an analytic property:
 *   B-factor and low-pass act on a plane wave exactly as their transfer functions say;
 *   the wedge removes plane waves inside the missing wedge (or cone) and keeps others;
 *   binning keeps constants and is exact on linear ramps away from the edges;
 *   noise hits the requested SNR, is zero-mean and Gaussian, reproducible by seed, and
 *   shell noise follows the clean map's shell spectrum;
 *   local resolution equals the LO-filtered map where the weight is 0 and the HI-filtered
 *   map where it is 1. numpy comparisons are in tests/bats/vol-degrade.bats. */
#include "cryolvm/degrade.h"
#include "testutil.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void alloc_vol(struct cryo_volume *v, int64_t nz, int64_t ny, int64_t nx, double apix)
{
    cryo_volume_init(v);
    cryo_volume_alloc(v, CRYO_DTYPE_F32, 1, nz, ny, nx, NULL);
    v->apix[0] = v->apix[1] = v->apix[2] = apix;
}

/* cos(2 pi (hx x/nx + hy y/ny + hz z/nz)) */
static void plane_wave(struct cryo_volume *v, int hx, int hy, int hz)
{
    float *p = v->data;
    for (int64_t k = 0; k < v->nz; k++)
        for (int64_t j = 0; j < v->ny; j++)
            for (int64_t i = 0; i < v->nx; i++)
                p[(k * v->ny + j) * v->nx + i] =
                    (float)cos(2 * M_PI * ((double)hx * i / v->nx + (double)hy * j / v->ny + (double)hz * k / v->nz));
}

/* max |v - a * wave| */
static double wave_residual(const struct cryo_volume *v, int hx, int hy, int hz, double a)
{
    struct cryo_volume w;
    alloc_vol(&w, v->nz, v->ny, v->nx, v->apix[0]);
    plane_wave(&w, hx, hy, hz);
    double m = 0;
    const float *p = v->data, *q = w.data;
    for (size_t i = 0; i < cryo_volume_count(v); i++) {
        double d = fabs(p[i] - a * q[i]);
        if (!(d <= m))
            m = d; /* NaN propagates */
    }
    cryo_volume_free(&w);
    return m;
}

TEST(bfactor_plane_wave)
{
    struct cryo_volume v;
    alloc_vol(&v, 24, 20, 32, 1.5); /* non-cubic box */
    plane_wave(&v, 3, 2, 4);
    double kx = 3 / (32 * 1.5), ky = 2 / (20 * 1.5), kz = 4 / (24 * 1.5);
    double s2 = kx * kx + ky * ky + kz * kz;
    CHECK_EQ_INT(cryo_degrade_bfactor(&v, 80.0, NULL), 0);
    CHECK(wave_residual(&v, 3, 2, 4, exp(-80.0 * s2 / 4)) < 1e-5);
    cryo_volume_free(&v);
}

TEST(lowpass_plane_waves)
{
    struct cryo_volume v;
    alloc_vol(&v, 32, 32, 32, 1.0); /* shell = 1/32 Å^-1 */
    /* 1/res = 8/32: waves at 4 and 12 shells are far from the 2-shell edge */
    plane_wave(&v, 4, 0, 0);
    CHECK_EQ_INT(cryo_degrade_lowpass(&v, 4.0, 2.0, NULL), 0);
    CHECK(wave_residual(&v, 4, 0, 0, 1.0) < 1e-5);
    plane_wave(&v, 0, 12, 0);
    CHECK_EQ_INT(cryo_degrade_lowpass(&v, 4.0, 2.0, NULL), 0);
    CHECK(wave_residual(&v, 0, 12, 0, 0.0) < 1e-5);
    /* on the edge: wave at 8.5 shells along a diagonal is not on the grid; use 8 shells
     * exactly = the edge centre -> weight 0.5 */
    plane_wave(&v, 0, 0, 8);
    CHECK_EQ_INT(cryo_degrade_lowpass(&v, 4.0, 2.0, NULL), 0);
    CHECK(wave_residual(&v, 0, 0, 8, 0.5) < 1e-5);
    CHECK_CLOSE(cryo_degrade_lowpass_weight(0.25, 4.0, 2.0 / 32), 0.5, 1e-12);
    CHECK_CLOSE(cryo_degrade_lowpass_weight(0.25 - 1.0 / 32, 4.0, 2.0 / 32), 1.0, 1e-12);
    CHECK_CLOSE(cryo_degrade_lowpass_weight(0.25 + 1.0 / 32, 4.0, 2.0 / 32), 0.0, 1e-12);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_degrade_lowpass(&v, 0.0, 2.0, &err), CRYO_E_INVALID);
    cryo_volume_free(&v);
}

TEST(wedge_removes_inside_keeps_outside)
{
    struct cryo_volume v;
    alloc_vol(&v, 32, 32, 32, 2.0);
    /* tilt axis y, +-60: kept iff |kz| <= tan(60) |kx| */
    plane_wave(&v, 1, 0, 3); /* angle from kx = atan(3) = 71.6 deg: missing */
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_Y, 0, NULL, NULL), 0);
    CHECK(wave_residual(&v, 1, 0, 3, 0.0) < 1e-5);
    plane_wave(&v, 3, 5, 2); /* 33.7 deg: kept (ky plays no role) */
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_Y, 0, NULL, NULL), 0);
    CHECK(wave_residual(&v, 3, 5, 2, 1.0) < 1e-5);
    plane_wave(&v, 0, 5, 0); /* along the tilt axis: kept */
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_Y, 0, NULL, NULL), 0);
    CHECK(wave_residual(&v, 0, 5, 0, 1.0) < 1e-5);
    plane_wave(&v, 0, 5, 1); /* tilt axis x now: ky is the perpendicular direction -> kept */
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_X, 0, NULL, NULL), 0);
    CHECK(wave_residual(&v, 0, 5, 1, 1.0) < 1e-5);
    plane_wave(&v, 0, 5, 1); /* but axis y: kx = 0, kz != 0: missing */
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_Y, 0, NULL, NULL), 0);
    CHECK(wave_residual(&v, 0, 5, 1, 0.0) < 1e-5);
    /* cone: kept iff |kz| <= tan(A) sqrt(kx^2+ky^2) */
    plane_wave(&v, 1, 1, 2); /* elevation atan(2/1.414) = 54.7 deg */
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 50, CRYO_TILT_AXIS_Y, 1, NULL, NULL), 0);
    CHECK(wave_residual(&v, 1, 1, 2, 0.0) < 1e-5);
    plane_wave(&v, 1, 1, 2);
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_Y, 1, NULL, NULL), 0);
    CHECK(wave_residual(&v, 1, 1, 2, 1.0) < 1e-5);
    /* kept fraction: in the (kx,kz) square the wedge keeps 1 - (1/tan 60)/2... just check it
     * is between the disc value 2/3 and 1 and that 90 keeps all */
    double kept = 0;
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 60, CRYO_TILT_AXIS_Y, 0, &kept, NULL), 0);
    CHECK(kept > 0.6 && kept < 0.85);
    CHECK_EQ_INT(cryo_degrade_wedge(&v, 90, CRYO_TILT_AXIS_Y, 0, &kept, NULL), 0);
    CHECK_CLOSE(kept, 1.0, 1e-12);
    cryo_volume_free(&v);
}

TEST(bin_constant_and_ramp)
{
    struct cryo_volume v;
    alloc_vol(&v, 16, 18, 20, 1.0);
    float *p = v.data;
    for (int64_t k = 0; k < 16; k++)
        for (int64_t j = 0; j < 18; j++)
            for (int64_t i = 0; i < 20; i++)
                p[(k * 18 + j) * 20 + i] = (float)(0.5 * i - 0.25 * j + 2.0 * k + 3.0);
    CHECK_EQ_INT(cryo_degrade_bin(&v, 2, NULL), 0);
    /* interior: block means of a linear field are its value at the block centre, and
     * trilinear interpolation of a linear field is exact */
    double m = 0;
    for (int64_t k = 1; k < 15; k++)
        for (int64_t j = 1; j < 17; j++)
            for (int64_t i = 1; i < 19; i++) {
                double want = 0.5 * i - 0.25 * j + 2.0 * k + 3.0;
                double d = fabs(p[(k * 18 + j) * 20 + i] - want);
                m = d > m ? d : m;
            }
    CHECK(m < 1e-4);
    /* at the edge, values are clamped to the first block centre (0.5 voxel in) */
    CHECK_CLOSE(p[(8 * 18 + 8) * 20 + 0], 0.5 * 0.5 - 0.25 * 8 + 2.0 * 8 + 3.0, 1e-5);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_degrade_bin(&v, 0, &err), CRYO_E_INVALID);
    cryo_volume_free(&v);
}

static double variance(const float *x, size_t n, double *mean)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    for (size_t i = 0; i < n; i++)
        s2 += (x[i] - *mean) * (x[i] - *mean);
    return s2 / n;
}

TEST(noise_snr_gaussian_seeded)
{
    struct cryo_volume v, clean, again;
    alloc_vol(&v, 32, 32, 32, 1.0);
    plane_wave(&v, 2, 3, 1);
    cryo_volume_init(&clean);
    cryo_volume_init(&again);
    cryo_volume_copy(&clean, &v, NULL);
    cryo_volume_copy(&again, &v, NULL);
    CHECK_EQ_INT(cryo_degrade_noise(&v, 0.5, NULL, 7, NULL), 0);
    size_t n = cryo_volume_count(&v);
    float *d = malloc(n * sizeof *d);
    const float *a = v.data, *c = clean.data;
    for (size_t i = 0; i < n; i++)
        d[i] = a[i] - c[i];
    double mn, ms, vn = variance(d, n, &mn), vs = variance(c, n, &ms);
    CHECK_CLOSE(vs / vn, 0.5, 1e-4);
    CHECK(fabs(mn) < 1e-6);
    double k4 = 0;
    for (size_t i = 0; i < n; i++)
        k4 += pow((d[i] - mn) / sqrt(vn), 4);
    CHECK_CLOSE(k4 / n, 3.0, 0.05); /* Gaussian kurtosis, 32768 samples */
    CHECK_EQ_INT(cryo_degrade_noise(&again, 0.5, NULL, 7, NULL), 0);
    CHECK(memcmp(again.data, v.data, n * sizeof(float)) == 0);
    memcpy(again.data, clean.data, n * sizeof(float));
    CHECK_EQ_INT(cryo_degrade_noise(&again, 0.5, NULL, 8, NULL), 0);
    CHECK(memcmp(again.data, v.data, n * sizeof(float)) != 0);
    /* a flat map has no SNR */
    memset(again.data, 0, n * sizeof(float));
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_degrade_noise(&again, 1.0, NULL, 1, &err), CRYO_E_NUMERIC);
    free(d);
    cryo_volume_free(&v);
    cryo_volume_free(&clean);
    cryo_volume_free(&again);
}

/* Shell noise: noise power per shell / clean power per shell is the same in every shell. */
TEST(noise_shell_follows_spectrum)
{
    const int N = 32;
    struct cryo_volume v, clean;
    alloc_vol(&v, N, N, N, 1.0);
    cryo_volume_init(&clean);
    float *p = v.data;
    uint64_t st = 3;
    for (int i = 0; i < N * N * N; i++)
        p[i] = (float)tu_rand(&st);
    CHECK_EQ_INT(cryo_degrade_bfactor(&v, 60.0, NULL), 0); /* a decaying spectrum */
    cryo_volume_copy(&clean, &v, NULL);
    CHECK_EQ_INT(cryo_degrade_noise(&v, 2.0, &clean, 11, NULL), 0);
    int nh = N / 2 + 1;
    float *r = fftwf_malloc(sizeof(float) * N * N * N);
    fftwf_complex *cn = fftwf_malloc(sizeof(fftwf_complex) * N * N * nh);
    fftwf_complex *cc = fftwf_malloc(sizeof(fftwf_complex) * N * N * nh);
    fftwf_plan pl = fftwf_plan_dft_r2c_3d(N, N, N, r, cn, FFTW_ESTIMATE);
    for (int i = 0; i < N * N * N; i++)
        r[i] = ((float *)v.data)[i] - ((float *)clean.data)[i];
    fftwf_execute_dft_r2c(pl, r, cn);
    memcpy(r, clean.data, sizeof(float) * N * N * N);
    fftwf_execute_dft_r2c(pl, r, cc);
    double pn[40] = {0}, pc[40] = {0};
    for (int k = 0; k < N; k++)
        for (int j = 0; j < N; j++)
            for (int i = 0; i < nh; i++) {
                int kk = k <= N / 2 ? k : k - N, jj = j <= N / 2 ? j : j - N;
                int sh = (int)lround(sqrt((double)i * i + jj * jj + kk * kk));
                size_t idx = ((size_t)k * N + j) * nh + i;
                pn[sh] += cn[idx][0] * cn[idx][0] + cn[idx][1] * cn[idx][1];
                pc[sh] += cc[idx][0] * cc[idx][0] + cc[idx][1] * cc[idx][1];
            }
    /* ratios in shells 2..10 agree within sampling error (each shell has >= 50 coeffs) */
    double r2 = pn[2] / pc[2];
    for (int sh = 3; sh <= 10; sh++)
        CHECK_CLOSE(pn[sh] / pc[sh] / r2, 1.0, 0.25);
    fftwf_destroy_plan(pl);
    fftwf_free(r);
    fftwf_free(cn);
    fftwf_free(cc);
    cryo_volume_free(&v);
    cryo_volume_free(&clean);
}

TEST(local_res_blends_levels)
{
    struct cryo_volume v, lo, hi, w;
    alloc_vol(&v, 32, 32, 32, 1.0);
    uint64_t st = 5;
    float *p = v.data;
    for (int i = 0; i < 32 * 32 * 32; i++)
        p[i] = (float)tu_rand(&st);
    cryo_volume_init(&lo);
    cryo_volume_init(&hi);
    cryo_volume_init(&w);
    cryo_volume_copy(&lo, &v, NULL);
    cryo_volume_copy(&hi, &v, NULL);
    CHECK_EQ_INT(cryo_degrade_lowpass(&lo, 3.0, 2.0, NULL), 0);
    CHECK_EQ_INT(cryo_degrade_lowpass(&hi, 8.0, 2.0, NULL), 0);
    CHECK_EQ_INT(cryo_degrade_local_res(&v, 3.0, 8.0, 8.0, 5, 99, &w, NULL), 0);
    const float *wf = w.data, *out = v.data, *l = lo.data, *h = hi.data;
    int seen0 = 0, seen1 = 0;
    double wmin = 1, wmax = 0;
    for (int i = 0; i < 32 * 32 * 32; i++) {
        wmin = wf[i] < wmin ? wf[i] : wmin;
        wmax = wf[i] > wmax ? wf[i] : wmax;
        if (wf[i] == 0.0f) {
            CHECK_CLOSE(out[i], l[i], 1e-5);
            seen0++;
        }
        if (wf[i] == 1.0f) {
            CHECK_CLOSE(out[i], h[i], 1e-5);
            seen1++;
        }
    }
    CHECK(seen0 >= 1 && seen1 >= 1);
    CHECK_CLOSE(wmin, 0.0, 1e-12);
    CHECK_CLOSE(wmax, 1.0, 1e-12);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_degrade_local_res(&v, 8.0, 3.0, 8.0, 5, 1, NULL, &err), CRYO_E_INVALID);
    cryo_volume_free(&v);
    cryo_volume_free(&lo);
    cryo_volume_free(&hi);
    cryo_volume_free(&w);
}

TEST(apply_refuses_nan)
{
    struct cryo_volume v;
    alloc_vol(&v, 8, 8, 8, 1.0);
    plane_wave(&v, 1, 0, 0);
    ((float *)v.data)[17] = NAN;
    struct cryo_degrade_opts o;
    cryo_degrade_opts_default(&o);
    o.bfactor = 10;
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_degrade_apply(&v, &o, &err), CRYO_E_NUMERIC);
    cryo_volume_free(&v);
}

int main(void)
{
    return RUN_TESTS(bfactor_plane_wave, lowpass_plane_waves, wedge_removes_inside_keeps_outside,
                     bin_constant_and_ramp, noise_snr_gaussian_seeded, noise_shell_follows_spectrum,
                     local_res_blends_levels, apply_refuses_nan);
}
