/* cuberot.c — the 24 proper rotations of the cube as signed axis permutations (cuberot.h).
 * The table is built once from the definition (determinant +1 of the signed permutation
 * matrix) rather than typed in, so its order is the documented one by construction. */
#include "cryolvm/cuberot.h"

#include <pthread.h>
#include <stddef.h>

struct rot { int perm[3], sign[3]; };
static struct rot table[CRYO_CUBEROT_COUNT];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static int perm_parity(const int p[3])
{
    int inv = 0;
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            inv += p[i] > p[j];
    return inv & 1 ? -1 : 1;
}

static void build_table(void)
{
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    int n = 0;
    for (int p = 0; p < 6; p++)
        for (int s = 0; s < 8; s++) {
            /* x's sign slowest: bit 2 = x, bit 1 = y, bit 0 = z; a set bit is -1. */
            int sign[3] = {s & 4 ? -1 : 1, s & 2 ? -1 : 1, s & 1 ? -1 : 1};
            if (perm_parity(perms[p]) * sign[0] * sign[1] * sign[2] != 1)
                continue;
            for (int d = 0; d < 3; d++) {
                table[n].perm[d] = perms[p][d];
                table[n].sign[d] = sign[d];
            }
            n++;
        }
}

void cryo_cuberot_get(int r, int perm[3], int sign[3])
{
    pthread_once(&table_once, build_table);
    if (r < 0 || r >= CRYO_CUBEROT_COUNT)
        r = 0;
    for (int d = 0; d < 3; d++) {
        perm[d] = table[r].perm[d];
        sign[d] = table[r].sign[d];
    }
}

/* M[d][perm[d]] = sign[d]: (M_a M_b)[d][j] = sign_a[d] M_b[perm_a[d]][j]. */
int cryo_cuberot_compose(int a, int b)
{
    int pa[3], sa[3], pb[3], sb[3], pc[3], sc[3];
    cryo_cuberot_get(a, pa, sa);
    cryo_cuberot_get(b, pb, sb);
    for (int d = 0; d < 3; d++) {
        pc[d] = pb[pa[d]];
        sc[d] = sa[d] * sb[pa[d]];
    }
    for (int r = 0; r < CRYO_CUBEROT_COUNT; r++) {
        int p[3], s[3];
        cryo_cuberot_get(r, p, s);
        if (p[0] == pc[0] && p[1] == pc[1] && p[2] == pc[2] && s[0] == sc[0] && s[1] == sc[1] && s[2] == sc[2])
            return r;
    }
    return -1; /* unreachable: the rotations form a group */
}

void cryo_cuberot_apply(float *out, const float *in, int s, int channels, int r, int mirror)
{
    int perm[3], sign[3];
    cryo_cuberot_get(r, perm, sign);
    /* Input index of output voxel p: sum over d of stride[d] * (sign[d] > 0 ? p[perm[d]] :
     * s-1-p[perm[d]]), written as a base plus one step per output axis. */
    const ptrdiff_t stride_in[3] = {channels, (ptrdiff_t)s * channels, (ptrdiff_t)s * s * channels};
    ptrdiff_t base = 0, step[3] = {0, 0, 0};
    for (int d = 0; d < 3; d++) {
        if (sign[d] < 0)
            base += (ptrdiff_t)(s - 1) * stride_in[d];
        step[perm[d]] += sign[d] * stride_in[d];
    }
    if (mirror) { /* output x -> s-1-x */
        base += (ptrdiff_t)(s - 1) * step[0];
        step[0] = -step[0];
    }
    float *o = out;
    for (int z = 0; z < s; z++)
        for (int y = 0; y < s; y++) {
            const float *row = in + base + z * step[2] + y * step[1];
            for (int x = 0; x < s; x++, o += channels)
                for (int c = 0; c < channels; c++)
                    o[c] = row[x * step[0] + c];
        }
}
