/* cuda_backend.cu — the CUDA backend's entry point, ops table, state (device, cuBLAS and
 * cuDNN handles), memory ops and error helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_priv.h"

const struct cryo_nn_plugin_host *cu_host;

int cu_fail(struct cryo_error *err, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cu_host->fail(err, status, msg);
}

int cu_check(cudaError_t e, const char *what, struct cryo_error *err)
{
    if (e == cudaSuccess)
        return CRYO_OK;
    return cu_fail(err, CRYO_E_DEVICE, "nn cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                   cudaGetErrorName(e));
}

int cu_check_blas(cublasStatus_t s, const char *what, struct cryo_error *err)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return CRYO_OK;
    return cu_fail(err, CRYO_E_DEVICE, "nn cuda: %s: cuBLAS status %d (%s)", what, (int)s,
                   cublasGetStatusString(s));
}

int cu_check_dnn(cudnnStatus_t s, const char *what, struct cryo_error *err)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return CRYO_OK;
    return cu_fail(err, CRYO_E_DEVICE, "nn cuda: %s: cuDNN status %d (%s)", what, (int)s,
                   cudnnGetErrorString(s));
}

int cu_launched(const char *what, struct cryo_error *err)
{
    return cu_check(cudaGetLastError(), what, err);
}

/* Which GPU this context takes (nn_backend.h): `asked` (cuda:N) when >= 0, else
 * $CRYO_NN_CUDA_DEVICE, else the launcher's local rank modulo `count`, else none named (-1:
 * the runtime's current device). */
static int pick_device(int asked, int count, int *want, struct cryo_error *err)
{
    if (asked >= 0) {
        if (asked >= count)
            return cu_fail(err, CRYO_E_INVALID, "nn cuda: cuda:%d: no such GPU (%d visible, cuda:0 to cuda:%d)",
                           asked, count, count - 1);
        *want = asked;
        return CRYO_OK;
    }
    const char *e = getenv("CRYO_NN_CUDA_DEVICE");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end || v < 0 || v >= count)
            return cu_fail(err, CRYO_E_INVALID, "nn cuda: CRYO_NN_CUDA_DEVICE=%s: not a GPU index below %d", e,
                           count);
        *want = (int)v;
        return CRYO_OK;
    }
    static const char *const local[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                                        "LOCAL_RANK"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        const char *v = getenv(local[i]);
        char *end;
        long r = v && *v ? strtol(v, &end, 10) : -1;
        if (v && *v && !*end && r >= 0) {
            *want = (int)(r % count);
            return CRYO_OK;
        }
    }
    return CRYO_OK;
}

static int cu_init(struct cryo_nn_ctx *ctx, struct cryo_error *err)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        return cu_fail(err, CRYO_E_DEVICE, "nn cuda: no usable GPU: %s", cudaGetErrorString(e));
    if (count < 1)
        return cu_fail(err, CRYO_E_DEVICE, "nn cuda: no GPU found");
    struct cu_state *st = (struct cu_state *)calloc(1, sizeof *st);
    if (!st)
        return cu_fail(err, CRYO_E_NOMEM, "nn cuda: out of host memory");
    cudaDeviceProp prop;
    int want = -1, s = CRYO_OK;
    if (pick_device(ctx->device_index, count, &want, err) < 0) {
        free(st);
        return CRYO_E_INVALID;
    }
    if (want >= 0)
        s = cu_check(cudaSetDevice(want), "cudaSetDevice", err);
    if (s == CRYO_OK)
        s = cu_check(cudaGetDevice(&st->device), "cudaGetDevice", err);
    if (s == CRYO_OK)
        s = cu_check(cudaGetDeviceProperties(&prop, st->device), "cudaGetDeviceProperties", err);
    if (s == CRYO_OK)
        s = cu_check_blas(cublasCreate(&st->blas), "cublasCreate", err);
    if (s == CRYO_OK)
        s = cu_check_dnn(cudnnCreate(&st->dnn), "cudnnCreate", err);
    if (s < 0) {
        if (st->blas)
            cublasDestroy(st->blas);
        free(st);
        return s;
    }
    ctx->state = st;
    ctx->device_index = st->device;
    ctx->device_count = count;
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    int bl = 0;
    cublasGetVersion(st->blas, &bl);
    char gpu[64]; /* device names are short; cut rather than overflow the context name */
    snprintf(gpu, sizeof gpu, "%.63s", prop.name);
    snprintf(ctx->name, sizeof ctx->name, "cuda:%d: %s (sm_%d%d, %.0f GiB), CUDA runtime %d.%d, cuBLAS %d, cuDNN %zu",
             st->device, gpu, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30), rt / 1000,
             rt % 1000 / 10, bl, (size_t)cudnnGetVersion());
    return CRYO_OK;
}

