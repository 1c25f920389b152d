/* infer_tiled.c — tiled inference over one or several compute contexts (nn_infer.h).
 *
 * The plan: the tiles of patch.h in their order; the empty ones (input all <= skip_max)
 * are found first and dropped; the others form batches of `batch` consecutive tiles, batch j
 * being run tiles [j·batch, (j+1)·batch). With one context the batches run in order on the
 * calling thread. With several, one thread per context (its own model, its own copy of the
 * weights) takes the next batch from a shared counter, runs it into one of its two host
 * staging buffers and posts it; the batches are blended into the output strictly in batch
 * order, by whichever thread finds the next one ready, one blender at a time. So every
 * voxel adds the same products in the same order as with one context, and the output is
 * bit-identical whenever the contexts compute bit-identical tiles (contexts of one backend
 * with the same thread count do: oneDNN's and the engine's reductions depend only on it).
 * A worker whose two buffers both hold batches still waiting for an earlier one waits; the
 * earlier one is always being computed by another worker, which never waits once it has a
 * batch, so the run cannot deadlock. A failure stops every worker after its current batch.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryolvm/mem.h"
#include "nn/backend_impl.h"
#include "nn/infer_priv.h"

#define SLOTS 2 /* staging buffers per worker when there are several */

struct worker;

struct plan {
    /* fixed while the workers run */
    const float *src;
    const int64_t *n, *b;
    const struct cryo_tiling *t;
    const int64_t *run; /* indices of the tiles that run, in tiling order */
    int64_t nrun, total, nbatch;
    int batch;
    size_t tile; /* floats per tile */
    const float *wt[3];
    const struct cryo_scunet_config *c;
    const struct cryo_safetensors *w;
    const struct cryo_infer_opts *o;
    double budget;
    int ncpu, nworkers, bind;
    float *dst;
    struct worker *wk;
    /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int64_t next_take, next_blend, reported;
    int blending, failed, rc;
    int *ready; /* per batch: worker·SLOTS + slot holding its output, -1 until posted */
    struct cryo_error *err;
};

struct worker {
    struct plan *p;
    struct cryo_nn_ctx *ctx;
    int id, nslot;
    float *slot[SLOTS];
    int busy[SLOTS];
    int64_t (*fill_at)[3], (*blend_at)[3]; /* tile starts of the batch run, of the batch blended */
    struct cryo_scunet *m;
    struct cryo_error err;
    int64_t passes;
    double act;
};

/* Add the `used` outputs of one pass, each times its blending weight, into acc. */
static void accumulate(float *acc, const int64_t n[3], const float *y, const int64_t b[3],
                       const int64_t (*starts)[3], int used, const float *const wt[3])
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

/* The starts of batch j's tiles into at[]; returns how many it has. */
static int batch_tiles(const struct plan *p, int64_t j, int64_t (*at)[3])
{
    int64_t first = j * p->batch, left = p->nrun - first;
    int used = left < p->batch ? (int)left : p->batch;
    for (int u = 0; u < used; u++)
        cryo_tiling_start(p->t, p->run[first + u], at[u]);
    return used;
}

static int run_batch(struct worker *wk, int64_t j, float *stage)
{
    const struct plan *p = wk->p;
    int used = batch_tiles(p, j, wk->fill_at);
    for (int u = 0; u < used; u++)
        cryo_infer_fill_box(stage + (size_t)u * p->tile, p->src, p->n, wk->fill_at[u], p->b);
    if (used < p->batch) /* a last, partial batch: the free slots compute zeros */
        memset(stage + (size_t)used * p->tile, 0, (size_t)(p->batch - used) * p->tile * sizeof(float));
    size_t cnt = p->tile * (size_t)p->batch;
    CRYO_TRY(cryo_nn_upload(wk->ctx, cryo_scunet_input(wk->m), stage, cnt, &wk->err));
    CRYO_TRY(cryo_scunet_forward(wk->m, &wk->err));
    CRYO_TRY(cryo_nn_download(wk->ctx, stage, cryo_scunet_output(wk->m), cnt, &wk->err));
    wk->passes++;
    return CRYO_OK;
}

/* Blend every posted batch that is next in order (lock held; released while blending).
 * One blender at a time, so the progress callback is never called concurrently. */
static void blend_ready(struct plan *p, struct worker *self)
{
    while (!p->blending && !p->failed && p->next_blend < p->nbatch && p->ready[p->next_blend] >= 0) {
        int64_t j = p->next_blend;
        int r = p->ready[j];
        struct worker *owner = &p->wk[r / SLOTS];
        p->blending = 1;
        pthread_mutex_unlock(&p->lock);
        int used = batch_tiles(p, j, self->blend_at);
        accumulate(p->dst, p->n, owner->slot[r % SLOTS], p->b, (const int64_t(*)[3])self->blend_at, used, p->wt);
        /* as one context has always counted: through the batch's last tile, or all of them
         * after the last, partial batch */
        int64_t done = used < p->batch ? p->total : p->run[j * p->batch + used - 1] + 1;
        if (p->o->progress)
            p->o->progress(p->o->user, done, p->total);
        pthread_mutex_lock(&p->lock);
        p->reported = done;
        owner->busy[r % SLOTS] = 0;
        p->next_blend++;
        p->blending = 0;
        pthread_cond_broadcast(&p->cv);
    }
}

