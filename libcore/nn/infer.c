/* infer.c — a SCUNet-3D over a whole map: tiles, skip, batch, blend (nn_infer.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_infer.h"
#include "cryolvm/nn_train.h"

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

static double budget(const struct cryo_infer_opts *o)
{
    return o->max_bytes > 0 ? o->max_bytes : 0.8 * physical_bytes();
}

/* Build the model for n boxes of b[3] (x, y, z), refuse it if its activations exceed the
 * budget, then load the weights. */
static int build_model(struct cryo_scunet **m, struct cryo_nn_ctx *ctx, const struct cryo_scunet_config *c,
                       const struct cryo_safetensors *w, int n, const int64_t b[3], double budget,
                       struct cryo_error *err)
{
    CRYO_TRY(cryo_scunet_create(m, c, ctx, n, (int)b[2], (int)b[1], (int)b[0], 0, err));
    double need = (double)cryo_scunet_activation_bytes(*m);
    if (budget > 0 && need > budget) {
        cryo_scunet_free(*m);
        *m = NULL;
        return cryo_fail(err, CRYO_E_NOMEM,
                         "%d x %lldx%lldx%lld voxels need %.1f GiB of activations, more than the %.1f GiB "
                         "allowed; use smaller tiles or batches", n, (long long)b[0], (long long)b[1],
                         (long long)b[2], need / 1073741824.0, budget / 1073741824.0);
    }
    int rc = cryo_scunet_load(*m, w, err);
    if (rc < 0) {
        cryo_scunet_free(*m);
        *m = NULL;
    }
    return rc;
}

/* dst (b[0] × b[1] × b[2], x fastest) = src around `start`, reflected outside the map;
 * returns the largest value copied. */
