/* nn_jepa.h — the JEPA pre-training parts on top of the SCUNet-3D encoder: patch
 * embeddings, the predictor with its mask token, and an MAE-style voxel head (baseline).
 *
 * Tokens: one per voxel of the encoder's bottleneck grid g = D/2^levels (per 2^levels-cubed
 * input patch: 8³ for the default network), features F = width·2^levels channels. For a
 * batch of N tiles there are T = N·g_d·g_h·g_w tokens, NDHWC order like every activation.
 *
 *   e    = Linear_{F→E}(features) + P            patch embedding, P the fixed 3D sin-cos code
 *   z_t  = mask_token + P_t  if token t is masked, else e_t
 *   x    = predictor blocks(z):  x += MHSA(LN(x)); x += MLP(LN(x))   (pre-norm ViT blocks,
 *          attention over all tokens of a tile, no position bias: P carries the positions)
 *   y    = LN(x)
 *   pred = Linear_{E→E}(y)                        JEPA: predicted target embeddings
 *   vox  = Linear_{E→p³·out}(y)                   MAE baseline: the voxels of each patch,
 *          p = 2^levels, voxel (i,j,k) (z, y, x) of the patch, channel ch, at column
 *          ((i·p + j)·p + k)·out_ch + ch
 * The caller picks the masked tokens (cryo_jepa_set_mask), compares pred with the target
 * encoder's embeddings (an EMA copy: no gradient) or vox with the clean voxels on the masked
 * tokens, and backpropagates dpred / dvox; d(features) then flows into the context encoder.
 *
 * Positional code P (MAE's 1D sin-cos per axis, concatenated z | y | x): E = 6·q; for axis
 * position u and i < q: P[u][i] = sin(u·ω_i), P[u][q + i] = cos(u·ω_i), ω_i = 10000^(−i/q).
 *
 * Attention over all tokens of a tile uses the window-attention layer with one window
 * covering the grid (window = the grid's largest side rounded up to even, at most 16, i.e.
 * a token grid up to 16³: input tiles up to 128³ for 3 levels) and a zero bias table.
 *
 * Parameter names match tests/ref/torch_scunet.py's JEPAPredictor:
 *   patch_embed.{weight,bias}  mask_token  blocks.I.norm1.{weight,bias}
 *   blocks.I.attn.qkv.{weight,bias}  blocks.I.attn.proj.{weight,bias}
 *   blocks.I.norm2.{weight,bias}  blocks.I.mlp.fc1.{weight,bias}  blocks.I.mlp.fc2.{weight,bias}
 *   norm.{weight,bias}  proj.{weight,bias}  mae.{weight,bias}
 *
 * Ownership and errors as nn_model.h.
 */
#ifndef CRYOLVM_NN_JEPA_H
#define CRYOLVM_NN_JEPA_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"
#include "cryolvm/jepa_mask.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/nn_train.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_jepa_config {
    int features;  /* F: encoder bottleneck channels (width·2^levels) */
    int patch;     /* p: input voxels per token edge (2^levels) */
    int out_ch;    /* channels the MAE head reconstructs (1) */
    int embed;     /* E, a multiple of 6 and of head_dim (192) */
    int depth;     /* predictor blocks (2) */
    int head_dim;  /* 32 */
    int mlp_ratio; /* 4 */
};

/* The default predictor for an encoder config. */
void cryo_jepa_config_default(struct cryo_jepa_config *j, const struct cryo_scunet_config *enc);
int cryo_jepa_config_check(const struct cryo_jepa_config *j, struct cryo_error *err);

struct cryo_jepa;

/* For N tiles whose token grid is gd × gh × gw. */
int cryo_jepa_create(struct cryo_jepa **j, const struct cryo_jepa_config *c, struct cryo_nn_ctx *ctx,
                     int n, int gd, int gh, int gw, int training, struct cryo_error *err);
void cryo_jepa_free(struct cryo_jepa *j);

const struct cryo_jepa_config *cryo_jepa_get_config(const struct cryo_jepa *j);
const struct cryo_nn_param *cryo_jepa_params(const struct cryo_jepa *j, size_t *n);
size_t cryo_jepa_num_params(const struct cryo_jepa *j);
float *cryo_jepa_param_data(struct cryo_jepa *j);
float *cryo_jepa_grad_data(struct cryo_jepa *j); /* NULL unless training */
int cryo_jepa_init(struct cryo_jepa *j, uint64_t seed, struct cryo_error *err);
int cryo_jepa_zero_grad(struct cryo_jepa *j, struct cryo_error *err);
size_t cryo_jepa_tokens(const struct cryo_jepa *j);

