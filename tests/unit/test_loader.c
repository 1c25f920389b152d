/* test_loader.c — the training-data loader (loader.h):
 *   crops follow the documented draws (map by volume, start, zero padding of short axes,
 *   rotation, mirror) on maps prepared in memory by the existing normalize/resample code;
 *   determinism: get == batch with prefetch (sequential, jumps, back) == get from 4 threads,
 *   on fresh and reused caches, whatever the OpenMP threads that resampled the maps;
 *   another seed gives other crops;
 *   the cache: entries reused (not rewritten), a truncated one rebuilt, options change the
 *   entry, a private cache removed at free, an uncompressed float32 MRC read in place;
 *   preparation: Fourier resampling + quantile normalisation as mrc-resample/mrc-normalize,
 *   frames whose metadata says they are prepared used as they are;
 *   min_density redraws; pairs (two files, 2-channel stream frames); gzip, TIFF and streams;
 *   bad input (missing, truncated, NaN, grids that differ, bad options); errors met by the
 *   prefetch thread returned by the call that needs the crop; real maps from ../shared/data
 *   (when present: in place, axis order 3 2 1, float16, 8-bit TIFF at 10.52 Å); list files. */
#include "cryolvm/loader.h"
#include "cryolvm/cuberot.h"
#include "cryolvm/normalize.h"
#include "cryolvm/patch.h"
#include "cryolvm/resample.h"
#include "cryolvm/volio.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp_path(const char *name)
{
    static char buf[16][4096];
    static int k;
    char *p = buf[k++ % 16];
    snprintf(p, 4096, "%s/%s", tu_tmpdir(), name);
    return p;
}

/* Gaussian blobs on a little noise: varied enough that every crop and quantile differs. */
static void blob_volume(struct cryo_volume *v, int64_t c, int64_t nx, int64_t ny, int64_t nz, double apix,
                        uint64_t seed)
{
    cryo_volume_init(v);
    CHECK(cryo_volume_alloc(v, CRYO_DTYPE_F32, c, nz, ny, nx, NULL) == 0);
    v->apix[0] = v->apix[1] = v->apix[2] = apix;
    float *d = v->data;
    for (int64_t ch = 0; ch < c; ch++) {
        double cen[4][3];
        for (int b = 0; b < 4; b++) {
            cen[b][0] = (tu_rand(&seed) * 0.5 + 0.5) * (double)nx;
            cen[b][1] = (tu_rand(&seed) * 0.5 + 0.5) * (double)ny;
            cen[b][2] = (tu_rand(&seed) * 0.5 + 0.5) * (double)nz;
        }
        for (int64_t z = 0; z < nz; z++)
            for (int64_t y = 0; y < ny; y++)
                for (int64_t x = 0; x < nx; x++) {
                    double s = 0.05 * tu_rand(&seed);
                    for (int b = 0; b < 4; b++) {
                        double dx = (double)x - cen[b][0], dy = (double)y - cen[b][1], dz = (double)z - cen[b][2];
                        s += exp(-(dx * dx + dy * dy + dz * dz) / 30.0);
                    }
                    d[((ch * nz + z) * ny + y) * nx + x] = (float)(3 * s + 1);
                }
    }
}

static const char *write_map(const char *name, int64_t nx, int64_t ny, int64_t nz, double apix, uint64_t seed)
{
    struct cryo_volume v;
    blob_volume(&v, 1, nx, ny, nz, apix, seed);
    const char *p = tmp_path(name);
    struct cryo_error err = {0};
    CHECK(cryo_write_one(p, &v, NULL, &err) == 0);
    cryo_volume_free(&v);
    return p;
}

/* ---- the documented draws, on maps held in memory ---------------------------------- */

struct ref_map { struct cryo_volume ch[2]; };

static double uni(uint64_t *st) { return (double)(cryo_patch_rng_next(st) >> 11) * 0x1.0p-53; }

/* Crop k as loader.h describes it, from prepared maps m[0..n) (C single-channel volumes each). */
static void ref_crop(const struct ref_map *m, size_t n, int C, const struct cryo_loader_opts *o, uint64_t k,
                     float *out)
{
    const int s = o->size;
    const size_t nv = (size_t)s * s * s;
    float *crop = calloc(nv * C, sizeof(float));
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += (double)cryo_volume_count(&m[i].ch[0]);
    uint64_t st = cryo_patch_rng_seed(o->seed, k);
    for (int attempt = 0;; attempt++) {
        double t = uni(&st) * total, acc = 0;
        size_t i = 0;
        for (; i < n - 1; i++) {
            acc += (double)cryo_volume_count(&m[i].ch[0]);
            if (t < acc)
                break;
        }
        const struct cryo_volume *v = &m[i].ch[0];
        const int64_t dim[3] = {v->nx, v->ny, v->nz};
        int64_t start[3];
        for (int d = 0; d < 3; d++) {
            double u = uni(&st);
            start[d] = dim[d] >= s ? (int64_t)floor(u * (double)(dim[d] - s + 1)) : (int64_t)floor((double)(dim[d] - s) / 2);
        }
        double sum = 0;
        for (int z = 0; z < s; z++)
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++)
                    for (int c = 0; c < C; c++) {
                        int64_t X = start[0] + x, Y = start[1] + y, Z = start[2] + z;
                        float val = 0;
                        if (X >= 0 && Y >= 0 && Z >= 0 && X < dim[0] && Y < dim[1] && Z < dim[2])
                            val = ((const float *)m[i].ch[c].data)[(Z * dim[1] + Y) * dim[0] + X];
                        crop[(((size_t)z * s + y) * s + x) * C + c] = val;
                        if (c == C - 1)
                            sum += val;
                    }
        if (!(o->min_density > 0) || attempt >= o->max_redraw || sum / (double)nv >= o->min_density)
            break;
    }
    int r = o->rotate ? (int)floor(uni(&st) * 24) : 0;
    int mirror = o->flip ? uni(&st) < 0.5 : 0;
    cryo_cuberot_apply(out, crop, s, C, r, mirror);
    free(crop);
}

