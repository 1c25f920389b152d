/* nn_infer.h — run a SCUNet-3D (nn_model.h) over a map of any box: overlapping tiles with
 * blended merge, empty tiles skipped, tiles batched; or the whole map in one pass.
 *
 * Input and output are one-channel float32 volumes on the same grid (the caller has
 * already resampled and normalised the map, see lvm-apply(1)); the output gets the input's
 * geometry and metadata.
 *
 * Tiled mode (tile > 0): the tiles are those of patch.h (cryo_tiling_plan: along an axis of
 * n voxels with tile s and stride t, ceil(n/t) tiles start at k t - (s - t)/2). Parts of a
 * tile outside the map are filled by reflection (numpy 'reflect', cryo_reflect_index), so a
 * border voxel sees the same surroundings as in whole-map mode below. Each tile's output is
 * added with the separable blending weight w(i) w(j) w(k) of patch.h (Gaussian, sigma = s/8,
 * by default) and the merged voxel is sum(w y) / sum(w) over every tile covering it.
 * Because the tiling is a product of three 1-D tilings, sum(w) is the product of three 1-D
 * sums: only the numerator needs a full-size buffer.
 *
 * Empty tiles: a tile whose input values are all <= skip_max is not run; its output counts
 * as 0 with its normal weight. With the normalisation of CryoLVM (quantile clip to [0, 1])
 * the default skip_max = 0 skips exactly the tiles that are entirely at or below the 1 %
 * quantile, e.g. the flattened solvent of a masked map.
 *
 * Whole-map mode (tile = 0, or a tile that already covers the map): the map is padded by
 * reflection at the high end of each axis to the next multiple of 2^levels, run in one
 * pass, and cropped back. This is the reference the tiled mode is measured against.
 *
 * Memory: the model's activations for batch × tile (or the padded map), one staging buffer
 * of the same size, and one float per voxel for the merge. Before anything is touched the
 * activation bytes are compared with max_bytes (CRYO_E_NOMEM, saying what would fit).
 *
 * Several contexts (cryo_infer_run_multi, tiled mode): one thread per context, each with its
 * own model and its own copy of the weights; the batches (batch consecutive non-empty tiles,
 * exactly those of one context) are handed out one at a time from a shared counter, so a
 * faster device takes more. The blend into the output happens strictly in tile order
 * (whichever thread finds the next batch done adds it in), so the output is bit-identical
 * to cryo_infer_run on one context whenever the contexts compute identical tiles (the same
 * backend with the same thread count), and within the devices' rounding otherwise. Each
 * extra context costs its model's activations and weights on its device (the activation
 * check applies per device; CPU contexts share host memory, so there their sum is
 * checked) and, in host memory, two staging buffers of batch × tile floats (the first
 * context too, when there are several). Whole-map mode is one pass: it runs on ctxs[0].
 * The progress callback is never called by two threads at once, but it may be called from
 * a worker thread.
 *
 * Errors: CRYO_E_INVALID (options, a config with in_ch or out_ch != 1, a tile not a
 * multiple of 2^levels, a non-float32 or multi-channel input, a context given twice),
 * CRYO_E_NOMEM, and those of cryo_scunet_create / _load / _forward (with several contexts,
 * the first failure, prefixed with its device, e.g. "cuda:1: ...").
 */
#ifndef CRYOLVM_NN_INFER_H
#define CRYOLVM_NN_INFER_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/patch.h"
#include "cryolvm/safetensors.h"
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_infer_opts {
    int64_t tile[3];    /* x, y, z tile edges, multiples of 2^levels; all 0 = whole map */
    int64_t stride[3];  /* 1..tile; 0 = tile (no overlap) */
    int batch;          /* tiles per forward pass, >= 1 */
    int skip_empty;     /* 1: skip tiles whose input is all <= skip_max */
    double skip_max;
    enum cryo_blend blend;
    double max_bytes;   /* activation budget in bytes; 0 = 80 % of physical memory */
    /* Called after each forward pass (may be NULL): tiles done (run or skipped) of total. */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *user;
};
/* tile 64³, stride 48, batch 1, skip empty tiles at <= 0, Gaussian blending. */
void cryo_infer_opts_default(struct cryo_infer_opts *o);

struct cryo_infer_report {
    int whole;                 /* 1 if the map went through in one pass */
    int64_t tiles, skipped;    /* tiles planned, tiles not run */
    int64_t passes;            /* forward passes */
    int64_t box[3];            /* x, y, z box of one pass (tile or padded map) */
    double activation_bytes;   /* of the model built */
    double flops;              /* network FLOPs spent (cryo_scunet_flops per pass) */
    int contexts;              /* contexts that took part (1 for the whole map) */
};

/* out = the network `c` with weights `w` applied to `in`, as described above. out must not
 * be in; it is replaced. ctx is the compute context (borrowed), used on the calling thread. */
int cryo_infer_run(struct cryo_volume *out, const struct cryo_volume *in, struct cryo_nn_ctx *ctx,
                   const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                   const struct cryo_infer_opts *o, struct cryo_infer_report *rep, struct cryo_error *err);

/* The same over ctxs[0..nctx) (borrowed, all different, 1 <= nctx <= CRYO_INFER_MAX_CONTEXTS;
 * see "Several contexts" above). With nctx = 1 it is cryo_infer_run; with more, each
 * context is used by one worker thread (no other thread may use it meanwhile) and only
 * as many contexts as there are batches take part. rep->passes counts the forward passes
 * of all contexts together, rep->activation_bytes is that of one context's model. */
#define CRYO_INFER_MAX_CONTEXTS 64
int cryo_infer_run_multi(struct cryo_volume *out, const struct cryo_volume *in, struct cryo_nn_ctx *const *ctxs,
                         int nctx, const struct cryo_scunet_config *c, const struct cryo_safetensors *w,
                         const struct cryo_infer_opts *o, struct cryo_infer_report *rep, struct cryo_error *err);

/* Contexts from a device list, for cryo_infer_run_multi: comma-separated entries, each
 * "cpu", "cuda" (the GPU of nn_backend.h's default rule), "cuda:N" (GPU N of the visible
 * ones) or "cuda:all" (every visible GPU, in order); or the single word "auto"
 * (cryo_nn_ctx_create_named). No GPU may appear twice (also not as "cuda" and "cuda:0");
 * "cpu" may: several CPU contexts share `nthreads` (0: the calling thread's OpenMP count),
 * each taking an equal part, at least 1 — for tests, or one context per NUMA node; on one
 * socket they are not faster than one context with every thread. One "cpu" alone gets
 * nthreads as given. On success ctxs[0..*n) are made (at most cap); free them with
 * cryo_infer_contexts_free. On failure none is left and *n is 0.
 * Errors: CRYO_E_INVALID (empty list or entry, a word that is not a device, "cuda:x",
 * "cuda:-1", a GPU twice, too many, a GPU index that is not visible), and those of
 * cryo_nn_ctx_create_named (a missing plugin or GPU), prefixed with the entry. */
int cryo_infer_contexts_create(struct cryo_nn_ctx **ctxs, int cap, int *n, const char *list, int nthreads,
                               struct cryo_error *err);
void cryo_infer_contexts_free(struct cryo_nn_ctx **ctxs, int n);

#ifdef __cplusplus
}
#endif
#endif
