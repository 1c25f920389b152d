/* cpu_backend.c — the CPU backend's ops table, its state (oneDNN engine and stream), its
 * memory ops, and the choice of OpenBLAS kernels.
 *
 * OpenBLAS: Debian's 0.3.21 is a DYNAMIC_ARCH build that reads OPENBLAS_CORETYPE when the
 * library loads, before any code of ours runs (a setenv in main or in a constructor is too
 * late, also in a static link). It does not know Zen 5 and takes its Haswell kernels
 * (≈100 GFLOP/s per core here) although its SkylakeX ones run at ≈190. The library
 * exports the very functions it uses at load time (gotoblas_dynamic_quit / _init), so on
 * the first context we re-run that selection with OPENBLAS_CORETYPE=SkylakeX when the CPU
 * has AVX-512 F/BW/DQ/VL and the user has not chosen a core type. The symbols are weak:
 * on an OpenBLAS without them nothing happens. Set CRYO_NN_BLAS_KEEP=1 to skip.
 */
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cryolvm/mem.h"

/* OpenBLAS extras (cblas.h declares the first; the dynamic-arch ones are not public). */
extern void openblas_set_num_threads(int n);
extern char *gotoblas_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_pick_core(void)
{
    if (!gotoblas_corename || !gotoblas_dynamic_init || !gotoblas_dynamic_quit)
        return;
    if (getenv("OPENBLAS_CORETYPE") || getenv("CRYO_NN_BLAS_KEEP"))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return;
    const char *core = gotoblas_corename();
    if (!core || strcmp(core, "Haswell") != 0) /* only the known mis-detection */
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
}

const char *cpu_blas_core(void)
{
    if (!gotoblas_corename)
        return "unknown";
    const char *c = gotoblas_corename();
    return c ? c : "unknown";
}

static int cpu_init(struct cryo_nn_ctx *ctx, struct cryo_error *err)
{
    struct cpu_state *st = cryo_alloc_array(1, sizeof *st, err);
    if (!st)
        return CRYO_E_NOMEM;
    pthread_once(&blas_once, blas_pick_core);
    if (ctx->nthreads > 0)
        omp_set_num_threads(ctx->nthreads);
    /* OpenBLAS runs inside our OpenMP threads, one call per thread (cpu_linear.c). */
    openblas_set_num_threads(1);
    dnnl_status_t s = dnnl_engine_create(&st->engine, dnnl_cpu, 0);
    if (s != dnnl_success) {
        free(st);
        return cryo_fail(err, CRYO_E_DEVICE, "nn cpu: dnnl_engine_create failed (status %d)", (int)s);
    }
    s = dnnl_stream_create(&st->stream, st->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        dnnl_engine_destroy(st->engine);
        free(st);
        return cryo_fail(err, CRYO_E_DEVICE, "nn cpu: dnnl_stream_create failed (status %d)", (int)s);
    }
    ctx->state = st;
    const dnnl_version_t *v = dnnl_version();
    snprintf(ctx->name, sizeof ctx->name, "cpu: %d threads, oneDNN %d.%d.%d, OpenBLAS %s",
             omp_get_max_threads(), v->major, v->minor, v->patch, cpu_blas_core());
    return CRYO_OK;
}

void cryo_nn_cpu_bind(const struct cryo_nn_ctx *ctx)
{
    if (ctx->nthreads > 0)
        omp_set_num_threads(ctx->nthreads);
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "SSE4.1";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2-VNNI";
    case dnnl_cpu_isa_avx512_mic: case dnnl_cpu_isa_avx512_mic_4ops: return "AVX-512 (Xeon Phi)";
    case dnnl_cpu_isa_avx512_core: return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AMX";
    default: return "no vector ISA oneDNN knows";
    }
}

int cryo_nn_cpu_has_bf16(char *why, size_t len)
{
    /* oneDNN's own detection (cpuid, the kernel's AMX permission, $ONEDNN_MAX_CPU_ISA): the
     * ISA bits of avx512_core_bf16 are a subset of avx512_core_amx's. On plain AVX-512
     * oneDNN would emulate bf16 (slower than fp32), and below that it has no bf16 kernels. */
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    unsigned need = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    if (((unsigned)isa & need) == need)
        return 1;
    if (why && len)
        snprintf(why, len, "this CPU lacks AVX-512 BF16 and AMX (oneDNN finds %s)",
                 isa_name(isa));
    return 0;
}

static void cpu_fini(struct cryo_nn_ctx *ctx)
{
    struct cpu_state *st = cpu_state(ctx);
    if (!st)
        return;
    cpu_conv_cache_free(st);
    cryo_free_big(st->red);
    dnnl_stream_destroy(st->stream);
    dnnl_engine_destroy(st->engine);
    free(st);
    ctx->state = NULL;
}

static float *cpu_alloc(struct cryo_nn_ctx *ctx, size_t n, struct cryo_error *err)
{
    size_t bytes;
    if (cryo_mul_size(n ? n : 1, sizeof(float), &bytes, err) < 0)
        return NULL;
    return cryo_alloc_big(bytes, err);
}

static void cpu_free(struct cryo_nn_ctx *ctx, float *p) { cryo_free_big(p); }

