/* test_jepa.c — JEPA pre-training pieces: I-JEPA multi-block 3D masks (scale, aspect,
 * coverage, disjointness, min_keep, per-sample independence), the Smooth-L1 JEPA loss and
 * its gradient (recomputed here from the trainer's predictions and target embeddings, and
 * central differences of that loss), the EMA / weight-decay schedules inside the step, and
 * the collapse statistics, the validation loss. The predictor itself is checked against PyTorch in test_model.
 */
#include "testutil.h"
#include "cryolvm/jepa_mask.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_train.h"

#include <math.h>
#include <pthread.h>
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

/* ---- data parallelism: two "ranks" as threads, the reducer doing an all-reduce by hand ---- */

struct fake_world {
    pthread_barrier_t bar;
    float *slot[2][2];   /* rank × grad array: count-weighted gradients */
    size_t n[2];
    double loss[2], count[2];
};

struct fake_rank {
    struct fake_world *w;
    int rank;
};

static int fake_allreduce(void *user, float *const *grad, const size_t *n, int ngrad, double *loss, double count,
                          struct cryo_error *err)
{
    struct fake_rank *r = user;
    struct fake_world *w = r->w;
    for (int i = 0; i < ngrad; i++)
        for (size_t k = 0; k < n[i]; k++)
            w->slot[r->rank][i][k] = (float)(grad[i][k] * count);
    w->loss[r->rank] = *loss * count;
    w->count[r->rank] = count;
    pthread_barrier_wait(&w->bar);
    double N = w->count[0] + w->count[1];
    for (int i = 0; i < ngrad; i++)
        for (size_t k = 0; k < n[i]; k++)
            grad[i][k] = (float)(((double)w->slot[0][i][k] + (double)w->slot[1][i][k]) / N);
    *loss = (w->loss[0] + w->loss[1]) / N;
    pthread_barrier_wait(&w->bar);
    return CRYO_OK;
}

struct rank_job {
    struct cryo_jepa_trainer *t;
    const float *x;
    int steps, ok;
};

static void *rank_main(void *arg)
{
    struct rank_job *j = arg;
    struct cryo_error e = {0};
    j->ok = 1;
    for (int s = 0; s < j->steps; s++)
        j->ok &= cryo_jepa_trainer_step(j->t, j->x, &e) == 0;
    return NULL;
}

/* Two trainers with batch 1 each (sample offsets 0 and 1) and the reducer step like one
 * trainer with batch 2: same masks, same loss, same weights to float rounding. */
TEST(two_ranks_equal_one_process)
{
    struct cryo_scunet_config c;
    struct cryo_jepa_config jc;
    small(&c, &jc);
    struct cryo_jepa_train_opts o;
    cryo_jepa_train_opts_default(&o);
    o.sched.total = 6;
    struct cryo_error e = {0};
    const int D = 16, steps = 4;
    size_t nv = (size_t)D * D * D;
    float *x = malloc(2 * nv * sizeof *x);
    uint64_t r = 17;
    for (size_t i = 0; i < 2 * nv; i++)
        x[i] = (float)(0.5 + 0.5 * tu_rand(&r));
    struct cryo_nn_ctx *cx[2] = {NULL, NULL};
    struct cryo_jepa_trainer *one = NULL, *rk[2] = {NULL, NULL};
    CHECK(cryo_jepa_trainer_create(&one, &c, &jc, &o, ctx, 2, D, D, D, 7, &e) == 0);
    struct fake_world w;
    memset(&w, 0, sizeof w);
    struct fake_rank fr[2] = {{&w, 0}, {&w, 1}};
    pthread_barrier_init(&w.bar, NULL, 2);
    for (int k = 0; k < 2; k++) {
        CHECK(cryo_nn_ctx_create(&cx[k], CRYO_NN_DEVICE_CPU, 1, &e) == 0);
        CHECK(cryo_jepa_trainer_create(&rk[k], &c, &jc, &o, cx[k], 1, D, D, D, 7, &e) == 0);
        if (!rk[k])
            goto out;
        rk[k]->sample_offset = (uint64_t)k;
        rk[k]->reduce = (struct cryo_grad_reducer){fake_allreduce, &fr[k], 0}; /* host memory */
        size_t ne = cryo_scunet_num_params(rk[k]->enc), np = cryo_jepa_num_params(rk[k]->pred);
        w.slot[k][0] = malloc(ne * sizeof(float));
        w.slot[k][1] = malloc(np * sizeof(float));
    }
    if (!one)
        goto out;
    for (int s = 0; s < steps; s++)
        CHECK(cryo_jepa_trainer_step(one, x, &e) == 0);
    struct rank_job jb[2] = {{rk[0], x, steps, 0}, {rk[1], x + nv, steps, 0}};
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&th[k], NULL, rank_main, &jb[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    CHECK(jb[0].ok && jb[1].ok);
    size_t ne = cryo_scunet_num_params(one->enc), np = cryo_jepa_num_params(one->pred);
    /* the masks of the two ranks are the two halves of the one-process mask */
    size_t T1 = cryo_jepa_tokens(rk[0]->pred);
    CHECK(memcmp(one->mask, rk[0]->mask, T1) == 0 && memcmp(one->mask + T1, rk[1]->mask, T1) == 0);
    CHECK_CLOSE(rk[0]->last_loss, one->last_loss, 1e-5);
    CHECK_CLOSE(rk[1]->last_loss, one->last_loss, 1e-5);
    double e1 = tu_rel_err(cryo_scunet_param_data(rk[0]->enc), cryo_scunet_param_data(one->enc), ne);
    double e2 = tu_rel_err(cryo_jepa_param_data(rk[1]->pred), cryo_jepa_param_data(one->pred), np);
    double e3 = tu_rel_err(cryo_scunet_param_data(rk[1]->tenc), cryo_scunet_param_data(one->tenc), ne);
    printf("2 ranks vs 1 process after %d steps: rel. err. encoder %.2g, predictor %.2g, EMA %.2g\n", steps, e1, e2, e3);
    CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5);
    CHECK(memcmp(cryo_scunet_param_data(rk[0]->enc), cryo_scunet_param_data(rk[1]->enc), ne * sizeof(float)) == 0);
out:
    for (int k = 0; k < 2; k++) {
        cryo_jepa_trainer_free(rk[k]);
        cryo_nn_ctx_free(cx[k]);
        free(w.slot[k][0]);
        free(w.slot[k][1]);
    }
    pthread_barrier_destroy(&w.bar);
    cryo_jepa_trainer_free(one);
    free(x);
}

