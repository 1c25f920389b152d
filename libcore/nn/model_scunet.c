/* model_scunet.c — SCUNet-3D built on the layer API: arenas, forward, backward.
 *
 * The idea is llm.c's: the shapes are fixed when the model is built, so every buffer the
 * forward and backward need is planned once (a bump allocator run twice: a counting pass
 * with no memory, then the real pass on one allocation) and the passes themselves never
 * allocate. Everything goes through the layer calls and the context, so the CUDA backend
 * runs the same code.
 *
 * Activation arena: per level the skip tensor, the decoder sums and upsampled tensors; per
 * block its output and (training) everything its backward needs. In inference mode a
 * block's internal buffers come from a region rewound after each block, so the blocks of
 * the whole network share it.
 * Gradient arena (training only): per level the skip gradient and two block-boundary
 * buffers used ping-pong, plus one shared block scratch.
 */
#include "model_impl.h"
#include "cryolvm/mem.h"
#include "cryolvm/nn_layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LN_EPS 1e-5f
#define FRN_EPS 1e-6f

struct sc_block {
    int level, C, hc, mlp;
    float drop;            /* drop-path rate of this block */
    float *mask1, *mask2;  /* host, n each: drop-path factors of the last stochastic forward */
    int dropped;           /* 1 if the last forward applied drop-path */
    size_t p0; /* first entry in the parameter table */
    int64_t T;
    struct cryo_nn_conv3d c11, c3;
    struct cryo_nn_wmsa att;
    const float *inp;
    /* activations (T × channels given) */
    float *x1;             /* T × C   conv1_1 output */
    float *a, *b;          /* T × hc  split halves */
    float *c1, *f1, *rs1;  /* T × hc conv, T × hc FRN, N × hc FRN rstd */
    float *c2, *f2, *rs2;  /* same for the second conv; f2 then becomes a + f2 */
    float *l1, *l1m, *l1r; /* T × hc LN1, T mean, T rstd */
    float *t1;             /* T × hc   b + WMSA(l1) */
    float *cache;          /* attention cache */
    float *l2, *l2m, *l2r; /* T × hc LN2 */
    float *g1, *g2;        /* T × mlp  fc1 output, GELU output */
    float *t2;             /* T × hc   t1 + fc2(g2) */
    float *cat;            /* T × C    concat(a + f2, t2) */
    float *out;            /* T × C    inp + conv1_2(cat) */
};

struct cryo_scunet {
    struct cryo_scunet_config cfg;
    struct cryo_nn_ctx *ctx;
    int n, training, L;
    int enc_only; /* encoder and bottleneck only: output = bottleneck features */
    uint64_t *rng; /* non-NULL: stochastic (drop-path) mode */
    int prof;                          /* time layer calls by kind */
    double prof_s[CRYO_SCUNET_PROF_KINDS];
    long prof_n[CRYO_SCUNET_PROF_KINDS];
    float *masks;  /* host, 2·n per block */
    int dd[CRYO_SCUNET_MAX_LEVELS + 1], hh[CRYO_SCUNET_MAX_LEVELS + 1], ww[CRYO_SCUNET_MAX_LEVELS + 1];
    int64_t T[CRYO_SCUNET_MAX_LEVELS + 1];
    int C[CRYO_SCUNET_MAX_LEVELS + 1];

    struct cryo_nn_param *tab;
    size_t ntab, nparams;
    struct sc_layout lay;
    float *params, *grads;

    float *acts, *gacts;
    size_t nacts, ngacts;

    struct sc_block *blk;
    int nblk;
    int enc0[CRYO_SCUNET_MAX_LEVELS], body0, dec0[CRYO_SCUNET_MAX_LEVELS]; /* first block */

    struct cryo_nn_conv3d head, tail, down[CRYO_SCUNET_MAX_LEVELS], up[CRYO_SCUNET_MAX_LEVELS];

    float *x0;                                   /* T0 × in_ch */
    float *skip[CRYO_SCUNET_MAX_LEVELS + 1];     /* T_l × C_l: head output, down outputs */
    float *u[CRYO_SCUNET_MAX_LEVELS];            /* T_{l+1} × C_{l+1}: y + skip[l+1] */
    float *upo[CRYO_SCUNET_MAX_LEVELS];          /* T_l × C_l: transposed conv output */
    float *v;                                    /* T0 × C0: y + skip[0] */
    float *out;                                  /* T0 × out_ch */