/* Read a file's frame and prepare it in memory as the loader documents (normalise only). */
static void ref_normalized(struct cryo_volume *v, const char *path)
{
    struct cryo_error err = {0};
    cryo_volume_init(v);
    CHECK(cryo_read_one(v, path, &err) == 0);
    CHECK(cryo_volume_convert(v, CRYO_DTYPE_F32, &err) == 0);
    struct cryo_normalize_opts no;
    cryo_normalize_opts_default(&no);
    CHECK(cryo_normalize_volume(v, &no, path, &err) == 0);
}

static size_t crop_floats(const struct cryo_loader_opts *o) { return (size_t)o->size * o->size * o->size * o->channels; }

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name), ls = strlen(suffix);
        if (e->d_name[0] != '.' && l >= ls && strcmp(e->d_name + l - ls, suffix) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* A small corpus: three maps, the second shorter than a 24 crop along x and z (by odd counts). */
static const char *corpus[3];
static void make_corpus(void)
{
    if (corpus[0])
        return;
    corpus[0] = strdup(write_map("c0.mrc", 40, 32, 36, 1.0, 1));
    corpus[1] = strdup(write_map("c1.mrc", 19, 28, 15, 1.0, 2));
    corpus[2] = strdup(write_map("c2.mrc", 48, 48, 48, 1.0, 3));
}

static void corpus_opts(struct cryo_loader_opts *o, const char *cache)
{
    cryo_loader_opts_default(o);
    o->size = 24;
    o->apix = 0;
    o->rotate = 1;
    o->flip = 1;
    o->seed = 42;
    o->prefetch = 0;
    o->cache_dir = cache;
}

TEST(options_defaults_and_refusals)
{
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    CHECK_EQ_INT(o.size, 48);
    CHECK_EQ_INT(o.channels, 1);
    CHECK_EQ_INT(o.max_redraw, 20);
    CHECK_EQ_INT(o.rotate, 1);
    CHECK_EQ_INT(o.normalize, 1);
    CHECK_CLOSE(o.apix, 1.0, 0);
    make_corpus();
    struct cryo_loader *l = NULL;
    struct cryo_error err = {0};
    const struct { int size, channels; double apix, dens; int prefetch; } bad[] = {
        {44, 1, 1, 0, 0}, {0, 1, 1, 0, 0}, {48, 3, 1, 0, 0}, {48, 1, -1, 0, 0}, {48, 1, NAN, 0, 0},
        {48, 1, 1, -0.5, 0}, {48, 1, 1, NAN, 0}, {48, 1, 1, 0, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cryo_loader_opts_default(&o);
        o.size = bad[i].size, o.channels = bad[i].channels, o.apix = bad[i].apix;
        o.min_density = bad[i].dens, o.prefetch = bad[i].prefetch;
        CHECK_EQ_INT(cryo_loader_open(&l, corpus, 1, &o, &err), CRYO_E_INVALID);
        CHECK(l == NULL);
    }
    cryo_loader_opts_default(&o);
    CHECK_EQ_INT(cryo_loader_open(&l, corpus, 0, &o, &err), CRYO_E_INVALID);
    o.channels = 1;
    CHECK_EQ_INT(cryo_loader_open_pairs(&l, corpus, 1, &o, &err), CRYO_E_INVALID);
    cryo_loader_free(NULL);
}

TEST(crops_follow_the_documented_draws)
{
    make_corpus();
    struct cryo_loader_opts o;
    corpus_opts(&o, tmp_path("cache_draws"));
    struct cryo_loader *l = NULL;
    struct cryo_error err = {0};
    CHECK(cryo_loader_open(&l, corpus, 3, &o, &err) == 0);
    if (!l) {
        printf("%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(cryo_loader_maps(l), 3);
    CHECK(strcmp(cryo_loader_map_name(l, 1), corpus[1]) == 0);
    CHECK(cryo_loader_map_name(l, 3) == NULL);
    struct ref_map m[3];
    for (int i = 0; i < 3; i++)
        ref_normalized(&m[i].ch[0], corpus[i]);
    const size_t n = crop_floats(&o);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    for (uint64_t k = 0; k < 60; k++) {
        CHECK(cryo_loader_get(l, k, a, &err) == 0);
        ref_crop(m, 3, 1, &o, k, b);
        CHECK(memcmp(a, b, n * 4) == 0);
        for (size_t i = 0; i < n; i++)
            CHECK(a[i] >= 0 && a[i] <= 1);
    }
    struct cryo_loader_stats s;
    cryo_loader_stats(l, &s);
    CHECK_EQ_INT(s.crops, 60);
    CHECK_EQ_INT(s.redraws, 0);
    CHECK(s.work_s > 0 && s.wait_s > 0);
    cryo_loader_free(l);
    for (int i = 0; i < 3; i++)
        cryo_volume_free(&m[i].ch[0]);
    free(a), free(b);
}

TEST(short_axes_are_zero_padded_about_the_centre)
{
    /* an 8³ map of ones in a 16 crop: ones exactly at 4..11 on every axis */
    struct cryo_volume v;
    cryo_volume_init(&v);
    CHECK(cryo_volume_alloc(&v, CRYO_DTYPE_F32, 1, 8, 8, 8, NULL) == 0);
    for (size_t i = 0; i < 512; i++)
        ((float *)v.data)[i] = 1;
    const char *p = tmp_path("ones.mrc");
    struct cryo_error err = {0};
    CHECK(cryo_write_one(p, &v, NULL, &err) == 0);
    cryo_volume_free(&v);
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 16, o.apix = 0, o.normalize = 0, o.rotate = 1, o.flip = 1, o.prefetch = 0;
    o.cache_dir = tmp_path("cache_ones");
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, &p, 1, &o, &err) == 0);
    if (!l)
        return;
    /* read in place: an uncompressed float32 MRC that needs no preparation gets no cache entry */
    CHECK_EQ_INT(count_files(o.cache_dir, ".mrc"), 0);
    float out[16 * 16 * 16];
    for (uint64_t k = 0; k < 5; k++) {
        CHECK(cryo_loader_get(l, k, out, &err) == 0);
        for (int z = 0; z < 16; z++)
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) {
                    int in = x >= 4 && x < 12 && y >= 4 && y < 12 && z >= 4 && z < 12;
                    CHECK(out[(z * 16 + y) * 16 + x] == (in ? 1.0f : 0.0f));
                }
    }
    cryo_loader_free(l);
}

struct thread_job {
    struct cryo_loader *l;
    uint64_t first, step, count;
    float *out; /* count crops at (k - first) / step */
    size_t per;
    int status;
};

static void *thread_get(void *arg)
{
    struct thread_job *j = arg;
    for (uint64_t i = 0; i < j->count; i++) {
        struct cryo_error err = {0};
        int st = cryo_loader_get(j->l, j->first + i * j->step, j->out + i * j->per, &err);
        if (st)
            j->status = st;
    }
    return NULL;
}

TEST(same_crops_whatever_prefetch_threads_and_cache)
{
    make_corpus();
    struct cryo_loader_opts o;
    corpus_opts(&o, tmp_path("cache_det"));
    o.min_density = 0.3; /* with redraws too */
    o.apix = 0.9;        /* and Fourier resampling (OpenMP) */
    struct cryo_error err = {0};
    struct cryo_loader *a = NULL, *b = NULL, *c = NULL;
    CHECK(cryo_loader_open(&a, corpus, 3, &o, &err) == 0);
    o.prefetch = 3; /* same cache, reused */
    CHECK(cryo_loader_open(&b, corpus, 3, &o, &err) == 0);
    o.prefetch = 0;
    o.cache_dir = NULL; /* a private cache, prepared again, by one OpenMP thread */
    int omp_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(cryo_loader_open(&c, corpus, 3, &o, &err) == 0);
    omp_set_num_threads(omp_threads);
    if (!a || !b || !c)
        return;
    const size_t per = crop_floats(&o);
    enum { K = 24 };
    float *ref = malloc(K * per * 4), *got = malloc(K * per * 4);
    for (uint64_t k = 0; k < K; k++)
        CHECK(cryo_loader_get(a, k, ref + k * per, &err) == 0);
    /* prefetch: sequential batches of 3, then a jump ahead and back */
    for (uint64_t k = 0; k < 12; k += 3)
        CHECK(cryo_loader_batch(b, k, 3, got + k * per, &err) == 0);
    CHECK(cryo_loader_batch(b, 20, 4, got + 20 * per, &err) == 0);
    CHECK(cryo_loader_batch(b, 12, 5, got + 12 * per, &err) == 0);
    CHECK(cryo_loader_batch(b, 17, 3, got + 17 * per, &err) == 0);
    CHECK(memcmp(ref, got, K * per * 4) == 0);
    /* batch without prefetch */
    memset(got, 0, K * per * 4);
    CHECK(cryo_loader_batch(a, 0, K, got, &err) == 0);
    CHECK(memcmp(ref, got, K * per * 4) == 0);
    /* four threads, interleaved k, on the loader with its own private cache */
    memset(got, 0, K * per * 4);
    pthread_t th[4];
    struct thread_job jobs[4];
    float *part[4];
    for (int t = 0; t < 4; t++) {
        part[t] = malloc(K / 4 * per * 4);
        jobs[t] = (struct thread_job){c, (uint64_t)t, 4, K / 4, part[t], per, 0};
        pthread_create(&th[t], NULL, thread_get, &jobs[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(jobs[t].status, 0);
        for (int i = 0; i < K / 4; i++)
            memcpy(got + (size_t)(t + 4 * i) * per, part[t] + (size_t)i * per, per * 4);
        free(part[t]);
    }
    CHECK(memcmp(ref, got, K * per * 4) == 0);
    struct cryo_loader_stats s;
    cryo_loader_stats(a, &s);
    CHECK(s.redraws > 0);
    cryo_loader_stats(b, &s);
    CHECK_EQ_INT(s.crops, 24);
    /* another seed: other crops */
    cryo_loader_free(c);
    o.seed = 43;
    CHECK(cryo_loader_open(&c, corpus, 3, &o, &err) == 0);
    CHECK(cryo_loader_get(c, 0, got, &err) == 0);
    CHECK(memcmp(ref, got, per * 4) != 0);
    cryo_loader_free(a);
    cryo_loader_free(b);
    cryo_loader_free(c);
    free(ref), free(got);
}

/* Data-parallel shards: rank r of 3 with blocks of 2 serves, as its crops j = 0, 1, 2, ...,
 * the global crops 2r, 2r+1, 6+2r, 6+2r+1, ... (batches through its prefetch queue). */
TEST(shards_are_the_ranks_share_of_each_global_batch)
{
    make_corpus();
    struct cryo_loader_opts o;
    corpus_opts(&o, tmp_path("cache_det"));
    struct cryo_error err = {0};
    struct cryo_loader *g = NULL, *r[3] = {NULL, NULL, NULL};
    o.prefetch = 0;
    CHECK(cryo_loader_open(&g, corpus, 3, &o, &err) == 0);
    o.prefetch = 2;
    o.shard_ranks = 3;
    o.shard_block = 2;
    for (int k = 0; k < 3; k++) {
        o.shard_rank = k;
        CHECK(cryo_loader_open(&r[k], corpus, 3, &o, &err) == 0);
    }
    o.shard_rank = 3;
    struct cryo_loader *bad = NULL;
    CHECK_EQ_INT(cryo_loader_open(&bad, corpus, 3, &o, &err), CRYO_E_INVALID);
    if (!g || !r[0] || !r[1] || !r[2])
        goto out;
    const size_t per = crop_floats(&o);
    enum { STEPS = 4, K = 3 * 2 * STEPS };
    float *ref = malloc(K * per * 4), *got = malloc(K * per * 4);
    CHECK(cryo_loader_batch(g, 0, K, ref, &err) == 0);
    for (int s = 0; s < STEPS; s++)
        for (int k = 0; k < 3; k++)
            CHECK(cryo_loader_batch(r[k], (uint64_t)s * 2, 2, got + ((size_t)s * 6 + (size_t)k * 2) * per, &err) == 0);
    CHECK(memcmp(ref, got, K * per * 4) == 0);
    free(ref), free(got);
out:
    cryo_loader_free(g);
    for (int k = 0; k < 3; k++)
        cryo_loader_free(r[k]);
}

static ino_t inode_of(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? st.st_ino : 0;
}

static int first_entry(const char *dir, char *name, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".mrc") && !strstr(e->d_name, ".tmp")) {
            snprintf(name, len, "%s", e->d_name);
            found = 1;
            break;
        }
    if (d)
        closedir(d);
    return found;
}

TEST(cache_entries_reused_rebuilt_and_private_cache_removed)
{
    make_corpus();
    const char *cache = tmp_path("cache_reuse");
    struct cryo_loader_opts o;
    corpus_opts(&o, cache);
    struct cryo_error err = {0};
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, corpus, 3, &o, &err) == 0);
    CHECK_EQ_INT(count_files(cache, ".mrc"), 3);
    CHECK_EQ_INT(count_files(cache, ".frames"), 3);
    const size_t per = crop_floats(&o);
    float *a = malloc(per * 4), *b = malloc(per * 4);
    CHECK(cryo_loader_get(l, 7, a, &err) == 0);
    cryo_loader_free(l);
    char name[256] = "";
    CHECK(first_entry(cache, name, sizeof name));
    ino_t ino = inode_of(cache, name);
    CHECK(cryo_loader_open(&l, corpus, 3, &o, &err) == 0);
    CHECK(inode_of(cache, name) == ino); /* reused, not rewritten */
    cryo_loader_free(l);
    /* a cut entry is rebuilt */
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", cache, name);
    CHECK(truncate(p, 2000) == 0);
    CHECK(cryo_loader_open(&l, corpus, 3, &o, &err) == 0);
    CHECK(inode_of(cache, name) != ino);
    CHECK(cryo_loader_get(l, 7, b, &err) == 0);
    CHECK(memcmp(a, b, per * 4) == 0);
    cryo_loader_free(l);
    /* other options, other entries */
    o.apix = 0.9;
    CHECK(cryo_loader_open(&l, corpus, 1, &o, &err) == 0);
    CHECK_EQ_INT(count_files(cache, ".mrc"), 4);
    cryo_loader_free(l);
    /* a private cache lives under $TMPDIR and is gone after free */
    const char *tmpd = tmp_path("private_tmp");
    mkdir(tmpd, 0777);
    char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", tmpd, 1);
    o.cache_dir = NULL;
    o.apix = 0;
    CHECK(cryo_loader_open(&l, corpus, 2, &o, &err) == 0);
    if (old)
        setenv("TMPDIR", old, 1);
    else
        unsetenv("TMPDIR");
    free(old);
    DIR *d = opendir(tmpd);
    int entries = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        entries += e->d_name[0] != '.';
    closedir(d);
    CHECK_EQ_INT(entries, 1);
    cryo_loader_free(l);
    d = opendir(tmpd);
    entries = 0;
    while (d && (e = readdir(d)))
        entries += e->d_name[0] != '.';
    closedir(d);
    CHECK_EQ_INT(entries, 0);
    free(a), free(b);
}

