/* nn_model.h — the CryoLVM backbone, SCUNet-3D, as an object a training loop can drive.
 *
 * Architecture (EMReady / SCUNet, in 3D; widths for the default config):
 *   head   Conv3d 3³ in→C0 (no bias)                                  level 0, box D
 *   enc.l  `depth` Swin-Conv blocks at C_l, then Conv3d k2 s2 C_l→C_{l+1} (no bias), l < L
 *   body   `depth` Swin-Conv blocks at C_L                               level L, box D/2^L
 *   dec.l  ConvTranspose3d k2 s2 C_{l+1}→C_l (no bias), then `depth` blocks at C_l, l = L−1..0
 *   tail   Conv3d 3³ C0→out (no bias)
 *   with C_l = width·2^l and additive skips exactly as SCUNet's forward:
 *   x1 = head(x0); x_{l+2} = enc.l(x_{l+1}); y = body(x_{L+1});
 *   y = dec.l(y + x_{l+2}) for l = L−1..0; out = tail(y + x1).
 * Default: width 32, L = 3 (32-64-128-256 channels, 48³→24³→12³→6³), depth 2, window 4,
 * head_dim 16, MLP ratio 4: 4,737,268 parameters (cryo_scunet_param_count).
 *
 * Swin-Conv block on x (T × C tokens, h = C/2), SCUNet's ConvTransBlock:
 *   a | b = split(conv1_1(x))                          1×1×1 conv with bias
 *   a' = a + FRN(conv3(FRN(conv3(a))))                  conv3: 3³ no bias. SCUNet has
 *        conv–ReLU–conv; the CryoLVM paper replaces ReLU by Filter Response Normalisation
 *        (with TLU) after each conv, which we follow (eps 1e-6, fixed).
 *   b' = b + WMSA(LN(b));  b'' = b' + MLP(LN(b'))      MLP: Linear h→4h, GELU, Linear 4h→h
 *   out = x + conv1_2(concat(a', b''))                 1×1×1 conv with bias
 * Blocks at even positions in a stage use plain windows ('W'), odd ones shifted ('SW').
 *
 * Grids that are not a multiple of the window (the 6³ bottleneck with window 4): the
 * attention layer (nn_layers.h) pads to a multiple of the window and masks the padded
 * keys, i.e. each axis of 6 is cut into windows of 4 and 2 real tokens; shifted windows
 * roll by window/2 and mask non-neighbours as Swin does. Axes shorter than the window use
 * one window of their length, unshifted. tests/ref/torch_scunet.py implements the same rule
 * independently; the parity tests run a 6³ bottleneck (4 + 2 along every axis, plain and
 * shifted) and axes shorter than the window.
 *
 * Memory (llm.c style): parameters, their gradients, activations and activation gradients
 * are each one allocation from the context (cryo_nn_alloc), sliced by a size table built
 * when the model is created for a fixed input box n × D × H × W (each a multiple of
 * 2^levels). In inference mode all blocks share one set of internal buffers (only block
 * outputs and skips persist) and no gradient memory is allocated.
 *
 * Layout: activations are NDHWC (nn_layers.h). A one-channel input volume Z×Y×X is already
 * in that layout. Parameters are in PyTorch layout under PyTorch state_dict names
 * ("enc.0.blocks.1.trans_block.msa.embedding_layer.weight"), the same names as the module
 * in tests/ref/torch_scunet.py.
 *
 * Ownership: the model owns its arenas and tables; it borrows the context, which must
 * outlive it. Errors: as nn_layers.h, plus CRYO_E_INVALID for a bad config or box and
 * CRYO_E_FORMAT for weights that do not fit the config.
 */
#ifndef CRYOLVM_NN_MODEL_H
#define CRYOLVM_NN_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"
#include "cryolvm/nn_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRYO_SCUNET_MAX_LEVELS 5

struct cryo_scunet_config {
    int in_ch, out_ch; /* 1, 1 */
    int width;         /* C0, 32; C_l = width·2^l; width/2 must be a multiple of head_dim */
    int levels;        /* downsamplings L, 3 (1..CRYO_SCUNET_MAX_LEVELS) */
    int depth;         /* Swin-Conv blocks per stage, 2 */
    int window;        /* attention window edge, 4 (even) */
    int head_dim;      /* 16 */
    int mlp_ratio;     /* 4 */
    double drop_path;  /* stochastic depth at the last block, 0 (off); block k of K in
                        * execution order drops its two attention-half residual branches
                        * with rate drop_path·k/(K−1), as SCUNet's linspace(0, rate, K) */
};

void cryo_scunet_config_default(struct cryo_scunet_config *c);
/* Apply "key=val,key=val" (keys as the struct fields: in_ch, out_ch, width, levels,
 * depth, window, head_dim, mlp_ratio, drop_path) on top of *c, then validate.
 * CRYO_E_INVALID naming the key for an unknown key, a bad number or an inconsistent config. */
int cryo_scunet_config_parse(struct cryo_scunet_config *c, const char *text, struct cryo_error *err);
int cryo_scunet_config_check(const struct cryo_scunet_config *c, struct cryo_error *err);
/* 1 when the two configs have the same values (compare these, never the bytes: 0 and -0). */
int cryo_scunet_config_equal(const struct cryo_scunet_config *a, const struct cryo_scunet_config *b);
/* "in_ch=1,out_ch=1,width=32,..." — parseable by cryo_scunet_config_parse. */
void cryo_scunet_config_format(const struct cryo_scunet_config *c, char *buf, size_t cap);

