/* cuda_bf16.cu — float32 <-> bfloat16 casts for the bf16 paths (CRYO_NN_PRECISION_BF16):
 * tensors stay float32 in memory, and an op that runs on bf16 operands casts them into the
 * context workspace first (round to nearest even, as PyTorch's .to(torch.bfloat16)) and
 * its bf16 results back to float32 afterwards. */
#include "cuda/cuda_priv.h"

__global__ void k_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void k_from_bf16(float *dst, const __nv_bfloat16 *src, size_t n, const float *bias, int C)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]) + (bias ? bias[i % (size_t)C] : 0.0f);
}

int cu_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n, struct cryo_error *err)
{
    if (n == 0)
        return CRYO_OK;
    k_to_bf16<<<cu_blocks(n, 256), 256>>>(dst, src, n);
    return cu_launched("cast to bf16", err);
}

int cu_from_bf16(float *dst, const __nv_bfloat16 *src, size_t n, const float *bias, int C, struct cryo_error *err)
{
    if (n == 0)
        return CRYO_OK;
    if (bias && C < 1)
        return cu_fail(err, CRYO_E_INVALID, "nn cuda: bf16 cast with a bias of %d channels", C);
    k_from_bf16<<<cu_blocks(n, 256), 256>>>(dst, src, n, bias, C);
    return cu_launched("cast from bf16", err);
}
