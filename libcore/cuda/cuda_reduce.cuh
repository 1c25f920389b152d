/* cuda_reduce.cuh — column sums over long token ranges, in double (private).
 *
 * The CPU backend sums 10⁵–10⁶ tokens per channel in float blocks and double totals; here
 * every thread accumulates in double (FP64 is cheap next to the memory traffic), a block
 * reduces its 8 row-strands in shared memory and adds its partial to the global total with
 * one double atomicAdd per column. Results therefore agree with the CPU's to ~1e-7
 * relative regardless of the order of the atomics.
 *
 * k_segsum<K>(f, S, C, acc): for every segment z (grid.z), column c and k < K,
 * acc[(z·K + k)·C + c] += Σ_{v<S} f(z, v, c)[k]. acc must be zeroed by the caller.
 */
#ifndef CRYOLVM_CUDA_REDUCE_CUH
#define CRYOLVM_CUDA_REDUCE_CUH

#include "cuda/cuda_priv.h"

#define SEG_TX 32
#define SEG_TY 8

template <int K, class F>
__global__ void k_segsum(F f, int64_t S, int C, double *acc)
{
    __shared__ double part[K][SEG_TY][SEG_TX];
    const int c = blockIdx.x * SEG_TX + threadIdx.x, z = blockIdx.z;
    const int64_t per = (S + gridDim.y - 1) / gridDim.y;
    const int64_t v0 = (int64_t)blockIdx.y * per, v1 = v0 + per < S ? v0 + per : S;
    double s[K];
    for (int k = 0; k < K; k++)
        s[k] = 0.0;
    if (c < C)
        for (int64_t v = v0 + threadIdx.y; v < v1; v += SEG_TY) {
            float val[K];
            f(z, v, c, val);
            for (int k = 0; k < K; k++)
                s[k] += (double)val[k];
        }
    for (int k = 0; k < K; k++)
        part[k][threadIdx.y][threadIdx.x] = s[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < C)
        for (int k = 0; k < K; k++) {
            double t = 0.0;
            for (int y = 0; y < SEG_TY; y++)
                t += part[k][y][threadIdx.x];
            atomicAdd(&acc[((size_t)z * K + k) * C + c], t);
        }
}

template <int K, class F>
static inline void launch_segsum(F f, int nseg, int64_t S, int C, double *acc)
{
    int64_t chunks = (S + 255) / 256;
    if (chunks > 1024)
        chunks = 1024;
    if (chunks < 1)
        chunks = 1;
    dim3 grid((unsigned)((C + SEG_TX - 1) / SEG_TX), (unsigned)chunks, (unsigned)nseg);
    k_segsum<K, F><<<grid, dim3(SEG_TX, SEG_TY)>>>(f, S, C, acc);
}

#endif
