/* quantile.c — exact quantiles (numpy 'linear') without sorting: a two-level radix select.
 *
 * Floats map to 32-bit keys whose unsigned order is the numeric order (flip all bits of a
 * negative float, the sign bit of a positive one). Pass 1 counts the high 16 bits of every
 * key (one histogram per thread, merged), which tells for each wanted rank its high half and
 * its rank inside that bucket; pass 2 counts the low 16 bits of the keys in those few
 * buckets only, which fixes the whole key, i.e. the exact order statistic. Two streaming
 * passes over the data, parallel, no copy, however the values are distributed (a bucket
 * full of equal values costs nothing extra). NaN and Inf are found in pass 1 and refused. */
#include "cryolvm/normalize.h"
#include "cryolvm/mem.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define NB 65536
#define MAX_SLOTS 16 /* buckets refined per pass 2 */

static inline uint32_t f2key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u ^ ((u >> 31) ? 0xFFFFFFFFu : 0x80000000u);
}

static inline float key2f(uint32_t k)
{
    uint32_t u = k ^ ((k >> 31) ? 0x80000000u : 0xFFFFFFFFu);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
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

/* Pass 1: merged histogram of high halves into hist[NB]; first NaN/Inf index (or n) in
 * *bad_at. Per-thread counts are 32-bit (half the cache footprint of 64-bit ones), so the
 * data go in chunks of at most 2^31 values, each merged into the 64-bit totals. */
static int hist_high(const float *x, size_t n, uint64_t *hist, size_t *bad_at, struct cryo_error *err)
{
    int nt = nthreads();
    uint32_t *h = cryo_alloc_array((size_t)nt * NB, sizeof *h, err);
    if (!h)
        return CRYO_E_NOMEM;
    memset(hist, 0, NB * sizeof *hist);
    size_t first_bad = n;
    const size_t chunk = (size_t)1 << 31;
    for (size_t c0 = 0; c0 < n; c0 += chunk) {
        size_t c1 = n - c0 < chunk ? n : c0 + chunk;
        memset(h, 0, (size_t)nt * NB * sizeof *h);
#pragma omp parallel num_threads(nt) reduction(min : first_bad)
        {
            uint32_t *mine = h + (size_t)thread_id() * NB;
#pragma omp for schedule(static)
            for (size_t i = c0; i < c1; i++) {
                if (!isfinite(x[i])) {
                    if (i < first_bad)
                        first_bad = i;
                    continue;
                }
                mine[f2key(x[i]) >> 16]++;
            }
        }
        for (int t = 0; t < nt; t++)
            for (size_t b = 0; b < NB; b++)
                hist[b] += h[(size_t)t * NB + b];
    }
    free(h);
    *bad_at = first_bad;
    return CRYO_OK;
}

/* Pass 2 for up to MAX_SLOTS buckets: low-half histograms sub[slot][NB]. */
static int hist_low(const float *x, size_t n, const uint32_t *buckets, int nslots, uint64_t *sub,
                    struct cryo_error *err)
{
    int nt = nthreads();
    int16_t *slot_of = malloc(NB * sizeof *slot_of);
    uint64_t *h = cryo_alloc_array((size_t)nt * (size_t)nslots * NB, sizeof *h, err);
    if (!slot_of || !h) {
        free(slot_of);
        free(h);
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory for quantile histograms");
    }
    for (size_t b = 0; b < NB; b++)
        slot_of[b] = -1;
    for (int s = 0; s < nslots; s++)
        slot_of[buckets[s]] = (int16_t)s;
#pragma omp parallel num_threads(nt)
    {
        uint64_t *mine = h + (size_t)thread_id() * (size_t)nslots * NB;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            uint32_t k = f2key(x[i]);
            int s = slot_of[k >> 16];
            if (s >= 0)
                mine[(size_t)s * NB + (k & 0xFFFFu)]++;
        }
    }
    memset(sub, 0, (size_t)nslots * NB * sizeof *sub);
    for (int t = 0; t < nt; t++)
        for (size_t j = 0; j < (size_t)nslots * NB; j++)
            sub[j] += h[(size_t)t * (size_t)nslots * NB + j];
    free(h);
    free(slot_of);
    return CRYO_OK;
}

