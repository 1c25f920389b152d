/* test_infer.c — nn_infer.h: whole-map mode against one direct forward, tiled mode against
 * a per-tile reference built from other libcore parts (cryo_patch_crop with reflection,
 * cryo_blend_weights, a plain sum of weights), empty tiles, batches, option errors; several
 * contexts (cryo_infer_run_multi) bit-identical to one, device lists.
 * tests/bats/lvm-apply.bats compares the same against numpy/PyTorch (tests/ref/apply_ref.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_infer.h"
#include "cryolvm/nn_train.h"
#include "cryolvm/patch.h"
#include "testutil.h"

static struct cryo_scunet_config cfg;
static struct cryo_safetensors *weights;
static struct cryo_nn_ctx *ctx;

static void setup(void)
{
    if (weights)
        return;
    struct cryo_error err = {0};
    cryo_scunet_config_default(&cfg);
    CHECK(cryo_scunet_config_parse(&cfg, "width=8,levels=2,depth=1,head_dim=4", &err) == 0);
    CHECK(cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 0, &err) == 0);
    struct cryo_scunet *m = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", tu_tmpdir());
    CHECK(cryo_scunet_create(&m, &cfg, ctx, 1, 4, 4, 4, 0, &err) == 0);
    CHECK(cryo_scunet_init(m, 11, &err) == 0);
    CHECK(cryo_scunet_save(m, path, &err) == 0);
    CHECK(cryo_safetensors_read(&weights, path, &err) == 0);
    cryo_scunet_free(m);
}

static void make_map(struct cryo_volume *v, int64_t nx, int64_t ny, int64_t nz, uint64_t seed)
{
    struct cryo_error err = {0};
    cryo_volume_init(v);
    CHECK(cryo_volume_alloc(v, CRYO_DTYPE_F32, 1, nz, ny, nx, &err) == 0);
    float *d = v->data;
    for (size_t i = 0; i < cryo_volume_count(v); i++)
        d[i] = (float)(0.5 + 0.5 * tu_rand(&seed));
}

/* The network on one box, directly. */
static void forward_box(float *y, const float *x, int64_t nx, int64_t ny, int64_t nz)
{
    struct cryo_error err = {0};
    struct cryo_scunet *m = NULL;
    size_t n = (size_t)(nx * ny * nz);
    CHECK(cryo_scunet_create(&m, &cfg, ctx, 1, (int)nz, (int)ny, (int)nx, 0, &err) == 0);
    CHECK(cryo_scunet_load(m, weights, &err) == 0);
    CHECK(cryo_nn_upload(ctx, cryo_scunet_input(m), x, n, &err) == 0);
    CHECK(cryo_scunet_forward(m, &err) == 0);
    CHECK(cryo_nn_download(ctx, y, cryo_scunet_output(m), n, &err) == 0);
    cryo_scunet_free(m);
}

TEST(whole_map_is_one_forward)
{
    setup();
    struct cryo_error err = {0};
    struct cryo_volume v, out;
    make_map(&v, 16, 12, 20, 1);
    cryo_volume_init(&out);
    struct cryo_infer_opts o;
    cryo_infer_opts_default(&o);
    memset(o.tile, 0, sizeof o.tile);
    struct cryo_infer_report rep;
    CHECK(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, &rep, &err) == 0);
    CHECK_EQ_INT(rep.whole, 1);
    CHECK_EQ_INT(rep.passes, 1);
    float *ref = malloc(cryo_volume_count(&v) * sizeof(float));
    forward_box(ref, v.data, 16, 12, 20);
    CHECK_REL_ERR(out.data, ref, cryo_volume_count(&v), 1e-6);
    /* a tile that covers the (padded) map is the same thing */
    struct cryo_volume out2;
    cryo_volume_init(&out2);
    cryo_infer_opts_default(&o);
    o.tile[0] = o.tile[1] = o.tile[2] = 20;
    o.stride[0] = o.stride[1] = o.stride[2] = 16;
    CHECK(cryo_infer_run(&out2, &v, ctx, &cfg, weights, &o, &rep, &err) == 0);
    CHECK_EQ_INT(rep.whole, 1);
    CHECK(memcmp(out2.data, out.data, cryo_volume_bytes(&out)) == 0);
    free(ref);
    cryo_volume_free(&v);
    cryo_volume_free(&out);
    cryo_volume_free(&out2);
}

