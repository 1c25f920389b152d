/* test_core.c — errors, metadata, dtypes and half-precision conversion, option parsing. */
#include "cryolvm/error.h"
#include "cryolvm/mem.h"
#include "cryolvm/stage.h"
#include "cryolvm/volume.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

TEST(error_prefix_and_status)
{
    struct cryo_error e = {0};
    CHECK_EQ_INT(cryo_fail(&e, CRYO_E_FORMAT, "bad %s", "header"), CRYO_E_FORMAT);
    cryo_error_prefix(&e, "x.map");
    CHECK(strcmp(e.msg, "x.map: bad header") == 0);
    CHECK_EQ_INT(e.status, CRYO_E_FORMAT);
    CHECK_EQ_INT(cryo_fail(NULL, CRYO_E_IO, "ignored"), CRYO_E_IO);
}

TEST(size_overflow_refused)
{
    size_t n;
    struct cryo_error e = {0};
    CHECK(cryo_mul_size(SIZE_MAX / 2, 3, &n, &e) == CRYO_E_NOMEM);
    CHECK(cryo_count4(1, 1 << 30, 1 << 30, 1 << 30, &n, &e) == CRYO_E_NOMEM);
    CHECK(cryo_count4(1, 0, 4, 4, &n, &e) == CRYO_E_INVALID);
    CHECK(cryo_count4(2, 3, 4, 5, &n, &e) == 0 && n == 120);
}

TEST(meta_set_get_history)
{
    struct cryo_meta m;
    cryo_meta_init(&m);
    CHECK(cryo_meta_set(&m, "a", "1", NULL) == 0);
    CHECK(cryo_meta_set(&m, "b", "2", NULL) == 0);
    CHECK(cryo_meta_set(&m, "a", "3", NULL) == 0);
    CHECK(m.n == 2 && strcmp(cryo_meta_get(&m, "a"), "3") == 0);
    CHECK(cryo_meta_add_history(&m, "tool-one --x 1", NULL) == 0);
    CHECK(cryo_meta_add_history(&m, "tool-two", NULL) == 0);
    CHECK_EQ_INT(cryo_meta_history_count(&m), 2);
    CHECK(strcmp(cryo_meta_history(&m, 1), "tool-two") == 0);
    struct cryo_meta c;
    cryo_meta_init(&c);
    CHECK(cryo_meta_copy(&c, &m, NULL) == 0 && c.n == m.n);
    cryo_meta_remove_prefix(&c, "history.");
    CHECK(c.n == 2 && cryo_meta_get(&c, "history.0") == NULL);
    cryo_meta_remove(&c, "a");
    CHECK(c.n == 1 && cryo_meta_get(&c, "a") == NULL);
    for (int i = 0; i < 100; i++) /* growth */
        CHECK(cryo_meta_setf(&c, NULL, "k", "%d", i) == 0);
    cryo_meta_free(&m);
    cryo_meta_free(&c);
}

