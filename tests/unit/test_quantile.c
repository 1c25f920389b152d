/* test_quantile.c — exact quantiles and the normalisations built on them:
 *   cryo_quantiles equals numpy's 'linear' rule applied to a fully sorted copy (qsort) for
 *   many sizes, heavy ties, negative values and signed zeros, probabilities 0 and 1, and more
 *   than one refinement batch of probabilities; NaN and bad probabilities are refused;
 *   quantile normalisation maps the two quantiles to 0 and 1 and clips; z-scores give mean 0
 *   and std 1; --invert restores unclipped voxels; masked statistics use only the mask;
 *   a mask on another grid, a flat map and NaN input are refused with a clear message.
 *   numpy comparisons are in tests/bats/mrc-normalize.bats. */
#include "cryolvm/normalize.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double sorted_quantile(const float *s, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return (double)s[lo] + (h - floor(h)) * ((double)s[hi] - (double)s[lo]);
}

TEST(quantiles_match_sorting)
{
    const size_t sizes[] = {1, 2, 3, 10, 101, 1000, 65537, 300001};
    double probs[40];
    for (int i = 0; i < 40; i++)
        probs[i] = i == 0 ? 0 : i == 39 ? 1 : (double)i / 39.0 + (i % 3) * 1e-3 * ((i % 2) ? 1 : -1);
    probs[5] = 0.01, probs[6] = 0.99, probs[7] = 0.5;
    uint64_t st = 42;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (int kind = 0; kind < 3; kind++) {
            size_t n = sizes[s];
            float *x = malloc(n * sizeof *x), *sorted = malloc(n * sizeof *sorted);
            for (size_t i = 0; i < n; i++) {
                double r = tu_rand(&st);
                x[i] = kind == 0   ? (float)(r * 1e3)
                       : kind == 1 ? (float)floor(r * 5) /* heavy ties, -5..4 */
                                   : (i % 7 == 0 ? -0.0f : (float)(r * 1e-30));
            }
            memcpy(sorted, x, n * sizeof *x);
            qsort(sorted, n, sizeof *sorted, cmp_f);
            double out[40];
            float *copy = malloc(n * sizeof *copy);
            memcpy(copy, x, n * sizeof *x);
            CHECK_EQ_INT(cryo_quantiles(x, n, probs, 40, out, NULL), 0);
            CHECK(memcmp(copy, x, n * sizeof *x) == 0); /* input untouched */
            for (int i = 0; i < 40; i++) {
                double want = sorted_quantile(sorted, n, probs[i]);
                if (!(fabs(out[i] - want) <= 1e-12 * fmax(1e-300, fabs(want))) && !(out[i] == want))
                    tu_fail(__FILE__, __LINE__, "n=%zu kind=%d p=%g: %.17g vs %.17g", n, kind, probs[i], out[i], want);
            }
            free(x);
            free(sorted);
            free(copy);
        }
    }
}

TEST(quantiles_refuse_nan_and_bad_probs)
{
    float x[5] = {1, 2, NAN, 4, 5};
    double p = 0.5, q;
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_quantiles(x, 5, &p, 1, &q, &err), CRYO_E_NUMERIC);
    CHECK(strstr(err.msg, "value 2 is NaN") != NULL);
    x[2] = 3;
    p = 1.5;
    CHECK_EQ_INT(cryo_quantiles(x, 5, &p, 1, &q, &err), CRYO_E_INVALID);
    p = NAN;
    CHECK_EQ_INT(cryo_quantiles(x, 5, &p, 1, &q, &err), CRYO_E_INVALID);
    p = 0.5;
    CHECK_EQ_INT(cryo_quantiles(x, 0, &p, 1, &q, &err), CRYO_E_INVALID);
    CHECK_EQ_INT(cryo_quantiles(x, 5, &p, 1, &q, &err), 0);
    CHECK_CLOSE(q, 3, 0);
}

static void make_vol(struct cryo_volume *v, int64_t c, uint64_t seed)
{
    cryo_volume_init(v);
    cryo_volume_alloc(v, CRYO_DTYPE_F32, c, 10, 11, 12, NULL);
    v->apix[0] = v->apix[1] = v->apix[2] = 1.5;
    uint64_t st = seed;
    for (size_t i = 0; i < cryo_volume_count(v); i++)
        ((float *)v->data)[i] = (float)(3 * tu_rand(&st) + 2 + (double)(i / cryo_volume_channel_count(v)));
}