    /* gradient arena */
    float *dskip[CRYO_SCUNET_MAX_LEVELS + 1], *gA[CRYO_SCUNET_MAX_LEVELS + 1],
        *gB[CRYO_SCUNET_MAX_LEVELS + 1];
    float *G1, *H1, *H2, *H3, *H4, *F1; /* block scratch: T×C, 4 × T×hc, T×mlp */
};

/* ---- planning ------------------------------------------------------------------------- */


static float *P(struct cryo_scunet *m, size_t i) { return m->params + m->tab[i].offset; }
static float *G(struct cryo_scunet *m, size_t i) { return m->grads ? m->grads + m->tab[i].offset : NULL; }

static void conv_geom(struct cryo_nn_conv3d *g, int n, int d, int h, int w, int cin, int cout,
                      int k, int s, int p, int bias)
{
    g->n = n;
    g->d = d;
    g->h = h;
    g->w = w;
    g->cin = cin;
    g->cout = cout;
    g->k = k;
    g->stride = s;
    g->pad = p;
    g->bias = bias;
}

/* Geometry of every block and layer (no memory). */
static int setup_blocks(struct cryo_scunet *m, struct cryo_error *err)
{
    const struct cryo_scunet_config *c = &m->cfg;
    int L = m->L;
    int stages = m->enc_only ? L + 1 : 2 * L + 1;
    m->nblk = stages * c->depth;
    m->blk = cryo_alloc_array((size_t)m->nblk, sizeof *m->blk, err);
    if (!m->blk)
        return CRYO_E_NOMEM;
    int k = 0;
    for (int pass = 0; pass < stages; pass++) {
        /* execution order: enc 0..L-1, body, dec L-1..0 */
        int level, stage_first_param;
        if (pass < L) {
            level = pass;
            m->enc0[level] = k;
            stage_first_param = (int)m->lay.enc[level];
        } else if (pass == L) {
            level = L;
            m->body0 = k;
            stage_first_param = (int)m->lay.body;
        } else {
            level = 2 * L - pass;
            m->dec0[level] = k;
            stage_first_param = (int)m->lay.dec[level];
        }
        for (int i = 0; i < c->depth; i++, k++) {
            struct sc_block *b = &m->blk[k];
            b->level = level;
            b->C = m->C[level];
            b->hc = b->C / 2;
            b->mlp = c->mlp_ratio * b->hc;
            b->p0 = (size_t)stage_first_param + (size_t)i * SC_NPARAM;
            b->T = m->T[level];
            int d = m->dd[level], h = m->hh[level], w = m->ww[level];
            conv_geom(&b->c11, m->n, d, h, w, b->C, b->C, 1, 1, 0, 1);
            conv_geom(&b->c3, m->n, d, h, w, b->hc, b->hc, 3, 1, 1, 0);
            b->att.n = m->n;
            b->att.d = d;
            b->att.h = h;
            b->att.w = w;
            b->att.c = b->hc;
            b->att.head_dim = c->head_dim;
            b->att.window = c->window;
            b->att.shifted = i % 2;
        }
    }
    /* drop-path rates: linspace(0, rate, K) over the K blocks of the whole network */
    int K = (2 * L + 1) * c->depth;
    for (int i = 0; i < m->nblk; i++)
        m->blk[i].drop = K > 1 ? (float)(c->drop_path * i / (K - 1)) : 0.0f;
    m->masks = cryo_alloc_array((size_t)m->nblk * 2, (size_t)m->n * sizeof(float), err);
    if (!m->masks)
        return CRYO_E_NOMEM;
    for (int i = 0; i < m->nblk; i++) {
        m->blk[i].mask1 = m->masks + (size_t)(2 * i) * (size_t)m->n;
        m->blk[i].mask2 = m->masks + (size_t)(2 * i + 1) * (size_t)m->n;
    }
    conv_geom(&m->head, m->n, m->dd[0], m->hh[0], m->ww[0], c->in_ch, m->C[0], 3, 1, 1, 0);
    conv_geom(&m->tail, m->n, m->dd[0], m->hh[0], m->ww[0], m->C[0], c->out_ch, 3, 1, 1, 0);
    for (int l = 0; l < L; l++) {
        conv_geom(&m->down[l], m->n, m->dd[l], m->hh[l], m->ww[l], m->C[l], m->C[l + 1], 2, 2, 0, 0);
        conv_geom(&m->up[l], m->n, m->dd[l + 1], m->hh[l + 1], m->ww[l + 1], m->C[l + 1], m->C[l], 2, 2, 0, 0);
    }
    return CRYO_OK;
}

/* Block buffers. Persistent (out, and in training everything) come first; in inference the
 * internals are taken after `mark` and the planner is rewound there afterwards. */
