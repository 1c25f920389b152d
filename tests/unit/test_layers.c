/* test_layers.c — every layer's backward checked by finite differences, plus argument
 * errors, gradient accumulation and in-place use; and a dump mode for the PyTorch parity
 * test (tests/ref/torch_layers.py, tests/bats/engine-layers.bats).
 *
 *   test_layers            run the unit tests
 *   test_layers --blas-core  report the OpenBLAS kernels before/after the first context
 *   test_layers --dump DIR write random inputs, weights, upstream gradients and our outputs
 *                          and gradients for a set of cases as raw float32 files
 *                          DIR/<case>.<tensor>.f32, listed in DIR/manifest.txt as
 *                          "<case> <layer> key=value ..." lines
 *
 * Finite differences, in float32. For a loss L = Σ out·R with a fixed random R, each
 * checked coordinate x_i gets (L(x_i+h) − L(x_i−h)) / 2h, L summed in double. Two error
 * sources bound the tolerance: truncation, O(h²·L'''), ≈ 1e-4 relative for h = 1e-2 on
 * these smooth layers with O(1) inputs; and float32 rounding of the outputs, about
 * 6e-8·|out|·√n_out in L, i.e. ≈ 1e-4 absolute after dividing by 2h for the ≤ 2000-element
 * outputs used here. So a coordinate passes when |fd − g| ≤ 2e-3·max|g| + 1e-2·|g| — well
 * above that noise and far below the size of any real mistake (a dropped term, a wrong
 * index, a missing scale all give O(1) relative errors). The PyTorch test is the tight one
 * (relative error < 1e-4 on every output and gradient).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cryolvm/nn_layers.h"
#include "cryolvm/volume.h" /* cryo_f32_to_bf16 */
#include "nn/backend_impl.h" /* to fake a backend that lacks ops */
#include "testutil.h"

static struct cryo_nn_ctx *ctx;
static uint64_t rng = 0x1234567ull;

static float *vec(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "test_layers: out of memory\n");
        exit(1);
    }
    return p;
}

static float *rnd(size_t n, double scale)
{
    float *p = vec(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(scale * tu_rand(&rng));
    return p;
}

/* ---- finite-difference harness ------------------------------------------------------ */

struct fd {
    void *st;
    void (*fwd)(void *st); /* recompute st's output from its current inputs */
    float *out;
    size_t nout;
    float *R; /* upstream gradient, dL/dout */
};

static double fd_loss(struct fd *f)
{
    f->fwd(f->st);
    double s = 0.0;
    for (size_t i = 0; i < f->nout; i++)
        s += (double)f->out[i] * f->R[i];
    return s;
}

/* Check grad (analytic dL/dx) at up to `samples` coordinates of x (all if fewer). */
static void fd_check(struct fd *f, float *x, const float *grad, size_t n, const char *name,
                     double h, int samples)
{
    size_t step = n <= (size_t)samples ? 1 : n / samples;
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++)
        gmax = fmax(gmax, fabs(grad[i]));
    int bad = 0;
    for (size_t i = (step > 1 ? (size_t)(tu_rand(&rng) * 0.5 + 0.5) * step / 2 : 0); i < n; i += step) {
        float old = x[i];
        x[i] = (float)(old + h);
        double lp = fd_loss(f);
        x[i] = (float)(old - h);
        double lm = fd_loss(f);
        x[i] = old;
        double num = (lp - lm) / (2.0 * h), g = grad[i];
        double tol = 2e-3 * gmax + 1e-2 * fabs(g);
        if (!(fabs(num - g) <= tol) || !isfinite(g)) {
            if (bad++ < 3)
                tu_fail(__FILE__, __LINE__, "%s[%zu]: backward %.6g, finite difference %.6g (tol %.2g)",
                        name, i, g, num, tol);
        }
    }
    fd_loss(f); /* leave the output of the unperturbed inputs */
    CHECK(gmax > 0.0); /* a zero gradient everywhere would pass vacuously */
}