static float fill_box(float *dst, const float *src, const int64_t n[3], const int64_t start[3],
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
    CRYO_TRY(build_model(&m, ctx, c, w, 1, b, budget(o), err));
    size_t cnt = (size_t)b[0] * (size_t)b[1] * (size_t)b[2];
    float *stage = cryo_alloc_big(cnt * sizeof(float), err);
    int rc = stage ? CRYO_OK : CRYO_E_NOMEM;
    if (rc == 0) {
        fill_box(stage, src, n, zero, b);
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

/* Add the `used` outputs of one pass, each times its blending weight, into acc. */
static void accumulate(float *acc, const int64_t n[3], const float *y, const int64_t b[3],
                       const int64_t (*starts)[3], int used, const float *wt[3])
{
    size_t tile = (size_t)b[0] * (size_t)b[1] * (size_t)b[2];
    for (int s = 0; s < used; s++) {
        const int64_t *st = starts[s];
        const float *ys = y + (size_t)s * tile;
        for (int64_t k = 0; k < b[2]; k++) {
            int64_t z = st[2] + k;
            if (z < 0 || z >= n[2])
                continue;
            for (int64_t j = 0; j < b[1]; j++) {
                int64_t yy = st[1] + j;
                if (yy < 0 || yy >= n[1])
                    continue;
                float wzy = wt[2][k] * wt[1][j];
                const float *row = ys + ((size_t)k * (size_t)b[1] + (size_t)j) * (size_t)b[0];
                float *out = acc + ((size_t)z * (size_t)n[1] + (size_t)yy) * (size_t)n[0];
                int64_t i0 = st[0] < 0 ? -st[0] : 0, i1 = st[0] + b[0] > n[0] ? n[0] - st[0] : b[0];
                for (int64_t i = i0; i < i1; i++)
                    out[st[0] + i] += wzy * wt[0][i] * row[i];
            }
        }
    }
}

static int run_tiled(float *dst, const float *src, const int64_t n[3], struct cryo_nn_ctx *ctx,
                     const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                     const struct cryo_infer_opts *o, const int64_t stride[3], struct cryo_infer_report *rep,
                     struct cryo_error *err)
{
    struct cryo_tiling t;
    CRYO_TRY(cryo_tiling_plan(&t, n, o->tile, stride, err));
    const int64_t *b = o->tile;
    int64_t total = cryo_tiling_total(&t);
    int batch = (int64_t)o->batch < total ? o->batch : (int)total;
    struct cryo_scunet *m = NULL;
    CRYO_TRY(build_model(&m, ctx, c, w, batch, b, budget(o), err));
    size_t tile = (size_t)b[0] * (size_t)b[1] * (size_t)b[2], cnt = tile * (size_t)batch;
    float *stage = cryo_alloc_big(cnt * sizeof(float), err);
    float *wt[3] = {NULL, NULL, NULL}, *wsum[3] = {NULL, NULL, NULL};
    int64_t(*starts)[3] = cryo_alloc_array((size_t)batch, sizeof *starts, err);
    int rc = stage && starts ? CRYO_OK : CRYO_E_NOMEM;
    for (int d = 0; d < 3 && rc == 0; d++) {
        wt[d] = cryo_alloc_array((size_t)b[d], sizeof(float), err);
        wsum[d] = cryo_alloc_array((size_t)n[d], sizeof(float), err);
        if (!wt[d] || !wsum[d]) {
            rc = CRYO_E_NOMEM;
            break;
        }
        for (int64_t i = 0; i < b[d]; i++)
            wt[d][i] = (float)cryo_blend_weight1(i, b[d], o->blend);
        /* sum(w) along this axis over every tile of the axis, skipped or not */
        for (int64_t k = 0; k < t.count[d]; k++)
            for (int64_t i = 0; i < b[d]; i++) {
                int64_t x = k * t.stride[d] - t.margin[d] + i;
                if (x >= 0 && x < n[d])
                    wsum[d][x] += wt[d][i];
            }
    }
    if (rc == 0)
        memset(dst, 0, (size_t)n[0] * (size_t)n[1] * (size_t)n[2] * sizeof(float));
    double flops_pass = 0;
    if (rc == 0)
        rc = cryo_scunet_flops(c, batch, (int)b[2], (int)b[1], (int)b[0], &flops_pass, err);
    int used = 0;
    for (int64_t idx = 0; idx < total && rc == 0; idx++) {
        cryo_tiling_start(&t, idx, starts[used]);
        float mx = fill_box(stage + (size_t)used * tile, src, n, starts[used], b);
        if (o->skip_empty && mx <= o->skip_max)
            rep->skipped++;
        else
            used++;
        if (used == batch || (idx == total - 1 && used > 0)) {
            if (used < batch) /* a last, partial batch: the free slots compute zeros */
                memset(stage + (size_t)used * tile, 0, (size_t)(batch - used) * tile * sizeof(float));
            rc = cryo_nn_upload(ctx, cryo_scunet_input(m), stage, cnt, err);
            if (rc == 0)
                rc = cryo_scunet_forward(m, err);
            if (rc == 0)
                rc = cryo_nn_download(ctx, stage, cryo_scunet_output(m), cnt, err);
            if (rc == 0)
                accumulate(dst, n, stage, b, (const int64_t(*)[3])starts, used, (const float **)wt);
            rep->passes++;
            used = 0;
            if (o->progress)
                o->progress(o->user, idx + 1, total);
        } else if (idx == total - 1 && o->progress)
            o->progress(o->user, total, total);
    }
    if (rc == 0) {
        size_t i = 0;
        for (int64_t k = 0; k < n[2]; k++)
            for (int64_t j = 0; j < n[1]; j++) {
                float wzy = wsum[2][k] * wsum[1][j];
                for (int64_t x = 0; x < n[0]; x++, i++)
                    dst[i] /= wzy * wsum[0][x];
            }
        rep->whole = 0;
        rep->tiles = total;
        memcpy(rep->box, b, sizeof rep->box);
        rep->activation_bytes = (double)cryo_scunet_activation_bytes(m);
        rep->flops = flops_pass * (double)rep->passes;
    }
    for (int d = 0; d < 3; d++) {
        free(wt[d]);
        free(wsum[d]);
    }
    free(starts);
    cryo_free_big(stage);
    cryo_scunet_free(m);
    return rc;
}

int cryo_infer_run(struct cryo_volume *out, const struct cryo_volume *in, struct cryo_nn_ctx *ctx,
                   const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                   const struct cryo_infer_opts *o, struct cryo_infer_report *rep, struct cryo_error *err)
{
    struct cryo_infer_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    int whole = o->tile[0] == 0 && o->tile[1] == 0 && o->tile[2] == 0;
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
    int rc = whole || covers ? run_whole(res.data, in->data, n, ctx, c, w, o, rep, err)
                             : run_tiled(res.data, in->data, n, ctx, c, w, o, stride, rep, err);
    if (rc < 0) {
        cryo_volume_free(&res);
        return rc;
    }
    cryo_volume_move(out, &res);
    return CRYO_OK;
}
