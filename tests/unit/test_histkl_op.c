/* test_histkl_op.c — the HistKL loss as a backend op (cryo_nn_histkl_loss, nn_train.h)
 * through a CPU context:
 *   loss and gradient equal cryo_histkl_loss's exactly, and grad += gscale·g accumulates;
 *   the op's gradient matches central finite differences of its loss;
 *   both equal PyTorch autograd in float64 (tests/ref/hist_ref.py histkl, Debian python3);
 *   bad input fails with the documented status, and a backend without the op answers
 *   CRYO_E_UNSUPPORTED naming the op and the backend. */
#include "cryolvm/hist.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_train.h"
#include "nn/backend_impl.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cryo_nn_ctx *ctx;

/* pred: a broad bump, target: a narrower, shifted one (different histograms). */
static void fill(float *pred, float *target, size_t n, uint64_t seed)
{
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) {
        pred[i] = (float)(0.5 + 0.3 * tu_rand(&rng));
        target[i] = (float)(0.4 + 0.4 * tu_rand(&rng) * fabs(tu_rand(&rng)));
    }
}

/* Context buffers holding a copy of host data. */
static float *on_ctx(const float *h, size_t n)
{
    float *d = cryo_nn_alloc(ctx, n, NULL);
    CHECK(d != NULL);
    if (d && h)
        CHECK(cryo_nn_upload(ctx, d, h, n, NULL) == 0);
    return d;
}

TEST(op_equals_cryo_histkl_loss_exactly)
{
    enum { N = 20011 };
    struct cryo_hist_spec s = {.bins = 64, .lo = 0, .hi = 1, .sigma = 1.0 / 64};
    float *pred = malloc(N * sizeof *pred), *target = malloc(N * sizeof *target);
    float *g = malloc(N * sizeof *g), *got = malloc(N * sizeof *got), *base = malloc(N * sizeof *base);
    fill(pred, target, N, 7);
    double ref = 0, loss = -1;
    CHECK(cryo_histkl_loss(&ref, g, pred, target, N, &s, NULL) == 0);
    CHECK(ref > 0.01);
    float *dp = on_ctx(pred, N), *dt = on_ctx(target, N), *dg = on_ctx(NULL, N);
    CHECK(cryo_nn_fill(ctx, dg, 0.0f, N, NULL) == 0);
    CHECK(cryo_nn_histkl_loss(ctx, &loss, dg, dp, dt, N, &s, 1.0, NULL) == 0);
    CHECK(loss == ref);
    CHECK(cryo_nn_download(ctx, got, dg, N, NULL) == 0);
    CHECK(memcmp(got, g, N * sizeof *g) == 0);
    /* accumulate: grad ← grad + (float)(gscale·g), as the trainer's α-blend */
    uint64_t rng = 3;
    for (int i = 0; i < N; i++)
        base[i] = (float)(1e-3 * tu_rand(&rng));
    CHECK(cryo_nn_upload(ctx, dg, base, N, NULL) == 0);
    CHECK(cryo_nn_histkl_loss(ctx, &loss, dg, dp, dt, N, &s, 0.3, NULL) == 0);
    CHECK(loss == ref);
    CHECK(cryo_nn_download(ctx, got, dg, N, NULL) == 0);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += got[i] != base[i] + (float)(0.3 * (double)g[i]);
    CHECK_EQ_INT(bad, 0);
    /* no gradient asked: the loss alone */
    loss = -1;
    CHECK(cryo_nn_histkl_loss(ctx, &loss, NULL, dp, dt, N, &s, 1.0, NULL) == 0);
    CHECK(loss == ref);
    cryo_nn_free(ctx, dp), cryo_nn_free(ctx, dt), cryo_nn_free(ctx, dg);
    free(pred), free(target), free(g), free(got), free(base);
}

