/* layers_bench.c — per-layer speed of the engine's CPU backend (bench/layers.sh builds and
 * runs it next to bench/layers_torch.py).
 *
 *   layers_bench            one line per layer: "name fwd_ms fwdbwd_ms gflop"
 *   layers_bench --layout   oneDNN 3×3×3 conv forward with channels-last (ndhwc) vs blocked
 *                           (nCdhw16c, "any") activations, same primitive otherwise
 *
 * Times are the best of 7 runs after two warm-up calls (primitive creation and
 * workspace growth happen there, as in a training loop).
 */
#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cryolvm/nn_layers.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static struct cryo_nn_ctx *ctx;
static struct cryo_error err;

static float *buf(size_t n)
{
    float *p = cryo_nn_alloc(ctx, n, &err);
    if (!p) {
        fprintf(stderr, "layers_bench: %s\n", err.msg);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u % 1000) / 1000.0 - 0.5) * 0.1f;
    return p;
}

#define REPS 7
#define DIE(call)                                                       \
    do {                                                                \
        if ((call) != 0) {                                              \
            fprintf(stderr, "layers_bench: %s\n", err.msg);             \
            exit(1);                                                    \
        }                                                               \
    } while (0)

typedef void (*bench_fn)(void *st, int backward);

static double median_ms(bench_fn f, void *st, int backward)
{
    double t[REPS];
    f(st, backward);
    f(st, backward);
    for (int i = 0; i < REPS; i++) {
        double a = now();
        f(st, backward);
        t[i] = (now() - a) * 1e3;
    }
    qsort(t, REPS, sizeof t[0], cmp);
    return t[0]; /* best of REPS: on a shared machine the minimum is the uncontended time */
}

struct conv_b {
    struct cryo_nn_conv3d g;
    int tr;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
};

static void conv_run(void *p, int backward)
{
    struct conv_b *s = p;
    if (s->tr)
        DIE(cryo_nn_convt3d_forward(ctx, s->y, s->x, s->w, s->b, &s->g, &err));
    else
        DIE(cryo_nn_conv3d_forward(ctx, s->y, s->x, s->w, s->b, &s->g, &err));
    if (!backward)
        return;
    if (s->tr)
        DIE(cryo_nn_convt3d_backward(ctx, s->dx, s->dw, s->db, s->dy, s->x, s->w, &s->g, &err));
    else
        DIE(cryo_nn_conv3d_backward(ctx, s->dx, s->dw, s->db, s->dy, s->x, s->w, &s->g, &err));
}

static void bench_conv(const char *name, struct cryo_nn_conv3d g, int tr)
{
    struct conv_b s = {.g = g, .tr = tr};
    int od, oh, ow;
    DIE(cryo_nn_conv3d_out_dims(&g, tr, &od, &oh, &ow, &err));
    size_t nin = (size_t)g.n * g.d * g.h * g.w * g.cin, nout = (size_t)g.n * od * oh * ow * g.cout;
    size_t nw = (size_t)g.cin * g.cout * g.k * g.k * g.k;
    s.x = buf(nin), s.w = buf(nw), s.b = buf((size_t)g.cout), s.y = buf(nout), s.dy = buf(nout);
    s.dx = buf(nin), s.dw = buf(nw), s.db = buf((size_t)g.cout);
    /* MACs: every output voxel × cout × cin × k³ (conv); every input voxel for transposed */
    double vox = tr ? (double)g.n * g.d * g.h * g.w : (double)g.n * od * oh * ow;
    double gflop = 2.0 * vox * g.cin * g.cout * g.k * g.k * g.k * 1e-9;
    double f = median_ms(conv_run, &s, 0), fb = median_ms(conv_run, &s, 1);
    printf("%s %.3f %.3f %.4f\n", name, f, fb, gflop);
    fflush(stdout);
    cryo_nn_free(ctx, s.x), cryo_nn_free(ctx, s.w), cryo_nn_free(ctx, s.b), cryo_nn_free(ctx, s.y);
    cryo_nn_free(ctx, s.dy), cryo_nn_free(ctx, s.dx), cryo_nn_free(ctx, s.dw), cryo_nn_free(ctx, s.db);
}

struct wmsa_b {
    struct cryo_nn_wmsa a;
    float *x, *wq, *bq, *rel, *wp, *bp, *y, *cache, *dy, *dx, *dwq, *dbq, *drel, *dwp, *dbp;
};

static void wmsa_run(void *p, int backward)
{
    struct wmsa_b *s = p;
    DIE(cryo_nn_wmsa_forward(ctx, s->y, backward ? s->cache : NULL, s->x, s->wq, s->bq, s->rel, s->wp,
                             s->bp, &s->a, &err));
    if (backward)
        DIE(cryo_nn_wmsa_backward(ctx, s->dx, s->dwq, s->dbq, s->drel, s->dwp, s->dbp, s->dy, s->x,
                                  s->cache, s->wq, s->rel, s->wp, &s->a, &err));
}

