/* wmsa_plan.h — the window geometry of a window-attention call, shared by backends.
 *
 * Per axis (0 = D, 1 = H, 2 = W) of extent L: the window is min(window, L); the shift is
 * window/2 when shifted windows are asked for and L >= window, else 0 (a window that
 * shrank to the grid does not shift, as the API promises); windows per axis is
 * ceil(L / window), the last one partial when L is not a multiple. Rolled position r holds
 * original position (r + shift) mod L; the mask region of r is (r >= L − shift).
 */
#ifndef CRYOLVM_NN_WMSA_PLAN_H
#define CRYOLVM_NN_WMSA_PLAN_H

#include <stddef.h>
#include "cryolvm/nn_layers.h"

struct cryo_nn_wmsa_plan {
    int len[3];    /* grid extent D, H, W */
    int win[3];    /* window extent along each axis */
    int shift[3];  /* cyclic shift (0 or window/2) */
    int nwin[3];   /* windows along each axis */
    int nwin_all;  /* windows per sample */
    int heads;
    int ntmax;     /* tokens in a full window */
    int table;     /* 2·window − 1: side of the relative-position table */
    size_t tokens; /* n·d·h·w */
    size_t att;    /* floats of saved probabilities: n · nwin_all · heads · ntmax² */
    size_t cache;  /* floats of the whole cache: tokens·3c (qkv) + tokens·c (y) + att */
};

/* Fill *p from *a; CRYO_E_INVALID for a bad geometry, CRYO_E_NOMEM on overflow. */
int cryo_nn_wmsa_plan(struct cryo_nn_wmsa_plan *p, const struct cryo_nn_wmsa *a,
                      struct cryo_error *err);

#endif