TEST(preparation_resamples_and_normalises_like_the_stages)
{
    /* a 1.5 Å map becomes 1 Å by Fourier resampling (box 30 -> 45), then quantile-normalised */
    const char *p = write_map("coarse.mrc", 30, 30, 30, 1.5, 9);
    struct cryo_error err = {0};
    struct cryo_volume v, r;
    cryo_volume_init(&v);
    cryo_volume_init(&r);
    CHECK(cryo_read_one(&v, p, &err) == 0);
    const int64_t box[3] = {45, 45, 45};
    CHECK(cryo_resample(&r, &v, box, NULL, CRYO_RESAMPLE_FOURIER, NULL, &err) == 0);
    struct cryo_normalize_opts no;
    cryo_normalize_opts_default(&no);
    CHECK(cryo_normalize_volume(&r, &no, "ref", &err) == 0);
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 16, o.prefetch = 0, o.seed = 5, o.rotate = 1;
    o.cache_dir = tmp_path("cache_resample");
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, &p, 1, &o, &err) == 0);
    if (!l)
        return;
    struct ref_map m;
    m.ch[0] = r;
    const size_t per = crop_floats(&o);
    float *a = malloc(per * 4), *b = malloc(per * 4);
    for (uint64_t k = 0; k < 10; k++) {
        CHECK(cryo_loader_get(l, k, a, &err) == 0);
        ref_crop(&m, 1, 1, &o, k, b);
        CHECK(max_abs_diff(a, b, per) <= 1e-6);
    }
    cryo_loader_free(l);
    /* a frame that says it was resampled to 1 Å and normalised is used as it is: its values
     * (1..13, not in [0,1]) and its 1.02 Å grid come through unchanged */
    struct cryo_volume f;
    blob_volume(&f, 1, 20, 20, 20, 1.02, 4);
    cryo_meta_set(&f.meta, "resample.apix_requested", "1,1,1", NULL);
    cryo_meta_set(&f.meta, "normalize.mode", "quantile", NULL);
    cryo_meta_set(&f.meta, "normalize.quantiles", "0.01,0.99", NULL);
    const char *sp = tmp_path("prepared.cvol");
    CHECK(cryo_write_one(sp, &f, NULL, &err) == 0);
    CHECK(cryo_loader_open(&l, &sp, 1, &o, &err) == 0);
    m.ch[0] = f;
    for (uint64_t k = 0; k < 5 && l; k++) {
        CHECK(cryo_loader_get(l, k, a, &err) == 0);
        ref_crop(&m, 1, 1, &o, k, b);
        CHECK(memcmp(a, b, per * 4) == 0);
    }
    cryo_loader_free(l);
    cryo_volume_free(&f);
    cryo_volume_free(&v);
    cryo_volume_free(&r);
    free(a), free(b);
}

