/* test_jepa_ops.c — the JEPA/MAE trainers' token-mask ops on the CPU context (nn_train.h:
 * cryo_nn_mask_patches, cryo_nn_patchify, cryo_nn_collapse_stats, cryo_nn_mask_rows and its
 * backward) against loops written here from the definitions, with argument refusals; and
 * what a trainer step moves between host and context: the batch and the mask up, nothing
 * down (the step's tensors, the masked input, the MAE targets, the predictor's mask and the
 * collapse statistics stay in context memory), counted by wrapping the CPU backend's upload
 * and download.
 */
#include "testutil.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_train.h"
#include "nn/backend_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cryo_nn_ctx *ctx;

/* n tiles of d × h × w voxels, C channels, patches of p: the voxel's token, from the
 * coordinates */
static size_t token_of(int s, int z, int y, int x, int d, int h, int w, int p)
{
    return (((size_t)s * (size_t)(d / p) + (size_t)(z / p)) * (size_t)(h / p) + (size_t)(y / p)) * (size_t)(w / p) +
           (size_t)(x / p);
}

TEST(mask_patches_zeroes_the_voxels_of_masked_tokens)
{
    const int n = 2, d = 8, h = 4, w = 12, C = 3, p = 4;
    size_t nv = (size_t)n * d * h * w * C, T = (size_t)n * (d / p) * (h / p) * (w / p);
    float *in = malloc(nv * sizeof *in), *out = malloc(nv * sizeof *out), *ref = malloc(nv * sizeof *ref);
    float *m = malloc(T * sizeof *m);
    uint64_t r = 3;
    for (size_t i = 0; i < nv; i++)
        in[i] = (float)tu_rand(&r);
    size_t masked = 0;
    for (size_t k = 0; k < T; k++) {
        m[k] = tu_rand(&r) > 0.2 ? 1.0f : 0.0f;
        masked += m[k] != 0;
    }
    for (int s = 0; s < n; s++)
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < C; c++) {
                        size_t v = ((((size_t)s * d + z) * h + y) * w + x) * C + c;
                        ref[v] = m[token_of(s, z, y, x, d, h, w, p)] != 0 ? 0.0f : in[v];
                    }
    struct cryo_error e = {0};
    memset(out, 0xff, nv * sizeof *out);
    CHECK(cryo_nn_mask_patches(ctx, out, in, m, n, d, h, w, C, p, &e) == 0);
    CHECK(memcmp(out, ref, nv * sizeof *out) == 0);
    /* in place */
    memcpy(out, in, nv * sizeof *out);
    CHECK(cryo_nn_mask_patches(ctx, out, out, m, n, d, h, w, C, p, &e) == 0);
    CHECK(memcmp(out, ref, nv * sizeof *out) == 0);
    size_t zeros = 0;
    for (size_t i = 0; i < nv; i++)
        zeros += out[i] == 0.0f;
    printf("mask patches: %zu of %zu tokens masked, %zu of %zu values zeroed\n", masked, T, zeros, nv);
    CHECK(masked > 0 && masked < T && zeros == masked * (size_t)(p * p * p * C));
    /* refusals: p not dividing a side, NULL buffers */
    CHECK(cryo_nn_mask_patches(ctx, out, in, m, n, d, h, 10, C, p, &e) == CRYO_E_INVALID);
    CHECK(strstr(e.msg, "patches of 4") != NULL);
    CHECK(cryo_nn_mask_patches(ctx, out, in, NULL, n, d, h, w, C, p, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_mask_patches(ctx, out, in, m, 0, d, h, w, C, p, &e) == CRYO_E_INVALID);
    free(in), free(out), free(ref), free(m);
}

