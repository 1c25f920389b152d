/* nn_train.h — losses, AdamW, learning-rate schedule, clipping, EMA, checkpoints, and a
 * trainer that drives a SCUNet-3D (nn_model.h) with them.
 *
 * Definitions (all as PyTorch 1.13 computes them, checked in tests/unit/test_optim.c):
 *   MSE        mean((p − t)²);                         ∂/∂p = 2(p − t)/n
 *   SmoothL1   mean(0.5 d²/β if |d| < β else |d| − 0.5β), d = p − t (β = 0: L1)
 *   HistKL     cryo_histkl_loss (hist.h): Jensen–Shannon divergence of soft histograms
 *   combined   α·MSE + (1 − α)·HistKL
 *   AdamW      θ ← θ(1 − lr·λ); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 *              θ ← θ − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)          (t = step, from 1)
 *              λ applies only to tensors whose table entry has decay = 1 (conv and linear
 *              weights), never to biases, norm parameters or relative-position tables.
 *   schedule   lr(t) = lr·t/warmup for t ≤ warmup, then
 *              min_lr + ½(lr − min_lr)(1 + cos(π·(t − warmup)/(total − warmup))), t ≤ total
 *   clipping   norm = ‖g‖₂ over all parameters; if norm > max: g ← g·max/(norm + 1e-6)
 *              (torch.nn.utils.clip_grad_norm_)
 *   EMA        e ← d·e + (1 − d)·θ
 * The trainers run the losses (HistKL included: soft histograms, divergence and gradient
 * on the device), clipping, AdamW and EMA through the context (cryo_nn_* below), so on a
 * GPU the parameters, gradients, moments and EMA copy stay on the device; only the batch
 * goes up and the loss and norm come back.
 *
 * Checkpoints are safetensors files (safetensors.h) with the PyTorch names of the
 * parameter table; __metadata__ holds "format" = "cryolvm-scunet3d", "config" (as
 * cryo_scunet_config_format) and, for training state, "step" and "rng". Training
 * checkpoints add "optim.m.<name>", "optim.v.<name>" and "ema.<name>" tensors. A weights
 * file therefore loads straight into the PyTorch module of tests/ref/torch_scunet.py.
 */
#ifndef CRYOLVM_NN_TRAIN_H
#define CRYOLVM_NN_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"
#include "cryolvm/hist.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- losses (host memory; grad may be NULL, else grad[i] = ∂loss/∂pred[i]) ----------- */
int cryo_loss_mse(double *loss, float *grad, const float *pred, const float *target, size_t n,
                  struct cryo_error *err);
int cryo_loss_smooth_l1(double *loss, float *grad, const float *pred, const float *target,
                        size_t n, double beta, struct cryo_error *err);
/* α·MSE + (1 − α)·HistKL; 0 <= α <= 1. */
int cryo_loss_combined(double *loss, float *grad, const float *pred, const float *target,
                       size_t n, double alpha, const struct cryo_hist_spec *spec,
                       struct cryo_error *err);

/* ---- optimiser pieces (host memory) -------------------------------------------------- */
struct cryo_adamw {
    double lr, beta1, beta2, eps, weight_decay;
};
void cryo_adamw_default(struct cryo_adamw *o); /* PyTorch defaults: 1e-3, 0.9, 0.999, 1e-8, 1e-2 */
/* One AdamW update of n values at step t (>= 1) with learning rate lr and decay on/off. */
void cryo_adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                       const struct cryo_adamw *o, double lr, int64_t t, int decay);

struct cryo_lr_schedule {
    double lr, min_lr;
    int64_t warmup, total; /* total 0: constant after warm-up */
};
double cryo_lr_at(const struct cryo_lr_schedule *s, int64_t t);

