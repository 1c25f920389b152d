/* cuda_priv.h — internals of the CUDA backend plugin (libcryolvm-cuda.so; private).
 *
 * Everything runs on the legacy default stream, in order, so a download or a cudaFree
 * waits for the work before it and no op needs its own synchronisation. Maths follow the
 * CPU backend (libcore/cpu), the reference: same formulas, reductions in double where the
 * CPU sums in double. Errors come back through the host's fail() (libcore formats nothing
 * for us: the plugin does not see libcore's symbols).
 */
#ifndef CRYOLVM_CUDA_PRIV_H
#define CRYOLVM_CUDA_PRIV_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/backend_impl.h"
#include "nn/wmsa_plan.h"

struct cu_conv_entry; /* cuda_conv.cu */

struct cu_state {
    int device;
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    struct cu_conv_entry *convs; /* cache of descriptors and chosen algorithms per shape */
    void *red;                   /* grow-once scratch for reductions (doubles) */
    size_t red_bytes;
    void *comm;                  /* NCCL communicator (cuda_comm.cu), or NULL */
    int nranks;
};

static inline struct cu_state *cu_state(struct cryo_nn_ctx *ctx)
{
    return (struct cu_state *)ctx->state;
}

extern const struct cryo_nn_plugin_host *cu_host;

/* printf-style failure through the host; returns status. */
int cu_fail(struct cryo_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* CRYO_E_DEVICE naming `what` and the CUDA error, or CRYO_OK. */
int cu_check(cudaError_t e, const char *what, struct cryo_error *err);
int cu_check_blas(cublasStatus_t s, const char *what, struct cryo_error *err);
int cu_check_dnn(cudnnStatus_t s, const char *what, struct cryo_error *err);
/* After kernel launches: the launch error, if any. */
int cu_launched(const char *what, struct cryo_error *err);

/* Grow-once scratch of `bytes` apart from the context workspace. */
void *cu_red_scratch(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err);
void cu_conv_cache_free(struct cu_state *st);

/* Blocks for `n` threads of `per` each, capped (grid-stride loops cover the rest). */
static inline unsigned cu_blocks(size_t n, unsigned per)
{
    size_t b = (n + per - 1) / per;
    return (unsigned)(b < 1 ? 1 : (b > 65535u * 16 ? 65535u * 16 : b));
}

/* dst[c] += Σ_t src[t·C + c] (t < T), summed in double (bias gradients). */
int cu_colsum_acc(struct cryo_nn_ctx *ctx, float *dst, const float *src, int64_t T, int C,
                  struct cryo_error *err);
/* out[t·C + c] += bias[c] */
int cu_add_bias(float *out, const float *bias, int64_t T, int C, struct cryo_error *err);

/* bf16 casts (cuda_bf16.cu): dst = bf16(src), round to nearest even; dst = float(src)
 * (+ bias[i % C] when bias is not NULL: channels-last rows of C). */
int cu_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n, struct cryo_error *err);
int cu_from_bf16(float *dst, const __nv_bfloat16 *src, size_t n, const float *bias, int C,
                 struct cryo_error *err);

/* The attention core as bf16 GEMMs (cuda_wmsa_bf16.cu): scratch bytes for a forward or a
 * backward, then the two passes (tensors as in cuda_wmsa.cu: qkv [tokens][3c], y and dy
 * [tokens][c], att and dS [windows·heads][ntmax][ntmax]; att may be NULL forward). */
size_t cu_wmsa_bf16_scratch(const struct cryo_nn_wmsa_plan *p, int c, int backward);
int cu_wmsa_bf16_forward(struct cryo_nn_ctx *ctx, float *y, float *att, const float *qkv, const float *rel_bias,
                         const struct cryo_nn_wmsa_plan *p, int c, int hd, int window, float scale, void *scratch,
                         struct cryo_error *err);
int cu_wmsa_bf16_backward(struct cryo_nn_ctx *ctx, float *dqkv, float *dS, const float *qkv, const float *dy,
                          const float *att, const struct cryo_nn_wmsa_plan *p, int c, int hd, float scale,
                          void *scratch, struct cryo_error *err);

/* ops */
int cu_conv3d_forward(struct cryo_nn_ctx *, float *, const float *, const float *, const float *,
                      const struct cryo_nn_conv3d *, struct cryo_error *);
int cu_conv3d_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                       const float *, const float *, const struct cryo_nn_conv3d *,
                       struct cryo_error *);
int cu_convt3d_forward(struct cryo_nn_ctx *, float *, const float *, const float *, const float *,
                       const struct cryo_nn_conv3d *, struct cryo_error *);