#define OK(call)                                                                       \
    do {                                                                               \
        struct cryo_error e_ = {0};                                                    \
        int s_ = (call);                                                               \
        (void)e_;                                                                      \
        if (s_ != 0)                                                                   \
            tu_fail(__FILE__, __LINE__, "%s failed: %d", #call, s_);                   \
    } while (0)

static struct cryo_error err;

/* ---- convolution ----------------------------------------------------------------------- */

struct conv_st {
    struct cryo_nn_conv3d g;
    int transposed;
    float *inp, *w, *b, *out;
};

static void conv_fwd(void *p)
{
    struct conv_st *s = p;
    int r = s->transposed ? cryo_nn_convt3d_forward(ctx, s->out, s->inp, s->w, s->b, &s->g, &err)
                          : cryo_nn_conv3d_forward(ctx, s->out, s->inp, s->w, s->b, &s->g, &err);
    if (r)
        tu_fail(__FILE__, __LINE__, "conv forward: %s", err.msg);
}

static void conv_case(struct cryo_nn_conv3d g, int transposed)
{
    struct conv_st s = {.g = g, .transposed = transposed};
    int od, oh, ow;
    CHECK_EQ_INT(cryo_nn_conv3d_out_dims(&g, transposed, &od, &oh, &ow, &err), 0);
    size_t nin = (size_t)g.n * g.d * g.h * g.w * g.cin, nout = (size_t)g.n * od * oh * ow * g.cout;
    size_t nw = (size_t)g.cin * g.cout * g.k * g.k * g.k;
    s.inp = rnd(nin, 1.0);
    s.w = rnd(nw, 1.0 / sqrt((double)g.cin * g.k * g.k * g.k));
    s.b = g.bias ? rnd((size_t)g.cout, 0.5) : NULL;
    s.out = vec(nout);
    float *R = rnd(nout, 1.0), *dinp = vec(nin), *dw = vec(nw), *db = vec((size_t)g.cout);
    struct fd f = {&s, conv_fwd, s.out, nout, R};
    fd_loss(&f);
    int r = transposed ? cryo_nn_convt3d_backward(ctx, dinp, dw, db, R, s.inp, s.w, &g, &err)
                       : cryo_nn_conv3d_backward(ctx, dinp, dw, db, R, s.inp, s.w, &g, &err);
    CHECK_EQ_INT(r, 0);
    fd_check(&f, s.inp, dinp, nin, "conv dinp", 1e-2, 60);
    fd_check(&f, s.w, dw, nw, "conv dweight", 1e-2, 60);
    if (g.bias)
        fd_check(&f, s.b, db, (size_t)g.cout, "conv dbias", 1e-2, 60);
    /* parameter gradients accumulate; NULL gradients are skipped */
    float *dw2 = vec(nw);
    memcpy(dw2, dw, nw * sizeof(float));
    r = transposed ? cryo_nn_convt3d_backward(ctx, NULL, dw2, NULL, R, s.inp, s.w, &g, &err)
                   : cryo_nn_conv3d_backward(ctx, NULL, dw2, NULL, R, s.inp, s.w, &g, &err);
    CHECK_EQ_INT(r, 0);
    for (size_t i = 0; i < nw; i += 7)
        CHECK_CLOSE(dw2[i], 2.0 * dw[i], 1e-5);
    free(s.inp), free(s.w), free(s.b), free(s.out), free(R), free(dinp), free(dw), free(db), free(dw2);
}

TEST(conv3d_k3_odd_grid)
{
    conv_case((struct cryo_nn_conv3d){2, 5, 6, 7, 3, 5, 3, 1, 1, 1}, 0);
}
TEST(conv3d_k3_nobias)
{
    conv_case((struct cryo_nn_conv3d){1, 4, 3, 5, 17, 6, 3, 1, 1, 0}, 0);
}
TEST(conv3d_k2s2)
{
    conv_case((struct cryo_nn_conv3d){2, 6, 4, 8, 4, 6, 2, 2, 0, 1}, 0);
    conv_case((struct cryo_nn_conv3d){1, 5, 6, 7, 3, 4, 2, 2, 0, 0}, 0); /* odd: floor */
}
TEST(conv3d_k1)
{
    conv_case((struct cryo_nn_conv3d){2, 3, 5, 4, 7, 3, 1, 1, 0, 1}, 0);
}
TEST(convt3d_k2s2)
{
    conv_case((struct cryo_nn_conv3d){2, 3, 4, 5, 6, 4, 2, 2, 0, 1}, 1);
    conv_case((struct cryo_nn_conv3d){1, 3, 2, 3, 5, 7, 2, 2, 0, 0}, 1);
}

TEST(conv3d_weights_changed_in_place)
{
    /* the CPU backend keeps blocked copies of weights it has seen: a change in place, same
     * pointer, must still be used */
    struct cryo_nn_conv3d g = {1, 6, 5, 4, 8, 8, 3, 1, 1, 0};
    size_t n = 6 * 5 * 4 * 8, nw = 8 * 8 * 27;
    float *x = rnd(n, 1), *w = rnd(nw, 0.2), *y1 = vec(n), *y2 = vec(n), *y3 = vec(n);
    OK(cryo_nn_conv3d_forward(ctx, y1, x, w, NULL, &g, &err));
    w[nw / 2] += 1.0f;
    OK(cryo_nn_conv3d_forward(ctx, y2, x, w, NULL, &g, &err));
    struct cryo_nn_ctx *fresh;
    OK(cryo_nn_ctx_create(&fresh, CRYO_NN_DEVICE_CPU, 1, &err));
    OK(cryo_nn_conv3d_forward(fresh, y3, x, w, NULL, &g, &err));
    cryo_nn_ctx_free(fresh);
    CHECK_REL_ERR(y2, y3, n, 1e-6);
    CHECK(tu_rel_err(y1, y3, n) > 1e-3);
    /* layers sharing one geometry with their own weights, more of them than the backend
     * keeps blocked copies of (8), visited round-robin twice */
    enum { L = 11 };
    float *ws[L], *ref[L];
    OK(cryo_nn_ctx_create(&fresh, CRYO_NN_DEVICE_CPU, 1, &err));
    for (int l = 0; l < L; l++) {
        ws[l] = rnd(nw, 0.2), ref[l] = vec(n);
        OK(cryo_nn_conv3d_forward(fresh, ref[l], x, ws[l], NULL, &g, &err));
    }
    cryo_nn_ctx_free(fresh);
    for (int round = 0; round < 2; round++)
        for (int l = 0; l < L; l += (round ? 1 : 2)) {
            OK(cryo_nn_conv3d_forward(ctx, y2, x, ws[l], NULL, &g, &err));
            CHECK_REL_ERR(y2, ref[l], n, 1e-6);
        }
    for (int l = 0; l < L; l++)
        free(ws[l]), free(ref[l]);
    free(x), free(w), free(y1), free(y2), free(y3);
}

/* Precision BF16 (forward only): the output equals the float32 convolution of the input
 * and weights rounded to bfloat16 (round to nearest even, cryo_f32_to_bf16), float32
 * accumulation, bias in float32 — up to the summation order; and it is not the float32
 * result of the unrounded operands. The float32 path is the one checked against PyTorch
 * (tests/bats/engine-layers.bats). Skipped where the CPU has neither AVX-512 BF16 nor AMX,
 * where setting BF16 must be refused instead. */
static void conv_bf16_case(struct cryo_nn_conv3d g, int transposed)
{
    struct cryo_nn_ctx *b16, *f32;
    OK(cryo_nn_ctx_create(&b16, CRYO_NN_DEVICE_CPU, 1, &err));
    OK(cryo_nn_ctx_create(&f32, CRYO_NN_DEVICE_CPU, 1, &err));
    OK(cryo_nn_set_precision(b16, CRYO_NN_PRECISION_BF16, &err));
    int od, oh, ow;
    CHECK_EQ_INT(cryo_nn_conv3d_out_dims(&g, transposed, &od, &oh, &ow, &err), 0);
    size_t nin = (size_t)g.n * g.d * g.h * g.w * g.cin, nout = (size_t)g.n * od * oh * ow * g.cout;
    size_t nw = (size_t)g.cin * g.cout * g.k * g.k * g.k;
    float *x = rnd(nin, 1.0), *w = rnd(nw, 1.0 / sqrt((double)g.cin * g.k * g.k * g.k));
    float *b = g.bias ? rnd((size_t)g.cout, 0.5) : NULL, *xr = vec(nin), *wr = vec(nw);
    float *y = vec(nout), *ref = vec(nout), *full = vec(nout), *y2 = vec(nout);
    for (size_t i = 0; i < nin; i++)
        xr[i] = cryo_bf16_to_f32(cryo_f32_to_bf16(x[i]));
    for (size_t i = 0; i < nw; i++)
        wr[i] = cryo_bf16_to_f32(cryo_f32_to_bf16(w[i]));
#define FWD(c, o, xx, ww)                                                                  \
    OK(transposed ? cryo_nn_convt3d_forward(c, o, xx, ww, b, &g, &err)                     \
                  : cryo_nn_conv3d_forward(c, o, xx, ww, b, &g, &err))
    FWD(b16, y, x, w);
    FWD(f32, ref, xr, wr);
    FWD(f32, full, x, w);
    FWD(b16, y2, x, w); /* again: cached primitive and blocked weights */
#undef FWD
    CHECK_REL_ERR(y, ref, nout, 2e-6);
    CHECK_REL_ERR(y2, y, nout, 0);
    double e = tu_rel_err(y, full, nout);
    CHECK(e > 1e-4 && e < 2e-2); /* rounded (8-bit mantissa: ~4e-3 per operand) */
    /* the backward stays float32 under BF16: the same gradients as a float32 context */
    float *R = rnd(nout, 1.0), *d1 = vec(nin), *d2 = vec(nin);
    OK(transposed ? cryo_nn_convt3d_backward(b16, d1, NULL, NULL, R, x, w, &g, &err)
                  : cryo_nn_conv3d_backward(b16, d1, NULL, NULL, R, x, w, &g, &err));
    OK(transposed ? cryo_nn_convt3d_backward(f32, d2, NULL, NULL, R, x, w, &g, &err)
                  : cryo_nn_conv3d_backward(f32, d2, NULL, NULL, R, x, w, &g, &err));
    CHECK_REL_ERR(d1, d2, nin, 1e-6);
    cryo_nn_ctx_free(b16);
    cryo_nn_ctx_free(f32);
    free(x), free(w), free(b), free(xr), free(wr), free(y), free(ref), free(full), free(y2), free(R), free(d1),
        free(d2);
}

TEST(conv_bf16)
{
    char why[200];
    if (!cryo_nn_cpu_has_bf16(why, sizeof why)) {
        CHECK_EQ_INT(cryo_nn_set_precision(ctx, CRYO_NN_PRECISION_BF16, &err), CRYO_E_UNSUPPORTED);
        CHECK(strstr(err.msg, "AVX-512 BF16") != NULL);
        CHECK(cryo_nn_get_precision(ctx) == CRYO_NN_PRECISION_FP32);
        printf("  (conv_bf16: %s; refusal checked, arithmetic skipped)\n", why);
        return;
    }
    conv_bf16_case((struct cryo_nn_conv3d){2, 5, 6, 7, 16, 24, 3, 1, 1, 1}, 0);
    conv_bf16_case((struct cryo_nn_conv3d){1, 4, 3, 5, 17, 6, 3, 1, 1, 0}, 0); /* odd channels */
    conv_bf16_case((struct cryo_nn_conv3d){2, 6, 4, 8, 16, 32, 2, 2, 0, 1}, 0);
    conv_bf16_case((struct cryo_nn_conv3d){2, 3, 5, 4, 32, 16, 1, 1, 0, 1}, 0);
    conv_bf16_case((struct cryo_nn_conv3d){2, 3, 4, 5, 32, 16, 2, 2, 0, 1}, 1);
}

TEST(conv3d_bad_geometry)
{
    struct cryo_nn_conv3d g = {1, 2, 2, 2, 3, 4, 5, 1, 0, 0}; /* kernel larger than input */
    float x[64] = {0};
    CHECK_EQ_INT(cryo_nn_conv3d_forward(ctx, x, x, x, NULL, &g, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "conv3d_forward") != NULL);
    g = (struct cryo_nn_conv3d){1, 4, 4, 4, 3, 4, 3, 1, 3, 0}; /* pad >= k */
    CHECK_EQ_INT(cryo_nn_conv3d_forward(ctx, x, x, x, NULL, &g, &err), CRYO_E_INVALID);
    g = (struct cryo_nn_conv3d){1, 4, 4, 4, 3, 4, 3, 1, 1, 1}; /* bias flag, NULL bias */
    CHECK_EQ_INT(cryo_nn_conv3d_forward(ctx, x, x, x, NULL, &g, &err), CRYO_E_INVALID);
    CHECK_EQ_INT(cryo_nn_conv3d_forward(ctx, NULL, x, x, x, &g, &err), CRYO_E_INVALID);
    CHECK_EQ_INT(cryo_nn_conv3d_forward(NULL, x, x, x, x, &g, &err), CRYO_E_INVALID);
}

/* ---- linear ---------------------------------------------------------------------------- */

struct lin_st {
    int64_t T;
    int cin, cout;
    float *inp, *w, *b, *out;
};

static void lin_fwd(void *p)
{
    struct lin_st *s = p;
    if (cryo_nn_linear_forward(ctx, s->out, s->inp, s->w, s->b, s->T, s->cin, s->cout, &err))
        tu_fail(__FILE__, __LINE__, "linear forward: %s", err.msg);
}

TEST(linear)
{
    struct lin_st s = {37, 19, 11, NULL, NULL, NULL, NULL};
    size_t nin = (size_t)s.T * s.cin, nout = (size_t)s.T * s.cout, nw = (size_t)s.cin * s.cout;
    s.inp = rnd(nin, 1.0), s.w = rnd(nw, 0.3), s.b = rnd((size_t)s.cout, 0.5), s.out = vec(nout);
    float *R = rnd(nout, 1.0), *dinp = vec(nin), *dw = vec(nw), *db = vec((size_t)s.cout);
    struct fd f = {&s, lin_fwd, s.out, nout, R};
    fd_loss(&f);
    OK(cryo_nn_linear_backward(ctx, dinp, dw, db, R, s.inp, s.w, s.T, s.cin, s.cout, &err));
    fd_check(&f, s.inp, dinp, nin, "linear dinp", 1e-2, 80);
    fd_check(&f, s.w, dw, nw, "linear dweight", 1e-2, 80);
    fd_check(&f, s.b, db, (size_t)s.cout, "linear dbias", 1e-2, 80);
    CHECK_EQ_INT(cryo_nn_linear_forward(ctx, s.inp, s.inp, s.w, s.b, s.T, s.cin, s.cout, &err),
                 CRYO_E_INVALID);
    CHECK_EQ_INT(cryo_nn_linear_forward(ctx, s.out, s.inp, s.w, s.b, 0, s.cin, s.cout, &err),
                 CRYO_E_INVALID);
    free(s.inp), free(s.w), free(s.b), free(s.out), free(R), free(dinp), free(dw), free(db);
}

/* ---- LayerNorm ------------------------------------------------------------------------- */

struct ln_st {
    int64_t T;
    int C;
    float *inp, *g, *b, *out, *mean, *rstd;
};

static void ln_fwd(void *p)
{
    struct ln_st *s = p;
    if (cryo_nn_layernorm_forward(ctx, s->out, s->mean, s->rstd, s->inp, s->g, s->b, s->T, s->C,
                                  1e-5f, &err))
        tu_fail(__FILE__, __LINE__, "layernorm forward: %s", err.msg);
}

TEST(layernorm)
{
    struct ln_st s = {23, 21, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)s.T * s.C;
    s.inp = rnd(n, 2.0), s.g = rnd((size_t)s.C, 1.0), s.b = rnd((size_t)s.C, 1.0), s.out = vec(n);
    s.mean = vec((size_t)s.T), s.rstd = vec((size_t)s.T);
    float *R = rnd(n, 1.0), *dinp = vec(n), *dg = vec((size_t)s.C), *db = vec((size_t)s.C);
    struct fd f = {&s, ln_fwd, s.out, n, R};
    fd_loss(&f);
    OK(cryo_nn_layernorm_backward(ctx, dinp, dg, db, R, s.inp, s.g, s.mean, s.rstd, s.T, s.C, &err));
    fd_check(&f, s.inp, dinp, n, "layernorm dinp", 1e-2, 80);
    fd_check(&f, s.g, dg, (size_t)s.C, "layernorm dgamma", 1e-2, 80);
    fd_check(&f, s.b, db, (size_t)s.C, "layernorm dbeta", 1e-2, 80);
    /* normalised rows: mean 0, variance 1 before the affine part */
    float one[21], zero[21] = {0};
    for (int c = 0; c < 21; c++)
        one[c] = 1.0f;
    OK(cryo_nn_layernorm_forward(ctx, s.out, NULL, NULL, s.inp, one, zero, s.T, s.C, 1e-5f, &err));
    double m = 0, v = 0;
    for (int c = 0; c < s.C; c++)
        m += s.out[c];
    for (int c = 0; c < s.C; c++)
        v += s.out[c] * s.out[c];
    CHECK_CLOSE(m / s.C, 0.0, 1e-6);
    CHECK_CLOSE(v / s.C, 1.0, 1e-3);
    free(s.inp), free(s.g), free(s.b), free(s.out), free(s.mean), free(s.rstd);
    free(R), free(dinp), free(dg), free(db);
}

/* ---- FRN + TLU ------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

struct frn_st {
    int N;
    int64_t S;
    int C;
    float *inp, *g, *b, *tau, *out, *rstd;
};

static void frn_fwd(void *p)
{
    struct frn_st *s = p;
    if (cryo_nn_frn_forward(ctx, s->out, s->rstd, s->inp, s->g, s->b, s->tau, s->N, s->S, s->C,
                            1e-6f, &err))
        tu_fail(__FILE__, __LINE__, "frn forward: %s", err.msg);
}

TEST(frn_tlu)
{
    struct frn_st s = {2, 5 * 6 * 7, 5, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = (size_t)s.N * s.S * s.C;
    s.inp = rnd(n, 1.5), s.g = rnd((size_t)s.C, 1.0), s.b = rnd((size_t)s.C, 0.5);
    s.tau = rnd((size_t)s.C, 0.5), s.out = vec(n), s.rstd = vec((size_t)s.N * s.C);
    for (int c = 0; c < s.C; c++) /* |γ| >= 0.5, so a channel's y values are not crowded
                                      within a step h of each other (see the τ choice below) */
        s.g[c] = s.g[c] < 0 ? s.g[c] - 0.5f : s.g[c] + 0.5f;
    float *R = rnd(n, 1.0), *dinp = vec(n), *dg = vec((size_t)s.C), *db = vec((size_t)s.C),
          *dt = vec((size_t)s.C);
    struct fd f = {&s, frn_fwd, s.out, n, R};
    /* Finite differences across the TLU kink are wrong by up to |R|/2 (a difference quotient
     * straddling a corner), and a parameter step moves every y of a channel. So put each τ
     * in the middle of the widest gap between the channel's pre-TLU values y within their
     * 20-80 % range: no y is then within a step h of the kink, and both branches stay
     * populated. */
    for (int c = 0; c < s.C; c++)
        s.tau[c] = -1e30f;
    fd_loss(&f);
    for (int c = 0; c < s.C; c++) {
        size_t m = (size_t)s.N * s.S, best = 0;
        float *v = vec(m), gap = -1.0f;
        for (size_t i = 0; i < m; i++)
            v[i] = s.out[i * s.C + c];
        qsort(v, m, sizeof(float), cmp_float);
        for (size_t i = m / 5; i < m * 4 / 5; i++)
            if (v[i + 1] - v[i] > gap)
                gap = v[i + 1] - v[i], best = i;
        s.tau[c] = 0.5f * (v[best] + v[best + 1]);
        CHECK(gap > 0.01f); /* > 2·max|δy| of a step h = 1e-3 (|γ|·rstd·h < 3e-3 here) */
        free(v);
    }
    fd_loss(&f);
    /* TLU clamps a good share of outputs, so both branches are exercised */
    size_t clamped = 0;
    for (size_t i = 0; i < n; i++)
        clamped += s.out[i] == s.tau[i % s.C];
    CHECK(clamped > n / 10 && clamped < n * 9 / 10);
    OK(cryo_nn_frn_backward(ctx, dinp, dg, db, dt, R, s.inp, s.g, s.b, s.tau, s.rstd, s.N, s.S, s.C,
                            &err));
    fd_check(&f, s.inp, dinp, n, "frn dinp", 1e-3, 100);
    fd_check(&f, s.g, dg, (size_t)s.C, "frn dgamma", 1e-3, 100);
    fd_check(&f, s.b, db, (size_t)s.C, "frn dbeta", 1e-3, 100);
    fd_check(&f, s.tau, dt, (size_t)s.C, "frn dtau", 1e-3, 100);
    /* inference (no rstd saved) gives the same output */
    float *o2 = vec(n);
    OK(cryo_nn_frn_forward(ctx, o2, NULL, s.inp, s.g, s.b, s.tau, s.N, s.S, s.C, 1e-6f, &err));
    CHECK(memcmp(o2, s.out, n * sizeof(float)) == 0);
    free(o2);
    free(s.inp), free(s.g), free(s.b), free(s.tau), free(s.out), free(s.rstd);
    free(R), free(dinp), free(dg), free(db), free(dt);
}