TEST(quantile_mode_maps_and_clips_and_inverts)
{
    struct cryo_volume v, orig;
    make_vol(&v, 2, 5);
    cryo_volume_init(&orig);
    CHECK_EQ_INT(cryo_volume_copy(&orig, &v, NULL), 0);
    struct cryo_normalize_opts o;
    cryo_normalize_opts_default(&o);
    const size_t n = cryo_volume_channel_count(&v);
    double q[2][2], p[2] = {0.01, 0.99};
    for (int c = 0; c < 2; c++)
        CHECK_EQ_INT(cryo_quantiles((float *)v.data + c * n, n, p, 2, q[c], NULL), 0);
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "test", NULL), 0);
    CHECK(strcmp(cryo_meta_get(&v.meta, "normalize.mode"), "quantile") == 0);
    CHECK(strchr(cryo_meta_get(&v.meta, "normalize.scale"), ',') != NULL); /* one per channel */
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < n; i++) {
            double x = ((float *)orig.data)[c * n + i], y = ((float *)v.data)[c * n + i];
            double want = (x - q[c][0]) / (q[c][1] - q[c][0]);
            want = want < 0 ? 0 : want > 1 ? 1 : want;
            CHECK_CLOSE(y, want, 1e-6);
        }
    CHECK_EQ_INT(cryo_normalize_invert(&v, "test", NULL), 0);
    CHECK(cryo_meta_get(&v.meta, "normalize.scale") == NULL);
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < n; i++) {
            double x = ((float *)orig.data)[c * n + i];
            if (x > q[c][0] && x < q[c][1])
                CHECK_CLOSE(((float *)v.data)[c * n + i], x, 1e-5);
        }
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_normalize_invert(&v, "again.cvol", &err), CRYO_E_INVALID); /* keys gone */
    CHECK(strstr(err.msg, "again.cvol") != NULL);
    /* unscale: x = y / scale = y (q_hi - q_lo), so 0 stays 0 and 1 becomes q_hi - q_lo */
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "test", NULL), 0);
    double sc[2];
    CHECK(sscanf(cryo_meta_get(&v.meta, "normalize.scale"), "%lf,%lf", &sc[0], &sc[1]) == 2);
    struct cryo_volume normed;
    cryo_volume_init(&normed);
    CHECK_EQ_INT(cryo_volume_copy(&normed, &v, NULL), 0);
    CHECK_EQ_INT(cryo_normalize_unscale(&v, "test", NULL), 0);
    CHECK(cryo_meta_get(&v.meta, "normalize.offset") == NULL);
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < n; i++)
            CHECK_CLOSE(((float *)v.data)[c * n + i], ((float *)normed.data)[c * n + i] / sc[c], 1e-6 / sc[c]);
    CHECK_EQ_INT(cryo_normalize_unscale(&v, "twice.cvol", &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "twice.cvol") != NULL);
    cryo_volume_free(&normed);
    cryo_volume_free(&v);
    cryo_volume_free(&orig);
}

TEST(zscore_and_mask)
{
    struct cryo_volume v, mask;
    make_vol(&v, 1, 9);
    const size_t n = cryo_volume_channel_count(&v);
    struct cryo_normalize_opts o;
    cryo_normalize_opts_default(&o);
    o.mode = CRYO_NORMALIZE_ZSCORE;
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "t", NULL), 0);
    struct cryo_stats s;
    cryo_volume_stats(&v, &s);
    CHECK(fabs(s.mean) < 1e-6);
    CHECK_CLOSE(s.std, 1, 1e-5);
    /* masked: statistics of the masked half only -> that half gets mean 0, std 1 */
    cryo_volume_free(&v);
    make_vol(&v, 1, 11);
    for (size_t i = 0; i < n / 2; i++)
        ((float *)v.data)[i] += 100; /* outside the mask: far off */
    cryo_volume_init(&mask);
    cryo_volume_alloc(&mask, CRYO_DTYPE_F32, 1, 10, 11, 12, NULL);
    memcpy(mask.apix, v.apix, sizeof mask.apix);
    for (size_t i = 0; i < n; i++)
        ((float *)mask.data)[i] = i >= n / 2 ? 0.9f : 0.1f;
    o.mask = &mask;
    o.mask_name = "m.mrc";
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "t", NULL), 0);
    double sum = 0, s2 = 0;
    for (size_t i = n / 2; i < n; i++)
        sum += ((float *)v.data)[i], s2 += (double)((float *)v.data)[i] * ((float *)v.data)[i];
    double cnt = (double)(n - n / 2);
    CHECK(fabs(sum / cnt) < 1e-5);
    CHECK_CLOSE(sqrt(s2 / cnt), 1, 1e-5);
    /* mask on another grid */
    struct cryo_error err = {0};
    mask.origin[0] = 3;
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "t", &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "m.mrc") != NULL);
    cryo_volume_free(&mask);
    cryo_volume_init(&mask);
    cryo_volume_alloc(&mask, CRYO_DTYPE_F32, 1, 10, 11, 13, NULL);
    memset(mask.data, 0, cryo_volume_bytes(&mask));
    memcpy(mask.apix, v.apix, sizeof mask.apix);
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "t", &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "13x11x10") != NULL);
    cryo_volume_free(&mask);
    cryo_volume_free(&v);
}

TEST(flat_and_nan_refused)
{
    struct cryo_volume v;
    make_vol(&v, 1, 3);
    struct cryo_normalize_opts o;
    cryo_normalize_opts_default(&o);
    struct cryo_error err = {0};
    ((float *)v.data)[17] = NAN;
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "map.mrc", &err), CRYO_E_NUMERIC);
    CHECK(strstr(err.msg, "map.mrc") != NULL);
    for (size_t i = 0; i < cryo_volume_count(&v); i++)
        ((float *)v.data)[i] = 2.5f;
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "map.mrc", &err), CRYO_E_NUMERIC);
    CHECK(strstr(err.msg, "flat") != NULL);
    o.mode = CRYO_NORMALIZE_ZSCORE;
    CHECK_EQ_INT(cryo_normalize_volume(&v, &o, "map.mrc", &err), CRYO_E_NUMERIC);
    cryo_volume_free(&v);
}

int main(void)
{
    return RUN_TESTS(quantiles_match_sorting, quantiles_refuse_nan_and_bad_probs,
                     quantile_mode_maps_and_clips_and_inverts, zscore_and_mask, flat_and_nan_refused);
}
