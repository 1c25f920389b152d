/* test_optim.c — losses, AdamW, schedule, clipping, EMA.
 *
 *   test_optim            unit tests: loss gradients by finite differences (in double, on
 *                         the float implementation), the combined loss against its parts,
 *                         AdamW against the formula in double, schedule and clipping
 *                         properties
 *   test_optim --dump DIR write random inputs and our results to DIR/optim.safetensors;
 *                         tests/ref/torch_scunet.py optim compares them with
 *                         torch.optim.AdamW, F.mse_loss, F.smooth_l1_loss,
 *                         clip_grad_norm_ (tests/bats/engine-model.bats)
 */
#include "cryolvm/nn_train.h"
#include "cryolvm/safetensors.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000

static void rnd(float *x, size_t n, uint64_t seed, double scale)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * tu_rand(&s));
}

/* central differences of a loss w.r.t. a few prediction values */
typedef int (*lossfn)(double *, float *, const float *, const float *, size_t, void *);

static int mse_fn(double *l, float *g, const float *p, const float *t, size_t n, void *u)
{
    (void)u;
    return cryo_loss_mse(l, g, p, t, n, NULL);
}
static int sl1_fn(double *l, float *g, const float *p, const float *t, size_t n, void *u)
{
    return cryo_loss_smooth_l1(l, g, p, t, n, *(double *)u, NULL);
}

static int combined_fn(double *l, float *g, const float *p, const float *t, size_t n, void *u)
{
    struct cryo_hist_spec spec = {24, -2.0, 2.0, 4.0 / 24};
    return cryo_loss_combined(l, g, p, t, n, *(double *)u, &spec, NULL);
}

