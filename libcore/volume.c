/* volume.c — the frame object: allocation, copies, dtype conversion, statistics.
 * Conversion goes through double so int32 and float32 values survive exactly; float to
 * integer rounds to nearest and refuses NaN/Inf and out-of-range values rather than
 * silently clipping a user's densities. */
#include "cryolvm/mem.h"
#include "cryolvm/volume.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cryo_volume_init(struct cryo_volume *v)
{
    memset(v, 0, sizeof *v);
    v->c = v->nz = v->ny = v->nx = 1;
    v->apix[0] = v->apix[1] = v->apix[2] = 1.0;
    cryo_meta_init(&v->meta);
}

void cryo_volume_free(struct cryo_volume *v)
{
    cryo_free_big(v->data);
    cryo_meta_free(&v->meta);
    cryo_volume_init(v);
}

int cryo_volume_alloc(struct cryo_volume *v, enum cryo_dtype t, int64_t c, int64_t nz, int64_t ny,
                      int64_t nx, struct cryo_error *err)
{
    size_t n, bytes;
    if (cryo_dtype_size(t) == 0)
        return cryo_fail(err, CRYO_E_INVALID, "invalid dtype %d", (int)t);
    CRYO_TRY(cryo_count4(c, nz, ny, nx, &n, err));
    CRYO_TRY(cryo_mul_size(n, cryo_dtype_size(t), &bytes, err));
    void *data = cryo_alloc_big(bytes, err);
    if (!data)
        return CRYO_E_NOMEM;
    cryo_volume_free(v);
    v->dtype = t;
    v->c = c, v->nz = nz, v->ny = ny, v->nx = nx;
    v->ndim = c > 1 ? 4 : 3;
    v->data = data;
    return CRYO_OK;
}

int cryo_volume_alloc_like(struct cryo_volume *v, const struct cryo_volume *like, enum cryo_dtype t,
                           struct cryo_error *err)
{
    struct cryo_volume tmp;
    cryo_volume_init(&tmp);
    CRYO_TRY(cryo_volume_alloc(&tmp, t, like->c, like->nz, like->ny, like->nx, err));
    if (cryo_meta_copy(&tmp.meta, &like->meta, err) < 0) {
        cryo_volume_free(&tmp);
        return CRYO_E_NOMEM;
    }
    tmp.ndim = like->ndim;
    memcpy(tmp.apix, like->apix, sizeof tmp.apix);
    memcpy(tmp.origin, like->origin, sizeof tmp.origin);
    cryo_volume_move(v, &tmp);
    return CRYO_OK;
}

int cryo_volume_copy(struct cryo_volume *dst, const struct cryo_volume *src, struct cryo_error *err)
{
    struct cryo_volume tmp;
    cryo_volume_init(&tmp);
    CRYO_TRY(cryo_volume_alloc_like(&tmp, src, src->dtype, err));
    memcpy(tmp.data, src->data, cryo_volume_bytes(src));
    cryo_volume_move(dst, &tmp);
    return CRYO_OK;
}

void cryo_volume_move(struct cryo_volume *dst, struct cryo_volume *src)
{
    if (dst == src)
        return;
    cryo_volume_free(dst);
    *dst = *src;
    cryo_volume_init(src);
}

int cryo_volume_rot90_z(struct cryo_volume *v, int turns, struct cryo_error *err)
{
    if (turns == 0)
        return CRYO_OK;
    if (turns != 1 && turns != -1)
        return cryo_fail(err, CRYO_E_INVALID, "quarter turns about z: %d (+1 or -1)", turns);
    const size_t es = cryo_dtype_size(v->dtype);
    const int64_t nx = v->nx, ny = v->ny, planes = v->c * v->nz;
    struct cryo_volume r;
    cryo_volume_init(&r);
    CRYO_TRY(cryo_volume_alloc_like(&r, v, v->dtype, err));
    r.nx = ny, r.ny = nx;
    r.apix[0] = v->apix[1], r.apix[1] = v->apix[0];
    const char *src = v->data;
    char *dst = r.data;
    /* new (x', y') with nx' = ny, ny' = nx; +1: (x', y') = (y, nx-1-x), so the source of
     * (x', y') is (x, y) = (nx-1-y', x'); -1: the inverse, source (x, y) = (y', ny-1-x') */
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t yn = 0; yn < nx; yn++)
            for (int64_t xn = 0; xn < ny; xn++) {
                int64_t x = turns > 0 ? nx - 1 - yn : yn, y = turns > 0 ? xn : ny - 1 - xn;
                memcpy(dst + (size_t)((p * nx + yn) * ny + xn) * es, src + (size_t)((p * ny + y) * nx + x) * es, es);
            }
    cryo_volume_move(v, &r);
    return CRYO_OK;
}