/* Scale g in place so that ‖g‖₂ <= max_norm; returns the norm before clipping. */
double cryo_clip_grad_norm(float *g, size_t n, double max_norm);
/* e ← d·e + (1 − d)·p */
void cryo_ema_update(float *ema, const float *p, size_t n, double decay);
/* Schedules of a value from a (t = 0) to b (t >= total); total <= 0: a throughout.
 * cosine: b + (a − b)·½(1 + cos(π·t/total))  (I-JEPA's CosineWDSchedule, weight decay)
 * linear: a + (b − a)·t/total                 (I-JEPA's EMA momentum schedule) */
double cryo_cosine_ramp(double a, double b, int64_t t, int64_t total);
double cryo_linear_ramp(double a, double b, int64_t t, int64_t total);

/* ---- the same on a context's memory ---------------------------------------------------
 * Tensors live where the context's device addresses them (cryo_nn_alloc); scalars and
 * results are host values. Every backend computes what the host functions above compute
 * (the CPU backend calls them), so a trainer runs a whole step on the device and copies
 * only its inputs, its outputs and these scalars. */
enum cryo_nn_loss_kind { CRYO_NN_LOSS_MSE = 0, CRYO_NN_LOSS_SMOOTH_L1 = 1 };
int cryo_nn_adamw_update(struct cryo_nn_ctx *ctx, float *param, const float *grad, float *m, float *v,
                         size_t n, const struct cryo_adamw *o, double lr, int64_t t, int decay,
                         struct cryo_error *err);
int cryo_nn_ema_update(struct cryo_nn_ctx *ctx, float *ema, const float *p, size_t n, double decay,
                       struct cryo_error *err);
/* *out = Σ x[i]² (double) */
int cryo_nn_sum_squares(struct cryo_nn_ctx *ctx, double *out, const float *x, size_t n,
                        struct cryo_error *err);
/* x[i] *= c */
int cryo_nn_scale(struct cryo_nn_ctx *ctx, float *x, size_t n, float c, struct cryo_error *err);
/* cryo_clip_grad_norm on the device: the norm of the concatenation of ng tensors, each
 * scaled by max_norm/(norm + 1e-6) when max_norm > 0 and the norm exceeds it. */
int cryo_nn_clip_grad_norm(struct cryo_nn_ctx *ctx, float *const *g, const size_t *n, int ng,
                           double max_norm, double *norm, struct cryo_error *err);
/* A loss over rows × cols of pred against target (MSE or Smooth-L1 with beta), counting
 * only rows whose rowmask entry is nonzero (rowmask: `rows` floats on the device, or NULL
 * for all rows): *loss = Σ f(p − t) / count, grad (may be NULL) = f'(p − t)/count on
 * counted rows and 0 elsewhere; the sum in double in row order, so with count = the terms
 * counted it equals cryo_loss_mse/cryo_loss_smooth_l1 of the gathered rows.
 * CRYO_E_NUMERIC when the sum is not finite. */
int cryo_nn_loss_rows(struct cryo_nn_ctx *ctx, double *loss, float *grad, const float *pred,
                      const float *target, const float *rowmask, int64_t rows, int cols,
                      enum cryo_nn_loss_kind kind, double beta, double count, struct cryo_error *err);
/* HistKL (cryo_histkl_loss, hist.h) of n >= 1 values of pred against target, both on the
 * device: the soft histograms, the Jensen–Shannon divergence and its gradient are computed
 * there and only *loss (host) and the histograms' bins cross the bus. grad (may be NULL)
 * gets gscale·∂loss/∂pred added: grad[i] += (float)(gscale·g[i]) with g[i] the float
 * gradient cryo_histkl_loss writes, so a zeroed grad and gscale = 1 give that gradient.
 * The target histogram is recomputed at every call (treated as constant). CRYO_E_INVALID
 * for a bad spec or missing input, CRYO_E_NUMERIC as cryo_histkl_loss (NaN/Inf values, no
 * kernel mass in range), CRYO_E_UNSUPPORTED where the backend lacks the op. */
