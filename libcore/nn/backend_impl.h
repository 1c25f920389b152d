/* backend_impl.h — what a backend provides to the engine (private to libcore).
 *
 * The idea is ggml's backend vtable: one const table of function pointers per backend,
 * one entry per op with the same signature as the public layer call in nn_layers.h. The
 * public calls (libcore/nn/layer_*.c) validate arguments once, for every backend, and then
 * dispatch through ctx->ops; an entry left NULL means "this backend cannot run that op"
 * and the call returns CRYO_E_UNSUPPORTED. Backends never call each other.
 *
 * A backend's own state (oneDNN engine, primitive cache, cuBLAS handle...) hangs off
 * ctx->state, created by ops->init and released by ops->fini.
 */
#ifndef CRYOLVM_NN_BACKEND_IMPL_H
#define CRYOLVM_NN_BACKEND_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/hist.h"
#include "cryolvm/nn_layers.h"

/* The scalars of one AdamW update (cryo_adamw_step_scalars in optim.c folds them as
 * PyTorch does): p ← p·keep; m ← b1·m + a1·g; v ← b2·v + a2·g²;
 * p ← p − step_size·m/(√v/bc2_sqrt + eps). */
struct cryo_nn_adamw_step {
    float b1, b2, a1, a2, keep, step_size, bc2_sqrt, eps;
};

struct cryo_nn_ops {
    const char *name; /* "cpu", "cuda" */
    int (*init)(struct cryo_nn_ctx *ctx, struct cryo_error *err);
    void (*fini)(struct cryo_nn_ctx *ctx);

    /* memory */
    float *(*alloc)(struct cryo_nn_ctx *ctx, size_t n, struct cryo_error *err);
    void (*free)(struct cryo_nn_ctx *ctx, float *p);
    int (*upload)(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                  struct cryo_error *err);
    int (*download)(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                    struct cryo_error *err);
    int (*copy)(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                struct cryo_error *err);
    int (*fill)(struct cryo_nn_ctx *ctx, float *p, float value, size_t n, struct cryo_error *err);
    int (*accumulate)(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                      struct cryo_error *err);
    int (*sync)(struct cryo_nn_ctx *ctx, struct cryo_error *err);

