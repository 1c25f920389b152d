/* test_fsc.c — fft.c against a direct DFT in double (odd and even sizes, every axis), the
 * inverse round trip, FSC identities, shell geometry, phase randomisation (amplitudes and
 * low frequencies kept, realness, seeding) and the resolution rule. The numpy and relion
 * comparisons of whole curves are in tests/bats/fsc-eval.bats. */
#include "cryolvm/fft.h"
#include "cryolvm/fsc.h"
#include "cryolvm/mem.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill(struct cryo_volume *v, int64_t nx, int64_t ny, int64_t nz, uint64_t seed)
{
    struct cryo_error err = {0};
    CHECK(cryo_volume_alloc(v, CRYO_DTYPE_F32, 1, nz, ny, nx, &err) == 0);
    float *x = v->data;
    uint64_t st = seed;
    for (size_t i = 0; i < cryo_volume_count(v); i++)
        x[i] = (float)tu_rand(&st);
}

/* Direct DFT of element (i, j, k) of the half spectrum, double precision. */
static void dft(const float *x, int64_t nx, int64_t ny, int64_t nz, int64_t i, int64_t j, int64_t k, double out[2])
{
    double re = 0, im = 0;
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t w = 0; w < nx; w++) {
                double ph = -2 * M_PI * ((double)(i * w) / nx + (double)(j * y) / ny + (double)(k * z) / nz);
                double v = x[(z * ny + y) * nx + w];
                re += v * cos(ph);
                im += v * sin(ph);
            }
    out[0] = re, out[1] = im;
}

static void check_fft(int64_t nx, int64_t ny, int64_t nz)
{
    struct cryo_error err = {0};
    struct cryo_volume v;
    cryo_volume_init(&v);
    fill(&v, nx, ny, nz, 11 + (uint64_t)(nx * 100 + ny * 10 + nz));
    const struct cryo_fft3 *p;
    CHECK(cryo_fft3_get(&p, nx, ny, nz, &err) == 0);
    size_t nc = cryo_fft3_complex_count(p), n = cryo_volume_count(&v);
    CHECK_EQ_INT(nc, (size_t)(nz * ny * (nx / 2 + 1)));
    float *f = cryo_alloc_big(2 * nc * sizeof(float), &err);
    float *back = cryo_alloc_big(n * sizeof(float), &err);
    CHECK(cryo_fft3_forward(p, v.data, f, &err) == 0);
    double maxerr = 0, scale = 0;
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i <= nx / 2; i++) {
                double want[2];
                dft(v.data, nx, ny, nz, i, j, k, want);
                const float *got = f + 2 * ((k * ny + j) * (nx / 2 + 1) + i);
                double e = hypot(got[0] - want[0], got[1] - want[1]);
                maxerr = e > maxerr ? e : maxerr;
                scale = hypot(want[0], want[1]) > scale ? hypot(want[0], want[1]) : scale;
            }
    CHECK(maxerr <= 1e-5 * scale);
    CHECK(cryo_fft3_inverse(p, f, back, &err) == 0);
    for (size_t i = 0; i < n; i++)
        back[i] /= (float)n;
    CHECK_REL_ERR(back, (const float *)v.data, n, 1e-6);
    cryo_free_big(f);
    cryo_free_big(back);
    cryo_volume_free(&v);
}

TEST(fft_matches_direct_dft)
{
    check_fft(6, 4, 5);
    check_fft(7, 5, 4);
    check_fft(9, 6, 1); /* one plane: no z pass */
    check_fft(8, 8, 8);
    check_fft(5, 3, 7);
    check_fft(8, 1, 5); /* one row: only the single-row z plan */
    check_fft(1, 4, 3); /* one column */
}

TEST(fft_plan_cache_and_bad_size)
{
    struct cryo_error err = {0};
    const struct cryo_fft3 *a, *b;
    CHECK(cryo_fft3_get(&a, 12, 10, 8, &err) == 0);
    CHECK(cryo_fft3_get(&b, 12, 10, 8, &err) == 0);
    CHECK(a == b);
    CHECK(cryo_fft3_get(&a, 0, 10, 8, &err) == CRYO_E_INVALID);
    cryo_fft_cache_clear();
    CHECK(cryo_fft3_get(&a, 12, 10, 8, &err) == 0);
}

