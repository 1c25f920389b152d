/* model_jepa_train.c — one JEPA (or MAE-baseline) pre-training step (see nn_jepa.h).
 *
 * Four objects: context encoder + predictor (trained), target encoder + target embedding
 * (EMA copies, inference only). The masks are drawn on the host (a byte per token) and go up
 * as one float per token; the batch goes up once, to the target encoder's input, and the
 * masked context input, the MAE target rows, the collapse statistics, the target layer norm,
 * the loss on the masked tokens, clipping, AdamW and EMA run through the context
 * (nn_train.h's cryo_nn_*), so on a GPU a step copies only the batch, the mask and scalars.
 */
#include "model_impl.h"
#include "cryolvm/nn_layers.h"
#include "nn/backend_impl.h"
#include "cryolvm/mem.h"
#include "cryolvm/nn_jepa.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cryo_jepa_train_opts_default(struct cryo_jepa_train_opts *o)
{
    memset(o, 0, sizeof *o);
    cryo_adamw_default(&o->adamw);
    o->adamw.weight_decay = 0.04;
    o->sched.lr = 1e-3;
    o->sched.min_lr = 1e-5;
    o->clip = 1.0;
    o->ema_decay = 0.996;
    o->ema_end = 1.0;
    o->wd_end = 0.4;
    o->loss = CRYO_JEPA_SMOOTH_L1;
    o->beta = 1.0;
    cryo_jepa_mask_opts_default(&o->mask);
    o->mask_ratio = 0.75;
    o->mode = CRYO_JEPA_LATENT;
    o->seed = 1;
}

static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}


void cryo_jepa_trainer_free(struct cryo_jepa_trainer *t)
{
    if (!t)
        return;
    struct cryo_nn_ctx *ctx = t->ctx;
    cryo_nn_free(ctx, t->m);
    cryo_nn_free(ctx, t->v);
    cryo_nn_free(ctx, t->dout);
    cryo_nn_free(ctx, t->gt);
    cryo_nn_free(ctx, t->rowmask);
    cryo_nn_free(ctx, t->lnstat);
    cryo_nn_free(ctx, t->ones);
    cryo_scunet_free(t->enc);
    cryo_scunet_free(t->tenc);
    cryo_jepa_free(t->pred);
    cryo_jepa_free(t->tpred);
    cryo_free_big(t->gg);
    free(t->mask);
    free(t);
}