TEST(min_density_redraws_until_dense_enough)
{
    /* half the corpus volume is empty (zeros), half is ones */
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    CHECK(cryo_volume_alloc(&v, CRYO_DTYPE_F32, 1, 32, 32, 32, NULL) == 0);
    memset(v.data, 0, 32 * 32 * 32 * 4);
    const char *paths[2] = {strdup(tmp_path("empty.mrc")), strdup(tmp_path("full.mrc"))};
    CHECK(cryo_write_one(paths[0], &v, NULL, &err) == 0);
    for (size_t i = 0; i < 32 * 32 * 32; i++)
        ((float *)v.data)[i] = 1;
    CHECK(cryo_write_one(paths[1], &v, NULL, &err) == 0);
    cryo_volume_free(&v);
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 16, o.apix = 0, o.normalize = 0, o.prefetch = 0, o.min_density = 0.5;
    o.cache_dir = tmp_path("cache_dens");
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, paths, 2, &o, &err) == 0);
    float out[16 * 16 * 16];
    for (uint64_t k = 0; k < 40 && l; k++) {
        CHECK(cryo_loader_get(l, k, out, &err) == 0);
        CHECK(out[0] == 1.0f);
    }
    struct cryo_loader_stats s;
    cryo_loader_stats(l, &s);
    CHECK(s.redraws > 5 && s.redraws < 40); /* about one per crop */
    cryo_loader_free(l);
    o.max_redraw = 0; /* no redraw: empty crops come through */
    CHECK(cryo_loader_open(&l, paths, 2, &o, &err) == 0);
    int empty = 0;
    for (uint64_t k = 0; k < 40 && l; k++) {
        CHECK(cryo_loader_get(l, k, out, &err) == 0);
        empty += out[0] == 0.0f;
    }
    CHECK(empty > 5);
    cryo_loader_free(l);
    free((void *)paths[0]);
    free((void *)paths[1]);
}

