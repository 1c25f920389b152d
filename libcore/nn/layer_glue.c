/* layer_glue.c — the layout and bookkeeping layers: channel concat/split, residual add,
 * cyclic shift (torch.roll) and drop-path. Each backward is the matching forward of
 * another glue op, so a backend provides only the forwards. */
#include <string.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_layers.h"
#include "nn/layer_util.h"

int cryo_nn_concat_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b,
                           int64_t T, int ca, int cb, struct cryo_error *err)
{
    NN_NEED_CTX("concat_forward");
    NN_NEED("concat_forward", T >= 1 && ca >= 1 && cb >= 1, "T=%lld ca=%d cb=%d: all must be >= 1",
            (long long)T, ca, cb);
    NN_NEED_PTR("concat_forward", out);
    NN_NEED_PTR("concat_forward", a);
    NN_NEED_PTR("concat_forward", b);
    NN_DISPATCH("concat_forward", concat_forward, out, a, b, T, ca, cb);
}

int cryo_nn_concat_backward(struct cryo_nn_ctx *ctx, float *da, float *db, const float *dout,
                            int64_t T, int ca, int cb, struct cryo_error *err)
{
    NN_NEED_CTX("concat_backward");
    NN_NEED("concat_backward", T >= 1 && ca >= 1 && cb >= 1, "T=%lld ca=%d cb=%d: all must be >= 1",
            (long long)T, ca, cb);
    NN_NEED_PTR("concat_backward", dout);
    if (!da && !db)
        return CRYO_OK;
    NN_DISPATCH("concat_backward", split_forward, da, db, dout, T, ca, cb);
}

int cryo_nn_split_forward(struct cryo_nn_ctx *ctx, float *a, float *b, const float *inp,
                          int64_t T, int ca, int cb, struct cryo_error *err)
{
    NN_NEED_CTX("split_forward");
    NN_NEED("split_forward", T >= 1 && ca >= 1 && cb >= 1, "T=%lld ca=%d cb=%d: all must be >= 1",
            (long long)T, ca, cb);
    NN_NEED_PTR("split_forward", a);
    NN_NEED_PTR("split_forward", b);
    NN_NEED_PTR("split_forward", inp);
    NN_DISPATCH("split_forward", split_forward, a, b, inp, T, ca, cb);
}

/* A NULL da or db counts as zeros (that branch did not reach the loss). */
int cryo_nn_split_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *da,
                           const float *db, int64_t T, int ca, int cb, struct cryo_error *err)
{
    NN_NEED_CTX("split_backward");
    NN_NEED("split_backward", T >= 1 && ca >= 1 && cb >= 1, "T=%lld ca=%d cb=%d: all must be >= 1",
            (long long)T, ca, cb);
    NN_NEED_PTR("split_backward", dinp);
    NN_DISPATCH("split_backward", concat_forward, dinp, da, db, T, ca, cb);
}

int cryo_nn_add_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b,
                        size_t n, struct cryo_error *err)
{
    NN_NEED_CTX("add_forward");
    if (n == 0)
        return CRYO_OK;
    NN_NEED_PTR("add_forward", out);
    NN_NEED_PTR("add_forward", a);
    NN_NEED_PTR("add_forward", b);
    NN_DISPATCH("add_forward", add_forward, out, a, b, n);
}

int cryo_nn_add_backward(struct cryo_nn_ctx *ctx, float *da, float *db, const float *dout,
                         size_t n, struct cryo_error *err)
{
    NN_NEED_CTX("add_backward");
    if (n == 0)
        return CRYO_OK;
    NN_NEED_PTR("add_backward", dout);
    if (da && da != dout)
        CRYO_TRY(cryo_nn_copy(ctx, da, dout, n, err));
    if (db && db != dout)
        CRYO_TRY(cryo_nn_copy(ctx, db, dout, n, err));
    return CRYO_OK;
}