int cryo_jepa_trainer_create(struct cryo_jepa_trainer **out, const struct cryo_scunet_config *ec,
                             const struct cryo_jepa_config *jc, const struct cryo_jepa_train_opts *o,
                             struct cryo_nn_ctx *ctx, int n, int d, int h, int w, uint64_t seed,
                             struct cryo_error *err)
{
    *out = NULL;
    if (!(o->mask_ratio > 0 && o->mask_ratio < 1) || !(o->ema_decay >= 0 && o->ema_decay < 1) ||
        !(o->ema_end >= o->ema_decay && o->ema_end <= 1) || !(o->wd_end >= 0) || !(o->beta > 0))
        return cryo_fail(err, CRYO_E_INVALID,
                         "jepa trainer: mask_ratio in (0,1), ema_decay in [0,1), ema_end in [ema_decay,1], "
                         "wd_end >= 0, beta > 0");
    CRYO_TRY(cryo_jepa_mask_opts_check(&o->mask, err));
    if (jc->features != ec->width << ec->levels || jc->patch != 1 << ec->levels || jc->out_ch != ec->in_ch)
        return cryo_fail(err, CRYO_E_INVALID, "jepa trainer: predictor config does not fit the encoder");
    struct cryo_jepa_trainer *t = cryo_alloc_array(1, sizeof *t, err);
    if (!t)
        return CRYO_E_NOMEM;
    t->o = *o;
    t->ctx = ctx;
    t->rng = o->seed;
    t->n = n;
    t->d = d;
    t->h = h;
    t->w = w;
    int L = ec->levels, rc;
    int gd = d >> L, gh = h >> L, gw = w >> L;
    rc = cryo_scunet_create_encoder(&t->enc, ec, ctx, n, d, h, w, 1, err);
    if (rc == 0)
        rc = cryo_scunet_create_encoder(&t->tenc, ec, ctx, n, d, h, w, 0, err);
    if (rc == 0)
        rc = cryo_jepa_create(&t->pred, jc, ctx, n, gd, gh, gw, 1, err);
    if (rc == 0)
        rc = cryo_jepa_create(&t->tpred, jc, ctx, n, gd, gh, gw, 0, err);
    if (rc == 0)
        rc = cryo_scunet_init(t->enc, seed, err);
    if (rc == 0)
        rc = cryo_jepa_init(t->pred, seed ^ 0xA5A5A5A5A5A5A5A5ULL, err);
    size_t ne = 0, np = 0, T = 0;
    if (rc == 0) {
        ne = cryo_scunet_num_params(t->enc);
        np = cryo_jepa_num_params(t->pred);
        T = cryo_jepa_tokens(t->pred);
        size_t V = (size_t)jc->patch * jc->patch * jc->patch * jc->out_ch, E = (size_t)jc->embed;
        size_t wide = V > E ? V : E, dn = T * wide;
        if (!(t->m = cryo_nn_alloc(ctx, ne + np, err)) || !(t->v = cryo_nn_alloc(ctx, ne + np, err)) ||
            !(t->dout = cryo_nn_alloc(ctx, dn, err)) || !(t->gt = cryo_nn_alloc(ctx, dn, err)) ||
            !(t->rowmask = cryo_nn_alloc(ctx, T, err)) || !(t->lnstat = cryo_nn_alloc(ctx, 2 * T, err)) ||
            !(t->ones = cryo_nn_alloc(ctx, 2 * E, err)) ||
            !(t->gg = cryo_alloc_big(T * sizeof(float), err)) ||
            !(t->mask = cryo_alloc_array(T, 1, err)))
            rc = CRYO_E_NOMEM;
        if (rc == 0)
            rc = cryo_nn_copy(ctx, cryo_scunet_param_data(t->tenc), cryo_scunet_param_data(t->enc), ne, err);
        if (rc == 0)
            rc = cryo_nn_copy(ctx, cryo_jepa_param_data(t->tpred), cryo_jepa_param_data(t->pred), np, err);
        if (rc == 0)
            rc = cryo_nn_fill(ctx, t->m, 0.0f, ne + np, err);
        if (rc == 0)
            rc = cryo_nn_fill(ctx, t->v, 0.0f, ne + np, err);
        if (rc == 0)
            rc = cryo_nn_fill(ctx, t->ones, 1.0f, E, err);
        if (rc == 0)
            rc = cryo_nn_fill(ctx, t->ones + E, 0.0f, E, err);
    }
    if (rc < 0) {
        cryo_jepa_trainer_free(t);
        return rc;
    }
    *out = t;
    return CRYO_OK;
}

/* MAE's rule: exactly round(r·T) tokens of each sample, uniform without replacement
 * (partial Fisher–Yates), from the sample's own counter-based stream. */
static void mae_mask(uint8_t *m, size_t per, double ratio, uint64_t seed, uint64_t step, uint64_t idx)
{
    size_t k = (size_t)llround(ratio * (double)per), *perm = malloc(per * sizeof *perm);
    uint64_t r = seed ^ (step * 0xD1B54A32D192ED03ULL) ^ (idx * 0xA24BAED4963EE407ULL);
    memset(m, 0, per);
    if (!perm) { /* no memory for the permutation: a strided mask of the same ratio */
        for (size_t i = 0; i < k; i++)
            m[i * per / k] = 1;
        return;
    }
    for (size_t i = 0; i < per; i++)
        perm[i] = i;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(sm64(&r) % (uint64_t)(per - i)), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
        m[perm[i]] = 1;
    }
    free(perm);
}