TEST(tiles_merge_like_a_per_tile_reference)
{
    setup();
    struct cryo_error err = {0};
    struct cryo_volume v, out;
    make_map(&v, 23, 17, 13, 2); /* not multiples of anything */
    cryo_volume_init(&out);
    struct cryo_infer_opts o;
    cryo_infer_opts_default(&o);
    o.tile[0] = 12, o.tile[1] = 8, o.tile[2] = 8;
    o.stride[0] = 9, o.stride[1] = 6, o.stride[2] = 5;
    o.batch = 4;
    o.skip_empty = 0;
    struct cryo_infer_report rep;
    CHECK(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, &rep, &err) == 0);
    int64_t n[3] = {v.nx, v.ny, v.nz};
    struct cryo_tiling t;
    CHECK(cryo_tiling_plan(&t, n, o.tile, o.stride, &err) == 0);
    CHECK_EQ_INT(rep.tiles, cryo_tiling_total(&t));
    CHECK_EQ_INT(rep.passes, (rep.tiles + 3) / 4);
    size_t cnt = cryo_volume_count(&v), tn = 12 * 8 * 8;
    double *num = calloc(cnt, sizeof *num), *den = calloc(cnt, sizeof *den);
    float *w = malloc(tn * sizeof *w), *y = malloc(tn * sizeof *y);
    cryo_blend_weights(w, o.tile, CRYO_BLEND_GAUSSIAN);
    for (int64_t k = 0; k < cryo_tiling_total(&t); k++) {
        int64_t st[3];
        cryo_tiling_start(&t, k, st);
        struct cryo_volume crop;
        cryo_volume_init(&crop);
        CHECK(cryo_patch_crop(&crop, &v, st, o.tile, CRYO_PAD_REFLECT, k, 1, &err) == 0);
        forward_box(y, crop.data, 12, 8, 8);
        for (int64_t z = 0; z < 8; z++)
            for (int64_t yy = 0; yy < 8; yy++)
                for (int64_t x = 0; x < 12; x++) {
                    int64_t X = st[0] + x, Y = st[1] + yy, Z = st[2] + z;
                    if (X < 0 || Y < 0 || Z < 0 || X >= n[0] || Y >= n[1] || Z >= n[2])
                        continue;
                    size_t i = (size_t)((Z * n[1] + Y) * n[0] + X), j = (size_t)((z * 8 + yy) * 12 + x);
                    num[i] += (double)w[j] * y[j];
                    den[i] += w[j];
                }
        cryo_volume_free(&crop);
    }
    float *ref = malloc(cnt * sizeof *ref);
    for (size_t i = 0; i < cnt; i++)
        ref[i] = (float)(num[i] / den[i]);
    CHECK_REL_ERR(out.data, ref, cnt, 1e-5);
    free(num), free(den), free(w), free(y), free(ref);
    cryo_volume_free(&v);
    cryo_volume_free(&out);
}

TEST(empty_tiles_are_skipped)
{
    setup();
    struct cryo_error err = {0};
    struct cryo_volume v, out;
    make_map(&v, 24, 24, 24, 3);
    memset(v.data, 0, cryo_volume_bytes(&v));
    ((float *)v.data)[0] = 1; /* one voxel: only the tiles around it run */
    cryo_volume_init(&out);
    struct cryo_infer_opts o;
    cryo_infer_opts_default(&o);
    o.tile[0] = o.tile[1] = o.tile[2] = 8;
    o.stride[0] = o.stride[1] = o.stride[2] = 8;
    struct cryo_infer_report rep;
    CHECK(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, &rep, &err) == 0);
    CHECK_EQ_INT(rep.tiles, 27);
    CHECK_EQ_INT(rep.skipped, 26);
    CHECK_EQ_INT(rep.passes, 1);
    const float *y = out.data;
    CHECK(y[0] != 0);
    CHECK(y[8] == 0 && y[cryo_volume_count(&out) - 1] == 0);
    cryo_volume_free(&v);
    cryo_volume_free(&out);
}

