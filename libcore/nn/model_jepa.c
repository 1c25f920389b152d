/* model_jepa.c — JEPA patch embedding, predictor and MAE voxel head (see nn_jepa.h).
 *
 * Same construction as the backbone: a parameter table, arenas sized by a counting pass,
 * every operation through the layer API. The token masking (replace a row by the mask
 * token) is one backend op per pass (cryo_nn_mask_rows and its backward) reading the mask
 * as T floats in context memory, uploaded by cryo_jepa_set_mask from the host mask the
 * training loop chose.
 */
#include "model_impl.h"
#include "cryolvm/mem.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_layers.h"
#include "cryolvm/nn_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f

enum jb_param { JB_N1W, JB_N1B, JB_QKVW, JB_QKVB, JB_PROJW, JB_PROJB, JB_N2W, JB_N2B,
                JB_FC1W, JB_FC1B, JB_FC2W, JB_FC2B, JB_N };

struct jblock {
    size_t p0;
    const float *inp;              /* T × E */
    float *l1, *l1m, *l1r, *cache; /* LN1 out, mean, rstd; attention cache */
    float *x1;                     /* inp + attention */
    float *l2, *l2m, *l2r;         /* LN2 */
    float *h, *g;                  /* T × M: fc1 out, GELU out */
    float *out;                    /* x1 + fc2(g) */
};

struct cryo_jepa {
    struct cryo_jepa_config cfg;
    struct cryo_nn_ctx *ctx;
    int n, gd, gh, gw, training, M, V;
    int64_t T;
    struct cryo_nn_wmsa att;
    struct cryo_nn_param *tab;
    size_t ntab, nparams;
    size_t p_emb, p_mask, p_blk, p_norm, p_proj, p_mae;
    float *params, *grads, *acts, *gacts;
    size_t nacts, ngacts;
    struct jblock *blk;
    float *hmask;   /* host, T: the mask as floats, staged for upload */
    float *rowmask; /* context memory, T: nonzero = masked */
    /* activations */
    float *feat, *pos, *elin, *e, *z, *y, *ym, *yr, *pred, *vox, *zbias;
    /* gradients */
    float *dfeat, *gA, *gB, *G1, *G2, *F1, *dy;
};

void cryo_jepa_config_default(struct cryo_jepa_config *j, const struct cryo_scunet_config *enc)
{
    j->features = enc->width << enc->levels;
    j->patch = 1 << enc->levels;
    j->out_ch = enc->out_ch;
    j->embed = 192;
    j->depth = 2;
    j->head_dim = 32;
    j->mlp_ratio = 4;
}

int cryo_jepa_config_check(const struct cryo_jepa_config *j, struct cryo_error *err)
{
    if (j->features < 1 || j->features > 65536 || j->patch < 1 || j->patch > 32 || j->out_ch < 1 ||
        j->out_ch > 64)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: bad features/patch/out_ch");
    if (j->embed < 6 || j->embed > 4096 || j->embed % 6 || j->head_dim < 1 || j->embed % j->head_dim)
        return cryo_fail(err, CRYO_E_INVALID,
                         "jepa: embed %d must be a multiple of 6 and of head_dim %d", j->embed, j->head_dim);
    if (j->depth < 1 || j->depth > 24 || j->mlp_ratio < 1 || j->mlp_ratio > 16)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: depth 1..24 and mlp_ratio 1..16");
    return CRYO_OK;
}

