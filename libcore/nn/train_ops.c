/* train_ops.c — the optimiser, EMA, norm and loss (row losses, HistKL) calls on a
 * context's memory (nn_train.h): argument checks, then the backend's op. The definitions
 * are the host functions' in optim.c, loss.c and hist.c, which the CPU backend's ops call
 * (cpu_train.c, cpu_hist.c). */
#include <math.h>
#include <stdlib.h>

#include "cryolvm/mem.h"

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

int cryo_nn_adamw_update(struct cryo_nn_ctx *ctx, float *param, const float *grad, float *m, float *v,
                         size_t n, const struct cryo_adamw *o, double lr, int64_t t, int decay,
                         struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->adamw : NULL, "nn adamw", err));
    if (n == 0)
        return CRYO_OK;
    if (!param || !grad || !m || !v || !o || t < 1)
        return cryo_fail(err, CRYO_E_INVALID, "nn adamw: NULL buffer or step < 1");
    struct cryo_nn_adamw_step s;
    cryo_adamw_step_scalars(&s, o, lr, t, decay);
    return ctx->ops->adamw(ctx, param, grad, m, v, n, &s, err);
}

int cryo_nn_ema_update(struct cryo_nn_ctx *ctx, float *ema, const float *p, size_t n, double decay,
                       struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->ema : NULL, "nn ema", err));
    if (n == 0)
        return CRYO_OK;
    if (!ema || !p)
        return cryo_fail(err, CRYO_E_INVALID, "nn ema: NULL buffer");
    return ctx->ops->ema(ctx, ema, p, n, (float)decay, (float)(1.0 - decay), err);
}

int cryo_nn_sum_squares(struct cryo_nn_ctx *ctx, double *out, const float *x, size_t n,
                        struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->sumsq : NULL, "nn sum of squares", err));
    if (!out || (n && !x))
        return cryo_fail(err, CRYO_E_INVALID, "nn sum of squares: NULL buffer");
    *out = 0;
    return n ? ctx->ops->sumsq(ctx, out, x, n, err) : CRYO_OK;
}

int cryo_nn_scale(struct cryo_nn_ctx *ctx, float *x, size_t n, float c, struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->scale_samples : NULL, "nn scale", err));
    if (n && !x)
        return cryo_fail(err, CRYO_E_INVALID, "nn scale: NULL buffer");
    return n ? ctx->ops->scale_samples(ctx, x, x, &c, 1, n, err) : CRYO_OK;
}

int cryo_nn_clip_grad_norm(struct cryo_nn_ctx *ctx, float *const *g, const size_t *n, int ng,
                           double max_norm, double *norm, struct cryo_error *err)
{
    double s = 0;
    for (int i = 0; i < ng; i++) {
        double si = 0;
        CRYO_TRY(cryo_nn_sum_squares(ctx, &si, g[i], n[i], err));
        s += si;
    }
    *norm = sqrt(s);
    if (max_norm > 0 && *norm > max_norm) { /* as cryo_clip_grad_norm */
        float c = (float)(max_norm / (*norm + 1e-6));
        for (int i = 0; i < ng; i++)
            CRYO_TRY(cryo_nn_scale(ctx, g[i], n[i], c, err));
    }
    return CRYO_OK;
}

int cryo_nn_loss_rows(struct cryo_nn_ctx *ctx, double *loss, float *grad, const float *pred,
                      const float *target, const float *rowmask, int64_t rows, int cols,
                      enum cryo_nn_loss_kind kind, double beta, double count, struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->loss : NULL, "nn loss", err));
    if (!loss || !pred || !target || rows < 1 || cols < 1 || !(count > 0))
        return cryo_fail(err, CRYO_E_INVALID, "loss: empty or missing input");
    if (kind != CRYO_NN_LOSS_MSE && kind != CRYO_NN_LOSS_SMOOTH_L1)
        return cryo_fail(err, CRYO_E_INVALID, "nn loss: unknown kind %d", (int)kind);
    if (kind == CRYO_NN_LOSS_SMOOTH_L1 && !(beta >= 0))
        return cryo_fail(err, CRYO_E_INVALID, "smooth L1: beta must be >= 0");
    double s = 0;
    CRYO_TRY(ctx->ops->loss(ctx, &s, grad, pred, target, rowmask, rows, cols, (int)kind, beta, count, err));
    if (!isfinite(s))
        return cryo_fail(err, CRYO_E_NUMERIC, "loss: prediction or target is not finite");
    *loss = s / count;
    return CRYO_OK;
}

int cryo_nn_histkl_loss(struct cryo_nn_ctx *ctx, double *loss, float *grad, const float *pred,
                        const float *target, size_t n, const struct cryo_hist_spec *spec, double gscale,
                        struct cryo_error *err)
{
    CRYO_TRY(need(ctx, ctx ? (const void *)ctx->ops->histkl : NULL, "nn HistKL loss", err));
    if (!loss || !pred || !target || !spec || n == 0)
        return cryo_fail(err, CRYO_E_INVALID, "HistKL loss: empty or missing input");
    if (!isfinite(gscale))
        return cryo_fail(err, CRYO_E_INVALID, "HistKL loss: gradient scale %g is not finite", gscale);
    CRYO_TRY(cryo_hist_spec_check(spec, err));
    double d = 0;
    CRYO_TRY(ctx->ops->histkl(ctx, &d, grad, pred, target, n, spec, gscale, err));
    *loss = d;
    return CRYO_OK;
}

int cryo_nn_reduce_grads(struct cryo_nn_ctx *ctx, const struct cryo_grad_reducer *r, float *const *g,
                         const size_t *n, int ng, double *loss, double count, struct cryo_error *err)
{
    if (!r->fn)
        return CRYO_OK;
    if (r->on_device || cryo_nn_ctx_device(ctx) == CRYO_NN_DEVICE_CPU)
        return r->fn(r->user, g, n, ng, loss, count, err);
    float *h[8];
    if (ng > 8)
        return cryo_fail(err, CRYO_E_INVALID, "gradient reduce: more than 8 gradient arenas");
    int rc = CRYO_OK, k = 0;
    for (; k < ng && rc == CRYO_OK; k++) {
        h[k] = cryo_alloc_big((n[k] ? n[k] : 1) * sizeof(float), err);
        rc = h[k] ? cryo_nn_download(ctx, h[k], g[k], n[k], err) : CRYO_E_NOMEM;
        if (!h[k])
            break;
    }
    if (rc == CRYO_OK)
        rc = r->fn(r->user, h, n, ng, loss, count, err);
    for (int i = 0; i < ng && rc == CRYO_OK; i++)
        rc = cryo_nn_upload(ctx, g[i], h[i], n[i], err);
    for (int i = 0; i < k; i++)
        cryo_free_big(h[i]);
    return rc;
}
