/* cpu_glue.c — CPU layout ops: channel concat/split, residual add, cyclic shift, per-sample
 * scaling (drop-path). All are memory-bound copies, parallel over tokens or rows. */
#include <string.h>

#include "cpu/cpu.h"

int cpu_concat_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b,
                       int64_t T, int ca, int cb, struct cryo_error *err)
{
    int c = ca + cb;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float *o = out + (size_t)t * c;
        if (a)
            memcpy(o, a + (size_t)t * ca, sizeof(float) * ca);
        else
            memset(o, 0, sizeof(float) * ca);
        if (b)
            memcpy(o + ca, b + (size_t)t * cb, sizeof(float) * cb);
        else
            memset(o + ca, 0, sizeof(float) * cb);
    }
    return CRYO_OK;
}

int cpu_split_forward(struct cryo_nn_ctx *ctx, float *a, float *b, const float *inp, int64_t T,
                      int ca, int cb, struct cryo_error *err)
{
    int c = ca + cb;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *i = inp + (size_t)t * c;
        if (a)
            memcpy(a + (size_t)t * ca, i, sizeof(float) * ca);
        if (b)
            memcpy(b + (size_t)t * cb, i + ca, sizeof(float) * cb);
    }
    return CRYO_OK;
}

int cpu_add_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b, size_t n,
                    struct cryo_error *err)
{
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
    return CRYO_OK;
}

/* Shifts arrive reduced to 0..L-1. Rows along W are copied as two runs. */
int cpu_roll_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int n, int d, int h,
                     int w, int c, int sd, int sh, int sw, struct cryo_error *err)
{
    size_t row = (size_t)w * c;
    int64_t rows = (int64_t)n * d * h;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t s = r / ((int64_t)d * h);
        int zo = (int)(r / h % d), yo = (int)(r % h);
        int zi = (zo - sd + d) % d, yi = (yo - sh + h) % h;
        const float *src = inp + (((size_t)s * d + zi) * h + yi) * row;
        float *dst = out + (size_t)r * row;
        /* out[x] = in[(x - sw) mod w] */
        memcpy(dst + (size_t)sw * c, src, sizeof(float) * (size_t)(w - sw) * c);
        memcpy(dst, src + (size_t)(w - sw) * c, sizeof(float) * (size_t)sw * c);
    }
    return CRYO_OK;
}

int cpu_scale_samples(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *s,
                      int N, size_t per_sample, struct cryo_error *err)
{
    for (int i = 0; i < N; i++) {
        const float *a = inp + (size_t)i * per_sample;
        float *o = out + (size_t)i * per_sample;
        float f = s[i];
#pragma omp parallel for simd schedule(static) if (per_sample > (1 << 16))
        for (size_t j = 0; j < per_sample; j++)
            o[j] = a[j] * f;
    }
    return CRYO_OK;
}
