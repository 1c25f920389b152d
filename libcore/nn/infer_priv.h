/* infer_priv.h — private to libcore/nn/infer*.c: what the whole-map pass (infer.c) and the
 * tiled workers (infer_tiled.c) share. */
#ifndef CRYOLVM_INFER_PRIV_H
#define CRYOLVM_INFER_PRIV_H

#include "cryolvm/nn_infer.h"

/* The activation budget in bytes (max_bytes, or 80 % of physical memory). */
double cryo_infer_budget(const struct cryo_infer_opts *o);

/* Build the model for n boxes of b[3] (x, y, z) on ctx, refuse it if its activations times
 * `share` (the contexts whose models live in the same memory: the CPU ones) exceed the
 * budget, then load the weights. */
int cryo_infer_build_model(struct cryo_scunet **m, struct cryo_nn_ctx *ctx, const struct cryo_scunet_config *c,
                           const struct cryo_safetensors *w, int n, const int64_t b[3], double budget, int share,
                           struct cryo_error *err);

/* dst (b[0] × b[1] × b[2], x fastest) = src (n[3]) around `start`, reflected outside the
 * map; returns the largest value copied. */
float cryo_infer_fill_box(float *dst, const float *src, const int64_t n[3], const int64_t start[3],
                          const int64_t b[3]);

/* Tiled mode over ctxs[0..nctx) (nn_infer.h); dst (n[3]) is overwritten; rep's tile fields
 * are filled. Arguments already checked. */
int cryo_infer_tiled(float *dst, const float *src, const int64_t n[3], struct cryo_nn_ctx *const *ctxs, int nctx,
                     const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                     const struct cryo_infer_opts *o, const int64_t stride[3], struct cryo_infer_report *rep,
                     struct cryo_error *err);

#endif
