/* nn_backend.h — the compute context of the neural-network engine.
 *
 * Every layer call (nn_layers.h) takes a struct cryo_nn_ctx: it names the backend that
 * does the arithmetic (CPU now, CUDA later), holds that backend's state (oneDNN engine and
 * stream, a cache of oneDNN primitives keyed by shape, the thread count) and a grow-once
 * scratch workspace, so that no layer call allocates memory once shapes have been seen.
 *
 * The same layer calls run on every backend: behind the context sits a const table of ops
 * (libcore/nn/backend_impl.h, private). The CPU backend is always built and is the
 * reference. Asking a backend for an op it lacks returns CRYO_E_UNSUPPORTED with a message
 * naming op and backend; nothing ever falls back silently to another device.
 *
 * Memory: the float pointers passed to layer calls live where the context's device can
 * address them (host memory for CPU, device memory for CUDA). Allocate tensors, parameter
 * and gradient arenas with cryo_nn_alloc() and move data with cryo_nn_upload() /
 * cryo_nn_download() so the same code serves both. On the CPU backend cryo_nn_alloc is
 * cryo_alloc_big (64-byte aligned, huge pages for big buffers) and upload/download are
 * memcpy.
 *
 * Threads: a context is used by one thread at a time. cryo_nn_ctx_create(nthreads) sets
 * the OpenMP thread count of the calling thread (0 keeps the OpenMP default); oneDNN and
 * the engine's own loops use OpenMP. OpenBLAS is called from inside those threads, one
 * single-threaded call per thread, so the CPU context sets OpenBLAS to 1 thread: a
 * process-wide setting that other OpenBLAS users in the process see too.
 *
 * OpenBLAS kernels: Debian's OpenBLAS 0.3.21 may not know the CPU and fall back to its
 * Haswell (AVX2) kernels (MACHINE.md: half the speed of its SkylakeX ones). When
 * OPENBLAS_CORETYPE is not set in the environment and the CPU has AVX-512 F/BW/DQ/VL, the
 * first cryo_nn_ctx_create() re-selects the SkylakeX kernels (OpenBLAS's own dynamic-arch
 * re-initialisation, exactly what OPENBLAS_CORETYPE=SkylakeX does at load time). Set
 * OPENBLAS_CORETYPE yourself to override; cryo_nn_ctx_name() reports the choice.
 */
#ifndef CRYOLVM_NN_BACKEND_H
#define CRYOLVM_NN_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_nn_device {
    CRYO_NN_DEVICE_CPU = 0,
    CRYO_NN_DEVICE_CUDA = 1 /* the plugin libcryolvm-cuda.so (make CUDA=1), loaded at run time:
                             * without it, or without the CUDA libraries, cryo_nn_ctx_create
                             * returns CRYO_E_UNSUPPORTED naming what is missing; without a
                             * usable GPU or driver, CRYO_E_DEVICE. $CRYO_NN_CUDA_PLUGIN names
                             * the plugin's path (else it is looked for beside libcore). */
};

