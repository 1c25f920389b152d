/* mask_ops.c — the JEPA/MAE trainers' token-mask calls on a context's memory (nn_train.h):
 * argument checks, then the backend's op (cpu_mask.c is the reference). */
#include <stdint.h>

#include "cryolvm/nn_train.h"
#include "nn/backend_impl.h"

static int need(struct cryo_nn_ctx *ctx, const void *op, const char *what, struct cryo_error *err)
{
    if (!ctx)
        return cryo_fail(err, CRYO_E_INVALID, "%s: NULL context", what);
    if (!op)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: not implemented by the %s backend", what, ctx->ops->name);
    return CRYO_OK;
}

/* n tiles d × h × w × C in patches of p: positive, p dividing d, h, w, and n·d·h·w·C
 * addressable. */
static int geometry(int n, int d, int h, int w, int C, int p, const char *what, struct cryo_error *err)
{
    if (n < 1 || d < 1 || h < 1 || w < 1 || C < 1 || p < 1 || d % p || h % p || w % p)
        return cryo_fail(err, CRYO_E_INVALID, "%s: %d tiles of %dx%dx%d x %d channels do not cut into patches of %d",
                         what, n, d, h, w, C, p);
    size_t v = (size_t)n;
    const int f[4] = {d, h, w, C};
    for (int i = 0; i < 4; i++) {
        if (v > SIZE_MAX / sizeof(float) / (size_t)f[i])
            return cryo_fail(err, CRYO_E_INVALID, "%s: tiles too large", what);
        v *= (size_t)f[i];
    }
    return CRYO_OK;
}

int cryo_nn_mask_patches(struct cryo_nn_ctx *ctx, float *out, const float *in, const float *rowmask, int n, int d,
                         int h, int w, int C, int p, struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->mask_patches : NULL, "nn mask patches", err));
    CRYO_TRY(geometry(n, d, h, w, C, p, "nn mask patches", err));
    if (!out || !in || !rowmask)
        return cryo_fail(err, CRYO_E_INVALID, "nn mask patches: NULL buffer");
    return ctx->ops->mask_patches(ctx, out, in, rowmask, n, d, h, w, C, p, err);
}

int cryo_nn_patchify(struct cryo_nn_ctx *ctx, float *out, const float *in, int n, int d, int h, int w, int C, int p,
                     struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->patchify : NULL, "nn patchify", err));
    CRYO_TRY(geometry(n, d, h, w, C, p, "nn patchify", err));
    if (!out || !in || out == in)
        return cryo_fail(err, CRYO_E_INVALID, "nn patchify: NULL or overlapping buffers");
    return ctx->ops->patchify(ctx, out, in, n, d, h, w, C, p, err);
}

/* T rows of E, T·E addressable */
static int rows(int64_t T, int E, const char *what, struct cryo_error *err)
{
    if (T < 1 || E < 1 || (uint64_t)T > SIZE_MAX / sizeof(float) / (size_t)E)
        return cryo_fail(err, CRYO_E_INVALID, "%s: bad shape %lld rows x %d", what, (long long)T, E);
    return CRYO_OK;
}

int cryo_nn_mask_rows(struct cryo_nn_ctx *ctx, float *z, const float *rowmask, const float *token, const float *pos,
                      int64_t T, int E, struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->mask_rows : NULL, "nn mask rows", err));
    CRYO_TRY(rows(T, E, "nn mask rows", err));
    if (!z || !rowmask || !token || !pos)
        return cryo_fail(err, CRYO_E_INVALID, "nn mask rows: NULL buffer");
    return ctx->ops->mask_rows(ctx, z, rowmask, token, pos, T, E, err);
}

int cryo_nn_mask_rows_backward(struct cryo_nn_ctx *ctx, float *dtoken, float *g, const float *rowmask, int64_t T,
                               int E, struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->mask_rows_backward : NULL, "nn mask rows backward", err));
    CRYO_TRY(rows(T, E, "nn mask rows backward", err));
    if (!dtoken || !g || !rowmask)
        return cryo_fail(err, CRYO_E_INVALID, "nn mask rows backward: NULL buffer");
    return ctx->ops->mask_rows_backward(ctx, dtoken, g, rowmask, T, E, err);
}

int cryo_nn_collapse_stats(struct cryo_nn_ctx *ctx, double *tokens, double *samples, const float *x, int n,
                           size_t per, int F, struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->collapse_stats : NULL, "nn collapse statistics", err));
    if (!tokens || !samples || !x || n < 1 || per < 1 || F < 1)
        return cryo_fail(err, CRYO_E_INVALID, "nn collapse statistics: empty or missing input");
    if (per > SIZE_MAX / 2 / sizeof(double) / (size_t)n || (size_t)F > SIZE_MAX / sizeof(float) / ((size_t)n * per))
        return cryo_fail(err, CRYO_E_INVALID, "nn collapse statistics: too many rows");
    return ctx->ops->collapse_stats(ctx, tokens, samples, x, n, per, F, err);
}