/* The first failure wins (lock held). */
static void record_failure(struct plan *p, struct worker *wk, int rc)
{
    if (!p->failed) {
        p->failed = 1;
        p->rc = rc;
        if (p->err)
            *p->err = wk->err;
        if (p->nworkers > 1) {
            char who[48];
            if (cryo_nn_ctx_device(wk->ctx) == CRYO_NN_DEVICE_CUDA)
                snprintf(who, sizeof who, "cuda:%d", wk->ctx->device_index);
            else
                snprintf(who, sizeof who, "context %d (cpu)", wk->id);
            cryo_error_prefix(p->err, who);
        }
    }
    pthread_cond_broadcast(&p->cv);
}

static int worker_setup(struct worker *wk)
{
    struct plan *p = wk->p;
    int share = cryo_nn_ctx_device(wk->ctx) == CRYO_NN_DEVICE_CPU ? p->ncpu : 1;
    CRYO_TRY(cryo_infer_build_model(&wk->m, wk->ctx, p->c, p->w, p->batch, p->b, p->budget, share, &wk->err));
    wk->act = (double)cryo_scunet_activation_bytes(wk->m);
    size_t bytes;
    CRYO_TRY(cryo_mul_size(p->tile * sizeof(float), (size_t)p->batch, &bytes, &wk->err));
    for (int s = 0; s < wk->nslot; s++)
        if (!(wk->slot[s] = cryo_alloc_big(bytes, &wk->err)))
            return CRYO_E_NOMEM;
    wk->fill_at = cryo_alloc_array((size_t)p->batch, sizeof *wk->fill_at, &wk->err);
    wk->blend_at = wk->fill_at ? cryo_alloc_array((size_t)p->batch, sizeof *wk->blend_at, &wk->err) : NULL;
    return wk->blend_at ? CRYO_OK : CRYO_E_NOMEM;
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct plan *p = wk->p;
    if (p->bind)
        cryo_nn_ctx_bind(wk->ctx);
    int rc = worker_setup(wk);
    pthread_mutex_lock(&p->lock);
    while (rc == CRYO_OK) {
        int s = -1;
        while (!p->failed && p->next_take < p->nbatch) {
            for (int k = 0; k < wk->nslot && s < 0; k++)
                if (!wk->busy[k])
                    s = k;
            if (s >= 0)
                break;
            pthread_cond_wait(&p->cv, &p->lock);
        }
        if (s < 0)
            break;
        int64_t j = p->next_take++;
        wk->busy[s] = 1;
        pthread_mutex_unlock(&p->lock);
        rc = run_batch(wk, j, wk->slot[s]);
        pthread_mutex_lock(&p->lock);
        if (rc == CRYO_OK) {
            p->ready[j] = wk->id * SLOTS + s;
            blend_ready(p, wk);
        }
    }
    if (rc < 0)
        record_failure(p, wk, rc);
    pthread_mutex_unlock(&p->lock);
    cryo_scunet_free(wk->m); /* its staging stays: another thread may still blend from it */
    wk->m = NULL;
    return NULL;
}

/* Start the workers and wait. With one context the calling thread is the worker; with
 * several every worker is a new thread, so the caller's own settings (its OpenMP thread
 * count) stay as they were. */
