/* cuda_conv.cu — 3D convolution and transposed convolution with cuDNN (legacy convolution
 * API of cuDNN 9), NDHWC activations.
 *
 * Both layers are one convolution seen from two sides. Call X the larger grid and Y the
 * smaller: a convolution maps X = inp to Y = out; a transposed convolution is the adjoint,
 * X = out, Y = inp. PyTorch stores both weights as [channels of Y][channels of X][k³]
 * (Conv3d: cout × cin; ConvTranspose3d: cin × cout), i.e. cuDNN's filter K × C × k³. So
 *   conv forward  = cudnnConvolutionForward(X → Y)      convT forward  = BackwardData(Y → X)
 *   conv dinp     = BackwardData(dY → dX)               convT dinp     = Forward(dX → dY)
 *   conv dweight  = BackwardFilter(X = inp, dY = dout)  convT dweight  = BackwardFilter(X = dout, dY = inp)
 * Bias add and bias gradient are our own kernels (cuda_linear.cu).
 *
 * Filter layout: cuDNN's channels-last kernels want the filter channels-last too (KRSC);
 * the weight is permuted into the workspace per call (k³·cin·cout floats, negligible next to
 * the activations) and the filter gradient permuted back and added. If cuDNN offers no
 * algorithm for that combination, the plan falls back to the PyTorch layout (KCRS) as is.
 *
 * Plans (descriptors, the algorithm for each of the three directions and its workspace)
 * are made once per geometry with cuDNN's heuristics (cudnnGet*Algorithm_v7: the first
 * that runs, passing over the FFT and Winograd ones, whose rounding differs most from a
 * direct sum, unless nothing else runs) and cached in the context, per geometry and
 * precision: FP32 plans use CUDNN_FMA_MATH (no TF32 tensor cores), TF32 plans
 * CUDNN_DEFAULT_MATH. Each direction has its own convolution descriptor, which takes the
 * math type cuDNN returned with its algorithm (take_math).
 *
 * BF16 plans run all three directions on bf16 tensors with float compute (cuDNN's
 * PSEUDO_BFLOAT16_CONFIG: x, w and y bfloat16, the convolution descriptor FLOAT,
 * CUDNN_TENSOR_OP_MATH; cuDNN has no bf16-in, float-out configuration). Per call the
 * float32 operands are cast to bf16 into the workspace (round to nearest even), cuDNN
 * writes a bf16 result there, and it is cast back to float32 (adding the bias, in float32,
 * on the way) into the caller's tensor; the filter gradient comes out in bf16 with β = 0
 * and is added to the caller's float32 gradient, so accumulation across calls stays
 * float32. Workspace: the algorithm's scratch, the bf16 filter (and its gradient), one
 * bf16 buffer the size of X and one the size of Y; in the backward pass the filter
 * gradient runs first and the data gradient then overwrites the bf16 copy of `inp`.
 * Where cuDNN has no bf16 algorithm for a geometry (GPUs before sm_80, odd channel
 * counts on some versions), that geometry's BF16 plan is a float32 TF32 plan instead:
 * more precise, never refused.
 * Scratch is the context workspace.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_priv.h"

struct cu_conv_entry {
    struct cryo_nn_conv3d g;
    int transposed;
    int prec; /* the context precision it was planned for (enum cryo_nn_precision: cache key) */
    int bf16; /* bf16 tensors (prec BF16 and cuDNN has a bf16 algorithm for it), else float32 */
    int krsc; /* filter permuted to channels-last */
    size_t nx, ny, nw; /* elements of X, Y and the filter */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    /* one per direction (CV_FWD, CV_DATA, CV_FILTER), alike but for the math type: each
     * carries the one cuDNN returned with that direction's algorithm */
    cudnnConvolutionDescriptor_t conv[3];
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_fwd, ws_data, ws_filter;
    struct cu_conv_entry *next;
};

enum { CV_FWD, CV_DATA, CV_FILTER };