static void cu_fini(struct cryo_nn_ctx *ctx)
{
    struct cu_state *st = cu_state(ctx);
    if (!st)
        return;
    cu_comm_free(st);
    cu_conv_cache_free(st);
    if (st->red)
        cudaFree(st->red);
    cudnnDestroy(st->dnn);
    cublasDestroy(st->blas);
    free(st);
    ctx->state = NULL;
}

static float *cu_alloc(struct cryo_nn_ctx *ctx, size_t n, struct cryo_error *err)
{
    if (n > SIZE_MAX / sizeof(float)) {
        cu_fail(err, CRYO_E_NOMEM, "nn cuda: allocation of %zu floats overflows", n);
        return NULL;
    }
    void *p = NULL; /* cudaMalloc aligns to 256 bytes */
    cudaError_t e = cudaMalloc(&p, (n ? n : 1) * sizeof(float));
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear it: an out-of-memory is not sticky */
        cu_fail(err, CRYO_E_NOMEM, "nn cuda: cudaMalloc of %zu MiB failed: %s",
                n * sizeof(float) >> 20, cudaGetErrorString(e));
        return NULL;
    }
    return (float *)p;
}

static void cu_free(struct cryo_nn_ctx *ctx, float *p) { cudaFree(p); }

static int cu_upload(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                     struct cryo_error *err)
{
    return cu_check(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice), "upload", err);
}

static int cu_download(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                       struct cryo_error *err)
{
    return cu_check(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost), "download", err);
}

static int cu_copy(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                   struct cryo_error *err)
{
    return cu_check(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, 0), "copy", err);
}

static int cu_sync(struct cryo_nn_ctx *ctx, struct cryo_error *err)
{
    return cu_check(cudaDeviceSynchronize(), "synchronize", err);
}

void *cu_red_scratch(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err)
{
    struct cu_state *st = cu_state(ctx);
    if (bytes <= st->red_bytes && st->red)
        return st->red;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError();
        cu_fail(err, CRYO_E_NOMEM, "nn cuda: reduction scratch of %zu bytes", bytes);
        return NULL;
    }
    if (st->red)
        cudaFree(st->red);
    st->red = p;
    st->red_bytes = bytes;
    return p;
}

static struct cryo_nn_ops cu_ops;

/* Every call on the context's own GPU, from whatever thread makes it: the CUDA runtime's
 * current device is per host thread, and cuBLAS/cuDNN handles, cudaMalloc and kernel
 * launches all act on it. So a thread may use contexts on several GPUs in turn (lvm-apply
 * creates them all on its main thread), and an inference worker thread needs no setup.
 * cudaGetDevice and cudaSetDevice of an initialised device only read and write the thread's
 * current context. */
static void on_own_device(struct cryo_nn_ctx *ctx)
{
    struct cu_state *st = cu_state(ctx);
    int cur = -1;
    if (st && (cudaGetDevice(&cur) != cudaSuccess || cur != st->device))
        cudaSetDevice(st->device); /* a failure here shows in the call that follows */
}

template <typename F, F f> struct guarded;
template <typename R, typename... A, R (*f)(struct cryo_nn_ctx *, A...)>
struct guarded<R (*)(struct cryo_nn_ctx *, A...), f> {
    static R call(struct cryo_nn_ctx *ctx, A... a)
    {
        on_own_device(ctx);
        return f(ctx, a...);
    }
};
#define ON_DEVICE(fn) (guarded<decltype(&fn), &fn>::call)