int cpu_copy(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
             struct cryo_error *err)
{
    /* Parallel: one core does not saturate the memory bus here (34 vs 55 GB/s). */
    const size_t chunk = 1 << 16;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (nchunks > 4)
    for (size_t i = 0; i < nchunks; i++) {
        size_t a = i * chunk, len = n - a < chunk ? n - a : chunk;
        memcpy(dst + a, src + a, len * sizeof(float));
    }
    return CRYO_OK;
}

static int cpu_transfer(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                        struct cryo_error *err)
{
    return cpu_copy(ctx, dst, src, n, err);
}

int cpu_fill(struct cryo_nn_ctx *ctx, float *p, float value, size_t n, struct cryo_error *err)
{
#pragma omp parallel for simd schedule(static) if (n > (1 << 18))
    for (size_t i = 0; i < n; i++)
        p[i] = value;
    return CRYO_OK;
}

int cpu_accumulate(struct cryo_nn_ctx *ctx, float *dst, const float *src, size_t n,
                   struct cryo_error *err)
{
#pragma omp parallel for simd schedule(static) if (n > (1 << 18))
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
    return CRYO_OK;
}

/* Long reductions (10⁵–10⁶ tokens) sum in float over blocks of CPU_RED_BLOCK rows, vectorised,
 * and add the block sums in double: the rounding error then grows with the block length,
 * not with T (a plain float sum of 5·10⁵ same-sign terms can be off by 1e-3 relative). */
int cpu_colsum_acc(struct cryo_nn_ctx *ctx, float *dst, const float *src, int64_t T, int C,
                   struct cryo_error *err)
{
    int nt = omp_get_max_threads();
    size_t bytes;
    /* per thread: C float block sums, C double totals */
    CRYO_TRY(cryo_mul_size((size_t)nt * (size_t)C, sizeof(float) + sizeof(double), &bytes, err));
    bytes += sizeof(double); /* alignment of the double part */
    float *part = cpu_red_scratch(ctx, bytes, err);
    if (!part)
        return CRYO_E_NOMEM;
    double *tot = (double *)(void *)(part + (size_t)nt * C + ((size_t)nt * C & 1));
    int used = 1;
#pragma omp parallel num_threads(nt) if (T * C > (1 << 16))
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        float *p = part + (size_t)id * C;
        double *d = tot + (size_t)id * C;
        for (int c = 0; c < C; c++)
            d[c] = 0.0;
        int64_t a = T * id / n, b = T * (id + 1) / n;
        for (int64_t t0 = a; t0 < b; t0 += CPU_RED_BLOCK) {
            int64_t t1 = t0 + CPU_RED_BLOCK < b ? t0 + CPU_RED_BLOCK : b;
            for (int c = 0; c < C; c++)
                p[c] = 0.0f;
            for (int64_t t = t0; t < t1; t++) {
                const float *row = src + (size_t)t * C;
#pragma omp simd
                for (int c = 0; c < C; c++)
                    p[c] += row[c];
            }
            for (int c = 0; c < C; c++)
                d[c] += p[c];
        }
        if (id == 0)
            used = n;
    }
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int i = 0; i < used; i++)
            s += tot[(size_t)i * C + c];
        dst[c] += (float)s;
    }
    return CRYO_OK;
}

/* Reductions get their own small grow-once buffer, apart from the context workspace, so an
 * op can reduce while it holds workspace pointers. */
float *cpu_red_scratch(struct cryo_nn_ctx *ctx, size_t bytes, struct cryo_error *err)
{
    struct cpu_state *st = cpu_state(ctx);
    if (bytes <= st->red_bytes && st->red)
        return st->red;
    float *p = cryo_alloc_big(bytes, err);
    if (!p)
        return NULL;
    cryo_free_big(st->red);
    st->red = p;
    st->red_bytes = bytes;
    return p;
}

static int cpu_sync(struct cryo_nn_ctx *ctx, struct cryo_error *err) { return CRYO_OK; }

const struct cryo_nn_ops cryo_nn_cpu_ops = {
    .name = "cpu",
    .init = cpu_init,
    .fini = cpu_fini,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_transfer,
    .download = cpu_transfer,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .accumulate = cpu_accumulate,
    .sync = cpu_sync,
    .conv3d_forward = cpu_conv3d_forward,
    .conv3d_backward = cpu_conv3d_backward,
    .convt3d_forward = cpu_convt3d_forward,
    .convt3d_backward = cpu_convt3d_backward,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .frn_forward = cpu_frn_forward,
    .frn_backward = cpu_frn_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .softmax_forward = cpu_softmax_forward,
    .softmax_backward = cpu_softmax_backward,
    .wmsa_forward = cpu_wmsa_forward,
    .wmsa_backward = cpu_wmsa_backward,
    .concat_forward = cpu_concat_forward,
    .split_forward = cpu_split_forward,
    .add_forward = cpu_add_forward,
    .roll_forward = cpu_roll_forward,
    .scale_samples = cpu_scale_samples,
    .adamw = cpu_adamw,
    .ema = cpu_ema,
    .sumsq = cpu_sumsq,
    .loss = cpu_loss,
    .histkl = cpu_histkl,
    .mask_patches = cpu_mask_patches,
    .patchify = cpu_patchify,
    .collapse_stats = cpu_collapse_stats,
    .mask_rows = cpu_mask_rows,
    .mask_rows_backward = cpu_mask_rows_backward,
};
