/* checkpoint.c — weights and training state in safetensors, and the trainer step.
 *
 * Names come from the model's parameter table, so a checkpoint is a PyTorch state_dict
 * (plus "optim.m.*", "optim.v.*", "ema.*" and metadata for training). Resuming restores
 * every bit the next step depends on: weights, both moments, EMA, step count and RNG
 * state; the test trains 4 steps straight and 2 + save + load + 2 and compares bits.
 */
#include "cryolvm/nn_train.h"
#include "cryolvm/mem.h"
#include "model_impl.h"
#include "cryolvm/nn_layers.h"
#include "nn/backend_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_NAME "cryolvm-scunet3d"

int cryo_scunet_config_from_file(const struct cryo_safetensors *st, struct cryo_scunet_config *c,
                                 struct cryo_error *err)
{
    const char *file = st->name ? st->name : "weights";
    const char *fmt = cryo_meta_get(&st->meta, "format");
    const char *cfg = cryo_meta_get(&st->meta, "config");
    if (fmt && strcmp(fmt, FORMAT_NAME) != 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: format '%s' is not %s", file, fmt, FORMAT_NAME);
    if (!cfg)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no 'config' in the safetensors metadata", file);
    cryo_scunet_config_default(c);
    if (cryo_scunet_config_parse(c, cfg, err) < 0) {
        if (err)
            err->status = CRYO_E_FORMAT;
        cryo_error_prefix(err, file);
        return CRYO_E_FORMAT;
    }
    return CRYO_OK;
}

/* Upload every tensor `prefix<name>` of the table into dst (device arena, or host when
 * host = 1). */
static int load_set(struct cryo_nn_ctx *ctx, float *dst, int host, const struct cryo_nn_param *tab,
                    size_t n, const struct cryo_safetensors *st, const char *prefix,
                    struct cryo_error *err)
{
    char name[160];
    size_t most = 0;
    for (size_t i = 0; i < n; i++)
        most = tab[i].count > most ? tab[i].count : most;
    /* one float32 buffer: exported weights may be stored as float16 or bfloat16 */
    float *src = malloc((most ? most : 1) * sizeof(float));
    if (!src)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory loading weights");
    int rc = CRYO_OK;
    for (size_t i = 0; i < n && rc == CRYO_OK; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
        rc = cryo_safetensors_copy_f32(st, name, tab[i].ndim, tab[i].shape, src, err);
        for (size_t k = 0; rc == CRYO_OK && k < tab[i].count; k++)
            if (!isfinite(src[k]))
                rc = cryo_fail(err, CRYO_E_NUMERIC, "%s: tensor '%s' holds NaN or Inf at element %zu",
                               st->name ? st->name : "weights", name, k);
        if (rc != CRYO_OK)
            break;
        if (host)
            memcpy(dst + tab[i].offset, src, tab[i].count * sizeof(float));
        else
            rc = cryo_nn_upload(ctx, dst + tab[i].offset, src, tab[i].count, err);
    }
    free(src);
    return rc;
}

/* Every tensor of the file that is not training state or JEPA parts must be in the table:
 * anything else means the file is for another model. */
static int unexpected_tensors(const struct cryo_safetensors *st, const struct cryo_nn_param *tab, size_t n,
                              struct cryo_error *err)
{
    for (size_t i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        if (strncmp(nm, "optim.", 6) == 0 || strncmp(nm, "ema.", 4) == 0 || strncmp(nm, "jepa.", 5) == 0)
            continue;
        size_t j = 0;
        while (j < n && strcmp(tab[j].name, nm) != 0)
            j++;
        if (j == n)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: unexpected tensor '%s' for this config",
                             st->name ? st->name : "weights", nm);
    }
    return CRYO_OK;
}

int cryo_scunet_weights_check(const struct cryo_safetensors *st, const struct cryo_scunet_config *c,
                              struct cryo_error *err)
{
    struct cryo_nn_param *tab = NULL;
    size_t n = 0;
    CRYO_TRY(scunet_table(c, &tab, &n, NULL, NULL, err));
    int rc = unexpected_tensors(st, tab, n, err);
    for (size_t i = 0; i < n && rc == CRYO_OK; i++)
        rc = cryo_safetensors_check_float(st, tab[i].name, tab[i].ndim, tab[i].shape, err);
    free(tab);
    return rc;
}

int cryo_scunet_load(struct cryo_scunet *m, const struct cryo_safetensors *st, struct cryo_error *err)
{
    size_t n;
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    CRYO_TRY(unexpected_tensors(st, tab, n, err));
    return load_set(cryo_scunet_ctx(m), cryo_scunet_param_data(m), 0, tab, n, st, "", err);
}

