/* cpu.h — internals of the CPU backend (private to libcore/cpu).
 *
 * The CPU backend is the reference: oneDNN 2.6 for (transposed) convolutions, OpenBLAS
 * sgemm for linear layers and the big attention projections, plain C with OpenMP for
 * everything else. Its state is one oneDNN engine + stream and a cache of convolution
 * primitives keyed by geometry (creating a oneDNN primitive costs milliseconds).
 */
#ifndef CRYOLVM_CPU_H
#define CRYOLVM_CPU_H

#include <dnnl.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/backend_impl.h"

struct cpu_conv_entry; /* cpu_conv.c */

struct cpu_state {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    struct cpu_conv_entry *convs; /* cache, most recently created first */
    float *red;                   /* reduction partials (cpu_red_scratch) */
    size_t red_bytes;
};

static inline struct cpu_state *cpu_state(struct cryo_nn_ctx *ctx)
{
    return (struct cpu_state *)ctx->state;
}

/* Release every cached convolution primitive and its buffers. */
void cpu_conv_cache_free(struct cpu_state *st);

/* Rows per float block sum in long reductions (cpu_colsum_acc, LayerNorm and FRN). */
#define CPU_RED_BLOCK 256

/* dst[c] += sum over t of src[t·C + c] (t < T), parallel with per-thread partial sums
 * (float within blocks of CPU_RED_BLOCK rows, double across blocks). */
int cpu_colsum_acc(struct cryo_nn_ctx *ctx, float *dst, const float *src, int64_t T, int C,
                   struct cryo_error *err);

/* A grow-once buffer of at least `bytes` for per-thread partial sums, separate from the
 * context workspace (so an op may use both). */
float *cpu_red_scratch(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err);

/* The OpenBLAS core the process runs with ("SkylakeX", "Haswell", ... or "unknown"). */
const char *cpu_blas_core(void);

/* ops, one file per family */
int cpu_conv3d_forward(struct cryo_nn_ctx *, float *, const float *, const float *,
                       const float *, const struct cryo_nn_conv3d *, struct cryo_error *);
int cpu_conv3d_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                        const float *, const float *, const struct cryo_nn_conv3d *,
                        struct cryo_error *);
int cpu_convt3d_forward(struct cryo_nn_ctx *, float *, const float *, const float *,
                        const float *, const struct cryo_nn_conv3d *, struct cryo_error *);
int cpu_convt3d_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                         const float *, const float *, const struct cryo_nn_conv3d *,
                         struct cryo_error *);
int cpu_linear_forward(struct cryo_nn_ctx *, float *, const float *, const float *,
                       const float *, int64_t, int, int, struct cryo_error *);
int cpu_linear_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                        const float *, const float *, int64_t, int, int, struct cryo_error *);
int cpu_layernorm_forward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                          const float *, const float *, int64_t, int, float,
                          struct cryo_error *);
int cpu_layernorm_backward(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                           const float *, const float *, const float *, const float *, int64_t,
                           int, struct cryo_error *);
int cpu_frn_forward(struct cryo_nn_ctx *, float *, float *, const float *, const float *,
                    const float *, const float *, int, int64_t, int, float, struct cryo_error *);
int cpu_frn_backward(struct cryo_nn_ctx *, float *, float *, float *, float *, const float *,
                     const float *, const float *, const float *, const float *, const float *,
                     int, int64_t, int, struct cryo_error *);
int cpu_gelu_forward(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
int cpu_gelu_backward(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                      struct cryo_error *);
int cpu_relu_forward(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
int cpu_relu_backward(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                      struct cryo_error *);
int cpu_softmax_forward(struct cryo_nn_ctx *, float *, const float *, int64_t, int,
                        struct cryo_error *);
int cpu_softmax_backward(struct cryo_nn_ctx *, float *, const float *, const float *, int64_t,
                         int, struct cryo_error *);
int cpu_wmsa_forward(struct cryo_nn_ctx *, float *, float *, const float *, const float *,
                     const float *, const float *, const float *, const float *,
                     const struct cryo_nn_wmsa *, struct cryo_error *);
int cpu_wmsa_backward(struct cryo_nn_ctx *, float *, float *, float *, float *, float *, float *,
                      const float *, const float *, const float *, const float *, const float *,
                      const float *, const struct cryo_nn_wmsa *, struct cryo_error *);
int cpu_concat_forward(struct cryo_nn_ctx *, float *, const float *, const float *, int64_t, int,
                       int, struct cryo_error *);
int cpu_split_forward(struct cryo_nn_ctx *, float *, float *, const float *, int64_t, int, int,
                      struct cryo_error *);
int cpu_add_forward(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                    struct cryo_error *);
int cpu_roll_forward(struct cryo_nn_ctx *, float *, const float *, int, int, int, int, int, int,
                     int, int, struct cryo_error *);
int cpu_scale_samples(struct cryo_nn_ctx *, float *, const float *, const float *, int, size_t,
                      struct cryo_error *);
int cpu_adamw(struct cryo_nn_ctx *, float *, const float *, float *, float *, size_t,
              const struct cryo_nn_adamw_step *, struct cryo_error *);
int cpu_ema(struct cryo_nn_ctx *, float *, const float *, size_t, float, float, struct cryo_error *);
int cpu_sumsq(struct cryo_nn_ctx *, double *, const float *, size_t, struct cryo_error *);
int cpu_loss(struct cryo_nn_ctx *, double *, float *, const float *, const float *, const float *,
             int64_t, int, int, double, double, struct cryo_error *);
int cpu_histkl(struct cryo_nn_ctx *, double *, float *, const float *, const float *, size_t,
               const struct cryo_hist_spec *, double, struct cryo_error *);
int cpu_mask_patches(struct cryo_nn_ctx *, float *, const float *, const float *, int, int, int, int, int,
                     int, struct cryo_error *);
int cpu_patchify(struct cryo_nn_ctx *, float *, const float *, int, int, int, int, int, int,
                 struct cryo_error *);
int cpu_collapse_stats(struct cryo_nn_ctx *, double *, double *, const float *, int, size_t, int,
                       struct cryo_error *);
int cpu_mask_rows(struct cryo_nn_ctx *, float *, const float *, const float *, const float *, int64_t, int,
                  struct cryo_error *);
int cpu_mask_rows_backward(struct cryo_nn_ctx *, float *, float *, const float *, int64_t, int, struct cryo_error *);
int cpu_copy(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
int cpu_fill(struct cryo_nn_ctx *, float *, float, size_t, struct cryo_error *);
int cpu_accumulate(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);

#endif