TEST(patchify_cuts_the_patches_into_rows)
{
    const int n = 3, d = 4, h = 6, w = 2, C = 2, p = 2;
    int gd = d / p, gh = h / p, gw = w / p;
    size_t nv = (size_t)n * d * h * w * C, T = (size_t)n * gd * gh * gw, W = (size_t)p * p * p * C;
    float *in = malloc(nv * sizeof *in), *out = malloc(T * W * sizeof *out), *ref = malloc(T * W * sizeof *ref);
    uint64_t r = 8;
    for (size_t i = 0; i < nv; i++)
        in[i] = (float)tu_rand(&r);
    /* every voxel to its token's row, at its place in the patch */
    for (int s = 0; s < n; s++)
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < C; c++) {
                        size_t k = token_of(s, z, y, x, d, h, w, p);
                        size_t col = ((size_t)(z % p) * p + (size_t)(y % p)) * p * C + (size_t)(x % p) * C + c;
                        ref[k * W + col] = in[((((size_t)s * d + z) * h + y) * w + x) * C + c];
                    }
    struct cryo_error e = {0};
    CHECK(cryo_nn_patchify(ctx, out, in, n, d, h, w, C, p, &e) == 0);
    CHECK(memcmp(out, ref, T * W * sizeof *out) == 0);
    CHECK(cryo_nn_patchify(ctx, out, in, n, d, h, w, C, 4, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_patchify(ctx, in, in, n, d, h, w, C, p, &e) == CRYO_E_INVALID);
    free(in), free(out), free(ref);
}

/* The statistics from their definition, with two-pass standard deviations (the op sums v and
 * v² in one pass) */
static void ref_stats(const float *x, int n, size_t per, size_t F, double *tokens, double *samples)
{
    size_t T = (size_t)n * per;
    double *ln = malloc(T * F * sizeof *ln), *mean = malloc((size_t)n * F * sizeof *mean);
    for (size_t k = 0; k < T; k++) {
        double mu = 0, var = 0;
        for (size_t i = 0; i < F; i++)
            mu += x[k * F + i];
        mu /= (double)F;
        for (size_t i = 0; i < F; i++)
            var += (x[k * F + i] - mu) * (x[k * F + i] - mu);
        for (size_t i = 0; i < F; i++)
            ln[k * F + i] = (float)((x[k * F + i] - mu) / sqrt(var / (double)F + 1e-5));
    }
    double tok = 0, smp = 0;
    for (int s = 0; s < n; s++)
        for (size_t i = 0; i < F; i++) {
            double a = 0, q = 0;
            for (size_t k = 0; k < per; k++)
                a += ln[((size_t)s * per + k) * F + i];
            a /= (double)per;
            for (size_t k = 0; k < per; k++)
                q += (ln[((size_t)s * per + k) * F + i] - a) * (ln[((size_t)s * per + k) * F + i] - a);
            tok += sqrt(q / (double)per);
            mean[(size_t)s * F + i] = a;
        }
    for (size_t i = 0; i < F && n > 1; i++) {
        double a = 0, q = 0;
        for (int s = 0; s < n; s++)
            a += mean[(size_t)s * F + i];
        a /= n;
        for (int s = 0; s < n; s++)
            q += (mean[(size_t)s * F + i] - a) * (mean[(size_t)s * F + i] - a);
        smp += sqrt(q / n);
    }
    *tokens = tok / ((double)n * (double)F);
    *samples = smp / (double)F;
    free(ln);
    free(mean);
}

