/* test_jepa.c — JEPA pre-training pieces: I-JEPA multi-block 3D masks (scale, aspect,
 * coverage, disjointness, min_keep, per-sample independence), the Smooth-L1 JEPA loss and
 * its gradient (recomputed here from the trainer's predictions and target embeddings, and
 * central differences of that loss), the EMA / weight-decay schedules inside the step, and
 * the collapse statistics. The predictor itself is checked against PyTorch in test_model.
 */
#include "testutil.h"
#include "cryolvm/jepa_mask.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cryo_nn_ctx *ctx;

TEST(mask_statistics)
{
    struct cryo_jepa_mask_opts o;
    cryo_jepa_mask_opts_default(&o);
    const int g[3] = {6, 8, 7}, n = 16, steps = 60;
    size_t T = (size_t)g[0] * g[1] * g[2];
    uint8_t *m = malloc(T * n), *u = malloc(T);
    struct cryo_mask_block *b = malloc(sizeof *b * (size_t)n * o.targets);
    struct cryo_error e = {0};
    double scale_sum = 0, cover_sum = 0, lo_asp = 1e9, hi_asp = 0;
    int nblk = 0, bad_union = 0, bad_keep = 0, in_grid = 1;
    for (int s = 0; s < steps; s++) {
        CHECK(cryo_jepa_mask_draw(m, b, n, g[0], g[1], g[2], &o, 42, (uint64_t)s, 0, &e) == 0);
        for (int i = 0; i < n; i++) {
            memset(u, 0, T);
            for (int k = 0; k < o.targets; k++) {
                const struct cryo_mask_block *q = &b[i * o.targets + k];
                in_grid &= q->z0 >= 0 && q->y0 >= 0 && q->x0 >= 0 && q->z0 + q->d <= g[0] &&
                           q->y0 + q->h <= g[1] && q->x0 + q->w <= g[2] && q->d < g[0] && q->h < g[1] && q->w < g[2];
                for (int z = q->z0; z < q->z0 + q->d; z++)
                    for (int y = q->y0; y < q->y0 + q->h; y++)
                        for (int x = q->x0; x < q->x0 + q->w; x++)
                            u[((size_t)z * g[1] + y) * g[2] + x] = 1;
                scale_sum += (double)q->d * q->h * q->w / (double)T;
                double a1 = (double)q->d / q->h, a2 = (double)q->h / q->w;
                lo_asp = fmin(lo_asp, fmin(a1, a2));
                hi_asp = fmax(hi_asp, fmax(a1, a2));
                nblk++;
            }
            /* the mask is exactly the union of the blocks; the context its complement */
            size_t cnt = 0;
            for (size_t t = 0; t < T; t++) {
                bad_union += u[t] != m[(size_t)i * T + t];
                cnt += m[(size_t)i * T + t];
            }
            bad_keep += T - cnt < (size_t)o.min_keep;
            cover_sum += (double)cnt / (double)T;
        }
    }
    double mean_scale = scale_sum / nblk, cover = cover_sum / (steps * n);
    printf("mask: mean block scale %.3f, aspect %.2f..%.2f, target coverage %.3f\n", mean_scale, lo_asp, hi_asp, cover);
    CHECK(in_grid && bad_union == 0 && bad_keep == 0);
    /* rounding to whole tokens on a 6x8x7 grid moves a block's scale by up to ~±0.07 */
    CHECK(mean_scale > 0.13 && mean_scale < 0.22);
    /* aspect ratios in [0.75, 1.5] before rounding; a side of 2-4 tokens rounds them to
     * ratios of small integers: 1/2 .. 2 at the extremes */
    CHECK(lo_asp >= 0.5 - 1e-9 && hi_asp <= 2.0 + 1e-9 && lo_asp < 1 && hi_asp > 1);
    /* 4 blocks of ~17 %: union between 17 % and 70 %, overlaps make it below 4 × 17 % */
    CHECK(cover > 0.3 && cover < 0.68);
    /* per-sample positions: sample 5 drawn alone (first = 5) equals its slot in the batch;
     * samples differ; the same (seed, step) repeats; another seed differs */
    CHECK(cryo_jepa_mask_draw(m, NULL, n, g[0], g[1], g[2], &o, 42, 7, 0, &e) == 0);
    CHECK(cryo_jepa_mask_draw(u, NULL, 1, g[0], g[1], g[2], &o, 42, 7, 5, &e) == 0);
    CHECK(memcmp(u, m + 5 * T, T) == 0);
    CHECK(memcmp(m, m + T, T) != 0);
    CHECK(cryo_jepa_mask_draw(u, NULL, 1, g[0], g[1], g[2], &o, 43, 7, 5, &e) == 0);
    CHECK(memcmp(u, m + 5 * T, T) != 0);
    /* refusals */
    o.scale_max = 1.5;
    CHECK(cryo_jepa_mask_draw(m, NULL, 1, 4, 4, 4, &o, 1, 0, 0, &e) == CRYO_E_INVALID);
    cryo_jepa_mask_opts_default(&o);
    CHECK(cryo_jepa_mask_draw(m, NULL, 1, 1, 1, 1, &o, 1, 0, 0, &e) == CRYO_E_INVALID);
    /* tiny grid (2³, 16³ crops of a 3-level net): still a valid mask with context left */
    CHECK(cryo_jepa_mask_draw(m, b, 4, 2, 2, 2, &o, 1, 0, 0, &e) == 0);
    for (int i = 0; i < 4; i++) {
        size_t c = 0;
        for (int t = 0; t < 8; t++)
            c += m[i * 8 + t];
        CHECK(c >= 1 && c <= 6);
    }
    free(m);
    free(u);
    free(b);
}