static void check_fd(lossfn f, void *u, const char *what)
{
    float p[N], t[N], g[N];
    rnd(p, N, 1, 2.0);
    rnd(t, N, 2, 1.5);
    double l;
    CHECK(f(&l, g, p, t, N, u) == 0);
    int bad = 0;
    for (int i = 0; i < N; i += 37) {
        /* keep away from the |d| = β kink of smooth L1 */
        float keep = p[i];
        double h = 1e-3, lp, lm;
        p[i] = keep + (float)h;
        f(&lp, NULL, p, t, N, u);
        p[i] = keep - (float)h;
        f(&lm, NULL, p, t, N, u);
        p[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (!(fabs(fd - g[i]) <= 1e-3 * fabs(g[i]) + 1e-7)) {
            bad++;
            tu_fail(__FILE__, __LINE__, "%s: grad[%d] %.9g vs finite difference %.9g", what, i, g[i], fd);
        }
    }
    CHECK(bad == 0);
}

TEST(mse_value_and_gradient)
{
    float p[3] = {1, 2, 3}, t[3] = {0, 2, 5}, g[3];
    double l;
    CHECK(cryo_loss_mse(&l, g, p, t, 3, NULL) == 0);
    CHECK_CLOSE(l, (1.0 + 0 + 4) / 3, 1e-12);
    CHECK_CLOSE(g[0], 2.0 / 3, 1e-7);
    CHECK_CLOSE(g[2], -4.0 / 3, 1e-7);
    check_fd(mse_fn, NULL, "mse");
    float bad[2] = {NAN, 1};
    struct cryo_error e = {0};
    CHECK(cryo_loss_mse(&l, NULL, bad, t, 2, &e) == CRYO_E_NUMERIC);
    CHECK(cryo_loss_mse(&l, NULL, p, t, 0, &e) == CRYO_E_INVALID);
}

TEST(smooth_l1_value_and_gradient)
{
    /* β = 1: |d| < 1 → ½d², else |d| − ½ */
    float p[3] = {0.5f, 3, -2}, t[3] = {0, 0, 0}, g[3];
    double l, beta = 1.0;
    CHECK(cryo_loss_smooth_l1(&l, g, p, t, 3, beta, NULL) == 0);
    CHECK_CLOSE(l, (0.125 + 2.5 + 1.5) / 3, 1e-12);
    CHECK_CLOSE(g[0], 0.5 / 3, 1e-7);
    CHECK_CLOSE(g[1], 1.0 / 3, 1e-7);
    CHECK_CLOSE(g[2], -1.0 / 3, 1e-7);
    double betas[3] = {0.5, 1.0, 3.0};
    for (int k = 0; k < 3; k++)
        check_fd(sl1_fn, &betas[k], "smooth_l1");
    /* β = 0 is L1 (as PyTorch) */
    CHECK(cryo_loss_smooth_l1(&l, g, p, t, 3, 0.0, NULL) == 0);
    CHECK_CLOSE(l, (0.5 + 3 + 2) / 3, 1e-12);
    struct cryo_error e = {0};
    CHECK(cryo_loss_smooth_l1(&l, g, p, t, 3, -1.0, &e) == CRYO_E_INVALID);
}

TEST(combined_loss_is_weighted_sum)
{
    float p[N], t[N], g[N], gm[N], gh[N];
    rnd(p, N, 3, 0.5);
    rnd(t, N, 4, 0.5);
    for (int i = 0; i < N; i++) {
        p[i] += 0.5f;
        t[i] = 0.5f + 0.8f * t[i];
    }
    struct cryo_hist_spec spec = {32, 0.0, 1.0, 1.0 / 32};
    double l, lm, lh, alpha = 0.3;
    struct cryo_error e = {0};
    int rc = cryo_loss_combined(&l, g, p, t, N, alpha, &spec, &e);
    CHECK(rc == 0);
    if (rc)
        return;
    CHECK(cryo_loss_mse(&lm, gm, p, t, N, &e) == 0);
    CHECK(cryo_histkl_loss(&lh, gh, p, t, N, &spec, &e) == 0);
    CHECK_CLOSE(l, alpha * lm + (1 - alpha) * lh, 1e-12);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += !tu_close(g[i], alpha * gm[i] + (1 - alpha) * gh[i], 1e-6);
    CHECK(bad == 0);
    CHECK(cryo_loss_combined(&l, g, p, t, N, 1.5, &spec, &e) == CRYO_E_INVALID);
    /* and its gradient by central differences, HistKL part included */
    double alphas[2] = {0.0, 0.3};
    for (int k = 0; k < 2; k++)
        check_fd(combined_fn, &alphas[k], "combined");
    /* α = 1 is MSE exactly */
    CHECK(cryo_loss_combined(&l, g, p, t, N, 1.0, &spec, &e) == 0 && tu_close(l, lm, 1e-15));
}

TEST(adamw_matches_formula_in_double)
{
    float p[N], g[N], m[N] = {0}, v[N] = {0};
    double pd[N], md[N] = {0}, vd[N] = {0};
    rnd(p, N, 5, 1.0);
    for (int i = 0; i < N; i++)
        pd[i] = p[i];
    struct cryo_adamw o;
    cryo_adamw_default(&o);
    o.weight_decay = 0.1;
    for (int t = 1; t <= 5; t++) {
        rnd(g, N, 100 + (uint64_t)t, 1e-2 * t);
        double lr = 1e-2 / t;
        cryo_adamw_update(p, g, m, v, N, &o, lr, t, t % 2); /* decay on odd steps only */
        for (int i = 0; i < N; i++) {
            if (t % 2)
                pd[i] *= 1 - lr * o.weight_decay;
            md[i] = o.beta1 * md[i] + (1 - o.beta1) * g[i];
            vd[i] = o.beta2 * vd[i] + (1 - o.beta2) * (double)g[i] * g[i];
            double mh = md[i] / (1 - pow(o.beta1, t)), vh = vd[i] / (1 - pow(o.beta2, t));
            pd[i] -= lr * mh / (sqrt(vh) + o.eps);
        }
    }
    double worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(p[i] - pd[i]));
    CHECK(worst < 1e-6);
}

