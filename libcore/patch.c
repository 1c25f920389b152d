/* patch.c — crops with padding, the tile grid, the crop RNG and the weighted merge of tiles
 * (definitions in patch.h). A crop builds one source-index table per axis (-1 = zero pad),
 * then copies rows through it, so padding costs nothing per voxel beyond a lookup. The merger
 * keeps sum(w x) per channel and sum(w) on the source grid and divides at the end. */
#include "cryolvm/patch.h"
#include "cryolvm/mem.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t cryo_reflect_index(int64_t i, int64_t n)
{
    if (n <= 1)
        return 0;
    int64_t p = 2 * (n - 1);
    int64_t r = i % p;
    if (r < 0)
        r += p;
    return r < n ? r : p - r;
}

static int64_t *index_table(int64_t start, int64_t size, int64_t n, enum cryo_pad_mode pad,
                            struct cryo_error *err)
{
    int64_t *t = cryo_alloc_array((size_t)size, sizeof *t, err);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < size; i++) {
        int64_t s = start + i;
        if (s >= 0 && s < n)
            t[i] = s;
        else
            t[i] = pad == CRYO_PAD_REFLECT ? cryo_reflect_index(s, n) : -1;
    }
    return t;
}

int cryo_patch_crop(struct cryo_volume *out, const struct cryo_volume *in, const int64_t start[3],
                    const int64_t size[3], enum cryo_pad_mode pad, int64_t index, int64_t count,
                    struct cryo_error *err)
{
    if (in->dtype != CRYO_DTYPE_F32 || !in->data)
        return cryo_fail(err, CRYO_E_INVALID, "cropping needs a float32 volume");
    for (int d = 0; d < 3; d++)
        if (size[d] < 1 || size[d] > ((int64_t)1 << 30))
            return cryo_fail(err, CRYO_E_INVALID, "crop size %lld out of range", (long long)size[d]);
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    struct cryo_volume o;
    cryo_volume_init(&o);
    CRYO_TRY(cryo_volume_alloc(&o, CRYO_DTYPE_F32, in->c, size[2], size[1], size[0], err));
    o.ndim = in->ndim;
    int64_t *tab[3] = {NULL, NULL, NULL};
    int st = cryo_meta_copy(&o.meta, &in->meta, err);
    for (int d = 0; d < 3 && st == CRYO_OK; d++)
        if (!(tab[d] = index_table(start[d], size[d], n[d], pad, err)))
            st = CRYO_E_NOMEM;
    if (st == CRYO_OK) {
        const int64_t rows = in->c * size[2] * size[1];
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            int64_t c = r / (size[2] * size[1]), k = (r / size[1]) % size[2], j = r % size[1];
            float *dst = (float *)o.data + (size_t)r * (size_t)size[0];
            int64_t sk = tab[2][k], sj = tab[1][j];
            if (sk < 0 || sj < 0) {
                memset(dst, 0, (size_t)size[0] * sizeof(float));
                continue;
            }
            const float *src = (const float *)in->data +
                               (((size_t)c * (size_t)n[2] + (size_t)sk) * (size_t)n[1] + (size_t)sj) * (size_t)n[0];
            for (int64_t i = 0; i < size[0]; i++) {
                int64_t si = tab[0][i];
                dst[i] = si >= 0 ? src[si] : 0.0f;
            }
        }
        for (int d = 0; d < 3; d++) {
            o.apix[d] = in->apix[d];
            o.origin[d] = in->origin[d] + (double)start[d] * in->apix[d];
        }
        cryo_meta_remove_prefix(&o.meta, "mrc.");
        cryo_meta_remove_prefix(&o.meta, "patch.");
        st = cryo_meta_setf(&o.meta, err, "patch.origin", "%lld,%lld,%lld", (long long)start[0],
                            (long long)start[1], (long long)start[2]);
    }
    if (st == CRYO_OK)
        st = cryo_meta_setf(&o.meta, err, "patch.grid", "%lld,%lld,%lld", (long long)n[0], (long long)n[1],
                            (long long)n[2]);
    if (st == CRYO_OK)
        st = cryo_meta_setf(&o.meta, err, "patch.index", "%lld", (long long)index);
    if (st == CRYO_OK)
        st = cryo_meta_setf(&o.meta, err, "patch.count", "%lld", (long long)count);
    if (st == CRYO_OK)
        st = cryo_meta_setf(&o.meta, err, "patch.source_apix", "%.17g,%.17g,%.17g", in->apix[0], in->apix[1],
                            in->apix[2]);
    if (st == CRYO_OK)
        st = cryo_meta_setf(&o.meta, err, "patch.source_origin", "%.17g,%.17g,%.17g", in->origin[0],
                            in->origin[1], in->origin[2]);
    for (int d = 0; d < 3; d++)
        free(tab[d]);
    if (st == CRYO_OK)
        cryo_volume_move(out, &o);
    cryo_volume_free(&o);
    return st;
}