/* ---- elementwise and softmax ------------------------------------------------------------ */

struct ew_st {
    int which; /* 0 gelu, 1 relu, 2 softmax */
    size_t n;
    int rows, cols;
    float *inp, *out;
};

static void ew_fwd(void *p)
{
    struct ew_st *s = p;
    int r = s->which == 0   ? cryo_nn_gelu_forward(ctx, s->out, s->inp, s->n, &err)
            : s->which == 1 ? cryo_nn_relu_forward(ctx, s->out, s->inp, s->n, &err)
                            : cryo_nn_softmax_forward(ctx, s->out, s->inp, s->rows, s->cols, &err);
    if (r)
        tu_fail(__FILE__, __LINE__, "elementwise forward: %s", err.msg);
}

static void ew_case(int which)
{
    struct ew_st s = {which, 13 * 17, 13, 17, NULL, NULL};
    s.inp = rnd(s.n, 3.0), s.out = vec(s.n);
    if (which == 1) /* keep ReLU inputs away from the kink */
        for (size_t i = 0; i < s.n; i++)
            if (fabsf(s.inp[i]) < 0.05f)
                s.inp[i] = 0.1f;
    float *R = rnd(s.n, 1.0), *dinp = vec(s.n);
    struct fd f = {&s, ew_fwd, s.out, s.n, R};
    fd_loss(&f);
    if (which == 0)
        OK(cryo_nn_gelu_backward(ctx, dinp, R, s.inp, s.n, &err));
    else if (which == 1)
        OK(cryo_nn_relu_backward(ctx, dinp, R, s.inp, s.n, &err));
    else
        OK(cryo_nn_softmax_backward(ctx, dinp, R, s.out, s.rows, s.cols, &err));
    fd_check(&f, s.inp, dinp, s.n, which == 0 ? "gelu" : which == 1 ? "relu" : "softmax", 1e-2, 200);
    free(s.inp), free(s.out), free(R), free(dinp);
}

