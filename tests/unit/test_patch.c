/* test_patch.c — crops, tiles and their merge:
 *   reflect padding equals numpy's 'reflect' rule built by explicit mirroring;
 *   crops copy the right voxels of every channel, pad outside, and place the crop in Å;
 *   the tile plan covers every voxel with its central stride region;
 *   tile-then-merge returns the source to float rounding for odd sizes, sizes that are not
 *   multiples of the stride, several channels and every blend; blend weights are positive;
 *   the crop RNG is reproducible, stays in range and reaches every start position;
 *   missing, duplicate, foreign and unlabelled tiles are refused. */
#include "cryolvm/patch.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* numpy.pad(mode='reflect') index, built by walking outwards and bouncing off the ends. */
static int64_t reflect_walk(int64_t i, int64_t n)
{
    if (n == 1)
        return 0;
    int64_t p = 0, dir = 1;
    int64_t steps = i >= 0 ? i : -i;
    if (i < 0)
        dir = -1;
    for (int64_t s = 0; s < steps; s++) {
        if (p + dir < 0 || p + dir >= n)
            dir = -dir;
        p += dir;
    }
    return p;
}

TEST(reflect_matches_walk)
{
    for (int64_t n = 1; n < 7; n++)
        for (int64_t i = -25; i < 30; i++)
            CHECK_EQ_INT(cryo_reflect_index(i, n), reflect_walk(i, n));
}

static void make_vol(struct cryo_volume *v, int64_t c, int64_t nz, int64_t ny, int64_t nx)
{
    cryo_volume_init(v);
    cryo_volume_alloc(v, CRYO_DTYPE_F32, c, nz, ny, nx, NULL);
    v->apix[0] = 1.2, v->apix[1] = 0.8, v->apix[2] = 1.5;
    v->origin[0] = 10, v->origin[1] = -4, v->origin[2] = 2.5;
    uint64_t st = (uint64_t)(nx * 131 + ny * 7 + nz);
    for (size_t i = 0; i < cryo_volume_count(v); i++)
        ((float *)v->data)[i] = (float)(tu_rand(&st) * 10 + 0.5);
    cryo_meta_set(&v->meta, "source", "x.mrc", NULL);
    cryo_meta_set(&v->meta, "mrc.ispg", "1", NULL);
}

static float val(const struct cryo_volume *v, int64_t c, int64_t k, int64_t j, int64_t i)
{
    return ((const float *)v->data)[((c * v->nz + k) * v->ny + j) * v->nx + i];
}

TEST(crop_copies_pads_and_places)
{
    struct cryo_volume in, out;
    make_vol(&in, 2, 9, 8, 7);
    cryo_volume_init(&out);
    const int64_t start[3] = {-2, 3, 5}, size[3] = {6, 7, 6};
    for (int pad = 0; pad < 2; pad++) {
        CHECK_EQ_INT(cryo_patch_crop(&out, &in, start, size, (enum cryo_pad_mode)pad, 3, 10, NULL), 0);
        CHECK_EQ_INT(out.c, 2);
        for (int64_t c = 0; c < 2; c++)
            for (int64_t k = 0; k < 6; k++)
                for (int64_t j = 0; j < 7; j++)
                    for (int64_t i = 0; i < 6; i++) {
                        int64_t si = start[0] + i, sj = start[1] + j, sk = start[2] + k;
                        int inside = si >= 0 && si < 7 && sj < 8 && sk < 9;
                        float want = inside ? val(&in, c, sk, sj, si)
                                     : pad ? val(&in, c, cryo_reflect_index(sk, 9), cryo_reflect_index(sj, 8),
                                                 cryo_reflect_index(si, 7))
                                           : 0.0f;
                        CHECK(val(&out, c, k, j, i) == want);
                    }
        CHECK_CLOSE(out.origin[0], 10 - 2 * 1.2, 1e-12);
        CHECK_CLOSE(out.origin[2], 2.5 + 5 * 1.5, 1e-12);
        CHECK_CLOSE(out.apix[1], 0.8, 0);
        CHECK(strcmp(cryo_meta_get(&out.meta, "patch.origin"), "-2,3,5") == 0);
        CHECK(strcmp(cryo_meta_get(&out.meta, "patch.grid"), "7,8,9") == 0);
        CHECK(strcmp(cryo_meta_get(&out.meta, "patch.index"), "3") == 0);
        CHECK(strcmp(cryo_meta_get(&out.meta, "patch.count"), "10") == 0);
        CHECK(cryo_meta_get(&out.meta, "mrc.ispg") == NULL);
        CHECK(strcmp(cryo_meta_get(&out.meta, "source"), "x.mrc") == 0);
    }
    cryo_volume_free(&in);
    cryo_volume_free(&out);
}

