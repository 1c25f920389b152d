/* cpu_hist.c — the HistKL loss op of the CPU backend: cryo_histkl_loss (hist.c) itself, the
 * reference every backend matches, its gradient then scaled and added to grad. */
#include "cpu/cpu.h"
#include "cryolvm/mem.h"

int cpu_histkl(struct cryo_nn_ctx *ctx, double *loss, float *grad, const float *pred, const float *target,
               size_t n, const struct cryo_hist_spec *spec, double gscale, struct cryo_error *err)
{
    float *g = NULL;
    if (grad && !(g = cryo_alloc_big(n * sizeof *g, err)))
        return CRYO_E_NOMEM;
    int rc = cryo_histkl_loss(loss, g, pred, target, n, spec, err);
    if (rc == CRYO_OK && grad) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 18))
        for (size_t i = 0; i < n; i++)
            grad[i] += (float)(gscale * (double)g[i]);
    }
    cryo_free_big(g);
    return rc;
}
