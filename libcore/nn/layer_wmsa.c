/* layer_wmsa.c — public entry points of 3D window multi-head self-attention: the window
 * plan (shared by all backends, so they agree on partial and shrunk windows), checks,
 * dispatch. The math is described in nn_layers.h; the CPU version is libcore/cpu/wmsa.c. */
#include <limits.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_layers.h"
#include "nn/layer_util.h"
#include "nn/wmsa_plan.h"

int cryo_nn_wmsa_plan(struct cryo_nn_wmsa_plan *p, const struct cryo_nn_wmsa *a,
                      struct cryo_error *err)
{
    if (!a)
        return cryo_fail(err, CRYO_E_INVALID, "wmsa: NULL geometry");
    if (a->n < 1 || a->d < 1 || a->h < 1 || a->w < 1 || a->c < 1)
        return cryo_fail(err, CRYO_E_INVALID, "wmsa: grid %dx%dx%dx%d with %d channels: all must be >= 1",
                         a->n, a->d, a->h, a->w, a->c);
    if (a->head_dim < 1 || a->c % a->head_dim != 0)
        return cryo_fail(err, CRYO_E_INVALID, "wmsa: %d channels are not a whole number of heads of %d",
                         a->c, a->head_dim);
    if (a->window < 2 || a->window % 2 != 0 || a->window > 16)
        return cryo_fail(err, CRYO_E_INVALID, "wmsa: window %d must be even, in 2..16", a->window);
    if (a->shifted != 0 && a->shifted != 1)
        return cryo_fail(err, CRYO_E_INVALID, "wmsa: shifted must be 0 or 1, not %d", a->shifted);
    p->len[0] = a->d;
    p->len[1] = a->h;
    p->len[2] = a->w;
    p->ntmax = 1;
    p->nwin_all = 1;
    for (int i = 0; i < 3; i++) {
        int L = p->len[i];
        p->win[i] = L < a->window ? L : a->window;
        p->shift[i] = (a->shifted && L >= a->window) ? a->window / 2 : 0;
        p->nwin[i] = (L + p->win[i] - 1) / p->win[i];
        p->ntmax *= p->win[i];
        if ((size_t)p->nwin_all * (size_t)p->nwin[i] > (1u << 30))
            return cryo_fail(err, CRYO_E_NOMEM, "wmsa: too many windows");
        p->nwin_all *= p->nwin[i];
    }
    p->heads = a->c / a->head_dim;
    p->table = 2 * a->window - 1;
    size_t t, att, c3, q, tot;
    CRYO_TRY(cryo_count4(a->n, a->d, a->h, a->w, &t, err));
    if (t > (size_t)INT_MAX)
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "wmsa: %zu tokens: at most 2^31 - 1 per call", t);
    p->tokens = t;
    CRYO_TRY(cryo_count4(a->n, p->nwin_all, p->heads, (int64_t)p->ntmax * p->ntmax, &att, err));
    p->att = att;
    CRYO_TRY(cryo_mul_size(t, (size_t)a->c * 4, &c3, err));
    tot = c3 + att;
    if (tot < c3)
        return cryo_fail(err, CRYO_E_NOMEM, "wmsa: cache size overflows");
    CRYO_TRY(cryo_mul_size(tot, sizeof(float), &q, err));
    p->cache = tot;
    return CRYO_OK;
}

size_t cryo_nn_wmsa_cache_size(const struct cryo_nn_wmsa *a, struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    if (cryo_nn_wmsa_plan(&p, a, err) < 0)
        return 0;
    return p.cache;
}

int cryo_nn_wmsa_forward(struct cryo_nn_ctx *ctx, float *out, float *cache, const float *inp,
                         const float *qkv_weight, const float *qkv_bias, const float *rel_bias,
                         const float *proj_weight, const float *proj_bias,
                         const struct cryo_nn_wmsa *a, struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    NN_NEED_CTX("wmsa_forward");
    CRYO_TRY(cryo_nn_wmsa_plan(&p, a, err));
    NN_NEED_PTR("wmsa_forward", out);
    NN_NEED_PTR("wmsa_forward", inp);
    NN_NEED_PTR("wmsa_forward", qkv_weight);
    NN_NEED_PTR("wmsa_forward", qkv_bias);
    NN_NEED_PTR("wmsa_forward", rel_bias);
    NN_NEED_PTR("wmsa_forward", proj_weight);
    NN_NEED_PTR("wmsa_forward", proj_bias);
    NN_NEED("wmsa_forward", out != inp, "out must not alias inp");
    NN_DISPATCH("wmsa_forward", wmsa_forward, out, cache, inp, qkv_weight, qkv_bias, rel_bias,
                proj_weight, proj_bias, a);
}

int cryo_nn_wmsa_backward(struct cryo_nn_ctx *ctx, float *dinp, float *dqkv_weight,
                          float *dqkv_bias, float *drel_bias, float *dproj_weight,
                          float *dproj_bias, const float *dout, const float *inp,
                          const float *cache, const float *qkv_weight, const float *rel_bias,
                          const float *proj_weight, const struct cryo_nn_wmsa *a,
                          struct cryo_error *err)
{
    struct cryo_nn_wmsa_plan p;
    NN_NEED_CTX("wmsa_backward");
    CRYO_TRY(cryo_nn_wmsa_plan(&p, a, err));
    NN_NEED_PTR("wmsa_backward", dout);
    NN_NEED_PTR("wmsa_backward", inp);
    NN_NEED_PTR("wmsa_backward", cache);
    NN_NEED_PTR("wmsa_backward", qkv_weight);
    NN_NEED_PTR("wmsa_backward", rel_bias);
    NN_NEED_PTR("wmsa_backward", proj_weight);
    NN_NEED("wmsa_backward", dinp != dout, "dinp must not alias dout");
    NN_DISPATCH("wmsa_backward", wmsa_backward, dinp, dqkv_weight, dqkv_bias, drel_bias,
                dproj_weight, dproj_bias, dout, inp, cache, qkv_weight, rel_bias, proj_weight, a);
}
