/* infer.c — a SCUNet-3D over a whole map (nn_infer.h): options, checks, the whole-map pass;
 * the tiled mode is infer_tiled.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_infer.h"
#include "cryolvm/nn_train.h"
#include "nn/infer_priv.h"

void cryo_infer_opts_default(struct cryo_infer_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int d = 0; d < 3; d++) {
        o->tile[d] = 64;
        o->stride[d] = 48;
    }
    o->batch = 1;
    o->skip_empty = 1;
    o->skip_max = 0;
    o->blend = CRYO_BLEND_GAUSSIAN;
}

static double physical_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

double cryo_infer_budget(const struct cryo_infer_opts *o)
{
    return o->max_bytes > 0 ? o->max_bytes : 0.8 * physical_bytes();
}

int cryo_infer_build_model(struct cryo_scunet **m, struct cryo_nn_ctx *ctx, const struct cryo_scunet_config *c,
                           const struct cryo_safetensors *w, int n, const int64_t b[3], double budget, int share,
                           struct cryo_error *err)
{
    CRYO_TRY(cryo_scunet_create(m, c, ctx, n, (int)b[2], (int)b[1], (int)b[0], 0, err));
    double need = (double)cryo_scunet_activation_bytes(*m);
    if (budget > 0 && need * share > budget) {
        cryo_scunet_free(*m);
        *m = NULL;
        char each[64] = "";
        if (share > 1)
            snprintf(each, sizeof each, " on each of %d CPU contexts", share);
        return cryo_fail(err, CRYO_E_NOMEM,
                         "%d x %lldx%lldx%lld voxels need %.1f GiB of activations%s, more than the %.1f GiB "
                         "allowed; use smaller tiles or batches", n, (long long)b[0], (long long)b[1],
                         (long long)b[2], need / 1073741824.0, each, budget / 1073741824.0);
    }
    int rc = cryo_scunet_load(*m, w, err);
    if (rc < 0) {
        cryo_scunet_free(*m);
        *m = NULL;
    }
    return rc;
}

float cryo_infer_fill_box(float *dst, const float *src, const int64_t n[3], const int64_t start[3],
                          const int64_t b[3])
{
    float mx = -INFINITY;
    for (int64_t k = 0; k < b[2]; k++) {
        int64_t z = cryo_reflect_index(start[2] + k, n[2]);
        for (int64_t j = 0; j < b[1]; j++) {
            int64_t y = cryo_reflect_index(start[1] + j, n[1]);
            const float *row = src + ((size_t)z * (size_t)n[1] + (size_t)y) * (size_t)n[0];
            float *out = dst + ((size_t)k * (size_t)b[1] + (size_t)j) * (size_t)b[0];
            for (int64_t i = 0; i < b[0]; i++) {
                int64_t x = start[0] + i;
                float v = row[x >= 0 && x < n[0] ? x : cryo_reflect_index(x, n[0])];
                out[i] = v;
                mx = v > mx ? v : mx;
            }
        }
    }
    return mx;
}

static int check_args(const struct cryo_volume *in, const struct cryo_scunet_config *c,
                      const struct cryo_infer_opts *o, int whole, struct cryo_error *err)
{
    if (in->dtype != CRYO_DTYPE_F32 || in->c != 1 || cryo_volume_count(in) == 0)
        return cryo_fail(err, CRYO_E_INVALID, "inference needs a non-empty one-channel float32 volume");
    if (c->in_ch != 1 || c->out_ch != 1)
        return cryo_fail(err, CRYO_E_INVALID, "network has %d input and %d output channels; maps need 1 and 1",
                         c->in_ch, c->out_ch);
    if (o->batch < 1 || o->batch > 4096)
        return cryo_fail(err, CRYO_E_INVALID, "batch %d is not in 1..4096", o->batch);
    if (!isfinite(o->skip_max))
        return cryo_fail(err, CRYO_E_INVALID, "empty-tile threshold is not finite");
    if (in->nx > 65536 || in->ny > 65536 || in->nz > 65536)
        return cryo_fail(err, CRYO_E_INVALID, "box %lldx%lldx%lld is too large", (long long)in->nx,
                         (long long)in->ny, (long long)in->nz);
    if (whole)
        return CRYO_OK;
    int64_t q = (int64_t)1 << c->levels;
    for (int d = 0; d < 3; d++) {
        if (o->tile[d] < q || o->tile[d] % q || o->tile[d] > 4096)
            return cryo_fail(err, CRYO_E_INVALID, "tile %lld is not a multiple of %lld in %lld..4096 (the network "
                             "halves the box %d times)", (long long)o->tile[d], (long long)q, (long long)q, c->levels);
        if (o->stride[d] < 0 || o->stride[d] > o->tile[d])
            return cryo_fail(err, CRYO_E_INVALID, "stride %lld is not in 1..%lld (the tile)", (long long)o->stride[d],
                             (long long)o->tile[d]);
    }
    return CRYO_OK;
}

/* One pass over the padded map. */
static int run_whole(float *dst, const float *src, const int64_t n[3], struct cryo_nn_ctx *ctx,
                     const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                     const struct cryo_infer_opts *o, struct cryo_infer_report *rep, struct cryo_error *err)
{
    int64_t q = (int64_t)1 << c->levels, b[3], zero[3] = {0, 0, 0};
    for (int d = 0; d < 3; d++)
        b[d] = (n[d] + q - 1) / q * q;
    struct cryo_scunet *m = NULL;
    CRYO_TRY(cryo_infer_build_model(&m, ctx, c, w, 1, b, cryo_infer_budget(o), 1, err));
    size_t cnt = (size_t)b[0] * (size_t)b[1] * (size_t)b[2];
    float *stage = cryo_alloc_big(cnt * sizeof(float), err);
    int rc = stage ? CRYO_OK : CRYO_E_NOMEM;
    if (rc == 0) {
        cryo_infer_fill_box(stage, src, n, zero, b);
        rc = cryo_nn_upload(ctx, cryo_scunet_input(m), stage, cnt, err);
    }
    if (rc == 0)
        rc = cryo_scunet_forward(m, err);
    if (rc == 0)
        rc = cryo_nn_download(ctx, stage, cryo_scunet_output(m), cnt, err);
    if (rc == 0) {
        for (int64_t k = 0; k < n[2]; k++)
            for (int64_t j = 0; j < n[1]; j++)
                memcpy(dst + ((size_t)k * (size_t)n[1] + (size_t)j) * (size_t)n[0],
                       stage + ((size_t)k * (size_t)b[1] + (size_t)j) * (size_t)b[0], (size_t)n[0] * sizeof(float));
        rep->whole = 1;
        rep->contexts = 1;
        rep->tiles = 1;
        rep->passes = 1;
        memcpy(rep->box, b, sizeof rep->box);
        rep->activation_bytes = (double)cryo_scunet_activation_bytes(m);
        rc = cryo_scunet_flops(c, 1, (int)b[2], (int)b[1], (int)b[0], &rep->flops, err);
        if (o->progress)
            o->progress(o->user, 1, 1);
    }
    cryo_free_big(stage);
    cryo_scunet_free(m);
    return rc;
}

