/* cuda_wmsa_geo.cuh — window geometry of the attention kernels (cuda_wmsa.cu, and the bf16
 * GEMM path in cuda_wmsa_bf16.cu): which tokens a (window, head) block covers, their mask
 * labels and local coordinates, and the relative-position table index of a pair. */
#ifndef CRYOLVM_CUDA_WMSA_GEO_CUH
#define CRYOLVM_CUDA_WMSA_GEO_CUH

#include "nn/wmsa_plan.h"

struct win_geo {
    int s, nt, w0[3], ext[3];
};

__device__ static void window_geo(struct win_geo *g, const struct cryo_nn_wmsa_plan &p, int64_t wg)
{
    g->s = (int)(wg / p.nwin_all);
    int wi = (int)(wg % p.nwin_all);
    int wc[3] = {wi / (p.nwin[1] * p.nwin[2]), wi / p.nwin[2] % p.nwin[1], wi % p.nwin[2]};
    g->nt = 1;
    for (int a = 0; a < 3; a++) {
        g->w0[a] = wc[a] * p.win[a];
        int rest = p.len[a] - g->w0[a];
        g->ext[a] = rest < p.win[a] ? rest : p.win[a];
        g->nt *= g->ext[a];
    }
}

/* Local index -> (z, y, x) in the window, packed 10 bits each. */
__device__ static int local_of(int i, const int ext[3])
{
    int z = i / (ext[1] * ext[2]), y = i / ext[2] % ext[1], x = i % ext[2];
    return (z << 20) | (y << 10) | x;
}

__device__ static int rel_index(int li, int lj, int table, int off)
{
    int dz = (li >> 20) - (lj >> 20), dy = ((li >> 10) & 1023) - ((lj >> 10) & 1023), dx = (li & 1023) - (lj & 1023);
    return ((dz + off) * table + (dy + off)) * table + (dx + off);
}

/* Token row, mask label and local coordinate of local token i of window g. */
__device__ static void token_of(const struct cryo_nn_wmsa_plan &p, const struct win_geo &g, int i, int *tok,
                                int *lab, int *loc)
{
    int l = local_of(i, g.ext);
    int r[3] = {g.w0[0] + (l >> 20), g.w0[1] + ((l >> 10) & 1023), g.w0[2] + (l & 1023)}, o[3], b = 0;
    for (int a = 0; a < 3; a++) {
        o[a] = (r[a] + p.shift[a]) % p.len[a];
        if (p.shift[a] && r[a] >= p.len[a] - p.shift[a])
            b |= 1 << a;
    }
    *tok = (int)((((size_t)g.s * p.len[0] + o[0]) * p.len[1] + o[1]) * p.len[2] + o[2]);
    *lab = b;
    *loc = l;
}

#endif
