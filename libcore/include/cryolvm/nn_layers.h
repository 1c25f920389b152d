/* nn_layers.h — the layers of the CryoLVM engine, each a forward/backward pair.
 *
 * Written the way llm.c writes layers: every call lists outputs first, then inputs, then
 * weights, then dimensions; float32 throughout; checked against PyTorch 1.13 and finite
 * differences (tests/unit/test_layers.c, tests/ref/torch_layers.py). Arithmetic runs on the
 * backend of the context (nn_backend.h); the pointers are that backend's memory.
 *
 * Activation layout (one for the whole engine): channels-last, N × D × H × W × C with C
 * fastest ("NDHWC"). A grid of T = N·D·H·W voxels is therefore a row-major T × C matrix of
 * tokens, which is what linear, LayerNorm and attention consume directly; convolutions
 * read and write the same layout (oneDNN "ndhwc"). Volumes from volume.h (Z×Y×X, X
 * fastest) with C = 1 are already in this layout with D = Z, H = Y, W = X.
 *
 * Weights are in PyTorch's layout, so safetensors files and the parity test compare
 * directly, and gradients come out in the same layout:
 *   Conv3d           weight Cout × Cin × k × k × k, bias Cout
 *   ConvTranspose3d  weight Cin × Cout × k × k × k, bias Cout
 *   Linear           weight Cout × Cin (out × in), bias Cout
 *   LayerNorm / FRN  per-channel vectors of C
 *
 * Gradient convention (read this):
 *   - gradients w.r.t. inputs (dinp, da, db) are OVERWRITTEN;
 *   - gradients w.r.t. parameters (dweight, dbias, dgamma, ...) are ACCUMULATED (+=), so a
 *     training step zeroes them once (cryo_nn_fill) and micro-batches add up;
 *   - any gradient pointer may be NULL when that gradient is not wanted (e.g. dinp of the
 *     first layer, or frozen parameters); the work for it is then skipped;
 *   - where a tensor feeds two layers, add the second contribution with cryo_nn_accumulate.
 * In-place (out == inp, dinp == dout) is allowed only where a call says so.
 *
 * Saved activations: a forward that needs more than its input for the backward writes it
 * to caller-provided buffers (LayerNorm mean/rstd, FRN rstd, the attention cache, the
 * drop-path mask), like llm.c's activation arena. Passing NULL for them is inference mode.
 * Scratch memory comes from the context's grow-once workspace, never from malloc per call.
 *
 * Errors (every call returns 0 or a negative CRYO_E_*):
 *   CRYO_E_INVALID      NULL required pointer, non-positive or inconsistent dimension;
 *   CRYO_E_UNSUPPORTED  the context's backend lacks this op, or a geometry it cannot run;
 *   CRYO_E_NOMEM        the workspace could not grow, or a size overflows;
 *   CRYO_E_DEVICE       a backend library call (oneDNN, later cuDNN/cuBLAS) failed.
 * On error the outputs are unspecified.
 */
#ifndef CRYOLVM_NN_LAYERS_H
#define CRYOLVM_NN_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"
#include "cryolvm/nn_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- 3D convolution and transposed convolution -------------------------------------
 * Geometry of one (transposed) convolution. The input grid is n × d × h × w × cin; kernel,
 * stride and padding are the same along the three axes (k=3 s=1 p=1, k=2 s=2 p=0, k=1
 * s=1 p=0 are the ones the network uses; any k >= 1, s >= 1, 0 <= p < k works).
 * Output grid: convolution  o = (i + 2p - k) / s + 1   (must be >= 1)
 *              transposed   o = (i - 1) * s - 2p + k
 * bias: 1 if the layer has a bias vector of cout, 0 if not (then bias/dbias are ignored).
 * Parameter tensors are as in PyTorch (see above). */
struct cryo_nn_conv3d {
    int n, d, h, w; /* input grid */
    int cin, cout;
    int k, stride, pad;
    int bias;
};

/* Output grid of a convolution (transposed = 0) or transposed convolution (= 1).
 * Errors: CRYO_E_INVALID when the geometry is not valid. */
int cryo_nn_conv3d_out_dims(const struct cryo_nn_conv3d *g, int transposed, int *od, int *oh,
                            int *ow, struct cryo_error *err);

/* out: n × od × oh × ow × cout;  inp: n × d × h × w × cin. */
int cryo_nn_conv3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp,
                           const float *weight, const float *bias,
                           const struct cryo_nn_conv3d *g, struct cryo_error *err);
int cryo_nn_conv3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight,
                            const struct cryo_nn_conv3d *g, struct cryo_error *err);

/* Transposed convolution (PyTorch ConvTranspose3d, output_padding 0).
 * out: n × od × oh × ow × cout;  inp: n × d × h × w × cin;  weight cin × cout × k³. */
int cryo_nn_convt3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp,
                            const float *weight, const float *bias,
                            const struct cryo_nn_conv3d *g, struct cryo_error *err);
int cryo_nn_convt3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight,
                             float *dbias, const float *dout, const float *inp,
                             const float *weight, const struct cryo_nn_conv3d *g,
                             struct cryo_error *err);