static void entry_free(struct cu_conv_entry *e)
{
    if (e->x)
        cudnnDestroyTensorDescriptor(e->x);
    if (e->y)
        cudnnDestroyTensorDescriptor(e->y);
    if (e->w)
        cudnnDestroyFilterDescriptor(e->w);
    for (int k = 0; k < 3; k++)
        if (e->conv[k])
            cudnnDestroyConvolutionDescriptor(e->conv[k]);
    free(e);
}

void cu_conv_cache_free(struct cu_state *st)
{
    while (st->convs) {
        struct cu_conv_entry *n = st->convs->next;
        entry_free(st->convs);
        st->convs = n;
    }
}

/* Whether a heuristic result's math type suits the plan, and if so, set on the direction's
 * descriptor (as PyTorch does: the algorithm was rated with that math type). No plan takes
 * CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (inputs down-converted to fp16), and FP32 plans no
 * tensor-op math at all (TF32): a plan keeps the precision it was made for. */
static int take_math(struct cu_conv_entry *e, int dir, cudnnMathType_t m)
{
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
        return 0;
    if (!e->bf16 && e->prec == CRYO_NN_PRECISION_FP32 && m == CUDNN_TENSOR_OP_MATH)
        return 0;
    return cudnnSetConvolutionMathType(e->conv[dir], m) == CUDNN_STATUS_SUCCESS;
}

/* Pick the first heuristic result that cuDNN says runs, with a math type that suits the
 * plan, set on that direction's descriptor before its workspace size is asked. 0 when
 * there is none. */
static int pick_fwd(cudnnHandle_t h, struct cu_conv_entry *e)
{
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    if (cudnnGetConvolutionForwardAlgorithm_v7(h, e->x, e->w, e->conv[CV_FWD], e->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                               &n, perf) != CUDNN_STATUS_SUCCESS)
        return 0;
    for (int exact = 1; exact >= 0; exact--)
        for (int i = 0; i < n; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS &&
                (!exact || (perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT &&
                            perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING &&
                            perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD &&
                            perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED)) &&
                take_math(e, CV_FWD, perf[i].mathType) &&
                cudnnGetConvolutionForwardWorkspaceSize(h, e->x, e->w, e->conv[CV_FWD], e->y, perf[i].algo,
                                                        &e->ws_fwd) == CUDNN_STATUS_SUCCESS) {
                e->fwd = perf[i].algo;
                return 1;
            }
    return 0;
}

static int pick_bwd_data(cudnnHandle_t h, struct cu_conv_entry *e)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    if (cudnnGetConvolutionBackwardDataAlgorithm_v7(h, e->w, e->y, e->conv[CV_DATA], e->x,
                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n,
                                                    perf) != CUDNN_STATUS_SUCCESS)
        return 0;
    for (int exact = 1; exact >= 0; exact--)
        for (int i = 0; i < n; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS &&
                (!exact || (perf[i].algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT &&
                            perf[i].algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING &&
                            perf[i].algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD &&
                            perf[i].algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED)) &&
                take_math(e, CV_DATA, perf[i].mathType) &&
                cudnnGetConvolutionBackwardDataWorkspaceSize(h, e->w, e->y, e->conv[CV_DATA], e->x, perf[i].algo,
                                                             &e->ws_data) == CUDNN_STATUS_SUCCESS) {
                e->bwd_data = perf[i].algo;
                return 1;
            }
    return 0;
}

static int pick_bwd_filter(cudnnHandle_t h, struct cu_conv_entry *e)
{
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, e->x, e->y, e->conv[CV_FILTER], e->w,
                                                      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
                                                      perf) != CUDNN_STATUS_SUCCESS)
        return 0;
    for (int exact = 1; exact >= 0; exact--)
        for (int i = 0; i < n; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS &&
                (!exact || (perf[i].algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT &&
                            perf[i].algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING &&
                            perf[i].algo != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED)) &&
                take_math(e, CV_FILTER, perf[i].mathType) &&
                cudnnGetConvolutionBackwardFilterWorkspaceSize(h, e->x, e->y, e->conv[CV_FILTER], e->w, perf[i].algo,
                                                               &e->ws_filter) == CUDNN_STATUS_SUCCESS) {
                e->bwd_filter = perf[i].algo;
                return 1;
            }
    return 0;
}