TEST(pairs_from_two_files_and_from_two_channel_frames)
{
    const char *in = write_map("pair_in.mrc", 24, 20, 28, 1.0, 21);
    const char *tg = write_map("pair_tg.mrc", 24, 20, 28, 1.0, 22);
    const char *paths[2] = {strdup(in), strdup(tg)};
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 16, o.apix = 0, o.channels = 2, o.prefetch = 2, o.seed = 3, o.flip = 1, o.min_density = 0.2;
    o.cache_dir = tmp_path("cache_pairs");
    struct cryo_error err = {0};
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open_pairs(&l, paths, 1, &o, &err) == 0);
    if (!l)
        return;
    CHECK_EQ_INT(cryo_loader_maps(l), 1);
    CHECK(strcmp(cryo_loader_map_name(l, 0), paths[0]) == 0);
    struct ref_map m;
    ref_normalized(&m.ch[0], paths[0]);
    ref_normalized(&m.ch[1], paths[1]);
    const size_t per = crop_floats(&o);
    float *a = malloc(8 * per * 4), *b = malloc(per * 4);
    CHECK(cryo_loader_batch(l, 0, 8, a, &err) == 0);
    for (uint64_t k = 0; k < 8; k++) {
        ref_crop(&m, 1, 2, &o, k, b);
        CHECK(memcmp(a + k * per, b, per * 4) == 0);
    }
    cryo_loader_free(l);
    /* the same pair as one 2-channel stream frame (vol-degrade --pair) */
    struct cryo_volume f;
    cryo_volume_init(&f);
    CHECK(cryo_volume_alloc(&f, CRYO_DTYPE_F32, 2, 28, 20, 24, NULL) == 0);
    struct cryo_volume raw[2];
    for (int c = 0; c < 2; c++) {
        cryo_volume_init(&raw[c]);
        CHECK(cryo_read_one(&raw[c], paths[c], &err) == 0);
        memcpy((float *)f.data + (size_t)c * 24 * 20 * 28, raw[c].data, 24 * 20 * 28 * 4);
        cryo_volume_free(&raw[c]);
    }
    const char *sp = tmp_path("pair.cvol");
    CHECK(cryo_write_one(sp, &f, NULL, &err) == 0);
    CHECK(cryo_loader_open(&l, &sp, 1, &o, &err) == 0);
    for (uint64_t k = 0; k < 8 && l; k++) {
        CHECK(cryo_loader_get(l, k, b, &err) == 0);
        CHECK(memcmp(a + k * per, b, per * 4) == 0);
    }
    cryo_loader_free(l);
    /* one channel where two are wanted, and two where one is */
    CHECK_EQ_INT(cryo_loader_open(&l, &in, 1, &o, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "pair_in.mrc") != NULL);
    o.channels = 1;
    CHECK_EQ_INT(cryo_loader_open(&l, &sp, 1, &o, &err), CRYO_E_INVALID);
    /* a pair on different grids */
    o.channels = 2;
    const char *other = write_map("pair_other.mrc", 24, 20, 30, 1.0, 23);
    const char *bad[2] = {paths[0], other};
    CHECK_EQ_INT(cryo_loader_open_pairs(&l, bad, 1, &o, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "pair_in.mrc") && strstr(err.msg, "pair_other.mrc"));
    cryo_volume_free(&f);
    cryo_volume_free(&m.ch[0]);
    cryo_volume_free(&m.ch[1]);
    free(a), free(b);
    free((void *)paths[0]);
    free((void *)paths[1]);
}