static void plan_block(struct cryo_scunet *m, struct sc_block *b, struct plan *p, size_t cache_n)
{
    size_t T = (size_t)b->T, C = (size_t)b->C, hc = (size_t)b->hc, M = (size_t)b->mlp;
    int tr = m->training;
    b->out = plan_take(p, T * C);
    size_t mark = p->off;
    b->x1 = plan_take(p, T * C);
    b->a = plan_take(p, T * hc);
    b->b = plan_take(p, T * hc);
    b->c1 = plan_take(p, T * hc);
    b->f1 = plan_take(p, T * hc);
    b->c2 = plan_take(p, T * hc);
    b->f2 = plan_take(p, T * hc);
    b->l1 = plan_take(p, T * hc);
    b->t1 = plan_take(p, T * hc);
    b->l2 = plan_take(p, T * hc);
    b->g1 = plan_take(p, T * M);
    b->g2 = tr ? plan_take(p, T * M) : b->g1; /* inference: GELU in place */
    b->t2 = plan_take(p, T * hc);
    b->cat = plan_take(p, T * C);
    if (tr) {
        b->rs1 = plan_take(p, (size_t)m->n * hc);
        b->rs2 = plan_take(p, (size_t)m->n * hc);
        b->l1m = plan_take(p, T);
        b->l1r = plan_take(p, T);
        b->l2m = plan_take(p, T);
        b->l2r = plan_take(p, T);
        b->cache = plan_take(p, cache_n);
    } else {
        b->rs1 = b->rs2 = b->l1m = b->l1r = b->l2m = b->l2r = b->cache = NULL;
        p->off = mark;
    }
}

static int plan_acts(struct cryo_scunet *m, struct plan *p, struct cryo_error *err)
{
    int L = m->L;
    size_t cin = (size_t)m->cfg.in_ch;
    m->x0 = plan_take(p, (size_t)m->T[0] * cin);
    for (int l = 0; l <= L; l++)
        m->skip[l] = plan_take(p, (size_t)m->T[l] * (size_t)m->C[l]);
    for (int l = 0; l < L && !m->enc_only; l++) {
        m->u[l] = plan_take(p, (size_t)m->T[l + 1] * (size_t)m->C[l + 1]);
        m->upo[l] = plan_take(p, (size_t)m->T[l] * (size_t)m->C[l]);
    }
    if (!m->enc_only) {
        m->v = plan_take(p, (size_t)m->T[0] * (size_t)m->C[0]);
        m->out = plan_take(p, (size_t)m->T[0] * (size_t)m->cfg.out_ch);
    }
    for (int k = 0; k < m->nblk; k++) {
        struct sc_block *b = &m->blk[k];
        size_t cache_n = 0;
        if (m->training) {
            cache_n = cryo_nn_wmsa_cache_size(&b->att, err);
            if (cache_n == 0)
                return err && err->status ? err->status : cryo_fail(err, CRYO_E_INVALID, "attention cache size 0");
        }
        plan_block(m, b, p, cache_n);
    }
    /* block inputs: first block of a stage reads the stage input, the others the previous */
    for (int l = 0; l < L; l++)
        m->blk[m->enc0[l]].inp = m->skip[l];
    m->blk[m->body0].inp = m->skip[L];
    for (int l = 0; l < L && !m->enc_only; l++)
        m->blk[m->dec0[l]].inp = m->upo[l];
    for (int k = 0; k < m->nblk; k++)
        if (k % m->cfg.depth)
            m->blk[k].inp = m->blk[k - 1].out;
    if (m->enc_only)
        m->out = m->blk[m->body0 + m->cfg.depth - 1].out;
    return CRYO_OK;
}

static void plan_grads(struct cryo_scunet *m, struct plan *p)
{
    size_t maxC = 0, maxH = 0, maxM = 0;
    for (int l = 0; l <= m->L; l++) {
        size_t n = (size_t)m->T[l] * (size_t)m->C[l];
        m->dskip[l] = plan_take(p, n);
        m->gA[l] = plan_take(p, n);
        m->gB[l] = plan_take(p, n);
        if (n > maxC)
            maxC = n;
        if (n / 2 > maxH)
            maxH = n / 2;
        if (n / 2 * (size_t)m->cfg.mlp_ratio > maxM)
            maxM = n / 2 * (size_t)m->cfg.mlp_ratio;
    }
    m->G1 = plan_take(p, maxC);
    m->H1 = plan_take(p, maxH);
    m->H2 = plan_take(p, maxH);
    m->H3 = plan_take(p, maxH);
    m->H4 = plan_take(p, maxH);
    m->F1 = plan_take(p, maxM);
}

