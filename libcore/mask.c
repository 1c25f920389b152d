/* mask.c — threshold / zone, extend, soft edge (see mask.h for the definitions).
 *
 * Why a distance transform: relion scans a cube of (2N+1)^3 voxels around every voxel,
 * O(n N^3); the separable exact transform of Felzenszwalb & Huttenlocher ("Distance
 * Transforms of Sampled Functions", Theory of Computing 8, 2012) is O(n) whatever N and
 * gives the same minimum distances, so the same masks. */
#include "cryolvm/mask.h"
#include "cryolvm/degrade.h"
#include "cryolvm/mapmodel.h"
#include "cryolvm/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double cryo_mask_grid_of(const struct cryo_volume *v, struct cryo_mask_grid *g)
{
    double amin = v->apix[0];
    for (int d = 1; d < 3; d++)
        if (v->apix[d] < amin)
            amin = v->apix[d];
    g->nx = v->nx, g->ny = v->ny, g->nz = v->nz;
    for (int d = 0; d < 3; d++)
        g->spacing[d] = v->apix[d] / amin;
    return amin;
}

static int check_grid(const struct cryo_mask_grid *g, struct cryo_error *err)
{
    size_t n;
    if (g->nx < 1 || g->ny < 1 || g->nz < 1)
        return cryo_fail(err, CRYO_E_INVALID, "mask grid %lldx%lldx%lld is empty", (long long)g->nx,
                         (long long)g->ny, (long long)g->nz);
    CRYO_TRY(cryo_count4(1, g->nz, g->ny, g->nx, &n, err));
    for (int d = 0; d < 3; d++)
        if (!(g->spacing[d] > 0) || !isfinite(g->spacing[d]))
            return cryo_fail(err, CRYO_E_INVALID, "mask grid spacing must be > 0 (got %g)", g->spacing[d]);
    return CRYO_OK;
}

/* 1-D squared distance transform of f (INFINITY = no parabola) sampled every w:
 * d[q] = min_p (w (q - p))^2 + f[p]. v, z: scratch of n and n+1 entries. */
static void dt1d(const double *f, int64_t n, double w, double *d, int64_t *v, double *z)
{
    int64_t k = -1;
    for (int64_t q = 0; q < n; q++) {
        if (f[q] == INFINITY)
            continue;
        double pq = w * (double)q, s = -INFINITY;
        while (k >= 0) {
            double pv = w * (double)v[k];
            s = ((f[q] + pq * pq) - (f[v[k]] + pv * pv)) / (2.0 * (pq - pv));
            if (s <= z[k])
                k--;
            else
                break;
        }
        k++;
        v[k] = q;
        z[k] = k == 0 ? -INFINITY : s;
        z[k + 1] = INFINITY;
    }
    if (k < 0) {
        for (int64_t q = 0; q < n; q++)
            d[q] = INFINITY;
        return;
    }
    k = 0;
    for (int64_t q = 0; q < n; q++) {
        double pq = w * (double)q;
        while (z[k + 1] < pq)
            k++;
        double dx = pq - w * (double)v[k];
        d[q] = dx * dx + f[v[k]];
    }
}

/* One pass along axis `ax` (0 x, 1 y, 2 z) over every line of the volume, in place on d2
 * (or from fg when fg != NULL: 0 on the foreground, INFINITY elsewhere). */
static int edt_pass(float *d2, const uint8_t *fg, const struct cryo_mask_grid *g, int ax, struct cryo_error *err)
{
    const int64_t n[3] = {g->nx, g->ny, g->nz};
    const size_t stride[3] = {1, (size_t)g->nx, (size_t)g->nx * (size_t)g->ny};
    const int64_t len = n[ax];
    const int a1 = ax == 0 ? 1 : 0, a2 = ax == 2 ? 1 : 2; /* the two other axes */
    const int64_t nlines = n[a1] * n[a2];
    const double w = g->spacing[ax];
    int failed = 0;
#pragma omp parallel
    {
        double *f = malloc((size_t)len * sizeof *f), *d = malloc((size_t)len * sizeof *d);
        double *z = malloc((size_t)(len + 1) * sizeof *z);
        int64_t *v = malloc((size_t)len * sizeof *v);
        if (!f || !d || !z || !v) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(static)
            for (int64_t l = 0; l < nlines; l++) {
                size_t base = (size_t)(l % n[a1]) * stride[a1] + (size_t)(l / n[a1]) * stride[a2];
                for (int64_t q = 0; q < len; q++) {
                    size_t i = base + (size_t)q * stride[ax];
                    f[q] = fg ? (fg[i] ? 0.0 : INFINITY) : (double)d2[i];
                }
                dt1d(f, len, w, d, v, z);
                for (int64_t q = 0; q < len; q++)
                    d2[base + (size_t)q * stride[ax]] = (float)d[q];
            }
        }
        free(f), free(d), free(z), free(v);
    }
    if (failed)
        return cryo_fail(err, CRYO_E_NOMEM, "distance transform: out of memory for a line of %lld voxels",
                         (long long)len);
    return CRYO_OK;
}