static void run_workers(struct plan *p)
{
    if (!p->bind) {
        worker_main(&p->wk[0]);
        return;
    }
    pthread_t *th = calloc((size_t)p->nworkers, sizeof *th);
    int started = 0;
    if (th)
        for (; started < p->nworkers; started++)
            if (pthread_create(&th[started], NULL, worker_main, &p->wk[started]) != 0)
                break;
    if (started < p->nworkers) {
        pthread_mutex_lock(&p->lock);
        if (!p->failed) {
            p->failed = 1;
            p->rc = cryo_fail(p->err, CRYO_E_NOMEM, "cannot start inference thread %d of %d", started + 1,
                              p->nworkers);
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->lock);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
}

/* The tiles that run (not empty, or every one). */
static int plan_tiles(struct plan *p, struct cryo_infer_report *rep, struct cryo_error *err)
{
    int64_t *run = cryo_alloc_array((size_t)p->total, sizeof *run, err);
    if (!run)
        return CRYO_E_NOMEM;
    p->run = run;
    if (!p->o->skip_empty) {
        for (int64_t i = 0; i < p->total; i++)
            run[i] = i;
        p->nrun = p->total;
        return CRYO_OK;
    }
    float *box = cryo_alloc_big(p->tile * sizeof(float), err);
    if (!box)
        return CRYO_E_NOMEM;
    for (int64_t i = 0; i < p->total; i++) {
        int64_t st[3];
        cryo_tiling_start(p->t, i, st);
        if (cryo_infer_fill_box(box, p->src, p->n, st, p->b) <= p->o->skip_max)
            rep->skipped++;
        else
            run[p->nrun++] = i;
    }
    cryo_free_big(box);
    return CRYO_OK;
}

int cryo_infer_tiled(float *dst, const float *src, const int64_t n[3], struct cryo_nn_ctx *const *ctxs, int nctx,
                     const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                     const struct cryo_infer_opts *o, const int64_t stride[3], struct cryo_infer_report *rep,
                     struct cryo_error *err)
{
    struct cryo_tiling t;
    CRYO_TRY(cryo_tiling_plan(&t, n, o->tile, stride, err));
    const int64_t *b = o->tile;
    struct plan p;
    memset(&p, 0, sizeof p);
    p.src = src, p.n = n, p.b = b, p.t = &t, p.c = c, p.w = w, p.o = o, p.dst = dst, p.err = err;
    p.total = cryo_tiling_total(&t);
    p.batch = (int64_t)o->batch < p.total ? o->batch : (int)p.total;
    p.tile = (size_t)b[0] * (size_t)b[1] * (size_t)b[2];
    p.budget = cryo_infer_budget(o);
    float *wt[3] = {NULL, NULL, NULL}, *wsum[3] = {NULL, NULL, NULL};
    int rc = CRYO_OK;
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
        p.wt[d] = wt[d];
    }
    if (rc == 0)
        rc = plan_tiles(&p, rep, err);
    double flops_pass = 0;
    if (rc == 0)
        rc = cryo_scunet_flops(c, p.batch, (int)b[2], (int)b[1], (int)b[0], &flops_pass, err);
    /* contexts beyond the number of batches would only load the weights */
    p.nbatch = (p.nrun + p.batch - 1) / p.batch;
    p.nworkers = p.nbatch < nctx ? (int)(p.nbatch > 0 ? p.nbatch : 1) : nctx;
    p.bind = nctx > 1; /* the contexts were made on this thread, but not for it */
    if (rc == 0) {
        p.ready = cryo_alloc_array((size_t)(p.nbatch > 0 ? p.nbatch : 1), sizeof *p.ready, err);
        p.wk = p.ready ? cryo_alloc_array((size_t)p.nworkers, sizeof *p.wk, err) : NULL;
        rc = p.wk ? CRYO_OK : CRYO_E_NOMEM;
    }
    if (rc == 0) {
        for (int64_t j = 0; j < p.nbatch; j++)
            p.ready[j] = -1;
        for (int i = 0; i < p.nworkers; i++) {
            p.wk[i] = (struct worker){.p = &p, .ctx = ctxs[i], .id = i, .nslot = p.nworkers > 1 ? SLOTS : 1};
            p.ncpu += cryo_nn_ctx_device(ctxs[i]) == CRYO_NN_DEVICE_CPU;
        }
        memset(dst, 0, (size_t)n[0] * (size_t)n[1] * (size_t)n[2] * sizeof(float));
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.cv, NULL);
        run_workers(&p);
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.lock);
        rc = p.failed ? (p.rc < 0 ? p.rc : CRYO_E_DEVICE) : CRYO_OK;
    }
    if (rc == 0 && p.next_blend != p.nbatch) /* cannot happen: every batch ran or a worker failed */
        rc = cryo_fail(err, CRYO_E_DEVICE, "inference: %lld of %lld batches merged", (long long)p.next_blend,
                       (long long)p.nbatch);
    if (rc == 0) {
        if (o->progress && p.reported < p.total)
            o->progress(o->user, p.total, p.total);
        size_t i = 0;
        for (int64_t k = 0; k < n[2]; k++)
            for (int64_t j = 0; j < n[1]; j++) {
                float wzy = wsum[2][k] * wsum[1][j];
                for (int64_t x = 0; x < n[0]; x++, i++)
                    dst[i] /= wzy * wsum[0][x];
            }
        rep->whole = 0;
        rep->contexts = p.nworkers;
        rep->tiles = p.total;
        memcpy(rep->box, b, sizeof rep->box);
        for (int k = 0; k < p.nworkers; k++)
            rep->passes += p.wk[k].passes;
        rep->activation_bytes = p.wk[0].act;
        rep->flops = flops_pass * (double)rep->passes;
    }
    for (int k = 0; p.wk && k < p.nworkers; k++) {
        for (int s = 0; s < SLOTS; s++)
            cryo_free_big(p.wk[k].slot[s]);
        free(p.wk[k].fill_at);
        free(p.wk[k].blend_at);
        cryo_scunet_free(p.wk[k].m);
    }
    for (int d = 0; d < 3; d++) {
        free(wt[d]);
        free(wsum[d]);
    }
    free(p.wk);
    free(p.ready);
    free((void *)p.run);
    return rc;
}
