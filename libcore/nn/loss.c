/* loss.c — training losses with their gradients (see nn_train.h for the definitions).
 *
 * Sums run in double: a 48³ batch has ~10⁵–10⁶ terms, whose float sum would lose the
 * digits the PyTorch comparison checks. NaN/Inf in the prediction is an error, not a loss.
 */
#include "cryolvm/nn_train.h"

#include <math.h>
#include <stdlib.h>


static int check_args(const float *pred, const float *target, size_t n, struct cryo_error *err)
{
    if (!pred || !target || n == 0)
        return cryo_fail(err, CRYO_E_INVALID, "loss: empty or missing input");
    return CRYO_OK;
}

int cryo_loss_mse(double *loss, float *grad, const float *pred, const float *target, size_t n,
                  struct cryo_error *err)
{
    CRYO_TRY(check_args(pred, target, n, err));
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        s += d * d;
        if (grad)
            grad[i] = (float)(2.0 * d / (double)n);
    }
    if (!isfinite(s))
        return cryo_fail(err, CRYO_E_NUMERIC, "loss: prediction or target is not finite");
    *loss = s / (double)n;
    return CRYO_OK;
}

int cryo_loss_smooth_l1(double *loss, float *grad, const float *pred, const float *target,
                        size_t n, double beta, struct cryo_error *err)
{
    CRYO_TRY(check_args(pred, target, n, err));
    if (!(beta >= 0))
        return cryo_fail(err, CRYO_E_INVALID, "smooth L1: beta must be >= 0");
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i], a = fabs(d), g;
        if (a < beta) {
            s += 0.5 * d * d / beta;
            g = d / beta;
        } else {
            s += a - 0.5 * beta;
            g = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
        }
        if (grad)
            grad[i] = (float)(g / (double)n);
    }
    if (!isfinite(s))
        return cryo_fail(err, CRYO_E_NUMERIC, "loss: prediction or target is not finite");
    *loss = s / (double)n;
    return CRYO_OK;
}

int cryo_loss_combined(double *loss, float *grad, const float *pred, const float *target,
                       size_t n, double alpha, const struct cryo_hist_spec *spec,
                       struct cryo_error *err)
{
    if (!(alpha >= 0 && alpha <= 1))
        return cryo_fail(err, CRYO_E_INVALID, "combined loss: alpha must be in [0, 1]");
    double lm = 0, lh = 0;
    float *gh = NULL;
    if (grad && alpha < 1) {
        gh = malloc(n * sizeof *gh); /* n floats: n came from an existing array */
        if (!gh)
            return cryo_fail(err, CRYO_E_NOMEM, "combined loss: out of memory");
    }
    int rc = cryo_loss_mse(&lm, grad, pred, target, n, err);
    if (rc == 0 && alpha < 1)
        rc = cryo_histkl_loss(&lh, gh, pred, target, n, spec, err);
    if (rc == 0) {
        *loss = alpha * lm + (1 - alpha) * lh;
        if (grad)
            for (size_t i = 0; i < n; i++)
                grad[i] = (float)(alpha * grad[i] + (gh ? (1 - alpha) * gh[i] : 0.0));
    }
    free(gh);
    return rc;
}