TEST(collapse_statistics_from_their_definition)
{
    const int n = 3, F = 20;
    const size_t per = 50, T = (size_t)n * per;
    float *x = malloc(T * F * sizeof *x);
    uint64_t r = 21;
    /* rows with a per-sample offset pattern, so samples differ, and a channel-dependent scale */
    for (size_t k = 0; k < T; k++)
        for (int i = 0; i < F; i++)
            x[k * F + (size_t)i] = (float)(3.0 + 0.1 * i + (double)(k / per) * 0.3 * (i % 3) + (1 + i % 4) * tu_rand(&r));
    struct cryo_error e = {0};
    double t = 0, s = 0, rt, rsmp;
    CHECK(cryo_nn_collapse_stats(ctx, &t, &s, x, n, per, F, &e) == 0);
    ref_stats(x, n, per, (size_t)F, &rt, &rsmp);
    printf("collapse statistics: tokens %.12f (reference %.12f), samples %.12f (reference %.12f)\n", t, rt, s, rsmp);
    /* float rounding of the normalised values may differ by an ulp here and there (the
     * reference divides by the standard deviation, the op multiplies by its inverse) */
    CHECK_CLOSE(t, rt, 1e-8);
    CHECK_CLOSE(s, rsmp, 1e-8);
    CHECK(t > 0.3 && s > 0.01);
    /* one sample: no spread across samples */
    CHECK(cryo_nn_collapse_stats(ctx, &t, &s, x, 1, per, F, &e) == 0);
    ref_stats(x, 1, per, (size_t)F, &rt, &rsmp);
    CHECK_CLOSE(t, rt, 1e-8);
    CHECK(s == 0 && rsmp == 0);
    /* every row alike (collapse): both 0, to the rounding of Σv²/per − mean² */
    for (size_t k = 1; k < T; k++)
        memcpy(x + k * F, x, F * sizeof *x);
    CHECK(cryo_nn_collapse_stats(ctx, &t, &s, x, n, per, F, &e) == 0);
    printf("collapsed rows: tokens %.3g samples %.3g\n", t, s);
    CHECK(t < 1e-6 && s < 1e-6);
    CHECK(cryo_nn_collapse_stats(ctx, &t, &s, x, n, 0, F, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_collapse_stats(ctx, &t, NULL, x, n, per, F, &e) == CRYO_E_INVALID);
    free(x);
}

/* ---- the predictor's mask-token rows ---------------------------------------------------- */

TEST(mask_rows_put_the_token_on_masked_rows_and_sum_their_gradient)
{
    const int64_t T = 37;
    const int E = 13;
    size_t nE = (size_t)T * E;
    float *z = malloc(nE * sizeof *z), *ref = malloc(nE * sizeof *ref), *pos = malloc(nE * sizeof *pos);
    float *g = malloc(nE * sizeof *g), *gref = malloc(nE * sizeof *gref), *m = malloc((size_t)T * sizeof *m);
    float tok[13], dt[13], dref[13];
    uint64_t r = 11;
    for (size_t i = 0; i < nE; i++) {
        z[i] = (float)tu_rand(&r);
        pos[i] = (float)tu_rand(&r);
        g[i] = (float)tu_rand(&r);
    }
    for (int i = 0; i < E; i++) {
        tok[i] = (float)tu_rand(&r);
        dt[i] = dref[i] = (float)tu_rand(&r);
    }
    size_t masked = 0;
    for (int64_t t = 0; t < T; t++) {
        m[t] = tu_rand(&r) > 0.2 ? (t % 3 ? 1.0f : 2.0f) : 0.0f; /* any nonzero masks */
        masked += m[t] != 0;
    }
    /* the plain loops: forward row by row; backward row by row in t order, per column */
    memcpy(ref, z, nE * sizeof *z);
    memcpy(gref, g, nE * sizeof *g);
    for (int64_t t = 0; t < T; t++)
        if (m[t] != 0)
            for (int i = 0; i < E; i++) {
                size_t k = (size_t)t * E + (size_t)i;
                ref[k] = tok[i] + pos[k];
                dref[i] += gref[k];
                gref[k] = 0.0f;
            }
    struct cryo_error e = {0};
    CHECK(cryo_nn_mask_rows(ctx, z, m, tok, pos, T, E, &e) == 0);
    CHECK(memcmp(z, ref, nE * sizeof *z) == 0);
    CHECK(cryo_nn_mask_rows_backward(ctx, dt, g, m, T, E, &e) == 0);
    CHECK(memcmp(g, gref, nE * sizeof *g) == 0 && memcmp(dt, dref, sizeof dt) == 0);
    printf("mask rows: %zu of %lld rows masked, dtoken[0] %.9g\n", masked, (long long)T, dt[0]);
    CHECK(masked > 0 && masked < (size_t)T);
    /* refusals */
    CHECK(cryo_nn_mask_rows(ctx, z, NULL, tok, pos, T, E, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_mask_rows(ctx, z, m, tok, pos, 0, E, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_mask_rows_backward(ctx, dt, g, m, T, 0, &e) == CRYO_E_INVALID);
    CHECK(cryo_nn_mask_rows_backward(ctx, NULL, g, m, T, E, &e) == CRYO_E_INVALID);
    free(z), free(ref), free(pos), free(g), free(gref), free(m);
}

/* ---- what a step moves ---------------------------------------------------------------- */

static size_t up_bytes, down_bytes;
static int count_up(struct cryo_nn_ctx *c, float *d, const float *s, size_t n, struct cryo_error *err)
{
    up_bytes += n * sizeof(float);
    return cryo_nn_cpu_ops.upload(c, d, s, n, err);
}
static int count_down(struct cryo_nn_ctx *c, float *d, const float *s, size_t n, struct cryo_error *err)
{
    down_bytes += n * sizeof(float);
    return cryo_nn_cpu_ops.download(c, d, s, n, err);
}

TEST(a_step_uploads_the_batch_once_and_downloads_nothing)
{
    struct cryo_scunet_config c;
    struct cryo_error e = {0};
    cryo_scunet_config_default(&c);
    CHECK(cryo_scunet_config_parse(&c, "width=8,head_dim=4,levels=2,depth=1,mlp_ratio=2", &e) == 0);
    struct cryo_jepa_config jc;
    cryo_jepa_config_default(&jc, &c);
    jc.embed = 24;
    jc.head_dim = 8;
    jc.depth = 1;
    struct cryo_nn_ops counting = cryo_nn_cpu_ops;
    counting.upload = count_up;
    counting.download = count_down;
    const struct cryo_nn_ops *keep = ctx->ops;
    ctx->ops = &counting;
    for (int mae = 0; mae < 2; mae++) {
        struct cryo_jepa_train_opts o;
        cryo_jepa_train_opts_default(&o);
        o.mode = mae ? CRYO_JEPA_MAE : CRYO_JEPA_LATENT;
        struct cryo_jepa_trainer *t = NULL;
        const int N = 2, D = 16;
        CHECK(cryo_jepa_trainer_create(&t, &c, &jc, &o, ctx, N, D, D, D, 3, &e) == 0);
        if (!t)
            break;
        size_t nin = cryo_scunet_input_count(t->enc), T = cryo_jepa_tokens(t->pred);
        float *x = malloc(nin * sizeof *x);
        uint64_t r = 4;
        for (size_t i = 0; i < nin; i++)
            x[i] = (float)(0.5 + 0.5 * tu_rand(&r));
        up_bytes = down_bytes = 0;
        CHECK(cryo_jepa_trainer_step(t, x, &e) == 0);
        printf("%s step: %zu bytes up (batch %zu + mask %zu), %zu down\n", mae ? "MAE" : "JEPA", up_bytes,
               nin * sizeof(float), T * sizeof(float), down_bytes);
        CHECK(up_bytes == (nin + T) * sizeof(float) && down_bytes == 0);
        CHECK(t->spread_tokens > 0);
        up_bytes = down_bytes = 0;
        double l;
        CHECK(cryo_jepa_trainer_eval(t, x, 5, 0, &l, &e) == 0);
        CHECK(up_bytes == (nin + T) * sizeof(float) && down_bytes == 0);
        free(x);
        cryo_jepa_trainer_free(t);
    }
    ctx->ops = keep;
}

int main(void)
{
    struct cryo_error e = {0};
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 2, &e) < 0) {
        fprintf(stderr, "test_jepa_ops: %s\n", e.msg);
        return 1;
    }
    int rc = RUN_TESTS(mask_patches_zeroes_the_voxels_of_masked_tokens, patchify_cuts_the_patches_into_rows,
                       collapse_statistics_from_their_definition,
                       mask_rows_put_the_token_on_masked_rows_and_sum_their_gradient,
                       a_step_uploads_the_batch_once_and_downloads_nothing);
    cryo_nn_ctx_free(ctx);
    return rc;
}
