/* model_impl.h — private to libcore/nn/model_*.c: the SCUNet-3D parameter table layout.
 *
 * The table lists every parameter tensor in a fixed order: head, then per encoder stage its
 * blocks and its downsampling conv, the bottleneck blocks, per decoder stage (deepest
 * first) its upsampling conv and its blocks, and the tail. Every block contributes
 * SC_NPARAM consecutive entries in the order of enum sc_param.
 */
#ifndef CRYOLVM_MODEL_IMPL_H
#define CRYOLVM_MODEL_IMPL_H

#include "cryolvm/nn_model.h"

enum sc_param {
    SC_W11, SC_B11, SC_W12, SC_B12,
    SC_WC1, SC_G1, SC_BE1, SC_TAU1, SC_WC2, SC_G2, SC_BE2, SC_TAU2,
    SC_LN1W, SC_LN1B, SC_QKVW, SC_QKVB, SC_RELB, SC_PROJW, SC_PROJB,
    SC_LN2W, SC_LN2B, SC_FC1W, SC_FC1B, SC_FC2W, SC_FC2B,
    SC_NPARAM
};

/* Indices of the non-block entries, filled by scunet_table. */
struct sc_layout {
    size_t head, tail;
    size_t down[CRYO_SCUNET_MAX_LEVELS], up[CRYO_SCUNET_MAX_LEVELS];
    size_t enc[CRYO_SCUNET_MAX_LEVELS]; /* first entry of the first block of enc.l */
    size_t body;
    size_t dec[CRYO_SCUNET_MAX_LEVELS];
};

/* Bump planner for arenas: run once with base NULL to size, then on the allocation. */
struct plan {
    float *base;
    size_t off, max;
};

static inline float *plan_take(struct plan *p, size_t n)
{
    size_t o = p->off;
    p->off += (n + 15) & ~(size_t)15; /* 64-byte alignment for every buffer */
    if (p->off > p->max)
        p->max = p->off;
    return p->base ? p->base + o : NULL;
}

/* Build the table (malloc'ed, caller frees) of a checked config; *nfloats = arena size. */
int scunet_table(const struct cryo_scunet_config *c, struct cryo_nn_param **tab, size_t *n,
                 size_t *nfloats, struct sc_layout *lay, struct cryo_error *err);

#endif