static int create_impl(struct cryo_scunet **out, const struct cryo_scunet_config *c,
                       struct cryo_nn_ctx *ctx, int n, int d, int h, int w, int training,
                       int enc_only, struct cryo_error *err)
{
    *out = NULL;
    CRYO_TRY(cryo_scunet_config_check(c, err));
    int q = 1 << c->levels;
    if (n < 1 || d < q || h < q || w < q || d % q || h % q || w % q)
        return cryo_fail(err, CRYO_E_INVALID,
                         "box %dx%dx%d is not a multiple of %d (the network downsamples %d times)",
                         w, h, d, q, c->levels);
    /* Bound the token count so that every T × channels product below fits easily. */
    size_t T0;
    CRYO_TRY(cryo_count4(n, d, h, w, &T0, err));
    if (T0 > ((size_t)1 << 34) / (size_t)c->width / (size_t)c->mlp_ratio)
        return cryo_fail(err, CRYO_E_INVALID, "box %dx%dx%d x %d is too large for one model", w, h,
                         d, n);
    struct cryo_scunet *m = cryo_alloc_array(1, sizeof *m, err);
    if (!m)
        return CRYO_E_NOMEM;
    m->cfg = *c;
    m->ctx = ctx;
    m->n = n;
    m->training = training ? 1 : 0;
    m->enc_only = enc_only;
    m->L = c->levels;
    /* level l halves the grid and doubles the width; levels <= CRYO_SCUNET_MAX_LEVELS was
     * validated with the config (the second bound is for the compiler's array checks) */
    for (int l = 0, dl = d, hl = h, wl = w, cl = c->width; l <= m->L && l <= CRYO_SCUNET_MAX_LEVELS;
         l++, dl /= 2, hl /= 2, wl /= 2, cl *= 2) {
        m->dd[l] = dl;
        m->hh[l] = hl;
        m->ww[l] = wl;
        m->T[l] = (int64_t)n * dl * hl * wl;
        m->C[l] = cl;
    }
    int rc;
    if ((rc = scunet_table(c, &m->tab, &m->ntab, &m->nparams, &m->lay, err)) < 0)
        goto fail;
    if ((rc = setup_blocks(m, err)) < 0)
        goto fail;
    struct plan p = {0};
    if ((rc = plan_acts(m, &p, err)) < 0)
        goto fail;
    m->nacts = p.max;
    rc = CRYO_E_NOMEM;
    if (!(m->params = cryo_nn_alloc(ctx, m->nparams, err)))
        goto fail;
    if (!(m->acts = cryo_nn_alloc(ctx, m->nacts, err)))
        goto fail;
    p.base = m->acts;
    p.off = p.max = 0;
    if ((rc = plan_acts(m, &p, err)) < 0)
        goto fail;
    if (m->training) {
        rc = CRYO_E_NOMEM;
        if (!(m->grads = cryo_nn_alloc(ctx, m->nparams, err)))
            goto fail;
        struct plan g = {0};
        plan_grads(m, &g);
        m->ngacts = g.max;
        if (!(m->gacts = cryo_nn_alloc(ctx, m->ngacts, err)))
            goto fail;
        g.base = m->gacts;
        g.off = g.max = 0;
        plan_grads(m, &g);
        if ((rc = cryo_scunet_zero_grad(m, err)) < 0)
            goto fail;
    }
    *out = m;
    return CRYO_OK;
fail:
    cryo_scunet_free(m);
    return rc;
}

int cryo_scunet_create(struct cryo_scunet **out, const struct cryo_scunet_config *c,
                       struct cryo_nn_ctx *ctx, int n, int d, int h, int w, int training,
                       struct cryo_error *err)
{
    return create_impl(out, c, ctx, n, d, h, w, training, 0, err);
}

int cryo_scunet_create_encoder(struct cryo_scunet **out, const struct cryo_scunet_config *c,
                               struct cryo_nn_ctx *ctx, int n, int d, int h, int w, int training,
                               struct cryo_error *err)
{
    return create_impl(out, c, ctx, n, d, h, w, training, 1, err);
}

void cryo_scunet_free(struct cryo_scunet *m)
{
    if (!m)
        return;
    cryo_nn_free(m->ctx, m->params);
    cryo_nn_free(m->ctx, m->grads);
    cryo_nn_free(m->ctx, m->acts);
    cryo_nn_free(m->ctx, m->gacts);
    free(m->tab);
    free(m->blk);
    free(m->masks);
    free(m);
}