/* Masks per tile (jepa_mask.h, or MAE's) into t->mask, and as one float per token (1 =
 * masked) into t->rowmask. *total: the number of masked tokens. */
static int make_mask(struct cryo_jepa_trainer *t, uint64_t seed, uint64_t step, uint64_t first, size_t *total,
                     struct cryo_error *err)
{
    const struct cryo_scunet_config *c = cryo_scunet_config(t->enc);
    int p = 1 << c->levels, gd = t->d / p, gh = t->h / p, gw = t->w / p;
    size_t per = (size_t)gd * gh * gw, T = per * (size_t)t->n;
    if (t->o.mode == CRYO_JEPA_MAE)
        for (int s = 0; s < t->n; s++)
            mae_mask(t->mask + (size_t)s * per, per, t->o.mask_ratio, seed, step, first + (uint64_t)s);
    else
        CRYO_TRY(cryo_jepa_mask_draw(t->mask, NULL, t->n, gd, gh, gw, &t->o.mask, seed, step, first, err));
    *total = 0;
    for (size_t k = 0; k < T; k++) {
        *total += t->mask[k];
        t->gg[k] = t->mask[k] ? 1.0f : 0.0f;
    }
    return cryo_nn_upload(t->ctx, t->rowmask, t->gg, T, err);
}

/* AdamW over a parameter table, moments at m/v + base. */
static int adamw_table(struct cryo_nn_ctx *ctx, float *param, const float *grad, float *m, float *v,
                       const struct cryo_nn_param *tab, size_t n, const struct cryo_adamw *o, double lr,
                       int64_t step, struct cryo_error *err)
{
    for (size_t i = 0; i < n; i++) {
        size_t off = tab[i].offset;
        CRYO_TRY(cryo_nn_adamw_update(ctx, param + off, grad + off, m + off, v + off, tab[i].count, o, lr, step,
                                      tab[i].decay, err));
    }
    return CRYO_OK;
}

/* Both branches and the loss on input with the masks of (seed, step, first), through the
 * context: train = 1 for a step (drop-path, collapse statistics, d(loss)/d(output) in
 * t->dout), 0 for an evaluation (deterministic; no gradient, no RNG, no statistics: only
 * scratch — the masks, t->rowmask, t->gt, the activations — is written). *count: the
 * loss's terms (masked tokens × row width). */
