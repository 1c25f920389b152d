/* cpu_conv.c — 3D convolution and transposed convolution on the CPU with oneDNN 2.6.
 *
 * Activations stay in the engine's channels-last layout (oneDNN "ndhwc"), which oneDNN's
 * brgconv AVX-512 kernels take directly, so no activation is ever reordered. Weights come
 * in PyTorch's layout ("oidhw" for Conv3d, "iodhw" for ConvTranspose3d) and are reordered
 * into whatever blocked layout the primitive asked for ("any") whenever they differ from
 * the ones last reordered (exact comparison with a kept copy: inference reorders once,
 * training once per step and direction).
 * Weight gradients are produced in the primitive's layout, reordered back to PyTorch's,
 * and added (parameter gradients accumulate, nn_layers.h).
 *
 * Precision BF16 (forward only, inference): a separate cache entry whose primitive takes
 * bfloat16 source and weights and writes float32 (oneDNN accumulates in float32 on its
 * AVX-512 BF16 / AMX kernels; the bias is added in float32). The float32 input is rounded
 * to bfloat16 by a oneDNN reorder into the workspace, behind the scratchpad; the weights
 * are rounded once by their (cached) reorder into the blocked layout. Backward passes
 * always use the float32 entry.
 *
 * Creating a oneDNN primitive takes milliseconds, so primitives, their memory objects and
 * their small weight buffers are cached per geometry in the context; per call we only set
 * data handles and execute. Scratchpads are in "user" mode and come from the context's
 * workspace, so oneDNN allocates nothing per call either.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cryolvm/mem.h"

/* Several layers of one network often share a geometry, hence a cache entry, but each has
 * its own weights: blocked copies are kept per weight pointer, a few per entry. */
#define WEI_SLOTS 8
struct cpu_wei_slot {
    const float *ptr;       /* the user's weight tensor */
    float *buf;             /* its reorder into the primitive's layout */
    float *seen;            /* the user weights `buf` was made from */
    unsigned long long used;
};

struct cpu_wei {            /* a weight-shaped tensor in a primitive's layout */
    dnnl_memory_t user;     /* PyTorch layout, handle set per call */
    dnnl_memory_t prim;     /* primitive layout, handle set per call (a slot's buf or `buf`) */
    dnnl_primitive_t reorder; /* user -> prim (forward, bwd data) or prim -> user (bwd weights);
                                 NULL when both layouts are the same */
    float *buf;             /* bwd weights: storage of the gradient in the primitive's layout */
    size_t bytes, prim_bytes; /* user and primitive layout sizes */
    struct cpu_wei_slot slot[WEI_SLOTS]; /* forward, bwd data */
    unsigned long long clock;
};

struct cpu_conv_entry {
    struct cpu_conv_entry *next;
    struct cryo_nn_conv3d g;
    int transposed;
    int bf16;               /* forward only: bfloat16 source and weights, float32 output */
    dnnl_memory_desc_t src_md, dst_md, wei_user_md, bias_md;
    dnnl_primitive_t src_cvt; /* bf16: float32 input -> bfloat16 copy (workspace) */
    dnnl_memory_t src_user;   /* bf16: the float32 input, handle set per call */
    size_t src_bf16_bytes;
    size_t scratch;         /* largest scratchpad of the primitives created so far */
    /* forward */
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd;
    dnnl_memory_t src, dst, bias, fwd_scr;
    struct cpu_wei fwd_w;
    /* backward data */
    dnnl_primitive_desc_t bwdd_pd;
    dnnl_primitive_t bwdd;
    dnnl_memory_t diff_src, diff_dst, bwdd_scr;
    struct cpu_wei bwdd_w;
    /* backward weights */
    dnnl_primitive_desc_t bwdw_pd;
    dnnl_primitive_t bwdw;
    dnnl_memory_t bw_src, bw_diff_dst, diff_bias, bwdw_scr;
    struct cpu_wei bwdw_w;
    float *wgrad;           /* weight gradient in PyTorch layout, before accumulation */
    float *bgrad;           /* bias gradient, before accumulation */
};

#define DNNL_TRY(what, call)                                                                  \
    do {                                                                                      \
        dnnl_status_t s_ = (call);                                                            \
        if (s_ != dnnl_success)                                                               \
            return cryo_fail(err, CRYO_E_DEVICE, "oneDNN %s failed (status %d) for %s %dx%dx%dx%d %d->%d k%d s%d p%d", \
                             what, (int)s_, e->transposed ? "convt3d" : "conv3d", e->g.n,     \
                             e->g.d, e->g.h, e->g.w, e->g.cin, e->g.cout, e->g.k,             \
                             e->g.stride, e->g.pad);                                          \
    } while (0)