TEST(bad_options)
{
    setup();
    struct cryo_error err = {0};
    struct cryo_volume v, out, two;
    make_map(&v, 16, 16, 16, 4);
    cryo_volume_init(&out);
    cryo_volume_init(&two);
    struct cryo_infer_opts o;
    cryo_infer_opts_default(&o);
    o.tile[1] = 10; /* not a multiple of 4 */
    CHECK_EQ_INT(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, NULL, &err), CRYO_E_INVALID);
    cryo_infer_opts_default(&o);
    o.batch = 0;
    CHECK_EQ_INT(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, NULL, &err), CRYO_E_INVALID);
    cryo_infer_opts_default(&o);
    o.stride[0] = 80;
    CHECK_EQ_INT(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, NULL, &err), CRYO_E_INVALID);
    cryo_infer_opts_default(&o);
    o.max_bytes = 1000;
    CHECK_EQ_INT(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, NULL, &err), CRYO_E_NOMEM);
    CHECK(strstr(err.msg, "smaller tiles") != NULL);
    CHECK(cryo_volume_alloc(&two, CRYO_DTYPE_F32, 2, 8, 8, 8, &err) == 0);
    cryo_infer_opts_default(&o);
    CHECK_EQ_INT(cryo_infer_run(&out, &two, ctx, &cfg, weights, &o, NULL, &err), CRYO_E_INVALID);
    CHECK(out.data == NULL);
    cryo_volume_free(&v);
    cryo_volume_free(&two);
}

/* Progress calls, to compare their sequence between one and several contexts. */
struct calls {
    int n;
    int64_t done[256], total;
};

static void record(void *user, int64_t done, int64_t total)
{
    struct calls *c = user;
    if (c->n < 256)
        c->done[c->n] = done;
    c->n++;
    c->total = total;
}

/* A map with empty corners (values <= 0), so that 11 of its 60 tiles of 8 at stride 6 are
 * skipped: 49 batches of 1, 25 of 2, neither a multiple of 2 or 3. */
static int solvent(int64_t x, int64_t y, int64_t z)
{
    return (x < 17 && z < 11) || (x >= 23 && z >= 17) || (x >= 17 && y < 7 && z >= 17) ||
           (x >= 23 && y < 7 && z >= 11);
}

static void map_with_solvent(struct cryo_volume *v)
{
    make_map(v, 29, 17, 22, 5);
    float *d = v->data;
    for (int64_t z = 0; z < 22; z++)
        for (int64_t y = 0; y < 17; y++)
            for (int64_t x = 0; x < 29; x++)
                if (solvent(x, y, z))
                    d[(z * 17 + y) * 29 + x] = -0.25f;
}