/* ---- tiling ---------------------------------------------------------------------- */

int cryo_tiling_plan(struct cryo_tiling *t, const int64_t n[3], const int64_t size[3], const int64_t stride[3],
                     struct cryo_error *err)
{
    memset(t, 0, sizeof *t);
    for (int d = 0; d < 3; d++) {
        if (size[d] < 1 || stride[d] < 1 || stride[d] > size[d])
            return cryo_fail(err, CRYO_E_INVALID, "tile stride %lld must be in 1..%lld (the tile size)",
                             (long long)stride[d], (long long)size[d]);
        if (n[d] < 1)
            return cryo_fail(err, CRYO_E_INVALID, "empty volume");
        t->n[d] = n[d];
        t->size[d] = size[d];
        t->stride[d] = stride[d];
        t->margin[d] = (size[d] - stride[d]) / 2;
        t->count[d] = (n[d] + stride[d] - 1) / stride[d];
    }
    if ((double)t->count[0] * (double)t->count[1] * (double)t->count[2] > 1e9)
        return cryo_fail(err, CRYO_E_INVALID, "more than 10^9 tiles: stride too small");
    return CRYO_OK;
}

int64_t cryo_tiling_total(const struct cryo_tiling *t) { return t->count[0] * t->count[1] * t->count[2]; }

void cryo_tiling_start(const struct cryo_tiling *t, int64_t index, int64_t start[3])
{
    int64_t k[3] = {index % t->count[0], (index / t->count[0]) % t->count[1], index / (t->count[0] * t->count[1])};
    for (int d = 0; d < 3; d++)
        start[d] = k[d] * t->stride[d] - t->margin[d];
}

/* ---- random crops ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t cryo_patch_rng_seed(uint64_t seed, uint64_t frame) { return mix64(seed + mix64(frame)); }

uint64_t cryo_patch_rng_next(uint64_t *state)
{
    *state += 0x9E3779B97F4A7C15ull;
    return mix64(*state);
}

void cryo_patch_random_start(uint64_t *state, const int64_t n[3], const int64_t size[3], int64_t start[3])
{
    for (int d = 0; d < 3; d++) {
        double u = (double)(cryo_patch_rng_next(state) >> 11) * 0x1.0p-53;
        int64_t range = n[d] - size[d] + 1;
        int64_t s = (int64_t)floor(u * (double)range);
        start[d] = s < range ? s : range - 1;
    }
}

double cryo_patch_fraction_above(const struct cryo_volume *v, int64_t ch, double threshold)
{
    size_t n = cryo_volume_channel_count(v), cnt = 0;
    const float *x = (const float *)v->data + (size_t)ch * n;
    for (size_t i = 0; i < n; i++)
        cnt += (double)x[i] > threshold;
    return n ? (double)cnt / (double)n : 0;
}

/* ---- blending and merge ------------------------------------------------------------ */

double cryo_blend_weight1(int64_t i, int64_t s, enum cryo_blend b)
{
    switch (b) {
    case CRYO_BLEND_GAUSSIAN: {
        double c = (double)(s - 1) / 2, sigma = (double)s / 8;
        return exp(-((double)i - c) * ((double)i - c) / (2 * sigma * sigma));
    }
    case CRYO_BLEND_COSINE: {
        double x = sin(M_PI * ((double)i + 0.5) / (double)s);
        return x * x;
    }
    default:
        return 1;
    }
}

void cryo_blend_weights(float *w, const int64_t size[3], enum cryo_blend b)
{
    for (int64_t k = 0; k < size[2]; k++) {
        double wk = cryo_blend_weight1(k, size[2], b);
        for (int64_t j = 0; j < size[1]; j++) {
            double wjk = wk * cryo_blend_weight1(j, size[1], b);
            float *row = w + ((size_t)k * (size_t)size[1] + (size_t)j) * (size_t)size[0];
            for (int64_t i = 0; i < size[0]; i++)
                row[i] = (float)(wjk * cryo_blend_weight1(i, size[0], b));
        }
    }
}

struct cryo_merger {
    enum cryo_blend blend;
    int active;
    int64_t grid[3], c, count, added;
    double apix[3], origin[3];
    float *acc;          /* c * grid, sum of w x */
    float *wsum;         /* grid, sum of w */
    unsigned char *seen; /* count */
    struct cryo_meta meta;
    float *w;            /* weights of the last tile shape */
    int64_t wshape[3];
};