/* ---- Linear over tokens ---------------------------------------------------------------
 * out[t, o] = sum_i inp[t, i] * weight[o, i] + bias[o]  (bias may be NULL).
 * out: T × cout;  inp: T × cin;  weight: cout × cin. T < 2^31 (BLAS dimensions are 32-bit;
 * CRYO_E_UNSUPPORTED beyond), likewise the token count of window attention. */
int cryo_nn_linear_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp,
                           const float *weight, const float *bias, int64_t T, int cin, int cout,
                           struct cryo_error *err);
int cryo_nn_linear_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight, int64_t T,
                            int cin, int cout, struct cryo_error *err);

/* ---- LayerNorm over channels ---------------------------------------------------------
 * out = (inp - mean) * rstd * gamma + beta per token, biased variance, rstd = 1/sqrt(var+eps)
 * (PyTorch nn.LayerNorm(C, eps); its default eps is 1e-5).
 * out, inp: T × C;  mean, rstd: T (saved for backward; may be NULL in inference);
 * gamma, beta: C. out == inp allowed in forward. */
int cryo_nn_layernorm_forward(struct cryo_nn_ctx *ctx, float *out, float *mean, float *rstd,
                              const float *inp, const float *gamma, const float *beta, int64_t T,
                              int C, float eps, struct cryo_error *err);
int cryo_nn_layernorm_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma,
                               float *dbeta, const float *dout, const float *inp,
                               const float *gamma, const float *mean, const float *rstd,
                               int64_t T, int C, struct cryo_error *err);

/* ---- Filter Response Normalisation with TLU (Singh & Krishnan 2020) -------------------
 * Per sample n and channel c, over the S = D·H·W voxels of the sample:
 *   nu2 = mean_s x², y = gamma·x·rsqrt(nu2 + eps) + beta, out = max(y, tau).
 * eps is FIXED (a positive constant passed by the caller, not learned; the paper's default
 * 1e-6; its learnable eps matters only for 1×1 spatial extents, which a 3D volume never
 * has). At ties y == tau the gradient goes to y (measure-zero event).
 * out, inp: N × S × C (NDHWC);  rstd: N × C saved for backward (may be NULL in inference);
 * gamma, beta, tau: C. out == inp allowed in forward. */
int cryo_nn_frn_forward(struct cryo_nn_ctx *ctx, float *out, float *rstd, const float *inp,
                        const float *gamma, const float *beta, const float *tau, int N, int64_t S,
                        int C, float eps, struct cryo_error *err);
int cryo_nn_frn_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                         float *dtau, const float *dout, const float *inp, const float *gamma,
                         const float *beta, const float *tau, const float *rstd, int N, int64_t S,
                         int C, struct cryo_error *err);

/* ---- Elementwise activations ---------------------------------------------------------
 * GELU, exact erf form (PyTorch's default): out = x·Φ(x) = 0.5·x·(1 + erf(x/√2)).
 * ReLU: out = max(x, 0), gradient 0 at x == 0 (as PyTorch).
 * n elements; out == inp and dinp == dout allowed. */
int cryo_nn_gelu_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, size_t n,
                         struct cryo_error *err);
int cryo_nn_gelu_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                          const float *inp, size_t n, struct cryo_error *err);
int cryo_nn_relu_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, size_t n,
                         struct cryo_error *err);
int cryo_nn_relu_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                          const float *inp, size_t n, struct cryo_error *err);

/* ---- Softmax over the last axis ------------------------------------------------------
 * out, inp: rows × cols; backward needs the forward's out. Rows whose inputs are all -inf
 * give zeros (never NaN). out == inp and dinp == dout allowed. */
int cryo_nn_softmax_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int64_t rows,
                            int cols, struct cryo_error *err);
int cryo_nn_softmax_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                             const float *out, int64_t rows, int cols, struct cryo_error *err);

/* ---- 3D window multi-head self-attention (Swin / SCUNet "WMSA") ----------------------
 * The grid n × d × h × w × c is cut into windows of `window`³ voxels (4 in CryoLVM); in
 * each window every token attends to every token of the same window:
 *   qkv = inp · Wqkv^T + bqkv                        (Linear c -> 3c; channel order
 *         [q heads | k heads | v heads], head j at channels j·hd..(j+1)·hd-1 of each part)
 *   a   = softmax(q·k^T / sqrt(hd) + B[head, Δ] + mask)   per window and head
 *   y   = a·v, heads concatenated;  out = y · Wproj^T + bproj   (Linear c -> c)
 * hd = head_dim (16 in CryoLVM), heads = c / hd.
 * Relative-position bias B: rel_bias is heads × (2·window−1)³, indexed like SCUNet's
 *   relative_position_params[head, dz, dy, dx] with dz = z_query − z_key + window − 1 (same
 *   for y, x), i.e. the (2w−1)³ table of the Swin papers.
 * Shifted windows (shifted = 1, SCUNet type "SW"): the grid is rolled by −window/2 along
 *   each axis before partition (torch.roll), rolled back by +window/2 after, and tokens
 *   that are not neighbours in the unrolled grid are masked (−inf) as Swin defines it:
 *   along an axis of extent L, rolled positions < L − window/2 form one region and the
 *   rest another; two tokens of a window attend to each other only if they are in the same
 *   region along every axis. For L a multiple of the window this is exactly SCUNet's
 *   generate_mask.
 * Small and ragged grids: along an axis with L < window the window shrinks to L and there
 *   is no shift along that axis. When L > window and L is not a multiple of it, the last
 *   window along that axis is partial (L mod window tokens): attention is over the real
 *   tokens only (the same as zero-padding to a multiple and masking the padded keys).
 * `cache` saves what the backward needs (qkv, attention probabilities, y); its size in
 * floats is cryo_nn_wmsa_cache_size(). cache == NULL is inference mode (scratch from the
 * workspace). out must not alias inp. */