int cu_convt3d_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                        const float *, const float *, const struct cryo_nn_conv3d *,
                        struct cryo_error *);
int cu_linear_forward(struct cryo_nn_ctx *, float *, const float *, const float *, const float *,
                      int64_t, int, int, struct cryo_error *);
int cu_linear_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                       const float *, const float *, int64_t, int, int, struct cryo_error *);
int cu_layernorm_forward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                         const float *, const float *, int64_t, int, float, struct cryo_error *);
int cu_layernorm_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                          const float *, const float *, const float *, const float *, int64_t,
                          int, struct cryo_error *);
int cu_frn_forward(struct cryo_nn_ctx *, float *, float *, const float *, const float *,
                   const float *, const float *, int, int64_t, int, float, struct cryo_error *);
int cu_frn_backward(struct cryo_nn_ctx *, float *, float *, float *, float *, const float *,
                    const float *, const float *, const float *, const float *, const float *,
                    int, int64_t, int, struct cryo_error *);
int cu_gelu_forward(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
int cu_gelu_backward(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                     struct cryo_error *);
int cu_relu_forward(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
int cu_relu_backward(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                     struct cryo_error *);
int cu_softmax_forward(struct cryo_nn_ctx *, float *, const float *, int64_t, int,
                       struct cryo_error *);
int cu_softmax_backward(struct cryo_nn_ctx *, float *, const float *, const float *, int64_t, int,
                        struct cryo_error *);
int cu_wmsa_forward(struct cryo_nn_ctx *, float *, float *, const float *, const float *,
                    const float *, const float *, const float *, const float *,
                    const struct cryo_nn_wmsa *, struct cryo_error *);
int cu_wmsa_backward(struct cryo_nn_ctx *, float *, float *, float *, float *, float *, float *,
                     const float *, const float *, const float *, const float *, const float *,
                     const float *, const struct cryo_nn_wmsa *, struct cryo_error *);
int cu_concat_forward(struct cryo_nn_ctx *, float *, const float *, const float *, int64_t, int,
                      int, struct cryo_error *);
int cu_split_forward(struct cryo_nn_ctx *, float *, float *, const float *, int64_t, int, int,
                     struct cryo_error *);
int cu_add_forward(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                   struct cryo_error *);
int cu_roll_forward(struct cryo_nn_ctx *, float *, const float *, int, int, int, int, int, int, int,
                    int, struct cryo_error *);
int cu_scale_samples(struct cryo_nn_ctx *, float *, const float *, const float *, int, size_t,
                     struct cryo_error *);
int cu_adamw(struct cryo_nn_ctx *, float *, const float *, float *, float *, size_t,
             const struct cryo_nn_adamw_step *, struct cryo_error *);
int cu_ema(struct cryo_nn_ctx *, float *, const float *, size_t, float, float, struct cryo_error *);
int cu_sumsq(struct cryo_nn_ctx *, double *, const float *, size_t, struct cryo_error *);
int cu_loss(struct cryo_nn_ctx *, double *, float *, const float *, const float *, const float *, int64_t,
            int, int, double, double, struct cryo_error *);
int cu_histkl(struct cryo_nn_ctx *, double *, float *, const float *, const float *, size_t,
              const struct cryo_hist_spec *, double, struct cryo_error *);
int cu_mask_patches(struct cryo_nn_ctx *, float *, const float *, const float *, int, int, int, int, int, int,
                    struct cryo_error *);
int cu_patchify(struct cryo_nn_ctx *, float *, const float *, int, int, int, int, int, int, struct cryo_error *);
int cu_collapse_stats(struct cryo_nn_ctx *, double *, double *, const float *, int, size_t, int,
                      struct cryo_error *);
int cu_mask_rows(struct cryo_nn_ctx *, float *, const float *, const float *, const float *, int64_t, int,
                 struct cryo_error *);
int cu_mask_rows_backward(struct cryo_nn_ctx *, float *, float *, const float *, int64_t, int, struct cryo_error *);
int cu_comm_id(struct cryo_nn_ctx *, void *, size_t, struct cryo_error *);
int cu_comm_init(struct cryo_nn_ctx *, const void *, size_t, int, int, struct cryo_error *);
int cu_allreduce(struct cryo_nn_ctx *, float *, size_t, struct cryo_error *);
int cu_allreduce_host(struct cryo_nn_ctx *, double *, int, struct cryo_error *);
void cu_comm_free(struct cu_state *st);
int cu_fill(struct cryo_nn_ctx *, float *, float, size_t, struct cryo_error *);
int cu_accumulate(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);

#endif