TEST(several_contexts_equal_one_bit_for_bit)
{
    setup();
    struct cryo_error err = {0};
    struct cryo_nn_ctx *one = NULL, *many[3] = {NULL, NULL, NULL};
    int n3 = 0;
    /* the same thread count everywhere: the CPU backend's reductions depend on it only */
    CHECK(cryo_nn_ctx_create(&one, CRYO_NN_DEVICE_CPU, 1, &err) == 0);
    CHECK(cryo_infer_contexts_create(many, 3, &n3, "cpu,cpu,cpu", 3, &err) == 0);
    CHECK_EQ_INT(n3, 3);
    struct cryo_volume v;
    map_with_solvent(&v);
    for (int batch = 1; batch <= 2; batch++) {
        struct cryo_infer_opts o;
        cryo_infer_opts_default(&o);
        o.tile[0] = o.tile[1] = o.tile[2] = 8;
        o.stride[0] = o.stride[1] = o.stride[2] = 6;
        o.batch = batch;
        o.progress = record;
        struct calls c1 = {0};
        o.user = &c1;
        struct cryo_volume ref;
        cryo_volume_init(&ref);
        struct cryo_infer_report r1;
        CHECK(cryo_infer_run(&ref, &v, one, &cfg, weights, &o, &r1, &err) == 0);
        CHECK_EQ_INT(r1.tiles, 60);
        CHECK_EQ_INT(r1.skipped, 11);
        /* batches not a multiple of the context counts: the last round is uneven */
        CHECK_EQ_INT(r1.passes, batch == 1 ? 49 : 25);
        CHECK_EQ_INT(c1.done[c1.n - 1], r1.tiles);
        for (int nctx = 2; nctx <= 3; nctx++) {
            struct cryo_volume out;
            cryo_volume_init(&out);
            struct cryo_infer_report r;
            struct calls c = {0};
            o.user = &c;
            CHECK(cryo_infer_run_multi(&out, &v, many, nctx, &cfg, weights, &o, &r, &err) == 0);
            CHECK(out.data && memcmp(out.data, ref.data, cryo_volume_bytes(&ref)) == 0);
            CHECK_EQ_INT(r.tiles, r1.tiles);
            CHECK_EQ_INT(r.skipped, r1.skipped);
            CHECK_EQ_INT(r.passes, r1.passes);
            CHECK_EQ_INT(r.contexts, nctx);
            CHECK_EQ_INT(r1.contexts, 1);
            CHECK(r.flops == r1.flops && r.activation_bytes == r1.activation_bytes);
            /* the progress calls are the same, in the same order */
            CHECK_EQ_INT(c.n, c1.n);
            CHECK_EQ_INT(c.total, c1.total);
            CHECK(c.n <= 256 && memcmp(c.done, c1.done, (size_t)c.n * sizeof c.done[0]) == 0);
            cryo_volume_free(&out);
        }
        cryo_volume_free(&ref);
    }
    /* whole-map mode is one pass, on the first context */
    struct cryo_infer_opts o;
    cryo_infer_opts_default(&o);
    memset(o.tile, 0, sizeof o.tile);
    struct cryo_volume a, b;
    cryo_volume_init(&a);
    cryo_volume_init(&b);
    CHECK(cryo_infer_run(&a, &v, one, &cfg, weights, &o, NULL, &err) == 0);
    CHECK(cryo_infer_run_multi(&b, &v, many, 3, &cfg, weights, &o, NULL, &err) == 0);
    CHECK(b.data && memcmp(a.data, b.data, cryo_volume_bytes(&a)) == 0);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    cryo_volume_free(&v);
    cryo_nn_ctx_free(one);
    cryo_infer_contexts_free(many, n3);
}