/* Descriptors for one filter layout and data type (bf16, else float32); CRYO_E_UNSUPPORTED
 * when cuDNN has no algorithm. */
static int make_plan(cudnnHandle_t h, struct cu_conv_entry *e, int krsc, int bf16, struct cryo_error *err)
{
    const struct cryo_nn_conv3d *g = &e->g;
    int od = 0, oh = 0, ow = 0;
    if (e->transposed) {
        od = (g->d - 1) * g->stride - 2 * g->pad + g->k;
        oh = (g->h - 1) * g->stride - 2 * g->pad + g->k;
        ow = (g->w - 1) * g->stride - 2 * g->pad + g->k;
    } else {
        od = (g->d + 2 * g->pad - g->k) / g->stride + 1;
        oh = (g->h + 2 * g->pad - g->k) / g->stride + 1;
        ow = (g->w + 2 * g->pad - g->k) / g->stride + 1;
    }
    /* X: the larger grid, Y: the smaller (see the top of the file) */
    int xd[5], yd[5];
    if (e->transposed) {
        int a[5] = {g->n, g->cout, od, oh, ow}, b[5] = {g->n, g->cin, g->d, g->h, g->w};
        memcpy(xd, a, sizeof a);
        memcpy(yd, b, sizeof b);
    } else {
        int a[5] = {g->n, g->cin, g->d, g->h, g->w}, b[5] = {g->n, g->cout, od, oh, ow};
        memcpy(xd, a, sizeof a);
        memcpy(yd, b, sizeof b);
    }
    int fd[5] = {yd[1], xd[1], g->k, g->k, g->k};
    int pad[3] = {g->pad, g->pad, g->pad}, str[3] = {g->stride, g->stride, g->stride}, dil[3] = {1, 1, 1};
    e->krsc = krsc;
    e->bf16 = bf16;
    e->nx = (size_t)xd[0] * xd[1] * xd[2] * xd[3] * xd[4];
    e->ny = (size_t)yd[0] * yd[1] * yd[2] * yd[3] * yd[4];
    e->nw = (size_t)fd[0] * fd[1] * fd[2] * fd[3] * fd[4];
    const cudnnDataType_t dt = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    CRYO_TRY(cu_check_dnn(cudnnSetTensorNdDescriptorEx(e->x, CUDNN_TENSOR_NHWC, dt, 5, xd), "conv input descriptor",
                          err));
    CRYO_TRY(cu_check_dnn(cudnnSetTensorNdDescriptorEx(e->y, CUDNN_TENSOR_NHWC, dt, 5, yd),
                          "conv output descriptor", err));
    CRYO_TRY(cu_check_dnn(cudnnSetFilterNdDescriptor(e->w, dt, krsc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5, fd),
                          "conv filter descriptor", err));
    /* as PyTorch: FMA math forbids TF32, default math allows it on Ampere and later; bf16
     * tensors want tensor-op math. The heuristics are asked with this math type; each
     * direction's descriptor then takes the one returned with its algorithm (pick_*). */
    const cudnnMathType_t math = bf16                                  ? CUDNN_TENSOR_OP_MATH
                                 : e->prec == CRYO_NN_PRECISION_FP32 ? CUDNN_FMA_MATH
                                                                     : CUDNN_DEFAULT_MATH;
    for (int k = 0; k < 3; k++) {
        /* compute type float in every case (bf16: PSEUDO_BFLOAT16_CONFIG) */
        CRYO_TRY(cu_check_dnn(cudnnSetConvolutionNdDescriptor(e->conv[k], 3, pad, str, dil, CUDNN_CROSS_CORRELATION,
                                                              CUDNN_DATA_FLOAT),
                              "conv descriptor", err));
        CRYO_TRY(cu_check_dnn(cudnnSetConvolutionMathType(e->conv[k], math), "conv math type", err));
    }
    int chk[5];
    CRYO_TRY(cu_check_dnn(cudnnGetConvolutionNdForwardOutputDim(e->conv[CV_FWD], e->x, e->w, 5, chk),
                          "conv output dims", err));
    if (chk[0] != yd[0] || chk[1] != yd[1] || chk[2] != yd[2] || chk[3] != yd[3] || chk[4] != yd[4])
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: conv geometry k=%d s=%d p=%d on %dx%dx%d does not invert",
                       g->k, g->stride, g->pad, g->d, g->h, g->w);
    if (!pick_fwd(h, e) || !pick_bwd_data(h, e) || !pick_bwd_filter(h, e))
        return cu_fail(err, CRYO_E_UNSUPPORTED,
                       "nn cuda: cuDNN has no %s algorithm for a %s k=%d s=%d p=%d %d->%d channels on %dx%dx%d",
                       bf16 ? "bf16" : "fp32", e->transposed ? "transposed conv" : "conv", g->k, g->stride, g->pad,
                       g->cin, g->cout, g->d, g->h, g->w);
    return CRYO_OK;
}