static int roll_check(const char *what, int n, int d, int h, int w, int c,
                      struct cryo_error *err)
{
    if (n < 1 || d < 1 || h < 1 || w < 1 || c < 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: grid %dx%dx%dx%dx%d: all must be >= 1", what, n,
                         d, h, w, c);
    return CRYO_OK;
}

/* Reduce a shift to 0..L-1 so backends index with one modulo-free add. */
static int wrap(int s, int L) { return ((s % L) + L) % L; }

int cryo_nn_roll_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int n, int d,
                         int h, int w, int c, int sd, int sh, int sw, struct cryo_error *err)
{
    NN_NEED_CTX("roll_forward");
    CRYO_TRY(roll_check("roll_forward", n, d, h, w, c, err));
    NN_NEED_PTR("roll_forward", out);
    NN_NEED_PTR("roll_forward", inp);
    NN_NEED("roll_forward", out != inp, "out must not alias inp");
    NN_DISPATCH("roll_forward", roll_forward, out, inp, n, d, h, w, c, wrap(sd, d), wrap(sh, h),
                wrap(sw, w));
}

int cryo_nn_roll_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout, int n, int d,
                          int h, int w, int c, int sd, int sh, int sw, struct cryo_error *err)
{
    NN_NEED_CTX("roll_backward");
    CRYO_TRY(roll_check("roll_backward", n, d, h, w, c, err));
    NN_NEED_PTR("roll_backward", dinp);
    NN_NEED_PTR("roll_backward", dout);
    NN_NEED("roll_backward", dinp != dout, "dinp must not alias dout");
    NN_DISPATCH("roll_backward", roll_forward, dinp, dout, n, d, h, w, c, wrap(-sd, d),
                wrap(-sh, h), wrap(-sw, w));
}

/* splitmix64 (Steele, Lea & Flood 2014): one 64-bit state, passes BigCrush, trivially
 * reproducible from a seed. Returns a uniform double in [0, 1). */
static double splitmix_uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int cryo_nn_droppath_forward(struct cryo_nn_ctx *ctx, float *out, float *mask, const float *inp,
                             int N, size_t per_sample, float p, uint64_t *rng, int training,
                             struct cryo_error *err)
{
    NN_NEED_CTX("droppath_forward");
    NN_NEED("droppath_forward", N >= 1 && per_sample >= 1, "N=%d per_sample=%zu: both must be >= 1",
            N, per_sample);
    NN_NEED("droppath_forward", p >= 0.0f && p < 1.0f, "drop probability %g must be in [0, 1)",
            (double)p);
    NN_NEED_PTR("droppath_forward", out);
    NN_NEED_PTR("droppath_forward", inp);
    NN_NEED_PTR("droppath_forward", mask);
    if (!training || p == 0.0f) {
        for (int i = 0; i < N; i++)
            mask[i] = 1.0f;
        size_t n;
        CRYO_TRY(cryo_mul_size((size_t)N, per_sample, &n, err));
        return cryo_nn_copy(ctx, out, inp, n, err);
    }
    NN_NEED_PTR("droppath_forward", rng);
    float keep = 1.0f - p;
    for (int i = 0; i < N; i++)
        mask[i] = splitmix_uniform(rng) < (double)keep ? 1.0f / keep : 0.0f;
    NN_DISPATCH("droppath_forward", scale_samples, out, inp, mask, N, per_sample);
}

int cryo_nn_droppath_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                              const float *mask, int N, size_t per_sample,
                              struct cryo_error *err)
{
    NN_NEED_CTX("droppath_backward");
    NN_NEED("droppath_backward", N >= 1 && per_sample >= 1, "N=%d per_sample=%zu: both must be >= 1",
            N, per_sample);
    NN_NEED_PTR("droppath_backward", dinp);
    NN_NEED_PTR("droppath_backward", dout);
    NN_NEED_PTR("droppath_backward", mask);
    NN_DISPATCH("droppath_backward", scale_samples, dinp, dout, mask, N, per_sample);
}