const struct cryo_scunet_config *cryo_scunet_config(const struct cryo_scunet *m) { return &m->cfg; }
const struct cryo_nn_param *cryo_scunet_params(const struct cryo_scunet *m, size_t *n)
{
    *n = m->ntab;
    return m->tab;
}
size_t cryo_scunet_num_params(const struct cryo_scunet *m) { return m->nparams; }
float *cryo_scunet_param_data(struct cryo_scunet *m) { return m->params; }
float *cryo_scunet_grad_data(struct cryo_scunet *m) { return m->grads; }
size_t cryo_scunet_activation_bytes(const struct cryo_scunet *m)
{
    return (m->nacts + m->ngacts) * sizeof(float);
}
float *cryo_scunet_input(struct cryo_scunet *m) { return m->x0; }
const float *cryo_scunet_output(const struct cryo_scunet *m) { return m->out; }
size_t cryo_scunet_input_count(const struct cryo_scunet *m) { return (size_t)m->T[0] * (size_t)m->cfg.in_ch; }
size_t cryo_scunet_output_count(const struct cryo_scunet *m)
{
    if (m->enc_only)
        return (size_t)m->T[m->L] * (size_t)m->C[m->L];
    return (size_t)m->T[0] * (size_t)m->cfg.out_ch;
}
struct cryo_nn_ctx *cryo_scunet_ctx(const struct cryo_scunet *m) { return m->ctx; }

void cryo_scunet_set_stochastic(struct cryo_scunet *m, uint64_t *rng) { m->rng = rng; }

void cryo_scunet_profile(struct cryo_scunet *m, int on)
{
    m->prof = on ? 1 : 0;
    memset(m->prof_s, 0, sizeof m->prof_s);
    memset(m->prof_n, 0, sizeof m->prof_n);
}

static const char *const prof_names[CRYO_SCUNET_PROF_KINDS] = {
    "conv (3D, transposed, 1x1x1)", "linear (MLP)", "norm (LayerNorm, FRN)", "GELU",
    "window attention", "glue (add, split, concat, copy, drop-path)"};

