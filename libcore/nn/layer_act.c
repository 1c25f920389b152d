/* layer_act.c — public entry points of GELU, ReLU and softmax (checks, dispatch). */
#include "cryolvm/nn_layers.h"
#include "nn/layer_util.h"

int cryo_nn_gelu_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, size_t n,
                         struct cryo_error *err)
{
    NN_NEED_CTX("gelu_forward");
    if (n == 0)
        return CRYO_OK;
    NN_NEED_PTR("gelu_forward", out);
    NN_NEED_PTR("gelu_forward", inp);
    NN_DISPATCH("gelu_forward", gelu_forward, out, inp, n);
}

int cryo_nn_gelu_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                          const float *inp, size_t n, struct cryo_error *err)
{
    NN_NEED_CTX("gelu_backward");
    if (n == 0)
        return CRYO_OK;
    NN_NEED_PTR("gelu_backward", dinp);
    NN_NEED_PTR("gelu_backward", dout);
    NN_NEED_PTR("gelu_backward", inp);
    NN_DISPATCH("gelu_backward", gelu_backward, dinp, dout, inp, n);
}

int cryo_nn_relu_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, size_t n,
                         struct cryo_error *err)
{
    NN_NEED_CTX("relu_forward");
    if (n == 0)
        return CRYO_OK;
    NN_NEED_PTR("relu_forward", out);
    NN_NEED_PTR("relu_forward", inp);
    NN_DISPATCH("relu_forward", relu_forward, out, inp, n);
}

int cryo_nn_relu_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                          const float *inp, size_t n, struct cryo_error *err)
{
    NN_NEED_CTX("relu_backward");
    if (n == 0)
        return CRYO_OK;
    NN_NEED_PTR("relu_backward", dinp);
    NN_NEED_PTR("relu_backward", dout);
    NN_NEED_PTR("relu_backward", inp);
    NN_DISPATCH("relu_backward", relu_backward, dinp, dout, inp, n);
}

int cryo_nn_softmax_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int64_t rows,
                            int cols, struct cryo_error *err)
{
    NN_NEED_CTX("softmax_forward");
    NN_NEED("softmax_forward", rows >= 1 && cols >= 1, "rows=%lld cols=%d: both must be >= 1",
            (long long)rows, cols);
    NN_NEED_PTR("softmax_forward", out);
    NN_NEED_PTR("softmax_forward", inp);
    NN_DISPATCH("softmax_forward", softmax_forward, out, inp, rows, cols);
}

int cryo_nn_softmax_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                             const float *out, int64_t rows, int cols, struct cryo_error *err)
{
    NN_NEED_CTX("softmax_backward");
    NN_NEED("softmax_backward", rows >= 1 && cols >= 1, "rows=%lld cols=%d: both must be >= 1",
            (long long)rows, cols);
    NN_NEED_PTR("softmax_backward", dinp);
    NN_NEED_PTR("softmax_backward", dout);
    NN_NEED_PTR("softmax_backward", out);
    NN_DISPATCH("softmax_backward", softmax_backward, dinp, dout, out, rows, cols);
}
