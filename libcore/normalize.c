/* normalize.c — quantile clipping to [0,1] (CryoLVM's pre-processing) and z-scores, per
 * channel, optionally with statistics from a mask; the affine map is written to metadata so
 * it can be undone (definitions in normalize.h). Masked statistics gather the voxels under
 * the mask into one scratch array, then use the same exact quantiles. */
#include "cryolvm/normalize.h"
#include "cryolvm/mem.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cryo_normalize_opts_default(struct cryo_normalize_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = CRYO_NORMALIZE_QUANTILE;
    o->lo = 0.01;
    o->hi = 0.99;
}

int cryo_normalize_check_mask(const struct cryo_volume *v, const struct cryo_volume *mask,
                              const char *mask_name, struct cryo_error *err)
{
    const char *mn = mask_name ? mask_name : "mask";
    if (mask->nx != v->nx || mask->ny != v->ny || mask->nz != v->nz)
        return cryo_fail(err, CRYO_E_INVALID, "%s: mask is %lldx%lldx%lld but the map is %lldx%lldx%lld", mn,
                         (long long)mask->nx, (long long)mask->ny, (long long)mask->nz, (long long)v->nx,
                         (long long)v->ny, (long long)v->nz);
    for (int d = 0; d < 3; d++) {
        if (fabs(mask->apix[d] - v->apix[d]) > 1e-4 * fabs(v->apix[d]))
            return cryo_fail(err, CRYO_E_INVALID, "%s: mask voxel size %g Å differs from the map's %g Å", mn,
                             mask->apix[d], v->apix[d]);
        if (fabs(mask->origin[d] - v->origin[d]) > 1e-3 * fabs(v->apix[d]))
            return cryo_fail(err, CRYO_E_INVALID,
                             "%s: mask origin %g Å differs from the map's %g Å (axis %c): not the same grid", mn,
                             mask->origin[d], v->origin[d], "xyz"[d]);
    }
    if (mask->dtype != CRYO_DTYPE_F32)
        return cryo_fail(err, CRYO_E_INVALID, "%s: mask must be converted to float32 first", mn);
    return CRYO_OK;
}

int cryo_normalize_fit(const struct cryo_volume *v, int64_t ch, const struct cryo_normalize_opts *o,
                       double *scale, double *offset, struct cryo_error *err)
{
    if (v->dtype != CRYO_DTYPE_F32)
        return cryo_fail(err, CRYO_E_INVALID, "normalisation needs a float32 volume");
    if (o->mode == CRYO_NORMALIZE_QUANTILE && !(o->lo >= 0 && o->lo < o->hi && o->hi <= 1))
        return cryo_fail(err, CRYO_E_INVALID, "quantiles must satisfy 0 <= LO < HI <= 1 (got %g, %g)", o->lo, o->hi);
    size_t n = cryo_volume_channel_count(v);
    const float *x = (const float *)v->data + (size_t)ch * n;
    float *gathered = NULL;
    if (o->mask) {
        CRYO_TRY(cryo_normalize_check_mask(v, o->mask, o->mask_name, err));
        const float *m = o->mask->data;
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            cnt += m[i] > 0.5f;
        if (cnt == 0)
            return cryo_fail(err, CRYO_E_INVALID, "%s: mask has no voxel > 0.5",
                             o->mask_name ? o->mask_name : "mask");
        gathered = cryo_alloc_big(cnt * sizeof(float), err);
        if (!gathered)
            return CRYO_E_NOMEM;
        size_t j = 0;
        for (size_t i = 0; i < n; i++)
            if (m[i] > 0.5f)
                gathered[j++] = x[i];
        x = gathered;
        n = cnt;
    }
    int st = CRYO_OK;
    if (o->mode == CRYO_NORMALIZE_QUANTILE) {
        double p[2] = {o->lo, o->hi}, q[2];
        st = cryo_quantiles(x, n, p, 2, q, err);
        if (st == CRYO_OK && !(q[1] > q[0]))
            st = cryo_fail(err, CRYO_E_NUMERIC,
                           "flat map: the %g and %g quantiles are equal (%g); cannot scale to [0, 1]", o->lo, o->hi,
                           q[0]);
        if (st == CRYO_OK) {
            *scale = 1.0 / (q[1] - q[0]);
            *offset = -q[0] * *scale;
        }
    } else {
        double s = 0, s2 = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++)
            s += x[i];
        double mean = s / (double)n;
#pragma omp parallel for reduction(+ : s2) schedule(static)
        for (size_t i = 0; i < n; i++)
            s2 += ((double)x[i] - mean) * ((double)x[i] - mean);
        double sd = sqrt(s2 / (double)n);
        if (!(sd > 0))
            st = cryo_fail(err, CRYO_E_NUMERIC, "flat map: standard deviation is 0; cannot make z-scores");
        else {
            *scale = 1.0 / sd;
            *offset = -mean / sd;
        }
    }
    cryo_free_big(gathered);
    return st;
}

/* Append "%.17g" values joined by commas. */
static void join(char *buf, size_t cap, const double *v, int64_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int64_t i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%.17g", i ? "," : "", v[i]);
}