int cryo_nn_histkl_loss(struct cryo_nn_ctx *ctx, double *loss, float *grad, const float *pred,
                        const float *target, size_t n, const struct cryo_hist_spec *spec, double gscale,
                        struct cryo_error *err);

/* Token masks of the JEPA/MAE trainers on a context's memory (nn_jepa.h), so the batch goes up
 * once and the masked input, the MAE targets and the collapse statistics are made on the
 * device. `in` is n tiles d × h × w × C (channel fastest) cut into patches of p³ voxels
 * (d, h, w multiples of p): token k = (s·gd + z/p)·gh·gw + (y/p)·gw + x/p, gd·gh·gw =
 * (d/p)(h/p)(w/p) tokens per tile, T = n·gd·gh·gw in all.
 * mask_patches: out = in with every voxel (all C channels) of the tokens whose rowmask entry
 *   (T floats, context memory) is nonzero set to 0; out may be in.
 * patchify: out (T rows of p³·C) row k, column ((a·p + b)·p + c)·C + ch = voxel (a, b, c) of
 *   token k's patch, channel ch (MAE's target rows).
 * Both are copies: exact on every device. */
int cryo_nn_mask_patches(struct cryo_nn_ctx *ctx, float *out, const float *in, const float *rowmask, int n, int d,
                         int h, int w, int C, int p, struct cryo_error *err);
int cryo_nn_patchify(struct cryo_nn_ctx *ctx, float *out, const float *in, int n, int d, int h, int w, int C, int p,
                     struct cryo_error *err);
/* The JEPA predictor's mask token (nn_jepa.h) on T rows of E (context memory; rowmask: T
 * floats, nonzero = masked): mask_rows sets z[t,:] = token[:] + pos[t,:] (one float add) on
 * the masked rows and keeps the others; mask_rows_backward adds the masked rows of g to
 * dtoken, summed in float per column in increasing t (bit-identical on every backend), then
 * zeroes those rows of g. Two calls per pass instead of two per masked token. */
int cryo_nn_mask_rows(struct cryo_nn_ctx *ctx, float *z, const float *rowmask, const float *token, const float *pos,
                      int64_t T, int E, struct cryo_error *err);
int cryo_nn_mask_rows_backward(struct cryo_nn_ctx *ctx, float *dtoken, float *g, const float *rowmask, int64_t T,
                               int E, struct cryo_error *err);
/* nn_jepa.h's collapse statistics of x (n samples × per rows × F, context memory): every row
 * layer-normed (no affine, eps 1e-5; mean and variance in double, the result rounded to
 * float), then *tokens = mean over samples and channels of the standard deviation over a
 * sample's rows, *samples = mean over channels of the standard deviation over samples of the
 * per-sample means (0 for n = 1); sums in double in row order. Only the two doubles come
 * back to the host. */
int cryo_nn_collapse_stats(struct cryo_nn_ctx *ctx, double *tokens, double *samples, const float *x, int n,
                           size_t per, int F, struct cryo_error *err);

/* ---- weights -------------------------------------------------------------------------- */
/* Config of a weights file (its "config" metadata). CRYO_E_FORMAT naming the file if absent
 * or invalid. */
int cryo_scunet_config_from_file(const struct cryo_safetensors *st, struct cryo_scunet_config *c,
                                 struct cryo_error *err);
/* Check, before any network is built, that the file holds every tensor of config c's
 * table (F32, exact shape) and no foreign one: a lying config then fails here, in a few
 * bytes, instead of asking for the memory of the network it claims. CRYO_E_FORMAT naming
 * the file and the tensor. */
int cryo_scunet_weights_check(const struct cryo_safetensors *st, const struct cryo_scunet_config *c,
                              struct cryo_error *err);
/* Load every parameter by name (exact shape, F32). CRYO_E_FORMAT naming file and tensor;
 * CRYO_E_NUMERIC for a NaN or Inf weight. */