static void wei_free(struct cpu_wei *w)
{
    if (w->user)
        dnnl_memory_destroy(w->user);
    if (w->prim)
        dnnl_memory_destroy(w->prim);
    if (w->reorder)
        dnnl_primitive_destroy(w->reorder);
    cryo_free_big(w->buf);
    for (int i = 0; i < WEI_SLOTS; i++) {
        cryo_free_big(w->slot[i].buf);
        free(w->slot[i].seen);
    }
    memset(w, 0, sizeof *w);
}

static void entry_free(struct cpu_conv_entry *e)
{
    dnnl_primitive_desc_t pds[] = {e->fwd_pd, e->bwdd_pd, e->bwdw_pd};
    dnnl_primitive_t prims[] = {e->fwd, e->bwdd, e->bwdw};
    dnnl_memory_t mems[] = {e->src, e->dst, e->bias, e->fwd_scr, e->diff_src, e->diff_dst,
                            e->bwdd_scr, e->bw_src, e->bw_diff_dst, e->diff_bias, e->bwdw_scr,
                            e->src_user};
    if (e->src_cvt)
        dnnl_primitive_destroy(e->src_cvt);
    for (size_t i = 0; i < sizeof pds / sizeof pds[0]; i++)
        if (pds[i])
            dnnl_primitive_desc_destroy(pds[i]);
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    wei_free(&e->fwd_w);
    wei_free(&e->bwdd_w);
    wei_free(&e->bwdw_w);
    free(e->wgrad);
    free(e->bgrad);
    free(e);
}

void cpu_conv_cache_free(struct cpu_state *st)
{
    while (st->convs) {
        struct cpu_conv_entry *e = st->convs;
        st->convs = e->next;
        entry_free(e);
    }
}

/* Memory object with no data yet (handle set per call). */
static dnnl_status_t mem_empty(dnnl_memory_t *m, const dnnl_memory_desc_t *md, dnnl_engine_t eng)
{
    return dnnl_memory_create(m, md, eng, DNNL_MEMORY_NONE);
}

/* A weight tensor in layout `prim_md`; to_prim: reorder direction user -> prim. */
static int wei_init(struct cpu_conv_entry *e, struct cpu_wei *w, struct cpu_state *st,
                    const dnnl_memory_desc_t *prim_md, int to_prim, struct cryo_error *err)
{
    DNNL_TRY("memory_create", mem_empty(&w->user, &e->wei_user_md, st->engine));
    if (dnnl_memory_desc_equal(prim_md, &e->wei_user_md))
        return CRYO_OK; /* use the user memory directly */
    w->bytes = dnnl_memory_desc_get_size(&e->wei_user_md);
    w->prim_bytes = dnnl_memory_desc_get_size(prim_md);
    if (!to_prim) {
        w->buf = cryo_alloc_big(w->prim_bytes, err);
        if (!w->buf)
            return CRYO_E_NOMEM;
    }
    DNNL_TRY("memory_create", dnnl_memory_create(&w->prim, prim_md, st->engine, to_prim ? DNNL_MEMORY_NONE : w->buf));
    dnnl_primitive_desc_t rpd;
    if (to_prim)
        DNNL_TRY("reorder", dnnl_reorder_primitive_desc_create(&rpd, &e->wei_user_md, st->engine,
                                                               prim_md, st->engine, NULL));
    else
        DNNL_TRY("reorder", dnnl_reorder_primitive_desc_create(&rpd, prim_md, st->engine,
                                                               &e->wei_user_md, st->engine, NULL));
    dnnl_status_t s = dnnl_primitive_create(&w->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    DNNL_TRY("primitive_create(reorder)", s);
    return CRYO_OK;
}

static int run(struct cpu_conv_entry *e, struct cpu_state *st, dnnl_primitive_t p, int nargs,
               const dnnl_exec_arg_t *args, struct cryo_error *err)
{
    DNNL_TRY("primitive_execute", dnnl_primitive_execute(p, st->stream, nargs, args));
    DNNL_TRY("stream_wait", dnnl_stream_wait(st->stream));
    return CRYO_OK;
}

/* The user weights in the primitive's layout (reordered if it differs); returns the memory
 * to pass as DNNL_ARG_WEIGHTS.
 * Unchanged weights (inference, or the backward of the step that ran the forward) need no
 * new reorder: an exact byte comparison with the copy the blocked weights were made from
 * is far cheaper than the reorder's parallel region, which on a busy machine waits for a
 * descheduled thread (median 12 ms per weight reorder measured under load). */
static int wei_in(struct cpu_conv_entry *e, struct cpu_state *st, struct cpu_wei *w,
                  const float *weight, dnnl_memory_t *use, struct cryo_error *err)
{
    DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(w->user, (void *)weight));
    if (!w->reorder) {
        *use = w->user;
        return CRYO_OK;
    }
    struct cpu_wei_slot *sl = NULL;
    for (int i = 0; i < WEI_SLOTS && !sl; i++)
        if (w->slot[i].ptr == weight)
            sl = &w->slot[i];
    int fresh = 0;
    if (!sl) { /* the least recently used (or an empty) slot */
        sl = &w->slot[0];
        for (int i = 1; i < WEI_SLOTS; i++)
            if (w->slot[i].used < sl->used)
                sl = &w->slot[i];
        if (!sl->buf) {
            sl->buf = cryo_alloc_big(w->prim_bytes, err);
            sl->seen = sl->buf ? malloc(w->bytes) : NULL;
            if (!sl->seen) {
                cryo_free_big(sl->buf);
                sl->buf = NULL;
                return cryo_fail(err, CRYO_E_NOMEM, "conv3d: no memory for a blocked weight copy");
            }
        }
        sl->ptr = weight;
        fresh = 1;
    }
    sl->used = ++w->clock;
    DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(w->prim, sl->buf));
    *use = w->prim;
    if (!fresh && memcmp(sl->seen, weight, w->bytes) == 0)
        return CRYO_OK;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, w->user}, {DNNL_ARG_TO, w->prim}};
    sl->ptr = NULL; /* until the reorder has succeeded */
    CRYO_TRY(run(e, st, w->reorder, 2, a, err));
    memcpy(sl->seen, weight, w->bytes);
    sl->ptr = weight;
    return CRYO_OK;
}

