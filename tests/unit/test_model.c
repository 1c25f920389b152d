/* test_model.c — SCUNet-3D: config parsing, parameter table, refusals, inference equals
 * training forward, gradients by finite differences, checkpoint round trips, bit-identical
 * resume, and an overfit test (a small network learns one degraded → clean map pair).
 *
 * The tight check against PyTorch (output and every parameter gradient) is in
 * tests/bats/engine-model.bats with tests/ref/torch_scunet.py;
 *   test_model --dump-jepa DIR   writes DIR/jepa.safetensors (weights, inputs, mask, our
 *                                outputs and gradients) for `torch_scunet.py jepa`;
 *   test_model --dump-train DIR  two training steps: DIR/w0.safetensors, batch.safetensors,
 *                                w2.safetensors for `torch_scunet.py train-steps`.
 */
#include "cryolvm/mem.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/nn_train.h"
#include "cryolvm/safetensors.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

static struct cryo_nn_ctx *ctx;

static void small_config(struct cryo_scunet_config *c)
{
    cryo_scunet_config_default(c);
    struct cryo_error e = {0};
    int rc = cryo_scunet_config_parse(c, "width=8,head_dim=4,levels=2,depth=2,mlp_ratio=2", &e);
    if (rc)
        tu_fail(__FILE__, __LINE__, "small config: %s", e.msg);
}

static void fill_rand(float *x, size_t n, uint64_t seed, double scale)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * tu_rand(&s));
}

TEST(config_parse_and_errors)
{
    struct cryo_scunet_config c, d;
    struct cryo_error e = {0};
    cryo_scunet_config_default(&c);
    CHECK(cryo_scunet_config_check(&c, &e) == 0);
    CHECK(cryo_scunet_config_parse(&c, "width=64,depth=1", &e) == 0);
    CHECK(c.width == 64 && c.depth == 1 && c.levels == 3);
    char buf[256];
    cryo_scunet_config_format(&c, buf, sizeof buf);
    cryo_scunet_config_default(&d);
    CHECK(cryo_scunet_config_parse(&d, buf, &e) == 0 && memcmp(&c, &d, sizeof c) == 0);
    struct cryo_scunet_config before = c;
    CHECK(cryo_scunet_config_parse(&c, "widht=16", &e) == CRYO_E_INVALID && strstr(e.msg, "widht"));
    CHECK(cryo_scunet_config_parse(&c, "width=16x", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "width=", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "width=24", &e) == CRYO_E_INVALID); /* 12 not a multiple of 16 */
    CHECK(cryo_scunet_config_parse(&c, "window=3", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "levels=0", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "depth", &e) == CRYO_E_INVALID);
    CHECK(memcmp(&c, &before, sizeof c) == 0); /* a failed parse changes nothing */
}

/* Issue 12: "-0" read back as +0, blanks and CR refused, configs compared by value. */
TEST(config_normalised_and_strict)
{
    struct cryo_scunet_config c, d;
    struct cryo_error e = {0};
    cryo_scunet_config_default(&c);
    CHECK(cryo_scunet_config_parse(&c, "drop_path=-0", &e) == 0);
    CHECK(c.drop_path == 0 && !signbit(c.drop_path));
    cryo_scunet_config_default(&d);
    CHECK(memcmp(&c, &d, sizeof c) == 0 && cryo_scunet_config_equal(&c, &d));
    char buf[256];
    cryo_scunet_config_format(&c, buf, sizeof buf);
    CHECK(strstr(buf, "drop_path") == NULL);
    CHECK(cryo_scunet_config_parse(&c, "drop_path=-0.0,width=+032", &e) == 0);
    CHECK(c.drop_path == 0 && !signbit(c.drop_path) && c.width == 32);
    CHECK(cryo_scunet_config_parse(&c, "drop_path=-0.1", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "width= 64", &e) == CRYO_E_INVALID && strstr(e.msg, "width"));
    CHECK(cryo_scunet_config_parse(&c, "width=\r64", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "width=64\r", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "drop_path= 0.5", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "drop_path=0x0.8", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c, "drop_path=\t0.5", &e) == CRYO_E_INVALID);
    /* equality is by value: a negative zero written into the struct still compares equal */
    d = c;
    d.drop_path = -0.0;
    c.drop_path = 0.0;
    CHECK(cryo_scunet_config_equal(&c, &d));
    d.width = 64;
    CHECK(!cryo_scunet_config_equal(&c, &d));
}

TEST(param_table_consistent)
{
    struct cryo_scunet_config c;
    cryo_scunet_config_default(&c);
    struct cryo_error e = {0};
    size_t count = 0;
    CHECK(cryo_scunet_param_count(&c, &count, &e) == 0);
    /* "about 4.7 M parameters" for the default network */
    CHECK(count > 4500000 && count < 4900000);
    struct cryo_scunet *m = NULL;
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, 8, 8, 8, 0, &e) == 0);
    if (!m)
        return;
    size_t n;
    const struct cryo_nn_param *t = cryo_scunet_params(m, &n);
    size_t off = 0, nodecay = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        size_t cnt = 1;
        for (int k = 0; k < t[i].ndim; k++)
            cnt *= (size_t)t[i].shape[k];
        ok &= t[i].offset == off && t[i].count == cnt;
        off += cnt;
        for (size_t j = 0; j < i; j++)
            ok &= strcmp(t[i].name, t[j].name) != 0;
        /* decay exactly on conv and linear weights */
        int is_w = strstr(t[i].name, ".weight") && !strstr(t[i].name, "ln");
        ok &= t[i].decay == is_w;
        nodecay += !t[i].decay;
    }
    CHECK(ok);
    CHECK(off == count && cryo_scunet_num_params(m) == count);
    CHECK(nodecay > 0);
    /* FLOPs are linear in the batch and grow with the box */
    double f1, f2, f3;
    CHECK(cryo_scunet_flops(&c, 1, 48, 48, 48, &f1, &e) == 0);
    CHECK(cryo_scunet_flops(&c, 2, 48, 48, 48, &f2, &e) == 0);
    CHECK(cryo_scunet_flops(&c, 1, 64, 64, 64, &f3, &e) == 0);
    CHECK_CLOSE(f2, 2 * f1, 1e-12);
    CHECK(f3 > 2 * f1 && f3 < 3 * f1);
    cryo_scunet_free(m);
}