static int plan_for(struct cryo_nn_ctx *ctx, const struct cryo_nn_conv3d *g, int transposed,
                    struct cu_conv_entry **out, struct cryo_error *err)
{
    struct cu_state *st = cu_state(ctx);
    const int prec = (int)ctx->precision;
    for (struct cu_conv_entry *e = st->convs; e; e = e->next)
        if (e->transposed == transposed && e->prec == prec && memcmp(&e->g, g, sizeof *g) == 0) {
            *out = e;
            return CRYO_OK;
        }
    struct cu_conv_entry *e = (struct cu_conv_entry *)calloc(1, sizeof *e);
    if (!e)
        return cu_fail(err, CRYO_E_NOMEM, "nn cuda: conv plan");
    e->g = *g;
    e->transposed = transposed;
    e->prec = prec;
    int s = cu_check_dnn(cudnnCreateTensorDescriptor(&e->x), "cudnnCreateTensorDescriptor", err);
    if (s == CRYO_OK)
        s = cu_check_dnn(cudnnCreateTensorDescriptor(&e->y), "cudnnCreateTensorDescriptor", err);
    if (s == CRYO_OK)
        s = cu_check_dnn(cudnnCreateFilterDescriptor(&e->w), "cudnnCreateFilterDescriptor", err);
    for (int k = 0; k < 3 && s == CRYO_OK; k++)
        s = cu_check_dnn(cudnnCreateConvolutionDescriptor(&e->conv[k]), "cudnnCreateConvolutionDescriptor", err);
    if (s == CRYO_OK && prec == CRYO_NN_PRECISION_BF16) {
        /* bf16 tensors, either filter layout; failing that (no bf16 algorithm, or a GPU
         * without bf16), the float32 TF32 plan below. Failures here are not reported. */
        s = make_plan(st->dnn, e, 1, 1, NULL);
        if (s != CRYO_OK)
            s = make_plan(st->dnn, e, 0, 1, NULL);
        if (s == CRYO_OK) {
            e->next = st->convs;
            st->convs = e;
            *out = e;
            return CRYO_OK;
        }
        s = CRYO_OK;
    }
    if (s == CRYO_OK) {
        s = make_plan(st->dnn, e, 1, 0, err);
        if (s == CRYO_E_UNSUPPORTED) { /* try the PyTorch filter layout */
            s = make_plan(st->dnn, e, 0, 0, err);
            if (s == CRYO_OK && err) { /* the first attempt's text is no error of this call */
                err->status = CRYO_OK;
                err->msg[0] = '\0';
            }
        }
    }
    if (s < 0) {
        entry_free(e);
        return s;
    }
    e->next = st->convs;
    st->convs = e;
    *out = e;
    return CRYO_OK;
}

/* KCRS (PyTorch) -> KRSC */
__global__ void k_w_to_krsc(float *dst, const float *src, int K, int C, int KS)
{
    size_t n = (size_t)K * C * KS;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t k = i / ((size_t)C * KS), c = i / KS % C, s = i % KS;
        dst[(k * KS + s) * C + c] = src[i];
    }
}