TEST(f16_roundtrip_all_patterns)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cryo_f16_to_f32((uint16_t)h);
        uint16_t back = cryo_f32_to_f16(f);
        if (isnan(f))
            CHECK((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
        else if (back != h)
            tu_fail(__FILE__, __LINE__, "f16 0x%04x -> %g -> 0x%04x", h, f, back);
    }
    CHECK(cryo_f32_to_f16(1.0f) == 0x3c00);
    CHECK(cryo_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(cryo_f32_to_f16(65520.0f) == 0x7c00);           /* rounds to Inf */
    CHECK(cryo_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie -> even */
    CHECK(cryo_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02); /* tie -> even (up) */
    CHECK(cryo_f32_to_f16(5.9604645e-08f) == 0x0001);     /* smallest subnormal */
    CHECK(cryo_f32_to_f16(2.98e-08f) == 0x0000);          /* below half of it */
}

TEST(bf16_rounding)
{
    CHECK(cryo_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(cryo_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(isnan(cryo_bf16_to_f32(cryo_f32_to_bf16(NAN))));
    CHECK(cryo_f32_to_bf16(1.00390625f) == 0x3f80); /* 1 + 2^-8: tie -> even */
    CHECK(cryo_f32_to_bf16(1.01171875f) == 0x3f82); /* 1 + 3*2^-8: tie -> even (up) */
}

TEST(volume_convert_refuses_lossy)
{
    struct cryo_volume v;
    struct cryo_error e = {0};
    cryo_volume_init(&v);
    CHECK(cryo_volume_alloc(&v, CRYO_DTYPE_F32, 1, 2, 2, 2, &e) == 0);
    float *d = v.data;
    for (int i = 0; i < 8; i++)
        d[i] = (float)i * 40.0f - 100.5f;
    CHECK(cryo_volume_convert(&v, CRYO_DTYPE_U8, &e) == CRYO_E_NUMERIC); /* -100.5 < 0 */
    CHECK(v.dtype == CRYO_DTYPE_F32);
    CHECK(cryo_volume_convert(&v, CRYO_DTYPE_I16, &e) == 0);
    CHECK(((int16_t *)v.data)[0] == -100 && ((int16_t *)v.data)[7] == 180);
    CHECK(cryo_volume_convert(&v, CRYO_DTYPE_F16, &e) == 0);
    CHECK(cryo_volume_get(&v, 7) == 180.0);
    struct cryo_stats s;
    cryo_volume_stats(&v, &s);
    CHECK_CLOSE(s.min, -100, 0);
    CHECK_CLOSE(s.max, 180, 0);
    CHECK_CLOSE(s.mean, 40, 1e-12);
    ((uint16_t *)v.data)[3] = 0x7e00; /* NaN */
    CHECK(cryo_volume_check_finite(&v, "t", &e) == CRYO_E_NUMERIC);
    CHECK(strstr(e.msg, "NaN at voxel x=1 y=1 z=0") != NULL);
    cryo_volume_free(&v);
    cryo_volume_free(&v); /* safe on an empty volume */
}

static const struct cryo_option opts[] = {
    {"count", 'n', CRYO_OPT_INT, "N", "3", "how many", NULL},
    {"scale", 0, CRYO_OPT_DOUBLE, "X", NULL, "scale", NULL},
    {"box", 0, CRYO_OPT_INTS, NULL, NULL, "box", NULL},
    {"apix", 0, CRYO_OPT_DOUBLES, NULL, "1.0", "apix", NULL},
    {"mode", 0, CRYO_OPT_CHOICE, NULL, "a", "mode", "a|bb|c"},
    {"flag", 0, CRYO_OPT_FLAG, NULL, NULL, "flag", NULL},
    {0},
};

TEST(args_parse_validate)
{
    struct cryo_args *a;
    struct cryo_error e = {0};
    CHECK(cryo_args_create(&a, opts, &e) == 0);
    CHECK(cryo_args_int(a, "count") == 3 && !cryo_args_given(a, "count"));
    CHECK(!cryo_args_has(a, "scale") && !cryo_args_flag(a, "flag"));
    CHECK(cryo_args_set(a, "count", "12x", &e) == CRYO_E_INVALID);
    CHECK(strstr(e.msg, "--count: '12x' is not an integer") != NULL);
    CHECK(cryo_args_set(a, "scale", "nan", &e) == CRYO_E_INVALID);
    CHECK(cryo_args_set(a, "scale", "2.5", &e) == 0 && cryo_args_double(a, "scale") == 2.5);
    long b[3];
    CHECK(cryo_args_set(a, "box", "64,64,", &e) == CRYO_E_INVALID);
    CHECK(cryo_args_set(a, "box", "1,2,3,4", &e) == CRYO_E_INVALID);
    CHECK(cryo_args_set(a, "box", "64,48,32", &e) == 0);
    CHECK(cryo_args_ints(a, "box", b) == 3 && b[0] == 64 && b[2] == 32);
    double d[3];
    CHECK(cryo_args_doubles(a, "apix", d) == 1 && d[0] == 1.0);
    CHECK(cryo_args_set(a, "mode", "b", &e) == CRYO_E_INVALID);
    CHECK(cryo_args_set(a, "mode", "bb", &e) == 0 && strcmp(cryo_args_string(a, "mode"), "bb") == 0);
    CHECK(cryo_args_set(a, "flag", NULL, &e) == 0 && cryo_args_flag(a, "flag"));
    CHECK(cryo_args_set(a, "nope", "1", &e) == CRYO_E_INVALID);
    CHECK(strcmp(cryo_args_summary(a), "--scale 2.5 --box 64,48,32 --mode bb --flag") == 0);
    cryo_args_free(a);
}

/* A quarter turn about z: (x, y) -> (y, nx-1-x) on every plane and channel, apix x/y swap,
 * -1 undoes +1 exactly (uint16 here: any element size), other turns refused. */
TEST(volume_rot90_z)
{
    struct cryo_volume v, orig;
    cryo_volume_init(&v);
    cryo_volume_init(&orig);
    CHECK(cryo_volume_alloc(&v, CRYO_DTYPE_U16, 2, 3, 4, 5, NULL) == 0); /* c 2, nz 3, ny 4, nx 5 */
    v.apix[0] = 1.5, v.apix[1] = 2.5, v.apix[2] = 3.5;
    uint16_t *d = v.data;
    for (size_t i = 0; i < cryo_volume_count(&v); i++)
        d[i] = (uint16_t)i;
    CHECK(cryo_volume_copy(&orig, &v, NULL) == 0);
    CHECK(cryo_volume_rot90_z(&v, 1, NULL) == 0);
    CHECK(v.nx == 4 && v.ny == 5 && v.nz == 3 && v.c == 2 && v.apix[0] == 2.5 && v.apix[1] == 1.5 && v.apix[2] == 3.5);
    const uint16_t *r = v.data, *o = orig.data;
    int bad = 0;
    for (int p = 0; p < 6; p++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 5; x++) /* old (x, y) lands at (x', y') = (y, 4 - x) */
                bad += r[(p * 5 + (4 - x)) * 4 + y] != o[(p * 4 + y) * 5 + x];
    CHECK(bad == 0);
    CHECK(cryo_volume_rot90_z(&v, -1, NULL) == 0);
    CHECK(v.nx == 5 && v.ny == 4 && memcmp(v.data, orig.data, cryo_volume_bytes(&v)) == 0 && v.apix[0] == 1.5);
    struct cryo_error e = {0};
    CHECK(cryo_volume_rot90_z(&v, 2, &e) == CRYO_E_INVALID && strstr(e.msg, "quarter turns") != NULL);
    cryo_volume_free(&v);
    cryo_volume_free(&orig);
}

int main(void)
{
    return RUN_TESTS(error_prefix_and_status, size_overflow_refused, meta_set_get_history,
                     f16_roundtrip_all_patterns, bf16_rounding, volume_convert_refuses_lossy,
                     args_parse_validate, volume_rot90_z);
}
