/* cuda_train.cu — the training ops on the GPU: AdamW, EMA, sum of squares and the row
 * losses (MSE, Smooth-L1), so a trainer's step keeps parameters, gradients, moments and
 * the EMA copy on the device. Arithmetic as the CPU backend's (cpu_train.c, optim.c):
 * per-element float maths in the same order; sums in double, each thread's partial
 * reduced in its block and added to one double with atomicAdd, so the result agrees with
 * the CPU's sequential double sum to ~1e-15 relative whatever the order. */
#include <math.h>

#include "cuda/cuda_priv.h"
#include "cryolvm/nn_train.h"

#define PER 256

#define GRID_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void k_adamw(float *param, const float *grad, float *m, float *v, size_t n,
                        struct cryo_nn_adamw_step s)
{
    GRID_LOOP(i, n)
    {
        float g = grad[i], p = param[i] * s.keep;
        float mi = s.b1 * m[i] + s.a1 * g;
        float vi = s.b2 * v[i] + s.a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - s.step_size * (mi / (sqrtf(vi) / s.bc2_sqrt + s.eps));
    }
}

__global__ void k_ema(float *e, const float *p, size_t n, float d, float r)
{
    GRID_LOOP(i, n) e[i] = d * e[i] + r * p[i];
}

/* Block sum of one double per thread (blockDim.x == PER), added to *acc by thread 0. */
__device__ void block_add(double v, double *acc)
{
    __shared__ double part[PER];
    part[threadIdx.x] = v;
    __syncthreads();
    for (int h = PER / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h)
            part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        atomicAdd(acc, part[0]);
}

__global__ void k_sumsq(const float *x, size_t n, double *acc)
{
    double s = 0.0;
    GRID_LOOP(i, n) s += (double)x[i] * (double)x[i];
    block_add(s, acc);
}

__global__ void k_loss(double *acc, float *grad, const float *pred, const float *target,
                       const float *rowmask, size_t n, int cols, int kind, double beta, double count)
{
    double s = 0.0;
    GRID_LOOP(i, n)
    {
        size_t r = i / (size_t)cols;
        if (rowmask && rowmask[r] == 0.0f) {
            if (grad)
                grad[i] = 0.0f;
            continue;
        }
        double d = (double)pred[i] - (double)target[i], g;
        if (kind == CRYO_NN_LOSS_MSE) {
            s += d * d;
            g = 2.0 * d;
        } else if (fabs(d) < beta) {
            s += 0.5 * d * d / beta;
            g = d / beta;
        } else {
            s += fabs(d) - 0.5 * beta;
            g = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
        }
        if (grad)
            grad[i] = (float)(g / count);
    }
    block_add(s, acc);
}

int cu_adamw(struct cryo_nn_ctx *ctx, float *param, const float *grad, float *m, float *v, size_t n,
             const struct cryo_nn_adamw_step *s, struct cryo_error *err)
{
    k_adamw<<<cu_blocks(n, PER), PER>>>(param, grad, m, v, n, *s);
    return cu_launched("adamw", err);
}

int cu_ema(struct cryo_nn_ctx *ctx, float *e, const float *p, size_t n, float d, float r,
           struct cryo_error *err)
{
    k_ema<<<cu_blocks(n, PER), PER>>>(e, p, n, d, r);
    return cu_launched("ema", err);
}

/* A zeroed double accumulator in the reduction scratch; the caller launches, then fetches. */
static int acc_zeroed(struct cryo_nn_ctx *ctx, double **acc, struct cryo_error *err)
{
    *acc = (double *)cu_red_scratch(ctx, sizeof(double), err);
    if (!*acc)
        return CRYO_E_NOMEM; /* recorded by cu_red_scratch */
    return cu_check(cudaMemsetAsync(*acc, 0, sizeof(double), 0), "zero accumulator", err);
}

static int acc_fetch(double *out, const double *acc, const char *what, struct cryo_error *err)
{
    CRYO_TRY(cu_launched(what, err));
    return cu_check(cudaMemcpy(out, acc, sizeof(double), cudaMemcpyDeviceToHost), what, err);
}

int cu_sumsq(struct cryo_nn_ctx *ctx, double *out, const float *x, size_t n, struct cryo_error *err)
{
    double *acc = NULL;
    CRYO_TRY(acc_zeroed(ctx, &acc, err));
    k_sumsq<<<cu_blocks(n, PER), PER>>>(x, n, acc);
    return acc_fetch(out, acc, "sum of squares", err);
}

int cu_loss(struct cryo_nn_ctx *ctx, double *sum, float *grad, const float *pred, const float *target,
            const float *rowmask, int64_t rows, int cols, int kind, double beta, double count,
            struct cryo_error *err)
{
    double *acc = NULL;
    CRYO_TRY(acc_zeroed(ctx, &acc, err));
    size_t n = (size_t)rows * (size_t)cols;
    k_loss<<<cu_blocks(n, PER), PER>>>(acc, grad, pred, target, rowmask, n, cols, kind, beta, count);
    return acc_fetch(sum, acc, "loss", err);
}