size_t cryo_volume_count(const struct cryo_volume *v)
{
    return v->data ? (size_t)v->c * (size_t)v->nz * (size_t)v->ny * (size_t)v->nx : 0;
}

size_t cryo_volume_bytes(const struct cryo_volume *v)
{
    return cryo_volume_count(v) * cryo_dtype_size(v->dtype);
}

size_t cryo_volume_channel_count(const struct cryo_volume *v)
{
    return (size_t)v->nz * (size_t)v->ny * (size_t)v->nx;
}

double cryo_volume_get(const struct cryo_volume *v, size_t i)
{
    switch (v->dtype) {
    case CRYO_DTYPE_F32: return ((const float *)v->data)[i];
    case CRYO_DTYPE_F16: return cryo_f16_to_f32(((const uint16_t *)v->data)[i]);
    case CRYO_DTYPE_BF16: return cryo_bf16_to_f32(((const uint16_t *)v->data)[i]);
    case CRYO_DTYPE_U8: return ((const uint8_t *)v->data)[i];
    case CRYO_DTYPE_I8: return ((const int8_t *)v->data)[i];
    case CRYO_DTYPE_I16: return ((const int16_t *)v->data)[i];
    case CRYO_DTYPE_U16: return ((const uint16_t *)v->data)[i];
    case CRYO_DTYPE_I32: return ((const int32_t *)v->data)[i];
    default: return NAN;
    }
}

static int dtype_is_float(enum cryo_dtype t)
{
    return t == CRYO_DTYPE_F32 || t == CRYO_DTYPE_F16 || t == CRYO_DTYPE_BF16;
}

void cryo_dtype_range(enum cryo_dtype t, double *lo, double *hi)
{
    switch (t) {
    case CRYO_DTYPE_U8: *lo = 0, *hi = 255; break;
    case CRYO_DTYPE_I8: *lo = -128, *hi = 127; break;
    case CRYO_DTYPE_I16: *lo = -32768, *hi = 32767; break;
    case CRYO_DTYPE_U16: *lo = 0, *hi = 65535; break;
    case CRYO_DTYPE_I32: *lo = -2147483648.0, *hi = 2147483647.0; break;
    case CRYO_DTYPE_F16: *lo = -65504.0, *hi = 65504.0; break;
    case CRYO_DTYPE_BF16: *lo = -3.3895313892515355e38, *hi = 3.3895313892515355e38; break;
    default: *lo = -INFINITY, *hi = INFINITY; break;
    }
}

void cryo_dtype_put(void *data, enum cryo_dtype t, size_t i, double x)
{
    switch (t) {
    case CRYO_DTYPE_F32: ((float *)data)[i] = (float)x; break;
    case CRYO_DTYPE_F16: ((uint16_t *)data)[i] = cryo_f32_to_f16((float)x); break;
    case CRYO_DTYPE_BF16: ((uint16_t *)data)[i] = cryo_f32_to_bf16((float)x); break;
    case CRYO_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)x; break;
    case CRYO_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)x; break;
    case CRYO_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)x; break;
    case CRYO_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)x; break;
    case CRYO_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)x; break;
    default: break;
    }
}

