/* loader.c — opening a corpus and making crop k (loader.h).
 *
 * Crop k reads only its own rows of the prepared maps (pread), so memory is a few crops
 * whatever the corpus size, and it depends on nothing but (seed, k, corpus, options): the
 * random numbers come from a generator seeded with k alone, never from shared state, which
 * is what lets any thread (or the prefetch thread) make any crop. */
#include "loader_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cryolvm/cuberot.h"
#include "cryolvm/mem.h"
#include "cryolvm/patch.h"

#define LOADER_MAX_SIZE 512

void cryo_loader_opts_default(struct cryo_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->size = 48;
    o->channels = 1;
    o->min_density = 0;
    o->max_redraw = 20;
    o->rotate = 1;
    o->flip = 0;
    o->apix = 1.0;
    o->normalize = 1;
    o->cache_dir = NULL;
    o->prefetch = 8;
    o->seed = 0;
}

double loader_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int check_opts(const struct cryo_loader_opts *o, struct cryo_error *err)
{
    if (o->size < 8 || o->size > LOADER_MAX_SIZE || o->size % 8)
        return cryo_fail(err, CRYO_E_INVALID, "crop size must be a multiple of 8 in 8..%d, not %d", LOADER_MAX_SIZE,
                         o->size);
    if (o->channels != 1 && o->channels != 2)
        return cryo_fail(err, CRYO_E_INVALID, "channels must be 1 or 2, not %d", o->channels);
    if (!(o->min_density >= 0) || !isfinite(o->min_density))
        return cryo_fail(err, CRYO_E_INVALID, "minimum density must be finite and >= 0, not %g", o->min_density);
    if (o->max_redraw < 0 || o->max_redraw > 1000000)
        return cryo_fail(err, CRYO_E_INVALID, "max redraws must be in 0..1000000, not %d", o->max_redraw);
    if (!(o->apix >= 0) || !(o->apix <= 1e6))
        return cryo_fail(err, CRYO_E_INVALID, "voxel size must be 0 (keep) or in (0, 1e6] Å, not %g", o->apix);
    if (o->prefetch < 0 || o->prefetch > 4096)
        return cryo_fail(err, CRYO_E_INVALID, "prefetch must be in 0..4096 crops, not %d", o->prefetch);
    if (o->shard_ranks > 1 && (o->shard_rank < 0 || o->shard_rank >= o->shard_ranks || o->shard_block < 1))
        return cryo_fail(err, CRYO_E_INVALID, "shard: rank %d of %d ranks with blocks of %d crops is not valid",
                         o->shard_rank, o->shard_ranks, o->shard_block);
    return CRYO_OK;
}

/* An empty loader with its cache folder ready. */
static int loader_new(struct cryo_loader **out, const struct cryo_loader_opts *o, const char *const *paths,
                      size_t n, struct cryo_error *err)
{
    *out = NULL;
    CRYO_TRY(check_opts(o, err));
    if (n == 0 || !paths)
        return cryo_fail(err, CRYO_E_INVALID, "no maps given to the loader");
    struct cryo_loader *l = calloc(1, sizeof *l);
    if (!l)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    l->o = *o;
    pthread_mutex_init(&l->stats_mu, NULL);
    *out = l;
    int st = loader_cache_init(l, err);
    l->o.cache_dir = l->cache_dir; /* the caller's string may not outlive the loader */
    if (st == CRYO_OK)
        st = cryo_resampler_create(&l->resampler, err);
    return st;
}

static int add_map(struct cryo_loader *l, const char *path, size_t frame, size_t frames,
                   const struct loader_file *ch, struct cryo_error *err)
{
    if (l->nmaps == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        struct loader_map *p = realloc(l->maps, nc * sizeof *p);
        if (!p)
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        l->maps = p, l->cap = nc;
    }
    struct loader_map *m = &l->maps[l->nmaps];
    memset(m, 0, sizeof *m);
    size_t len = strlen(path) + 32;
    if (!(m->name = malloc(len)))
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    if (frames > 1)
        snprintf(m->name, len, "%s[%zu]", path, frame);
    else
        snprintf(m->name, len, "%s", path);
    for (int c = 0; c < l->o.channels; c++)
        m->ch[c] = ch[c];
    l->nmaps++;
    return CRYO_OK;
}