static int check_contexts(struct cryo_nn_ctx *const *ctxs, int nctx, struct cryo_error *err)
{
    if (!ctxs || nctx < 1 || nctx > CRYO_INFER_MAX_CONTEXTS)
        return cryo_fail(err, CRYO_E_INVALID, "inference needs 1 to %d compute contexts, not %d",
                         CRYO_INFER_MAX_CONTEXTS, ctxs ? nctx : 0);
    for (int i = 0; i < nctx; i++) {
        if (!ctxs[i])
            return cryo_fail(err, CRYO_E_INVALID, "compute context %d is NULL", i);
        for (int j = 0; j < i; j++)
            if (ctxs[j] == ctxs[i]) /* two threads would share it */
                return cryo_fail(err, CRYO_E_INVALID, "compute context %d is given twice (also as %d)", i, j);
    }
    return CRYO_OK;
}

int cryo_infer_run_multi(struct cryo_volume *out, const struct cryo_volume *in, struct cryo_nn_ctx *const *ctxs,
                         int nctx, const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                         const struct cryo_infer_opts *o, struct cryo_infer_report *rep, struct cryo_error *err)
{
    struct cryo_infer_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    int whole = o->tile[0] == 0 && o->tile[1] == 0 && o->tile[2] == 0;
    CRYO_TRY(check_contexts(ctxs, nctx, err));
    CRYO_TRY(cryo_scunet_config_check(c, err));
    CRYO_TRY(check_args(in, c, o, whole, err));
    int64_t n[3] = {in->nx, in->ny, in->nz}, q = (int64_t)1 << c->levels, stride[3];
    /* A tile that covers the padded map in one piece costs no more as the whole map. */
    int covers = 1;
    for (int d = 0; d < 3; d++) {
        stride[d] = o->stride[d] ? o->stride[d] : o->tile[d];
        covers &= o->tile[d] >= (n[d] + q - 1) / q * q;
    }
    struct cryo_volume res;
    cryo_volume_init(&res);
    CRYO_TRY(cryo_volume_alloc_like(&res, in, CRYO_DTYPE_F32, err));
    int rc = whole || covers ? run_whole(res.data, in->data, n, ctxs[0], c, w, o, rep, err)
                             : cryo_infer_tiled(res.data, in->data, n, ctxs, nctx, c, w, o, stride, rep, err);
    if (rc < 0) {
        cryo_volume_free(&res);
        return rc;
    }
    cryo_volume_move(out, &res);
    return CRYO_OK;
}

int cryo_infer_run(struct cryo_volume *out, const struct cryo_volume *in, struct cryo_nn_ctx *ctx,
                   const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                   const struct cryo_infer_opts *o, struct cryo_infer_report *rep, struct cryo_error *err)
{
    return cryo_infer_run_multi(out, in, &ctx, 1, c, w, o, rep, err);
}