TEST(gelu) { ew_case(0); }
TEST(relu) { ew_case(1); }
TEST(softmax) { ew_case(2); }

TEST(gelu_values)
{
    /* exact-erf GELU at a few points (values from the definition, erf of libm in double) */
    float x[5] = {-3.0f, -1.0f, 0.0f, 0.5f, 2.0f}, y[5];
    OK(cryo_nn_gelu_forward(ctx, y, x, 5, &err));
    for (int i = 0; i < 5; i++)
        CHECK_CLOSE(y[i], 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))), 1e-6);
    /* in place */
    OK(cryo_nn_gelu_forward(ctx, x, x, 5, &err));
    CHECK_CLOSE(x[3], y[3], 0);
}

TEST(gelu_accuracy_sweep)
{
    /* vectorised erfc/exp (cpu_math.h) against libm in double over [-12, 12] */
    enum { N = 4801 };
    static float x[N], y[N], g[N], one[N];
    for (int i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * i / (N - 1);
        one[i] = 1.0f;
    }
    OK(cryo_nn_gelu_forward(ctx, y, x, N, &err));
    OK(cryo_nn_gelu_backward(ctx, g, one, x, N, &err));
    double worst = 0.0, worst_g = 0.0;
    for (int i = 0; i < N; i++) {
        double xd = x[i], cdf = 0.5 * erfc(-xd / sqrt(2.0));
        double ref = xd * cdf, dref = cdf + xd * exp(-0.5 * xd * xd) / sqrt(2.0 * M_PI);
        worst = fmax(worst, fabs(y[i] - ref) / fmax(1e-30, fmax(fabs(ref), 1e-3)));
        /* Φ(x) + x·φ(x) cancels near its zero at x ≈ −0.75 (both terms ≈ 0.23): float32 can
         * do no better there than ~1e-8 absolute, so the derivative is judged against
         * max(|ref|, 0.05) */
        worst_g = fmax(worst_g, fabs(g[i] - dref) / fmax(fabs(dref), 0.05));
    }
    if (!(worst < 2e-6) || !(worst_g < 2e-6))
        tu_fail(__FILE__, __LINE__, "gelu worst relative error %.3g, derivative %.3g", worst, worst_g);
}

TEST(backend_without_op_refuses)
{
    /* a backend table lacking conv3d_forward: the call must fail, not fall back */
    struct cryo_nn_ops fake = *ctx->ops;
    const struct cryo_nn_ops *real = ctx->ops;
    fake.conv3d_forward = NULL;
    fake.name = "fake";
    ctx->ops = &fake;
    struct cryo_nn_conv3d g = {1, 4, 4, 4, 2, 2, 3, 1, 1, 0};
    float x[128] = {0}, y[128], w[108] = {0};
    CHECK_EQ_INT(cryo_nn_conv3d_forward(ctx, y, x, w, NULL, &g, &err), CRYO_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "conv3d_forward") && strstr(err.msg, "fake"));
    CHECK(!cryo_nn_supports(ctx, CRYO_NN_OP_CONV3D));
    CHECK(cryo_nn_supports(ctx, CRYO_NN_OP_LINEAR));
    ctx->ops = real;
    CHECK_EQ_INT(cryo_nn_conv3d_forward(ctx, y, x, w, NULL, &g, &err), 0);
}

TEST(softmax_all_masked_row)
{
    float x[6] = {-INFINITY, -INFINITY, -INFINITY, 1.0f, 2.0f, 3.0f}, y[6];
    OK(cryo_nn_softmax_forward(ctx, y, x, 2, 3, &err));
    CHECK(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f);
    CHECK_CLOSE(y[3] + y[4] + y[5], 1.0, 1e-6);
}

/* ---- window attention ------------------------------------------------------------------ */

struct wmsa_st {
    struct cryo_nn_wmsa a;
    float *inp, *wqkv, *bqkv, *rel, *wproj, *bproj, *out, *cache;
};

static void wmsa_fwd(void *p)
{
    struct wmsa_st *s = p;
    if (cryo_nn_wmsa_forward(ctx, s->out, s->cache, s->inp, s->wqkv, s->bqkv, s->rel, s->wproj,
                             s->bproj, &s->a, &err))
        tu_fail(__FILE__, __LINE__, "wmsa forward: %s", err.msg);
}