TEST(tiling_covers_with_central_regions)
{
    const int64_t n[3] = {37, 12, 5}, size[3] = {16, 16, 8}, stride[3] = {10, 12, 3};
    struct cryo_tiling t;
    CHECK_EQ_INT(cryo_tiling_plan(&t, n, size, stride, NULL), 0);
    CHECK_EQ_INT(t.count[0], 4);
    CHECK_EQ_INT(t.count[1], 1);
    CHECK_EQ_INT(t.count[2], 2);
    for (int d = 0; d < 3; d++) {
        /* every voxel at least margin inside some tile */
        for (int64_t x = 0; x < n[d]; x++) {
            int ok = 0;
            for (int64_t k = 0; k < t.count[d]; k++) {
                int64_t s = k * stride[d] - t.margin[d];
                ok |= x - s >= t.margin[d] && s + size[d] - 1 - x >= t.margin[d];
            }
            CHECK(ok);
        }
    }
    int64_t start[3];
    cryo_tiling_start(&t, cryo_tiling_total(&t) - 1, start);
    CHECK_EQ_INT(start[0], 3 * 10 - 3);
    CHECK_EQ_INT(start[2], 3 - 2);
    const int64_t bad[3] = {17, 16, 8};
    CHECK_EQ_INT(cryo_tiling_plan(&t, n, size, bad, NULL), CRYO_E_INVALID);
}

static int tile_and_merge(const struct cryo_volume *in, const int64_t size[3], const int64_t stride[3],
                          enum cryo_pad_mode pad, enum cryo_blend b, struct cryo_volume *out)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    struct cryo_tiling t;
    if (cryo_tiling_plan(&t, n, size, stride, NULL) < 0)
        return -1;
    struct cryo_merger *m = NULL;
    cryo_merger_create(&m, b, NULL);
    struct cryo_volume tile;
    cryo_volume_init(&tile);
    int complete = 0, st = 0;
    int64_t total = cryo_tiling_total(&t);
    for (int64_t i = total - 1; i >= 0 && st == 0; i--) { /* any order */
        int64_t start[3];
        cryo_tiling_start(&t, i, start);
        st = cryo_patch_crop(&tile, in, start, size, pad, i, total, NULL);
        if (st == 0)
            st = cryo_merger_add(m, &tile, "tile", &complete, NULL);
        if (st == 0 && complete != (i == 0))
            st = -2;
    }
    if (st == 0)
        st = cryo_merger_take(m, out, NULL);
    cryo_volume_free(&tile);
    cryo_merger_free(m);
    return st;
}

TEST(tile_then_merge_is_identity)
{
    const int64_t shapes[][3] = {{37, 23, 19}, {48, 48, 48}, {5, 31, 9}};
    const int64_t sizes[][3] = {{16, 16, 16}, {48, 48, 48}, {8, 12, 16}};
    const int64_t strides[][3] = {{12, 10, 7}, {12, 12, 12}, {8, 5, 3}};
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < 3; b++) {
            struct cryo_volume in, out;
            make_vol(&in, s == 2 ? 2 : 1, shapes[s][2], shapes[s][1], shapes[s][0]);
            cryo_volume_init(&out);
            CHECK_EQ_INT(tile_and_merge(&in, sizes[s], strides[s], (enum cryo_pad_mode)(b % 2), (enum cryo_blend)b,
                                        &out),
                         0);
            CHECK_EQ_INT(out.nx, in.nx);
            CHECK_EQ_INT(out.c, in.c);
            CHECK_REL_ERR((float *)out.data, (float *)in.data, cryo_volume_count(&in), 1e-6);
            for (int d = 0; d < 3; d++) {
                CHECK_CLOSE(out.origin[d], in.origin[d], 0);
                CHECK_CLOSE(out.apix[d], in.apix[d], 0);
            }
            CHECK(cryo_meta_get(&out.meta, "patch.index") == NULL);
            cryo_volume_free(&in);
            cryo_volume_free(&out);
        }
}