/* Add the table's tensors, data from `host` (borrowed until the write), under `prefix`. */
static int add_set(struct cryo_safetensors *st, const float *host, const struct cryo_nn_param *tab,
                   size_t n, const char *prefix, struct cryo_error *err)
{
    char name[160];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
        CRYO_TRY(cryo_safetensors_add(st, name, CRYO_ST_F32, tab[i].ndim, tab[i].shape,
                                      host + tab[i].offset, err));
    }
    return CRYO_OK;
}

static int set_config_meta(struct cryo_safetensors *st, const struct cryo_scunet_config *c,
                           struct cryo_error *err)
{
    char cfg[512];
    cryo_scunet_config_format(c, cfg, sizeof cfg);
    CRYO_TRY(cryo_meta_set(&st->meta, "format", FORMAT_NAME, err));
    return cryo_meta_set(&st->meta, "config", cfg, err);
}

int cryo_scunet_save(struct cryo_scunet *m, const char *path, struct cryo_error *err)
{
    size_t n, np = cryo_scunet_num_params(m);
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    float *host = cryo_alloc_big(np * sizeof(float), err);
    if (!host)
        return CRYO_E_NOMEM;
    struct cryo_safetensors *st = NULL;
    int rc = cryo_nn_download(cryo_scunet_ctx(m), host, cryo_scunet_param_data(m), np, err);
    if (rc == 0)
        rc = cryo_safetensors_create(&st, err);
    if (rc == 0)
        rc = set_config_meta(st, cryo_scunet_config(m), err);
    if (rc == 0)
        rc = add_set(st, host, tab, n, "", err);
    if (rc == 0)
        rc = cryo_safetensors_write(st, path, err);
    cryo_safetensors_free(st);
    cryo_free_big(host);
    return rc;
}

/* ---- trainer -------------------------------------------------------------------------- */

void cryo_train_opts_default(struct cryo_train_opts *o)
{
    memset(o, 0, sizeof *o);
    cryo_adamw_default(&o->adamw);
    o->sched.lr = o->adamw.lr;
    o->sched.min_lr = 0;
    o->sched.warmup = 0;
    o->sched.total = 0;
    o->clip = 1.0;
    o->ema_decay = 0;
    o->loss = CRYO_LOSS_MSE;
    o->smooth_l1_beta = 1.0;
    o->alpha = 0.5;
    o->hist.bins = 64;
    o->hist.lo = 0;
    o->hist.hi = 1;
    o->hist.sigma = 1.0 / 64;
    o->seed = 1;
}

int cryo_trainer_create(struct cryo_trainer **out, struct cryo_scunet *model,
                        const struct cryo_train_opts *o, struct cryo_error *err)
{
    *out = NULL;
    if (!cryo_scunet_grad_data(model))
        return cryo_fail(err, CRYO_E_INVALID, "trainer: the model was built for inference");
    struct cryo_nn_ctx *ctx = cryo_scunet_ctx(model);
    struct cryo_trainer *t = cryo_alloc_array(1, sizeof *t, err);
    if (!t)
        return CRYO_E_NOMEM;
    t->model = model;
    t->ctx = ctx;
    t->o = *o;
    t->rng = o->seed;
    /* moments, EMA copy, output gradient and target live beside the model's arenas */
    size_t np = cryo_scunet_num_params(model), nout = cryo_scunet_output_count(model);
    int rc = CRYO_OK;
    if (!(t->m = cryo_nn_alloc(ctx, np, err)) || !(t->v = cryo_nn_alloc(ctx, np, err)) ||
        !(t->dout = cryo_nn_alloc(ctx, nout, err)) || !(t->target = cryo_nn_alloc(ctx, nout, err)) ||
        (o->ema_decay > 0 && !(t->ema = cryo_nn_alloc(ctx, np, err))))
        rc = CRYO_E_NOMEM;
    if (rc == 0)
        rc = cryo_nn_fill(ctx, t->m, 0.0f, np, err);
    if (rc == 0)
        rc = cryo_nn_fill(ctx, t->v, 0.0f, np, err);
    if (rc == 0 && t->ema)
        rc = cryo_nn_copy(ctx, t->ema, cryo_scunet_param_data(model), np, err);
    if (rc < 0) {
        cryo_trainer_free(t);
        return rc;
    }
    *out = t;
    return CRYO_OK;
}