TEST(schedule_and_clip_and_ema)
{
    struct cryo_lr_schedule s = {1e-3, 1e-5, 10, 110};
    CHECK_CLOSE(cryo_lr_at(&s, 1), 1e-4, 1e-12);
    CHECK_CLOSE(cryo_lr_at(&s, 10), 1e-3, 1e-12);
    CHECK_CLOSE(cryo_lr_at(&s, 60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-12);
    CHECK_CLOSE(cryo_lr_at(&s, 110), 1e-5, 1e-12);
    CHECK_CLOSE(cryo_lr_at(&s, 500), 1e-5, 1e-12);
    int mono = 1;
    for (int t = 11; t <= 110; t++)
        mono &= cryo_lr_at(&s, t) <= cryo_lr_at(&s, t - 1);
    CHECK(mono);
    struct cryo_lr_schedule c = {2e-3, 0, 0, 0};
    CHECK_CLOSE(cryo_lr_at(&c, 1), 2e-3, 1e-15);
    CHECK_CLOSE(cryo_lr_at(&c, 1000), 2e-3, 1e-15);

    float g[N];
    rnd(g, N, 9, 1.0);
    double n0 = cryo_clip_grad_norm(g, N, 0.5), n1 = 0;
    for (int i = 0; i < N; i++)
        n1 += (double)g[i] * g[i];
    CHECK(n0 > 1);
    CHECK_CLOSE(sqrt(n1), 0.5, 1e-5);
    float h[4] = {0.1f, 0.2f, 0, 0};
    CHECK_CLOSE(cryo_clip_grad_norm(h, 4, 10.0), sqrt(0.05), 1e-7);
    CHECK(h[0] == 0.1f && h[1] == 0.2f); /* below the limit: untouched */

    float e[3] = {1, 2, 3}, p[3] = {3, 2, 1};
    cryo_ema_update(e, p, 3, 0.9);
    CHECK_CLOSE(e[0], 1.2, 1e-6);
    CHECK_CLOSE(e[2], 2.8, 1e-6);
}

/* The context versions (cryo_nn_*, what the trainers call and the CUDA backend provides)
 * on the CPU backend equal the host functions bit for bit: the row loss with a mask equals
 * the host loss of the gathered rows, AdamW/EMA/clip the host updates. */
TEST(context_ops_equal_host_functions)
{
    struct cryo_nn_ctx *ctx = NULL;
    struct cryo_error e = {0};
    CHECK(cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 1, &e) == 0);
    enum { R = 50, C = 7 };
    float *p = cryo_nn_alloc(ctx, R * C, &e), *t = cryo_nn_alloc(ctx, R * C, &e), *g = cryo_nn_alloc(ctx, R * C, &e);
    float *mask = cryo_nn_alloc(ctx, R, &e);
    CHECK(p && t && g && mask);
    rnd(p, R * C, 21, 2.0);
    rnd(t, R * C, 22, 2.0);
    static float gp[R * C], gt[R * C], gh[R * C];
    size_t k = 0;
    for (int r = 0; r < R; r++) {
        mask[r] = (float)(r % 3 != 1);
        if (mask[r] != 0.0f) {
            memcpy(gp + k * C, p + (size_t)r * C, C * sizeof(float));
            memcpy(gt + k * C, t + (size_t)r * C, C * sizeof(float));
            k++;
        }
    }
    for (int kind = 0; kind < 2; kind++) {
        double lh = 0, ld = 0;
        if (kind == 0)
            CHECK(cryo_loss_mse(&lh, gh, gp, gt, k * C, &e) == 0);
        else
            CHECK(cryo_loss_smooth_l1(&lh, gh, gp, gt, k * C, 0.7, &e) == 0);
        CHECK(cryo_nn_loss_rows(ctx, &ld, g, p, t, mask, R, C, (enum cryo_nn_loss_kind)kind, 0.7, (double)(k * C),
                                &e) == 0);
        CHECK(ld == lh);
        size_t j = 0, same = 1;
        for (int r = 0; r < R; r++) {
            for (int c = 0; c < C; c++)
                same &= mask[r] != 0.0f ? g[(size_t)r * C + c] == gh[j * C + c] : g[(size_t)r * C + c] == 0.0f;
            j += mask[r] != 0.0f;
        }
        CHECK(same && j == k);
    }
    CHECK(cryo_nn_loss_rows(ctx, &(double){0}, NULL, p, t, NULL, R, C, (enum cryo_nn_loss_kind)5, 1, 1, &e) ==
          CRYO_E_INVALID);
    p[3] = NAN;
    CHECK(cryo_nn_loss_rows(ctx, &(double){0}, NULL, p, t, NULL, R, C, CRYO_NN_LOSS_MSE, 0, R * C, &e) ==
          CRYO_E_NUMERIC);
    /* AdamW, EMA, clipping */
    static float pa[N], pb[N], ga[N], ma[N], va[N], mb[N], vb[N], ea[N], eb[N];
    float *pd = cryo_nn_alloc(ctx, N, &e), *gd = cryo_nn_alloc(ctx, N, &e), *md = cryo_nn_alloc(ctx, N, &e);
    float *vd = cryo_nn_alloc(ctx, N, &e), *ed = cryo_nn_alloc(ctx, N, &e);
    CHECK(pd && gd && md && vd && ed);
    rnd(pa, N, 31, 1.0);
    rnd(ga, N, 32, 1.0);
    memcpy(pb, pa, sizeof pa);
    memcpy(ea, pa, sizeof pa);
    memcpy(eb, pa, sizeof pa);
    CHECK(cryo_nn_upload(ctx, pd, pa, N, &e) == 0 && cryo_nn_upload(ctx, gd, ga, N, &e) == 0 &&
          cryo_nn_fill(ctx, md, 0, N, &e) == 0 && cryo_nn_fill(ctx, vd, 0, N, &e) == 0 &&
          cryo_nn_upload(ctx, ed, ea, N, &e) == 0);
    struct cryo_adamw o;
    cryo_adamw_default(&o);
    for (int step = 1; step <= 3; step++) {
        cryo_adamw_update(pa, ga, ma, va, N, &o, 1e-2, step, step & 1);
        CHECK(cryo_nn_adamw_update(ctx, pd, gd, md, vd, N, &o, 1e-2, step, step & 1, &e) == 0);
        cryo_ema_update(ea, pa, N, 0.9);
        CHECK(cryo_nn_ema_update(ctx, ed, pd, N, 0.9, &e) == 0);
    }
    CHECK(cryo_nn_download(ctx, pb, pd, N, &e) == 0 && cryo_nn_download(ctx, mb, md, N, &e) == 0 &&
          cryo_nn_download(ctx, vb, vd, N, &e) == 0 && cryo_nn_download(ctx, eb, ed, N, &e) == 0);
    CHECK(memcmp(pa, pb, sizeof pa) == 0 && memcmp(ma, mb, sizeof ma) == 0 && memcmp(va, vb, sizeof va) == 0 &&
          memcmp(ea, eb, sizeof ea) == 0);
    memcpy(pb, ga, sizeof ga);
    double nh = cryo_clip_grad_norm(pb, N, 0.5), nd = 0;
    float *const two[2] = {gd, gd + 600};
    const size_t len[2] = {600, N - 600};
    CHECK(cryo_nn_clip_grad_norm(ctx, two, len, 2, 0.5, &nd, &e) == 0);
    CHECK(cryo_nn_download(ctx, ga, gd, N, &e) == 0);
    CHECK(fabs(nd - nh) <= 1e-12 * nh && memcmp(ga, pb, sizeof ga) == 0);
    float *all[] = {p, t, g, mask, pd, gd, md, vd, ed};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cryo_nn_free(ctx, all[i]);
    cryo_nn_ctx_free(ctx);
}