/* Sampling table, prefetch thread; the resampler is no longer needed. */
static int loader_finish_open(struct cryo_loader *l, struct cryo_error *err)
{
    cryo_resampler_free(l->resampler);
    l->resampler = NULL;
    if (!(l->cum = cryo_alloc_array(l->nmaps, sizeof *l->cum, err)))
        return CRYO_E_NOMEM;
    double total = 0;
    for (size_t i = 0; i < l->nmaps; i++) {
        const int64_t *n = l->maps[i].ch[0].n;
        total += (double)n[0] * (double)n[1] * (double)n[2];
        l->cum[i] = total;
    }
    return l->o.prefetch > 0 ? loader_prefetch_start(l, err) : CRYO_OK;
}

static void release_files(struct loader_file *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        loader_file_release(&f[i]);
    free(f);
}

int cryo_loader_open(struct cryo_loader **out, const char *const *paths, size_t n,
                     const struct cryo_loader_opts *o, struct cryo_error *err)
{
    *out = NULL;
    struct cryo_loader *l;
    int st = loader_new(&l, o, paths, n, err);
    for (size_t i = 0; i < n && st == CRYO_OK; i++) {
        struct loader_file *f;
        size_t nf;
        if ((st = loader_prepare_source(l, paths[i], o->channels, &f, &nf, err)) != CRYO_OK)
            break;
        size_t frames = nf / (size_t)o->channels, done = 0;
        for (; done < frames && st == CRYO_OK; done++)
            if ((st = add_map(l, paths[i], done, frames, f + done * (size_t)o->channels, err)) == CRYO_OK)
                for (int c = 0; c < o->channels; c++)
                    f[done * (size_t)o->channels + (size_t)c].path = NULL; /* moved into the map */
        release_files(f, nf);
    }
    if (st == CRYO_OK)
        st = loader_finish_open(l, err);
    if (st != CRYO_OK) {
        cryo_loader_free(l);
        return st;
    }
    *out = l;
    return CRYO_OK;
}

static int same_grid(const struct loader_file *a, const struct loader_file *b)
{
    for (int d = 0; d < 3; d++)
        if (a->n[d] != b->n[d] || !(fabs(a->apix[d] - b->apix[d]) <= 1e-4 * fabs(b->apix[d])))
            return 0;
    return 1;
}

int cryo_loader_open_pairs(struct cryo_loader **out, const char *const *paths, size_t npairs,
                           const struct cryo_loader_opts *o, struct cryo_error *err)
{
    *out = NULL;
    if (o->channels != 2)
        return cryo_fail(err, CRYO_E_INVALID, "pairs need channels = 2, not %d", o->channels);
    struct cryo_loader *l;
    int st = loader_new(&l, o, paths, npairs, err);
    for (size_t i = 0; i < npairs && st == CRYO_OK; i++) {
        const char *pa = paths[2 * i], *pb = paths[2 * i + 1];
        struct loader_file *fa = NULL, *fb = NULL;
        size_t na = 0, nb = 0;
        st = loader_prepare_source(l, pa, 1, &fa, &na, err);
        if (st == CRYO_OK)
            st = loader_prepare_source(l, pb, 1, &fb, &nb, err);
        if (st == CRYO_OK && na != nb)
            st = cryo_fail(err, CRYO_E_INVALID, "%s and %s: not a pair: %zu and %zu maps", pa, pb, na, nb);
        for (size_t f = 0; f < na && st == CRYO_OK; f++) {
            if (!same_grid(&fa[f], &fb[f])) {
                st = cryo_fail(err, CRYO_E_INVALID,
                               "%s and %s: not on the same grid (%lldx%lldx%lld at %.4g Å vs %lldx%lldx%lld at %.4g Å "
                               "after preparation)",
                               pa, pb, (long long)fa[f].n[0], (long long)fa[f].n[1], (long long)fa[f].n[2], fa[f].apix[0],
                               (long long)fb[f].n[0], (long long)fb[f].n[1], (long long)fb[f].n[2], fb[f].apix[0]);
                break;
            }
            const struct loader_file ch[2] = {fa[f], fb[f]};
            if ((st = add_map(l, pa, f, na, ch, err)) == CRYO_OK)
                fa[f].path = fb[f].path = NULL;
        }
        release_files(fa, na);
        release_files(fb, nb);
    }
    if (st == CRYO_OK)
        st = loader_finish_open(l, err);
    if (st != CRYO_OK) {
        cryo_loader_free(l);
        return st;
    }
    *out = l;
    return CRYO_OK;
}

