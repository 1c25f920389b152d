/* cuda_linear.cu — token-wise linear layer with cuBLAS, plus the bias helpers.
 *
 * cuBLAS is column-major: a row-major R×K matrix is its K×R transpose there. With X the
 * T×cin tokens and W the PyTorch cout×cin weight (both row-major):
 *   out  (T×cout)  = X·Wᵀ      column-major: outᵀ = (W as cin×cout)ᵀ · Xᵀ  -> gemm(T, N)
 *   dinp (T×cin)   = dout·W    column-major: dinpᵀ = (W as cin×cout) · doutᵀ -> gemm(N, N)
 *   dW  (cout×cin) += doutᵀ·X  column-major: dWᵀ  = Xᵀ · dout            -> gemm(N, T), β = 1
 * The bias is broadcast into out first and the gemm adds onto it (β = 1), as on the CPU.
 */
#include "cuda/cuda_priv.h"
#include "cuda/cuda_reduce.cuh"

__global__ void k_bias_rows(float *out, const float *bias, int64_t T, int C, int add)
{
    size_t n = (size_t)T * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = (add ? out[i] : 0.0f) + bias[i % C];
}

__global__ void k_add_double(float *dst, const double *acc, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        dst[i] += (float)acc[i];
}

struct col_value {
    const float *src;
    int C;
    __device__ void operator()(int z, int64_t v, int c, float *out) const { out[0] = src[(size_t)v * C + c]; }
};

int cu_add_bias(float *out, const float *bias, int64_t T, int C, struct cryo_error *err)
{
    k_bias_rows<<<cu_blocks((size_t)T * C, 256), 256>>>(out, bias, T, C, 1);
    return cu_launched("bias", err);
}

int cu_colsum_acc(struct cryo_nn_ctx *ctx, float *dst, const float *src, int64_t T, int C,
                  struct cryo_error *err)
{
    double *acc = (double *)cu_red_scratch(ctx, sizeof(double) * (size_t)C, err);
    if (!acc)
        return CRYO_E_NOMEM;
    CRYO_TRY(cu_check(cudaMemsetAsync(acc, 0, sizeof(double) * (size_t)C, 0), "memset", err));
    launch_segsum<1>(col_value{src, C}, 1, T, C, acc);
    k_add_double<<<(C + 255) / 256, 256>>>(dst, acc, C);
    return cu_launched("column sum", err);
}

/* FP32: no tensor cores (pedantic: not even reduced-precision reductions); TF32: TF32
 * tensor cores; BF16: bf16 tensor cores (cuBLAS rounds the float32 operands to bfloat16
 * inside the product, 8-bit mantissa), all with float32 accumulation and float32 tensors
 * in and out. Set per call: the context's precision may change. */
static int blas_mode(struct cryo_nn_ctx *ctx, struct cryo_error *err)
{
    cublasMath_t m = ctx->precision == CRYO_NN_PRECISION_TF32   ? CUBLAS_TF32_TENSOR_OP_MATH
                     : ctx->precision == CRYO_NN_PRECISION_BF16 ? CUBLAS_DEFAULT_MATH
                                                                : CUBLAS_PEDANTIC_MATH;
    return cu_check_blas(cublasSetMathMode(cu_state(ctx)->blas, m), "cublasSetMathMode", err);
}

static cublasComputeType_t compute_type(const struct cryo_nn_ctx *ctx)
{
    return ctx->precision == CRYO_NN_PRECISION_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
           : ctx->precision == CRYO_NN_PRECISION_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                      : CUBLAS_COMPUTE_32F_PEDANTIC;
}

/* C (m×n, column-major) = α·op(A)·op(B) + β·C on float32 tensors, at the context's precision. */
static cublasStatus_t gemm(struct cryo_nn_ctx *ctx, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    return cublasGemmEx(cu_state(ctx)->blas, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
                        CUDA_R_32F, ldc, compute_type(ctx), CUBLAS_GEMM_DEFAULT);
}

static int need_int(int64_t T, struct cryo_error *err)
{
    if (T > (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: linear over %lld tokens: at most 2^31 - 1",
                       (long long)T);
    return CRYO_OK;
}

int cu_linear_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                      const float *bias, int64_t T, int cin, int cout, struct cryo_error *err)
{
    CRYO_TRY(need_int(T, err));
    CRYO_TRY(blas_mode(ctx, err));
    const float one = 1.0f, zero = 0.0f;
    if (bias) {
        k_bias_rows<<<cu_blocks((size_t)T * cout, 256), 256>>>(out, bias, T, cout, 0);
        CRYO_TRY(cu_launched("linear bias", err));
    }
    return cu_check_blas(gemm(ctx, CUBLAS_OP_T, CUBLAS_OP_N, cout, (int)T, cin, &one, weight, cin, inp, cin,
                              bias ? &one : &zero, out, cout),
                         "linear forward gemm", err);
}

int cu_linear_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                       const float *dout, const float *inp, const float *weight, int64_t T, int cin,
                       int cout, struct cryo_error *err)
{
    CRYO_TRY(need_int(T, err));
    CRYO_TRY(blas_mode(ctx, err));
    const float one = 1.0f, zero = 0.0f;
    if (dinp)
        CRYO_TRY(cu_check_blas(gemm(ctx, CUBLAS_OP_N, CUBLAS_OP_N, cin, (int)T, cout, &one, weight, cin, dout, cout,
                                    &zero, dinp, cin),
                               "linear backward-data gemm", err));
    if (dweight)
        CRYO_TRY(cu_check_blas(gemm(ctx, CUBLAS_OP_N, CUBLAS_OP_T, cin, cout, (int)T, &one, inp, cin, dout, cout,
                                    &one, dweight, cin),
                               "linear weight-gradient gemm", err));
    if (dbias)
        CRYO_TRY(cu_colsum_acc(ctx, dbias, dout, T, cout, err));
    return CRYO_OK;
}