/* Arithmetic of convolutions and matrix products.
 *   FP32  true float32 on every backend (the default; the reference).
 *   TF32  the CUDA backend may run them on TF32 tensor cores (inputs rounded to a 10-bit
 *         mantissa, float32 accumulation: ~1e-3 relative); attention scores, softmax and
 *         normalisations stay float32. The CPU backend computes float32 regardless.
 *   BF16  bfloat16 operands (8-bit mantissa) with float32 accumulation, on each backend
 *         where it has native kernels; tensors stay float32 in memory on both:
 *         - CPU backend, forward passes only (inference): the (transposed) convolutions
 *           read their input and weights rounded to bfloat16 on oneDNN's AVX-512 BF16 /
 *           AMX kernels; their output, every other layer (linear, attention, FRN,
 *           LayerNorm, softmax, residual sums) and every backward stay float32. Needs a
 *           CPU with AVX-512 BF16 or AMX: elsewhere cryo_nn_set_precision refuses it
 *           (CRYO_E_UNSUPPORTED) rather than emulate it.
 *         - CUDA backend, forward and backward (training too): the (transposed)
 *           convolutions run on bf16 tensors in cuDNN, every direction (operands cast to
 *           bfloat16 in the workspace, round to nearest even; float32 accumulation; the
 *           result comes back in bfloat16, cuDNN having no bf16-in/float-out mode, and is
 *           cast to float32; bias in float32; the weight gradient added to the float32
 *           gradient), where cuDNN has a bf16 algorithm for the shape, else TF32; the
 *           linear layers (cuBLAS) run on bf16 tensor cores; the window attention's
 *           Q·Kᵀ, P·V and their backward products are strided-batched bf16 GEMMs (float32
 *           results) around a float32 softmax, bias and mask. Each op within 1e-2 of
 *           float32 (max error over max magnitude; typically 3e-3 to 7e-3, up to ~9e-3
 *           for the attention's relative-position-bias gradient), the whole SCUNet-3D
 *           forward ~2e-2 (tests/gpu/bf16_emulate.py).
 *           Normalisations stay float32; activations, weights, gradients and optimiser
 *           state stay float32 in memory (float32 master weights). The workspace grows by
 *           the bf16 copies of the operands (convolutions: half the bytes of a layer's
 *           float32 input plus output; attention: about twice its float32 scores). Not done
 *           there: bf16 storage.
 * A new context takes $CRYO_NN_PRECISION ("fp32", "tf32" or "bf16") when set, else FP32. */
enum cryo_nn_precision {
    CRYO_NN_PRECISION_FP32 = 0,
    CRYO_NN_PRECISION_TF32 = 1,
    CRYO_NN_PRECISION_BF16 = 2
};

/* The layers, for cryo_nn_supports(). */
enum cryo_nn_op {
    CRYO_NN_OP_CONV3D = 0,
    CRYO_NN_OP_CONVT3D,
    CRYO_NN_OP_LINEAR,
    CRYO_NN_OP_LAYERNORM,
    CRYO_NN_OP_FRN,
    CRYO_NN_OP_GELU,
    CRYO_NN_OP_RELU,
    CRYO_NN_OP_SOFTMAX,
    CRYO_NN_OP_WMSA,
    CRYO_NN_OP_CONCAT,
    CRYO_NN_OP_ADD,
    CRYO_NN_OP_ROLL,
    CRYO_NN_OP_DROPPATH,
    CRYO_NN_OP_COUNT
};

struct cryo_nn_ctx; /* opaque */

/* Create a context on `device` using `nthreads` threads (0: OpenMP default).
 * Errors: CRYO_E_UNSUPPORTED (device not built or its plugin/libraries missing),
 * CRYO_E_DEVICE (backend init failed, e.g. no GPU), CRYO_E_NOMEM, CRYO_E_INVALID
 * (nthreads < 0, or a bad $CRYO_NN_PRECISION). On failure *out is NULL. */
int cryo_nn_ctx_create(struct cryo_nn_ctx **out, enum cryo_nn_device device, int nthreads,
                       struct cryo_error *err);
/* The same from a tool's --device word: "cpu", "cuda" (the plugin and a GPU, or the error
 * saying which is missing: CRYO_E_UNSUPPORTED or CRYO_E_DEVICE; which GPU: the rule of
 * the data-parallel section below), "cuda:N" (GPU N of the visible ones, counted as the
 * CUDA runtime does, so after $CUDA_VISIBLE_DEVICES; $CRYO_NN_CUDA_DEVICE and the local
 * rank do not apply; CRYO_E_INVALID when there is no GPU N), or "auto" (cuda when the
 * plugin loads and a GPU answers, else cpu, silently; without an NVIDIA driver node,
 * /dev/nvidiactl or /proc/driver/nvidia, the plugin is not even loaded). CRYO_E_INVALID
 * for another word, or an N that is not decimal digits below 1024. A CUDA context may be
 * used from any thread (one at a time): each of its calls runs on its own GPU, so one
 * thread may hold contexts on several GPUs. Device lists for inference: nn_infer.h. */