static void wmsa_case(struct cryo_nn_wmsa a, int samples)
{
    struct wmsa_st s = {.a = a};
    int c = a.c, heads = c / a.head_dim, t = 2 * a.window - 1;
    size_t T = (size_t)a.n * a.d * a.h * a.w, n = T * c, ntab = (size_t)heads * t * t * t;
    size_t ncache = cryo_nn_wmsa_cache_size(&a, &err);
    CHECK(ncache > 0);
    s.inp = rnd(n, 1.0), s.wqkv = rnd((size_t)3 * c * c, 0.5 / sqrt(c));
    s.bqkv = rnd((size_t)3 * c, 0.2), s.rel = rnd(ntab, 1.0);
    s.wproj = rnd((size_t)c * c, 1.0 / sqrt(c)), s.bproj = rnd((size_t)c, 0.2);
    s.out = vec(n), s.cache = vec(ncache);
    float *R = rnd(n, 1.0), *dinp = vec(n), *dwqkv = vec((size_t)3 * c * c), *dbqkv = vec((size_t)3 * c),
          *drel = vec(ntab), *dwproj = vec((size_t)c * c), *dbproj = vec((size_t)c);
    struct fd f = {&s, wmsa_fwd, s.out, n, R};
    fd_loss(&f);
    OK(cryo_nn_wmsa_backward(ctx, dinp, dwqkv, dbqkv, drel, dwproj, dbproj, R, s.inp, s.cache, s.wqkv,
                             s.rel, s.wproj, &a, &err));
    /* Step h = 0.1, not 1e-2: one coordinate moves every output of its window (144 tokens ×
     * 32 channels in the large case), so the float32 rounding of the loss, ~2^-24·|R·out|·√n,
     * is divided by 2h. With h = 1e-2 that noise reached 0.84 of the tolerance here and
     * exceeded it where the compiler rounds differently (the sanitizer build: 9e-5 against
     * 7.7e-5 at one input); the backward was right (the difference fell as h grew). Softmax
     * attention is smooth: central differences at h = 0.1 and 0.2 agree to ~1e-6, so the
     * truncation error stays far below the tolerance; the worst error fell to 0.13 of it. */
    const double h = 0.1;
    fd_check(&f, s.inp, dinp, n, "wmsa dinp", h, samples);
    fd_check(&f, s.wqkv, dwqkv, (size_t)3 * c * c, "wmsa dqkv_weight", h, samples);
    fd_check(&f, s.bqkv, dbqkv, (size_t)3 * c, "wmsa dqkv_bias", h, samples);
    fd_check(&f, s.rel, drel, ntab, "wmsa drel_bias", h, samples);
    fd_check(&f, s.wproj, dwproj, (size_t)c * c, "wmsa dproj_weight", h, samples);
    fd_check(&f, s.bproj, dbproj, (size_t)c, "wmsa dproj_bias", h, samples);
    /* the workspace has grown to what this layer needs: repeating it allocates nothing */
    size_t wsb = cryo_nn_workspace_bytes(ctx);
    OK(cryo_nn_wmsa_forward(ctx, s.out, s.cache, s.inp, s.wqkv, s.bqkv, s.rel, s.wproj, s.bproj, &a, &err));
    OK(cryo_nn_wmsa_backward(ctx, dinp, dwqkv, dbqkv, drel, dwproj, dbproj, R, s.inp, s.cache, s.wqkv,
                             s.rel, s.wproj, &a, &err));
    CHECK(cryo_nn_workspace_bytes(ctx) == wsb && wsb > 0);
    /* inference mode (no cache) gives the same output */
    float *out2 = vec(n);
    OK(cryo_nn_wmsa_forward(ctx, out2, NULL, s.inp, s.wqkv, s.bqkv, s.rel, s.wproj, s.bproj, &a, &err));
    CHECK_REL_ERR(out2, s.out, n, 1e-7);
    free(out2);
    free(s.inp), free(s.wqkv), free(s.bqkv), free(s.rel), free(s.wproj), free(s.bproj), free(s.out);
    free(s.cache), free(R), free(dinp), free(dwqkv), free(dbqkv), free(drel), free(dwproj), free(dbproj);
}

TEST(wmsa_plain)
{
    wmsa_case((struct cryo_nn_wmsa){1, 8, 4, 4, 32, 16, 4, 0}, 60);
}
TEST(wmsa_shifted)
{
    wmsa_case((struct cryo_nn_wmsa){2, 8, 8, 4, 16, 16, 4, 1}, 60);
}
TEST(wmsa_shifted_partial_and_small)
{
    /* D = 6: one full and one partial window; H = 3 < window: shrinks, no shift; W = 5 */
    wmsa_case((struct cryo_nn_wmsa){1, 6, 3, 5, 48, 16, 4, 1}, 40);
}

TEST(wmsa_large_window_blas_path)
{
    /* 6×6×4 grid, window 6: one 144-token window (W shrinks to 4), matmuls by sgemm */
    wmsa_case((struct cryo_nn_wmsa){1, 6, 6, 4, 32, 16, 6, 0}, 40);
}

TEST(wmsa_bad_geometry)
{
    struct cryo_nn_wmsa a = {1, 4, 4, 4, 24, 16, 4, 0}; /* 24 channels: not whole heads */
    CHECK(cryo_nn_wmsa_cache_size(&a, &err) == 0);
    CHECK_EQ_INT(err.status, CRYO_E_INVALID);
    a.c = 32;
    a.window = 3;
    CHECK(cryo_nn_wmsa_cache_size(&a, &err) == 0);
    a.window = 4;
    a.shifted = 2;
    CHECK(cryo_nn_wmsa_cache_size(&a, &err) == 0);
}

/* ---- glue ------------------------------------------------------------------------------- */

TEST(concat_split_roundtrip)
{
    int64_t T = 29;
    int ca = 5, cb = 3;
    float *a = rnd((size_t)T * ca, 1), *b = rnd((size_t)T * cb, 1), *o = vec((size_t)T * 8);
    float *a2 = vec((size_t)T * ca), *b2 = vec((size_t)T * cb);
    OK(cryo_nn_concat_forward(ctx, o, a, b, T, ca, cb, &err));
    CHECK(o[8 * 3 + 5] == b[3 * 3 + 0] && o[8 * 7 + 4] == a[7 * 5 + 4]);
    OK(cryo_nn_split_forward(ctx, a2, b2, o, T, ca, cb, &err));
    CHECK(memcmp(a, a2, sizeof(float) * T * ca) == 0 && memcmp(b, b2, sizeof(float) * T * cb) == 0);
    /* backward of concat is split, of split is concat (NULL branch = zeros) */
    OK(cryo_nn_concat_backward(ctx, a2, b2, o, T, ca, cb, &err));
    CHECK(memcmp(b, b2, sizeof(float) * T * cb) == 0);
    OK(cryo_nn_split_backward(ctx, o, a, NULL, T, ca, cb, &err));
    CHECK(o[8 * 3 + 5] == 0.0f && o[8 * 3 + 1] == a[3 * 5 + 1]);
    free(a), free(b), free(o), free(a2), free(b2);
}

TEST(roll_matches_definition)
{
    int n = 2, d = 3, h = 5, w = 4, c = 3;
    size_t N = (size_t)n * d * h * w * c;
    float *x = rnd(N, 1), *y = vec(N), *z = vec(N);
    OK(cryo_nn_roll_forward(ctx, y, x, n, d, h, w, c, -2, 7, 1, &err));
    int bad = 0;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < d; i++)
            for (int j = 0; j < h; j++)
                for (int k = 0; k < w; k++)
                    for (int q = 0; q < c; q++) {
                        int i2 = ((i - 2) % d + d) % d, j2 = (j + 7) % h, k2 = (k + 1) % w;
                        size_t src = ((((size_t)s * d + i) * h + j) * w + k) * c + q;
                        size_t dst = ((((size_t)s * d + i2) * h + j2) * w + k2) * c + q;
                        bad += y[dst] != x[src];
                    }
    CHECK_EQ_INT(bad, 0);
    OK(cryo_nn_roll_backward(ctx, z, y, n, d, h, w, c, -2, 7, 1, &err));
    CHECK(memcmp(x, z, N * sizeof(float)) == 0);
    CHECK_EQ_INT(cryo_nn_roll_forward(ctx, x, x, n, d, h, w, c, 1, 1, 1, &err), CRYO_E_INVALID);
    free(x), free(y), free(z);
}

TEST(add_and_accumulate)
{
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 4, 3, 2, 1}, o[5], da[5], db[5];
    OK(cryo_nn_add_forward(ctx, o, a, b, 5, &err));
    for (int i = 0; i < 5; i++)
        CHECK(o[i] == 6.0f);
    OK(cryo_nn_add_backward(ctx, da, db, a, 5, &err));
    CHECK(da[4] == 5.0f && db[0] == 1.0f);
    OK(cryo_nn_accumulate(ctx, da, b, 5, &err));
    CHECK(da[0] == 6.0f);
}

