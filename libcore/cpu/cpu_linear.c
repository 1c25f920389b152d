/* cpu_linear.c — token-wise linear layer on the CPU: three OpenBLAS sgemm calls.
 *
 * Row-major T×cin tokens times the PyTorch out×in weight: forward is inp·Wᵀ, the input
 * gradient dout·W, the weight gradient doutᵀ·inp accumulated with beta = 1 (parameter
 * gradients add up, see nn_layers.h). The bias is broadcast into out first so the gemm
 * runs with beta = 1 and no extra pass over the output.
 */
#include <cblas.h>
#include <string.h>

#include "cpu/cpu.h"

int cpu_linear_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                       const float *bias, int64_t T, int cin, int cout, struct cryo_error *err)
{
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static) if (T * cout > (1 << 16))
        for (int64_t t = 0; t < T; t++)
            memcpy(out + (size_t)t * cout, bias, sizeof(float) * cout);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, cout, cin, 1.0f, inp, cin,
                weight, cin, beta, out, cout);
    return CRYO_OK;
}

int cpu_linear_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const float *weight, int64_t T,
                        int cin, int cout, struct cryo_error *err)
{
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)T, cin, cout, 1.0f, dout,
                    cout, weight, cin, 0.0f, dinp, cin);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cout, cin, (blasint)T, 1.0f, dout,
                    cout, inp, cin, 1.0f, dweight, cin);
    if (dbias)
        CRYO_TRY(cpu_colsum_acc(ctx, dbias, dout, T, cout, err));
    return CRYO_OK;
}
