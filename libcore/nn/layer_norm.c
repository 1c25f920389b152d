/* layer_norm.c — public entry points of LayerNorm (over channels) and Filter Response
 * Normalisation with TLU (checks, dispatch). */
#include <math.h>

#include "cryolvm/nn_layers.h"
#include "nn/layer_util.h"

int cryo_nn_layernorm_forward(struct cryo_nn_ctx *ctx, float *out, float *mean, float *rstd,
                              const float *inp, const float *gamma, const float *beta, int64_t T,
                              int C, float eps, struct cryo_error *err)
{
    NN_NEED_CTX("layernorm_forward");
    NN_NEED("layernorm_forward", T >= 1 && C >= 1, "T=%lld C=%d: both must be >= 1",
            (long long)T, C);
    NN_NEED("layernorm_forward", isfinite(eps) && eps > 0, "eps %g must be finite and > 0",
            (double)eps);
    NN_NEED_PTR("layernorm_forward", out);
    NN_NEED_PTR("layernorm_forward", inp);
    NN_NEED_PTR("layernorm_forward", gamma);
    NN_NEED_PTR("layernorm_forward", beta);
    NN_NEED("layernorm_forward", !mean == !rstd, "mean and rstd must be both given or both NULL");
    NN_DISPATCH("layernorm_forward", layernorm_forward, out, mean, rstd, inp, gamma, beta, T, C,
                eps);
}

int cryo_nn_layernorm_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma,
                               float *dbeta, const float *dout, const float *inp,
                               const float *gamma, const float *mean, const float *rstd,
                               int64_t T, int C, struct cryo_error *err)
{
    NN_NEED_CTX("layernorm_backward");
    NN_NEED("layernorm_backward", T >= 1 && C >= 1, "T=%lld C=%d: both must be >= 1",
            (long long)T, C);
    NN_NEED_PTR("layernorm_backward", dout);
    NN_NEED_PTR("layernorm_backward", inp);
    NN_NEED_PTR("layernorm_backward", gamma);
    NN_NEED_PTR("layernorm_backward", mean);
    NN_NEED_PTR("layernorm_backward", rstd);
    NN_DISPATCH("layernorm_backward", layernorm_backward, dinp, dgamma, dbeta, dout, inp, gamma,
                mean, rstd, T, C);
}

int cryo_nn_frn_forward(struct cryo_nn_ctx *ctx, float *out, float *rstd, const float *inp,
                        const float *gamma, const float *beta, const float *tau, int N, int64_t S,
                        int C, float eps, struct cryo_error *err)
{
    NN_NEED_CTX("frn_forward");
    NN_NEED("frn_forward", N >= 1 && S >= 1 && C >= 1, "N=%d S=%lld C=%d: all must be >= 1", N,
            (long long)S, C);
    NN_NEED("frn_forward", isfinite(eps) && eps > 0, "eps %g must be finite and > 0", (double)eps);
    NN_NEED_PTR("frn_forward", out);
    NN_NEED_PTR("frn_forward", inp);
    NN_NEED_PTR("frn_forward", gamma);
    NN_NEED_PTR("frn_forward", beta);
    NN_NEED_PTR("frn_forward", tau);
    NN_DISPATCH("frn_forward", frn_forward, out, rstd, inp, gamma, beta, tau, N, S, C, eps);
}

int cryo_nn_frn_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                         float *dtau, const float *dout, const float *inp, const float *gamma,
                         const float *beta, const float *tau, const float *rstd, int N, int64_t S,
                         int C, struct cryo_error *err)
{
    NN_NEED_CTX("frn_backward");
    NN_NEED("frn_backward", N >= 1 && S >= 1 && C >= 1, "N=%d S=%lld C=%d: all must be >= 1", N,
            (long long)S, C);
    NN_NEED_PTR("frn_backward", dout);
    NN_NEED_PTR("frn_backward", inp);
    NN_NEED_PTR("frn_backward", gamma);
    NN_NEED_PTR("frn_backward", beta);
    NN_NEED_PTR("frn_backward", tau);
    NN_NEED_PTR("frn_backward", rstd);
    NN_DISPATCH("frn_backward", frn_backward, dinp, dgamma, dbeta, dtau, dout, inp, gamma, beta,
                tau, rstd, N, S, C);
}