TEST(bad_boxes_refused)
{
    struct cryo_scunet_config c;
    cryo_scunet_config_default(&c);
    struct cryo_error e = {0};
    struct cryo_scunet *m = NULL;
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, 12, 16, 16, 0, &e) == CRYO_E_INVALID && !m);
    CHECK(strstr(e.msg, "multiple of 8") != NULL);
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, 4, 8, 8, 0, &e) == CRYO_E_INVALID && !m);
    CHECK(cryo_scunet_create(&m, &c, ctx, 0, 8, 8, 8, 0, &e) == CRYO_E_INVALID && !m);
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, 1 << 20, 1 << 20, 1 << 20, 0, &e) < 0 && !m);
    c.window = 5;
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, 8, 8, 8, 0, &e) == CRYO_E_INVALID && !m);
}

/* Inference mode (shared block buffers, no saved statistics) gives the training forward. */
TEST(inference_equals_training_forward)
{
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_error e = {0};
    struct cryo_scunet *a = NULL, *b = NULL;
    CHECK(cryo_scunet_create(&a, &c, ctx, 2, 8, 12, 16, 0, &e) == 0);
    CHECK(cryo_scunet_create(&b, &c, ctx, 2, 8, 12, 16, 1, &e) == 0);
    if (!a || !b)
        goto out;
    CHECK(cryo_scunet_init(a, 42, &e) == 0 && cryo_scunet_init(b, 42, &e) == 0);
    size_t n = cryo_scunet_input_count(a);
    fill_rand(cryo_scunet_input(a), n, 7, 1.0);
    memcpy(cryo_scunet_input(b), cryo_scunet_input(a), n * sizeof(float));
    CHECK(cryo_scunet_forward(a, &e) == 0 && cryo_scunet_forward(b, &e) == 0);
    CHECK_REL_ERR(cryo_scunet_output(a), cryo_scunet_output(b), cryo_scunet_output_count(a), 1e-6);
    double s = 0;
    for (size_t i = 0; i < cryo_scunet_output_count(a); i++)
        s += fabs(cryo_scunet_output(a)[i]);
    CHECK(s > 0 && isfinite(s));
    CHECK(cryo_scunet_backward(a, cryo_scunet_output(a), &e) == CRYO_E_INVALID);
out:
    cryo_scunet_free(a);
    cryo_scunet_free(b);
}

/* L = Σ out·R; dL/dθ by central differences on a sample of parameters of every kind. */
TEST(gradients_finite_differences)
{
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_error e = {0};
    struct cryo_scunet *m = NULL;
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, 8, 8, 12, 1, &e) == 0);
    if (!m)
        return;
    CHECK(cryo_scunet_init(m, 3, &e) == 0);
    /* Perturb the norm parameters away from their 1/0 init so every path is generic, and
     * put the FRN thresholds τ far below: the TLU max(y, τ) has a kink at every voxel
     * near τ, and crossing kinks would make central differences meaningless (the kinks
     * are checked against PyTorch autograd instead). */
    size_t ntab, np = cryo_scunet_num_params(m);
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &ntab);
    float *p = cryo_scunet_param_data(m);
    uint64_t s = 99;
    for (size_t i = 0; i < ntab; i++)
        if (!tab[i].decay)
            for (size_t j = 0; j < tab[i].count; j++)
                p[tab[i].offset + j] += (float)(0.1 * tu_rand(&s)) - (strstr(tab[i].name, "tau") ? 10.0f : 0.0f);
    size_t nin = cryo_scunet_input_count(m), nout = cryo_scunet_output_count(m);
    fill_rand(cryo_scunet_input(m), nin, 5, 1.0);
    float *R = malloc(nout * sizeof *R);
    fill_rand(R, nout, 6, 1.0);
    CHECK(cryo_scunet_forward(m, &e) == 0);
    CHECK(cryo_scunet_zero_grad(m, &e) == 0);
    CHECK(cryo_scunet_backward(m, R, &e) == 0);
    float *g = malloc(np * sizeof *g);
    memcpy(g, cryo_scunet_grad_data(m), np * sizeof *g);
    double gmax = 0;
    for (size_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(g[i]));
    int checked = 0, bad = 0;
    for (size_t t = 0; t < ntab; t++) {
        /* the element of largest gradient in each tensor, plus one fixed element */
        size_t best = 0;
        for (size_t j = 0; j < tab[t].count; j++)
            if (fabs(g[tab[t].offset + j]) > fabs(g[tab[t].offset + best]))
                best = j;
        size_t cand[1] = {best};
        for (int k = 0; k < 1; k++) {
            size_t i = tab[t].offset + cand[k];
            float keep = p[i];
            double h = 1e-3, L[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                p[i] = keep + (float)(sgn ? -h : h);
                CHECK(cryo_scunet_forward(m, &e) == 0);
                double acc = 0;
                for (size_t o = 0; o < nout; o++)
                    acc += (double)cryo_scunet_output(m)[o] * R[o];
                L[sgn] = acc;
            }
            p[i] = keep;
            double fd = (L[0] - L[1]) / (2 * h);
            checked++;
            if (!(fabs(fd - g[i]) <= 2e-3 * gmax + 2e-2 * fabs(g[i]))) {
                bad++;
                tu_fail(__FILE__, __LINE__, "%s[%zu]: backward %.6g, finite difference %.6g",
                        tab[t].name, cand[k], g[i], fd);
            }
        }
    }
    CHECK(checked > 50 && bad == 0);
    free(R);
    free(g);
    cryo_scunet_free(m);
}