void cryo_scunet_profile_report(const struct cryo_scunet *m, char *buf, size_t cap)
{
    double tot = 0;
    for (int k = 0; k < CRYO_SCUNET_PROF_KINDS; k++)
        tot += m->prof_s[k];
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < CRYO_SCUNET_PROF_KINDS && used < cap; k++) {
        int w = snprintf(buf + used, cap - used, "%-44s %8.1f ms %5.1f %% (%ld calls)\n", prof_names[k],
                         1e3 * m->prof_s[k], tot > 0 ? 100 * m->prof_s[k] / tot : 0.0, m->prof_n[k]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int cryo_scunet_zero_grad(struct cryo_scunet *m, struct cryo_error *err)
{
    if (!m->grads)
        return cryo_fail(err, CRYO_E_INVALID, "model was built for inference: no gradients");
    return cryo_nn_fill(m->ctx, m->grads, 0.0f, m->nparams, err);
}

int cryo_scunet_init(struct cryo_scunet *m, uint64_t seed, struct cryo_error *err)
{
    float *host = cryo_alloc_big(m->nparams * sizeof(float), err);
    if (!host)
        return CRYO_E_NOMEM;
    cryo_nn_params_init(host, m->tab, m->ntab, seed);
    int rc = cryo_nn_upload(m->ctx, m->params, host, m->nparams, err);
    cryo_free_big(host);
    return rc;
}


/* Optional per-kind timing of the layer calls (cryo_scunet_profile): each call is followed
 * by a device sync only when profiling, so the normal path pays nothing. */
static double prof_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define PROF(m, k, call)                                                   \
    do {                                                                   \
        double t0_ = (m)->prof ? prof_now() : 0.0;                         \
        int s_ = (call);                                                   \
        if (s_ < 0)                                                        \
            return s_;                                                     \
        if ((m)->prof) {                                                   \
            (void)cryo_nn_sync((m)->ctx, NULL);                            \
            (m)->prof_s[k] += prof_now() - t0_;                            \
            (m)->prof_n[k]++;                                              \
        }                                                                  \
    } while (0)

/* ---- forward -------------------------------------------------------------------------- */

static int block_forward(struct cryo_scunet *m, struct sc_block *b, struct cryo_error *err)
{
    struct cryo_nn_ctx *x = m->ctx;
    size_t p = b->p0;
    int64_t T = b->T;
    int hc = b->hc, N = m->n;
    int64_t S = T / N;
    size_t nh = (size_t)T * (size_t)hc;
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, b->x1, b->inp, P(m, p + SC_W11), P(m, p + SC_B11), &b->c11, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_split_forward(x, b->a, b->b, b->x1, T, hc, hc, err));
    /* convolution half: a + FRN(conv(FRN(conv(a)))) */
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, b->c1, b->a, P(m, p + SC_WC1), NULL, &b->c3, err));
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_frn_forward(x, b->f1, b->rs1, b->c1, P(m, p + SC_G1), P(m, p + SC_BE1),
                                 P(m, p + SC_TAU1), N, S, hc, FRN_EPS, err));
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, b->c2, b->f1, P(m, p + SC_WC2), NULL, &b->c3, err));
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_frn_forward(x, b->f2, b->rs2, b->c2, P(m, p + SC_G2), P(m, p + SC_BE2),
                                 P(m, p + SC_TAU2), N, S, hc, FRN_EPS, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_add_forward(x, b->f2, b->f2, b->a, nh, err));
    /* transformer half: b + WMSA(LN(b)), then + MLP(LN(.)) */
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_layernorm_forward(x, b->l1, b->l1m, b->l1r, b->b, P(m, p + SC_LN1W),
                                       P(m, p + SC_LN1B), T, hc, LN_EPS, err));
    PROF(m, CRYO_SCUNET_PROF_WMSA, cryo_nn_wmsa_forward(x, b->t1, b->cache, b->l1, P(m, p + SC_QKVW), P(m, p + SC_QKVB),
                                  P(m, p + SC_RELB), P(m, p + SC_PROJW), P(m, p + SC_PROJB), &b->att,
                                  err));
    b->dropped = m->rng && m->training && b->drop > 0;
    if (b->dropped)
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_droppath_forward(x, b->t1, b->mask1, b->t1, N, (size_t)S * (size_t)hc, b->drop,
                                          m->rng, 1, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_add_forward(x, b->t1, b->t1, b->b, nh, err));
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_layernorm_forward(x, b->l2, b->l2m, b->l2r, b->t1, P(m, p + SC_LN2W),
                                       P(m, p + SC_LN2B), T, hc, LN_EPS, err));
    PROF(m, CRYO_SCUNET_PROF_LINEAR, cryo_nn_linear_forward(x, b->g1, b->l2, P(m, p + SC_FC1W), P(m, p + SC_FC1B), T, hc,
                                    b->mlp, err));
    PROF(m, CRYO_SCUNET_PROF_GELU, cryo_nn_gelu_forward(x, b->g2, b->g1, (size_t)T * (size_t)b->mlp, err));
    PROF(m, CRYO_SCUNET_PROF_LINEAR, cryo_nn_linear_forward(x, b->t2, b->g2, P(m, p + SC_FC2W), P(m, p + SC_FC2B), T,
                                    b->mlp, hc, err));
    if (b->dropped)
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_droppath_forward(x, b->t2, b->mask2, b->t2, N, (size_t)S * (size_t)hc, b->drop,
                                          m->rng, 1, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_add_forward(x, b->t2, b->t2, b->t1, nh, err));
    /* fuse */
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_concat_forward(x, b->cat, b->f2, b->t2, T, hc, hc, err));
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, b->out, b->cat, P(m, p + SC_W12), P(m, p + SC_B12), &b->c11, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_add_forward(x, b->out, b->out, b->inp, (size_t)T * (size_t)b->C, err));
    return CRYO_OK;
}

static int stage_forward(struct cryo_scunet *m, int first, struct cryo_error *err)
{
    for (int i = 0; i < m->cfg.depth; i++)
        CRYO_TRY(block_forward(m, &m->blk[first + i], err));
    return CRYO_OK;
}

int cryo_scunet_forward(struct cryo_scunet *m, struct cryo_error *err)
{
    struct cryo_nn_ctx *x = m->ctx;
    int L = m->L, D = m->cfg.depth;
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, m->skip[0], m->x0, P(m, m->lay.head), NULL, &m->head, err));
    for (int l = 0; l < L; l++) {
        CRYO_TRY(stage_forward(m, m->enc0[l], err));
        PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, m->skip[l + 1], m->blk[m->enc0[l] + D - 1].out,
                                        P(m, m->lay.down[l]), NULL, &m->down[l], err));
    }
    CRYO_TRY(stage_forward(m, m->body0, err));
    if (m->enc_only)
        return CRYO_OK;
    const float *y = m->blk[m->body0 + D - 1].out;
    for (int l = L - 1; l >= 0; l--) {
        size_t n = (size_t)m->T[l + 1] * (size_t)m->C[l + 1];
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_add_forward(x, m->u[l], y, m->skip[l + 1], n, err));
        PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_convt3d_forward(x, m->upo[l], m->u[l], P(m, m->lay.up[l]), NULL, &m->up[l], err));
        CRYO_TRY(stage_forward(m, m->dec0[l], err));
        y = m->blk[m->dec0[l] + D - 1].out;
    }
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_add_forward(x, m->v, y, m->skip[0], (size_t)m->T[0] * (size_t)m->C[0], err));
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_forward(x, m->out, m->v, P(m, m->lay.tail), NULL, &m->tail, err));
    return CRYO_OK;
}