/* dst (KCRS) += src (KRSC) */
__global__ void k_w_from_krsc_acc(float *dst, const float *src, int K, int C, int KS)
{
    size_t n = (size_t)K * C * KS;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t k = i / ((size_t)C * KS), c = i / KS % C, s = i % KS;
        dst[i] += src[(k * KS + s) * C + c];
    }
}

struct conv_ws {
    void *alg;      /* algorithm workspace */
    float *w;       /* filter as cuDNN reads it */
    float *dw;      /* filter gradient in KRSC, or NULL (KCRS: accumulate in place) */
    size_t alg_bytes;
};

static size_t round256(size_t b) { return (b + 255) & ~(size_t)255; }

/* Workspace for `alg_bytes` of algorithm scratch plus the permuted filter (and gradient). */
static int get_ws(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, size_t alg_bytes, const float *weight,
                  int want_dw, struct conv_ws *ws, struct cryo_error *err)
{
    const struct cryo_nn_conv3d *g = &e->g;
    size_t wn = (size_t)g->cin * g->cout * g->k * g->k * g->k;
    size_t bytes = round256(alg_bytes) + (e->krsc ? round256(wn * sizeof(float)) * (want_dw ? 2 : 1) : 0);
    char *base = (char *)cu_host->workspace(ctx, bytes ? bytes : 256, err);
    if (!base)
        return CRYO_E_NOMEM;
    ws->alg = alg_bytes ? base : NULL;
    ws->alg_bytes = alg_bytes;
    ws->w = (float *)weight;
    ws->dw = NULL;
    if (e->krsc) {
        int K = e->transposed ? g->cin : g->cout, C = e->transposed ? g->cout : g->cin, KS = g->k * g->k * g->k;
        ws->w = (float *)(base + round256(alg_bytes));
        if (want_dw)
            ws->dw = (float *)(base + round256(alg_bytes) + round256(wn * sizeof(float)));
        if (weight) {
            k_w_to_krsc<<<cu_blocks(wn, 256), 256>>>(ws->w, weight, K, C, KS);
            CRYO_TRY(cu_launched("conv filter permute", err));
        }
    }
    return CRYO_OK;
}

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static int out_tokens(const struct cryo_nn_conv3d *g, int transposed, int64_t *T)
{
    int od, oh, ow;
    if (transposed) {
        od = (g->d - 1) * g->stride - 2 * g->pad + g->k;
        oh = (g->h - 1) * g->stride - 2 * g->pad + g->k;
        ow = (g->w - 1) * g->stride - 2 * g->pad + g->k;
    } else {
        od = (g->d + 2 * g->pad - g->k) / g->stride + 1;
        oh = (g->h + 2 * g->pad - g->k) / g->stride + 1;
        ow = (g->w + 2 * g->pad - g->k) / g->stride + 1;
    }
    *T = (int64_t)g->n * od * oh * ow;
    return CRYO_OK;
}

/* Y = conv(X) */
static int run_fwd(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, float *y, const float *x,
                   struct conv_ws *ws, struct cryo_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    return cu_check_dnn(cudnnConvolutionForward(cu_state(ctx)->dnn, &one, e->x, x, e->w, ws->w, e->conv[CV_FWD],
                                                e->fwd, ws->alg, ws->alg_bytes, &zero, e->y, y),
                        "cudnnConvolutionForward", err);
}

/* dX = convᵀ(dY) */
static int run_bwd_data(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, float *dx, const float *dy,
                        struct conv_ws *ws, struct cryo_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    return cu_check_dnn(cudnnConvolutionBackwardData(cu_state(ctx)->dnn, &one, e->w, ws->w, e->y, dy, e->conv[CV_DATA],
                                                     e->bwd_data, ws->alg, ws->alg_bytes, &zero, e->x, dx),
                        "cudnnConvolutionBackwardData", err);
}