/* Features in (device, T × F): fill, or point at an encoder's output with _set_features. */
float *cryo_jepa_features(struct cryo_jepa *j);
/* mask: T host bytes, 1 = masked (replaced by the mask token). Uploaded as T floats (1/0)
 * into the predictor's own mask in context memory; a new predictor masks no token.
 * _set_rowmask copies that float mask (T floats, nonzero = masked) from context memory
 * instead: nothing goes up. */
int cryo_jepa_set_mask(struct cryo_jepa *j, const uint8_t *mask, struct cryo_error *err);
int cryo_jepa_set_rowmask(struct cryo_jepa *j, const float *rowmask, struct cryo_error *err);
/* The fixed positional code (device, T × E) and the plain patch embeddings e of the last
 * forward (T × E, without masking: the target branch uses these). */
const float *cryo_jepa_posenc(const struct cryo_jepa *j);
const float *cryo_jepa_embeddings(const struct cryo_jepa *j);

int cryo_jepa_forward(struct cryo_jepa *j, struct cryo_error *err);
const float *cryo_jepa_pred(const struct cryo_jepa *j); /* T × E */
const float *cryo_jepa_vox(const struct cryo_jepa *j);  /* T × p³·out_ch */
/* dpred (T × E) and/or dvox (T × p³·out_ch), either may be NULL; parameter gradients are
 * accumulated; d(features) is written to cryo_jepa_dfeatures(). */
int cryo_jepa_backward(struct cryo_jepa *j, const float *dpred, const float *dvox,
                       struct cryo_error *err);
const float *cryo_jepa_dfeatures(const struct cryo_jepa *j);

/* ---- pre-training step ------------------------------------------------------------------
 * Context branch: the input with the target patches zeroed → encoder → predictor (mask
 * tokens at the target positions). Target branch: the full input → target encoder → patch
 * embeddings (no gradient); its encoder and embedding are the EMA of the context ones
 * (e ← m·e + (1 − m)·θ after every step), as in I-JEPA.
 *   JEPA: loss = mean over target tokens and channels of ℓ(pred − LN(target embedding)),
 *         ℓ Smooth-L1 with β (I-JEPA, the CryoLVM paper; nn_train.h's definition) or the
 *         squared error; LN a per-token layer norm without affine parameters (as I-JEPA).
 *         One predictor pass predicts all target blocks together (I-JEPA runs one pass per
 *         block; with a convolutional encoder the context is one zeroed input anyway).
 *   MAE:  loss = mean over masked patches' voxels of (vox − clean voxels)² (MSE), the masked
 *         tokens a uniform random mask_ratio of each sample's tokens (MAE's rule).
 * Masks: jepa_mask.h (multi-block, from (seed, step, global sample index)).
 * Schedules over sched.total steps (total = 0: constant at the start values):
 *   lr       nn_train.h's warm-up + cosine, at t = step (1-based)
 *   wd       cryo_cosine_ramp(adamw.weight_decay, wd_end, t, total)   (I-JEPA: 0.04 → 0.4)
 *   momentum cryo_linear_ramp(ema_decay, ema_end, t − 1, total)        (I-JEPA: 0.996 → 1)
 * AdamW (decay on conv/linear weights only), clipping on the joint gradient norm of encoder
 * and predictor. Any device: the masked input, losses, AdamW and EMA run through the context
 * (the masks themselves are drawn on the host and go up as a float per token).
 * Collapse statistics of every step (on the device: nn_train.h's cryo_nn_collapse_stats), on
 * the target encoder's features of all tokens, each token's feature vector layer-normed (the
 * embeddings add a fixed positional code and so would never look collapsed):
 *   spread_tokens  mean over samples and channels of the standard deviation across a
 *                  sample's tokens (0 when every token embeds alike: collapse)
 *   spread_samples mean over channels of the standard deviation across samples of the
 *                  per-sample mean embedding (0 for one sample) */
enum cryo_jepa_mode { CRYO_JEPA_LATENT = 0, CRYO_JEPA_MAE = 1 };
enum cryo_jepa_loss { CRYO_JEPA_SMOOTH_L1 = 0, CRYO_JEPA_SQUARED = 1 };

