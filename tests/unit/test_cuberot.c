/* test_cuberot.c — the 24 cube rotations of the loader's augmentation:
 *   24 distinct signed permutations of determinant +1, identity first;
 *   closed under composition, with inverses, and apply(a) then apply(b) = apply(compose(a,b));
 *   rotating keeps every value (a permutation of voxels) and the channels of a voxel together;
 *   numpy (tests/ref/cuberot_ref.py, Debian /usr/bin/python3): the 24 outputs are exactly the
 *   arrays np.rot90 compositions reach, each equals its documented definition, and the mirror
 *   is np.flip along x. */
#include "cryolvm/cuberot.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int det3(const int perm[3], const int sign[3])
{
    int m[3][3] = {{0}};
    for (int d = 0; d < 3; d++)
        m[d][perm[d]] = sign[d];
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

TEST(twenty_four_distinct_proper_rotations)
{
    int seen[3][3][3][2][2][2] = {{{{{{0}}}}}};
    for (int r = 0; r < CRYO_CUBEROT_COUNT; r++) {
        int p[3], s[3];
        cryo_cuberot_get(r, p, s);
        CHECK_EQ_INT(det3(p, s), 1);
        int *slot = &seen[p[0]][p[1]][p[2]][s[0] > 0][s[1] > 0][s[2] > 0];
        CHECK_EQ_INT(*slot, 0);
        *slot = 1;
    }
    int p[3], s[3];
    cryo_cuberot_get(0, p, s);
    CHECK(p[0] == 0 && p[1] == 1 && p[2] == 2 && s[0] == 1 && s[1] == 1 && s[2] == 1);
}

static void fill(float *a, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)tu_rand(&seed);
}

TEST(closed_under_composition_and_apply_agrees)
{
    const int s = 5, C = 2;
    const size_t n = (size_t)s * s * s * C;
    float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4), *d = malloc(n * 4);
    fill(a, n, 11);
    for (int x = 0; x < CRYO_CUBEROT_COUNT; x++) {
        int has_inverse = 0;
        for (int y = 0; y < CRYO_CUBEROT_COUNT; y++) {
            int z = cryo_cuberot_compose(x, y);
            CHECK(z >= 0 && z < CRYO_CUBEROT_COUNT);
            has_inverse |= z == 0;
            cryo_cuberot_apply(b, a, s, C, x, 0);
            cryo_cuberot_apply(c, b, s, C, y, 0);
            cryo_cuberot_apply(d, a, s, C, z, 0);
            CHECK(memcmp(c, d, n * 4) == 0);
        }
        CHECK(has_inverse);
        CHECK_EQ_INT(cryo_cuberot_compose(0, x), x);
        CHECK_EQ_INT(cryo_cuberot_compose(x, 0), x);
    }
    free(a), free(b), free(c), free(d);
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

TEST(rotation_permutes_voxels_with_channels_together)
{
    const int s = 6, C = 3;
    const size_t nv = (size_t)s * s * s, n = nv * C;
    float *a = malloc(n * 4), *b = malloc(n * 4), *sa = malloc(n * 4), *sb = malloc(n * 4);
    fill(a, nv, 5);
    for (size_t i = nv; i-- > 0;) /* channel c of voxel i = value + c: kept together? */
        for (int c = 0; c < C; c++)
            a[i * C + c] = a[i] + (float)c * 10;
    for (int r = 0; r < CRYO_CUBEROT_COUNT; r++)
        for (int m = 0; m < 2; m++) {
            cryo_cuberot_apply(b, a, s, C, r, m);
            for (size_t i = 0; i < nv; i++)
                for (int c = 1; c < C; c++)
                    CHECK(b[i * C + c] == b[i * C] + (float)c * 10);
            memcpy(sa, a, n * 4);
            memcpy(sb, b, n * 4);
            qsort(sa, n, 4, cmp_float);
            qsort(sb, n, 4, cmp_float);
            CHECK(memcmp(sa, sb, n * 4) == 0);
        }
    free(a), free(b), free(sa), free(sb);
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

TEST(matches_numpy_rot90_compositions)
{
    /* tests/ref next to tests/unit, from this file's path (unit tests run at the top). */
    char ref[512];
    snprintf(ref, sizeof ref, "%s", __FILE__);
    char *u = strstr(ref, "tests/unit/");
    if (!u || access("/usr/bin/python3", X_OK) != 0) {
        printf("skipped: no /usr/bin/python3 or tests/ref\n");
        return;
    }
    strcpy(u, "tests/ref/cuberot_ref.py");
    if (access(ref, R_OK) != 0 || system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        printf("skipped: %s or numpy missing\n", ref);
        return;
    }
    const int s = 7, C = 2;
    const size_t n = (size_t)s * s * s * C;
    float *a = malloc(n * 4), *out = malloc(48 * n * 4);
    fill(a, n, 99);
    char in_p[512], out_p[512], tab_p[512], cmd[4096];
    snprintf(in_p, sizeof in_p, "%s/rot_in.f32", tu_tmpdir());
    snprintf(out_p, sizeof out_p, "%s/rot_out.f32", tu_tmpdir());
    snprintf(tab_p, sizeof tab_p, "%s/rot_table.txt", tu_tmpdir());
    FILE *t = fopen(tab_p, "w");
    CHECK(t != NULL);
    for (int r = 0; r < CRYO_CUBEROT_COUNT; r++) {
        int p[3], sg[3];
        cryo_cuberot_get(r, p, sg);
        fprintf(t, "%d %d %d %d %d %d\n", p[0], p[1], p[2], sg[0], sg[1], sg[2]);
        cryo_cuberot_apply(out + (size_t)r * n, a, s, C, r, 0);
        cryo_cuberot_apply(out + (size_t)(24 + r) * n, a, s, C, r, 1);
    }
    fclose(t);
    CHECK(write_all(in_p, a, n * 4) == 0);
    CHECK(write_all(out_p, out, 48 * n * 4) == 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' check '%s' '%s' '%s' %d %d", ref, in_p, out_p, tab_p, s, C);
    CHECK(system(cmd) == 0);
    free(a), free(out);
}

int main(void)
{
    return RUN_TESTS(twenty_four_distinct_proper_rotations, closed_under_composition_and_apply_agrees,
                     rotation_permutes_voxels_with_channels_together, matches_numpy_rot90_compositions);
}