static int forward_loss(struct cryo_jepa_trainer *t, const float *input, uint64_t seed, uint64_t step, uint64_t first,
                        int train, double *loss_out, size_t *count, struct cryo_error *err)
{
    struct cryo_nn_ctx *ctx = t->ctx;
    size_t nin = cryo_scunet_input_count(t->enc), T = cryo_jepa_tokens(t->pred);
    size_t F = cryo_scunet_output_count(t->enc) / T;
    const struct cryo_scunet_config *ec = cryo_scunet_config(t->enc);
    int p = 1 << ec->levels, C = ec->in_ch, mae = t->o.mode == CRYO_JEPA_MAE;
    size_t nmask;
    CRYO_TRY(make_mask(t, seed, step, first, &nmask, err));
    /* the batch goes up once, to the target encoder's input; from it, on the device, the
     * context input (patches of masked tokens zeroed) and MAE's target rows: token k's
     * voxel (a,b,c), channel ch at column ((a·p+b)·p+c)·C+ch */
    float *full = cryo_scunet_input(t->tenc);
    CRYO_TRY(cryo_nn_upload(ctx, full, input, nin, err));
    CRYO_TRY(cryo_nn_mask_patches(ctx, cryo_scunet_input(t->enc), full, t->rowmask, t->n, t->d, t->h, t->w, C, p,
                                  err));
    if (mae)
        CRYO_TRY(cryo_nn_patchify(ctx, t->gt, full, t->n, t->d, t->h, t->w, C, p, err));
    /* target branch: full input, EMA weights, no gradient */
    CRYO_TRY(cryo_scunet_forward(t->tenc, err));
    CRYO_TRY(cryo_nn_copy(ctx, cryo_jepa_features(t->tpred), cryo_scunet_output(t->tenc), T * F, err));
    CRYO_TRY(cryo_jepa_forward(t->tpred, err)); /* its mask is never set: no token masked */
    /* collapse statistics on the target encoder's features (not the embeddings, which carry
     * the fixed positional code and so never look collapsed): a diagnostic of a step, two
     * doubles back from the device */
    if (train)
        CRYO_TRY(cryo_nn_collapse_stats(ctx, &t->spread_tokens, &t->spread_samples, cryo_scunet_output(t->tenc), t->n,
                                        T / (size_t)t->n, (int)F, err));
    /* context branch */
    cryo_scunet_set_stochastic(t->enc, train ? &t->rng : NULL);
    int rc = cryo_scunet_forward(t->enc, err);
    cryo_scunet_set_stochastic(t->enc, NULL);
    CRYO_TRY(rc);
    CRYO_TRY(cryo_nn_copy(ctx, cryo_jepa_features(t->pred), cryo_scunet_output(t->enc), T * F, err));
    CRYO_TRY(cryo_jepa_set_rowmask(t->pred, t->rowmask, err)); /* already in context memory */
    CRYO_TRY(cryo_jepa_forward(t->pred, err));
    /* loss on the masked tokens, through the context */
    size_t n_pp;
    const struct cryo_nn_param *ptab = cryo_jepa_params(t->pred, &n_pp);
    size_t E = ptab[1].count /* patch_embed.bias */, V = ptab[n_pp - 1].count /* mae.bias */;
    size_t W = mae ? V : E;
    const float *pred = mae ? cryo_jepa_vox(t->pred) : cryo_jepa_pred(t->pred);
    const float *tgt = cryo_jepa_embeddings(t->tpred);
    if (!mae) { /* JEPA targets are layer-normalised per token (no affine, eps 1e-5), as I-JEPA
                 * does: the target scale is then fixed and the branches cannot inflate it
                 * (MAE's target rows were cut from the input above) */
        CRYO_TRY(cryo_nn_layernorm_forward(ctx, t->gt, t->lnstat, t->lnstat + T, tgt, t->ones, t->ones + E,
                                           (int64_t)T, (int)E, 1e-5f, err));
    }
    double loss = 0;
    /* an evaluation writes no gradient (t->dout is the step's d(loss)/d(output)) */
    int lrc = nmask == 0 ? cryo_fail(err, CRYO_E_INVALID, "loss: empty or missing input")
                         : cryo_nn_loss_rows(ctx, &loss, train ? t->dout : NULL, pred, t->gt, t->rowmask, (int64_t)T,
                                             (int)W,
                                             mae || t->o.loss == CRYO_JEPA_SQUARED ? CRYO_NN_LOSS_MSE
                                                                                    : CRYO_NN_LOSS_SMOOTH_L1,
                                             t->o.beta, (double)(nmask * W), err);
    if (lrc < 0) {
        if (lrc == CRYO_E_NUMERIC && train)
            return cryo_fail(err, CRYO_E_NUMERIC, "jepa step %lld: loss is not finite", (long long)t->step + 1);
        if (lrc == CRYO_E_NUMERIC)
            return cryo_fail(err, CRYO_E_NUMERIC, "jepa evaluation: loss is not finite");
        return lrc;
    }
    *loss_out = loss;
    *count = nmask * W;
    return CRYO_OK;
}

int cryo_jepa_trainer_eval(struct cryo_jepa_trainer *t, const float *input, uint64_t mask_seed, uint64_t first,
                           double *loss, struct cryo_error *err)
{
    size_t count;
    return forward_loss(t, input, mask_seed, 0, first, 0, loss, &count, err);
}