/* ---- dump for the PyTorch comparison ------------------------------------------------- */

#define DP 600 /* parameters: 400 with decay, 200 without */
#define DSTEPS 6

static int dump(const char *dir)
{
    static float p0[DP], p[DP], m[DP], v[DP], g[DSTEPS][DP], after[DSTEPS][DP], lrs[DSTEPS];
    static float pred[N], targ[N], gmse[N], gsl1[3][N], clipped[N], ema[DP], ema0[DP];
    static double lmse, lsl1[3], norm;
    rnd(p0, DP, 1, 0.5);
    memcpy(p, p0, sizeof p);
    memcpy(ema, p0, sizeof ema);
    memcpy(ema0, p0, sizeof ema0);
    struct cryo_adamw o = {3e-2, 0.9, 0.95, 1e-8, 0.05};
    struct cryo_lr_schedule s = {3e-2, 1e-3, 2, DSTEPS};
    for (int t = 1; t <= DSTEPS; t++) {
        rnd(g[t - 1], DP, 10 + (uint64_t)t, 0.1);
        double lr = cryo_lr_at(&s, t);
        lrs[t - 1] = (float)lr;
        cryo_adamw_update(p, g[t - 1], m, v, 400, &o, lr, t, 1);
        cryo_adamw_update(p + 400, g[t - 1] + 400, m + 400, v + 400, DP - 400, &o, lr, t, 0);
        cryo_ema_update(ema, p, DP, 0.9);
        memcpy(after[t - 1], p, sizeof p);
    }
    rnd(pred, N, 0x243F6A8885A308D3ULL, 2.0);
    rnd(targ, N, 0x13198A2E03707344ULL, 2.0);
    for (int i = 0; i < N; i++) /* no exact ties: |d| = 0 is where L1 has no derivative */
        if (pred[i] == targ[i])
            targ[i] += 0.25f;
    double betas[3] = {0.0, 0.5, 1.0};
    int rc = cryo_loss_mse(&lmse, gmse, pred, targ, N, NULL);
    for (int k = 0; k < 3 && rc == 0; k++)
        rc = cryo_loss_smooth_l1(&lsl1[k], gsl1[k], pred, targ, N, betas[k], NULL);
    memcpy(clipped, pred, sizeof clipped);
    norm = cryo_clip_grad_norm(clipped, N, 3.0);
    if (rc)
        return 1;
    float scal[5] = {(float)lmse, (float)lsl1[0], (float)lsl1[1], (float)lsl1[2], (float)norm};
    struct cryo_safetensors *st;
    struct cryo_error e = {0};
    if (cryo_safetensors_create(&st, &e) < 0)
        return 1;
    int64_t sp[1] = {DP}, sg[2] = {DSTEPS, DP}, sn[1] = {N}, s3[2] = {3, N}, s5[1] = {5}, sl[1] = {DSTEPS};
    rc |= cryo_safetensors_add(st, "p0", CRYO_ST_F32, 1, sp, p0, &e);
    rc |= cryo_safetensors_add(st, "grads", CRYO_ST_F32, 2, sg, g, &e);
    rc |= cryo_safetensors_add(st, "after", CRYO_ST_F32, 2, sg, after, &e);
    rc |= cryo_safetensors_add(st, "lr", CRYO_ST_F32, 1, sl, lrs, &e);
    rc |= cryo_safetensors_add(st, "ema", CRYO_ST_F32, 1, sp, ema, &e);
    rc |= cryo_safetensors_add(st, "pred", CRYO_ST_F32, 1, sn, pred, &e);
    rc |= cryo_safetensors_add(st, "target", CRYO_ST_F32, 1, sn, targ, &e);
    rc |= cryo_safetensors_add(st, "grad_mse", CRYO_ST_F32, 1, sn, gmse, &e);
    rc |= cryo_safetensors_add(st, "grad_smooth_l1", CRYO_ST_F32, 2, s3, gsl1, &e);
    rc |= cryo_safetensors_add(st, "clipped", CRYO_ST_F32, 1, sn, clipped, &e);
    rc |= cryo_safetensors_add(st, "scalars", CRYO_ST_F32, 1, s5, scal, &e);
    char meta[256];
    snprintf(meta, sizeof meta, "lr=%g,beta1=%g,beta2=%g,eps=%g,weight_decay=%g,decay_count=400,"
             "min_lr=%g,warmup=%d,total=%d,ema=0.9,clip=3,betas=0:0.5:1", o.lr, o.beta1, o.beta2,
             o.eps, o.weight_decay, s.min_lr, (int)s.warmup, (int)s.total);
    rc |= cryo_meta_set(&st->meta, "optim", meta, &e);
    char path[1024];
    snprintf(path, sizeof path, "%s/optim.safetensors", dir);
    rc |= cryo_safetensors_write(st, path, &e);
    if (rc)
        fprintf(stderr, "test_optim: %s\n", e.msg);
    cryo_safetensors_free(st);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0)
        return dump(argv[2]);
    return RUN_TESTS(mse_value_and_gradient, smooth_l1_value_and_gradient,
                     combined_loss_is_weighted_sum, adamw_matches_formula_in_double,
                     schedule_and_clip_and_ema, context_ops_equal_host_functions);
}