TEST(weights_save_load_roundtrip)
{
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_error e = {0};
    struct cryo_scunet *a = NULL, *b = NULL;
    CHECK(cryo_scunet_create(&a, &c, ctx, 1, 8, 8, 8, 0, &e) == 0);
    CHECK(cryo_scunet_create(&b, &c, ctx, 1, 16, 8, 8, 0, &e) == 0);
    if (!a || !b)
        goto out;
    CHECK(cryo_scunet_init(a, 11, &e) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", tu_tmpdir());
    CHECK(cryo_scunet_save(a, path, &e) == 0);
    struct cryo_safetensors *st = NULL;
    CHECK(cryo_safetensors_read(&st, path, &e) == 0);
    struct cryo_scunet_config d;
    CHECK(st && cryo_scunet_config_from_file(st, &d, &e) == 0 && memcmp(&c, &d, sizeof c) == 0);
    CHECK(st && cryo_scunet_load(b, st, &e) == 0);
    CHECK(memcmp(cryo_scunet_param_data(a), cryo_scunet_param_data(b),
                 cryo_scunet_num_params(a) * sizeof(float)) == 0);
    /* weights of another config are refused by name and shape */
    struct cryo_scunet_config other = c;
    other.width = 16;
    other.head_dim = 8;
    struct cryo_scunet *o = NULL;
    CHECK(cryo_scunet_create(&o, &other, ctx, 1, 8, 8, 8, 0, &e) == 0);
    CHECK(o && st && cryo_scunet_load(o, st, &e) == CRYO_E_FORMAT && strstr(e.msg, "shape"));
    cryo_scunet_free(o);
    /* issue 12: the same verdicts before any network is built */
    CHECK(st && cryo_scunet_weights_check(st, &c, &e) == 0);
    CHECK(st && cryo_scunet_weights_check(st, &other, &e) == CRYO_E_FORMAT && strstr(e.msg, "shape") &&
          strstr(e.msg, "w.safetensors"));
    struct cryo_scunet_config huge = c;
    CHECK(cryo_scunet_config_parse(&huge, "width=4096,levels=4,depth=16,head_dim=256,mlp_ratio=16", &e) == 0);
    CHECK(st && cryo_scunet_weights_check(st, &huge, &e) == CRYO_E_FORMAT && strstr(e.msg, "head.weight"));
    cryo_safetensors_free(st);
out:
    cryo_scunet_free(a);
    cryo_scunet_free(b);
}

/* A smooth random "map": a few Gaussian blobs. */
static void blobs(float *x, int d, int h, int w, uint64_t seed)
{
    uint64_t s = seed;
    memset(x, 0, sizeof(float) * (size_t)d * h * w);
    for (int b = 0; b < 6; b++) {
        double cz = (tu_rand(&s) + 1) / 2 * d, cy = (tu_rand(&s) + 1) / 2 * h, cx = (tu_rand(&s) + 1) / 2 * w;
        double amp = 0.5 + 0.5 * (tu_rand(&s) + 1) / 2, sig = 1.5 + (tu_rand(&s) + 1);
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    double r2 = (z - cz) * (z - cz) + (y - cy) * (y - cy) + (xx - cx) * (xx - cx);
                    x[((size_t)z * h + y) * w + xx] += (float)(amp * exp(-r2 / (2 * sig * sig)));
                }
    }
}

/* Degrade: 3×3×3 box blur plus uniform noise. */
static void degrade(float *out, const float *in, int d, int h, int w, uint64_t seed)
{
    uint64_t s = seed;
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0;
                int cnt = 0;
                for (int dz = -1; dz <= 1; dz++)
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int zz = z + dz, yy = y + dy, xx = x + dx;
                            if (zz < 0 || yy < 0 || xx < 0 || zz >= d || yy >= h || xx >= w)
                                continue;
                            acc += in[((size_t)zz * h + yy) * w + xx];
                            cnt++;
                        }
                out[((size_t)z * h + y) * w + x] = (float)(acc / cnt + 0.1 * tu_rand(&s));
            }
}

static void train_opts(struct cryo_train_opts *o)
{
    cryo_train_opts_default(o);
    o->adamw.weight_decay = 0.0;
    o->sched.lr = 2e-3;
    o->sched.min_lr = 1e-4;
    o->sched.warmup = 10;
    o->sched.total = 400;
    o->clip = 1.0;
    o->ema_decay = 0.99;
}