void cryo_trainer_free(struct cryo_trainer *t)
{
    if (!t)
        return;
    struct cryo_nn_ctx *ctx = t->ctx;
    cryo_nn_free(ctx, t->m);
    cryo_nn_free(ctx, t->v);
    cryo_nn_free(ctx, t->ema);
    cryo_nn_free(ctx, t->dout);
    cryo_nn_free(ctx, t->target);
    free(t);
}

/* The loss of the model's output against t->target (context memory), its gradient into
 * t->dout, all on the context's device (HistKL included): only the loss comes back. */
static int trainer_loss(struct cryo_trainer *t, double *loss, struct cryo_error *err)
{
    struct cryo_scunet *m = t->model;
    struct cryo_nn_ctx *ctx = cryo_scunet_ctx(m);
    size_t n = cryo_scunet_output_count(m);
    const float *pred = cryo_scunet_output(m);
    if (t->o.loss == CRYO_LOSS_SMOOTH_L1)
        return cryo_nn_loss_rows(ctx, loss, t->dout, pred, t->target, NULL, (int64_t)n, 1, CRYO_NN_LOSS_SMOOTH_L1,
                                 t->o.smooth_l1_beta, (double)n, err);
    if (t->o.loss != CRYO_LOSS_COMBINED)
        return cryo_nn_loss_rows(ctx, loss, t->dout, pred, t->target, NULL, (int64_t)n, 1, CRYO_NN_LOSS_MSE, 0,
                                 (double)n, err);
    double alpha = t->o.alpha, lm = 0, lh = 0;
    if (!(alpha >= 0 && alpha <= 1))
        return cryo_fail(err, CRYO_E_INVALID, "combined loss: alpha must be in [0, 1]");
    CRYO_TRY(cryo_nn_loss_rows(ctx, &lm, t->dout, pred, t->target, NULL, (int64_t)n, 1, CRYO_NN_LOSS_MSE, 0,
                               (double)n, err));
    if (alpha < 1) { /* dout ← α·dout, then += (1 − α)·∂HistKL/∂pred */
        CRYO_TRY(cryo_nn_scale(ctx, t->dout, n, (float)alpha, err));
        CRYO_TRY(cryo_nn_histkl_loss(ctx, &lh, t->dout, pred, t->target, n, &t->o.hist, 1 - alpha, err));
    }
    *loss = alpha * lm + (1 - alpha) * lh;
    return CRYO_OK;
}

int cryo_trainer_step(struct cryo_trainer *t, const float *input, const float *target,
                      struct cryo_error *err)
{
    struct cryo_scunet *m = t->model;
    struct cryo_nn_ctx *ctx = cryo_scunet_ctx(m);
    size_t nin = cryo_scunet_input_count(m), nout = cryo_scunet_output_count(m);
    CRYO_TRY(cryo_nn_upload(ctx, cryo_scunet_input(m), input, nin, err));
    CRYO_TRY(cryo_nn_upload(ctx, t->target, target, nout, err));
    cryo_scunet_set_stochastic(m, &t->rng); /* drop-path during the training forward only */
    int frc = cryo_scunet_forward(m, err);
    cryo_scunet_set_stochastic(m, NULL);
    CRYO_TRY(frc);
    double loss = 0;
    CRYO_TRY(trainer_loss(t, &loss, err));
    CRYO_TRY(cryo_scunet_zero_grad(m, err));
    CRYO_TRY(cryo_scunet_backward(m, t->dout, err));
    size_t np = cryo_scunet_num_params(m), n;
    float *p = cryo_scunet_param_data(m), *g = cryo_scunet_grad_data(m);
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    CRYO_TRY(cryo_nn_reduce_grads(ctx, &t->reduce, &g, &np, 1, &loss, (double)nout, err));
    if (t->frozen) /* a frozen tensor contributes nothing: as requires_grad = False */
        for (size_t i = 0; i < n; i++)
            if (t->frozen[i])
                CRYO_TRY(cryo_nn_fill(ctx, g + tab[i].offset, 0.0f, tab[i].count, err));
    CRYO_TRY(cryo_nn_clip_grad_norm(ctx, &g, &np, 1, t->o.clip, &t->last_norm, err));
    if (!isfinite(t->last_norm))
        return cryo_fail(err, CRYO_E_NUMERIC, "training step %" PRId64 ": gradient is not finite",
                         t->step + 1);
    int64_t step = t->step + 1;
    double lr = cryo_lr_at(&t->o.sched, step);
    for (size_t i = 0; i < n; i++) {
        size_t o = tab[i].offset;
        if (t->frozen && t->frozen[i])
            continue;
        CRYO_TRY(cryo_nn_adamw_update(ctx, p + o, g + o, t->m + o, t->v + o, tab[i].count, &t->o.adamw, lr,
                                      step, tab[i].decay, err));
    }
    if (t->ema)
        CRYO_TRY(cryo_nn_ema_update(ctx, t->ema, p, np, t->o.ema_decay, err));
    t->step = step;
    t->last_loss = loss;
    t->last_lr = lr;
    return CRYO_OK;
}