TEST(gzip_tiff_and_multi_frame_streams)
{
    struct cryo_error err = {0};
    struct cryo_volume v;
    blob_volume(&v, 1, 20, 24, 18, 1.0, 31);
    const char *gz = strdup(tmp_path("g.mrc.gz"));
    CHECK(cryo_write_one(gz, &v, NULL, &err) == 0);
    cryo_volume_free(&v);
    blob_volume(&v, 1, 30, 20, 10, 1.0, 32);
    CHECK(cryo_volume_convert(&v, CRYO_DTYPE_U16, &err) == 0);
    const char *tif = strdup(tmp_path("t.tif"));
    CHECK(cryo_write_one(tif, &v, NULL, &err) == 0);
    cryo_volume_free(&v);
    const char *st = strdup(tmp_path("s.cvol"));
    struct cryo_sink *sink = NULL;
    CHECK(cryo_sink_open(&sink, st, NULL, &err) == 0);
    for (int f = 0; f < 2; f++) {
        blob_volume(&v, 1, 16 + 4 * f, 16, 16, 1.0, 40 + (uint64_t)f);
        CHECK(cryo_sink_write(sink, &v, &err) == 0);
        cryo_volume_free(&v);
    }
    CHECK(cryo_sink_commit(sink, &err) == 0);
    cryo_sink_free(sink);
    const char *paths[3] = {gz, tif, st};
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 8, o.prefetch = 4, o.cache_dir = tmp_path("cache_formats");
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, paths, 3, &o, &err) == 0);
    if (!l) {
        printf("%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(cryo_loader_maps(l), 4);
    char want[4200];
    snprintf(want, sizeof want, "%s[1]", st);
    CHECK(strcmp(cryo_loader_map_name(l, 3), want) == 0);
    /* every map prepared as cryo_read_one + normalise gives the documented crops */
    struct ref_map m[4];
    ref_normalized(&m[0].ch[0], gz);
    ref_normalized(&m[1].ch[0], tif);
    struct cryo_source *src = NULL;
    CHECK(cryo_source_open(&src, st, &err) == 0);
    struct cryo_normalize_opts no;
    cryo_normalize_opts_default(&no);
    for (int f = 0; f < 2; f++) {
        cryo_volume_init(&m[2 + f].ch[0]);
        CHECK(cryo_source_next(src, &m[2 + f].ch[0], &err) == 1);
        CHECK(cryo_normalize_volume(&m[2 + f].ch[0], &no, "frame", &err) == 0);
    }
    cryo_source_free(src);
    const size_t per = crop_floats(&o);
    float *a = malloc(32 * per * 4), *b = malloc(per * 4);
    CHECK(cryo_loader_batch(l, 0, 32, a, &err) == 0);
    for (uint64_t k = 0; k < 32; k++) {
        ref_crop(m, 4, 1, &o, k, b);
        CHECK(memcmp(a + k * per, b, per * 4) == 0);
    }
    cryo_loader_free(l);
    for (int i = 0; i < 4; i++)
        cryo_volume_free(&m[i].ch[0]);
    free(a), free(b);
    free((void *)gz), free((void *)tif), free((void *)st);
}

TEST(bad_inputs_are_refused_naming_the_file)
{
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 8, o.prefetch = 0, o.cache_dir = tmp_path("cache_bad");
    struct cryo_error err = {0};
    struct cryo_loader *l = NULL;
    const char *missing = tmp_path("nope.mrc");
    CHECK_EQ_INT(cryo_loader_open(&l, &missing, 1, &o, &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "nope.mrc") != NULL);
    /* a cut MRC */
    const char *good = write_map("cut.mrc", 16, 16, 16, 1.0, 50);
    CHECK(truncate(good, 1024 + 4000) == 0);
    CHECK_EQ_INT(cryo_loader_open(&l, &good, 1, &o, &err), CRYO_E_TRUNCATED);
    CHECK(strstr(err.msg, "cut.mrc") != NULL);
    /* NaN */
    struct cryo_volume v;
    blob_volume(&v, 1, 16, 16, 16, 1.0, 51);
    ((float *)v.data)[100] = NAN;
    const char *nan_p = tmp_path("nan.mrc");
    CHECK(cryo_write_one(nan_p, &v, NULL, &err) == 0);
    CHECK_EQ_INT(cryo_loader_open(&l, &nan_p, 1, &o, &err), CRYO_E_NUMERIC);
    CHECK(strstr(err.msg, "nan.mrc") != NULL);
    /* flat: nothing to normalise */
    for (size_t i = 0; i < 4096; i++)
        ((float *)v.data)[i] = 2;
    const char *flat = tmp_path("flat.mrc");
    CHECK(cryo_write_one(flat, &v, NULL, &err) == 0);
    CHECK(cryo_loader_open(&l, &flat, 1, &o, &err) < 0);
    CHECK(strstr(err.msg, "flat.mrc") != NULL);
    cryo_volume_free(&v);
    /* not a map, and standard input */
    const char *txt = tmp_path("notes.txt");
    FILE *f = fopen(txt, "w");
    fputs("hello\n", f);
    fclose(f);
    CHECK_EQ_INT(cryo_loader_open(&l, &txt, 1, &o, &err), CRYO_E_FORMAT);
    const char *dash = "-";
    CHECK_EQ_INT(cryo_loader_open(&l, &dash, 1, &o, &err), CRYO_E_INVALID);
    CHECK(l == NULL);
    /* a cache folder that is a file */
    o.cache_dir = txt;
    const char *ok = write_map("fine.mrc", 16, 16, 16, 1.0, 52);
    CHECK_EQ_INT(cryo_loader_open(&l, &ok, 1, &o, &err), CRYO_E_IO);
}

TEST(prefetch_errors_come_back_with_the_crop)
{
    const char *p = write_map("vanish.mrc", 20, 20, 20, 1.0, 60);
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 8, o.prefetch = 2, o.cache_dir = tmp_path("cache_vanish");
    struct cryo_error err = {0};
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, &p, 1, &o, &err) == 0);
    if (!l)
        return;
    float out[10 * 512];
    CHECK(cryo_loader_batch(l, 0, 2, out, &err) == 0);
    char name[256];
    CHECK(first_entry(o.cache_dir, name, sizeof name));
    char ep[4096];
    snprintf(ep, sizeof ep, "%s/%s", o.cache_dir, name);
    CHECK(truncate(ep, 1100) == 0);
    /* at most the 2 crops already queued come through, then the error */
    int st = cryo_loader_batch(l, 2, 10, out, &err);
    CHECK_EQ_INT(st, CRYO_E_TRUNCATED);
    CHECK(strstr(err.msg, name) != NULL);
    CHECK_EQ_INT(cryo_loader_get(l, 50, out, &err), CRYO_E_TRUNCATED);
    cryo_loader_free(l); /* joins the stopped thread */
}