/* ---- backward ------------------------------------------------------------------------- */

/* dinp (overwritten) = ∂loss/∂inp of the block given dout = ∂loss/∂out; parameter
 * gradients accumulated. Uses the scratch G1, H1..H4, F1. dinp must not alias dout. */
static int block_backward(struct cryo_scunet *m, struct sc_block *b, float *dinp, const float *dout,
                          struct cryo_error *err)
{
    struct cryo_nn_ctx *x = m->ctx;
    size_t p = b->p0;
    int64_t T = b->T;
    int hc = b->hc, N = m->n, M = b->mlp;
    int64_t S = T / N;
    size_t nh = (size_t)T * (size_t)hc;
    /* out = inp + conv1_2(cat) */
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, m->G1, G(m, p + SC_W12), G(m, p + SC_B12), dout, b->cat,
                                     P(m, p + SC_W12), &b->c11, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_concat_backward(x, m->H1, m->H2, m->G1, T, hc, hc, err)); /* H1 = d(a+f2), H2 = dt2 */
    /* transformer half, from dt2 (H2) back to db; drop-path masks scale the branches */
    const float *dbranch = m->H2;
    if (b->dropped) {
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_droppath_backward(x, m->H3, m->H2, b->mask2, N, (size_t)S * (size_t)hc, err));
        dbranch = m->H3;
    }
    PROF(m, CRYO_SCUNET_PROF_LINEAR, cryo_nn_linear_backward(x, m->F1, G(m, p + SC_FC2W), G(m, p + SC_FC2B), dbranch, b->g2,
                                     P(m, p + SC_FC2W), T, M, hc, err));
    PROF(m, CRYO_SCUNET_PROF_GELU, cryo_nn_gelu_backward(x, m->F1, m->F1, b->g1, (size_t)T * (size_t)M, err));
    PROF(m, CRYO_SCUNET_PROF_LINEAR, cryo_nn_linear_backward(x, m->H3, G(m, p + SC_FC1W), G(m, p + SC_FC1B), m->F1, b->l2,
                                     P(m, p + SC_FC1W), T, hc, M, err));
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_layernorm_backward(x, m->H4, G(m, p + SC_LN2W), G(m, p + SC_LN2B), m->H3,
                                        b->t1, P(m, p + SC_LN2W), b->l2m, b->l2r, T, hc, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_accumulate(x, m->H2, m->H4, nh, err)); /* H2 = dt1 */
    dbranch = m->H2;
    if (b->dropped) {
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_droppath_backward(x, m->H4, m->H2, b->mask1, N, (size_t)S * (size_t)hc, err));
        dbranch = m->H4;
    }
    PROF(m, CRYO_SCUNET_PROF_WMSA, cryo_nn_wmsa_backward(x, m->H3, G(m, p + SC_QKVW), G(m, p + SC_QKVB), G(m, p + SC_RELB),
                                   G(m, p + SC_PROJW), G(m, p + SC_PROJB), dbranch, b->l1, b->cache,
                                   P(m, p + SC_QKVW), P(m, p + SC_RELB), P(m, p + SC_PROJW), &b->att,
                                   err));
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_layernorm_backward(x, m->H4, G(m, p + SC_LN1W), G(m, p + SC_LN1B), m->H3,
                                        b->b, P(m, p + SC_LN1W), b->l1m, b->l1r, T, hc, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_accumulate(x, m->H2, m->H4, nh, err)); /* H2 = db */
    /* convolution half, from H1 back to da */
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_frn_backward(x, m->H3, G(m, p + SC_G2), G(m, p + SC_BE2), G(m, p + SC_TAU2),
                                  m->H1, b->c2, P(m, p + SC_G2), P(m, p + SC_BE2), P(m, p + SC_TAU2),
                                  b->rs2, N, S, hc, err));
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, m->H4, G(m, p + SC_WC2), NULL, m->H3, b->f1,
                                     P(m, p + SC_WC2), &b->c3, err));
    PROF(m, CRYO_SCUNET_PROF_NORM, cryo_nn_frn_backward(x, m->H3, G(m, p + SC_G1), G(m, p + SC_BE1), G(m, p + SC_TAU1),
                                  m->H4, b->c1, P(m, p + SC_G1), P(m, p + SC_BE1), P(m, p + SC_TAU1),
                                  b->rs1, N, S, hc, err));
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, m->H4, G(m, p + SC_WC1), NULL, m->H3, b->a,
                                     P(m, p + SC_WC1), &b->c3, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_accumulate(x, m->H1, m->H4, nh, err)); /* H1 = da */
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_split_backward(x, m->G1, m->H1, m->H2, T, hc, hc, err)); /* G1 = dx1 */
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, dinp, G(m, p + SC_W11), G(m, p + SC_B11), m->G1, b->inp,
                                     P(m, p + SC_W11), &b->c11, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_accumulate(x, dinp, dout, (size_t)T * (size_t)b->C, err));
    return CRYO_OK;
}