TEST(overfit_one_pair)
{
    struct cryo_scunet_config c;
    cryo_scunet_config_default(&c);
    struct cryo_error e = {0};
    CHECK(cryo_scunet_config_parse(&c, "width=16,head_dim=8,levels=2,depth=1", &e) == 0);
    const int D = 16;
    struct cryo_scunet *m = NULL;
    CHECK(cryo_scunet_create(&m, &c, ctx, 1, D, D, D, 1, &e) == 0);
    if (!m)
        return;
    CHECK(cryo_scunet_init(m, 1, &e) == 0);
    size_t n = (size_t)D * D * D;
    float *target = malloc(n * sizeof *target), *input = malloc(n * sizeof *input);
    blobs(target, D, D, D, 5);
    degrade(input, target, D, D, D, 6);
    struct cryo_train_opts o;
    train_opts(&o);
    struct cryo_trainer *t = NULL;
    CHECK(cryo_trainer_create(&t, m, &o, &e) == 0);
    if (!t)
        goto out;
    /* "within a minute on CPU": CPU time of the process, so that a loaded shared machine
     * does not fail the test; 2 threads for a minute = 120 CPU seconds. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    double first = 0, last = 0, secs = 0;
    int steps = 0;
    for (; steps < 400; steps++) {
        if (cryo_trainer_step(t, input, target, &e) < 0) {
            tu_fail(__FILE__, __LINE__, "step %d: %s", steps, e.msg);
            break;
        }
        if (steps == 0)
            first = t->last_loss;
        last = t->last_loss;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (last < first / 100 || secs > 120)
            break;
    }
    printf("overfit: loss %.4g -> %.4g in %d steps, %.1f CPU s\n", first, last, steps + 1, secs);
    CHECK(last < first / 100);
    CHECK(secs <= 120);
out:
    cryo_trainer_free(t);
    free(target);
    free(input);
    cryo_scunet_free(m);
}

/* 4 steps straight vs 2 steps + save + fresh model/trainer + load + 2 steps: same bits.
 * One thread: with two, the CPU window-attention backward sums its relative-position-bias
 * gradient in a thread-schedule-dependent order (libcore/cpu/cpu_wmsa.c, dynamic schedule),
 * so two identical runs already differ in the last bit; resume itself adds nothing. */
TEST(resume_bit_identical)
{
    struct cryo_nn_ctx *ctx2 = ctx, *ctx1 = NULL;
    struct cryo_error e0 = {0};
    CHECK(cryo_nn_ctx_create(&ctx1, CRYO_NN_DEVICE_CPU, 1, &e0) == 0);
    if (!ctx1)
        return;
    ctx = ctx1;
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_error e = {0};
    const int D = 8;
    size_t n = (size_t)2 * D * D * D;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    fill_rand(x, n, 1, 1.0);
    fill_rand(y, n, 2, 1.0);
    struct cryo_train_opts o;
    train_opts(&o);
    o.adamw.weight_decay = 0.05;
    o.sched.total = 8;
    o.sched.warmup = 2;
    struct cryo_scunet *a = NULL, *b = NULL;
    struct cryo_trainer *ta = NULL, *tb = NULL;
    struct cryo_safetensors *st = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/train.safetensors", tu_tmpdir());
    CHECK(cryo_scunet_create(&a, &c, ctx, 2, D, D, D, 1, &e) == 0);
    CHECK(a && cryo_scunet_init(a, 9, &e) == 0 && cryo_trainer_create(&ta, a, &o, &e) == 0);
    if (!ta)
        goto out;
    for (int i = 0; i < 2; i++)
        CHECK(cryo_trainer_step(ta, x, y, &e) == 0);
    CHECK(cryo_trainer_save(ta, path, &e) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(cryo_trainer_step(ta, x, y, &e) == 0);

    CHECK(cryo_scunet_create(&b, &c, ctx, 2, D, D, D, 1, &e) == 0);
    CHECK(b && cryo_scunet_init(b, 12345, &e) == 0 && cryo_trainer_create(&tb, b, &o, &e) == 0);
    if (!tb)
        goto out;
    CHECK(cryo_safetensors_read(&st, path, &e) == 0);
    CHECK(st && cryo_trainer_load(tb, st, &e) == 0);
    CHECK(tb->step == 2);
    for (int i = 0; i < 2; i++)
        CHECK(cryo_trainer_step(tb, x, y, &e) == 0);
    size_t np = cryo_scunet_num_params(a);
    CHECK(ta->step == 4 && tb->step == 4);
    CHECK(memcmp(cryo_scunet_param_data(a), cryo_scunet_param_data(b), np * sizeof(float)) == 0);
    CHECK(memcmp(ta->m, tb->m, np * sizeof(float)) == 0 && memcmp(ta->v, tb->v, np * sizeof(float)) == 0);
    CHECK(memcmp(ta->ema, tb->ema, np * sizeof(float)) == 0);
    CHECK(ta->rng == tb->rng);
    /* and training really changed the weights */
    struct cryo_scunet *fresh = NULL;
    CHECK(cryo_scunet_create(&fresh, &c, ctx, 1, D, D, D, 0, &e) == 0);
    if (fresh) {
        CHECK(cryo_scunet_init(fresh, 9, &e) == 0);
        CHECK(memcmp(cryo_scunet_param_data(a), cryo_scunet_param_data(fresh), np * sizeof(float)) != 0);
        cryo_scunet_free(fresh);
    }
    /* a weights-only file is not a training checkpoint */
    char wpath[512];
    snprintf(wpath, sizeof wpath, "%s/w.safetensors", tu_tmpdir());
    CHECK(cryo_scunet_save(a, wpath, &e) == 0);
    struct cryo_safetensors *w = NULL;
    CHECK(cryo_safetensors_read(&w, wpath, &e) == 0);
    CHECK(w && cryo_trainer_load(tb, w, &e) == CRYO_E_FORMAT);
    cryo_safetensors_free(w);
out:
    cryo_safetensors_free(st);
    cryo_trainer_free(ta);
    cryo_trainer_free(tb);
    cryo_scunet_free(a);
    cryo_scunet_free(b);
    free(x);
    free(y);
    cryo_nn_ctx_free(ctx1);
    ctx = ctx2;
    omp_set_num_threads(2);
}

/* ---- JEPA parts ------------------------------------------------------------------------ */

static void jepa_small(struct cryo_jepa_config *j)
{
    struct cryo_scunet_config c;
    small_config(&c);
    cryo_jepa_config_default(j, &c);
    j->embed = 24;
    j->head_dim = 8;
    j->depth = 2;
    j->mlp_ratio = 2;
}

TEST(jepa_posenc_and_refusals)
{
    struct cryo_jepa_config c;
    jepa_small(&c);
    struct cryo_error e = {0};
    struct cryo_jepa *j = NULL;
    CHECK(cryo_jepa_create(&j, &c, ctx, 1, 17, 2, 2, 0, &e) == CRYO_E_INVALID && !j);
    c.embed = 20;
    CHECK(cryo_jepa_create(&j, &c, ctx, 1, 2, 2, 2, 0, &e) == CRYO_E_INVALID && !j);
    jepa_small(&c);
    CHECK(cryo_jepa_create(&j, &c, ctx, 2, 3, 2, 4, 0, &e) == 0);
    if (!j)
        return;
    /* token (s=1, z=2, y=1, x=3): sin/cos of each coordinate times ω_i = 10000^(−i/4) */
    const float *P = cryo_jepa_posenc(j) + (size_t)((((1 * 3 + 2) * 2 + 1) * 4) + 3) * 24;
    int q = 4, ok = 1, u[3] = {2, 1, 3};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < q; i++) {
            double w = pow(10000.0, -(double)i / q);
            ok &= tu_close(P[a * 8 + i], sin(u[a] * w), 1e-6) && tu_close(P[a * 8 + q + i], cos(u[a] * w), 1e-6);
        }
    CHECK(ok);
    CHECK(cryo_jepa_backward(j, cryo_jepa_pred(j), NULL, &e) == CRYO_E_INVALID);
    cryo_jepa_free(j);
}

/* The predictor sees masked tokens only through the mask token: changing a masked token's
 * features changes nothing, and the mask token gets gradient only when something is masked. */
TEST(jepa_masking_semantics)
{
    struct cryo_jepa_config c;
    jepa_small(&c);
    struct cryo_error e = {0};
    struct cryo_jepa *j = NULL;
    CHECK(cryo_jepa_create(&j, &c, ctx, 1, 2, 3, 2, 1, &e) == 0);
    if (!j)
        return;
    CHECK(cryo_jepa_init(j, 5, &e) == 0);
    size_t T = cryo_jepa_tokens(j), F = (size_t)c.features, E = (size_t)c.embed;
    fill_rand(cryo_jepa_features(j), T * F, 3, 1.0);
    uint8_t mask[12] = {0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0};
    CHECK(cryo_jepa_set_mask(j, mask, &e) == 0);
    CHECK(cryo_jepa_forward(j, &e) == 0);
    float *a = malloc(T * E * sizeof *a);
    memcpy(a, cryo_jepa_pred(j), T * E * sizeof *a);
    cryo_jepa_features(j)[1 * F + 3] += 5.0f; /* token 1 is masked */
    CHECK(cryo_jepa_forward(j, &e) == 0);
    CHECK(memcmp(a, cryo_jepa_pred(j), T * E * sizeof *a) == 0);
    cryo_jepa_features(j)[2 * F + 3] += 5.0f; /* token 2 is not */
    CHECK(cryo_jepa_forward(j, &e) == 0);
    CHECK(memcmp(a, cryo_jepa_pred(j), T * E * sizeof *a) != 0);
    /* backward: masked rows of d(features) are zero, the mask token has a gradient */
    CHECK(cryo_jepa_zero_grad(j, &e) == 0);
    CHECK(cryo_jepa_backward(j, a, NULL, &e) == 0);
    size_t n;
    const struct cryo_nn_param *tab = cryo_jepa_params(j, &n);
    const float *gm = cryo_jepa_grad_data(j) + tab[2].offset;
    double s = 0, sd = 0;
    for (size_t i = 0; i < E; i++)
        s += fabs(gm[i]);
    for (size_t i = 0; i < F; i++)
        sd += fabs(cryo_jepa_dfeatures(j)[1 * F + i]);
    CHECK(strcmp(tab[2].name, "mask_token") == 0 && s > 0 && sd == 0);
    free(a);
    cryo_jepa_free(j);
}

/* Encoder-only model: d(bottleneck) → parameter gradients by central differences, decoder
 * gradients zero, and the bottleneck equals the first half of the full network's forward
 * (checked through the encoder's own output shape and the finite differences). */
TEST(encoder_only_gradients)
{
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_error e = {0};
    struct cryo_scunet *m = NULL;
    CHECK(cryo_scunet_create_encoder(&m, &c, ctx, 1, 8, 8, 12, 1, &e) == 0);
    if (!m)
        return;
    CHECK(cryo_scunet_init(m, 4, &e) == 0);
    size_t ntab, np = cryo_scunet_num_params(m), nout = cryo_scunet_output_count(m);
    CHECK(nout == (size_t)(2 * 2 * 3) * (size_t)(c.width << c.levels));
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &ntab);
    float *p = cryo_scunet_param_data(m);
    for (size_t i = 0; i < ntab; i++)
        if (strstr(tab[i].name, "tau"))
            for (size_t k = 0; k < tab[i].count; k++)
                p[tab[i].offset + k] = -10.0f; /* no TLU kinks for central differences */
    fill_rand(cryo_scunet_input(m), cryo_scunet_input_count(m), 8, 1.0);
    float *R = malloc(nout * sizeof *R);
    fill_rand(R, nout, 9, 1.0);
    CHECK(cryo_scunet_forward(m, &e) == 0 && cryo_scunet_zero_grad(m, &e) == 0);
    CHECK(cryo_scunet_backward(m, R, &e) == 0);
    float *g = malloc(np * sizeof *g);
    memcpy(g, cryo_scunet_grad_data(m), np * sizeof *g);
    double gmax = 0;
    for (size_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(g[i]));
    int checked = 0, bad = 0, dec_nonzero = 0;
    for (size_t t = 0; t < ntab; t++) {
        int dec = strncmp(tab[t].name, "dec.", 4) == 0 || strncmp(tab[t].name, "tail.", 5) == 0;
        size_t best = 0;
        for (size_t k = 0; k < tab[t].count; k++) {
            dec_nonzero += dec && g[tab[t].offset + k] != 0;
            if (fabs(g[tab[t].offset + k]) > fabs(g[tab[t].offset + best]))
                best = k;
        }
        if (dec || t % 3) /* a third of the encoder tensors keeps the test short */
            continue;
        size_t i = tab[t].offset + best;
        float keep = p[i];
        double h = 1e-3, L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            p[i] = keep + (float)(sgn ? -h : h);
            CHECK(cryo_scunet_forward(m, &e) == 0);
            double acc = 0;
            for (size_t o = 0; o < nout; o++)
                acc += (double)cryo_scunet_output(m)[o] * R[o];
            L[sgn] = acc;
        }
        p[i] = keep;
        double fd = (L[0] - L[1]) / (2 * h);
        checked++;
        if (!(fabs(fd - g[i]) <= 2e-3 * gmax + 2e-2 * fabs(g[i]))) {
            bad++;
            tu_fail(__FILE__, __LINE__, "%s: backward %.6g, finite difference %.6g", tab[t].name, g[i], fd);
        }
    }
    CHECK(checked > 20 && bad == 0 && dec_nonzero == 0);
    free(R);
    free(g);
    cryo_scunet_free(m);
}