int cryo_normalize_volume(struct cryo_volume *v, const struct cryo_normalize_opts *o, const char *what,
                          struct cryo_error *err)
{
    if (v->dtype != CRYO_DTYPE_F32)
        return cryo_fail(err, CRYO_E_INVALID, "normalisation needs a float32 volume");
    /* unmasked quantile passes find NaN/Inf themselves; z-scores and masks need this pass */
    if (o->mode != CRYO_NORMALIZE_QUANTILE || o->mask)
        CRYO_TRY(cryo_volume_check_finite(v, what, err));
    if (v->c > 256)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%lld channels: at most 256 are normalised", (long long)v->c);
    double scale[256], offset[256];
    for (int64_t c = 0; c < v->c; c++) {
        int st = cryo_normalize_fit(v, c, o, &scale[c], &offset[c], err);
        if (st == CRYO_E_NUMERIC && cryo_volume_check_finite(v, what, err) < 0)
            return CRYO_E_NUMERIC; /* the message names the file and the voxel */
        CRYO_TRY(st);
    }
    const size_t n = cryo_volume_channel_count(v);
    const int clip = o->mode == CRYO_NORMALIZE_QUANTILE;
    for (int64_t c = 0; c < v->c; c++) {
        float *x = (float *)v->data + (size_t)c * n;
        /* in double: x s + b is then exactly 0 at x = q_lo (b = -q_lo s), so flat solvent at
         * the low quantile normalises to 0, not to a float rounding of it (lvm-apply skips
         * tiles that are <= 0 everywhere) */
        const double s = scale[c], b = offset[c];
        if (clip) {
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) {
                double y = (double)x[i] * s + b;
                x[i] = y < 0.0 ? 0.0f : y > 1.0 ? 1.0f : (float)y;
            }
        } else {
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++)
                x[i] = (float)((double)x[i] * s + b);
        }
    }
    char buf[256 * 26];
    cryo_meta_remove_prefix(&v->meta, "normalize.");
    CRYO_TRY(cryo_meta_set(&v->meta, "normalize.mode", clip ? "quantile" : "zscore", err));
    join(buf, sizeof buf, scale, v->c);
    CRYO_TRY(cryo_meta_set(&v->meta, "normalize.scale", buf, err));
    join(buf, sizeof buf, offset, v->c);
    CRYO_TRY(cryo_meta_set(&v->meta, "normalize.offset", buf, err));
    if (clip) {
        CRYO_TRY(cryo_meta_setf(&v->meta, err, "normalize.quantiles", "%.15g,%.15g", o->lo, o->hi));
        CRYO_TRY(cryo_meta_set(&v->meta, "normalize.clip", "0,1", err));
    }
    return CRYO_OK;
}

/* Parse exactly n comma-separated finite numbers. */
static int parse_list(const char *s, double *out, int64_t n)
{
    if (!s)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        out[i] = strtod(s, &end);
        if (end == s || errno || !isfinite(out[i]))
            return -1;
        if (i + 1 < n ? *end != ',' : *end != 0)
            return -1;
        s = end + 1;
    }
    return 0;
}

/* x = (y - offset) / scale per channel, or y / scale without the offset; then the
 * normalize.* keys go. */
static int undo_affine(struct cryo_volume *v, const char *what, int with_offset, struct cryo_error *err)
{
    const char *w = what ? what : "input";
    if (v->dtype != CRYO_DTYPE_F32)
        return cryo_fail(err, CRYO_E_INVALID, "normalisation needs a float32 volume");
    if (v->c > 256)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%lld channels: at most 256 are normalised", (long long)v->c);
    const char *sc = cryo_meta_get(&v->meta, "normalize.scale");
    const char *of = cryo_meta_get(&v->meta, "normalize.offset");
    if (!sc || !of)
        return cryo_fail(err, CRYO_E_INVALID,
                         "%s: no normalize.scale/normalize.offset metadata (was it written by mrc-normalize "
                         "as a stream? MRC files do not keep it)",
                         w);
    double scale[256], offset[256];
    if (parse_list(sc, scale, v->c) < 0 || parse_list(of, offset, v->c) < 0)
        return cryo_fail(err, CRYO_E_INVALID, "%s: normalize.scale '%s' / normalize.offset '%s' do not hold %lld finite numbers",
                         w, sc, of, (long long)v->c);
    for (int64_t c = 0; c < v->c; c++)
        if (!(scale[c] != 0))
            return cryo_fail(err, CRYO_E_INVALID, "%s: normalize.scale is 0", w);
    CRYO_TRY(cryo_volume_check_finite(v, w, err));
    const size_t n = cryo_volume_channel_count(v);
    for (int64_t c = 0; c < v->c; c++) {
        float *x = (float *)v->data + (size_t)c * n;
        const double s = scale[c], b = with_offset ? offset[c] : 0.0;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(((double)x[i] - b) / s);
    }
    cryo_meta_remove_prefix(&v->meta, "normalize.");
    return CRYO_OK;
}

int cryo_normalize_invert(struct cryo_volume *v, const char *what, struct cryo_error *err)
{
    return undo_affine(v, what, 1, err);
}

int cryo_normalize_unscale(struct cryo_volume *v, const char *what, struct cryo_error *err)
{
    return undo_affine(v, what, 0, err);
}