/* Backward through a stage; *g is the gradient at the stage output in gA/gB of its level
 * and comes back as the gradient at the stage input (in the other buffer or the same). */
static int stage_backward(struct cryo_scunet *m, int first, float **g, struct cryo_error *err)
{
    for (int i = m->cfg.depth - 1; i >= 0; i--) {
        struct sc_block *b = &m->blk[first + i];
        float *other = *g == m->gA[b->level] ? m->gB[b->level] : m->gA[b->level];
        CRYO_TRY(block_backward(m, b, other, *g, err));
        *g = other;
    }
    return CRYO_OK;
}

int cryo_scunet_backward(struct cryo_scunet *m, const float *dout, struct cryo_error *err)
{
    if (!m->training)
        return cryo_fail(err, CRYO_E_INVALID, "model was built for inference: no backward");
    struct cryo_nn_ctx *x = m->ctx;
    int L = m->L, D = m->cfg.depth;
    float *g;
    if (m->enc_only) {
        /* no decoder: the skip gradients start from zero (the full network copies them) */
        for (int l = 0; l < L; l++)
            PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_fill(x, m->dskip[l], 0.0f, (size_t)m->T[l] * (size_t)m->C[l], err));
        g = (float *)dout; /* stage_backward writes only into gA/gB, never into *g */
        CRYO_TRY(stage_backward(m, m->body0, &g, err));
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_copy(x, m->dskip[L], g, (size_t)m->T[L] * (size_t)m->C[L], err));
        goto encoder;
    }
    /* tail and the last skip */
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, m->gA[0], G(m, m->lay.tail), NULL, dout, m->v,
                                     P(m, m->lay.tail), &m->tail, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_copy(x, m->dskip[0], m->gA[0], (size_t)m->T[0] * (size_t)m->C[0], err));
    g = m->gA[0];
    for (int l = 0; l < L; l++) {
        CRYO_TRY(stage_backward(m, m->dec0[l], &g, err));
        size_t n = (size_t)m->T[l + 1] * (size_t)m->C[l + 1];
        PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_convt3d_backward(x, m->gA[l + 1], G(m, m->lay.up[l]), NULL, g, m->u[l],
                                          P(m, m->lay.up[l]), &m->up[l], err));
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_copy(x, m->dskip[l + 1], m->gA[l + 1], n, err));
        g = m->gA[l + 1];
    }
    CRYO_TRY(stage_backward(m, m->body0, &g, err));
    PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_accumulate(x, m->dskip[L], g, (size_t)m->T[L] * (size_t)m->C[L], err));
encoder:
    for (int l = L - 1; l >= 0; l--) {
        g = m->gA[l];
        PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, g, G(m, m->lay.down[l]), NULL, m->dskip[l + 1],
                                         m->blk[m->enc0[l] + D - 1].out, P(m, m->lay.down[l]),
                                         &m->down[l], err));
        CRYO_TRY(stage_backward(m, m->enc0[l], &g, err));
        PROF(m, CRYO_SCUNET_PROF_GLUE, cryo_nn_accumulate(x, m->dskip[l], g, (size_t)m->T[l] * (size_t)m->C[l], err));
    }
    PROF(m, CRYO_SCUNET_PROF_CONV, cryo_nn_conv3d_backward(x, NULL, G(m, m->lay.head), NULL, m->dskip[0], m->x0,
                                   P(m, m->lay.head), &m->head, err));
    return CRYO_OK;
}