static void jepa_train_run(enum cryo_jepa_mode mode, double *first, double *last, int steps)
{
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_jepa_config jc;
    cryo_jepa_config_default(&jc, &c);
    jc.embed = 24;
    jc.head_dim = 8;
    jc.depth = 1;
    struct cryo_jepa_train_opts o;
    cryo_jepa_train_opts_default(&o);
    o.mode = mode;
    o.sched.lr = 2e-3;
    o.sched.warmup = 3;
    o.ema_decay = 0.9;
    struct cryo_error e = {0};
    struct cryo_jepa_trainer *t = NULL;
    const int D = 16, N = 2;
    CHECK(cryo_jepa_trainer_create(&t, &c, &jc, &o, ctx, N, D, D, D, 3, &e) == 0);
    if (!t)
        return;
    size_t n = (size_t)D * D * D;
    float *x = malloc(N * n * sizeof *x);
    blobs(x, D, D, D, 21);
    blobs(x + n, D, D, D, 22);
    size_t ne = cryo_scunet_num_params(t->enc);
    float *old_t = malloc(ne * sizeof *old_t);
    *first = *last = 0;
    for (int s = 0; s < steps; s++) {
        memcpy(old_t, cryo_scunet_param_data(t->tenc), ne * sizeof *old_t);
        if (cryo_jepa_trainer_step(t, x, &e) < 0) {
            tu_fail(__FILE__, __LINE__, "step %d: %s", s, e.msg);
            break;
        }
        /* the target encoder is the EMA of the context encoder */
        const float *pc = cryo_scunet_param_data(t->enc), *pt = cryo_scunet_param_data(t->tenc);
        int ema_ok = 1;
        for (size_t i = 0; i < ne; i += 97)
            ema_ok &= tu_close(pt[i], 0.9 * old_t[i] + 0.1 * pc[i], 1e-5);
        CHECK(ema_ok);
        if (s < 3)
            *first += t->last_loss / 3;
        if (s >= steps - 3)
            *last += t->last_loss / 3;
    }
    free(old_t);
    free(x);
    cryo_jepa_trainer_free(t);
}