static void bench_wmsa(const char *name, struct cryo_nn_wmsa a)
{
    struct wmsa_b s = {.a = a};
    int c = a.c, heads = c / a.head_dim, t = 2 * a.window - 1;
    size_t T = (size_t)a.n * a.d * a.h * a.w, n = T * c, ntab = (size_t)heads * t * t * t;
    size_t nc = cryo_nn_wmsa_cache_size(&a, &err);
    s.x = buf(n), s.wq = buf((size_t)3 * c * c), s.bq = buf((size_t)3 * c), s.rel = buf(ntab);
    s.wp = buf((size_t)c * c), s.bp = buf((size_t)c), s.y = buf(n), s.cache = buf(nc), s.dy = buf(n);
    s.dx = buf(n), s.dwq = buf((size_t)3 * c * c), s.dbq = buf((size_t)3 * c), s.drel = buf(ntab);
    s.dwp = buf((size_t)c * c), s.dbp = buf((size_t)c);
    int w3 = a.window * a.window * a.window;
    /* projections 2·T·c·4c, attention 2 matmuls of 2·T·w³·c */
    double gflop = (2.0 * T * c * 4 * c + 4.0 * T * w3 * c) * 1e-9;
    double f = median_ms(wmsa_run, &s, 0), fb = median_ms(wmsa_run, &s, 1);
    printf("%s %.3f %.3f %.4f\n", name, f, fb, gflop);
    fflush(stdout);
    float *ps[] = {s.x, s.wq, s.bq, s.rel, s.wp, s.bp, s.y, s.cache, s.dy, s.dx, s.dwq, s.dbq, s.drel, s.dwp, s.dbp};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        cryo_nn_free(ctx, ps[i]);
}

struct ew_b {
    int which;
    size_t n;
    int C;
    float *x, *y, *dy, *dx, *g, *b, *m, *r, *dg, *db, *t, *dt;
};

static void ew_run(void *p, int backward)
{
    struct ew_b *s = p;
    int64_t T = (int64_t)(s->n / s->C);
    switch (s->which) {
    case 0:
        DIE(cryo_nn_gelu_forward(ctx, s->y, s->x, s->n, &err));
        if (backward)
            DIE(cryo_nn_gelu_backward(ctx, s->dx, s->dy, s->x, s->n, &err));
        break;
    case 1:
        DIE(cryo_nn_layernorm_forward(ctx, s->y, s->m, s->r, s->x, s->g, s->b, T, s->C, 1e-5f, &err));
        if (backward)
            DIE(cryo_nn_layernorm_backward(ctx, s->dx, s->dg, s->db, s->dy, s->x, s->g, s->m, s->r, T, s->C, &err));
        break;
    case 2:
        DIE(cryo_nn_frn_forward(ctx, s->y, s->r, s->x, s->g, s->b, s->t, 1, T, s->C, 1e-6f, &err));
        if (backward)
            DIE(cryo_nn_frn_backward(ctx, s->dx, s->dg, s->db, s->dt, s->dy, s->x, s->g, s->b, s->t, s->r, 1, T,
                                     s->C, &err));
        break;
    }
}

static void bench_ew(const char *name, int which, size_t T, int C)
{
    struct ew_b s = {.which = which, .n = T * C, .C = C};
    s.x = buf(s.n), s.y = buf(s.n), s.dy = buf(s.n), s.dx = buf(s.n), s.g = buf((size_t)C), s.b = buf((size_t)C);
    s.t = buf((size_t)C), s.m = buf(T), s.r = buf(T), s.dg = buf((size_t)C), s.db = buf((size_t)C), s.dt = buf((size_t)C);
    double f = median_ms(ew_run, &s, 0), fb = median_ms(ew_run, &s, 1);
    printf("%s %.3f %.3f 0\n", name, f, fb);
    fflush(stdout);
    float *ps[] = {s.x, s.y, s.dy, s.dx, s.g, s.b, s.t, s.m, s.r, s.dg, s.db, s.dt};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        cryo_nn_free(ctx, ps[i]);
}

/* ---- activation layout: ndhwc vs blocked, oneDNN forward directly ---------------------- */