TEST(op_gradient_matches_finite_differences)
{
    enum { N = 300 };
    struct cryo_hist_spec s = {.bins = 32, .lo = 0, .hi = 1, .sigma = 0.03};
    float pred[N], target[N], grad[N];
    fill(pred, target, N, 42);
    float *dp = on_ctx(pred, N), *dt = on_ctx(target, N), *dg = on_ctx(NULL, N);
    CHECK(cryo_nn_fill(ctx, dg, 0.0f, N, NULL) == 0);
    double loss = 0;
    CHECK(cryo_nn_histkl_loss(ctx, &loss, dg, dp, dt, N, &s, 1.0, NULL) == 0);
    CHECK(cryo_nn_download(ctx, grad, dg, N, NULL) == 0);
    double num[N], ana[N];
    const float h = 1e-3f; /* float inputs: h large against their resolution */
    for (int i = 0; i < N; i++) {
        float keep = pred[i], v[2] = {keep + h, keep - h};
        double l[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            CHECK(cryo_nn_upload(ctx, dp + i, &v[k], 1, NULL) == 0);
            CHECK(cryo_nn_histkl_loss(ctx, &l[k], NULL, dp, dt, N, &s, 1.0, NULL) == 0);
        }
        CHECK(cryo_nn_upload(ctx, dp + i, &keep, 1, NULL) == 0);
        num[i] = (l[0] - l[1]) / (double)(v[0] - v[1]);
        ana[i] = grad[i];
    }
    /* O(h²) truncation of a Gaussian with σ = 0.03 at h = 1e-3: relative ~ (h/σ)² ≈ 1e-3 */
    double e = tu_rel_err_d(ana, num, N);
    if (!(e < 2e-3))
        tu_fail(__FILE__, __LINE__, "op's HistKL gradient rel err %.3g against finite differences", e);
    cryo_nn_free(ctx, dp), cryo_nn_free(ctx, dt), cryo_nn_free(ctx, dg);
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

TEST(op_matches_pytorch_autograd)
{
    char ref[512];
    snprintf(ref, sizeof ref, "%s", __FILE__);
    char *u = strstr(ref, "tests/unit/");
    if (!u || access("/usr/bin/python3", X_OK) != 0) {
        printf("skipped: no /usr/bin/python3 or tests/ref\n");
        return;
    }
    strcpy(u, "tests/ref/hist_ref.py");
    if (access(ref, R_OK) != 0 || system("/usr/bin/python3 -c 'import numpy, torch' 2>/dev/null") != 0) {
        printf("skipped: %s, numpy or torch missing\n", ref);
        return;
    }
    enum { N = 4000 };
    struct cryo_hist_spec s = {.bins = 40, .lo = -0.5, .hi = 1.5, .sigma = 0.04};
    float *pred = malloc(N * sizeof *pred), *target = malloc(N * sizeof *target), *grad = malloc(N * sizeof *grad);
    fill(pred, target, N, 11);
    float *dp = on_ctx(pred, N), *dt = on_ctx(target, N), *dg = on_ctx(NULL, N);
    CHECK(cryo_nn_fill(ctx, dg, 0.0f, N, NULL) == 0);
    double loss = 0;
    CHECK(cryo_nn_histkl_loss(ctx, &loss, dg, dp, dt, N, &s, 1.0, NULL) == 0);
    CHECK(cryo_nn_download(ctx, grad, dg, N, NULL) == 0);
    char pp[512], tp[512], gp[512], cmd[4096];
    snprintf(pp, sizeof pp, "%s/histkl_pred.f32", tu_tmpdir());
    snprintf(tp, sizeof tp, "%s/histkl_target.f32", tu_tmpdir());
    snprintf(gp, sizeof gp, "%s/histkl_grad.f32", tu_tmpdir());
    CHECK(write_all(pp, pred, N * sizeof *pred) == 0);
    CHECK(write_all(tp, target, N * sizeof *target) == 0);
    CHECK(write_all(gp, grad, N * sizeof *grad) == 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' histkl '%s' '%s' '%s' %d %.17g %.17g %.17g %.17g", ref, pp, tp, gp,
             s.bins, s.lo, s.hi, s.sigma, loss);
    CHECK(system(cmd) == 0);
    cryo_nn_free(ctx, dp), cryo_nn_free(ctx, dt), cryo_nn_free(ctx, dg);
    free(pred), free(target), free(grad);
}

TEST(op_errors)
{
    enum { N = 8 };
    struct cryo_hist_spec s = {.bins = 8, .lo = 0, .hi = 1, .sigma = 0.05};
    float x[N] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    float *dp = on_ctx(x, N), *dt = on_ctx(x, N), *dg = on_ctx(NULL, N);
    struct cryo_error e = {0};
    double l = 0;
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, &s, 1.0, &e) == 0);
    CHECK_CLOSE(l, 0, 1e-15); /* the same values: no divergence */
    CHECK(cryo_nn_histkl_loss(NULL, &l, dg, dp, dt, N, &s, 1.0, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, 0, &s, 1.0, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, NULL, dt, N, &s, 1.0, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, NULL, 1.0, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, &s, NAN, &e) == CRYO_E_INVALID);
    struct cryo_hist_spec bad = s;
    bad.sigma = 0;
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, &bad, 1.0, &e) == CRYO_E_INVALID);
    CHECK(strstr(e.msg, "sigma") != NULL);
    bad = s;
    bad.bins = 0;
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, &bad, 1.0, &e) == CRYO_E_INVALID);
    float nan = NAN, far = 100.f;
    CHECK(cryo_nn_upload(ctx, dp + 3, &nan, 1, NULL) == 0);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, &s, 1.0, &e) == CRYO_E_NUMERIC);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dt, dp, N, &s, 1.0, &e) == CRYO_E_NUMERIC); /* NaN in the target */
    for (int i = 0; i < N; i++)
        CHECK(cryo_nn_upload(ctx, dp + i, &far, 1, NULL) == 0);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dp, dt, N, &s, 1.0, &e) == CRYO_E_NUMERIC);
    CHECK(strstr(e.msg, "prediction") != NULL);
    CHECK(cryo_nn_histkl_loss(ctx, &l, dg, dt, dp, N, &s, 1.0, &e) == CRYO_E_NUMERIC); /* target out of range */
    /* a backend without the op */
    struct cryo_nn_ops ops = *ctx->ops;
    ops.histkl = NULL;
    struct cryo_nn_ctx fake = *ctx;
    fake.ops = &ops;
    CHECK(cryo_nn_histkl_loss(&fake, &l, dg, dt, dt, N, &s, 1.0, &e) == CRYO_E_UNSUPPORTED);
    CHECK(strstr(e.msg, "HistKL") != NULL && strstr(e.msg, "cpu") != NULL);
    cryo_nn_free(ctx, dp), cryo_nn_free(ctx, dt), cryo_nn_free(ctx, dg);
}

static void setup(void)
{
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 0, NULL) < 0) {
        fprintf(stderr, "test_histkl_op: no CPU context\n");
        exit(1);
    }
}

int main(void)
{
    setup();
    int rc = RUN_TESTS(op_equals_cryo_histkl_loss_exactly, op_gradient_matches_finite_differences,
                       op_matches_pytorch_autograd, op_errors);
    cryo_nn_ctx_free(ctx);
    return rc;
}