static size_t scratch_size(dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static int make_scratch(struct cpu_conv_entry *e, struct cpu_state *st, dnnl_primitive_desc_t pd,
                        dnnl_memory_t *m, struct cryo_error *err)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sz = scratch_size(pd);
    if (sz > e->scratch)
        e->scratch = sz;
    if (sz > 0)
        DNNL_TRY("memory_create", mem_empty(m, md, st->engine));
    return CRYO_OK;
}

static void conv_dims(const struct cryo_nn_conv3d *g, int transposed, dnnl_dims_t src,
                      dnnl_dims_t dst, dnnl_dims_t wei)
{
    int od, oh, ow;
    cryo_nn_conv3d_out_dims(g, transposed, &od, &oh, &ow, NULL);
    dnnl_dim_t s[5] = {g->n, g->cin, g->d, g->h, g->w}, d[5] = {g->n, g->cout, od, oh, ow},
               w[5] = {g->cout, g->cin, g->k, g->k, g->k};
    memcpy(src, s, sizeof s);
    memcpy(dst, d, sizeof d);
    memcpy(wei, w, sizeof w);
}

static int attr_user_scratch(dnnl_primitive_attr_t *attr, struct cpu_conv_entry *e,
                             struct cryo_error *err)
{
    DNNL_TRY("primitive_attr_create", dnnl_primitive_attr_create(attr));
    DNNL_TRY("set_scratchpad_mode", dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user));
    return CRYO_OK;
}