TEST(blend_weights_positive)
{
    const int64_t size[3] = {48, 9, 1};
    float w[48 * 9];
    for (int b = 0; b < 3; b++) {
        cryo_blend_weights(w, size, (enum cryo_blend)b);
        for (int i = 0; i < 48 * 9; i++)
            CHECK(w[i] > 0 && w[i] <= 1);
    }
    CHECK_CLOSE(cryo_blend_weight1(0, 48, CRYO_BLEND_GAUSSIAN), exp(-23.5 * 23.5 / (2 * 36.0)), 1e-12);
    CHECK_CLOSE(cryo_blend_weight1(3, 8, CRYO_BLEND_COSINE), pow(sin(M_PI * 3.5 / 8), 2), 1e-12);
}

TEST(rng_reproducible_in_range_and_covering)
{
    const int64_t n[3] = {20, 12, 9}, size[3] = {16, 12, 4};
    uint64_t a = cryo_patch_rng_seed(7, 0), b = cryo_patch_rng_seed(7, 0), c = cryo_patch_rng_seed(7, 1);
    CHECK(a == b && a != c);
    int seen[5][6] = {{0}};
    for (int i = 0; i < 2000; i++) {
        int64_t s1[3], s2[3];
        cryo_patch_random_start(&a, n, size, s1);
        cryo_patch_random_start(&b, n, size, s2);
        CHECK(memcmp(s1, s2, sizeof s1) == 0);
        CHECK(s1[0] >= 0 && s1[0] <= 4 && s1[1] == 0 && s1[2] >= 0 && s1[2] <= 5);
        if (s1[0] >= 0 && s1[0] <= 4 && s1[2] >= 0 && s1[2] <= 5)
            seen[s1[0]][s1[2]]++;
    }
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 6; k++)
            CHECK(seen[i][k] > 30); /* expected 2000/30 = 67 each */
}

TEST(merger_refuses_bad_tiles)
{
    struct cryo_volume in, tile;
    make_vol(&in, 1, 10, 10, 10);
    cryo_volume_init(&tile);
    struct cryo_merger *m = NULL;
    CHECK_EQ_INT(cryo_merger_create(&m, CRYO_BLEND_GAUSSIAN, NULL), 0);
    struct cryo_error err = {0};
    int complete;
    CHECK_EQ_INT(cryo_merger_add(m, &in, "plain.mrc", &complete, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "plain.mrc: not a tile") != NULL);
    const int64_t start[3] = {0, 0, 0}, size[3] = {6, 6, 6};
    CHECK_EQ_INT(cryo_patch_crop(&tile, &in, start, size, CRYO_PAD_ZERO, 0, 8, NULL), 0);
    CHECK_EQ_INT(cryo_merger_add(m, &tile, "t", &complete, &err), 0);
    CHECK_EQ_INT(cryo_merger_add(m, &tile, "t", &complete, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "came twice") != NULL);
    struct cryo_volume out;
    cryo_volume_init(&out);
    CHECK_EQ_INT(cryo_merger_take(m, &out, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "1 of 8") != NULL);
    int64_t count;
    CHECK_EQ_INT(cryo_merger_pending(m, &count), 1);
    CHECK_EQ_INT(count, 8);
    struct cryo_volume other;
    make_vol(&other, 1, 10, 10, 12);
    CHECK_EQ_INT(cryo_patch_crop(&tile, &other, start, size, CRYO_PAD_ZERO, 1, 8, NULL), 0);
    CHECK_EQ_INT(cryo_merger_add(m, &tile, "t", &complete, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "another volume") != NULL);
    cryo_meta_set(&tile.meta, "patch.index", "9x", NULL);
    CHECK_EQ_INT(cryo_merger_add(m, &tile, "t", &complete, &err), CRYO_E_INVALID);
    cryo_merger_free(m);
    cryo_volume_free(&in);
    cryo_volume_free(&other);
    cryo_volume_free(&tile);
}

int main(void)
{
    return RUN_TESTS(reflect_matches_walk, crop_copies_pads_and_places, tiling_covers_with_central_regions,
                     tile_then_merge_is_identity, blend_weights_positive, rng_reproducible_in_range_and_covering,
                     merger_refuses_bad_tiles);
}