TEST(fsc_identities_and_shells)
{
    struct cryo_error err = {0};
    struct cryo_volume a, b;
    cryo_volume_init(&a);
    cryo_volume_init(&b);
    fill(&a, 16, 16, 16, 3);
    for (int d = 0; d < 3; d++)
        a.apix[d] = 1.5;
    CHECK(cryo_volume_copy(&b, &a, &err) == 0);
    float *y = b.data;
    for (size_t i = 0; i < cryo_volume_count(&b); i++)
        y[i] = -3 * y[i];
    struct cryo_fsc f;
    CHECK(cryo_fsc_compute(&f, &a, &a, NULL, &err) == 0);
    CHECK_EQ_INT(f.nshell, 9); /* N/2 + 1, as relion */
    CHECK_CLOSE(f.ds, 1.0 / 24.0, 1e-12);
    for (size_t q = 0; q < f.nshell; q++)
        CHECK_CLOSE(f.fsc[q], 1.0, 1e-6);
    /* every element within Nyquist counted once (full sphere): shell 0 holds only DC */
    CHECK_EQ_INT(f.count[0], 1);
    CHECK_EQ_INT(f.count[1], 18); /* round(|k|) = 1: 6 axis and 12 edge (sqrt 2) neighbours; corners (sqrt 3) go to 2 */
    cryo_fsc_free(&f);
    CHECK(cryo_fsc_compute(&f, &a, &b, NULL, &err) == 0);
    for (size_t q = 0; q < f.nshell; q++)
        CHECK_CLOSE(f.fsc[q], -1.0, 1e-6);
    cryo_fsc_free(&f);
    /* odd box: N/2 + 1 shells too */
    struct cryo_volume c;
    cryo_volume_init(&c);
    fill(&c, 15, 15, 15, 4);
    size_t ns;
    double ds;
    cryo_fsc_shells(&c, &ds, &ns);
    CHECK_EQ_INT(ns, 8);
    /* shapes differ, NaN, mask of another shape */
    CHECK(cryo_fsc_compute(&f, &a, &c, NULL, &err) == CRYO_E_INVALID);
    struct cryo_fsc_opts o;
    cryo_fsc_opts_default(&o);
    o.mask = &c;
    CHECK(cryo_fsc_compute(&f, &a, &a, &o, &err) == CRYO_E_INVALID);
    ((float *)b.data)[17] = NAN;
    CHECK(cryo_fsc_compute(&f, &a, &b, NULL, &err) == CRYO_E_NUMERIC);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    cryo_volume_free(&c);
}

TEST(phase_randomisation_keeps_amplitudes)
{
    struct cryo_error err = {0};
    struct cryo_volume a, r, r2;
    cryo_volume_init(&a);
    cryo_volume_init(&r);
    cryo_volume_init(&r2);
    fill(&a, 12, 10, 9, 8);
    a.apix[0] = 1, a.apix[1] = 1.2, a.apix[2] = 1.3;
    CHECK(cryo_volume_copy(&r, &a, &err) == 0);
    CHECK(cryo_volume_copy(&r2, &a, &err) == 0);
    const double s_from = 0.2; /* 1/Å */
    CHECK(cryo_fsc_randomize_phases(&r, s_from, 42, &err) == 0);
    CHECK(cryo_fsc_randomize_phases(&r2, s_from, 42, &err) == 0);
    CHECK(memcmp(r.data, r2.data, cryo_volume_bytes(&r)) == 0);
    const struct cryo_fft3 *p;
    CHECK(cryo_fft3_get(&p, 12, 10, 9, &err) == 0);
    size_t nc = cryo_fft3_complex_count(p);
    float *fa = cryo_alloc_big(2 * nc * sizeof(float), &err), *fr = cryo_alloc_big(2 * nc * sizeof(float), &err);
    CHECK(cryo_fft3_forward(p, a.data, fa, &err) == 0);
    CHECK(cryo_fft3_forward(p, r.data, fr, &err) == 0);
    int changed = 0, bad_amp = 0, bad_low = 0;
    for (int64_t k = 0; k < 9; k++)
        for (int64_t j = 0; j < 10; j++)
            for (int64_t i = 0; i < 7; i++) {
                double sk = (k <= 4 ? k : k - 9) / (9 * 1.3), sj = (j <= 5 ? j : j - 10) / (10 * 1.2), si = i / 12.0;
                double s = sqrt(si * si + sj * sj + sk * sk);
                size_t e = 2 * (size_t)((k * 10 + j) * 7 + i);
                double ma = hypot(fa[e], fa[e + 1]), mr = hypot(fr[e], fr[e + 1]);
                if (fabs(ma - mr) > 1e-4 * (1 + ma))
                    bad_amp++;
                double d = hypot(fa[e] - fr[e], fa[e + 1] - fr[e + 1]);
                if (s < s_from - 1e-9 && d > 1e-4 * (1 + ma))
                    bad_low++;
                if (s >= s_from && d > 1e-2 * (1 + ma))
                    changed++;
            }
    CHECK_EQ_INT(bad_amp, 0); /* amplitudes kept, which also means Hermitian symmetry kept */
    CHECK_EQ_INT(bad_low, 0);
    CHECK(changed > 100);
    CHECK(cryo_fsc_randomize_phases(&r2, s_from, 43, &err) == 0);
    CHECK(memcmp(r.data, r2.data, cryo_volume_bytes(&r)) != 0);
    cryo_free_big(fa);
    cryo_free_big(fr);
    cryo_volume_free(&a);
    cryo_volume_free(&r);
    cryo_volume_free(&r2);
}

