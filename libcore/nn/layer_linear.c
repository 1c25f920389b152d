/* layer_linear.c — public entry points of the token-wise linear layer (checks, dispatch). */
#include <limits.h>

#include "cryolvm/nn_layers.h"
#include "nn/layer_util.h"

int cryo_nn_linear_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp,
                           const float *weight, const float *bias, int64_t T, int cin, int cout,
                           struct cryo_error *err)
{
    NN_NEED_CTX("linear_forward");
    NN_NEED("linear_forward", T >= 1 && cin >= 1 && cout >= 1,
            "T=%lld cin=%d cout=%d: all must be >= 1", (long long)T, cin, cout);
    if (T > INT_MAX) /* OpenBLAS (and cuBLAS) take 32-bit dimensions */
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "linear_forward: %lld tokens: at most 2^31 - 1 per call",
                         (long long)T);
    NN_NEED_PTR("linear_forward", out);
    NN_NEED_PTR("linear_forward", inp);
    NN_NEED_PTR("linear_forward", weight);
    NN_NEED("linear_forward", out != inp, "out must not alias inp");
    NN_DISPATCH("linear_forward", linear_forward, out, inp, weight, bias, T, cin, cout);
}

int cryo_nn_linear_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight, int64_t T,
                            int cin, int cout, struct cryo_error *err)
{
    NN_NEED_CTX("linear_backward");
    NN_NEED("linear_backward", T >= 1 && cin >= 1 && cout >= 1,
            "T=%lld cin=%d cout=%d: all must be >= 1", (long long)T, cin, cout);
    if (T > INT_MAX) /* OpenBLAS (and cuBLAS) take 32-bit dimensions */
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "linear_backward: %lld tokens: at most 2^31 - 1 per call",
                         (long long)T);
    NN_NEED_PTR("linear_backward", dout);
    NN_NEED("linear_backward", !dinp || weight, "dinp wanted but weight is NULL");
    NN_NEED("linear_backward", !dweight || inp, "dweight wanted but inp is NULL");
    NN_NEED("linear_backward", dinp != dout, "dinp must not alias dout");
    NN_DISPATCH("linear_backward", linear_backward, dinp, dweight, dbias, dout, inp, weight, T,
                cin, cout);
}
