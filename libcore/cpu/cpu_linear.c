/* cpu_linear.c — token-wise linear layer on the CPU: OpenBLAS sgemm, one call per OpenMP
 * thread.
 *
 * Row-major T×cin tokens times the PyTorch out×in weight: forward is inp·Wᵀ, the input
 * gradient dout·W, the weight gradient doutᵀ·inp accumulated (parameter gradients add up,
 * see nn_layers.h). Each thread broadcasts the bias into its rows of out first so the gemm
 * runs with beta = 1 and no extra pass over the output.
 *
 * Threads: OpenBLAS runs single-threaded (cpu_backend.c sets it) and each OpenMP thread
 * multiplies its own block of tokens: rows of out/dinp, or a slice of the T-long reduction
 * of the weight gradient, summed afterwards. Letting OpenBLAS's own pthread pool run next
 * to OpenMP's spinning threads put 13 % of the attention layer's time into sched_yield on
 * this 2-core machine, and the skinny shapes here (T ≈ 10⁵, c ≤ 256) split by rows run
 * 1.5–2× faster than OpenBLAS's own partitioning (bench/README.md).
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cryolvm/mem.h"

/* C[M×N] = A[M×K]·op(B) (+ bias broadcast to every row when bias is given), A and C split
 * into row blocks across threads; each thread writes its own bias rows first so the gemm
 * adds onto them (beta = 1) while they are still in cache. */
static void gemm_rows(int transb, int64_t M, int N, int K, const float *A, const float *B, int ldb,
                      const float *bias, float *C)
{
    int nt = omp_get_max_threads();
    if (M < 256)
        nt = 1;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t a = M * id / n, b = M * (id + 1) / n;
        if (bias)
            for (int64_t t = a; t < b; t++)
                memcpy(C + (size_t)t * N, bias, sizeof(float) * N);
        if (b > a)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (blasint)(b - a),
                        N, K, 1.0f, A + (size_t)a * K, K, B, ldb, bias ? 1.0f : 0.0f, C + (size_t)a * N, N);
    }
}

int cpu_linear_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                       const float *bias, int64_t T, int cin, int cout, struct cryo_error *err)
{
    gemm_rows(1, T, cout, cin, inp, weight, cin, bias, out);
    return CRYO_OK;
}

/* dW[cout×cin] += doutᵀ·inp, the T-long sum split across threads; thread 0 accumulates
 * straight into dW, the others into partials added at the end. */
static int weight_grad(struct cryo_nn_ctx *ctx, float *dweight, const float *dout, const float *inp,
                       int64_t T, int cin, int cout, struct cryo_error *err)
{
    int nt = omp_get_max_threads();
    if (T < 1024)
        nt = 1;
    size_t nw = (size_t)cout * cin, bytes;
    float *part = NULL;
    if (nt > 1) {
        CRYO_TRY(cryo_mul_size((size_t)(nt - 1) * nw, sizeof(float), &bytes, err));
        part = cpu_red_scratch(ctx, bytes, err);
        if (!part)
            return CRYO_E_NOMEM;
    }
    int used = 1;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t a = T * id / n, b = T * (id + 1) / n;
        float *dst = id == 0 ? dweight : part + (size_t)(id - 1) * nw;
        if (id == 0)
            used = n;
        if (b > a)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cout, cin, (blasint)(b - a), 1.0f,
                        dout + (size_t)a * cout, cout, inp + (size_t)a * cin, cin, id == 0 ? 1.0f : 0.0f,
                        dst, cin);
        else if (id > 0)
            memset(dst, 0, nw * sizeof(float));
    }
    for (int i = 1; i < used; i++) {
        const float *p = part + (size_t)(i - 1) * nw;
        for (size_t k = 0; k < nw; k++)
            dweight[k] += p[k];
    }
    return CRYO_OK;
}

int cpu_linear_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const float *weight, int64_t T,
                        int cin, int cout, struct cryo_error *err)
{
    if (dinp)
        gemm_rows(0, T, cin, cout, dout, weight, cin, NULL, dinp);
    if (dweight)
        CRYO_TRY(weight_grad(ctx, dweight, dout, inp, T, cin, cout, err));
    if (dbias)
        CRYO_TRY(cpu_colsum_acc(ctx, dbias, dout, T, cout, err));
    return CRYO_OK;
}