/* Build the forward primitive of a new entry. */
static int entry_init_fwd(struct cpu_conv_entry *e, struct cpu_state *st, struct cryo_error *err)
{
    dnnl_dims_t sd, dd, wd, bd = {e->g.cout};
    conv_dims(&e->g, e->transposed, sd, dd, wd);
    dnnl_dims_t strides = {e->g.stride, e->g.stride, e->g.stride},
                pad = {e->g.pad, e->g.pad, e->g.pad};
    dnnl_memory_desc_t wany;
    dnnl_data_type_t lo = e->bf16 ? dnnl_bf16 : dnnl_f32; /* src and weights as computed */
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&e->src_md, 5, sd, lo, dnnl_ndhwc));
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&e->dst_md, 5, dd, dnnl_f32, dnnl_ndhwc));
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&e->wei_user_md, 5, wd, dnnl_f32,
                                                              e->transposed ? dnnl_iodhw : dnnl_oidhw));
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&wany, 5, wd, lo, dnnl_format_tag_any));
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bd, dnnl_f32, dnnl_a));
    dnnl_convolution_desc_t cd;
    const dnnl_memory_desc_t *bmd = e->g.bias ? &e->bias_md : NULL;
    dnnl_prop_kind_t prop = e->bf16 ? dnnl_forward_inference : dnnl_forward_training;
    if (e->transposed)
        DNNL_TRY("deconvolution_forward_desc_init",
                 dnnl_deconvolution_forward_desc_init(&cd, prop, dnnl_deconvolution_direct,
                                                      &e->src_md, &wany, bmd, &e->dst_md, strides, pad, pad));
    else
        DNNL_TRY("convolution_forward_desc_init",
                 dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct,
                                                    &e->src_md, &wany, bmd, &e->dst_md, strides, pad, pad));
    dnnl_primitive_attr_t attr;
    CRYO_TRY(attr_user_scratch(&attr, e, err));
    dnnl_status_t s = dnnl_primitive_desc_create(&e->fwd_pd, &cd, attr, st->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    DNNL_TRY("primitive_desc_create(forward)", s);
    DNNL_TRY("primitive_create(forward)", dnnl_primitive_create(&e->fwd, e->fwd_pd));
    DNNL_TRY("memory_create", mem_empty(&e->src, &e->src_md, st->engine));
    DNNL_TRY("memory_create", mem_empty(&e->dst, &e->dst_md, st->engine));
    if (e->g.bias)
        DNNL_TRY("memory_create", mem_empty(&e->bias, &e->bias_md, st->engine));
    CRYO_TRY(make_scratch(e, st, e->fwd_pd, &e->fwd_scr, err));
    if (e->bf16) { /* the float32 input's reorder to bfloat16 */
        dnnl_memory_desc_t f32_md;
        DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&f32_md, 5, sd, dnnl_f32, dnnl_ndhwc));
        DNNL_TRY("memory_create", mem_empty(&e->src_user, &f32_md, st->engine));
        dnnl_primitive_desc_t rpd;
        DNNL_TRY("reorder", dnnl_reorder_primitive_desc_create(&rpd, &f32_md, st->engine, &e->src_md,
                                                               st->engine, NULL));
        s = dnnl_primitive_create(&e->src_cvt, rpd);
        dnnl_primitive_desc_destroy(rpd);
        DNNL_TRY("primitive_create(reorder)", s);
        e->src_bf16_bytes = dnnl_memory_desc_get_size(&e->src_md);
    }
    return wei_init(e, &e->fwd_w, st, dnnl_primitive_desc_query_md(e->fwd_pd, dnnl_query_weights_md, 0),
                    1, err);
}

static int entry_init_bwd_data(struct cpu_conv_entry *e, struct cpu_state *st,
                               struct cryo_error *err)
{
    dnnl_dims_t sd, dd, wd;
    conv_dims(&e->g, e->transposed, sd, dd, wd);
    dnnl_dims_t strides = {e->g.stride, e->g.stride, e->g.stride},
                pad = {e->g.pad, e->g.pad, e->g.pad};
    dnnl_memory_desc_t wany;
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&wany, 5, wd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t cd;
    if (e->transposed)
        DNNL_TRY("deconvolution_backward_data_desc_init",
                 dnnl_deconvolution_backward_data_desc_init(&cd, dnnl_deconvolution_direct, &e->src_md,
                                                            &wany, &e->dst_md, strides, pad, pad));
    else
        DNNL_TRY("convolution_backward_data_desc_init",
                 dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &e->src_md,
                                                          &wany, &e->dst_md, strides, pad, pad));
    dnnl_primitive_attr_t attr;
    CRYO_TRY(attr_user_scratch(&attr, e, err));
    dnnl_status_t s = dnnl_primitive_desc_create(&e->bwdd_pd, &cd, attr, st->engine, e->fwd_pd);
    dnnl_primitive_attr_destroy(attr);
    DNNL_TRY("primitive_desc_create(backward data)", s);
    DNNL_TRY("primitive_create(backward data)", dnnl_primitive_create(&e->bwdd, e->bwdd_pd));
    DNNL_TRY("memory_create", mem_empty(&e->diff_src, &e->src_md, st->engine));
    DNNL_TRY("memory_create", mem_empty(&e->diff_dst, &e->dst_md, st->engine));
    CRYO_TRY(make_scratch(e, st, e->bwdd_pd, &e->bwdd_scr, err));
    return wei_init(e, &e->bwdd_w, st, dnnl_primitive_desc_query_md(e->bwdd_pd, dnnl_query_weights_md, 0),
                    1, err);
}