size_t cryo_loader_maps(const struct cryo_loader *l) { return l ? l->nmaps : 0; }

const char *cryo_loader_map_name(const struct cryo_loader *l, size_t i)
{
    return l && i < l->nmaps ? l->maps[i].name : NULL;
}

void cryo_loader_stats(const struct cryo_loader *l, struct cryo_loader_stats *s)
{
    struct cryo_loader *m = (struct cryo_loader *)l; /* the lock is not part of the value */
    pthread_mutex_lock(&m->stats_mu);
    *s = l->stats;
    pthread_mutex_unlock(&m->stats_mu);
}

void cryo_loader_free(struct cryo_loader *l)
{
    if (!l)
        return;
    loader_prefetch_stop(l);
    cryo_resampler_free(l->resampler);
    for (size_t i = 0; i < l->nmaps; i++) {
        free(l->maps[i].name);
        for (int c = 0; c < 2; c++)
            loader_file_release(&l->maps[i].ch[c]);
    }
    free(l->maps);
    free(l->cum);
    loader_cache_cleanup(l);
    free(l->cache_dir);
    pthread_mutex_destroy(&l->stats_mu);
    free(l);
}

/* ---- crop k ------------------------------------------------------------------------ */

static double uniform(uint64_t *state) { return (double)(cryo_patch_rng_next(state) >> 11) * 0x1.0p-53; }

static int pread_full(int fd, void *buf, size_t n, int64_t off, const char *path, struct cryo_error *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + (int64_t)got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return cryo_fail(err, CRYO_E_IO, "%s: read error: %s", path, strerror(errno));
        if (r == 0)
            return cryo_fail(err, CRYO_E_TRUNCATED, "%s: file shorter than its header says (changed while in use?)",
                             path);
        got += (size_t)r;
    }
    return CRYO_OK;
}

/* Channel c of crop (channels interleaved) = file's voxels at start (zeros outside). */
static int read_channel(const struct loader_file *f, const int64_t start[3], int s, int channels, int c, float *crop,
                        float *rows, struct cryo_error *err)
{
    int64_t lo[3], hi[3];
    for (int d = 0; d < 3; d++) {
        lo[d] = start[d] < 0 ? 0 : start[d];
        hi[d] = start[d] + s < f->n[d] ? start[d] + s : f->n[d];
        if (lo[d] >= hi[d])
            return CRYO_OK;
    }
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cryo_fail(err, CRYO_E_IO, "%s: %s", f->path, strerror(errno));
    const int64_t nx = f->n[0], ny = f->n[1], wx = hi[0] - lo[0], wy = hi[1] - lo[1];
    /* Whole rows in one read when they are not much longer than the crop, else row by row. */
    const int slab = nx <= 4 * (int64_t)s;
    int st = CRYO_OK;
    for (int64_t z = lo[2]; z < hi[2] && st == CRYO_OK; z++) {
        int64_t first = (z * ny + lo[1]) * nx;
        if (slab)
            st = pread_full(fd, rows, (size_t)(wy * nx) * sizeof(float), f->offset + first * 4, f->path, err);
        for (int64_t y = 0; y < wy && st == CRYO_OK; y++) {
            const float *src = rows + y * nx + lo[0];
            if (!slab) {
                st = pread_full(fd, rows, (size_t)wx * sizeof(float), f->offset + (first + y * nx + lo[0]) * 4, f->path,
                                err);
                src = rows;
            }
            float *dst = crop + ((((z - start[2]) * s + (lo[1] + y - start[1])) * s + (lo[0] - start[0])) * channels + c);
            for (int64_t x = 0; x < wx; x++)
                dst[x * channels] = src[x];
        }
    }
    close(fd);
    return st;
}