/* dweight (PyTorch layout) += Σ X ⊗ dY */
static int run_bwd_filter(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, float *dweight, const float *x,
                          const float *dy, struct conv_ws *ws, struct cryo_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    const struct cryo_nn_conv3d *g = &e->g;
    float *dst = e->krsc ? ws->dw : dweight;
    CRYO_TRY(cu_check_dnn(cudnnConvolutionBackwardFilter(cu_state(ctx)->dnn, &one, e->x, x, e->y, dy,
                                                         e->conv[CV_FILTER], e->bwd_filter, ws->alg, ws->alg_bytes,
                                                         e->krsc ? &zero : &one, e->w, dst),
                          "cudnnConvolutionBackwardFilter", err));
    if (!e->krsc)
        return CRYO_OK;
    int K = e->transposed ? g->cin : g->cout, C = e->transposed ? g->cout : g->cin, KS = g->k * g->k * g->k;
    size_t wn = (size_t)K * C * KS;
    k_w_from_krsc_acc<<<cu_blocks(wn, 256), 256>>>(dweight, ws->dw, K, C, KS);
    return cu_launched("conv filter gradient permute", err);
}

/* ---- bf16 plans (see the top of the file) ---------------------------------------------- */

/* KCRS float32 (PyTorch) -> bf16, in KRSC when krsc else as is */
__global__ void k_w_to_bf16(__nv_bfloat16 *dst, const float *src, int K, int C, int KS, int krsc)
{
    size_t n = (size_t)K * C * KS;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t k = i / ((size_t)C * KS), c = i / KS % C, s = i % KS;
        dst[krsc ? (k * KS + s) * C + c : i] = __float2bfloat16_rn(src[i]);
    }
}

/* dst (KCRS float32) += src (bf16, KRSC when krsc else KCRS) */
__global__ void k_w_acc_bf16(float *dst, const __nv_bfloat16 *src, int K, int C, int KS, int krsc)
{
    size_t n = (size_t)K * C * KS;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t k = i / ((size_t)C * KS), c = i / KS % C, s = i % KS;
        dst[i] += __bfloat162float(src[krsc ? (k * KS + s) * C + c : i]);
    }
}

struct bf_ws {
    void *alg;
    size_t alg_bytes;
    __nv_bfloat16 *w, *dw; /* filter as cuDNN reads it; its gradient (NULL unless asked) */
    __nv_bfloat16 *xs, *ys; /* a tensor the size of X, one the size of Y */
};

/* Workspace for a bf16 plan; the filter cast in when `weight` is given. */
static int get_bf_ws(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, size_t alg_bytes, const float *weight,
                     int want_dw, struct bf_ws *ws, struct cryo_error *err)
{
    const struct cryo_nn_conv3d *g = &e->g;
    const size_t b = sizeof(__nv_bfloat16), wb = round256(e->nw * b);
    size_t off_w = round256(alg_bytes), off_dw = off_w + wb, off_x = off_dw + (want_dw ? wb : 0);
    size_t off_y = off_x + round256(e->nx * b), bytes = off_y + round256(e->ny * b);
    char *base = (char *)cu_host->workspace(ctx, bytes, err);
    if (!base)
        return CRYO_E_NOMEM;
    ws->alg = alg_bytes ? base : NULL;
    ws->alg_bytes = alg_bytes;
    ws->w = (__nv_bfloat16 *)(base + off_w);
    ws->dw = want_dw ? (__nv_bfloat16 *)(base + off_dw) : NULL;
    ws->xs = (__nv_bfloat16 *)(base + off_x);
    ws->ys = (__nv_bfloat16 *)(base + off_y);
    if (weight) {
        int K = e->transposed ? g->cin : g->cout, C = e->transposed ? g->cout : g->cin, KS = g->k * g->k * g->k;
        k_w_to_bf16<<<cu_blocks(e->nw, 256), 256>>>(ws->w, weight, K, C, KS, e->krsc);
        CRYO_TRY(cu_launched("conv filter to bf16", err));
    }
    return CRYO_OK;
}

/* ys = conv(xs) */
static int bf_fwd(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, struct bf_ws *ws, struct cryo_error *err)
{
    const float one = 1.0f, zero = 0.0f; /* float scaling factors for bf16 data */
    return cu_check_dnn(cudnnConvolutionForward(cu_state(ctx)->dnn, &one, e->x, ws->xs, e->w, ws->w,
                                                e->conv[CV_FWD], e->fwd, ws->alg, ws->alg_bytes, &zero, e->y, ws->ys),
                        "cudnnConvolutionForward (bf16)", err);
}

