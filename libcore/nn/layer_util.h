/* layer_util.h — argument checks and dispatch shared by the public layer calls
 * (private to libcore/nn). Every layer_*.c validates once here, for every backend, then
 * calls the backend's op; a missing op is CRYO_E_UNSUPPORTED, never a fallback. */
#ifndef CRYOLVM_NN_LAYER_UTIL_H
#define CRYOLVM_NN_LAYER_UTIL_H

#include "nn/backend_impl.h"

#define NN_NEED_CTX(what)                                                        \
    do {                                                                         \
        if (!ctx)                                                                \
            return cryo_fail(err, CRYO_E_INVALID, "%s: NULL context", what);     \
    } while (0)

#define NN_NEED(what, cond, ...)                                                 \
    do {                                                                         \
        if (!(cond))                                                             \
            return cryo_fail(err, CRYO_E_INVALID, what ": " __VA_ARGS__);        \
    } while (0)

#define NN_NEED_PTR(what, p) NN_NEED(what, (p) != NULL, "%s is NULL", #p)

#define NN_DISPATCH(what, op, ...)                                                          \
    do {                                                                                    \
        if (!ctx->ops->op)                                                                  \
            return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: not implemented by the %s backend", \
                             what, ctx->ops->name);                                          \
        return ctx->ops->op(ctx, __VA_ARGS__, err);                                          \
    } while (0)

#endif
