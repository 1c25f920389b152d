/* backend.c — the engine's context: picks a backend's ops table, owns the scratch
 * workspace, and forwards memory calls to the backend.
 *
 * The workspace grows to the largest size any call has asked for and then stays, so after
 * the first forward/backward of a given network no call allocates (MACHINE.md: fresh pages
 * cost ~0.3 GB/s on first touch here; a reused buffer costs nothing).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_backend.h"
#include "nn/backend_impl.h"

static const struct cryo_nn_ops *backend_ops(enum cryo_nn_device device)
{
    switch (device) {
    case CRYO_NN_DEVICE_CPU:
        return &cryo_nn_cpu_ops;
    default:
        return NULL;
    }
}

int cryo_nn_ctx_create_at(struct cryo_nn_ctx **out, enum cryo_nn_device device, int index, int nthreads,
                          struct cryo_error *err)
{
    if (!out)
        return cryo_fail(err, CRYO_E_INVALID, "nn context: NULL output pointer");
    *out = NULL;
    if (nthreads < 0)
        return cryo_fail(err, CRYO_E_INVALID, "nn context: thread count %d is negative", nthreads);
    if (index < -1 || (index >= 0 && device != CRYO_NN_DEVICE_CUDA))
        return cryo_fail(err, CRYO_E_INVALID, "nn context: device index %d for a device without indices", index);
    enum cryo_nn_precision prec = CRYO_NN_PRECISION_FP32;
    const char *pe = getenv("CRYO_NN_PRECISION");
    if (pe && *pe) {
        if (strcmp(pe, "tf32") == 0)
            prec = CRYO_NN_PRECISION_TF32;
        else if (strcmp(pe, "bf16") == 0)
            prec = CRYO_NN_PRECISION_BF16;
        else if (strcmp(pe, "fp32") != 0)
            return cryo_fail(err, CRYO_E_INVALID, "nn context: CRYO_NN_PRECISION=%s: must be fp32, tf32 or bf16", pe);
    }
    const struct cryo_nn_ops *ops = backend_ops(device);
    if (!ops && device == CRYO_NN_DEVICE_CUDA)
        CRYO_TRY(cryo_nn_cuda_ops(&ops, err));
    if (!ops)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "nn context: device %s is not built in",
                         device == CRYO_NN_DEVICE_CUDA ? "cuda" : "(unknown)");
    struct cryo_nn_ctx *ctx = cryo_alloc_array(1, sizeof *ctx, err);
    if (!ctx)
        return CRYO_E_NOMEM;
    ctx->ops = ops;
    ctx->device = device;
    ctx->nthreads = nthreads;
    ctx->precision = CRYO_NN_PRECISION_FP32;
    ctx->device_index = index;
    ctx->device_count = 0;
    int s = ops->init(ctx, err);
    if (s < 0) {
        free(ctx);
        return s;
    }
    s = cryo_nn_set_precision(ctx, prec, err);
    if (s < 0) {
        cryo_error_prefix(err, "nn context: CRYO_NN_PRECISION");
        cryo_nn_ctx_free(ctx);
        return s;
    }
    *out = ctx;
    return CRYO_OK;
}

int cryo_nn_ctx_create(struct cryo_nn_ctx **out, enum cryo_nn_device device, int nthreads,
                       struct cryo_error *err)
{
    return cryo_nn_ctx_create_at(out, device, -1, nthreads, err);
}

/* "cuda:N": N, decimal digits only, below 1024 (more GPUs than any node has); -1 else. */
static int cuda_index(const char *device)
{
    if (strncmp(device, "cuda:", 5) != 0)
        return -1;
    const char *d = device + 5;
    int v = 0;
    if (!*d)
        return -1;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || v >= 1024)
            return -1;
        v = 10 * v + (*d - '0');
    }
    return v < 1024 ? v : -1;
}

int cryo_nn_ctx_create_named(struct cryo_nn_ctx **out, const char *device, int nthreads,
                             struct cryo_error *err)
{
    if (out)
        *out = NULL;
    if (device && strncmp(device, "cuda:", 5) == 0) {
        int index = cuda_index(device);
        if (index < 0)
            return cryo_fail(err, CRYO_E_INVALID, "nn context: device '%s': '%s' is not a GPU index (0, 1, ...)",
                             device, device + 5);
        return cryo_nn_ctx_create_at(out, CRYO_NN_DEVICE_CUDA, index, nthreads, err);
    }
    if (!device || (strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "auto")))
        return cryo_fail(err, CRYO_E_INVALID, "nn context: device '%s' is not cpu, cuda, cuda:N or auto",
                         device ? device : "(null)");
    if (strcmp(device, "cpu") == 0)
        return cryo_nn_ctx_create(out, CRYO_NN_DEVICE_CPU, nthreads, err);
    if (strcmp(device, "cuda") == 0)
        return cryo_nn_ctx_create(out, CRYO_NN_DEVICE_CUDA, nthreads, err);
    /* auto: no NVIDIA driver node, no GPU: skip loading the plugin and its large libraries
     * (most of a second) on the machines that have none */
    if (access("/dev/nvidiactl", F_OK) != 0 && access("/proc/driver/nvidia/version", F_OK) != 0)
        return cryo_nn_ctx_create(out, CRYO_NN_DEVICE_CPU, nthreads, err);
    struct cryo_error quiet = {0}; /* the reason cuda is out does not matter */
    if (cryo_nn_ctx_create(out, CRYO_NN_DEVICE_CUDA, nthreads, &quiet) == CRYO_OK)
        return CRYO_OK;
    if (quiet.status == CRYO_E_INVALID) /* a bad $CRYO_NN_PRECISION fails on every device */
        return cryo_fail(err, quiet.status, "%s", quiet.msg);
    return cryo_nn_ctx_create(out, CRYO_NN_DEVICE_CPU, nthreads, err);
}