/* Validation: the loss of the current weights with the masks of (mask_seed, step 0, first),
 * the reference loss of the trainer's own predictions and targets, repeatable, and without
 * side effects: a trainer that evaluated steps bit for bit like one that did not. */
TEST(evaluation_is_the_loss_without_side_effects)
{
    struct cryo_scunet_config c;
    struct cryo_jepa_config jc;
    small(&c, &jc);
    struct cryo_jepa_train_opts o;
    cryo_jepa_train_opts_default(&o);
    o.beta = 0.3;
    o.sched.total = 6;
    struct cryo_error e = {0};
    struct cryo_jepa_trainer *a = NULL, *b = NULL;
    const int D = 16, N = 2;
    CHECK(cryo_jepa_trainer_create(&a, &c, &jc, &o, ctx, N, D, D, D, 5, &e) == 0);
    CHECK(cryo_jepa_trainer_create(&b, &c, &jc, &o, ctx, N, D, D, D, 5, &e) == 0);
    if (!a || !b)
        goto out;
    size_t n = (size_t)N * D * D * D, T = cryo_jepa_tokens(a->pred), E = (size_t)jc.embed;
    size_t ne = cryo_scunet_num_params(a->enc), np = cryo_jepa_num_params(a->pred);
    float *x = malloc(n * sizeof *x);
    uint8_t *m = malloc(T);
    uint64_t r = 11;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 + 0.5 * tu_rand(&r));
    CHECK(cryo_jepa_trainer_step(a, x, &e) == 0 && cryo_jepa_trainer_step(b, x, &e) == 0);
    double l1 = 0, l2 = 0;
    uint64_t rng = a->rng;
    CHECK(cryo_jepa_trainer_eval(a, x, 99, 7, &l1, &e) == 0);
    int g = D / 4;
    CHECK(cryo_jepa_mask_draw(m, NULL, N, g, g, g, &o.mask, 99, 0, 7, &e) == 0);
    CHECK(memcmp(m, a->mask, T) == 0);
    double ref = ref_loss(cryo_jepa_pred(a->pred), cryo_jepa_embeddings(a->tpred), a->mask, T, E, o.beta);
    printf("evaluation loss %.6f, reference %.6f, last step's loss %.6f\n", l1, ref, a->last_loss);
    CHECK_CLOSE(l1, ref, 1e-6);
    CHECK(cryo_jepa_trainer_eval(a, x, 99, 7, &l2, &e) == 0);
    CHECK(l1 == l2 && a->step == 1 && a->rng == rng);
    CHECK(cryo_jepa_trainer_step(a, x, &e) == 0 && cryo_jepa_trainer_step(b, x, &e) == 0);
    CHECK(a->last_loss == b->last_loss);
    CHECK(memcmp(cryo_scunet_param_data(a->enc), cryo_scunet_param_data(b->enc), ne * sizeof(float)) == 0);
    CHECK(memcmp(cryo_jepa_param_data(a->tpred), cryo_jepa_param_data(b->tpred), np * sizeof(float)) == 0);
    free(x);
    free(m);
out:
    cryo_jepa_trainer_free(a);
    cryo_jepa_trainer_free(b);
}

int main(void)
{
    struct cryo_error e = {0};
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 2, &e) < 0) {
        fprintf(stderr, "test_jepa: %s\n", e.msg);
        return 1;
    }
    int rc = RUN_TESTS(mask_statistics, schedules, smooth_l1_jepa_loss_gradient_and_schedules_in_the_step,
                       two_ranks_equal_one_process, evaluation_is_the_loss_without_side_effects);
    cryo_nn_ctx_free(ctx);
    return rc;
}