static int entry_init_bwd_weights(struct cpu_conv_entry *e, struct cpu_state *st,
                                  struct cryo_error *err)
{
    dnnl_dims_t sd, dd, wd;
    conv_dims(&e->g, e->transposed, sd, dd, wd);
    dnnl_dims_t strides = {e->g.stride, e->g.stride, e->g.stride},
                pad = {e->g.pad, e->g.pad, e->g.pad};
    dnnl_memory_desc_t wany;
    DNNL_TRY("memory_desc_init", dnnl_memory_desc_init_by_tag(&wany, 5, wd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t cd;
    const dnnl_memory_desc_t *bmd = e->g.bias ? &e->bias_md : NULL;
    if (e->transposed)
        DNNL_TRY("deconvolution_backward_weights_desc_init",
                 dnnl_deconvolution_backward_weights_desc_init(&cd, dnnl_deconvolution_direct, &e->src_md,
                                                               &wany, bmd, &e->dst_md, strides, pad, pad));
    else
        DNNL_TRY("convolution_backward_weights_desc_init",
                 dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &e->src_md,
                                                             &wany, bmd, &e->dst_md, strides, pad, pad));
    dnnl_primitive_attr_t attr;
    CRYO_TRY(attr_user_scratch(&attr, e, err));
    dnnl_status_t s = dnnl_primitive_desc_create(&e->bwdw_pd, &cd, attr, st->engine, e->fwd_pd);
    dnnl_primitive_attr_destroy(attr);
    DNNL_TRY("primitive_desc_create(backward weights)", s);
    DNNL_TRY("primitive_create(backward weights)", dnnl_primitive_create(&e->bwdw, e->bwdw_pd));
    DNNL_TRY("memory_create", mem_empty(&e->bw_src, &e->src_md, st->engine));
    DNNL_TRY("memory_create", mem_empty(&e->bw_diff_dst, &e->dst_md, st->engine));
    CRYO_TRY(make_scratch(e, st, e->bwdw_pd, &e->bwdw_scr, err));
    size_t nw = dnnl_memory_desc_get_size(&e->wei_user_md) / sizeof(float);
    e->wgrad = cryo_alloc_array(nw, sizeof(float), err);
    if (!e->wgrad)
        return CRYO_E_NOMEM;
    if (e->g.bias) {
        e->bgrad = cryo_alloc_array((size_t)e->g.cout, sizeof(float), err);
        if (!e->bgrad)
            return CRYO_E_NOMEM;
        DNNL_TRY("memory_create", dnnl_memory_create(&e->diff_bias, &e->bias_md, st->engine, e->bgrad));
    }
    CRYO_TRY(wei_init(e, &e->bwdw_w, st,
                      dnnl_primitive_desc_query_md(e->bwdw_pd, dnnl_query_diff_weights_md, 0), 0, err));
    DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->bwdw_w.user, e->wgrad));
    return CRYO_OK;
}

static int entry_get(struct cryo_nn_ctx *ctx, const struct cryo_nn_conv3d *g, int transposed,
                     int bf16, struct cpu_conv_entry **out, struct cryo_error *err)
{
    struct cpu_state *st = cpu_state(ctx);
    for (struct cpu_conv_entry *e = st->convs; e; e = e->next)
        if (e->transposed == transposed && e->bf16 == bf16 && memcmp(&e->g, g, sizeof *g) == 0) {
            *out = e;
            return CRYO_OK;
        }
    struct cpu_conv_entry *e = cryo_alloc_array(1, sizeof *e, err);
    if (!e)
        return CRYO_E_NOMEM;
    e->g = *g;
    e->transposed = transposed;
    e->bf16 = bf16;
    int s = entry_init_fwd(e, st, err);
    if (s < 0) {
        entry_free(e);
        return s;
    }
    e->next = st->convs;
    st->convs = e;
    *out = e;
    return CRYO_OK;
}

static int set_scratch(struct cpu_conv_entry *e, dnnl_memory_t m, void *ws, struct cryo_error *err)
{
    if (m)
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(m, ws));
    return CRYO_OK;
}