int cryo_mask_edt2(const uint8_t *fg, const struct cryo_mask_grid *g, float *d2, struct cryo_error *err)
{
    CRYO_TRY(check_grid(g, err));
    CRYO_TRY(edt_pass(d2, fg, g, 0, err));
    CRYO_TRY(edt_pass(d2, NULL, g, 1, err));
    return edt_pass(d2, NULL, g, 2, err);
}

size_t cryo_mask_threshold(const struct cryo_volume *v, double threshold, uint8_t *bin)
{
    const float *x = v->data;
    size_t n = cryo_volume_channel_count(v), c = 0;
#pragma omp parallel for reduction(+ : c) schedule(static)
    for (size_t i = 0; i < n; i++) {
        bin[i] = x[i] >= threshold;
        c += bin[i];
    }
    return c;
}

static float *alloc_d2(const struct cryo_mask_grid *g, struct cryo_error *err)
{
    size_t n;
    if (cryo_count4(1, g->nz, g->ny, g->nx, &n, err) < 0 || cryo_mul_size(n, sizeof(float), &n, err) < 0)
        return NULL;
    return cryo_alloc_big(n, err);
}

int cryo_mask_extend(uint8_t *bin, const struct cryo_mask_grid *g, double n, struct cryo_error *err)
{
    if (!isfinite(n))
        return cryo_fail(err, CRYO_E_INVALID, "mask extension must be finite (got %g)", n);
    CRYO_TRY(check_grid(g, err));
    if (n == 0)
        return CRYO_OK;
    size_t count = (size_t)g->nx * (size_t)g->ny * (size_t)g->nz;
    float *d2 = alloc_d2(g, err);
    if (!d2)
        return err ? err->status : CRYO_E_NOMEM;
    int s = CRYO_OK;
    const double n2 = n * n;
    if (n > 0) {
        s = cryo_mask_edt2(bin, g, d2, err); /* distance to the mask */
        if (s == 0) {
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < count; i++)
                bin[i] = (double)d2[i] < n2;
        }
    } else {
        /* distance to the background: the transform of the complement */
        uint8_t *bg = malloc(count);
        if (!bg) {
            cryo_free_big(d2);
            return cryo_fail(err, CRYO_E_NOMEM, "mask shrink: out of memory");
        }
        for (size_t i = 0; i < count; i++)
            bg[i] = !bin[i];
        s = cryo_mask_edt2(bg, g, d2, err);
        free(bg);
        if (s == 0) {
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < count; i++)
                bin[i] = bin[i] && !((double)d2[i] < n2);
        }
    }
    cryo_free_big(d2);
    return s;
}

int cryo_mask_soft_edge(const uint8_t *bin, const struct cryo_mask_grid *g, double width, float *out,
                        struct cryo_error *err)
{
    if (!(width >= 0) || !isfinite(width))
        return cryo_fail(err, CRYO_E_INVALID, "soft-edge width must be >= 0 (got %g)", width);
    CRYO_TRY(check_grid(g, err));
    size_t count = (size_t)g->nx * (size_t)g->ny * (size_t)g->nz;
    if (width == 0) {
        for (size_t i = 0; i < count; i++)
            out[i] = bin[i] ? 1.0f : 0.0f;
        return CRYO_OK;
    }
    CRYO_TRY(cryo_mask_edt2(bin, g, out, err)); /* squared distances, then the edge in place */
    const double w2 = width * width;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        double d2 = out[i];
        out[i] = bin[i] ? 1.0f : d2 < w2 ? (float)(0.5 + 0.5 * cos(M_PI * sqrt(d2) / width)) : 0.0f;
    }
    return CRYO_OK;
}

int cryo_mask_lowpass(struct cryo_volume *v, double res, struct cryo_error *err)
{
    if (!(res > 0) || !isfinite(res))
        return cryo_fail(err, CRYO_E_INVALID, "low-pass resolution must be > 0 Å (got %g)", res);
    double L = 0;
    const double n[3] = {(double)v->nx, (double)v->ny, (double)v->nz};
    for (int d = 0; d < 3; d++)
        if (n[d] * v->apix[d] > L)
            L = n[d] * v->apix[d];
    double shell = round(L / res);
    if (!(shell >= 1))
        return cryo_fail(err, CRYO_E_INVALID, "low-pass at %g Å is coarser than the %g Å box", res, L);
    /* relion rounds the cut-off to a whole shell, then a raised cosine of 2 shells about it:
     * exactly cryo_degrade_lowpass at that shell's resolution with a 2-shell edge */
    return cryo_degrade_lowpass(v, L / shell, 2.0, err);
}

