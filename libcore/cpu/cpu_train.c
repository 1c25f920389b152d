/* cpu_train.c — the CPU backend's training ops: AdamW, EMA, sum of squares and the row
 * losses, on host memory with the host functions' arithmetic (optim.c, loss.c), so that
 * a trainer on the CPU backend computes exactly what those functions compute. */
#include <math.h>

#include "cpu/cpu.h"
#include "cryolvm/nn_train.h"

int cpu_adamw(struct cryo_nn_ctx *ctx, float *param, const float *grad, float *m, float *v, size_t n,
              const struct cryo_nn_adamw_step *s, struct cryo_error *err)
{
    cryo_adamw_apply(param, grad, m, v, n, s);
    return CRYO_OK;
}

int cpu_ema(struct cryo_nn_ctx *ctx, float *e, const float *p, size_t n, float d, float r,
            struct cryo_error *err)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        e[i] = d * e[i] + r * p[i];
    return CRYO_OK;
}

int cpu_sumsq(struct cryo_nn_ctx *ctx, double *out, const float *x, size_t n, struct cryo_error *err)
{
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    *out = s;
    return CRYO_OK;
}

/* Sequential in row order, as cryo_loss_mse/_smooth_l1 over the gathered rows. */
int cpu_loss(struct cryo_nn_ctx *ctx, double *sum, float *grad, const float *pred, const float *target,
             const float *rowmask, int64_t rows, int cols, int kind, double beta, double count,
             struct cryo_error *err)
{
    double s = 0;
    for (int64_t r = 0; r < rows; r++) {
        size_t base = (size_t)r * (size_t)cols;
        if (rowmask && rowmask[r] == 0.0f) {
            if (grad)
                for (int c = 0; c < cols; c++)
                    grad[base + (size_t)c] = 0.0f;
            continue;
        }
        for (int c = 0; c < cols; c++) {
            size_t i = base + (size_t)c;
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
    }
    *sum = s;
    return CRYO_OK;
}