    /* layers: signatures as in nn_layers.h, arguments already validated */
    int (*conv3d_forward)(struct cryo_nn_ctx *, float *, const float *, const float *,
                          const float *, const struct cryo_nn_conv3d *, struct cryo_error *);
    int (*conv3d_backward)(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                           const float *, const float *, const struct cryo_nn_conv3d *,
                           struct cryo_error *);
    int (*convt3d_forward)(struct cryo_nn_ctx *, float *, const float *, const float *,
                           const float *, const struct cryo_nn_conv3d *, struct cryo_error *);
    int (*convt3d_backward)(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                            const float *, const float *, const struct cryo_nn_conv3d *,
                            struct cryo_error *);
    int (*linear_forward)(struct cryo_nn_ctx *, float *, const float *, const float *,
                          const float *, int64_t, int, int, struct cryo_error *);
    int (*linear_backward)(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                           const float *, const float *, int64_t, int, int, struct cryo_error *);
    int (*layernorm_forward)(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                             const float *, const float *, int64_t, int, float,
                             struct cryo_error *);
    int (*layernorm_backward)(struct cryo_nn_ctx *, float *, float *, float *, const float *,
                              const float *, const float *, const float *, const float *,
                              int64_t, int, struct cryo_error *);
    int (*frn_forward)(struct cryo_nn_ctx *, float *, float *, const float *, const float *,
                       const float *, const float *, int, int64_t, int, float,
                       struct cryo_error *);
    int (*frn_backward)(struct cryo_nn_ctx *, float *, float *, float *, float *, const float *,
                        const float *, const float *, const float *, const float *,
                        const float *, int, int64_t, int, struct cryo_error *);
    int (*gelu_forward)(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
    int (*gelu_backward)(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                         struct cryo_error *);
    int (*relu_forward)(struct cryo_nn_ctx *, float *, const float *, size_t, struct cryo_error *);
    int (*relu_backward)(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                         struct cryo_error *);
    int (*softmax_forward)(struct cryo_nn_ctx *, float *, const float *, int64_t, int,
                           struct cryo_error *);
    int (*softmax_backward)(struct cryo_nn_ctx *, float *, const float *, const float *, int64_t,
                            int, struct cryo_error *);
    int (*wmsa_forward)(struct cryo_nn_ctx *, float *, float *, const float *, const float *,
                        const float *, const float *, const float *, const float *,
                        const struct cryo_nn_wmsa *, struct cryo_error *);
    int (*wmsa_backward)(struct cryo_nn_ctx *, float *, float *, float *, float *, float *,
                         float *, const float *, const float *, const float *, const float *,
                         const float *, const float *, const struct cryo_nn_wmsa *,
                         struct cryo_error *);
    int (*concat_forward)(struct cryo_nn_ctx *, float *, const float *, const float *, int64_t,
                          int, int, struct cryo_error *);
    int (*split_forward)(struct cryo_nn_ctx *, float *, float *, const float *, int64_t, int,
                         int, struct cryo_error *);
    int (*add_forward)(struct cryo_nn_ctx *, float *, const float *, const float *, size_t,
                       struct cryo_error *);
    int (*roll_forward)(struct cryo_nn_ctx *, float *, const float *, int, int, int, int, int,
                        int, int, int, struct cryo_error *);
    int (*scale_samples)(struct cryo_nn_ctx *, float *, const float *, const float *, int,
                         size_t, struct cryo_error *); /* out[i,:] = inp[i,:]·s[i] (s on host) */

    /* training (nn_train.h's definitions; the CPU backend is the reference): tensors in
     * backend memory, scalars and results on the host. */
    /* one AdamW update of n values, the step's scalars folded on the host (train_impl.h) */
    int (*adamw)(struct cryo_nn_ctx *, float *param, const float *grad, float *m, float *v,
                 size_t n, const struct cryo_nn_adamw_step *s, struct cryo_error *);
    /* e ← d·e + r·p */
    int (*ema)(struct cryo_nn_ctx *, float *e, const float *p, size_t n, float d, float r,
               struct cryo_error *);
    /* *out (host) = Σ x[i]², summed in double */
    int (*sumsq)(struct cryo_nn_ctx *, double *out, const float *x, size_t n, struct cryo_error *);
    /* Loss over rows × cols (row-major) of pred against target, rows with rowmask[r] == 0
     * (rowmask NULL: every row) left out: *sum (host) = Σ f(p − t) in double, grad (may be
     * NULL) = f'(p − t)/count, 0 on rows left out. f per kind (enum cryo_nn_loss_kind,
     * nn_train.h). */
    int (*loss)(struct cryo_nn_ctx *, double *sum, float *grad, const float *pred,
                const float *target, const float *rowmask, int64_t rows, int cols, int kind,
                double beta, double count, struct cryo_error *);
    /* HistKL (hist.h's cryo_histkl_loss, the spec already checked) of pred against target,
     * n >= 1 values each: *loss (host) = D_JS(hist(pred) ‖ hist(target)); grad (may be NULL)
     * += gscale·∂D/∂pred as grad[i] += (float)(gscale·(double)g[i]), g[i] the float gradient
     * cryo_histkl_loss writes. CRYO_E_NUMERIC, as that function, for NaN/Inf input or a
     * histogram with no kernel mass in range. */
    int (*histkl)(struct cryo_nn_ctx *, double *loss, float *grad, const float *pred,
                  const float *target, size_t n, const struct cryo_hist_spec *spec, double gscale,
                  struct cryo_error *);

    /* token masks of the JEPA/MAE trainers (nn_train.h's cryo_nn_mask_patches, _patchify,
     * _collapse_stats; cpu_mask.c is the reference). The input is n tiles d × h × w × C
     * (channel fastest), cut into patches of p³ voxels: token k = (s·gd + z/p)·gh·gw +
     * (y/p)·gw + x/p of gd·gh·gw = (d/p)(h/p)(w/p) per tile, already checked to divide.
     * mask_patches: out = in with the voxels of tokens whose rowmask[k] != 0 set to 0
     * (out == in allowed). patchify: out row k, column ((a·p + b)·p + c)·C + ch = voxel
     * (a, b, c) of token k's patch, channel ch (rows of p³·C). */
    int (*mask_patches)(struct cryo_nn_ctx *, float *out, const float *in, const float *rowmask,
                        int n, int d, int h, int w, int C, int p, struct cryo_error *);
    int (*patchify)(struct cryo_nn_ctx *, float *out, const float *in, int n, int d, int h, int w,
                    int C, int p, struct cryo_error *);
    /* collapse statistics (nn_jepa.h) of x (n samples × per rows × F): each row layer-normed
     * (no affine, eps 1e-5, in double, rounded to float), then *tokens, *samples (host) */
    int (*collapse_stats)(struct cryo_nn_ctx *, double *tokens, double *samples, const float *x,
                          int n, size_t per, int F, struct cryo_error *);
    /* the JEPA predictor's mask-token rows (nn_train.h's cryo_nn_mask_rows, _rows_backward),
     * T rows of E, rowmask T floats: forward z[t,:] = token[:] + pos[t,:] (one float add)
     * where rowmask[t] != 0, other rows kept; backward dtoken[:] += g[t,:] over the masked
     * rows in increasing t, summed in float per column in that order (exact: the CPU's
     * row-by-row accumulate), then g[t,:] = 0 on the masked rows. */
    int (*mask_rows)(struct cryo_nn_ctx *, float *z, const float *rowmask, const float *token,
                     const float *pos, int64_t T, int E, struct cryo_error *);
    int (*mask_rows_backward)(struct cryo_nn_ctx *, float *dtoken, float *g, const float *rowmask,
                              int64_t T, int E, struct cryo_error *);

    /* data parallelism between processes, one device each (NULL: not offered) */
    int (*comm_id)(struct cryo_nn_ctx *, void *id, size_t len, struct cryo_error *);
    int (*comm_init)(struct cryo_nn_ctx *, const void *id, size_t len, int nranks, int rank,
                     struct cryo_error *);
    int (*allreduce)(struct cryo_nn_ctx *, float *x, size_t n, struct cryo_error *); /* sum, in place */
    int (*allreduce_host)(struct cryo_nn_ctx *, double *v, int n, struct cryo_error *);
};

/* The host's AdamW scalars for step t (>= 1) and the update itself on host memory: the CPU
 * backend's adamw op and cryo_adamw_update share them (optim.c). */
struct cryo_adamw;
void cryo_adamw_step_scalars(struct cryo_nn_adamw_step *s, const struct cryo_adamw *o, double lr,
                             int64_t t, int decay);
/* A trainer's gradient all-reduce (nn_train.h): in place when the reducer takes the
 * context's memory or the context is the CPU's, else through host copies. */
struct cryo_grad_reducer;
int cryo_nn_reduce_grads(struct cryo_nn_ctx *ctx, const struct cryo_grad_reducer *r, float *const *g,
                         const size_t *n, int ng, double *loss, double count, struct cryo_error *err);
void cryo_adamw_apply(float *param, const float *grad, float *m, float *v, size_t n,
                      const struct cryo_nn_adamw_step *s);

struct cryo_nn_ctx {
    const struct cryo_nn_ops *ops;
    enum cryo_nn_device device;
    int nthreads;    /* as requested (0 = OpenMP default) */
    enum cryo_nn_precision precision; /* read by the backend at every call */
    char name[160];  /* filled by the backend's init */
    void *state;     /* backend-private */
    void *ws;        /* grow-once scratch workspace (backend memory) */
    size_t ws_bytes;
    /* CUDA: the GPU asked for before ops->init (-1: the default rule of nn_backend.h,
     * $CRYO_NN_CUDA_DEVICE or the launcher's local rank); init replaces it with the GPU
     * taken and sets device_count to the GPUs visible. CPU: -1 and 0. */
    int device_index;
    int device_count;
};

/* The scratch workspace, at least `bytes` long (64-byte aligned). Grows (never shrinks)
 * when a call needs more; pointers from an earlier call are invalid after a later one. */
void *cryo_nn_workspace(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err);

/* A context on GPU `index` of the visible ones (device CUDA; -1: the default rule), else
 * as cryo_nn_ctx_create (index must be -1). */
int cryo_nn_ctx_create_at(struct cryo_nn_ctx **out, enum cryo_nn_device device, int index, int nthreads,
                          struct cryo_error *err);
/* Make ctx ready for the calling thread, before a thread other than its creator uses it:
 * the CPU backend sets that thread's OpenMP thread count (a per-thread setting) to the
 * context's. CUDA contexts need nothing: the plugin makes every call on its context's GPU
 * itself, from whatever thread. */
void cryo_nn_ctx_bind(struct cryo_nn_ctx *ctx);
void cryo_nn_cpu_bind(const struct cryo_nn_ctx *ctx);

/* The backends that are built. */
extern const struct cryo_nn_ops cryo_nn_cpu_ops;

/* 1 if this CPU runs oneDNN's bfloat16 kernels natively (AVX-512 BF16 or AMX, as oneDNN's
 * ISA detection sees it, so $ONEDNN_MAX_CPU_ISA caps it), else 0 with the reason written
 * into why[0..len) (libcore/cpu/cpu_backend.c). */
int cryo_nn_cpu_has_bf16(char *why, size_t len);

/* The CUDA backend is a separate shared object, libcryolvm-cuda.so (make CUDA=1), that
 * libcore dlopen()s the first time a CUDA context is asked for (backend_cuda.c). So a
 * binary never links libcudart/cuBLAS/cuDNN itself and runs where they are absent; only
 * `--device cuda` then fails. The plugin is C++/CUDA and does not see libcore's symbols
 * (tools link libcore statically), so libcore hands it the few services it needs. */
struct cryo_nn_wmsa_plan;
/* ABI 4: struct cryo_nn_ctx gained device_index / device_count (cuda:N); the ops table gained
 * histkl, mask_patches, patchify and collapse_stats. */
/* ABI 5: the ops table gained mask_rows and mask_rows_backward (the JEPA predictor's mask token). */
#define CRYO_NN_PLUGIN_ABI 5
struct cryo_nn_plugin_host {
    int abi;          /* CRYO_NN_PLUGIN_ABI */
    size_t ops_size;  /* sizeof(struct cryo_nn_ops) */
    size_t ctx_size;  /* sizeof(struct cryo_nn_ctx) */
    /* record `msg` (already formatted) with `status` in err; returns status */
    int (*fail)(struct cryo_error *err, int status, const char *msg);
    void *(*workspace)(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err);
    int (*wmsa_plan)(struct cryo_nn_wmsa_plan *p, const struct cryo_nn_wmsa *a,
                     struct cryo_error *err);
};
/* The one symbol the plugin exports: its ops table, or NULL when `host` does not match
 * what it was built against (then it writes why into why[0..len)). */
#define CRYO_NN_CUDA_ENTRY "cryo_nn_cuda_plugin"
typedef const struct cryo_nn_ops *(*cryo_nn_plugin_entry)(const struct cryo_nn_plugin_host *host,
                                                         char *why, size_t len);

/* Load the CUDA plugin once per process; CRYO_E_UNSUPPORTED naming what is missing. */
int cryo_nn_cuda_ops(const struct cryo_nn_ops **ops, struct cryo_error *err);

#endif