struct cryo_jepa_train_opts {
    struct cryo_adamw adamw;  /* weight_decay: the start of the wd schedule (0.04) */
    struct cryo_lr_schedule sched;
    double clip;              /* max gradient norm, 0 = off */
    double ema_decay, ema_end;/* target encoder EMA momentum schedule, 0.996 → 1.0 */
    double wd_end;            /* 0.4 */
    enum cryo_jepa_loss loss; /* Smooth-L1 */
    double beta;              /* Smooth-L1 β, 1.0 */
    struct cryo_jepa_mask_opts mask;
    double mask_ratio;        /* MAE only: 0 < r < 1, 0.75 */
    enum cryo_jepa_mode mode;
    uint64_t seed;            /* drop-path RNG start and the mask seed */
};
void cryo_jepa_train_opts_default(struct cryo_jepa_train_opts *o);

struct cryo_jepa_trainer {
    struct cryo_scunet *enc, *tenc; /* context encoder (training), target encoder (EMA) */
    struct cryo_jepa *pred, *tpred; /* predictor (training), target embedding (EMA) */
    struct cryo_jepa_train_opts o;
    int64_t step;
    uint64_t rng;
    uint64_t sample_offset;         /* global index of this trainer's first sample in a batch
                                     * (data-parallel ranks; 0 alone) */
    struct cryo_grad_reducer reduce;/* data parallelism (nn_train.h); zero = off */
    float *m, *v;                   /* AdamW moments: encoder params, then predictor params
                                     * (context memory: on the GPU for a CUDA context) */
    float *dout, *gt;               /* context memory: d(loss)/d(prediction), targets (T rows) */
    float *gg;                      /* host scratch: the mask as T floats */
    uint8_t *mask;                  /* T, the last step's mask (1 = target) */
    float *rowmask, *lnstat, *ones; /* context memory: mask as floats (T), target layer-norm
                                     * statistics (2T), ones then zeros (2E) */
    struct cryo_nn_ctx *ctx;        /* borrowed */
    double last_loss, last_norm, last_lr, last_wd, last_ema;
    double spread_tokens, spread_samples;
    int n, d, h, w;
};

/* Build both branches for batches of n tiles d × h × w, initialise from `seed` (target =
 * context at start). */
int cryo_jepa_trainer_create(struct cryo_jepa_trainer **t, const struct cryo_scunet_config *enc,
                             const struct cryo_jepa_config *jc, const struct cryo_jepa_train_opts *o,
                             struct cryo_nn_ctx *ctx, int n, int d, int h, int w, uint64_t seed,
                             struct cryo_error *err);
void cryo_jepa_trainer_free(struct cryo_jepa_trainer *t);
/* One step on a batch (host, n × d × h × w × in_ch). */
int cryo_jepa_trainer_step(struct cryo_jepa_trainer *t, const float *input, struct cryo_error *err);
/* Validation: the loss of the current weights on a batch (host, n × d × h × w × in_ch) with
 * the masks of (mask_seed, step 0, samples first, first+1, ...), without drop-path (the
 * context encoder as at inference), nothing updated: the step, RNG, weights, moments and
 * last_* / spread statistics stay as they were. Fixed inputs and a fixed mask_seed give a
 * loss comparable across steps (jepa-train --val). */
int cryo_jepa_trainer_eval(struct cryo_jepa_trainer *t, const float *input, uint64_t mask_seed, uint64_t first,
                           double *loss, struct cryo_error *err);
/* Pre-training checkpoint: the context encoder under the backbone's own names (so the file
 * loads with cryo_scunet_load for fine-tuning), the predictor as "jepa.<name>", the target
 * branch as "ema.<name>" / "ema.jepa.<name>", AdamW moments as "optim.m.…"/"optim.v.…", and
 * metadata format, config, jepa (predictor config), step, rng. Atomic write. */
int cryo_jepa_trainer_save(struct cryo_jepa_trainer *t, const char *path, struct cryo_error *err);
/* The same with extra metadata entries first (a tool's provenance; the trainer's own keys
 * win on a clash). */
int cryo_jepa_trainer_save_meta(struct cryo_jepa_trainer *t, const char *path, const struct cryo_meta *extra,
                                struct cryo_error *err);
/* Restore into a trainer built with the same configs. CRYO_E_FORMAT naming file and tensor. */
int cryo_jepa_trainer_load(struct cryo_jepa_trainer *t, const struct cryo_safetensors *st,
                           struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
