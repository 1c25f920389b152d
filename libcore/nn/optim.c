/* optim.c — AdamW, the warm-up + cosine schedule, gradient-norm clipping and EMA
 * (definitions in nn_train.h, matching torch.optim.AdamW and clip_grad_norm_).
 *
 * AdamW keeps PyTorch's order of operations (decay first, then the moments, then
 * addcdiv with the bias corrections folded as PyTorch folds them) so that a step agrees
 * with PyTorch's to float rounding, not just to the formula.
 */
#include "cryolvm/nn_train.h"
#include "nn/backend_impl.h"

#include <math.h>

void cryo_adamw_default(struct cryo_adamw *o)
{
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 1e-2;
}

void cryo_adamw_step_scalars(struct cryo_nn_adamw_step *s, const struct cryo_adamw *o, double lr,
                             int64_t t, int decay)
{
    s->b1 = (float)o->beta1;
    s->b2 = (float)o->beta2;
    s->a1 = (float)(1.0 - o->beta1); /* as PyTorch's alpha */
    s->a2 = (float)(1.0 - o->beta2);
    s->keep = decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
    double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    s->step_size = (float)(lr / bc1);
    s->bc2_sqrt = (float)sqrt(bc2);
    s->eps = (float)o->eps;
}

void cryo_adamw_apply(float *param, const float *grad, float *m, float *v, size_t n,
                      const struct cryo_nn_adamw_step *s)
{
    const float b1 = s->b1, b2 = s->b2, a1 = s->a1, a2 = s->a2, keep = s->keep;
    const float step_size = s->step_size, bc2_sqrt = s->bc2_sqrt, eps = s->eps;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i], p = param[i] * keep;
        float mi = b1 * m[i] + a1 * g;
        float vi = b2 * v[i] + a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

void cryo_adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                       const struct cryo_adamw *o, double lr, int64_t t, int decay)
{
    struct cryo_nn_adamw_step s;
    cryo_adamw_step_scalars(&s, o, lr, t, decay);
    cryo_adamw_apply(param, grad, m, v, n, &s);
}

double cryo_lr_at(const struct cryo_lr_schedule *s, int64_t t)
{
    if (s->warmup > 0 && t <= s->warmup)
        return s->lr * (double)t / (double)s->warmup;
    if (s->total <= s->warmup)
        return s->lr;
    if (t >= s->total)
        return s->min_lr;
    double f = (double)(t - s->warmup) / (double)(s->total - s->warmup);
    return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * f));
}

double cryo_clip_grad_norm(float *g, size_t n, double max_norm)
{
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * (double)g[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float c = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            g[i] *= c;
    }
    return norm;
}

void cryo_ema_update(float *ema, const float *p, size_t n, double decay)
{
    float d = (float)decay, r = (float)(1.0 - decay);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        ema[i] = d * ema[i] + r * p[i];
}

double cryo_cosine_ramp(double a, double b, int64_t t, int64_t total)
{
    if (total <= 0)
        return a;
    if (t >= total)
        return b;
    if (t <= 0)
        return a;
    return b + (a - b) * 0.5 * (1.0 + cos(M_PI * (double)t / (double)total));
}

double cryo_linear_ramp(double a, double b, int64_t t, int64_t total)
{
    if (total <= 0 || t <= 0)
        return a;
    if (t >= total)
        return b;
    return a + (b - a) * (double)t / (double)total;
}