int cryo_scunet_load(struct cryo_scunet *m, const struct cryo_safetensors *st, struct cryo_error *err);
/* Write the weights (and nothing else) atomically. */
int cryo_scunet_save(struct cryo_scunet *m, const char *path, struct cryo_error *err);

/* ---- data parallelism ------------------------------------------------------------------ */
/* Called by a trainer step after backward, before clipping: grad[i] (n[i] floats, i < ngrad)
 * hold the gradient of this process's mean loss *loss over its `count` terms. The reducer
 * makes them the gradient and loss of the mean over every process's terms, in place, e.g.
 * g ← Σ_r count_r·g_r / Σ_r count_r with MPI_Allreduce (so K processes with batch B/K step
 * like one with batch B). Not set (fn NULL): single process. The mean-of-terms identity holds
 * for MSE, Smooth-L1 and the JEPA/MAE losses; HistKL's histograms stay per process. */
struct cryo_grad_reducer {
    int (*fn)(void *user, float *const *grad, const size_t *n, int ngrad, double *loss, double count,
              struct cryo_error *err);
    void *user;
    int on_device; /* 1: fn reduces the context's memory in place (NCCL on the GPU); 0: host
                    * memory (MPI): a trainer on a GPU stages the gradients through the host */
};

/* ---- trainer -------------------------------------------------------------------------- */
enum cryo_loss_kind { CRYO_LOSS_MSE = 0, CRYO_LOSS_SMOOTH_L1, CRYO_LOSS_COMBINED };

struct cryo_train_opts {
    struct cryo_adamw adamw;
    struct cryo_lr_schedule sched;
    double clip;           /* max gradient norm, 0 = off */
    double ema_decay;      /* 0 = no EMA copy */
    enum cryo_loss_kind loss;
    double smooth_l1_beta; /* 1.0 */
    double alpha;          /* combined loss weight of MSE */
    struct cryo_hist_spec hist;
    uint64_t seed;         /* RNG for anything random in training (drop-path, sampling) */
};
void cryo_train_opts_default(struct cryo_train_opts *o);

struct cryo_trainer {
    struct cryo_scunet *model; /* borrowed */
    struct cryo_train_opts o;
    int64_t step;              /* completed steps */
    uint64_t rng;
    float *m, *v, *ema;        /* nparams floats each (ema NULL when off), in the model's
                                * context memory (on the GPU for a CUDA model); owned */
    const uint8_t *frozen;     /* NULL, or one byte per parameter-table entry: 1 = frozen
                                * (no gradient in the norm, no AdamW update, moments kept);
                                * borrowed, set by the caller between steps */
    struct cryo_grad_reducer reduce; /* data parallelism; zero = off */
    double last_loss, last_norm, last_lr;
    float *dout, *target;      /* d(loss)/d(output) and the uploaded target (context memory) */
    struct cryo_nn_ctx *ctx;   /* the model's (borrowed; must outlive the trainer) */
};

int cryo_trainer_create(struct cryo_trainer **t, struct cryo_scunet *model,
                        const struct cryo_train_opts *o, struct cryo_error *err);
void cryo_trainer_free(struct cryo_trainer *t);
/* One step on a batch: input and target are host arrays of the model's input and output
 * shapes. forward, loss, zero_grad, backward, clip, AdamW at lr(step + 1), EMA. */
int cryo_trainer_step(struct cryo_trainer *t, const float *input, const float *target,
                      struct cryo_error *err);
/* Full training state (weights, moments, EMA, step, RNG, config), atomically. */
int cryo_trainer_save(struct cryo_trainer *t, const char *path, struct cryo_error *err);
/* The same with extra metadata entries first (a tool's provenance; the trainer's own keys
 * win on a clash). */
int cryo_trainer_save_meta(struct cryo_trainer *t, const char *path, const struct cryo_meta *extra,
                           struct cryo_error *err);
/* Restore what _save wrote into a trainer built for the same config. */
int cryo_trainer_load(struct cryo_trainer *t, const struct cryo_safetensors *st, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