static int64_t pick_map(const struct cryo_loader *l, double u)
{
    double t = u * l->cum[l->nmaps - 1];
    size_t lo = 0, hi = l->nmaps - 1; /* first i with t < cum[i] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t < l->cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return (int64_t)lo;
}

int loader_make_crop(struct cryo_loader *l, uint64_t k, float *out, struct cryo_error *err)
{
    if (l->o.shard_ranks > 1) { /* this rank's crop k: the global crop (loader.h) */
        uint64_t b = (uint64_t)l->o.shard_block;
        k = k / b * (uint64_t)l->o.shard_ranks * b + (uint64_t)l->o.shard_rank * b + k % b;
    }
    const int s = l->o.size, C = l->o.channels;
    const size_t nvox = (size_t)s * s * s;
    /* Rows buffer: a slab of at most s rows of nx <= 4 s voxels (read_channel). */
    float *crop = malloc(nvox * (size_t)C * sizeof(float));
    float *rows = malloc((size_t)4 * s * s * sizeof(float));
    if (!crop || !rows) {
        free(crop);
        free(rows);
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    }
    uint64_t state = cryo_patch_rng_seed(l->o.seed, k);
    int st = CRYO_OK;
    uint64_t redraws = 0;
    for (int attempt = 0;; attempt++) {
        const struct loader_map *m = &l->maps[pick_map(l, uniform(&state))];
        int64_t start[3];
        for (int d = 0; d < 3; d++) {
            double u = uniform(&state);
            int64_t n = m->ch[0].n[d];
            /* floor((n - s)/2) for a short axis: the map centred in zeros */
            start[d] = n >= s ? (int64_t)floor(u * (double)(n - s + 1)) : -((s - n + 1) / 2);
        }
        memset(crop, 0, nvox * (size_t)C * sizeof(float));
        for (int c = 0; c < C && st == CRYO_OK; c++)
            st = read_channel(&m->ch[c], start, s, C, c, crop, rows, err);
        if (st != CRYO_OK)
            break;
        if (!(l->o.min_density > 0) || attempt >= l->o.max_redraw)
            break;
        double sum = 0;
        for (size_t i = 0; i < nvox; i++)
            sum += crop[i * (size_t)C + (size_t)(C - 1)];
        if (sum / (double)nvox >= l->o.min_density)
            break;
        redraws++;
    }
    if (st == CRYO_OK) {
        int r = l->o.rotate ? (int)floor(uniform(&state) * CRYO_CUBEROT_COUNT) : 0;
        int mirror = l->o.flip ? uniform(&state) < 0.5 : 0;
        cryo_cuberot_apply(out, crop, s, C, r, mirror);
    }
    free(crop);
    free(rows);
    pthread_mutex_lock(&l->stats_mu);
    l->stats.redraws += redraws;
    pthread_mutex_unlock(&l->stats_mu);
    return st;
}

static void add_served(struct cryo_loader *l, uint64_t crops, double wait, double work)
{
    pthread_mutex_lock(&l->stats_mu);
    l->stats.crops += crops;
    l->stats.wait_s += wait;
    l->stats.work_s += work;
    pthread_mutex_unlock(&l->stats_mu);
}

int cryo_loader_get(struct cryo_loader *l, uint64_t k, float *out, struct cryo_error *err)
{
    if (!l || !out)
        return cryo_fail(err, CRYO_E_INVALID, "loader: no loader or no output buffer");
    double t0 = loader_now();
    int st = loader_make_crop(l, k, out, err);
    double dt = loader_now() - t0;
    add_served(l, st == CRYO_OK, dt, dt);
    return st;
}

int cryo_loader_batch(struct cryo_loader *l, uint64_t k, int n, float *out, struct cryo_error *err)
{
    if (!l || !out || n < 1)
        return cryo_fail(err, CRYO_E_INVALID, "loader: a batch needs a loader, an output buffer and n >= 1 (n = %d)", n);
    if (l->pf)
        return loader_prefetch_batch(l, k, n, out, err);
    const size_t per = (size_t)l->o.size * l->o.size * l->o.size * (size_t)l->o.channels;
    for (int i = 0; i < n; i++)
        CRYO_TRY(cryo_loader_get(l, k + (uint64_t)i, out + (size_t)i * per, err));
    return CRYO_OK;
}