/* One named parameter tensor of the table (PyTorch name and shape). */
struct cryo_nn_param {
    char name[96];
    int ndim;
    int64_t shape[5];
    size_t offset, count; /* floats into the parameter arena */
    int decay;            /* 1: weight decay applies (conv/linear weights); 0: biases, norms */
    int init;             /* CRYO_NN_INIT_* */
    int64_t fan_in;       /* for the default initialisation */
};

enum { CRYO_NN_INIT_KAIMING = 0, CRYO_NN_INIT_BIAS, CRYO_NN_INIT_ONES, CRYO_NN_INIT_ZEROS,
       CRYO_NN_INIT_TRUNC02 };

/* Parameters of a config without building a model; CRYO_E_INVALID on a bad config. */
int cryo_scunet_param_count(const struct cryo_scunet_config *c, size_t *count, struct cryo_error *err);
/* Multiply-accumulates ×2 of one forward over an n × D × H × W box, counted analytically
 * from the layer shapes (convolutions, linears, attention matmuls; elementwise work left
 * out). A training step (forward + backward) costs about 3× this. */
int cryo_scunet_flops(const struct cryo_scunet_config *c, int n, int d, int h, int w,
                      double *flops, struct cryo_error *err);

struct cryo_scunet;

/* Build a model for inputs n × d × h × w × in_ch. training = 1 allocates gradients and
 * saves activations for backward. Parameters are uninitialised until _init or _load. */
int cryo_scunet_create(struct cryo_scunet **m, const struct cryo_scunet_config *c,
                       struct cryo_nn_ctx *ctx, int n, int d, int h, int w, int training,
                       struct cryo_error *err);
/* The encoder half only (head, encoder stages, bottleneck), for JEPA pre-training: the
 * output is the bottleneck, n × d/2^L × h/2^L × w/2^L × width·2^L (the JEPA features), and
 * backward takes its gradient. The parameter table is the full network's (decoder
 * parameters unused, their gradients stay zero), so checkpoints are interchangeable. */
int cryo_scunet_create_encoder(struct cryo_scunet **m, const struct cryo_scunet_config *c,
                               struct cryo_nn_ctx *ctx, int n, int d, int h, int w, int training,
                               struct cryo_error *err);
void cryo_scunet_free(struct cryo_scunet *m); /* NULL is a no-op */

const struct cryo_scunet_config *cryo_scunet_config(const struct cryo_scunet *m);
/* The parameter table; *n entries. */
const struct cryo_nn_param *cryo_scunet_params(const struct cryo_scunet *m, size_t *n);
size_t cryo_scunet_num_params(const struct cryo_scunet *m); /* floats in the arena */
float *cryo_scunet_param_data(struct cryo_scunet *m);        /* device memory */
float *cryo_scunet_grad_data(struct cryo_scunet *m);         /* NULL unless training */
/* Activation bytes held (for reports). */
size_t cryo_scunet_activation_bytes(const struct cryo_scunet *m);

/* PyTorch-like default initialisation from a seed (see cryo_nn_params_init). */
int cryo_scunet_init(struct cryo_scunet *m, uint64_t seed, struct cryo_error *err);

/* Input buffer to fill (device memory, n·d·h·w·in_ch floats) and output after forward
 * (n·d·h·w·out_ch; the bottleneck for an encoder, see above). */
float *cryo_scunet_input(struct cryo_scunet *m);
const float *cryo_scunet_output(const struct cryo_scunet *m);
size_t cryo_scunet_input_count(const struct cryo_scunet *m);  /* floats */
size_t cryo_scunet_output_count(const struct cryo_scunet *m); /* floats */
struct cryo_nn_ctx *cryo_scunet_ctx(const struct cryo_scunet *m);

int cryo_scunet_forward(struct cryo_scunet *m, struct cryo_error *err);
/* dout: ∂loss/∂output (device memory, like the output). Gradients are ACCUMULATED into the
 * gradient arena; call cryo_scunet_zero_grad first. Needs training = 1 and a forward
 * on the same input before. */
int cryo_scunet_backward(struct cryo_scunet *m, const float *dout, struct cryo_error *err);
int cryo_scunet_zero_grad(struct cryo_scunet *m, struct cryo_error *err);
/* Stochastic mode (training): drop-path active, drawing from *rng (caller-held splitmix64
 * state, advanced per block). Off (the default, rng NULL): drop-path is the identity, as
 * in PyTorch's eval mode. Only meaningful for a model built with training = 1. */
void cryo_scunet_set_stochastic(struct cryo_scunet *m, uint64_t *rng);

/* Profiling: time every layer call by kind (conv, linear, norm, GELU, attention, glue),
 * syncing the device after each. _profile(m, 1) starts (and zeroes), 0 stops; the report is
 * one line per kind with the summed time since the start. For benchmarks only. */
#define CRYO_SCUNET_PROF_KINDS 6
enum cryo_scunet_prof_kind {
    CRYO_SCUNET_PROF_CONV = 0, CRYO_SCUNET_PROF_LINEAR, CRYO_SCUNET_PROF_NORM, CRYO_SCUNET_PROF_GELU,
    CRYO_SCUNET_PROF_WMSA, CRYO_SCUNET_PROF_GLUE
};
void cryo_scunet_profile(struct cryo_scunet *m, int on);
void cryo_scunet_profile_report(const struct cryo_scunet *m, char *buf, size_t cap);

/* Parameter initialisation for a table (used by the model; exposed for tests):
 * kaiming-uniform (PyTorch's default for Conv/Linear: U(±1/√fan_in)), bias U(±1/√fan_in),
 * ones, zeros, normal std 0.02 truncated to [−2, 2] (PyTorch trunc_normal_(std=.02)). Host memory. Deterministic in
 * the seed (splitmix64 + Box–Muller). */
void cryo_nn_params_init(float *host, const struct cryo_nn_param *tab, size_t n, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