/* xs = convᵀ(ys) */
static int bf_bwd_data(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, struct bf_ws *ws, struct cryo_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    return cu_check_dnn(cudnnConvolutionBackwardData(cu_state(ctx)->dnn, &one, e->w, ws->w, e->y, ws->ys,
                                                     e->conv[CV_DATA], e->bwd_data, ws->alg, ws->alg_bytes, &zero,
                                                     e->x, ws->xs),
                        "cudnnConvolutionBackwardData (bf16)", err);
}

/* dweight (float32, PyTorch layout) += Σ xs ⊗ ys, through the bf16 gradient ws->dw */
static int bf_bwd_filter(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, float *dweight, struct bf_ws *ws,
                         struct cryo_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    const struct cryo_nn_conv3d *g = &e->g;
    CRYO_TRY(cu_check_dnn(cudnnConvolutionBackwardFilter(cu_state(ctx)->dnn, &one, e->x, ws->xs, e->y, ws->ys,
                                                         e->conv[CV_FILTER], e->bwd_filter, ws->alg, ws->alg_bytes,
                                                         &zero, e->w, ws->dw),
                          "cudnnConvolutionBackwardFilter (bf16)", err));
    int K = e->transposed ? g->cin : g->cout, C = e->transposed ? g->cout : g->cin, KS = g->k * g->k * g->k;
    k_w_acc_bf16<<<cu_blocks(e->nw, 256), 256>>>(dweight, ws->dw, K, C, KS, e->krsc);
    return cu_launched("conv filter gradient from bf16", err);
}

/* conv forward: X = inp -> Y = out; convT forward: Y = inp -> X = out. Bias in float32. */
static int bf_forward(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, float *out, const float *inp,
                      const float *weight, const float *bias, struct cryo_error *err)
{
    const struct cryo_nn_conv3d *g = &e->g;
    struct bf_ws ws;
    CRYO_TRY(get_bf_ws(ctx, e, e->transposed ? e->ws_data : e->ws_fwd, weight, 0, &ws, err));
    const float *b = g->bias ? bias : NULL;
    if (e->transposed) {
        CRYO_TRY(cu_to_bf16(ws.ys, inp, e->ny, err));
        CRYO_TRY(bf_bwd_data(ctx, e, &ws, err));
        return cu_from_bf16(out, ws.xs, e->nx, b, g->cout, err);
    }
    CRYO_TRY(cu_to_bf16(ws.xs, inp, e->nx, err));
    CRYO_TRY(bf_fwd(ctx, e, &ws, err));
    return cu_from_bf16(out, ws.ys, e->ny, b, g->cout, err);
}

/* conv: dY = dout, X = inp, dX = dinp; convT: dX = dout, Y side = inp and dinp.
 * The filter gradient first, then the data gradient over the bf16 copy of inp. */
static int bf_backward(struct cryo_nn_ctx *ctx, struct cu_conv_entry *e, float *dinp, float *dweight,
                       const float *dout, const float *inp, const float *weight, struct cryo_error *err)
{
    if (!dinp && !dweight)
        return CRYO_OK;
    struct bf_ws ws;
    size_t alg = max3(dinp ? (e->transposed ? e->ws_fwd : e->ws_data) : 0, dweight ? e->ws_filter : 0, 0);
    CRYO_TRY(get_bf_ws(ctx, e, alg, dinp ? weight : NULL, dweight != NULL, &ws, err));
    __nv_bfloat16 *dside = e->transposed ? ws.xs : ws.ys, *iside = e->transposed ? ws.ys : ws.xs;
    const size_t nd = e->transposed ? e->nx : e->ny, ni = e->transposed ? e->ny : e->nx;
    CRYO_TRY(cu_to_bf16(dside, dout, nd, err));
    if (dweight) {
        CRYO_TRY(cu_to_bf16(iside, inp, ni, err));
        CRYO_TRY(bf_bwd_filter(ctx, e, dweight, &ws, err));
    }
    if (dinp) { /* conv: xs = convᵀ(ys); convT: ys = conv(xs) */
        CRYO_TRY(e->transposed ? bf_fwd(ctx, e, &ws, err) : bf_bwd_data(ctx, e, &ws, err));
        CRYO_TRY(cu_from_bf16(dinp, iside, ni, NULL, 0, err));
    }
    return CRYO_OK;
}