TEST(droppath)
{
    int N = 4000;
    size_t per = 3;
    float *x = rnd((size_t)N * per, 1), *y = vec((size_t)N * per), *m = vec((size_t)N),
          *dx = vec((size_t)N * per);
    uint64_t r = 42, r0 = 42;
    OK(cryo_nn_droppath_forward(ctx, y, m, x, N, per, 0.25f, &r, 1, &err));
    int kept = 0;
    for (int i = 0; i < N; i++) {
        CHECK(m[i] == 0.0f || fabsf(m[i] - 1.0f / 0.75f) < 1e-6f);
        kept += m[i] != 0.0f;
        CHECK(y[(size_t)i * per + 1] == x[(size_t)i * per + 1] * m[i]);
    }
    /* Binomial(4000, 0.75): sd 27; 5 sd */
    CHECK(abs(kept - 3000) < 140);
    CHECK(r != r0);
    /* same seed, same mask */
    float *m2 = vec((size_t)N);
    uint64_t r2 = 42;
    OK(cryo_nn_droppath_forward(ctx, y, m2, x, N, per, 0.25f, &r2, 1, &err));
    CHECK(memcmp(m, m2, sizeof(float) * N) == 0);
    OK(cryo_nn_droppath_backward(ctx, dx, x, m, N, per, &err));
    CHECK(dx[7] == x[7] * m[7 / per]);
    /* inference: identity */
    OK(cryo_nn_droppath_forward(ctx, y, m, x, N, per, 0.25f, &r, 0, &err));
    CHECK(memcmp(x, y, sizeof(float) * N * per) == 0 && m[5] == 1.0f);
    CHECK_EQ_INT(cryo_nn_droppath_forward(ctx, y, m, x, N, per, 1.0f, &r, 1, &err), CRYO_E_INVALID);
    free(x), free(y), free(m), free(dx), free(m2);
}

TEST(context)
{
    struct cryo_nn_ctx *c2 = NULL;
    /* CUDA without its plugin: CRYO_E_UNSUPPORTED naming what is missing, no context */
    setenv("CRYO_NN_CUDA_PLUGIN", "/nonexistent/libcryolvm-cuda.so", 1);
    CHECK_EQ_INT(cryo_nn_ctx_create(&c2, CRYO_NN_DEVICE_CUDA, 0, &err), CRYO_E_UNSUPPORTED);
    CHECK(c2 == NULL);
    CHECK(strstr(err.msg, "cuda") && strstr(err.msg, "/nonexistent/libcryolvm-cuda.so"));
    unsetenv("CRYO_NN_CUDA_PLUGIN");
    /* wherever the plugin is found, a machine without a GPU gives CRYO_E_DEVICE or
     * CRYO_E_UNSUPPORTED, never a half-made context */
    int s = cryo_nn_ctx_create(&c2, CRYO_NN_DEVICE_CUDA, 0, &err);
    CHECK(s == CRYO_OK ? c2 != NULL : (c2 == NULL && (s == CRYO_E_DEVICE || s == CRYO_E_UNSUPPORTED)));
    cryo_nn_ctx_free(c2);
    c2 = NULL;
    CHECK_EQ_INT(cryo_nn_ctx_create(&c2, CRYO_NN_DEVICE_CPU, -1, &err), CRYO_E_INVALID);
    /* precision: FP32 by default, TF32 settable (the CPU computes fp32 regardless), bad
     * values refused, also from the environment at creation */
    CHECK(cryo_nn_get_precision(ctx) == CRYO_NN_PRECISION_FP32);
    OK(cryo_nn_set_precision(ctx, CRYO_NN_PRECISION_TF32, &err));
    CHECK(cryo_nn_get_precision(ctx) == CRYO_NN_PRECISION_TF32);
    OK(cryo_nn_set_precision(ctx, CRYO_NN_PRECISION_FP32, &err));
    CHECK_EQ_INT(cryo_nn_set_precision(ctx, (enum cryo_nn_precision)7, &err), CRYO_E_INVALID);
    /* BF16: settable exactly where oneDNN finds AVX-512 BF16 or AMX, else refused, unchanged */
    s = cryo_nn_set_precision(ctx, CRYO_NN_PRECISION_BF16, &err);
    CHECK_EQ_INT(s, cryo_nn_cpu_has_bf16(NULL, 0) ? CRYO_OK : CRYO_E_UNSUPPORTED);
    CHECK(cryo_nn_get_precision(ctx) == (s == CRYO_OK ? CRYO_NN_PRECISION_BF16 : CRYO_NN_PRECISION_FP32));
    OK(cryo_nn_set_precision(ctx, CRYO_NN_PRECISION_FP32, &err));
    setenv("CRYO_NN_PRECISION", "fp16", 1);
    CHECK_EQ_INT(cryo_nn_ctx_create(&c2, CRYO_NN_DEVICE_CPU, 0, &err), CRYO_E_INVALID);
    CHECK(c2 == NULL && strstr(err.msg, "CRYO_NN_PRECISION"));
    setenv("CRYO_NN_PRECISION", "tf32", 1);
    OK(cryo_nn_ctx_create(&c2, CRYO_NN_DEVICE_CPU, 0, &err));
    CHECK(cryo_nn_get_precision(c2) == CRYO_NN_PRECISION_TF32);
    cryo_nn_ctx_free(c2);
    c2 = NULL;
    unsetenv("CRYO_NN_PRECISION");
    for (int op = 0; op < CRYO_NN_OP_COUNT; op++)
        CHECK(cryo_nn_supports(ctx, (enum cryo_nn_op)op));
    CHECK(strncmp(cryo_nn_ctx_name(ctx), "cpu", 3) == 0);
    cryo_nn_ctx_free(NULL);
}

/* ---- dump mode for the PyTorch parity test ---------------------------------------------- */

static FILE *manifest;
static const char *dump_dir;

