/* layer_conv.c — public entry points of 3D convolution and transposed convolution:
 * geometry checks, then the backend's op. The arithmetic lives in the backends
 * (libcore/cpu/conv.c uses oneDNN). */
#include "cryolvm/nn_layers.h"
#include "nn/layer_util.h"

static int conv_check(const char *what, const struct cryo_nn_conv3d *g, int transposed,
                      struct cryo_error *err)
{
    int od, oh, ow;
    if (!g)
        return cryo_fail(err, CRYO_E_INVALID, "%s: NULL geometry", what);
    int s = cryo_nn_conv3d_out_dims(g, transposed, &od, &oh, &ow, err);
    if (s < 0)
        cryo_error_prefix(err, what);
    return s;
}

int cryo_nn_conv3d_out_dims(const struct cryo_nn_conv3d *g, int transposed, int *od, int *oh,
                            int *ow, struct cryo_error *err)
{
    if (g->n < 1 || g->d < 1 || g->h < 1 || g->w < 1 || g->cin < 1 || g->cout < 1)
        return cryo_fail(err, CRYO_E_INVALID, "grid %dx%dx%dx%d, channels %d -> %d: all must be >= 1",
                         g->n, g->d, g->h, g->w, g->cin, g->cout);
    if (g->k < 1 || g->stride < 1 || g->pad < 0 || g->pad >= g->k)
        return cryo_fail(err, CRYO_E_INVALID, "kernel %d, stride %d, padding %d: need k >= 1, s >= 1, 0 <= p < k",
                         g->k, g->stride, g->pad);
    int in[3] = {g->d, g->h, g->w}, o[3];
    for (int i = 0; i < 3; i++) {
        long long v = transposed ? (long long)(in[i] - 1) * g->stride - 2LL * g->pad + g->k
                                 : ((long long)in[i] + 2LL * g->pad - g->k) / g->stride + 1;
        if (!transposed && in[i] + 2 * g->pad < g->k)
            v = 0;
        if (v < 1 || v > (1 << 24))
            return cryo_fail(err, CRYO_E_INVALID, "input extent %d with kernel %d, stride %d, padding %d gives output extent %lld",
                             in[i], g->k, g->stride, g->pad, v);
        o[i] = (int)v;
    }
    if (od)
        *od = o[0];
    if (oh)
        *oh = o[1];
    if (ow)
        *ow = o[2];
    return CRYO_OK;
}

int cryo_nn_conv3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp,
                           const float *weight, const float *bias,
                           const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    NN_NEED_CTX("conv3d_forward");
    CRYO_TRY(conv_check("conv3d_forward", g, 0, err));
    NN_NEED_PTR("conv3d_forward", out);
    NN_NEED_PTR("conv3d_forward", inp);
    NN_NEED_PTR("conv3d_forward", weight);
    NN_NEED("conv3d_forward", !g->bias || bias, "layer has a bias but bias is NULL");
    NN_DISPATCH("conv3d_forward", conv3d_forward, out, inp, weight, bias, g);
}

int cryo_nn_conv3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight,
                            const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    NN_NEED_CTX("conv3d_backward");
    CRYO_TRY(conv_check("conv3d_backward", g, 0, err));
    NN_NEED_PTR("conv3d_backward", dout);
    NN_NEED("conv3d_backward", !dinp || weight, "dinp wanted but weight is NULL");
    NN_NEED("conv3d_backward", !dweight || inp, "dweight wanted but inp is NULL");
    NN_DISPATCH("conv3d_backward", conv3d_backward, dinp, dweight, g->bias ? dbias : NULL, dout,
                inp, weight, g);
}

int cryo_nn_convt3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp,
                            const float *weight, const float *bias,
                            const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    NN_NEED_CTX("convt3d_forward");
    CRYO_TRY(conv_check("convt3d_forward", g, 1, err));
    NN_NEED_PTR("convt3d_forward", out);
    NN_NEED_PTR("convt3d_forward", inp);
    NN_NEED_PTR("convt3d_forward", weight);
    NN_NEED("convt3d_forward", !g->bias || bias, "layer has a bias but bias is NULL");
    NN_DISPATCH("convt3d_forward", convt3d_forward, out, inp, weight, bias, g);
}

int cryo_nn_convt3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight,
                             float *dbias, const float *dout, const float *inp,
                             const float *weight, const struct cryo_nn_conv3d *g,
                             struct cryo_error *err)
{
    NN_NEED_CTX("convt3d_backward");
    CRYO_TRY(conv_check("convt3d_backward", g, 1, err));
    NN_NEED_PTR("convt3d_backward", dout);
    NN_NEED("convt3d_backward", !dinp || weight, "dinp wanted but weight is NULL");
    NN_NEED("convt3d_backward", !dweight || inp, "dweight wanted but inp is NULL");
    NN_DISPATCH("convt3d_backward", convt3d_backward, dinp, dweight, g->bias ? dbias : NULL,
                dout, inp, weight, g);
}