int cryo_mask_parse_length(const char *text, const char *what, double *value, int *angstrom,
                           struct cryo_error *err)
{
    char *end;
    double x = strtod(text, &end);
    *angstrom = 0;
    if (end != text && (strcmp(end, "A") == 0 || strcmp(end, "\xc3\x85") == 0))
        *angstrom = 1;
    else if (end == text || *end)
        return cryo_fail(err, CRYO_E_INVALID, "%s: '%s' is not a length (N voxels, or NA for Å)", what, text);
    if (!isfinite(x))
        return cryo_fail(err, CRYO_E_INVALID, "%s: '%s' is not a finite length", what, text);
    *value = x;
    return CRYO_OK;
}

void cryo_mask_opts_default(struct cryo_mask_opts *o)
{
    memset(o, 0, sizeof *o);
}

int cryo_mask_make(struct cryo_volume *out, const struct cryo_volume *map, const struct cryo_mask_opts *o,
                   size_t *n_binary, struct cryo_error *err)
{
    cryo_volume_free(out);
    if (map->dtype != CRYO_DTYPE_F32 || map->c != 1 || !map->data)
        return cryo_fail(err, CRYO_E_INVALID, "a mask needs a single-channel float32 map");
    for (int d = 0; d < 3; d++)
        if (!(map->apix[d] > 0) || !isfinite(map->apix[d]))
            return cryo_fail(err, CRYO_E_INVALID, "voxel size must be > 0 (got %g along %c)", map->apix[d],
                             "xyz"[d]);
    if (!o->use_threshold && !o->model)
        return cryo_fail(err, CRYO_E_INVALID, "a mask needs a threshold, a model zone or both");
    if (o->model && !(o->zone > 0 && isfinite(o->zone)))
        return cryo_fail(err, CRYO_E_INVALID, "zone radius must be > 0 Å (got %g)", o->zone);
    if (!(o->lowpass >= 0) || !isfinite(o->lowpass))
        return cryo_fail(err, CRYO_E_INVALID, "low-pass must be >= 0 Å (got %g)", o->lowpass);
    if (!isfinite(o->extend))
        return cryo_fail(err, CRYO_E_INVALID, "extension must be finite (got %g)", o->extend);
    if (!(o->soft_edge >= 0) || !isfinite(o->soft_edge))
        return cryo_fail(err, CRYO_E_INVALID, "soft-edge width must be >= 0 (got %g)", o->soft_edge);

    struct cryo_mask_grid g;
    cryo_mask_grid_of(map, &g);
    size_t n = cryo_volume_channel_count(map);
    uint8_t *bin = malloc(n ? n : 1), *zone = NULL;
    struct cryo_volume lp;
    cryo_volume_init(&lp);
    int s = CRYO_OK;
    if (!bin)
        return cryo_fail(err, CRYO_E_NOMEM, "mask: out of memory for %zu voxels", n);
    if (o->use_threshold) {
        const struct cryo_volume *src = map;
        if (o->lowpass > 0) {
            s = cryo_volume_copy(&lp, map, err);
            if (s == 0)
                s = cryo_mask_lowpass(&lp, o->lowpass, err);
            src = &lp;
        }
        if (s == 0)
            s = cryo_volume_check_finite(src, "map", err);
        if (s == 0)
            cryo_mask_threshold(src, o->threshold, bin);
    } else {
        memset(bin, 1, n);
    }
    if (s == 0 && o->model) {
        size_t nz_ = 0;
        zone = malloc(n ? n : 1);
        if (!zone)
            s = cryo_fail(err, CRYO_E_NOMEM, "mask: out of memory for %zu voxels", n);
        else
            s = cryo_atom_mask(zone, map, o->model, o->zone, &nz_, err);
        if (s == 0)
            for (size_t i = 0; i < n; i++)
                bin[i] = bin[i] && zone[i];
    }
    if (s == 0)
        s = cryo_mask_extend(bin, &g, o->extend, err);
    if (s == 0 && n_binary) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
            c += bin[i];
        *n_binary = c;
    }
    if (s == 0)
        s = cryo_volume_alloc(out, CRYO_DTYPE_F32, 1, map->nz, map->ny, map->nx, err);
    if (s == 0) {
        out->ndim = 3;
        memcpy(out->apix, map->apix, sizeof out->apix);
        memcpy(out->origin, map->origin, sizeof out->origin);
        s = cryo_mask_soft_edge(bin, &g, o->soft_edge, out->data, err);
    }
    if (s == 0 && o->invert) {
        float *m = out->data;
        for (size_t i = 0; i < n; i++)
            m[i] = 1.0f - m[i];
    }
    if (s < 0)
        cryo_volume_free(out);
    free(bin);
    free(zone);
    cryo_volume_free(&lp);
    return s;
}