/* Index of the bucket holding rank r (0-based) in hist; *below = count before it. */
static uint32_t find_bucket(const uint64_t *hist, uint64_t r, uint64_t *below)
{
    uint64_t acc = 0;
    for (uint32_t b = 0; b < NB; b++) {
        if (r < acc + hist[b]) {
            *below = acc;
            return b;
        }
        acc += hist[b];
    }
    *below = acc; /* not reached for r < n */
    return NB - 1;
}

int cryo_quantiles(const float *values, size_t n, const double *probs, size_t k, double *out,
                   struct cryo_error *err)
{
    if (n == 0)
        return cryo_fail(err, CRYO_E_INVALID, "quantiles of no values");
    for (size_t i = 0; i < k; i++)
        if (!(probs[i] >= 0 && probs[i] <= 1))
            return cryo_fail(err, CRYO_E_INVALID, "quantile probability %g is outside [0, 1]", probs[i]);
    if (k == 0)
        return CRYO_OK;
    /* Ranks wanted: floor(h) and floor(h) + 1 for each probability. */
    size_t nr = 2 * k;
    uint64_t *rank = cryo_alloc_array(nr, sizeof *rank, err);
    uint32_t *key = cryo_alloc_array(nr, sizeof *key, err);
    uint64_t *hist = cryo_alloc_array(NB, sizeof *hist, err);
    uint64_t *sub = cryo_alloc_array((size_t)MAX_SLOTS * NB, sizeof *sub, err);
    int st = (!rank || !key || !hist || !sub) ? CRYO_E_NOMEM : CRYO_OK;
    for (size_t i = 0; st == CRYO_OK && i < k; i++) {
        double h = (double)(n - 1) * probs[i];
        uint64_t lo = (uint64_t)floor(h);
        if (lo > n - 1)
            lo = n - 1;
        rank[2 * i] = lo;
        rank[2 * i + 1] = lo + 1 < n ? lo + 1 : lo;
    }
    size_t nan_at = n;
    if (st == CRYO_OK)
        st = hist_high(values, n, hist, &nan_at, err);
    if (st == CRYO_OK && nan_at < n)
        st = cryo_fail(err, CRYO_E_NUMERIC, "value %zu is %s", nan_at, isnan(values[nan_at]) ? "NaN" : "Inf");
    /* Bucket and in-bucket rank of each wanted rank; refine MAX_SLOTS buckets per pass. */
    uint32_t *bucket = NULL;
    uint64_t *inrank = NULL;
    if (st == CRYO_OK) {
        bucket = cryo_alloc_array(nr, sizeof *bucket, err);
        inrank = cryo_alloc_array(nr, sizeof *inrank, err);
        if (!bucket || !inrank)
            st = CRYO_E_NOMEM;
    }
    for (size_t i = 0; st == CRYO_OK && i < nr; i++) {
        uint64_t below;
        bucket[i] = find_bucket(hist, rank[i], &below);
        inrank[i] = rank[i] - below;
    }
    char *done = st == CRYO_OK ? cryo_alloc_array(nr, 1, err) : NULL;
    if (st == CRYO_OK && !done)
        st = CRYO_E_NOMEM;
    size_t left = nr;
    while (st == CRYO_OK && left > 0) {
        uint32_t slots[MAX_SLOTS];
        int ns = 0;
        for (size_t i = 0; i < nr && ns < MAX_SLOTS; i++) {
            if (done[i])
                continue;
            int seen = 0;
            for (int s = 0; s < ns; s++)
                seen |= slots[s] == bucket[i];
            if (!seen)
                slots[ns++] = bucket[i];
        }
        st = hist_low(values, n, slots, ns, sub, err);
        for (size_t i = 0; st == CRYO_OK && i < nr; i++) {
            int s = -1;
            for (int j = 0; j < ns; j++)
                if (slots[j] == bucket[i])
                    s = j;
            if (done[i] || s < 0)
                continue;
            uint64_t below;
            uint32_t low = find_bucket(sub + (size_t)s * NB, inrank[i], &below);
            key[i] = (bucket[i] << 16) | low;
            done[i] = 1;
            left--;
        }
    }
    for (size_t i = 0; st == CRYO_OK && i < k; i++) {
        double h = (double)(n - 1) * probs[i];
        double f = h - floor(h);
        double a = key2f(key[2 * i]), b = key2f(key[2 * i + 1]);
        out[i] = f == 0 ? a : a + f * (b - a);
    }
    free(done);
    free(bucket);
    free(inrank);
    free(rank);
    free(key);
    free(hist);
    free(sub);
    return st;
}