TEST(masked_fsc_correction_formula)
{
    struct cryo_error err = {0};
    struct cryo_volume a, b, m;
    cryo_volume_init(&a);
    cryo_volume_init(&b);
    cryo_volume_init(&m);
    /* smooth signal + independent noise, so the FSC falls from 1 to 0 */
    CHECK(cryo_volume_alloc(&a, CRYO_DTYPE_F32, 1, 24, 24, 24, &err) == 0);
    CHECK(cryo_volume_alloc(&b, CRYO_DTYPE_F32, 1, 24, 24, 24, &err) == 0);
    CHECK(cryo_volume_alloc(&m, CRYO_DTYPE_F32, 1, 24, 24, 24, &err) == 0);
    uint64_t st = 9;
    float *x = a.data, *y = b.data, *w = m.data;
    for (int z = 0; z < 24; z++)
        for (int j = 0; j < 24; j++)
            for (int i = 0; i < 24; i++) {
                size_t n = (size_t)((z * 24 + j) * 24 + i);
                double r2 = (i - 12.0) * (i - 12.0) + (j - 11.5) * (j - 11.5) + (z - 12.5) * (z - 12.5);
                double sig = exp(-r2 / 18.0) + 0.6 * exp(-((i - 8.0) * (i - 8.0) + (j - 15.0) * (j - 15.0) + (z - 9.0) * (z - 9.0)) / 3.0);
                x[n] = (float)(sig + 0.05 * tu_rand(&st));
                y[n] = (float)(sig + 0.05 * tu_rand(&st));
                double r = sqrt(r2);
                w[n] = (float)(r < 7 ? 1 : r > 10 ? 0 : 0.5 + 0.5 * cos(M_PI * (r - 7) / 3));
            }
    struct cryo_fsc_opts o;
    cryo_fsc_opts_default(&o);
    o.mask = &m;
    struct cryo_fsc f;
    CHECK(cryo_fsc_compute(&f, &a, &b, &o, &err) == 0);
    CHECK(f.randomize_at >= 1);
    CHECK(f.fsc[f.randomize_at] < 0.8 && f.fsc[f.randomize_at - 1] >= 0.8);
    for (size_t q = 0; q < f.nshell; q++) {
        if ((int)q < f.randomize_at + 2)
            CHECK_CLOSE(f.fsc_true[q], f.fsc_masked[q], 0);
        else
            CHECK_CLOSE(f.fsc_true[q], (f.fsc_masked[q] - f.fsc_rand[q]) / (1 - f.fsc_rand[q]), 1e-12);
    }
    /* a given resolution instead: relion's int(N a / d) */
    o.randomize_at_A = 24.0 / 5.5;
    cryo_fsc_free(&f);
    CHECK(cryo_fsc_compute(&f, &a, &b, &o, &err) == 0);
    CHECK_EQ_INT(f.randomize_at, 5);
    cryo_fsc_free(&f);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    cryo_volume_free(&m);
}

TEST(resolution_rule)
{
    const double s[6] = {0, 0.1, 0.2, 0.3, 0.4, 0.5};
    const double c[6] = {1, 0.9, 0.6, 0.4, 0.1, 0.05};
    struct cryo_fsc_res r;
    cryo_fsc_resolution(s, c, 6, 0.5, &r);
    CHECK(r.reached);
    CHECK_EQ_INT(r.shell_index, 3);
    CHECK_CLOSE(r.shell, 1 / 0.2, 1e-12);            /* relion: last shell above */
    CHECK_CLOSE(r.interp, 1 / 0.25, 1e-12);          /* halfway between 0.6 and 0.4 */
    cryo_fsc_resolution(s, c, 6, 0.01, &r);
    CHECK(!r.reached);
    CHECK_CLOSE(r.interp, 2.0, 1e-12);
    const double c2[3] = {1, 0.1, 0.05};
    cryo_fsc_resolution(s, c2, 3, 0.143, &r);
    CHECK_CLOSE(r.shell, 999.0, 0);                  /* relion's value when shell 1 is below */
}

int main(void)
{
    return RUN_TESTS(fft_matches_direct_dft, fft_plan_cache_and_bad_size, fsc_identities_and_shells,
                     phase_randomisation_keeps_amplitudes, masked_fsc_correction_formula, resolution_rule);
}