TEST(jepa_and_mae_pretraining_learn)
{
    double f, l;
    jepa_train_run(CRYO_JEPA_MAE, &f, &l, 40);
    printf("MAE pre-training: loss %.4g -> %.4g\n", f, l);
    CHECK(l < 0.5 * f);
    jepa_train_run(CRYO_JEPA_LATENT, &f, &l, 40);
    printf("JEPA pre-training: loss %.4g -> %.4g\n", f, l);
    CHECK(isfinite(l) && l < f);
}

/* JEPA pre-training: 4 steps vs 2 + save + load into a fresh trainer + 2, same bits (one
 * thread, see resume_bit_identical); and the checkpoint loads as backbone weights. */
TEST(jepa_resume_bit_identical)
{
    struct cryo_nn_ctx *ctx2 = ctx, *ctx1 = NULL;
    struct cryo_error e = {0};
    CHECK(cryo_nn_ctx_create(&ctx1, CRYO_NN_DEVICE_CPU, 1, &e) == 0);
    if (!ctx1)
        return;
    ctx = ctx1;
    struct cryo_scunet_config c;
    small_config(&c);
    struct cryo_jepa_config jc;
    cryo_jepa_config_default(&jc, &c);
    jc.embed = 24;
    jc.head_dim = 8;
    jc.depth = 1;
    struct cryo_jepa_train_opts o;
    cryo_jepa_train_opts_default(&o);
    const int D = 8, N = 2;
    size_t n = (size_t)N * D * D * D;
    float *x = malloc(n * sizeof *x);
    fill_rand(x, n, 31, 1.0);
    struct cryo_jepa_trainer *a = NULL, *b = NULL;
    struct cryo_safetensors *st = NULL;
    struct cryo_scunet *bb = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/jepa.safetensors", tu_tmpdir());
    CHECK(cryo_jepa_trainer_create(&a, &c, &jc, &o, ctx, N, D, D, D, 5, &e) == 0);
    CHECK(cryo_jepa_trainer_create(&b, &c, &jc, &o, ctx, N, D, D, D, 6, &e) == 0);
    if (!a || !b)
        goto out;
    for (int i = 0; i < 2; i++)
        CHECK(cryo_jepa_trainer_step(a, x, &e) == 0);
    CHECK(cryo_jepa_trainer_save(a, path, &e) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(cryo_jepa_trainer_step(a, x, &e) == 0);
    CHECK(cryo_safetensors_read(&st, path, &e) == 0);
    CHECK(st && cryo_jepa_trainer_load(b, st, &e) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(cryo_jepa_trainer_step(b, x, &e) == 0);
    size_t ne = cryo_scunet_num_params(a->enc), np = cryo_jepa_num_params(a->pred);
    CHECK(memcmp(cryo_scunet_param_data(a->enc), cryo_scunet_param_data(b->enc), ne * sizeof(float)) == 0);
    CHECK(memcmp(cryo_scunet_param_data(a->tenc), cryo_scunet_param_data(b->tenc), ne * sizeof(float)) == 0);
    CHECK(memcmp(cryo_jepa_param_data(a->pred), cryo_jepa_param_data(b->pred), np * sizeof(float)) == 0);
    CHECK(memcmp(a->m, b->m, (ne + np) * sizeof(float)) == 0 && memcmp(a->v, b->v, (ne + np) * sizeof(float)) == 0);
    CHECK(a->step == 4 && b->step == 4 && a->rng == b->rng && a->last_loss == b->last_loss);
    /* fine-tuning starts from the pre-trained encoder: the file loads as backbone weights */
    CHECK(cryo_scunet_create(&bb, &c, ctx, 1, D, D, D, 0, &e) == 0);
    CHECK(bb && st && cryo_scunet_load(bb, st, &e) == 0);
out:
    cryo_scunet_free(bb);
    cryo_safetensors_free(st);
    cryo_jepa_trainer_free(a);
    cryo_jepa_trainer_free(b);
    free(x);
    cryo_nn_ctx_free(ctx1);
    ctx = ctx2;
    omp_set_num_threads(2);
}

/* Drop-path (stochastic depth): off outside stochastic mode; in it, samples' branches are
 * dropped, and the backward is exact for the masks drawn (finite differences with the RNG
 * rewound before every forward so that each sees the same masks). */
TEST(drop_path)
{
    struct cryo_scunet_config c, c0;
    small_config(&c);
    struct cryo_error e = {0};
    CHECK(cryo_scunet_config_parse(&c, "drop_path=0.6", &e) == 0 && c.drop_path == 0.6);
    char buf[256];
    cryo_scunet_config_format(&c, buf, sizeof buf);
    small_config(&c0);
    CHECK(cryo_scunet_config_parse(&c0, buf, &e) == 0 && c0.drop_path == c.drop_path);
    CHECK(cryo_scunet_config_parse(&c0, "drop_path=1", &e) == CRYO_E_INVALID);
    CHECK(cryo_scunet_config_parse(&c0, "drop_path=nan", &e) == CRYO_E_INVALID);
    small_config(&c0);
    const int N = 4;
    struct cryo_scunet *a = NULL, *b = NULL;
    CHECK(cryo_scunet_create(&a, &c, ctx, N, 8, 8, 8, 1, &e) == 0);
    CHECK(cryo_scunet_create(&b, &c0, ctx, N, 8, 8, 8, 1, &e) == 0);
    if (!a || !b)
        goto out;
    CHECK(cryo_scunet_init(a, 2, &e) == 0 && cryo_scunet_init(b, 2, &e) == 0);
    size_t nin = cryo_scunet_input_count(a), nout = cryo_scunet_output_count(a);
    fill_rand(cryo_scunet_input(a), nin, 4, 1.0);
    memcpy(cryo_scunet_input(b), cryo_scunet_input(a), nin * sizeof(float));
    CHECK(cryo_scunet_forward(a, &e) == 0 && cryo_scunet_forward(b, &e) == 0);
    CHECK(memcmp(cryo_scunet_output(a), cryo_scunet_output(b), nout * sizeof(float)) == 0);
    uint64_t rng = 1234, r0 = 1234;
    cryo_scunet_set_stochastic(a, &rng);
    CHECK(cryo_scunet_forward(a, &e) == 0);
    CHECK(rng != r0);
    CHECK(memcmp(cryo_scunet_output(a), cryo_scunet_output(b), nout * sizeof(float)) != 0);
    float *R = malloc(nout * sizeof *R);
    fill_rand(R, nout, 5, 1.0);
    rng = r0;
    CHECK(cryo_scunet_forward(a, &e) == 0 && cryo_scunet_zero_grad(a, &e) == 0);
    CHECK(cryo_scunet_backward(a, R, &e) == 0);
    size_t ntab, np = cryo_scunet_num_params(a);
    const struct cryo_nn_param *tab = cryo_scunet_params(a, &ntab);
    float *g = malloc(np * sizeof *g), *p = cryo_scunet_param_data(a);
    memcpy(g, cryo_scunet_grad_data(a), np * sizeof *g);
    double gmax = 0;
    for (size_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(g[i]));
    int bad = 0, checked = 0;
    for (size_t t = 0; t < ntab; t++) {
        if (!strstr(tab[t].name, "trans_block") || !strstr(tab[t].name, "weight"))
            continue; /* the branches drop-path scales */
        size_t i = tab[t].offset;
        for (size_t k = 0; k < tab[t].count; k++)
            if (fabs(g[tab[t].offset + k]) > fabs(g[i]))
                i = tab[t].offset + k;
        float keep = p[i];
        double h = 1e-3, L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            p[i] = keep + (float)(sgn ? -h : h);
            rng = r0;
            CHECK(cryo_scunet_forward(a, &e) == 0);
            double acc = 0;
            for (size_t o = 0; o < nout; o++)
                acc += (double)cryo_scunet_output(a)[o] * R[o];
            L[sgn] = acc;
        }
        p[i] = keep;
        double fd = (L[0] - L[1]) / (2 * h);
        checked++;
        if (!(fabs(fd - g[i]) <= 2e-3 * gmax + 2e-2 * fabs(g[i]))) {
            bad++;
            tu_fail(__FILE__, __LINE__, "%s: backward %.6g, finite difference %.6g", tab[t].name, g[i], fd);
        }
    }
    CHECK(checked > 10 && bad == 0);
    cryo_scunet_set_stochastic(a, NULL);
    free(R);
    free(g);
out:
    cryo_scunet_free(a);
    cryo_scunet_free(b);
}

static int dump_jepa(const char *dir)
{
    struct cryo_error e = {0};
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 2, &e) < 0)
        return 1;
    struct cryo_jepa_config c;
    jepa_small(&c);
    struct cryo_jepa *j = NULL;
    int N = 2, gd = 3, gh = 2, gw = 4, rc = 1;
    if (cryo_jepa_create(&j, &c, ctx, N, gd, gh, gw, 1, &e) < 0 || cryo_jepa_init(j, 7, &e) < 0)
        goto out;
    size_t T = cryo_jepa_tokens(j), F = (size_t)c.features, E = (size_t)c.embed;
    size_t V = (size_t)c.patch * c.patch * c.patch * c.out_ch, np = cryo_jepa_num_params(j), n;
    /* perturb the ones/zeros of the norms so that their gradients are generic */
    const struct cryo_nn_param *tab = cryo_jepa_params(j, &n);
    float *p = cryo_jepa_param_data(j);
    uint64_t s = 77;
    for (size_t i = 0; i < np; i++)
        p[i] += (float)(0.05 * tu_rand(&s));
    fill_rand(cryo_jepa_features(j), T * F, 1, 1.0);
    uint8_t *mask = calloc(T, 1);
    float *mk = malloc(T * sizeof *mk), *dpred = malloc(T * E * sizeof *dpred), *dvox = malloc(T * V * sizeof *dvox);
    for (size_t t = 0; t < T; t++)
        mk[t] = (float)(mask[t] = (t % 3 == 1) || t == 5);
    fill_rand(dpred, T * E, 2, 1.0);
    fill_rand(dvox, T * V, 3, 1.0);
    struct cryo_safetensors *st = NULL;
    if (cryo_jepa_set_mask(j, mask, &e) < 0 || cryo_jepa_forward(j, &e) < 0 || cryo_jepa_zero_grad(j, &e) < 0 ||
        cryo_jepa_backward(j, dpred, dvox, &e) < 0 || cryo_safetensors_create(&st, &e) < 0)
        goto out2;
    int64_t sf[5] = {N, gd, gh, gw, (int64_t)F}, se[5] = {N, gd, gh, gw, (int64_t)E}, sv[5] = {N, gd, gh, gw, (int64_t)V};
    int64_t sm[4] = {N, gd, gh, gw};
    char name[160], meta[256];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad |= cryo_safetensors_add(st, tab[i].name, CRYO_ST_F32, tab[i].ndim, tab[i].shape, p + tab[i].offset, &e);
        snprintf(name, sizeof name, "grad.%s", tab[i].name);
        bad |= cryo_safetensors_add(st, name, CRYO_ST_F32, tab[i].ndim, tab[i].shape,
                                    cryo_jepa_grad_data(j) + tab[i].offset, &e);
    }
    bad |= cryo_safetensors_add(st, "features", CRYO_ST_F32, 5, sf, cryo_jepa_features(j), &e);
    bad |= cryo_safetensors_add(st, "mask", CRYO_ST_F32, 4, sm, mk, &e);
    bad |= cryo_safetensors_add(st, "dpred", CRYO_ST_F32, 5, se, dpred, &e);
    bad |= cryo_safetensors_add(st, "dvox", CRYO_ST_F32, 5, sv, dvox, &e);
    bad |= cryo_safetensors_add(st, "pred", CRYO_ST_F32, 5, se, cryo_jepa_pred(j), &e);
    bad |= cryo_safetensors_add(st, "vox", CRYO_ST_F32, 5, sv, cryo_jepa_vox(j), &e);
    bad |= cryo_safetensors_add(st, "embeddings", CRYO_ST_F32, 5, se, cryo_jepa_embeddings(j), &e);
    bad |= cryo_safetensors_add(st, "dfeatures", CRYO_ST_F32, 5, sf, cryo_jepa_dfeatures(j), &e);
    snprintf(meta, sizeof meta, "features=%d,patch=%d,out_ch=%d,embed=%d,depth=%d,head_dim=%d,mlp_ratio=%d",
             c.features, c.patch, c.out_ch, c.embed, c.depth, c.head_dim, c.mlp_ratio);
    bad |= cryo_meta_set(&st->meta, "jepa", meta, &e);
    snprintf(name, sizeof name, "%s/jepa.safetensors", dir);
    if (!bad && cryo_safetensors_write(st, name, &e) == 0)
        rc = 0;