TEST(schedules)
{
    CHECK_CLOSE(cryo_linear_ramp(0.996, 1.0, 0, 100), 0.996, 1e-15);
    CHECK_CLOSE(cryo_linear_ramp(0.996, 1.0, 50, 100), 0.998, 1e-15);
    CHECK_CLOSE(cryo_linear_ramp(0.996, 1.0, 100, 100), 1.0, 1e-15);
    CHECK_CLOSE(cryo_linear_ramp(0.996, 1.0, 500, 100), 1.0, 1e-15);
    CHECK_CLOSE(cryo_linear_ramp(0.996, 1.0, 50, 0), 0.996, 1e-15);
    CHECK_CLOSE(cryo_cosine_ramp(0.04, 0.4, 0, 100), 0.04, 1e-15);
    CHECK_CLOSE(cryo_cosine_ramp(0.04, 0.4, 50, 100), 0.22, 1e-12);
    CHECK_CLOSE(cryo_cosine_ramp(0.04, 0.4, 25, 100), 0.4 + (0.04 - 0.4) * 0.5 * (1 + cos(M_PI / 4)), 1e-12);
    CHECK_CLOSE(cryo_cosine_ramp(0.04, 0.4, 100, 100), 0.4, 1e-15);
}

static void small(struct cryo_scunet_config *c, struct cryo_jepa_config *jc)
{
    struct cryo_error e = {0};
    cryo_scunet_config_default(c);
    if (cryo_scunet_config_parse(c, "width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2", &e) < 0)
        tu_fail(__FILE__, __LINE__, "%s", e.msg);
    cryo_jepa_config_default(jc, c);
    jc->embed = 24;
    jc->head_dim = 8;
    jc->depth = 1;
}

/* Smooth-L1 over the target tokens of pred against LN(target), as I-JEPA (reference). */
static double ref_loss(const float *pred, const float *tgt, const uint8_t *mask, size_t T, size_t E, double beta)
{
    double s = 0;
    size_t cnt = 0;
    for (size_t k = 0; k < T; k++) {
        if (!mask[k])
            continue;
        double mu = 0, var = 0;
        for (size_t i = 0; i < E; i++)
            mu += tgt[k * E + i];
        mu /= (double)E;
        for (size_t i = 0; i < E; i++)
            var += (tgt[k * E + i] - mu) * (tgt[k * E + i] - mu);
        double rs = 1 / sqrt(var / (double)E + 1e-5);
        for (size_t i = 0; i < E; i++) {
            double d = fabs(pred[k * E + i] - (tgt[k * E + i] - mu) * rs);
            s += d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
            cnt++;
        }
    }
    return s / (double)cnt;
}