static int save(const char *cname, const char *tname, const float *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.f32", dump_dir, cname, tname);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test_layers: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

#define SAVE(t, p, n) \
    if (save(name, t, p, n)) \
        return -1

static int dump_conv(const char *name, struct cryo_nn_conv3d g, int tr)
{
    int od, oh, ow;
    if (cryo_nn_conv3d_out_dims(&g, tr, &od, &oh, &ow, &err))
        return -1;
    size_t nin = (size_t)g.n * g.d * g.h * g.w * g.cin, nout = (size_t)g.n * od * oh * ow * g.cout;
    size_t nw = (size_t)g.cin * g.cout * g.k * g.k * g.k;
    float *x = rnd(nin, 1), *w = rnd(nw, 1.0 / sqrt((double)g.cin * g.k * g.k * g.k)),
          *b = rnd((size_t)g.cout, 0.5), *y = vec(nout), *R = rnd(nout, 1), *dx = vec(nin),
          *dw = vec(nw), *db = vec((size_t)g.cout);
    int r = tr ? cryo_nn_convt3d_forward(ctx, y, x, w, b, &g, &err)
               : cryo_nn_conv3d_forward(ctx, y, x, w, b, &g, &err);
    r = r ? r : tr ? cryo_nn_convt3d_backward(ctx, dx, dw, db, R, x, w, &g, &err)
                   : cryo_nn_conv3d_backward(ctx, dx, dw, db, R, x, w, &g, &err);
    if (r)
        return -1;
    fprintf(manifest, "%s %s n=%d d=%d h=%d w=%d cin=%d cout=%d k=%d s=%d p=%d bias=%d\n", name,
            tr ? "convt3d" : "conv3d", g.n, g.d, g.h, g.w, g.cin, g.cout, g.k, g.stride, g.pad, g.bias);
    SAVE("inp", x, nin);
    SAVE("weight", w, nw);
    SAVE("bias", b, (size_t)g.cout);
    SAVE("dout", R, nout);
    SAVE("out", y, nout);
    SAVE("dinp", dx, nin);
    SAVE("dweight", dw, nw);
    SAVE("dbias", db, (size_t)g.cout);
    free(x), free(w), free(b), free(y), free(R), free(dx), free(dw), free(db);
    return 0;
}

static int dump_linear(const char *name, int64_t T, int cin, int cout)
{
    size_t nin = (size_t)T * cin, nout = (size_t)T * cout, nw = (size_t)cin * cout;
    float *x = rnd(nin, 1), *w = rnd(nw, 0.3), *b = rnd((size_t)cout, 0.5), *y = vec(nout),
          *R = rnd(nout, 1), *dx = vec(nin), *dw = vec(nw), *db = vec((size_t)cout);
    if (cryo_nn_linear_forward(ctx, y, x, w, b, T, cin, cout, &err) ||
        cryo_nn_linear_backward(ctx, dx, dw, db, R, x, w, T, cin, cout, &err))
        return -1;
    fprintf(manifest, "%s linear T=%lld cin=%d cout=%d\n", name, (long long)T, cin, cout);
    SAVE("inp", x, nin);
    SAVE("weight", w, nw);
    SAVE("bias", b, (size_t)cout);
    SAVE("dout", R, nout);
    SAVE("out", y, nout);
    SAVE("dinp", dx, nin);
    SAVE("dweight", dw, nw);
    SAVE("dbias", db, (size_t)cout);
    free(x), free(w), free(b), free(y), free(R), free(dx), free(dw), free(db);
    return 0;
}

static int dump_layernorm(const char *name, int64_t T, int C)
{
    size_t n = (size_t)T * C;
    float *x = rnd(n, 2), *g = rnd((size_t)C, 1), *b = rnd((size_t)C, 1), *y = vec(n), *R = rnd(n, 1),
          *dx = vec(n), *dg = vec((size_t)C), *db = vec((size_t)C), *m = vec((size_t)T), *rs = vec((size_t)T);
    for (size_t i = 0; i < n; i++) /* an offset, as real activations have */
        x[i] += 3.0f;
    if (cryo_nn_layernorm_forward(ctx, y, m, rs, x, g, b, T, C, 1e-5f, &err) ||
        cryo_nn_layernorm_backward(ctx, dx, dg, db, R, x, g, m, rs, T, C, &err))
        return -1;
    fprintf(manifest, "%s layernorm T=%lld C=%d eps=1e-5\n", name, (long long)T, C);
    SAVE("inp", x, n);
    SAVE("gamma", g, (size_t)C);
    SAVE("beta", b, (size_t)C);
    SAVE("dout", R, n);
    SAVE("out", y, n);
    SAVE("dinp", dx, n);
    SAVE("dgamma", dg, (size_t)C);
    SAVE("dbeta", db, (size_t)C);
    free(x), free(g), free(b), free(y), free(R), free(dx), free(dg), free(db), free(m), free(rs);
    return 0;
}

static int dump_frn(const char *name, int N, int d, int h, int w, int C)
{
    int64_t S = (int64_t)d * h * w;
    size_t n = (size_t)N * S * C;
    float *x = rnd(n, 1.5), *g = rnd((size_t)C, 1), *b = rnd((size_t)C, 0.5), *t = rnd((size_t)C, 0.5),
          *y = vec(n), *R = rnd(n, 1), *dx = vec(n), *dg = vec((size_t)C), *db = vec((size_t)C),
          *dt = vec((size_t)C), *rs = vec((size_t)N * C);
    if (cryo_nn_frn_forward(ctx, y, rs, x, g, b, t, N, S, C, 1e-6f, &err) ||
        cryo_nn_frn_backward(ctx, dx, dg, db, dt, R, x, g, b, t, rs, N, S, C, &err))
        return -1;
    fprintf(manifest, "%s frn N=%d d=%d h=%d w=%d C=%d eps=1e-6\n", name, N, d, h, w, C);
    SAVE("inp", x, n);
    SAVE("gamma", g, (size_t)C);
    SAVE("beta", b, (size_t)C);
    SAVE("tau", t, (size_t)C);
    SAVE("dout", R, n);
    SAVE("out", y, n);
    SAVE("dinp", dx, n);
    SAVE("dgamma", dg, (size_t)C);
    SAVE("dbeta", db, (size_t)C);
    SAVE("dtau", dt, (size_t)C);
    free(x), free(g), free(b), free(t), free(y), free(R), free(dx), free(dg), free(db), free(dt), free(rs);
    return 0;
}

static int dump_act(const char *name, const char *layer, int rows, int cols)
{
    size_t n = (size_t)rows * cols;
    float *x = rnd(n, 4), *y = vec(n), *R = rnd(n, 1), *dx = vec(n);
    int r;
    if (!strcmp(layer, "gelu"))
        r = cryo_nn_gelu_forward(ctx, y, x, n, &err) || cryo_nn_gelu_backward(ctx, dx, R, x, n, &err);
    else if (!strcmp(layer, "relu"))
        r = cryo_nn_relu_forward(ctx, y, x, n, &err) || cryo_nn_relu_backward(ctx, dx, R, x, n, &err);
    else
        r = cryo_nn_softmax_forward(ctx, y, x, rows, cols, &err) ||
            cryo_nn_softmax_backward(ctx, dx, R, y, rows, cols, &err);
    if (r)
        return -1;
    fprintf(manifest, "%s %s rows=%d cols=%d\n", name, layer, rows, cols);
    SAVE("inp", x, n);
    SAVE("dout", R, n);
    SAVE("out", y, n);
    SAVE("dinp", dx, n);
    free(x), free(y), free(R), free(dx);
    return 0;
}

static int dump_wmsa(const char *name, struct cryo_nn_wmsa a)
{
    int c = a.c, heads = c / a.head_dim, t = 2 * a.window - 1;
    size_t T = (size_t)a.n * a.d * a.h * a.w, n = T * c, ntab = (size_t)heads * t * t * t;
    size_t ncache = cryo_nn_wmsa_cache_size(&a, &err);
    if (!ncache)
        return -1;
    float *x = rnd(n, 1), *wq = rnd((size_t)3 * c * c, 1.0 / sqrt(c)), *bq = rnd((size_t)3 * c, 0.2),
          *rel = rnd(ntab, 1.0), *wp = rnd((size_t)c * c, 1.0 / sqrt(c)), *bp = rnd((size_t)c, 0.2),
          *y = vec(n), *cache = vec(ncache), *R = rnd(n, 1), *dx = vec(n), *dwq = vec((size_t)3 * c * c),
          *dbq = vec((size_t)3 * c), *drel = vec(ntab), *dwp = vec((size_t)c * c), *dbp = vec((size_t)c);
    if (cryo_nn_wmsa_forward(ctx, y, cache, x, wq, bq, rel, wp, bp, &a, &err) ||
        cryo_nn_wmsa_backward(ctx, dx, dwq, dbq, drel, dwp, dbp, R, x, cache, wq, rel, wp, &a, &err))
        return -1;
    fprintf(manifest, "%s wmsa n=%d d=%d h=%d w=%d c=%d head_dim=%d window=%d shifted=%d\n", name,
            a.n, a.d, a.h, a.w, a.c, a.head_dim, a.window, a.shifted);
    SAVE("inp", x, n);
    SAVE("qkv_weight", wq, (size_t)3 * c * c);
    SAVE("qkv_bias", bq, (size_t)3 * c);
    SAVE("rel_bias", rel, ntab);
    SAVE("proj_weight", wp, (size_t)c * c);
    SAVE("proj_bias", bp, (size_t)c);
    SAVE("dout", R, n);
    SAVE("out", y, n);
    SAVE("dinp", dx, n);
    SAVE("dqkv_weight", dwq, (size_t)3 * c * c);
    SAVE("dqkv_bias", dbq, (size_t)3 * c);
    SAVE("drel_bias", drel, ntab);
    SAVE("dproj_weight", dwp, (size_t)c * c);
    SAVE("dproj_bias", dbp, (size_t)c);
    free(x), free(wq), free(bq), free(rel), free(wp), free(bp), free(y), free(cache), free(R);
    free(dx), free(dwq), free(dbq), free(drel), free(dwp), free(dbp);
    return 0;
}

static int dump_glue(void)
{
    const char *name = "concat";
    int64_t T = 31;
    int ca = 6, cb = 10;
    float *a = rnd((size_t)T * ca, 1), *b = rnd((size_t)T * cb, 1), *o = vec((size_t)T * 16),
          *R = rnd((size_t)T * 16, 1), *da = vec((size_t)T * ca), *db = vec((size_t)T * cb);
    if (cryo_nn_concat_forward(ctx, o, a, b, T, ca, cb, &err) ||
        cryo_nn_concat_backward(ctx, da, db, R, T, ca, cb, &err))
        return -1;
    fprintf(manifest, "%s concat T=%lld ca=%d cb=%d\n", name, (long long)T, ca, cb);
    SAVE("a", a, (size_t)T * ca);
    SAVE("b", b, (size_t)T * cb);
    SAVE("dout", R, (size_t)T * 16);
    SAVE("out", o, (size_t)T * 16);
    SAVE("da", da, (size_t)T * ca);
    SAVE("db", db, (size_t)T * cb);
    free(a), free(b), free(o), free(R), free(da), free(db);

    name = "roll";
    int n = 2, d = 4, h = 5, w = 6, c = 3;
    size_t N = (size_t)n * d * h * w * c;
    float *x = rnd(N, 1), *y = vec(N), *R2 = rnd(N, 1), *dx = vec(N);
    if (cryo_nn_roll_forward(ctx, y, x, n, d, h, w, c, -2, 3, -7, &err) ||
        cryo_nn_roll_backward(ctx, dx, R2, n, d, h, w, c, -2, 3, -7, &err))
        return -1;
    fprintf(manifest, "%s roll n=%d d=%d h=%d w=%d c=%d sd=-2 sh=3 sw=-7\n", name, n, d, h, w, c);
    SAVE("inp", x, N);
    SAVE("dout", R2, N);
    SAVE("out", y, N);
    SAVE("dinp", dx, N);
    free(x), free(y), free(R2), free(dx);

    name = "droppath";
    int ns = 8;
    size_t per = 50;
    float *xs = rnd(ns * per, 1), *ys = vec(ns * per), *m = vec((size_t)ns), *Rs = rnd(ns * per, 1),
          *dxs = vec(ns * per);
    uint64_t r = 7;
    if (cryo_nn_droppath_forward(ctx, ys, m, xs, ns, per, 0.4f, &r, 1, &err) ||
        cryo_nn_droppath_backward(ctx, dxs, Rs, m, ns, per, &err))
        return -1;
    fprintf(manifest, "%s droppath N=%d per=%zu p=0.4\n", name, ns, per);
    SAVE("inp", xs, ns * per);
    SAVE("mask", m, (size_t)ns);
    SAVE("dout", Rs, ns * per);
    SAVE("out", ys, ns * per);
    SAVE("dinp", dxs, ns * per);
    free(xs), free(ys), free(m), free(Rs), free(dxs);
    return 0;
}

static int dump(const char *dir)
{
    char path[4096];
    dump_dir = dir;
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    manifest = fopen(path, "w");
    if (!manifest) {
        fprintf(stderr, "test_layers: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int r = 0;
    r |= dump_conv("conv_k3", (struct cryo_nn_conv3d){2, 5, 6, 7, 3, 20, 3, 1, 1, 1}, 0);
    r |= dump_conv("conv_k3_c32", (struct cryo_nn_conv3d){1, 8, 8, 8, 32, 32, 3, 1, 1, 1}, 0);
    r |= dump_conv("conv_k3_nobias", (struct cryo_nn_conv3d){1, 6, 5, 4, 16, 17, 3, 1, 1, 0}, 0);
    r |= dump_conv("conv_k2s2", (struct cryo_nn_conv3d){2, 6, 8, 4, 16, 32, 2, 2, 0, 0}, 0);
    r |= dump_conv("conv_k2s2_odd", (struct cryo_nn_conv3d){1, 5, 7, 6, 5, 9, 2, 2, 0, 1}, 0);
    r |= dump_conv("conv_k1", (struct cryo_nn_conv3d){2, 4, 5, 6, 12, 7, 1, 1, 0, 1}, 0);
    r |= dump_conv("convt_k2s2", (struct cryo_nn_conv3d){2, 3, 4, 5, 32, 16, 2, 2, 0, 0}, 1);
    r |= dump_conv("convt_k2s2_bias", (struct cryo_nn_conv3d){1, 3, 3, 2, 9, 5, 2, 2, 0, 1}, 1);
    r |= dump_linear("linear", 301, 32, 96);
    r |= dump_linear("linear_odd", 37, 19, 11);
    r |= dump_linear("linear_long", 30000, 24, 40);
    r |= dump_layernorm("layernorm", 210, 32);
    r |= dump_layernorm("layernorm_odd", 37, 21);
    r |= dump_layernorm("layernorm_long", 20000, 48); /* many reduction blocks, both threads */
    r |= dump_frn("frn", 2, 5, 6, 7, 16);
    r |= dump_frn("frn_odd", 1, 3, 4, 5, 7);
    r |= dump_frn("frn_long", 2, 20, 21, 22, 16);
    r |= dump_act("gelu", "gelu", 40, 50);
    r |= dump_act("relu", "relu", 40, 50);
    r |= dump_act("softmax", "softmax", 40, 50);
    r |= dump_wmsa("wmsa_w", (struct cryo_nn_wmsa){2, 8, 8, 8, 32, 16, 4, 0});
    r |= dump_wmsa("wmsa_sw", (struct cryo_nn_wmsa){1, 8, 8, 8, 32, 16, 4, 1});
    r |= dump_wmsa("wmsa_sw_partial", (struct cryo_nn_wmsa){1, 6, 5, 7, 32, 16, 4, 1});
    r |= dump_wmsa("wmsa_sw_small", (struct cryo_nn_wmsa){2, 3, 8, 2, 48, 16, 4, 1});
    r |= dump_wmsa("wmsa_w_partial", (struct cryo_nn_wmsa){1, 5, 6, 7, 16, 16, 4, 0});
    r |= dump_wmsa("wmsa_sw_odd_tokens", (struct cryo_nn_wmsa){2, 5, 5, 7, 32, 16, 4, 1}); /* 3-token windows */
    r |= dump_wmsa("wmsa_hd8_w2", (struct cryo_nn_wmsa){1, 6, 4, 5, 24, 8, 2, 1});
    r |= dump_wmsa("wmsa_w6", (struct cryo_nn_wmsa){1, 12, 6, 7, 32, 16, 6, 1});
    r |= dump_glue();
    if (fclose(manifest) != 0)
        r = -1;
    if (r) {
        fprintf(stderr, "test_layers: dump failed: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* --blas-core: which OpenBLAS kernels run before and after the first context, with the
 * single-core sgemm rate of each (engine-layers.bats starts this with OpenBLAS forced to
 * Haswell at load time and OPENBLAS_CORETYPE removed before the context is created). */
const char *cpu_blas_core(void); /* libcore/cpu/cpu_backend.c */
extern void openblas_set_num_threads(int n);
extern void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

static double sgemm_rate(void)
{
    enum { N = 768 };
    float *a = rnd((size_t)N * N, 1), *b = rnd((size_t)N * N, 1), *c = vec((size_t)N * N);
    double best = 1e30;
    openblas_set_num_threads(1);
    for (int r = 0; r < 5; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cblas_sgemm(101 /* row major */, 111, 111, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        best = dt < best ? dt : best;
    }
    free(a), free(b), free(c);
    return 2.0 * N * N * N / best * 1e-9;
}

static int blas_core_report(void)
{
    char before[64];
    snprintf(before, sizeof before, "%s", cpu_blas_core());
    double r0 = sgemm_rate();
    unsetenv("OPENBLAS_CORETYPE");
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 1, &err)) {
        fprintf(stderr, "test_layers: %s\n", err.msg);
        return 1;
    }
    double r1 = sgemm_rate();
    printf("before %s %.0f GFLOP/s, after %s %.0f GFLOP/s (one core)\n", before, r0, cpu_blas_core(), r1);
    cryo_nn_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--blas-core"))
        return blas_core_report();
    /* CRYO_TEST_THREADS: run everything with another thread count (partitioning paths) */
    const char *th = getenv("CRYO_TEST_THREADS");
    if (cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, th ? atoi(th) : 2, &err)) {
        fprintf(stderr, "test_layers: %s\n", err.msg);
        return 1;
    }
    int r;
    if (argc == 3 && !strcmp(argv[1], "--dump"))
        r = dump(argv[2]);
    else if (argc == 1)
        r = RUN_TESTS(conv3d_k3_odd_grid, conv3d_k3_nobias, conv3d_k2s2, conv3d_k1, convt3d_k2s2, conv_bf16,
                      conv3d_weights_changed_in_place, conv3d_bad_geometry, linear, layernorm, frn_tlu, gelu, relu, softmax,
                      gelu_values, gelu_accuracy_sweep, backend_without_op_refuses, softmax_all_masked_row, wmsa_plain, wmsa_shifted,
                      wmsa_shifted_partial_and_small, wmsa_large_window_blas_path, wmsa_bad_geometry, concat_split_roundtrip,
                      roll_matches_definition, add_and_accumulate, droppath, context);
    else {
        fprintf(stderr, "usage: test_layers [--dump DIR | --blas-core]\n");
        r = 2;
    }
    cryo_nn_ctx_free(ctx);
    return r;
}