int cryo_nn_ctx_create_named(struct cryo_nn_ctx **out, const char *device, int nthreads,
                             struct cryo_error *err);
/* Releases the workspace, the primitive cache and the backend state. NULL is a no-op.
 * Tensors allocated with cryo_nn_alloc() are the caller's and must be freed before. */
void cryo_nn_ctx_free(struct cryo_nn_ctx *ctx);

enum cryo_nn_device cryo_nn_ctx_device(const struct cryo_nn_ctx *ctx);
/* A human-readable description, e.g. "cpu: 2 threads, oneDNN 2.6.3, OpenBLAS SkylakeX". */
const char *cryo_nn_ctx_name(const struct cryo_nn_ctx *ctx);
/* Errors: CRYO_E_INVALID for an unknown precision; CRYO_E_UNSUPPORTED for BF16 on a
 * device or CPU that cannot run it (the message says why). */
int cryo_nn_set_precision(struct cryo_nn_ctx *ctx, enum cryo_nn_precision p, struct cryo_error *err);
enum cryo_nn_precision cryo_nn_get_precision(const struct cryo_nn_ctx *ctx);

/* 1 if the backend implements both forward and backward of `op`, else 0. */
int cryo_nn_supports(const struct cryo_nn_ctx *ctx, enum cryo_nn_op op);
/* Bytes currently held by the scratch workspace (grows to the largest request, never
 * shrinks until cryo_nn_ctx_free). */
size_t cryo_nn_workspace_bytes(const struct cryo_nn_ctx *ctx);

/* Device memory for `n` floats, 64-byte aligned, not initialised. NULL + CRYO_E_NOMEM
 * recorded on failure or overflow. Release with cryo_nn_free (NULL is a no-op). */
float *cryo_nn_alloc(struct cryo_nn_ctx *ctx, size_t n, struct cryo_error *err);
void cryo_nn_free(struct cryo_nn_ctx *ctx, float *p);
/* host -> device, device -> host, device -> device (n floats; regions must not overlap). */
int cryo_nn_upload(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                   struct cryo_error *err);
int cryo_nn_download(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                     struct cryo_error *err);
int cryo_nn_copy(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                 struct cryo_error *err);
/* p[0..n) = value (e.g. zeroing gradients before a step). */
int cryo_nn_fill(struct cryo_nn_ctx *ctx, float *p, float value, size_t n,
                 struct cryo_error *err);
/* dst[i] += src[i]: gradient accumulation where a tensor feeds two layers. */
int cryo_nn_accumulate(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                       struct cryo_error *err);
/* Wait until queued work is done (no-op on CPU, which is synchronous). */
int cryo_nn_sync(struct cryo_nn_ctx *ctx, struct cryo_error *err);

/* ---- data parallelism between processes, one GPU each (CUDA: NCCL, loaded at run time) ----
 * Rank 0 makes an id, the launcher's channel (MPI_Bcast) hands it to every rank, each
 * calls cryo_nn_comm_init with it once; then cryo_nn_allreduce_sum sums a tensor in place
 * over the ranks (context memory) and cryo_nn_allreduce_sum_host a few host doubles.
 * CRYO_E_UNSUPPORTED on a backend without it (CPU: use MPI on host memory) or without
 * libnccl.so.2. Which GPU a rank takes: $CRYO_NN_CUDA_DEVICE if set, else the launcher's
 * local rank (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID, LOCAL_RANK)
 * modulo the GPUs visible, else the first. */
#define CRYO_NN_COMM_ID_BYTES 128
int cryo_nn_comm_id(struct cryo_nn_ctx *ctx, unsigned char id[CRYO_NN_COMM_ID_BYTES], struct cryo_error *err);
int cryo_nn_comm_init(struct cryo_nn_ctx *ctx, const unsigned char id[CRYO_NN_COMM_ID_BYTES], int nranks,
                      int rank, struct cryo_error *err);
int cryo_nn_allreduce_sum(struct cryo_nn_ctx *ctx, float *x, size_t n, struct cryo_error *err);
int cryo_nn_allreduce_sum_host(struct cryo_nn_ctx *ctx, double *v, int n, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