int cryo_merger_create(struct cryo_merger **m, enum cryo_blend b, struct cryo_error *err)
{
    *m = cryo_alloc_array(1, sizeof **m, err);
    if (!*m)
        return CRYO_E_NOMEM;
    (*m)->blend = b;
    cryo_meta_init(&(*m)->meta);
    return CRYO_OK;
}

static void merger_reset(struct cryo_merger *m)
{
    cryo_free_big(m->acc);
    cryo_free_big(m->wsum);
    free(m->seen);
    cryo_meta_free(&m->meta);
    m->acc = m->wsum = NULL;
    m->seen = NULL;
    m->active = 0;
    m->added = 0;
}

void cryo_merger_free(struct cryo_merger *m)
{
    if (!m)
        return;
    merger_reset(m);
    free(m->w);
    free(m);
}

static int parse_ints(const char *s, int64_t *out, int n)
{
    if (!s)
        return -1;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || (i + 1 < n ? *end != ',' : *end != 0))
            return -1;
        out[i] = v;
        s = end + 1;
    }
    return 0;
}

static int parse_doubles(const char *s, double *out, int n)
{
    if (!s)
        return -1;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        out[i] = strtod(s, &end);
        if (end == s || errno || !isfinite(out[i]) || (i + 1 < n ? *end != ',' : *end != 0))
            return -1;
        s = end + 1;
    }
    return 0;
}

int64_t cryo_merger_pending(const struct cryo_merger *m, int64_t *count)
{
    if (count)
        *count = m->active ? m->count : 0;
    return m->active ? m->added : 0;
}

int cryo_merger_add(struct cryo_merger *m, const struct cryo_volume *tile, const char *what, int *complete,
                    struct cryo_error *err)
{
    const char *w = what ? what : "tile";
    *complete = 0;
    if (tile->dtype != CRYO_DTYPE_F32)
        return cryo_fail(err, CRYO_E_INVALID, "%s: merging needs float32 tiles", w);
    int64_t org[3], grid[3], idx, cnt;
    double sap[3], sor[3];
    if (parse_ints(cryo_meta_get(&tile->meta, "patch.origin"), org, 3) < 0 ||
        parse_ints(cryo_meta_get(&tile->meta, "patch.grid"), grid, 3) < 0 ||
        parse_ints(cryo_meta_get(&tile->meta, "patch.index"), &idx, 1) < 0 ||
        parse_ints(cryo_meta_get(&tile->meta, "patch.count"), &cnt, 1) < 0 ||
        parse_doubles(cryo_meta_get(&tile->meta, "patch.source_apix"), sap, 3) < 0 ||
        parse_doubles(cryo_meta_get(&tile->meta, "patch.source_origin"), sor, 3) < 0)
        return cryo_fail(err, CRYO_E_INVALID,
                         "%s: not a tile (needs patch.origin, patch.grid, patch.index, patch.count, "
                         "patch.source_apix, patch.source_origin from vol-patch --tile, in a stream)",
                         w);
    if (grid[0] < 1 || grid[1] < 1 || grid[2] < 1 || cnt < 1 || idx < 0 || idx >= cnt || cnt > 1000000000)
        return cryo_fail(err, CRYO_E_INVALID, "%s: patch metadata out of range (index %lld of %lld, grid %lldx%lldx%lld)",
                         w, (long long)idx, (long long)cnt, (long long)grid[0], (long long)grid[1],
                         (long long)grid[2]);
    if (m->active && (memcmp(grid, m->grid, sizeof grid) != 0 || cnt != m->count || tile->c != m->c ||
                      memcmp(sap, m->apix, sizeof sap) != 0 || memcmp(sor, m->origin, sizeof sor) != 0))
        return cryo_fail(err, CRYO_E_INVALID, "%s: tile %lld belongs to another volume, but only %lld of the %lld tiles "
                         "of the previous one came",
                         w, (long long)idx, (long long)m->added, (long long)m->count);
    if (!m->active) {
        size_t nvox, nall;
        CRYO_TRY(cryo_count4(1, grid[2], grid[1], grid[0], &nvox, err));
        CRYO_TRY(cryo_count4(tile->c, grid[2], grid[1], grid[0], &nall, err));
        size_t b1, b2;
        CRYO_TRY(cryo_mul_size(nall, sizeof(float), &b1, err));
        CRYO_TRY(cryo_mul_size(nvox, sizeof(float), &b2, err));
        m->acc = cryo_alloc_big(b1, err);
        m->wsum = cryo_alloc_big(b2, err);
        m->seen = cryo_alloc_array((size_t)cnt, 1, err);
        if (!m->acc || !m->wsum || !m->seen) {
            merger_reset(m);
            return CRYO_E_NOMEM;
        }
        memset(m->acc, 0, b1);
        memset(m->wsum, 0, b2);
        memcpy(m->grid, grid, sizeof grid);
        memcpy(m->apix, sap, sizeof sap);
        memcpy(m->origin, sor, sizeof sor);
        m->c = tile->c;
        m->count = cnt;
        m->added = 0;
        m->active = 1;
        if (cryo_meta_copy(&m->meta, &tile->meta, err) < 0) {
            merger_reset(m);
            return CRYO_E_NOMEM;
        }
        cryo_meta_remove_prefix(&m->meta, "patch.");
    }
    if (m->seen[idx])
        return cryo_fail(err, CRYO_E_INVALID, "%s: tile %lld of %lld came twice", w, (long long)idx, (long long)cnt);
    const int64_t size[3] = {tile->nx, tile->ny, tile->nz};
    if (!m->w || memcmp(size, m->wshape, sizeof size) != 0) {
        free(m->w);
        size_t nw;
        CRYO_TRY(cryo_count4(1, size[2], size[1], size[0], &nw, err));
        if (!(m->w = cryo_alloc_array(nw, sizeof(float), err)))
            return CRYO_E_NOMEM;
        cryo_blend_weights(m->w, size, m->blend);
        memcpy(m->wshape, size, sizeof size);
    }
    const size_t gvox = (size_t)grid[0] * (size_t)grid[1] * (size_t)grid[2];
    const size_t tvox = cryo_volume_channel_count(tile);
    const float *x = tile->data;
    /* rows of the tile that land inside the grid */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < size[2] * size[1]; r++) {
        int64_t k = r / size[1], j = r % size[1];
        int64_t gk = org[2] + k, gj = org[1] + j;
        if (gk < 0 || gk >= grid[2] || gj < 0 || gj >= grid[1])
            continue;
        size_t grow = ((size_t)gk * (size_t)grid[1] + (size_t)gj) * (size_t)grid[0];
        size_t trow = (size_t)r * (size_t)size[0];
        int64_t i0 = org[0] < 0 ? -org[0] : 0;
        int64_t i1 = grid[0] - org[0] < size[0] ? grid[0] - org[0] : size[0];
        for (int64_t i = i0; i < i1; i++) {
            float wi = m->w[trow + (size_t)i];
            size_t g = grow + (size_t)(org[0] + i);
            m->wsum[g] += wi;
            for (int64_t c = 0; c < tile->c; c++)
                m->acc[(size_t)c * gvox + g] += wi * x[(size_t)c * tvox + trow + (size_t)i];
        }
    }
    m->seen[idx] = 1;
    m->added++;
    *complete = m->added == m->count;
    return CRYO_OK;
}