TEST(smooth_l1_jepa_loss_gradient_and_schedules_in_the_step)
{
    struct cryo_scunet_config c;
    struct cryo_jepa_config jc;
    small(&c, &jc);
    struct cryo_jepa_train_opts o;
    cryo_jepa_train_opts_default(&o);
    o.beta = 0.3; /* differences of LN targets (~1) fall on both sides of β */
    o.sched.total = 10;
    o.sched.warmup = 2;
    struct cryo_error e = {0};
    struct cryo_jepa_trainer *t = NULL;
    const int D = 16, N = 2;
    CHECK(cryo_jepa_trainer_create(&t, &c, &jc, &o, ctx, N, D, D, D, 3, &e) == 0);
    if (!t)
        return;
    size_t n = (size_t)N * D * D * D, T = cryo_jepa_tokens(t->pred), E = (size_t)jc.embed;
    size_t ne = cryo_scunet_num_params(t->enc);
    float *x = malloc(n * sizeof *x), *old = malloc(ne * sizeof *old);
    uint64_t r = 9;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 + 0.5 * tu_rand(&r));
    for (int s = 1; s <= 3; s++) {
        memcpy(old, cryo_scunet_param_data(t->tenc), ne * sizeof *old);
        CHECK(cryo_jepa_trainer_step(t, x, &e) == 0);
        double mom = 0.996 + (s - 1) * 0.004 / 10, wd = 0.4 + (0.04 - 0.4) * 0.5 * (1 + cos(M_PI * s / 10));
        CHECK_CLOSE(t->last_ema, mom, 1e-12);
        CHECK_CLOSE(t->last_wd, wd, 1e-12);
        const float *pc = cryo_scunet_param_data(t->enc), *pt = cryo_scunet_param_data(t->tenc);
        int ok = 1;
        for (size_t i = 0; i < ne; i += 37)
            ok &= tu_close(pt[i], mom * old[i] + (1 - mom) * pc[i], 1e-6);
        CHECK(ok);
    }
    /* after the step, pred / embeddings / mask / dout still hold the last step's values */
    const float *pred = cryo_jepa_pred(t->pred), *tgt = cryo_jepa_embeddings(t->tpred);
    double L = ref_loss(pred, tgt, t->mask, T, E, o.beta);
    CHECK_CLOSE(t->last_loss, L, 1e-6);
    float *p = malloc(T * E * sizeof *p);
    memcpy(p, pred, T * E * sizeof *p);
    int checked = 0, bad = 0, zero_ok = 1;
    for (size_t k = 0; k < T; k++)
        for (size_t i = 0; i < E; i += 5) {
            size_t j = k * E + i;
            if (!t->mask[k]) {
                zero_ok &= t->dout[j] == 0;
                continue;
            }
            float keep = p[j];
            double h = 1e-3;
            p[j] = keep + (float)h;
            double lp = ref_loss(p, tgt, t->mask, T, E, o.beta);
            p[j] = keep - (float)h;
            double lm = ref_loss(p, tgt, t->mask, T, E, o.beta);
            p[j] = keep;
            double fd = (lp - lm) / (2 * h);
            checked++;
            if (!(fabs(fd - t->dout[j]) <= 1e-3 * fabs(fd) + 1e-9)) {
                if (bad++ < 3)
                    tu_fail(__FILE__, __LINE__, "dpred[%zu] %.6g, finite difference %.6g", j, t->dout[j], fd);
            }
        }
    printf("smooth-L1 JEPA gradient: %d entries checked against central differences\n", checked);
    CHECK(checked > 50 && bad == 0 && zero_ok);
    /* healthy target encoder: spread well above 0; a collapsed one (all weights 0: every
     * token alike) reads 0 */
    printf("spread: tokens %.3f samples %.3f\n", t->spread_tokens, t->spread_samples);
    CHECK(t->spread_tokens > 0.05 && t->spread_samples > 0);
    memset(cryo_scunet_param_data(t->tenc), 0, ne * sizeof(float));
    CHECK(cryo_jepa_trainer_step(t, x, &e) == 0);
    CHECK(t->spread_tokens < 1e-6 && t->spread_samples < 1e-6);
    free(p);
    free(x);
    free(old);
    cryo_jepa_trainer_free(t);
}

int main(void)
{
    struct cryo_error e = {0};
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 2, &e) < 0) {
        fprintf(stderr, "test_jepa: %s\n", e.msg);
        return 1;
    }
    int rc = RUN_TESTS(mask_statistics, schedules, smooth_l1_jepa_loss_gradient_and_schedules_in_the_step);
    cryo_nn_ctx_free(ctx);
    return rc;
}