static void jp(struct cryo_nn_param *t, size_t *n, size_t *off, const char *name, int init, int decay,
               int64_t fan_in, int ndim, int64_t s0, int64_t s1)
{
    struct cryo_nn_param *p = &t[*n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = s0;
    p->shape[1] = s1;
    p->count = (size_t)s0 * (size_t)(ndim > 1 ? s1 : 1);
    p->offset = *off;
    p->init = init;
    p->decay = decay;
    p->fan_in = fan_in;
    *off += p->count;
    (*n)++;
}

static int jepa_table(struct cryo_jepa *j, struct cryo_error *err)
{
    const struct cryo_jepa_config *c = &j->cfg;
    int64_t E = c->embed, F = c->features, M = (int64_t)c->mlp_ratio * E, V = j->V;
    size_t cap = 9 + (size_t)c->depth * JB_N; /* embed 2, mask 1, norm 2, proj 2, mae 2 */
    j->tab = cryo_alloc_array(cap, sizeof *j->tab, err);
    if (!j->tab)
        return CRYO_E_NOMEM;
    enum { K = CRYO_NN_INIT_KAIMING, B = CRYO_NN_INIT_BIAS, O = CRYO_NN_INIT_ONES, Z = CRYO_NN_INIT_ZEROS };
    size_t n = 0, off = 0;
    char nm[96];
    j->p_emb = n;
    jp(j->tab, &n, &off, "patch_embed.weight", K, 1, F, 2, E, F);
    jp(j->tab, &n, &off, "patch_embed.bias", B, 0, F, 1, E, 0);
    j->p_mask = n;
    jp(j->tab, &n, &off, "mask_token", CRYO_NN_INIT_TRUNC02, 0, 0, 1, E, 0);
    j->p_blk = n;
    for (int i = 0; i < c->depth; i++) {
#define JN(s) (snprintf(nm, sizeof nm, "blocks.%d.%s", i, s), nm)
        jp(j->tab, &n, &off, JN("norm1.weight"), O, 0, 0, 1, E, 0);
        jp(j->tab, &n, &off, JN("norm1.bias"), Z, 0, 0, 1, E, 0);
        jp(j->tab, &n, &off, JN("attn.qkv.weight"), K, 1, E, 2, 3 * E, E);
        jp(j->tab, &n, &off, JN("attn.qkv.bias"), B, 0, E, 1, 3 * E, 0);
        jp(j->tab, &n, &off, JN("attn.proj.weight"), K, 1, E, 2, E, E);
        jp(j->tab, &n, &off, JN("attn.proj.bias"), B, 0, E, 1, E, 0);
        jp(j->tab, &n, &off, JN("norm2.weight"), O, 0, 0, 1, E, 0);
        jp(j->tab, &n, &off, JN("norm2.bias"), Z, 0, 0, 1, E, 0);
        jp(j->tab, &n, &off, JN("mlp.fc1.weight"), K, 1, E, 2, M, E);
        jp(j->tab, &n, &off, JN("mlp.fc1.bias"), B, 0, E, 1, M, 0);
        jp(j->tab, &n, &off, JN("mlp.fc2.weight"), K, 1, M, 2, E, M);
        jp(j->tab, &n, &off, JN("mlp.fc2.bias"), B, 0, M, 1, E, 0);
#undef JN
    }
    j->p_norm = n;
    jp(j->tab, &n, &off, "norm.weight", O, 0, 0, 1, E, 0);
    jp(j->tab, &n, &off, "norm.bias", Z, 0, 0, 1, E, 0);
    j->p_proj = n;
    jp(j->tab, &n, &off, "proj.weight", K, 1, E, 2, E, E);
    jp(j->tab, &n, &off, "proj.bias", B, 0, E, 1, E, 0);
    j->p_mae = n;
    jp(j->tab, &n, &off, "mae.weight", K, 1, E, 2, V, E);
    jp(j->tab, &n, &off, "mae.bias", B, 0, E, 1, V, 0);
    j->ntab = n;
    j->nparams = off;
    return CRYO_OK;
}

static float *JP(struct cryo_jepa *j, size_t i) { return j->params + j->tab[i].offset; }
static float *JG(struct cryo_jepa *j, size_t i) { return j->grads ? j->grads + j->tab[i].offset : NULL; }

static void plan_all(struct cryo_jepa *j, struct plan *p, size_t cache_n, size_t bias_n)
{
    size_t T = (size_t)j->T, E = (size_t)j->cfg.embed, M = (size_t)j->M;
    int tr = j->training;
    j->feat = plan_take(p, T * (size_t)j->cfg.features);
    j->pos = plan_take(p, T * E);
    j->elin = plan_take(p, T * E);
    j->e = plan_take(p, T * E);
    j->z = plan_take(p, T * E);
    j->zbias = plan_take(p, bias_n);
    for (int i = 0; i < j->cfg.depth; i++) {
        struct jblock *b = &j->blk[i];
        b->p0 = j->p_blk + (size_t)i * JB_N;
        b->inp = i ? j->blk[i - 1].out : j->z;
        b->l1 = plan_take(p, T * E);
        b->x1 = plan_take(p, T * E);
        b->l2 = plan_take(p, T * E);
        b->h = plan_take(p, T * M);
        b->g = tr ? plan_take(p, T * M) : b->h;
        b->out = plan_take(p, T * E);
        b->l1m = tr ? plan_take(p, T) : NULL;
        b->l1r = tr ? plan_take(p, T) : NULL;
        b->l2m = tr ? plan_take(p, T) : NULL;
        b->l2r = tr ? plan_take(p, T) : NULL;
        b->cache = tr ? plan_take(p, cache_n) : NULL;
    }
    j->y = plan_take(p, T * E);
    j->ym = tr ? plan_take(p, T) : NULL;
    j->yr = tr ? plan_take(p, T) : NULL;
    j->pred = plan_take(p, T * E);
    j->vox = plan_take(p, T * (size_t)j->V);
}

static void plan_grads(struct cryo_jepa *j, struct plan *p)
{
    size_t T = (size_t)j->T, E = (size_t)j->cfg.embed;
    j->dfeat = plan_take(p, T * (size_t)j->cfg.features);
    j->gA = plan_take(p, T * E);
    j->gB = plan_take(p, T * E);
    j->G1 = plan_take(p, T * E);
    j->G2 = plan_take(p, T * E);
    j->dy = plan_take(p, T * E);
    j->F1 = plan_take(p, T * (size_t)j->M);
}

/* MAE's 1D sin-cos code per axis, concatenated z | y | x; host buffer T × E. */
static void fill_posenc(float *pos, const struct cryo_jepa *j)
{
    int E = j->cfg.embed, q = E / 6;
    size_t t = 0;
    for (int s = 0; s < j->n; s++)
        for (int z = 0; z < j->gd; z++)
            for (int y = 0; y < j->gh; y++)
                for (int x = 0; x < j->gw; x++, t++) {
                    int u[3] = {z, y, x};
                    float *r = pos + t * (size_t)E;
                    for (int a = 0; a < 3; a++)
                        for (int i = 0; i < q; i++) {
                            double w = pow(10000.0, -(double)i / q);
                            r[a * 2 * q + i] = (float)sin(u[a] * w);
                            r[a * 2 * q + q + i] = (float)cos(u[a] * w);
                        }
                }
}

int cryo_jepa_create(struct cryo_jepa **out, const struct cryo_jepa_config *c, struct cryo_nn_ctx *ctx,
                     int n, int gd, int gh, int gw, int training, struct cryo_error *err)
{
    *out = NULL;
    CRYO_TRY(cryo_jepa_config_check(c, err));
    int g = gd > gh ? gd : gh;
    g = g > gw ? g : gw;
    if (n < 1 || gd < 1 || gh < 1 || gw < 1 || g > 16)
        return cryo_fail(err, CRYO_E_INVALID,
                         "jepa: token grid %dx%dx%d x %d: each side must be 1..16", gw, gh, gd, n);
    struct cryo_jepa *j = cryo_alloc_array(1, sizeof *j, err);
    if (!j)
        return CRYO_E_NOMEM;
    j->cfg = *c;
    j->ctx = ctx;
    j->n = n;
    j->gd = gd;
    j->gh = gh;
    j->gw = gw;
    j->training = training ? 1 : 0;
    j->T = (int64_t)n * gd * gh * gw;
    j->M = c->mlp_ratio * c->embed;
    j->V = c->patch * c->patch * c->patch * c->out_ch;
    /* one window over the whole token grid: global attention per tile */
    j->att.n = n;
    j->att.d = gd;
    j->att.h = gh;
    j->att.w = gw;
    j->att.c = c->embed;
    j->att.head_dim = c->head_dim;
    j->att.window = g < 2 ? 2 : (g + 1) / 2 * 2;
    j->att.shifted = 0;
    int rc = jepa_table(j, err);
    size_t cache_n = 0, bias_n = (size_t)(c->embed / c->head_dim);
    for (int k = 0; k < 3; k++)
        bias_n *= (size_t)(2 * j->att.window - 1);
    if (rc == 0 && training && (cache_n = cryo_nn_wmsa_cache_size(&j->att, err)) == 0)
        rc = err && err->status ? err->status : CRYO_E_INVALID;
    if (rc == 0 && !(j->blk = cryo_alloc_array((size_t)c->depth, sizeof *j->blk, err)))
        rc = CRYO_E_NOMEM;
    if (rc == 0 && !(j->hmask = cryo_alloc_array((size_t)j->T, sizeof *j->hmask, err)))
        rc = CRYO_E_NOMEM;
    struct plan p = {0};
    if (rc == 0) {
        plan_all(j, &p, cache_n, bias_n);
        j->nacts = p.max;
        if (!(j->params = cryo_nn_alloc(ctx, j->nparams, err)) || !(j->acts = cryo_nn_alloc(ctx, j->nacts, err)) ||
            !(j->rowmask = cryo_nn_alloc(ctx, (size_t)j->T, err)))
            rc = CRYO_E_NOMEM;
    }
    if (rc == 0)
        rc = cryo_nn_fill(ctx, j->rowmask, 0.0f, (size_t)j->T, err); /* no token masked */
    if (rc == 0) {
        p.base = j->acts;
        p.off = p.max = 0;
        plan_all(j, &p, cache_n, bias_n);
        rc = cryo_nn_fill(ctx, j->zbias, 0.0f, bias_n, err);
    }
    if (rc == 0) {
        size_t E = (size_t)c->embed, T = (size_t)j->T;
        float *host = cryo_alloc_big(T * E * sizeof(float), err);
        if (!host)
            rc = CRYO_E_NOMEM;
        else {
            fill_posenc(host, j);
            rc = cryo_nn_upload(ctx, j->pos, host, T * E, err);
            cryo_free_big(host);
        }
    }
    if (rc == 0 && training) {
        struct plan g2 = {0};
        plan_grads(j, &g2);
        j->ngacts = g2.max;
        if (!(j->grads = cryo_nn_alloc(ctx, j->nparams, err)) || !(j->gacts = cryo_nn_alloc(ctx, j->ngacts, err)))
            rc = CRYO_E_NOMEM;
        if (rc == 0) {
            g2.base = j->gacts;
            g2.off = g2.max = 0;
            plan_grads(j, &g2);
            rc = cryo_jepa_zero_grad(j, err);
        }
    }
    if (rc < 0) {
        cryo_jepa_free(j);
        return rc;
    }
    *out = j;
    return CRYO_OK;
}

void cryo_jepa_free(struct cryo_jepa *j)
{
    if (!j)
        return;
    cryo_nn_free(j->ctx, j->params);
    cryo_nn_free(j->ctx, j->grads);
    cryo_nn_free(j->ctx, j->acts);
    cryo_nn_free(j->ctx, j->gacts);
    cryo_nn_free(j->ctx, j->rowmask);
    free(j->tab);
    free(j->blk);
    free(j->hmask);
    free(j);
}

const struct cryo_jepa_config *cryo_jepa_get_config(const struct cryo_jepa *j) { return &j->cfg; }
const struct cryo_nn_param *cryo_jepa_params(const struct cryo_jepa *j, size_t *n)
{
    *n = j->ntab;
    return j->tab;
}
size_t cryo_jepa_num_params(const struct cryo_jepa *j) { return j->nparams; }
float *cryo_jepa_param_data(struct cryo_jepa *j) { return j->params; }
float *cryo_jepa_grad_data(struct cryo_jepa *j) { return j->grads; }
size_t cryo_jepa_tokens(const struct cryo_jepa *j) { return (size_t)j->T; }
float *cryo_jepa_features(struct cryo_jepa *j) { return j->feat; }
const float *cryo_jepa_posenc(const struct cryo_jepa *j) { return j->pos; }
const float *cryo_jepa_embeddings(const struct cryo_jepa *j) { return j->e; }
const float *cryo_jepa_pred(const struct cryo_jepa *j) { return j->pred; }
const float *cryo_jepa_vox(const struct cryo_jepa *j) { return j->vox; }
const float *cryo_jepa_dfeatures(const struct cryo_jepa *j) { return j->dfeat; }

int cryo_jepa_zero_grad(struct cryo_jepa *j, struct cryo_error *err)
{
    if (!j->grads)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: built for inference: no gradients");
    return cryo_nn_fill(j->ctx, j->grads, 0.0f, j->nparams, err);
}

int cryo_jepa_init(struct cryo_jepa *j, uint64_t seed, struct cryo_error *err)
{
    float *host = cryo_alloc_big(j->nparams * sizeof(float), err);
    if (!host)
        return CRYO_E_NOMEM;
    cryo_nn_params_init(host, j->tab, j->ntab, seed);
    int rc = cryo_nn_upload(j->ctx, j->params, host, j->nparams, err);
    cryo_free_big(host);
    return rc;
}

int cryo_jepa_set_mask(struct cryo_jepa *j, const uint8_t *mask, struct cryo_error *err)
{
    if (!mask)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: no mask");
    for (int64_t t = 0; t < j->T; t++)
        j->hmask[t] = mask[t] ? 1.0f : 0.0f;
    return cryo_nn_upload(j->ctx, j->rowmask, j->hmask, (size_t)j->T, err);
}

int cryo_jepa_set_rowmask(struct cryo_jepa *j, const float *rowmask, struct cryo_error *err)
{
    if (!rowmask)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: no mask");
    return cryo_nn_copy(j->ctx, j->rowmask, rowmask, (size_t)j->T, err);
}

/* ---- forward ---------------------------------------------------------------------------- */

static int jblock_forward(struct cryo_jepa *j, struct jblock *b, struct cryo_error *err)
{
    struct cryo_nn_ctx *x = j->ctx;
    size_t p = b->p0;
    int64_t T = j->T;
    int E = j->cfg.embed;
    size_t nE = (size_t)T * (size_t)E;
    CRYO_TRY(cryo_nn_layernorm_forward(x, b->l1, b->l1m, b->l1r, b->inp, JP(j, p + JB_N1W),
                                       JP(j, p + JB_N1B), T, E, LN_EPS, err));
    CRYO_TRY(cryo_nn_wmsa_forward(x, b->x1, b->cache, b->l1, JP(j, p + JB_QKVW), JP(j, p + JB_QKVB),
                                  j->zbias, JP(j, p + JB_PROJW), JP(j, p + JB_PROJB), &j->att, err));
    CRYO_TRY(cryo_nn_add_forward(x, b->x1, b->x1, b->inp, nE, err));
    CRYO_TRY(cryo_nn_layernorm_forward(x, b->l2, b->l2m, b->l2r, b->x1, JP(j, p + JB_N2W),
                                       JP(j, p + JB_N2B), T, E, LN_EPS, err));
    CRYO_TRY(cryo_nn_linear_forward(x, b->h, b->l2, JP(j, p + JB_FC1W), JP(j, p + JB_FC1B), T, E, j->M, err));
    CRYO_TRY(cryo_nn_gelu_forward(x, b->g, b->h, (size_t)T * (size_t)j->M, err));
    CRYO_TRY(cryo_nn_linear_forward(x, b->out, b->g, JP(j, p + JB_FC2W), JP(j, p + JB_FC2B), T, j->M, E, err));
    return cryo_nn_add_forward(x, b->out, b->out, b->x1, nE, err);
}

int cryo_jepa_forward(struct cryo_jepa *j, struct cryo_error *err)
{
    struct cryo_nn_ctx *x = j->ctx;
    int64_t T = j->T;
    int E = j->cfg.embed;
    size_t nE = (size_t)T * (size_t)E;
    CRYO_TRY(cryo_nn_linear_forward(x, j->elin, j->feat, JP(j, j->p_emb), JP(j, j->p_emb + 1), T,
                                    j->cfg.features, E, err));
    CRYO_TRY(cryo_nn_add_forward(x, j->e, j->elin, j->pos, nE, err));
    CRYO_TRY(cryo_nn_copy(x, j->z, j->e, nE, err));
    CRYO_TRY(cryo_nn_mask_rows(x, j->z, j->rowmask, JP(j, j->p_mask), j->pos, T, E, err));
    for (int i = 0; i < j->cfg.depth; i++)
        CRYO_TRY(jblock_forward(j, &j->blk[i], err));
    const float *last = j->blk[j->cfg.depth - 1].out;
    CRYO_TRY(cryo_nn_layernorm_forward(x, j->y, j->ym, j->yr, last, JP(j, j->p_norm), JP(j, j->p_norm + 1),
                                       T, E, LN_EPS, err));
    CRYO_TRY(cryo_nn_linear_forward(x, j->pred, j->y, JP(j, j->p_proj), JP(j, j->p_proj + 1), T, E, E, err));
    return cryo_nn_linear_forward(x, j->vox, j->y, JP(j, j->p_mae), JP(j, j->p_mae + 1), T, E, j->V, err);
}

/* ---- backward --------------------------------------------------------------------------- */

static int jblock_backward(struct cryo_jepa *j, struct jblock *b, float *dinp, const float *dout,
                           struct cryo_error *err)
{
    struct cryo_nn_ctx *x = j->ctx;
    size_t p = b->p0;
    int64_t T = j->T;
    int E = j->cfg.embed, M = j->M;
    size_t nE = (size_t)T * (size_t)E;
    CRYO_TRY(cryo_nn_linear_backward(x, j->F1, JG(j, p + JB_FC2W), JG(j, p + JB_FC2B), dout, b->g,
                                     JP(j, p + JB_FC2W), T, M, E, err));
    CRYO_TRY(cryo_nn_gelu_backward(x, j->F1, j->F1, b->h, (size_t)T * (size_t)M, err));
    CRYO_TRY(cryo_nn_linear_backward(x, j->G1, JG(j, p + JB_FC1W), JG(j, p + JB_FC1B), j->F1, b->l2,
                                     JP(j, p + JB_FC1W), T, E, M, err));
    CRYO_TRY(cryo_nn_layernorm_backward(x, j->G2, JG(j, p + JB_N2W), JG(j, p + JB_N2B), j->G1, b->x1,
                                        JP(j, p + JB_N2W), b->l2m, b->l2r, T, E, err));
    CRYO_TRY(cryo_nn_copy(x, dinp, dout, nE, err));
    CRYO_TRY(cryo_nn_accumulate(x, dinp, j->G2, nE, err)); /* dinp = d x1 */
    CRYO_TRY(cryo_nn_wmsa_backward(x, j->G1, JG(j, p + JB_QKVW), JG(j, p + JB_QKVB), NULL,
                                   JG(j, p + JB_PROJW), JG(j, p + JB_PROJB), dinp, b->l1, b->cache,
                                   JP(j, p + JB_QKVW), j->zbias, JP(j, p + JB_PROJW), &j->att, err));
    CRYO_TRY(cryo_nn_layernorm_backward(x, j->G2, JG(j, p + JB_N1W), JG(j, p + JB_N1B), j->G1, b->inp,
                                        JP(j, p + JB_N1W), b->l1m, b->l1r, T, E, err));
    return cryo_nn_accumulate(x, dinp, j->G2, nE, err);
}

int cryo_jepa_backward(struct cryo_jepa *j, const float *dpred, const float *dvox, struct cryo_error *err)
{
    if (!j->training)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: built for inference: no backward");
    if (!dpred && !dvox)
        return cryo_fail(err, CRYO_E_INVALID, "jepa: backward needs dpred or dvox");
    struct cryo_nn_ctx *x = j->ctx;
    int64_t T = j->T;
    int E = j->cfg.embed;
    size_t nE = (size_t)T * (size_t)E;
    if (dpred)
        CRYO_TRY(cryo_nn_linear_backward(x, j->dy, JG(j, j->p_proj), JG(j, j->p_proj + 1), dpred, j->y,
                                         JP(j, j->p_proj), T, E, E, err));
    if (dvox) {
        float *d = dpred ? j->G1 : j->dy;
        CRYO_TRY(cryo_nn_linear_backward(x, d, JG(j, j->p_mae), JG(j, j->p_mae + 1), dvox, j->y,
                                         JP(j, j->p_mae), T, E, j->V, err));
        if (dpred)
            CRYO_TRY(cryo_nn_accumulate(x, j->dy, j->G1, nE, err));
    }
    const float *last = j->blk[j->cfg.depth - 1].out;
    CRYO_TRY(cryo_nn_layernorm_backward(x, j->gA, JG(j, j->p_norm), JG(j, j->p_norm + 1), j->dy, last,
                                        JP(j, j->p_norm), j->ym, j->yr, T, E, err));
    float *g = j->gA;
    for (int i = j->cfg.depth - 1; i >= 0; i--) {
        float *other = g == j->gA ? j->gB : j->gA;
        CRYO_TRY(jblock_backward(j, &j->blk[i], other, g, err));
        g = other;
    }
    /* g = dz: masked rows feed the mask token, the others the patch embedding */
    CRYO_TRY(cryo_nn_mask_rows_backward(x, JG(j, j->p_mask), g, j->rowmask, T, E, err));
    return cryo_nn_linear_backward(x, j->dfeat, JG(j, j->p_emb), JG(j, j->p_emb + 1), g, j->feat,
                                   JP(j, j->p_emb), T, j->cfg.features, E, err);
}