int cryo_merger_take(struct cryo_merger *m, struct cryo_volume *out, struct cryo_error *err)
{
    if (!m->active)
        return cryo_fail(err, CRYO_E_INVALID, "no tiles to merge");
    if (m->added != m->count) {
        int64_t miss = 0;
        while (miss < m->count && m->seen[miss])
            miss++;
        return cryo_fail(err, CRYO_E_INVALID, "only %lld of %lld tiles came (tile %lld is missing)",
                         (long long)m->added, (long long)m->count, (long long)miss);
    }
    struct cryo_volume o;
    cryo_volume_init(&o);
    CRYO_TRY(cryo_volume_alloc(&o, CRYO_DTYPE_F32, m->c, m->grid[2], m->grid[1], m->grid[0], err));
    const size_t gvox = cryo_volume_channel_count(&o);
    size_t uncovered = gvox;
    for (size_t i = 0; i < gvox; i++)
        if (!(m->wsum[i] > 0)) {
            uncovered = i;
            break;
        }
    if (uncovered < gvox) {
        cryo_volume_free(&o);
        return cryo_fail(err, CRYO_E_INVALID, "tiles do not cover voxel %zu of the source", uncovered);
    }
    for (int64_t c = 0; c < m->c; c++) {
        float *dst = (float *)o.data + (size_t)c * gvox;
        const float *a = m->acc + (size_t)c * gvox;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < gvox; i++)
            dst[i] = a[i] / m->wsum[i];
    }
    memcpy(o.apix, m->apix, sizeof o.apix);
    memcpy(o.origin, m->origin, sizeof o.origin);
    cryo_meta_free(&o.meta);
    o.meta = m->meta; /* move */
    cryo_meta_init(&m->meta);
    merger_reset(m);
    cryo_volume_move(out, &o);
    return CRYO_OK;
}