static int conv_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                        const float *bias, const struct cryo_nn_conv3d *g, int transposed,
                        struct cryo_error *err)
{
    struct cpu_state *st = cpu_state(ctx);
    struct cpu_conv_entry *e;
    CRYO_TRY(entry_get(ctx, g, transposed, ctx->precision == CRYO_NN_PRECISION_BF16, &e, err));
    size_t scr = (e->scratch + 63) / 64 * 64;
    char *ws = cryo_nn_workspace(ctx, scr + e->src_bf16_bytes + 64, err);
    if (!ws)
        return CRYO_E_NOMEM;
    dnnl_memory_t wm;
    CRYO_TRY(wei_in(e, st, &e->fwd_w, weight, &wm, err));
    if (e->bf16) { /* input rounded to bfloat16 behind the scratchpad */
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->src_user, (void *)inp));
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->src, ws + scr));
        dnnl_exec_arg_t c[2] = {{DNNL_ARG_FROM, e->src_user}, {DNNL_ARG_TO, e->src}};
        CRYO_TRY(run(e, st, e->src_cvt, 2, c, err));
    } else
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->src, (void *)inp));
    DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->dst, out));
    CRYO_TRY(set_scratch(e, e->fwd_scr, ws, err));
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, e->dst}};
    int na = 3;
    if (e->fwd_scr)
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->fwd_scr};
    if (g->bias) {
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->bias, (void *)bias));
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    return run(e, st, e->fwd, na, a, err);
}

static int conv_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight,
                         const struct cryo_nn_conv3d *g, int transposed, struct cryo_error *err)
{
    struct cpu_state *st = cpu_state(ctx);
    struct cpu_conv_entry *e;
    CRYO_TRY(entry_get(ctx, g, transposed, 0, &e, err)); /* backward: always float32 */
    if (dinp && !e->bwdd)
        CRYO_TRY(entry_init_bwd_data(e, st, err));
    if ((dweight || dbias) && !e->bwdw)
        CRYO_TRY(entry_init_bwd_weights(e, st, err));
    void *ws = cryo_nn_workspace(ctx, e->scratch ? e->scratch : 64, err);
    if (!ws)
        return CRYO_E_NOMEM;
    if (dinp) {
        dnnl_memory_t wm;
        CRYO_TRY(wei_in(e, st, &e->bwdd_w, weight, &wm, err));
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->diff_src, dinp));
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->diff_dst, (void *)dout));
        CRYO_TRY(set_scratch(e, e->bwdd_scr, ws, err));
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, e->diff_dst}, {DNNL_ARG_WEIGHTS, wm},
                                {DNNL_ARG_DIFF_SRC, e->diff_src}};
        int na = 3;
        if (e->bwdd_scr)
            a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->bwdd_scr};
        CRYO_TRY(run(e, st, e->bwdd, na, a, err));
    }
    if (dweight || dbias) {
        struct cpu_wei *w = &e->bwdw_w;
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->bw_src, (void *)inp));
        DNNL_TRY("set_data_handle", dnnl_memory_set_data_handle(e->bw_diff_dst, (void *)dout));
        CRYO_TRY(set_scratch(e, e->bwdw_scr, ws, err));
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, e->bw_src}, {DNNL_ARG_DIFF_DST, e->bw_diff_dst},
                                {DNNL_ARG_DIFF_WEIGHTS, w->reorder ? w->prim : w->user}};
        int na = 3;
        if (e->bwdw_scr)
            a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->bwdw_scr};
        if (g->bias)
            a[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, e->diff_bias};
        CRYO_TRY(run(e, st, e->bwdw, na, a, err));
        if (w->reorder) {
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, w->prim}, {DNNL_ARG_TO, w->user}};
            CRYO_TRY(run(e, st, w->reorder, 2, r, err));
        }
        if (dweight) {
            size_t nw = (size_t)g->cout * g->cin * g->k * g->k * g->k;
            const float *wg = e->wgrad;
#pragma omp parallel for simd schedule(static) if (nw > (1 << 18))
            for (size_t i = 0; i < nw; i++)
                dweight[i] += wg[i];
        }
        if (dbias)
            for (int i = 0; i < g->cout; i++)
                dbias[i] += e->bgrad[i];
    }
    return CRYO_OK;
}

int cpu_conv3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                       const float *bias, const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    return conv_forward(ctx, out, inp, weight, bias, g, 0, err);
}

int cpu_conv3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const float *weight,
                        const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    return conv_backward(ctx, dinp, dweight, dbias, dout, inp, weight, g, 0, err);
}

int cpu_convt3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                        const float *bias, const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    return conv_forward(ctx, out, inp, weight, bias, g, 1, err);
}

int cpu_convt3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight,
                         const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    return conv_backward(ctx, dinp, dweight, dbias, dout, inp, weight, g, 1, err);
}