out2:
    cryo_safetensors_free(st);
    free(mask);
    free(mk);
    free(dpred);
    free(dvox);
out:
    if (rc)
        fprintf(stderr, "test_model: %s\n", e.msg);
    cryo_jepa_free(j);
    cryo_nn_ctx_free(ctx);
    return rc;
}

/* Two supervised training steps (MSE, clipping, AdamW with decay masks, warm-up + cosine)
 * for `torch_scunet.py train-steps`: initial weights, batch, options, weights after. */
static int dump_train(const char *dir)
{
    struct cryo_error e = {0};
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 2, &e) < 0)
        return 1;
    struct cryo_scunet_config c;
    small_config(&c);
    const int N = 2, D = 8, H = 8, W = 12;
    struct cryo_scunet *m = NULL;
    struct cryo_trainer *t = NULL;
    struct cryo_train_opts o;
    cryo_train_opts_default(&o);
    o.adamw.lr = o.sched.lr = 3e-3;
    o.adamw.weight_decay = 0.05;
    o.sched.min_lr = 1e-4;
    o.sched.warmup = 1;
    o.sched.total = 3;
    o.clip = 0.5;
    size_t n = (size_t)N * D * H * W;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    fill_rand(x, n, 41, 1.0);
    fill_rand(y, n, 42, 1.0);
    char path[1024];
    int rc = 1;
    if (cryo_scunet_create(&m, &c, ctx, N, D, H, W, 1, &e) < 0 || cryo_scunet_init(m, 6, &e) < 0)
        goto out;
    /* FRN thresholds below the data (no TLU kinks, see set-tau in torch_scunet.py): AdamW's
     * first steps move each weight by ≈ lr·sign(g), so a gradient whose sign differs between
     * float32 and float64 at a kink would move a weight the other way */
    size_t ntab;
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &ntab);
    for (size_t i = 0; i < ntab; i++)
        if (strstr(tab[i].name, ".tau"))
            for (size_t k = 0; k < tab[i].count; k++)
                cryo_scunet_param_data(m)[tab[i].offset + k] = -10.0f;
    snprintf(path, sizeof path, "%s/w0.safetensors", dir);
    if (cryo_scunet_save(m, path, &e) < 0 || cryo_trainer_create(&t, m, &o, &e) < 0)
        goto out;
    for (int i = 0; i < 2; i++)
        if (cryo_trainer_step(t, x, y, &e) < 0)
            goto out;
    snprintf(path, sizeof path, "%s/w2.safetensors", dir);
    if (cryo_scunet_save(m, path, &e) < 0)
        goto out;
    struct cryo_safetensors *st = NULL;
    int64_t sh[5] = {N, D, H, W, 1};
    if (cryo_safetensors_create(&st, &e) < 0)
        goto out;
    int bad = cryo_safetensors_add(st, "input", CRYO_ST_F32, 5, sh, x, &e) < 0 ||
              cryo_safetensors_add(st, "target", CRYO_ST_F32, 5, sh, y, &e) < 0 ||
              cryo_meta_setf(&st->meta, &e, "train", "lr=%g,min_lr=%g,warmup=%d,total=%d,beta1=%g,beta2=%g,eps=%g,"
                             "weight_decay=%g,clip=%g,steps=2", o.sched.lr, o.sched.min_lr, (int)o.sched.warmup,
                             (int)o.sched.total, o.adamw.beta1, o.adamw.beta2, o.adamw.eps, o.adamw.weight_decay,
                             o.clip) < 0;
    snprintf(path, sizeof path, "%s/batch.safetensors", dir);
    if (!bad && cryo_safetensors_write(st, path, &e) == 0)
        rc = 0;
    cryo_safetensors_free(st);
out:
    if (rc)
        fprintf(stderr, "test_model: %s\n", e.msg);
    cryo_trainer_free(t);
    cryo_scunet_free(m);
    free(x);
    free(y);
    cryo_nn_ctx_free(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump-jepa") == 0)
        return dump_jepa(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--dump-train") == 0)
        return dump_train(argv[2]);
    struct cryo_error e = {0};
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 2, &e) < 0) {
        fprintf(stderr, "test_model: %s\n", e.msg);
        return 1;
    }
    int rc = RUN_TESTS(config_parse_and_errors, config_normalised_and_strict, param_table_consistent, bad_boxes_refused,
                       inference_equals_training_forward, gradients_finite_differences,
                       weights_save_load_roundtrip, overfit_one_pair, resume_bit_identical,
                       jepa_posenc_and_refusals, jepa_masking_semantics, encoder_only_gradients,
                       jepa_and_mae_pretraining_learn, jepa_resume_bit_identical, drop_path);
    cryo_nn_ctx_free(ctx);
    return rc;
}