void cryo_nn_ctx_free(struct cryo_nn_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->ws)
        ctx->ops->free(ctx, ctx->ws);
    ctx->ops->fini(ctx);
    free(ctx);
}

void cryo_nn_ctx_bind(struct cryo_nn_ctx *ctx)
{
    if (ctx && ctx->device == CRYO_NN_DEVICE_CPU)
        cryo_nn_cpu_bind(ctx);
}

enum cryo_nn_device cryo_nn_ctx_device(const struct cryo_nn_ctx *ctx)
{
    return ctx ? ctx->device : CRYO_NN_DEVICE_CPU;
}

const char *cryo_nn_ctx_name(const struct cryo_nn_ctx *ctx) { return ctx ? ctx->name : "(none)"; }

int cryo_nn_set_precision(struct cryo_nn_ctx *ctx, enum cryo_nn_precision p, struct cryo_error *err)
{
    if (!ctx)
        return cryo_fail(err, CRYO_E_INVALID, "nn precision: NULL context");
    if (p != CRYO_NN_PRECISION_FP32 && p != CRYO_NN_PRECISION_TF32 && p != CRYO_NN_PRECISION_BF16)
        return cryo_fail(err, CRYO_E_INVALID, "nn precision: unknown precision %d", (int)p);
    /* BF16 (nn_backend.h): the CUDA backend runs it on cuBLAS (linear layers); the CPU
     * backend only where oneDNN has native bf16 kernels, never emulated. */
    if (p == CRYO_NN_PRECISION_BF16 && ctx->device == CRYO_NN_DEVICE_CPU) {
        char why[200];
        if (!cryo_nn_cpu_has_bf16(why, sizeof why))
            return cryo_fail(err, CRYO_E_UNSUPPORTED, "bf16: %s", why);
    } else if (p == CRYO_NN_PRECISION_BF16 && ctx->device != CRYO_NN_DEVICE_CUDA) {
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "bf16: not implemented for this backend");
    }
    ctx->precision = p;
    return CRYO_OK;
}

enum cryo_nn_precision cryo_nn_get_precision(const struct cryo_nn_ctx *ctx)
{
    return ctx ? ctx->precision : CRYO_NN_PRECISION_FP32;
}

size_t cryo_nn_workspace_bytes(const struct cryo_nn_ctx *ctx) { return ctx ? ctx->ws_bytes : 0; }

int cryo_nn_supports(const struct cryo_nn_ctx *ctx, enum cryo_nn_op op)
{
    if (!ctx)
        return 0;
    const struct cryo_nn_ops *o = ctx->ops;
#define BOTH(f, b) (o->f != NULL && o->b != NULL)
    switch (op) {
    case CRYO_NN_OP_CONV3D: return BOTH(conv3d_forward, conv3d_backward);
    case CRYO_NN_OP_CONVT3D: return BOTH(convt3d_forward, convt3d_backward);
    case CRYO_NN_OP_LINEAR: return BOTH(linear_forward, linear_backward);
    case CRYO_NN_OP_LAYERNORM: return BOTH(layernorm_forward, layernorm_backward);
    case CRYO_NN_OP_FRN: return BOTH(frn_forward, frn_backward);
    case CRYO_NN_OP_GELU: return BOTH(gelu_forward, gelu_backward);
    case CRYO_NN_OP_RELU: return BOTH(relu_forward, relu_backward);
    case CRYO_NN_OP_SOFTMAX: return BOTH(softmax_forward, softmax_backward);
    case CRYO_NN_OP_WMSA: return BOTH(wmsa_forward, wmsa_backward);
    case CRYO_NN_OP_CONCAT: return BOTH(concat_forward, split_forward);
    case CRYO_NN_OP_ADD: return BOTH(add_forward, copy);
    case CRYO_NN_OP_ROLL: return o->roll_forward != NULL;
    case CRYO_NN_OP_DROPPATH: return o->scale_samples != NULL;
    default: return 0;
    }
#undef BOTH
}