int cryo_jepa_trainer_step(struct cryo_jepa_trainer *t, const float *input, struct cryo_error *err)
{
    struct cryo_nn_ctx *ctx = t->ctx;
    size_t count;
    double loss;
    CRYO_TRY(forward_loss(t, input, t->o.seed, (uint64_t)t->step, t->sample_offset, 1, &loss, &count, err));
    size_t n_ep, n_pp;
    const struct cryo_nn_param *etab = cryo_scunet_params(t->enc, &n_ep);
    const struct cryo_nn_param *ptab = cryo_jepa_params(t->pred, &n_pp);
    int mae = t->o.mode == CRYO_JEPA_MAE;
    t->last_loss = loss;
    /* backward: predictor, then the context encoder from d(features) */
    CRYO_TRY(cryo_jepa_zero_grad(t->pred, err));
    CRYO_TRY(cryo_scunet_zero_grad(t->enc, err));
    CRYO_TRY(cryo_jepa_backward(t->pred, mae ? NULL : t->dout, mae ? t->dout : NULL, err));
    CRYO_TRY(cryo_scunet_backward(t->enc, cryo_jepa_dfeatures(t->pred), err));
    /* clip on the joint norm, AdamW, EMA into the target branch */
    size_t ne = cryo_scunet_num_params(t->enc), np = cryo_jepa_num_params(t->pred);
    float *ge = cryo_scunet_grad_data(t->enc), *gp = cryo_jepa_grad_data(t->pred);
    float *const g2[2] = {ge, gp};
    const size_t n2[2] = {ne, np};
    CRYO_TRY(cryo_nn_reduce_grads(ctx, &t->reduce, g2, n2, 2, &t->last_loss, (double)count, err));
    double gn = 0;
    CRYO_TRY(cryo_nn_clip_grad_norm(ctx, g2, n2, 2, t->o.clip, &gn, err));
    if (!isfinite(gn))
        return cryo_fail(err, CRYO_E_NUMERIC, "jepa step %lld: gradient is not finite", (long long)t->step + 1);
    int64_t step = t->step + 1, total = t->o.sched.total;
    double lr = cryo_lr_at(&t->o.sched, step);
    struct cryo_adamw aw = t->o.adamw;
    aw.weight_decay = cryo_cosine_ramp(t->o.adamw.weight_decay, t->o.wd_end, step, total);
    double mom = cryo_linear_ramp(t->o.ema_decay, t->o.ema_end, step - 1, total);
    CRYO_TRY(adamw_table(ctx, cryo_scunet_param_data(t->enc), ge, t->m, t->v, etab, n_ep, &aw, lr, step, err));
    CRYO_TRY(adamw_table(ctx, cryo_jepa_param_data(t->pred), gp, t->m + ne, t->v + ne, ptab, n_pp, &aw, lr, step,
                         err));
    CRYO_TRY(cryo_nn_ema_update(ctx, cryo_scunet_param_data(t->tenc), cryo_scunet_param_data(t->enc), ne, mom, err));
    CRYO_TRY(cryo_nn_ema_update(ctx, cryo_jepa_param_data(t->tpred), cryo_jepa_param_data(t->pred), np, mom, err));
    t->last_norm = gn;
    t->last_lr = lr;
    t->last_wd = aw.weight_decay;
    t->last_ema = mom;
    t->step = step;
    return CRYO_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* Download `dev` (context memory, the table's floats) into host[0..) and add its tensors
 * under `prefix`; host must stay alive until the file is written. */
static int add_set(struct cryo_safetensors *st, struct cryo_nn_ctx *ctx, float *host, const float *dev,
                   size_t total, const struct cryo_nn_param *tab, size_t n, const char *prefix,
                   struct cryo_error *err)
{
    char name[192];
    CRYO_TRY(cryo_nn_download(ctx, host, dev, total, err));
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
        CRYO_TRY(cryo_safetensors_add(st, name, CRYO_ST_F32, tab[i].ndim, tab[i].shape, host + tab[i].offset, err));
    }
    return CRYO_OK;
}

static int get_set(struct cryo_nn_ctx *ctx, float *dev, const struct cryo_nn_param *tab, size_t n,
                   const struct cryo_safetensors *st, const char *prefix, struct cryo_error *err)
{
    char name[192];
    for (size_t i = 0; i < n; i++) {
        const float *src;
        snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
        CRYO_TRY(cryo_safetensors_get_f32(st, name, tab[i].ndim, tab[i].shape, &src, err));
        CRYO_TRY(cryo_nn_upload(ctx, dev + tab[i].offset, src, tab[i].count, err));
    }
    return CRYO_OK;
}

static void jepa_config_text(const struct cryo_jepa_trainer *t, char *buf, size_t cap)
{
    const struct cryo_jepa_config *c = cryo_jepa_get_config(t->pred);
    snprintf(buf, cap, "features=%d,patch=%d,out_ch=%d,embed=%d,depth=%d,head_dim=%d,mlp_ratio=%d,mode=%s",
             c->features, c->patch, c->out_ch, c->embed, c->depth, c->head_dim, c->mlp_ratio,
             t->o.mode == CRYO_JEPA_MAE ? "mae" : "jepa");
}

int cryo_jepa_trainer_save(struct cryo_jepa_trainer *t, const char *path, struct cryo_error *err)
{
    return cryo_jepa_trainer_save_meta(t, path, NULL, err);
}

int cryo_jepa_trainer_save_meta(struct cryo_jepa_trainer *t, const char *path, const struct cryo_meta *extra,
                                struct cryo_error *err)
{
    size_t ne, np, nb = cryo_scunet_num_params(t->enc);
    const struct cryo_nn_param *etab = cryo_scunet_params(t->enc, &ne);
    const struct cryo_nn_param *ptab = cryo_jepa_params(t->pred, &np);
    struct cryo_safetensors *st = NULL;
    char cfg[512], jcfg[256];
    cryo_scunet_config_format(cryo_scunet_config(t->enc), cfg, sizeof cfg);
    jepa_config_text(t, jcfg, sizeof jcfg);
    int rc = cryo_safetensors_create(&st, err);
    for (size_t i = 0; rc == 0 && extra && i < extra->n; i++)
        rc = cryo_meta_set(&st->meta, extra->keys[i], extra->vals[i], err);
    if (rc == 0)
        rc = cryo_meta_set(&st->meta, "format", "cryolvm-scunet3d", err);
    if (rc == 0)
        rc = cryo_meta_set(&st->meta, "config", cfg, err);
    if (rc == 0)
        rc = cryo_meta_set(&st->meta, "jepa", jcfg, err);
    if (rc == 0)
        rc = cryo_meta_setf(&st->meta, err, "step", "%" PRId64, t->step);
    if (rc == 0)
        rc = cryo_meta_setf(&st->meta, err, "rng", "%" PRIu64, t->rng);
    /* host copies (the context's memory may be a GPU's): 4 × (encoder + predictor) */
    size_t nq = cryo_jepa_num_params(t->pred);
    struct cryo_nn_ctx *ctx = t->ctx;
    float *h = rc == 0 ? cryo_alloc_big(4 * (nb + nq) * sizeof(float), err) : NULL;
    if (rc == 0 && !h)
        rc = CRYO_E_NOMEM;
    float *he = h, *hp = h ? h + nb : NULL, *hte = h ? h + nb + nq : NULL, *htp = h ? h + 2 * nb + nq : NULL;
    float *hm = h ? h + 2 * (nb + nq) : NULL, *hv = h ? h + 3 * (nb + nq) : NULL;
    if (rc == 0)
        rc = add_set(st, ctx, he, cryo_scunet_param_data(t->enc), nb, etab, ne, "", err);
    if (rc == 0)
        rc = add_set(st, ctx, hp, cryo_jepa_param_data(t->pred), nq, ptab, np, "jepa.", err);
    if (rc == 0)
        rc = add_set(st, ctx, hte, cryo_scunet_param_data(t->tenc), nb, etab, ne, "ema.", err);
    if (rc == 0)
        rc = add_set(st, ctx, htp, cryo_jepa_param_data(t->tpred), nq, ptab, np, "ema.jepa.", err);
    if (rc == 0)
        rc = add_set(st, ctx, hm, t->m, nb + nq, etab, ne, "optim.m.", err);
    if (rc == 0)
        rc = add_set(st, ctx, hv, t->v, nb + nq, etab, ne, "optim.v.", err);
    if (rc == 0) /* the predictor's moments follow the encoder's in the same host copies */
        rc = add_set(st, ctx, hm + nb, t->m + nb, 0, ptab, np, "optim.m.jepa.", err);
    if (rc == 0)
        rc = add_set(st, ctx, hv + nb, t->v + nb, 0, ptab, np, "optim.v.jepa.", err);
    if (rc == 0)
        rc = cryo_safetensors_write(st, path, err);
    cryo_safetensors_free(st);
    cryo_free_big(h);
    return rc;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (*e || errno)
        return -1;
    *out = v;
    return 0;
}

int cryo_jepa_trainer_load(struct cryo_jepa_trainer *t, const struct cryo_safetensors *st,
                           struct cryo_error *err)
{
    const char *file = st->name ? st->name : "checkpoint";
    struct cryo_scunet_config c;
    CRYO_TRY(cryo_scunet_config_from_file(st, &c, err));
    char jcfg[256];
    jepa_config_text(t, jcfg, sizeof jcfg);
    const char *fj = cryo_meta_get(&st->meta, "jepa");
    if (!cryo_scunet_config_equal(&c, cryo_scunet_config(t->enc)) || !fj || strcmp(fj, jcfg) != 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: not a JEPA checkpoint of this encoder and predictor config", file);
    uint64_t step, rng;
    if (parse_u64(cryo_meta_get(&st->meta, "step"), &step) < 0 || parse_u64(cryo_meta_get(&st->meta, "rng"), &rng) < 0 ||
        step > (uint64_t)INT64_MAX)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: no valid 'step' and 'rng' metadata", file);
    size_t ne, np, nb = cryo_scunet_num_params(t->enc);
    const struct cryo_nn_param *etab = cryo_scunet_params(t->enc, &ne);
    const struct cryo_nn_param *ptab = cryo_jepa_params(t->pred, &np);
    struct cryo_nn_ctx *ctx = t->ctx;
    CRYO_TRY(get_set(ctx, cryo_scunet_param_data(t->enc), etab, ne, st, "", err));
    CRYO_TRY(get_set(ctx, cryo_jepa_param_data(t->pred), ptab, np, st, "jepa.", err));
    CRYO_TRY(get_set(ctx, cryo_scunet_param_data(t->tenc), etab, ne, st, "ema.", err));
    CRYO_TRY(get_set(ctx, cryo_jepa_param_data(t->tpred), ptab, np, st, "ema.jepa.", err));
    CRYO_TRY(get_set(ctx, t->m, etab, ne, st, "optim.m.", err));
    CRYO_TRY(get_set(ctx, t->v, etab, ne, st, "optim.v.", err));
    CRYO_TRY(get_set(ctx, t->m + nb, ptab, np, st, "optim.m.jepa.", err));
    CRYO_TRY(get_set(ctx, t->v + nb, ptab, np, st, "optim.v.jepa.", err));
    t->step = (int64_t)step;
    t->rng = rng;
    return CRYO_OK;
}
