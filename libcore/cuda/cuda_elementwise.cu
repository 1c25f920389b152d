/* cuda_elementwise.cu — memory-bound ops on the GPU: fill, accumulate, GELU (exact erf
 * form), ReLU, row softmax, channel concat/split, residual add, cyclic shift, per-sample
 * scaling. Grid-stride loops, one element per thread per step. */
#include <math.h>

#include "cuda/cuda_priv.h"

#define PER 256

#define GRID_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void k_fill(float *p, float v, size_t n)
{
    GRID_LOOP(i, n) p[i] = v;
}

__global__ void k_accumulate(float *d, const float *s, size_t n)
{
    GRID_LOOP(i, n) d[i] += s[i];
}

__global__ void k_add(float *o, const float *a, const float *b, size_t n)
{
    GRID_LOOP(i, n) o[i] = a[i] + b[i];
}

__global__ void k_scale(float *o, const float *a, float f, size_t n)
{
    GRID_LOOP(i, n) o[i] = a[i] * f;
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

__global__ void k_gelu_fwd(float *o, const float *x, size_t n)
{
    GRID_LOOP(i, n)
    {
        float v = x[i];
        o[i] = 0.5f * v * erfcf(-v * INV_SQRT2);
    }
}

__global__ void k_gelu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
    GRID_LOOP(i, n)
    {
        float v = x[i];
        float cdf = 0.5f * erfcf(-v * INV_SQRT2), pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

__global__ void k_relu_fwd(float *o, const float *x, size_t n)
{
    GRID_LOOP(i, n) o[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void k_relu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
    GRID_LOOP(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

/* One warp per row. */
__global__ void k_softmax_fwd(float *out, const float *inp, int64_t rows, int cols)
{
    int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    const float *x = inp + (size_t)r * cols;
    float *y = out + (size_t)r * cols;
    float m = -INFINITY;
    for (int j = lane; j < cols; j += 32)
        m = fmaxf(m, x[j]);
    for (int o = 16; o > 0; o >>= 1)
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (m == -INFINITY) {
        for (int j = lane; j < cols; j += 32)
            y[j] = 0.0f;
        return;
    }
    float s = 0.0f;
    for (int j = lane; j < cols; j += 32) {
        float e = expf(x[j] - m);
        y[j] = e;
        s += e;
    }
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    float inv = 1.0f / s;
    for (int j = lane; j < cols; j += 32)
        y[j] *= inv;
}

__global__ void k_softmax_bwd(float *dinp, const float *dout, const float *out, int64_t rows, int cols)
{
    int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    const float *dy = dout + (size_t)r * cols, *y = out + (size_t)r * cols;
    float *dx = dinp + (size_t)r * cols;
    float s = 0.0f;
    for (int j = lane; j < cols; j += 32)
        s += dy[j] * y[j];
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    __syncwarp();
    for (int j = lane; j < cols; j += 32) /* dx may alias dy: each lane reads its j first */
        dx[j] = y[j] * (dy[j] - s);
}

__global__ void k_concat(float *out, const float *a, const float *b, int64_t T, int ca, int cb)
{
    size_t c = (size_t)ca + cb, n = (size_t)T * c;
    GRID_LOOP(i, n)
    {
        size_t t = i / c, k = i % c;
        out[i] = k < (size_t)ca ? (a ? a[t * ca + k] : 0.0f) : (b ? b[t * cb + (k - ca)] : 0.0f);
    }
}

__global__ void k_split(float *a, float *b, const float *inp, int64_t T, int ca, int cb)
{
    size_t c = (size_t)ca + cb, n = (size_t)T * c;
    GRID_LOOP(i, n)
    {
        size_t t = i / c, k = i % c;
        if (k < (size_t)ca) {
            if (a)
                a[t * ca + k] = inp[i];
        } else if (b) {
            b[t * cb + (k - ca)] = inp[i];
        }
    }
}

/* out[n, (z+sd) mod D, (y+sh) mod H, (x+sw) mod W, :] = inp[n, z, y, x, :]; shifts in 0..L-1 */
__global__ void k_roll(float *out, const float *inp, int n, int d, int h, int w, int c, int sd, int sh,
                       int sw)
{
    size_t total = (size_t)n * d * h * w * c;
    GRID_LOOP(i, total)
    {
        size_t k = i % c, v = i / c;
        int xo = (int)(v % w), yo = (int)(v / w % h), zo = (int)(v / ((size_t)w * h) % d);
        size_t s = v / ((size_t)w * h * d);
        int zi = (zo - sd + d) % d, yi = (yo - sh + h) % h, xi = (xo - sw + w) % w;
        out[i] = inp[(((s * d + zi) * h + yi) * w + xi) * c + k];
    }
}

int cu_fill(struct cryo_nn_ctx *ctx, float *p, float v, size_t n, struct cryo_error *err)
{
    k_fill<<<cu_blocks(n, PER), PER>>>(p, v, n);
    return cu_launched("fill", err);
}

int cu_accumulate(struct cryo_nn_ctx *ctx, float *d, const float *s, size_t n, struct cryo_error *err)
{
    k_accumulate<<<cu_blocks(n, PER), PER>>>(d, s, n);
    return cu_launched("accumulate", err);
}

int cu_add_forward(struct cryo_nn_ctx *ctx, float *o, const float *a, const float *b, size_t n,
                   struct cryo_error *err)
{
    k_add<<<cu_blocks(n, PER), PER>>>(o, a, b, n);
    return cu_launched("add", err);
}

int cu_gelu_forward(struct cryo_nn_ctx *ctx, float *o, const float *x, size_t n, struct cryo_error *err)
{
    k_gelu_fwd<<<cu_blocks(n, PER), PER>>>(o, x, n);
    return cu_launched("gelu forward", err);
}

int cu_gelu_backward(struct cryo_nn_ctx *ctx, float *dx, const float *dy, const float *x, size_t n,
                     struct cryo_error *err)
{
    k_gelu_bwd<<<cu_blocks(n, PER), PER>>>(dx, dy, x, n);
    return cu_launched("gelu backward", err);
}

int cu_relu_forward(struct cryo_nn_ctx *ctx, float *o, const float *x, size_t n, struct cryo_error *err)
{
    k_relu_fwd<<<cu_blocks(n, PER), PER>>>(o, x, n);
    return cu_launched("relu forward", err);
}

int cu_relu_backward(struct cryo_nn_ctx *ctx, float *dx, const float *dy, const float *x, size_t n,
                     struct cryo_error *err)
{
    k_relu_bwd<<<cu_blocks(n, PER), PER>>>(dx, dy, x, n);
    return cu_launched("relu backward", err);
}

static unsigned warp_blocks(int64_t rows) { return (unsigned)((rows * 32 + PER - 1) / PER); }

int cu_softmax_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int64_t rows, int cols,
                       struct cryo_error *err)
{
    if (rows * 32 / PER >= (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: softmax over %lld rows", (long long)rows);
    k_softmax_fwd<<<warp_blocks(rows), PER>>>(out, inp, rows, cols);
    return cu_launched("softmax forward", err);
}

int cu_softmax_backward(struct cryo_nn_ctx *ctx, float *dinp, const float *dout, const float *out,
                        int64_t rows, int cols, struct cryo_error *err)
{
    if (rows * 32 / PER >= (int64_t)INT32_MAX)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: softmax over %lld rows", (long long)rows);
    k_softmax_bwd<<<warp_blocks(rows), PER>>>(dinp, dout, out, rows, cols);
    return cu_launched("softmax backward", err);
}

int cu_concat_forward(struct cryo_nn_ctx *ctx, float *out, const float *a, const float *b, int64_t T,
                      int ca, int cb, struct cryo_error *err)
{
    k_concat<<<cu_blocks((size_t)T * (ca + cb), PER), PER>>>(out, a, b, T, ca, cb);
    return cu_launched("concat", err);
}

int cu_split_forward(struct cryo_nn_ctx *ctx, float *a, float *b, const float *inp, int64_t T, int ca,
                     int cb, struct cryo_error *err)
{
    k_split<<<cu_blocks((size_t)T * (ca + cb), PER), PER>>>(a, b, inp, T, ca, cb);
    return cu_launched("split", err);
}

int cu_roll_forward(struct cryo_nn_ctx *ctx, float *out, const float *inp, int n, int d, int h, int w,
                    int c, int sd, int sh, int sw, struct cryo_error *err)
{
    k_roll<<<cu_blocks((size_t)n * d * h * w * c, PER), PER>>>(out, inp, n, d, h, w, c, sd, sh, sw);
    return cu_launched("roll", err);
}

/* s is on the host (the drop-path factors): one launch per sample. */
int cu_scale_samples(struct cryo_nn_ctx *ctx, float *out, const float *inp, const float *s, int N,
                     size_t per_sample, struct cryo_error *err)
{
    for (int i = 0; i < N; i++) {
        size_t off = (size_t)i * per_sample;
        k_scale<<<cu_blocks(per_sample, PER), PER>>>(out + off, inp + off, s[i], per_sample);
    }
    return cu_launched("scale samples", err);
}