int cryo_trainer_save(struct cryo_trainer *t, const char *path, struct cryo_error *err)
{
    return cryo_trainer_save_meta(t, path, NULL, err);
}

int cryo_trainer_save_meta(struct cryo_trainer *t, const char *path, const struct cryo_meta *extra,
                           struct cryo_error *err)
{
    struct cryo_scunet *m = t->model;
    struct cryo_nn_ctx *ctx = cryo_scunet_ctx(m);
    size_t n, np = cryo_scunet_num_params(m);
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    struct cryo_safetensors *st = NULL;
    /* host copies of the parameters, moments and EMA (context memory may be a GPU's) */
    float *h = cryo_alloc_big(np * 4 * sizeof(float), err);
    if (!h)
        return CRYO_E_NOMEM;
    float *hp = h, *hm = h + np, *hv = h + 2 * np, *he = h + 3 * np;
    int rc = cryo_nn_download(ctx, hp, cryo_scunet_param_data(m), np, err);
    if (rc == 0)
        rc = cryo_nn_download(ctx, hm, t->m, np, err);
    if (rc == 0)
        rc = cryo_nn_download(ctx, hv, t->v, np, err);
    if (rc == 0 && t->ema)
        rc = cryo_nn_download(ctx, he, t->ema, np, err);
    if (rc == 0)
        rc = cryo_safetensors_create(&st, err);
    for (size_t i = 0; rc == 0 && extra && i < extra->n; i++)
        rc = cryo_meta_set(&st->meta, extra->keys[i], extra->vals[i], err);
    if (rc == 0)
        rc = set_config_meta(st, cryo_scunet_config(m), err);
    if (rc == 0)
        rc = cryo_meta_setf(&st->meta, err, "step", "%" PRId64, t->step);
    if (rc == 0)
        rc = cryo_meta_setf(&st->meta, err, "rng", "%" PRIu64, t->rng);
    if (rc == 0)
        rc = add_set(st, hp, tab, n, "", err);
    if (rc == 0)
        rc = add_set(st, hm, tab, n, "optim.m.", err);
    if (rc == 0)
        rc = add_set(st, hv, tab, n, "optim.v.", err);
    if (rc == 0 && t->ema)
        rc = add_set(st, he, tab, n, "ema.", err);
    if (rc == 0)
        rc = cryo_safetensors_write(st, path, err);
    cryo_safetensors_free(st);
    cryo_free_big(h);
    return rc;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (*e || errno || *s == '-')
        return -1;
    *out = v;
    return 0;
}

int cryo_trainer_load(struct cryo_trainer *t, const struct cryo_safetensors *st, struct cryo_error *err)
{
    struct cryo_scunet *m = t->model;
    const char *file = st->name ? st->name : "checkpoint";
    struct cryo_scunet_config c;
    CRYO_TRY(cryo_scunet_config_from_file(st, &c, err));
    if (!cryo_scunet_config_equal(&c, cryo_scunet_config(m)))
        return cryo_fail(err, CRYO_E_FORMAT, "%s: checkpoint is for another model config", file);
    uint64_t step, rng;
    if (parse_u64(cryo_meta_get(&st->meta, "step"), &step) < 0 ||
        parse_u64(cryo_meta_get(&st->meta, "rng"), &rng) < 0 || step > (uint64_t)INT64_MAX)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no valid 'step' and 'rng' metadata (not a training checkpoint)",
                         file);
    size_t n;
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    CRYO_TRY(load_set(cryo_scunet_ctx(m), cryo_scunet_param_data(m), 0, tab, n, st, "", err));
    CRYO_TRY(load_set(cryo_scunet_ctx(m), t->m, 0, tab, n, st, "optim.m.", err));
    CRYO_TRY(load_set(cryo_scunet_ctx(m), t->v, 0, tab, n, st, "optim.v.", err));
    if (t->ema)
        CRYO_TRY(load_set(cryo_scunet_ctx(m), t->ema, 0, tab, n, st, "ema.", err));
    t->step = (int64_t)step;
    t->rng = rng;
    return CRYO_OK;
}