void *cryo_nn_workspace(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err)
{
    if (bytes <= ctx->ws_bytes && ctx->ws)
        return ctx->ws;
    /* Grow with 25 % headroom so a sequence of slightly larger requests does not
     * reallocate every time. */
    size_t want = bytes + bytes / 4;
    if (want < bytes)
        want = bytes;
    size_t n = (want + sizeof(float) - 1) / sizeof(float);
    float *p = ctx->ops->alloc(ctx, n, err);
    if (!p) {
        cryo_error_prefix(err, "nn workspace");
        return NULL;
    }
    if (ctx->ws)
        ctx->ops->free(ctx, ctx->ws);
    ctx->ws = p;
    ctx->ws_bytes = n * sizeof(float);
    return p;
}

float *cryo_nn_alloc(struct cryo_nn_ctx *ctx, size_t n, struct cryo_error *err)
{
    if (!ctx) {
        cryo_fail(err, CRYO_E_INVALID, "nn alloc: NULL context");
        return NULL;
    }
    return ctx->ops->alloc(ctx, n, err);
}

void cryo_nn_free(struct cryo_nn_ctx *ctx, float *p)
{
    if (ctx && p)
        ctx->ops->free(ctx, p);
}

#define CHECK_PTRS(what, a, b)                                                             \
    do {                                                                                   \
        if (!ctx)                                                                          \
            return cryo_fail(err, CRYO_E_INVALID, "%s: NULL context", what);               \
        if ((n > 0) && (!(a) || !(b)))                                                     \
            return cryo_fail(err, CRYO_E_INVALID, "%s: NULL buffer", what);                \
    } while (0)

int cryo_nn_upload(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                   struct cryo_error *err)
{
    CHECK_PTRS("nn upload", dst, src);
    return n ? ctx->ops->upload(ctx, dst, src, n, err) : CRYO_OK;
}

int cryo_nn_download(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                     struct cryo_error *err)
{
    CHECK_PTRS("nn download", dst, src);
    return n ? ctx->ops->download(ctx, dst, src, n, err) : CRYO_OK;
}

int cryo_nn_copy(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                 struct cryo_error *err)
{
    CHECK_PTRS("nn copy", dst, src);
    return n && dst != src ? ctx->ops->copy(ctx, dst, src, n, err) : CRYO_OK;
}

int cryo_nn_fill(struct cryo_nn_ctx *ctx, float *p, float value, size_t n, struct cryo_error *err)
{
    CHECK_PTRS("nn fill", p, p);
    return n ? ctx->ops->fill(ctx, p, value, n, err) : CRYO_OK;
}

int cryo_nn_accumulate(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                       struct cryo_error *err)
{
    CHECK_PTRS("nn accumulate", dst, src);
    return n ? ctx->ops->accumulate(ctx, dst, src, n, err) : CRYO_OK;
}

int cryo_nn_sync(struct cryo_nn_ctx *ctx, struct cryo_error *err)
{
    if (!ctx)
        return cryo_fail(err, CRYO_E_INVALID, "nn sync: NULL context");
    return ctx->ops->sync ? ctx->ops->sync(ctx, err) : CRYO_OK;
}

static int comm_op(struct cryo_nn_ctx *ctx, const void *op, struct cryo_error *err)
{
    if (!ctx)
        return cryo_fail(err, CRYO_E_INVALID, "nn all-reduce: NULL context");
    if (!op)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "nn all-reduce: the %s backend has no device communicator",
                         ctx->ops->name);
    return CRYO_OK;
}

int cryo_nn_comm_id(struct cryo_nn_ctx *ctx, unsigned char id[CRYO_NN_COMM_ID_BYTES], struct cryo_error *err)
{
    CRYO_TRY(comm_op(ctx, ctx ? (const void *)ctx->ops->comm_id : NULL, err));
    return ctx->ops->comm_id(ctx, id, CRYO_NN_COMM_ID_BYTES, err);
}

int cryo_nn_comm_init(struct cryo_nn_ctx *ctx, const unsigned char id[CRYO_NN_COMM_ID_BYTES], int nranks,
                      int rank, struct cryo_error *err)
{
    CRYO_TRY(comm_op(ctx, ctx ? (const void *)ctx->ops->comm_init : NULL, err));
    return ctx->ops->comm_init(ctx, id, CRYO_NN_COMM_ID_BYTES, nranks, rank, err);
}

int cryo_nn_allreduce_sum(struct cryo_nn_ctx *ctx, float *x, size_t n, struct cryo_error *err)
{
    CRYO_TRY(comm_op(ctx, ctx ? (const void *)ctx->ops->allreduce : NULL, err));
    if (n && !x)
        return cryo_fail(err, CRYO_E_INVALID, "nn all-reduce: NULL buffer");
    return n ? ctx->ops->allreduce(ctx, x, n, err) : CRYO_OK;
}

int cryo_nn_allreduce_sum_host(struct cryo_nn_ctx *ctx, double *v, int n, struct cryo_error *err)
{
    CRYO_TRY(comm_op(ctx, ctx ? (const void *)ctx->ops->allreduce_host : NULL, err));
    if (n > 0 && !v)
        return cryo_fail(err, CRYO_E_INVALID, "nn all-reduce: NULL buffer");
    return n > 0 ? ctx->ops->allreduce_host(ctx, v, n, err) : CRYO_OK;
}