int cryo_volume_convert(struct cryo_volume *v, enum cryo_dtype t, struct cryo_error *err)
{
    if (cryo_dtype_size(t) == 0)
        return cryo_fail(err, CRYO_E_INVALID, "invalid dtype %d", (int)t);
    if (v->dtype == t)
        return CRYO_OK;
    size_t n = cryo_volume_count(v), bytes;
    CRYO_TRY(cryo_mul_size(n ? n : 1, cryo_dtype_size(t), &bytes, err));
    int to_int = !dtype_is_float(t);
    double lo, hi;
    cryo_dtype_range(t, &lo, &hi);
    if (to_int) {  /* validate first, so a failure leaves v unchanged */
        for (size_t i = 0; i < n; i++) {
            double x = cryo_volume_get(v, i);
            if (!isfinite(x))
                return cryo_fail(err, CRYO_E_NUMERIC, "cannot convert %s value %g (element %zu) to %s",
                                 cryo_dtype_name(v->dtype), x, i, cryo_dtype_name(t));
            double r = nearbyint(x);
            if (r < lo || r > hi)
                return cryo_fail(err, CRYO_E_NUMERIC,
                                 "value %g (element %zu) is outside the %s range [%g, %g]", x, i,
                                 cryo_dtype_name(t), lo, hi);
        }
    }
    void *out = cryo_alloc_big(bytes, err);
    if (!out)
        return CRYO_E_NOMEM;
    if (v->dtype == CRYO_DTYPE_F32 && t == CRYO_DTYPE_F16) {
        const float *src = v->data;
        uint16_t *dst = out;
        #pragma omp parallel for if (n > 1 << 20)
        for (size_t i = 0; i < n; i++)
            dst[i] = cryo_f32_to_f16(src[i]);
    } else {
        #pragma omp parallel for if (n > 1 << 20)
        for (size_t i = 0; i < n; i++) {
            double x = cryo_volume_get(v, i);
            cryo_dtype_put(out, t, i, to_int ? nearbyint(x) : x);
        }
    }
    cryo_free_big(v->data);
    v->data = out;
    v->dtype = t;
    return CRYO_OK;
}

int cryo_volume_check_finite(const struct cryo_volume *v, const char *what, struct cryo_error *err)
{
    if (!dtype_is_float(v->dtype))
        return CRYO_OK;
    size_t n = cryo_volume_count(v);
    if (v->dtype == CRYO_DTYPE_F32) {
        /* x − x is 0 for finite x and NaN for NaN/Inf: one branch-free vectorised pass;
         * only a volume that has a bad value pays for locating it. */
        const float *x = v->data;
        int bad = 0;
        #pragma omp parallel for reduction(| : bad) schedule(static)
        for (size_t i = 0; i < n; i++)
            bad |= (x[i] - x[i]) != 0.0f;
        if (!bad)
            return CRYO_OK;
    }
    for (size_t i = 0; i < n; i++) {
        double x = cryo_volume_get(v, i);
        if (!isfinite(x)) {
            size_t plane = (size_t)v->nx * (size_t)v->ny, chan = plane * (size_t)v->nz;
            size_t c = i / chan, r = i % chan;
            size_t z = r / plane, y = (r % plane) / (size_t)v->nx, xx = r % (size_t)v->nx;
            return cryo_fail(err, CRYO_E_NUMERIC, "%s: %s at voxel x=%zu y=%zu z=%zu%s", what,
                             isnan(x) ? "NaN" : "Inf", xx, y, z,
                             v->c > 1 ? (c == 0 ? " (channel 0)" : " (channel >0)") : "");
        }
    }
    return CRYO_OK;
}

void cryo_volume_stats(const struct cryo_volume *v, struct cryo_stats *s)
{
    size_t n = cryo_volume_count(v), bad = 0, good = 0;
    double mn = INFINITY, mx = -INFINITY, sum = 0, sum2 = 0;
    if (v->dtype == CRYO_DTYPE_F32) {
        const float *d = v->data;
        #pragma omp parallel for reduction(min : mn) reduction(max : mx) reduction(+ : sum, sum2, bad, good)
        for (size_t i = 0; i < n; i++) {
            double x = d[i];
            if (!isfinite(x)) { bad++; continue; }
            good++;
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
            sum += x;
            sum2 += x * x;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            double x = cryo_volume_get(v, i);
            if (!isfinite(x)) { bad++; continue; }
            good++;
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
            sum += x;
            sum2 += x * x;
        }
    }
    s->n_nonfinite = bad;
    if (good == 0) {
        s->min = s->max = s->mean = s->rms = s->std = NAN;
        return;
    }
    s->min = mn;
    s->max = mx;
    s->mean = sum / (double)good;
    s->rms = sqrt(sum2 / (double)good);
    double var = sum2 / (double)good - s->mean * s->mean;
    s->std = sqrt(var > 0 ? var : 0);
}