static void fill_ops(struct cryo_nn_ops *o)
{
    o->name = "cuda";
    o->init = cu_init;
    o->fini = ON_DEVICE(cu_fini);
    o->alloc = ON_DEVICE(cu_alloc);
    o->free = ON_DEVICE(cu_free);
    o->upload = ON_DEVICE(cu_upload);
    o->download = ON_DEVICE(cu_download);
    o->copy = ON_DEVICE(cu_copy);
    o->fill = ON_DEVICE(cu_fill);
    o->accumulate = ON_DEVICE(cu_accumulate);
    o->sync = ON_DEVICE(cu_sync);
    o->conv3d_forward = ON_DEVICE(cu_conv3d_forward);
    o->conv3d_backward = ON_DEVICE(cu_conv3d_backward);
    o->convt3d_forward = ON_DEVICE(cu_convt3d_forward);
    o->convt3d_backward = ON_DEVICE(cu_convt3d_backward);
    o->linear_forward = ON_DEVICE(cu_linear_forward);
    o->linear_backward = ON_DEVICE(cu_linear_backward);
    o->layernorm_forward = ON_DEVICE(cu_layernorm_forward);
    o->layernorm_backward = ON_DEVICE(cu_layernorm_backward);
    o->frn_forward = ON_DEVICE(cu_frn_forward);
    o->frn_backward = ON_DEVICE(cu_frn_backward);
    o->gelu_forward = ON_DEVICE(cu_gelu_forward);
    o->gelu_backward = ON_DEVICE(cu_gelu_backward);
    o->relu_forward = ON_DEVICE(cu_relu_forward);
    o->relu_backward = ON_DEVICE(cu_relu_backward);
    o->softmax_forward = ON_DEVICE(cu_softmax_forward);
    o->softmax_backward = ON_DEVICE(cu_softmax_backward);
    o->wmsa_forward = ON_DEVICE(cu_wmsa_forward);
    o->wmsa_backward = ON_DEVICE(cu_wmsa_backward);
    o->concat_forward = ON_DEVICE(cu_concat_forward);
    o->split_forward = ON_DEVICE(cu_split_forward);
    o->add_forward = ON_DEVICE(cu_add_forward);
    o->roll_forward = ON_DEVICE(cu_roll_forward);
    o->scale_samples = ON_DEVICE(cu_scale_samples);
    o->adamw = ON_DEVICE(cu_adamw);
    o->ema = ON_DEVICE(cu_ema);
    o->sumsq = ON_DEVICE(cu_sumsq);
    o->loss = ON_DEVICE(cu_loss);
    o->histkl = ON_DEVICE(cu_histkl);
    o->mask_patches = ON_DEVICE(cu_mask_patches);
    o->patchify = ON_DEVICE(cu_patchify);
    o->collapse_stats = ON_DEVICE(cu_collapse_stats);
    o->mask_rows = ON_DEVICE(cu_mask_rows);
    o->mask_rows_backward = ON_DEVICE(cu_mask_rows_backward);
    o->comm_id = ON_DEVICE(cu_comm_id);
    o->comm_init = ON_DEVICE(cu_comm_init);
    o->allreduce = ON_DEVICE(cu_allreduce);
    o->allreduce_host = ON_DEVICE(cu_allreduce_host);
}

extern "C" __attribute__((visibility("default"))) const struct cryo_nn_ops *
cryo_nn_cuda_plugin(const struct cryo_nn_plugin_host *host, char *why, size_t len)
{
    if (!host || host->abi != CRYO_NN_PLUGIN_ABI || host->ops_size != sizeof(struct cryo_nn_ops) ||
        host->ctx_size != sizeof(struct cryo_nn_ctx)) {
        snprintf(why, len, "built for another version of libcore (plugin ABI %d, host %d)",
                 CRYO_NN_PLUGIN_ABI, host ? host->abi : -1);
        return NULL;
    }
    cu_host = host;
    fill_ops(&cu_ops);
    return &cu_ops;
}