TEST(several_contexts_refused)
{
    setup();
    struct cryo_error err = {0};
    struct cryo_nn_ctx *two[2] = {ctx, ctx};
    struct cryo_volume v, out;
    make_map(&v, 16, 16, 16, 6);
    cryo_volume_init(&out);
    struct cryo_infer_opts o;
    cryo_infer_opts_default(&o);
    o.tile[0] = o.tile[1] = o.tile[2] = 8;
    o.stride[0] = o.stride[1] = o.stride[2] = 8;
    CHECK_EQ_INT(cryo_infer_run_multi(&out, &v, two, 2, &cfg, weights, &o, NULL, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "twice") != NULL);
    CHECK_EQ_INT(cryo_infer_run_multi(&out, &v, two, 0, &cfg, weights, &o, NULL, &err), CRYO_E_INVALID);
    /* the activation budget: CPU contexts share host memory, so their sum counts */
    struct cryo_infer_report rep;
    CHECK(cryo_infer_run(&out, &v, ctx, &cfg, weights, &o, &rep, &err) == 0);
    struct cryo_nn_ctx *cpus[2] = {NULL, NULL};
    int n = 0;
    CHECK(cryo_infer_contexts_create(cpus, 2, &n, "cpu,cpu", 2, &err) == 0);
    o.max_bytes = 1.5 * rep.activation_bytes;
    struct cryo_volume out2;
    cryo_volume_init(&out2);
    CHECK(cryo_infer_run_multi(&out2, &v, cpus, 1, &cfg, weights, &o, NULL, &err) == 0);
    cryo_volume_free(&out2);
    CHECK_EQ_INT(cryo_infer_run_multi(&out2, &v, cpus, 2, &cfg, weights, &o, NULL, &err), CRYO_E_NOMEM);
    CHECK(strstr(err.msg, "2 CPU contexts") != NULL && out2.data == NULL);
    cryo_infer_contexts_free(cpus, n);
    cryo_volume_free(&v);
    cryo_volume_free(&out);
}

TEST(device_lists)
{
    struct cryo_error err = {0};
    struct cryo_nn_ctx *c[4] = {NULL, NULL, NULL, NULL};
    int n = -1;
    /* CPU contexts share the threads, the first ones taking the remainder */
    CHECK(cryo_infer_contexts_create(c, 4, &n, "cpu,cpu,cpu", 4, &err) == 0);
    CHECK_EQ_INT(n, 3);
    CHECK(strncmp(cryo_nn_ctx_name(c[0]), "cpu: 2 threads", 14) == 0);
    CHECK(strncmp(cryo_nn_ctx_name(c[1]), "cpu: 1 threads", 14) == 0);
    CHECK(strncmp(cryo_nn_ctx_name(c[2]), "cpu: 1 threads", 14) == 0);
    cryo_infer_contexts_free(c, n);
    CHECK(cryo_infer_contexts_create(c, 4, &n, "cpu", 3, &err) == 0);
    CHECK(n == 1 && strncmp(cryo_nn_ctx_name(c[0]), "cpu: 3 threads", 14) == 0);
    cryo_infer_contexts_free(c, n);
    static const char *const bad[] = {"", "cpu,,cpu", ",cpu", "cpu,", "cuda:x", "cuda:-1", "cuda:", "gpu",
                                      "auto,cpu", "cuda:0,cuda:0", "cuda:all,cuda:1", "cpu,cuda,cuda",
                                      "cpu,cpu,cpu,cpu,cpu", " cpu"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = -1;
        err.msg[0] = '\0';
        int rc = cryo_infer_contexts_create(c, 4, &n, bad[i], 2, &err);
        if (rc != CRYO_E_INVALID || n != 0 || !err.msg[0] || strchr(err.msg, '\n'))
            tu_fail(__FILE__, __LINE__, "device list '%s': %d, n %d, '%s'", bad[i], rc, n, err.msg);
    }
    /* cuda:7: without a plugin, a GPU or 8 GPUs, refused naming it */
    n = -1;
    CHECK(cryo_infer_contexts_create(c, 4, &n, "cpu,cuda:7", 2, &err) < 0);
    CHECK(n == 0 && strstr(err.msg, "cuda:7") != NULL);
    /* cuda:N through the named constructor */
    struct cryo_nn_ctx *one = NULL;
    CHECK_EQ_INT(cryo_nn_ctx_create_named(&one, "cuda:1x", 1, &err), CRYO_E_INVALID);
    CHECK(one == NULL && strstr(err.msg, "not a GPU index") != NULL);
}

int main(void)
{
    int rc = RUN_TESTS(whole_map_is_one_forward, tiles_merge_like_a_per_tile_reference, empty_tiles_are_skipped,
                       bad_options, several_contexts_equal_one_bit_for_bit, several_contexts_refused, device_lists);
    cryo_safetensors_free(weights);
    cryo_nn_ctx_free(ctx);
    return rc;
}
