/* test_hist.c — soft histograms, divergences, and the HistKL gradient by finite differences. */
#include "cryolvm/hist.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

TEST(hist_normalised_and_centred)
{
    struct cryo_hist_spec s = {.bins = 16, .lo = 0, .hi = 1, .sigma = 0.04};
    float x[1] = {0.65625f}; /* centre of bin 10, exact in float */
    double p[16];
    CHECK(cryo_soft_hist(p, x, 1, NULL, &s, NULL) == 0);
    double sum = 0;
    int arg = 0;
    for (int j = 0; j < 16; j++) {
        sum += p[j];
        if (p[j] > p[arg])
            arg = j;
    }
    CHECK_CLOSE(sum, 1.0, 1e-12);
    CHECK_EQ_INT(arg, 10);
    CHECK_CLOSE(p[9], p[11], 1e-12); /* symmetric about the value */
    /* ratio of neighbours follows the Gaussian: exp(-½(0.0625/0.04)²) */
    CHECK_CLOSE(p[9] / p[10], exp(-0.5 * 0.0625 * 0.0625 / 0.0016), 1e-12);
}

TEST(divergences)
{
    double p[3] = {0.5, 0.5, 0}, q[3] = {0, 0.5, 0.5};
    CHECK_CLOSE(cryo_js_divergence(p, p, 3), 0, 1e-15);
    CHECK_CLOSE(cryo_js_divergence(p, q, 3), 0.5 * log(2.0), 1e-12);
    CHECK(isinf(cryo_kl_divergence(p, q, 3)));
    double r[3] = {0.25, 0.5, 0.25};
    CHECK_CLOSE(cryo_kl_divergence(p, r, 3), 0.5 * log(2.0), 1e-12);
}

TEST(mask_and_errors)
{
    struct cryo_hist_spec s = {.bins = 8, .lo = 0, .hi = 1, .sigma = 0.05};
    float x[4] = {0.1f, 0.9f, 0.9f, NAN}, m[4] = {1, 0, 0, 0};
    double p[8], q[8];
    struct cryo_error e = {0};
    CHECK(cryo_soft_hist(p, x, 4, m, &s, &e) == 0); /* NaN is masked out */
    CHECK(cryo_soft_hist(q, x, 1, NULL, &s, &e) == 0);
    CHECK_CLOSE(cryo_js_divergence(p, q, 8), 0, 1e-15);
    CHECK(cryo_soft_hist(p, x, 4, NULL, &s, &e) == CRYO_E_NUMERIC);
    struct cryo_hist_spec bad = {.bins = 8, .lo = 1, .hi = 1, .sigma = 0.05};
    CHECK(cryo_soft_hist(p, x, 1, NULL, &bad, &e) == CRYO_E_INVALID);
    float far[1] = {100.f};
    CHECK(cryo_soft_hist(p, far, 1, NULL, &s, &e) == CRYO_E_NUMERIC);
}

TEST(histkl_gradient_matches_finite_differences)
{
    enum { N = 300 };
    struct cryo_hist_spec s = {.bins = 32, .lo = 0, .hi = 1, .sigma = 0.03};
    float pred[N], target[N], grad[N];
    uint64_t rng = 42;
    for (int i = 0; i < N; i++) {
        pred[i] = (float)(0.5 + 0.3 * tu_rand(&rng));
        target[i] = (float)(0.4 + 0.4 * tu_rand(&rng) * fabs(tu_rand(&rng)));
    }
    double loss;
    CHECK(cryo_histkl_loss(&loss, grad, pred, target, N, &s, NULL) == 0);
    CHECK(loss > 0.01);
    double num[N], ana[N];
    for (int i = 0; i < N; i++) {
        /* central difference in float32 inputs: h large enough for float resolution */
        const float h = 1e-3f;
        float keep = pred[i];
        double lp, lm;
        pred[i] = keep + h;
        cryo_histkl_loss(&lp, NULL, pred, target, N, &s, NULL);
        pred[i] = keep - h;
        cryo_histkl_loss(&lm, NULL, pred, target, N, &s, NULL);
        pred[i] = keep;
        num[i] = (lp - lm) / (double)((keep + h) - (keep - h));
        ana[i] = grad[i];
    }
    /* O(h²) truncation of a Gaussian with σ = 0.03 at h = 1e-3: relative ~ (h/σ)² ≈ 1e-3 */
    double e = tu_rel_err_d(ana, num, N);
    if (!(e < 2e-3))
        tu_fail(__FILE__, __LINE__, "HistKL gradient rel err %.3g", e);
}

int main(void)
{
    return RUN_TESTS(hist_normalised_and_centred, divergences, mask_and_errors,
                     histkl_gradient_matches_finite_differences);
}