int cu_conv3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                      const float *bias, const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    struct cu_conv_entry *e = NULL;
    CRYO_TRY(plan_for(ctx, g, 0, &e, err));
    if (e->bf16)
        return bf_forward(ctx, e, out, inp, weight, bias, err);
    struct conv_ws ws;
    CRYO_TRY(get_ws(ctx, e, e->ws_fwd, weight, 0, &ws, err));
    CRYO_TRY(run_fwd(ctx, e, out, inp, &ws, err));
    if (g->bias) {
        int64_t T;
        out_tokens(g, 0, &T);
        CRYO_TRY(cu_add_bias(out, bias, T, g->cout, err));
    }
    return CRYO_OK;
}

int cu_conv3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, const struct cryo_nn_conv3d *g,
                       struct cryo_error *err)
{
    struct cu_conv_entry *e = NULL;
    CRYO_TRY(plan_for(ctx, g, 0, &e, err));
    if (e->bf16) {
        CRYO_TRY(bf_backward(ctx, e, dinp, dweight, dout, inp, weight, err));
    } else {
        struct conv_ws ws;
        CRYO_TRY(get_ws(ctx, e, max3(dinp ? e->ws_data : 0, dweight ? e->ws_filter : 0, 0), dinp ? weight : NULL,
                        dweight != NULL, &ws, err));
        if (dinp)
            CRYO_TRY(run_bwd_data(ctx, e, dinp, dout, &ws, err));
        if (dweight)
            CRYO_TRY(run_bwd_filter(ctx, e, dweight, inp, dout, &ws, err));
    }
    if (dbias && g->bias) {
        int64_t T;
        out_tokens(g, 0, &T);
        CRYO_TRY(cu_colsum_acc(ctx, dbias, dout, T, g->cout, err));
    }
    return CRYO_OK;
}

int cu_convt3d_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *weight,
                       const float *bias, const struct cryo_nn_conv3d *g, struct cryo_error *err)
{
    struct cu_conv_entry *e = NULL;
    CRYO_TRY(plan_for(ctx, g, 1, &e, err));
    if (e->bf16)
        return bf_forward(ctx, e, out, inp, weight, bias, err);
    struct conv_ws ws;
    CRYO_TRY(get_ws(ctx, e, e->ws_data, weight, 0, &ws, err));
    CRYO_TRY(run_bwd_data(ctx, e, out, inp, &ws, err));
    if (g->bias) {
        int64_t T;
        out_tokens(g, 1, &T);
        CRYO_TRY(cu_add_bias(out, bias, T, g->cout, err));
    }
    return CRYO_OK;
}

int cu_convt3d_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const struct cryo_nn_conv3d *g,
                        struct cryo_error *err)
{
    struct cu_conv_entry *e = NULL;
    CRYO_TRY(plan_for(ctx, g, 1, &e, err));
    if (e->bf16) {
        CRYO_TRY(bf_backward(ctx, e, dinp, dweight, dout, inp, weight, err));
    } else {
        struct conv_ws ws;
        CRYO_TRY(get_ws(ctx, e, max3(dinp ? e->ws_fwd : 0, dweight ? e->ws_filter : 0, 0), dinp ? weight : NULL,
                        dweight != NULL, &ws, err));
        if (dinp)
            CRYO_TRY(run_fwd(ctx, e, dinp, dout, &ws, err));
        if (dweight) /* X = dout (the larger grid), dY = inp */
            CRYO_TRY(run_bwd_filter(ctx, e, dweight, dout, inp, &ws, err));
    }
    if (dbias && g->bias) {
        int64_t T;
        out_tokens(g, 1, &T);
        CRYO_TRY(cu_colsum_acc(ctx, dbias, dout, T, g->cout, err));
    }
    return CRYO_OK;
}
