/* jepa_mask.h — I-JEPA's multi-block masks, in 3D, on a token grid.
 *
 * Rule (Assran et al. 2023, I-JEPA, MaskCollator; here with a third axis):
 *   - Per batch, one block shape: volume fraction s ~ U(scale_min, scale_max) of the grid's
 *     tokens, two aspect ratios r_zy = d/h and r_yx = h/w, each log-uniform in
 *     [aspect_min, aspect_max]; sides h = round(cbrt(s·T·r_yx/r_zy)), d = round(r_zy·h),
 *     w = round(h/r_yx), each at least 1 and, as I-JEPA's "while h >= height" loop, shrunk
 *     to at most grid − 1 along any axis longer than one token.
 *   - Per sample, `targets` blocks of that shape at independent uniform positions; the
 *     target set is their union. The context is the complement (I-JEPA draws a context
 *     block of scale 0.85–1 and removes the targets; we take the whole complement, which
 *     is its scale-1 case). A sample whose context keeps fewer than min_keep tokens is
 *     redrawn (positions only) up to 20 times, then the block shape is shrunk by one token
 *     per axis and the draws repeat.
 *   - Randomness is counter-based: the shape is a function of (seed, step), the positions of
 *     sample i of (seed, step, i), so a sample's mask does not depend on which process or
 *     batch slot draws it (data-parallel ranks draw their own samples and agree).
 * Output: mask[i·T + t] = 1 for a target token of sample i, 0 for context; T = gd·gh·gw,
 * tokens z-major (z, y, x) like every activation.
 */
#ifndef CRYOLVM_JEPA_MASK_H
#define CRYOLVM_JEPA_MASK_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_jepa_mask_opts {
    int targets;                   /* blocks per sample, 4 */
    double scale_min, scale_max;   /* block volume / grid volume, 0.15 .. 0.2 */
    double aspect_min, aspect_max; /* 0.75 .. 1.5 */
    int min_keep;                  /* context tokens to keep at least, 4 (or fewer on tiny grids) */
};
void cryo_jepa_mask_opts_default(struct cryo_jepa_mask_opts *o);
int cryo_jepa_mask_opts_check(const struct cryo_jepa_mask_opts *o, struct cryo_error *err);

/* One block: corner and sides in tokens (z, y, x). */
struct cryo_mask_block {
    int z0, y0, x0, d, h, w;
};

/* Masks for n samples whose global indices are first, first+1, ... of batch `step`.
 * mask: n·gd·gh·gw bytes. blocks (may be NULL): n·targets entries, sample-major. */
int cryo_jepa_mask_draw(uint8_t *mask, struct cryo_mask_block *blocks, int n, int gd, int gh, int gw,
                        const struct cryo_jepa_mask_opts *o, uint64_t seed, uint64_t step,
                        uint64_t first, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