static double layout_run(int c, int s, dnnl_format_tag_t act)
{
    dnnl_engine_t eng;
    dnnl_stream_t str;
    dnnl_engine_create(&eng, dnnl_cpu, 0);
    dnnl_stream_create(&str, eng, dnnl_stream_default_flags);
    dnnl_dims_t sd = {1, c, s, s, s}, wd = {c, c, 3, 3, 3}, st = {1, 1, 1}, pd = {1, 1, 1};
    dnnl_memory_desc_t smd, dmd, wmd;
    dnnl_memory_desc_init_by_tag(&smd, 5, sd, dnnl_f32, act);
    dnnl_memory_desc_init_by_tag(&dmd, 5, sd, dnnl_f32, act);
    dnnl_memory_desc_init_by_tag(&wmd, 5, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_convolution_desc_t cd;
    dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &smd, &wmd, NULL,
                                       &dmd, st, pd, pd);
    dnnl_primitive_desc_t pdsc;
    dnnl_primitive_t prim;
    if (dnnl_primitive_desc_create(&pdsc, &cd, NULL, eng, NULL) != dnnl_success)
        return -1;
    dnnl_primitive_create(&prim, pdsc);
    const char *impl = NULL;
    dnnl_primitive_desc_query(pdsc, dnnl_query_impl_info_str, 0, &impl);
    dnnl_memory_t m[3];
    const dnnl_query_t q[3] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
    for (int i = 0; i < 3; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pdsc, q[i], 0);
        dnnl_memory_create(&m[i], md, eng, DNNL_MEMORY_ALLOCATE);
        void *h;
        dnnl_memory_get_data_handle(m[i], &h);
        memset(h, 0, dnnl_memory_desc_get_size(md));
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m[0]}, {DNNL_ARG_WEIGHTS, m[1]}, {DNNL_ARG_DST, m[2]}};
    double t[REPS];
    for (int i = 0; i < REPS + 2; i++) {
        double a = now();
        dnnl_primitive_execute(prim, str, 3, args);
        dnnl_stream_wait(str);
        if (i >= 2)
            t[i - 2] = now() - a;
    }
    qsort(t, REPS, sizeof t[0], cmp);
    double gflop = 2.0 * s * s * s * c * c * 27 * 1e-9;
    printf("layout c=%d s=%d %s impl=%s %.2f ms %.0f GFLOP/s\n", c, s, act == dnnl_ndhwc ? "ndhwc" : "blocked",
           impl ? impl : "?", t[0] * 1e3, gflop / t[0]);
    for (int i = 0; i < 3; i++)
        dnnl_memory_destroy(m[i]);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pdsc);
    dnnl_stream_destroy(str);
    dnnl_engine_destroy(eng);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = getenv("CRYO_THREADS") ? atoi(getenv("CRYO_THREADS")) : 2;
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, threads, &err)) {
        fprintf(stderr, "layers_bench: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "layers_bench: %s\n", cryo_nn_ctx_name(ctx));
    if (argc > 1 && !strcmp(argv[1], "--layout")) {
        int cs[2][2] = {{32, 48}, {64, 24}};
        for (int i = 0; i < 2; i++) {
            layout_run(cs[i][0], cs[i][1], dnnl_ndhwc);
            layout_run(cs[i][0], cs[i][1], dnnl_format_tag_any);
        }
        cryo_nn_ctx_free(ctx);
        return 0;
    }
    const char *only = argc > 1 ? argv[1] : NULL;
#define WANT(n) (!only || strstr(n, only))
    if (WANT("conv3_c32_48"))
        bench_conv("conv3_c32_48", (struct cryo_nn_conv3d){1, 48, 48, 48, 32, 32, 3, 1, 1, 1}, 0);
    if (WANT("conv3_c64_24"))
        bench_conv("conv3_c64_24", (struct cryo_nn_conv3d){1, 24, 24, 24, 64, 64, 3, 1, 1, 1}, 0);
    if (WANT("conv3_c1to32_48"))
        bench_conv("conv3_c1to32_48", (struct cryo_nn_conv3d){1, 48, 48, 48, 1, 32, 3, 1, 1, 0}, 0);
    if (WANT("conv1_c64_48"))
        bench_conv("conv1_c64_48", (struct cryo_nn_conv3d){1, 48, 48, 48, 64, 64, 1, 1, 0, 1}, 0);
    if (WANT("down2_c32to64_48"))
        bench_conv("down2_c32to64_48", (struct cryo_nn_conv3d){1, 48, 48, 48, 32, 64, 2, 2, 0, 0}, 0);
    if (WANT("up2_c64to32_24"))
        bench_conv("up2_c64to32_24", (struct cryo_nn_conv3d){1, 24, 24, 24, 64, 32, 2, 2, 0, 0}, 1);
    if (WANT("wmsa_c32_48"))
        bench_wmsa("wmsa_c32_48", (struct cryo_nn_wmsa){1, 48, 48, 48, 32, 16, 4, 1});
    if (WANT("wmsa_c64_24"))
        bench_wmsa("wmsa_c64_24", (struct cryo_nn_wmsa){1, 24, 24, 24, 64, 16, 4, 1});
    if (WANT("wmsa_global_c192_8"))
        bench_wmsa("wmsa_global_c192_8", (struct cryo_nn_wmsa){2, 8, 8, 8, 192, 32, 8, 0});
    if (WANT("gelu_c128_48"))
        bench_ew("gelu_c128_48", 0, 48 * 48 * 48, 128);
    if (WANT("layernorm_c32_48"))
        bench_ew("layernorm_c32_48", 1, 48 * 48 * 48, 32);
    if (WANT("frn_c32_48"))
        bench_ew("frn_c32_48", 2, 48 * 48 * 48, 32);
    cryo_nn_ctx_free(ctx);
    return 0;
}