struct cryo_nn_wmsa {
    int n, d, h, w; /* grid */
    int c;          /* channels = heads · head_dim */
    int head_dim;   /* 16 */
    int window;     /* 4; even */
    int shifted;    /* 0: plain windows, 1: shifted windows */
};

/* Floats of the attention cache for this geometry; 0 and CRYO_E_INVALID / CRYO_E_NOMEM on
 * a bad geometry or overflow. */
size_t cryo_nn_wmsa_cache_size(const struct cryo_nn_wmsa *a, struct cryo_error *err);
/* out, inp: n·d·h·w × c;  qkv_weight: 3c × c;  qkv_bias: 3c;  rel_bias: heads × (2w−1)³;
 * proj_weight: c × c;  proj_bias: c. */
int cryo_nn_wmsa_forward(struct cryo_nn_ctx *ctx, float *out, float *cache, const float *inp,
                         const float *qkv_weight, const float *qkv_bias, const float *rel_bias,
                         const float *proj_weight, const float *proj_bias,
                         const struct cryo_nn_wmsa *a, struct cryo_error *err);
int cryo_nn_wmsa_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dqkv_weight,
                          float *dqkv_bias, float *drel_bias, float *dproj_weight,
                          float *dproj_bias, const float *dout, const float *inp,
                          const float *cache, const float *qkv_weight, const float *rel_bias,
                          const float *proj_weight, const struct cryo_nn_wmsa *a,
                          struct cryo_error *err);

/* ---- Channel split / concat (torch.split / torch.cat along C) -------------------------
 * out: T × (ca + cb);  a: T × ca;  b: T × cb. Each is the other's backward.
 * concat_backward: da or db may be NULL (not wanted); split_backward: a NULL da or db counts
 * as zeros (that branch did not reach the loss). */
int cryo_nn_concat_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b,
                           int64_t T, int ca, int cb, struct cryo_error *err);
int cryo_nn_concat_backward(struct cryo_nn_ctx *ctx, float *da, float *db, const float *dout,
                            int64_t T, int ca, int cb, struct cryo_error *err);
int cryo_nn_split_forward(struct cryo_nn_ctx *ctx, float *a, float *b, const float *inp,
                          int64_t T, int ca, int cb, struct cryo_error *err);
int cryo_nn_split_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *da,
                           const float *db, int64_t T, int ca, int cb, struct cryo_error *err);

/* ---- Residual add ----------------------------------------------------------------------
 * out = a + b (n elements; out may alias a or b). Backward: da = dout, db = dout (copies;
 * either may be NULL, or equal to dout, which costs nothing). */
int cryo_nn_add_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b,
                        size_t n, struct cryo_error *err);
int cryo_nn_add_backward(struct cryo_nn_ctx *ctx, float *da, float *db, const float *dout,
                         size_t n, struct cryo_error *err);

/* ---- Cyclic shift (torch.roll over D, H, W) ------------------------------------------
 * out[n, (z+sd) mod D, (y+sh) mod H, (x+sw) mod W, :] = inp[n, z, y, x, :]; shifts may be
 * negative. Backward rolls by the opposite shifts. out must not alias inp. */
int cryo_nn_roll_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int n, int d,
                         int h, int w, int c, int sd, int sh, int sw, struct cryo_error *err);
int cryo_nn_roll_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout, int n, int d,
                          int h, int w, int c, int sd, int sh, int sw, struct cryo_error *err);

/* ---- Drop-path (stochastic depth, per sample; timm's drop_path) ----------------------
 * Training: sample i is kept with probability 1 − p and then scaled by 1/(1 − p), else
 * zeroed; the per-sample factors are written to `mask` (HOST memory, N floats) and drawn
 * from *rng, a caller-held 64-bit state advanced by the call (splitmix64, so a run is
 * reproducible from its seed). training == 0 or p == 0: identity, mask all 1, rng untouched.
 * out, inp: N × per_sample; out == inp and dinp == dout allowed. 0 <= p < 1. */
int cryo_nn_droppath_forward(struct cryo_nn_ctx *ctx, float *out, float *mask, const float *inp,
                             int N, size_t per_sample, float p, uint64_t *rng, int training,
                             struct cryo_error *err);
int cryo_nn_droppath_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout,
                              const float *mask, int N, size_t per_sample,
                              struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