/* Real maps (../shared/data, or $CRYO_DATA; skipped when absent): a standard-order float32
 * map read in place, an axis-order 3 2 1 one through the cache, a float16 stack and an 8-bit
 * TIFF tomogram prepared at 6 Å: crops equal the documented draws on the maps as
 * cryo_read_one (+ resample + normalise) gives them. */
TEST(real_maps_when_present)
{
    const char *e = getenv("CRYO_DATA");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", e && *e ? e : "../shared/data");
    char p[4][4200];
    snprintf(p[0], sizeof p[0], "%s/tempy_emd5168_actin/emd_5168.map", dir);
    snprintf(p[1], sizeof p[1], "%s/emringer_axisorder/test_map.ccp4", dir);
    snprintf(p[2], sizeof p[2], "%s/subtomogram/tiltstack_float16_mode12.mrcs", dir);
    snprintf(p[3], sizeof p[3], "%s/tomo_microtubule/13pf_MT.tif", dir);
    for (int i = 0; i < 4; i++)
        if (access(p[i], R_OK) != 0) {
            printf("skipped: %s absent\n", p[i]);
            return;
        }
    const char *paths[4] = {p[0], p[1], p[2], p[3]};
    struct cryo_error err = {0};
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.size = 16, o.apix = 0, o.normalize = 0, o.prefetch = 0, o.flip = 1;
    o.cache_dir = tmp_path("cache_real");
    struct cryo_loader *l = NULL;
    CHECK(cryo_loader_open(&l, paths, 2, &o, &err) == 0);
    if (!l) {
        printf("%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(count_files(o.cache_dir, ".mrc"), 1); /* only the 3 2 1 map needed a copy */
    struct ref_map m[4];
    for (int i = 0; i < 2; i++) {
        cryo_volume_init(&m[i].ch[0]);
        CHECK(cryo_read_one(&m[i].ch[0], paths[i], &err) == 0);
    }
    const size_t per = crop_floats(&o);
    float *a = malloc(per * 4), *b = malloc(per * 4);
    for (uint64_t k = 0; k < 20; k++) {
        CHECK(cryo_loader_get(l, k, a, &err) == 0);
        ref_crop(m, 2, 1, &o, k, b);
        CHECK(memcmp(a, b, per * 4) == 0);
    }
    cryo_loader_free(l);
    for (int i = 0; i < 2; i++)
        cryo_volume_free(&m[i].ch[0]);
    /* prepared at 6 Å (1 Å would make the TIFF 3 GB): the 12 Å float16 stack (32x32x37)
     * and the 10.52 Å uint8 TIFF (94x206x36) */
    o.apix = 6.0, o.normalize = 1, o.size = 48;
    CHECK(cryo_loader_open(&l, paths + 2, 2, &o, &err) == 0);
    if (!l) {
        printf("%s\n", err.msg);
        return;
    }
    struct cryo_normalize_opts no;
    cryo_normalize_opts_default(&no);
    for (int i = 0; i < 2; i++) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        cryo_volume_init(&m[i].ch[0]);
        CHECK(cryo_read_one(&v, paths[2 + i], &err) == 0);
        CHECK(cryo_volume_convert(&v, CRYO_DTYPE_F32, &err) == 0);
        const double want[3] = {6, 6, 6};
        int64_t box[3];
        CHECK(cryo_resample_box_for_apix(&v, want, box, &err) == 0);
        CHECK(cryo_resample(&m[i].ch[0], &v, box, NULL, CRYO_RESAMPLE_FOURIER, NULL, &err) == 0);
        CHECK(cryo_normalize_volume(&m[i].ch[0], &no, "ref", &err) == 0);
        cryo_volume_free(&v);
    }
    const size_t per48 = crop_floats(&o);
    a = realloc(a, per48 * 4), b = realloc(b, per48 * 4);
    for (uint64_t k = 0; k < 6; k++) {
        CHECK(cryo_loader_get(l, k, a, &err) == 0);
        ref_crop(m, 2, 1, &o, k, b);
        CHECK(max_abs_diff(a, b, per48) <= 1e-5);
    }
    cryo_loader_free(l);
    for (int i = 0; i < 2; i++)
        cryo_volume_free(&m[i].ch[0]);
    free(a), free(b);
}

TEST(list_files)
{
    const char *dir = tmp_path("lists");
    mkdir(dir, 0777);
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/corpus.txt", dir);
    FILE *f = fopen(lp, "w");
    fputs("# maps for training\n\n  a.mrc  \nsub/b.map.gz # a comment\n/abs/c.tif\r\n\t\n", f);
    fclose(f);
    char **paths = NULL;
    size_t n = 0;
    struct cryo_error err = {0};
    CHECK(cryo_loader_read_list(lp, &paths, &n, &err) == 0);
    CHECK_EQ_INT(n, 3);
    char want[4300];
    if (n == 3) {
        snprintf(want, sizeof want, "%s/a.mrc", dir);
        CHECK(strcmp(paths[0], want) == 0);
        snprintf(want, sizeof want, "%s/sub/b.map.gz", dir);
        CHECK(strcmp(paths[1], want) == 0);
        CHECK(strcmp(paths[2], "/abs/c.tif") == 0);
    }
    cryo_loader_free_list(paths, n);
    f = fopen(lp, "w");
    fputs("# nothing\n\n", f);
    fclose(f);
    CHECK_EQ_INT(cryo_loader_read_list(lp, &paths, &n, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "corpus.txt") != NULL);
    CHECK(paths == NULL && n == 0);
    CHECK_EQ_INT(cryo_loader_read_list(tmp_path("none.txt"), &paths, &n, &err), CRYO_E_IO);
    cryo_loader_free_list(NULL, 0);
}

int main(void)
{
    return RUN_TESTS(options_defaults_and_refusals, crops_follow_the_documented_draws,
                     short_axes_are_zero_padded_about_the_centre, same_crops_whatever_prefetch_threads_and_cache,
                     shards_are_the_ranks_share_of_each_global_batch,
                     cache_entries_reused_rebuilt_and_private_cache_removed,
                     preparation_resamples_and_normalises_like_the_stages, min_density_redraws_until_dense_enough,
                     pairs_from_two_files_and_from_two_channel_frames, gzip_tiff_and_multi_frame_streams,
                     bad_inputs_are_refused_naming_the_file, prefetch_errors_come_back_with_the_crop,
                     real_maps_when_present, list_files);
}
