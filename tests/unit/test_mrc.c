/* test_mrc.c — MRC2014 reading and writing through libcore (mrc.h).
 *
 * The reference here is a tiny independent MRC builder (build_mrc below) that packs header
 * words by hand in either byte order and lays the data out for any MAPC/MAPR/MAPS order from
 * a closed-form value f(x,y,z); the reader must give f back in x-fastest order with the
 * right voxel size and origin. Files cryolvm writes are checked word by word against the
 * MRC2014 layout, and against mrcfile/gemmi in tests/bats/mrc-io.bats. Every kind of bad
 * header has its own test, checking the status and that the message names the file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryolvm/mrc.h"
#include "mrc_priv.h"
#include "testutil.h"

/* ---- an independent MRC builder ---------------------------------------------- */

struct spec {
    int nxyz[3];         /* spatial dims x y z */
    int axes[3];         /* MAPC MAPR MAPS */
    int mode;
    int big;             /* big-endian words and data */
    int stamp;           /* 1 = machine stamp matching `big`, 0 = zeros */
    int map_id;          /* "MAP " at 208 */
    int imod;            /* -1 none, 0 = IMOD unsigned bytes, 1 = IMOD signed bytes */
    int nstart[3];       /* file order */
    int m[3];            /* MX MY MZ (0 = nxyz) */
    float cella[3];      /* (0 = m * 1 Å) */
    float origin[3];
    int nsymbt;
    int dims_override[3];
};

static void put32(unsigned char *p, uint32_t u, int big)
{
    for (int i = 0; i < 4; i++)
        p[big ? i : 3 - i] = (unsigned char)(u >> (24 - 8 * i));
}
static void puti(unsigned char *p, int32_t v, int big) { uint32_t u; memcpy(&u, &v, 4); put32(p, u, big); }
static void putf(unsigned char *p, float f, int big) { uint32_t u; memcpy(&u, &f, 4); put32(p, u, big); }

static double fval(int x, int y, int z) { return x + 10 * y + 100 * z - 300; }

static size_t esize_of(int mode) { return mode == 0 ? 1 : mode == 2 ? 4 : 2; }

/* Header + data for spec; value at spatial (x,y,z) = fval (scaled to the mode). */
static unsigned char *build_mrc(const struct spec *s, size_t *len)
{
    int ncrs[3];
    for (int i = 0; i < 3; i++)
        ncrs[i] = s->nxyz[s->axes[i] - 1];
    size_t es = esize_of(s->mode), n = (size_t)ncrs[0] * ncrs[1] * ncrs[2];
    *len = 1024 + (size_t)s->nsymbt + n * es;
    unsigned char *b = calloc(1, *len);
    int big = s->big;
    for (int i = 0; i < 3; i++) {
        int m = s->m[i] ? s->m[i] : s->nxyz[i];
        puti(b + 4 * i, s->dims_override[0] ? s->dims_override[i] : ncrs[i], big);
        puti(b + 16 + 4 * i, s->nstart[i], big);
        puti(b + 28 + 4 * i, m, big);
        putf(b + 40 + 4 * i, s->cella[i] != 0 ? s->cella[i] : (float)m, big);
        putf(b + 52 + 4 * i, 90.0f, big);
        puti(b + 64 + 4 * i, s->axes[i], big);
        putf(b + 196 + 4 * i, s->origin[i], big);
    }
    puti(b + 12, s->mode, big);
    puti(b + 92, s->nsymbt, big);
    if (s->imod >= 0) {
        puti(b + 152, 1146047817, big);
        puti(b + 156, s->imod, big);
    }
    if (s->map_id)
        memcpy(b + 208, "MAP ", 4);
    if (s->stamp)
        b[212] = b[213] = big ? 0x11 : 0x44;
    unsigned char *d = b + 1024 + s->nsymbt;
    size_t i = 0;
    for (int sec = 0; sec < ncrs[2]; sec++)
        for (int row = 0; row < ncrs[1]; row++)
            for (int col = 0; col < ncrs[0]; col++, i++) {
                int xyz[3];
                xyz[s->axes[0] - 1] = col, xyz[s->axes[1] - 1] = row, xyz[s->axes[2] - 1] = sec;
                double v = fval(xyz[0], xyz[1], xyz[2]);
                unsigned char *p = d + i * es;
                switch (s->mode) {
                case 0: p[0] = (unsigned char)(int)(s->imod == 0 ? fmod(v + 300, 256) : fmod(v, 128)); break;
                case 1: { int16_t w = (int16_t)v; uint16_t u; memcpy(&u, &w, 2);
                          p[big ? 0 : 1] = (unsigned char)(u >> 8), p[big ? 1 : 0] = (unsigned char)u; } break;
                case 6: { uint16_t u = (uint16_t)(v + 300);
                          p[big ? 0 : 1] = (unsigned char)(u >> 8), p[big ? 1 : 0] = (unsigned char)u; } break;
                case 12: { uint16_t u = cryo_f32_to_f16((float)(v / 8));
                           p[big ? 0 : 1] = (unsigned char)(u >> 8), p[big ? 1 : 0] = (unsigned char)u; } break;
                default: putf(p, (float)(v * 0.5), big); break;
                }
            }
    return b;
}

static double expect_val(const struct spec *s, int x, int y, int z)
{
    double v = fval(x, y, z);
    switch (s->mode) {
    case 0: return s->imod == 0 ? fmod(v + 300, 256) : (double)(signed char)(unsigned char)(int)fmod(v, 128);
    case 1: return v;
    case 6: return v + 300;
    case 12: return cryo_f16_to_f32(cryo_f32_to_f16((float)(v / 8)));
    default: return v * 0.5;
    }
}

static void spec_default(struct spec *s, int mode)
{
    memset(s, 0, sizeof *s);
    s->nxyz[0] = 7, s->nxyz[1] = 5, s->nxyz[2] = 3;
    s->axes[0] = 1, s->axes[1] = 2, s->axes[2] = 3;
    s->mode = mode;
    s->stamp = 1;
    s->map_id = 1;
    s->imod = -1;
}

/* Decode spec's bytes and check every voxel. */
static void check_spec(const struct spec *s, const char *what)
{
    size_t len;
    unsigned char *b = build_mrc(s, &len);
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    int st = cryo_mrc_decode(&v, b, len, "t.mrc", &err);
    if (st != 0) {
        tu_fail(__FILE__, __LINE__, "%s: decode failed: %s", what, err.msg);
    } else {
        CHECK_EQ_INT(v.nx, s->nxyz[0]);
        CHECK_EQ_INT(v.ny, s->nxyz[1]);
        CHECK_EQ_INT(v.nz, s->nxyz[2]);
        int bad = 0;
        for (int z = 0; z < s->nxyz[2]; z++)
            for (int y = 0; y < s->nxyz[1]; y++)
                for (int x = 0; x < s->nxyz[0]; x++) {
                    size_t i = (size_t)x + (size_t)s->nxyz[0] * ((size_t)y + (size_t)s->nxyz[1] * z);
                    if (cryo_volume_get(&v, i) != expect_val(s, x, y, z) && bad++ < 3)
                        tu_fail(__FILE__, __LINE__, "%s: voxel (%d,%d,%d) = %g, expected %g", what, x, y, z,
                                cryo_volume_get(&v, i), expect_val(s, x, y, z));
                }
    }
    cryo_volume_free(&v);
    free(b);
}

/* ---- reading ---------------------------------------------------------------- */

TEST(every_axis_order_both_byte_orders)
{
    static const int perms[6][3] = {{1, 2, 3}, {1, 3, 2}, {2, 1, 3}, {2, 3, 1}, {3, 1, 2}, {3, 2, 1}};
    for (int p = 0; p < 6; p++)
        for (int big = 0; big <= 1; big++) {
            struct spec s;
            spec_default(&s, 2);
            memcpy(s.axes, perms[p], sizeof s.axes);
            s.big = big;
            char what[64];
            snprintf(what, sizeof what, "axes %d%d%d %s", perms[p][0], perms[p][1], perms[p][2], big ? "BE" : "LE");
            check_spec(&s, what);
        }
}

TEST(large_permuted_map_crosses_blocks)
{
    struct spec s;
    spec_default(&s, 2);
    s.nxyz[0] = 37, s.nxyz[1] = 50, s.nxyz[2] = 21;
    s.axes[0] = 3, s.axes[1] = 1, s.axes[2] = 2;
    check_spec(&s, "37x50x21 axes 312");
    s.axes[0] = 2, s.axes[1] = 3, s.axes[2] = 1;
    s.mode = 1;
    check_spec(&s, "37x50x21 int16 axes 231");
    s.mode = 0;
    check_spec(&s, "37x50x21 int8 axes 231");
}

TEST(every_mode_both_byte_orders)
{
    const int modes[] = {0, 1, 2, 6, 12};
    for (int k = 0; k < 5; k++)
        for (int big = 0; big <= 1; big++) {
            struct spec s;
            spec_default(&s, modes[k]);
            s.big = big;
            s.axes[0] = 2, s.axes[1] = 1, s.axes[2] = 3;
            char what[32];
            snprintf(what, sizeof what, "mode %d %s", modes[k], big ? "BE" : "LE");
            check_spec(&s, what);
        }
}

static enum cryo_dtype dtype_of(const struct spec *s)
{
    size_t len;
    unsigned char *b = build_mrc(s, &len);
    struct cryo_volume v;
    cryo_volume_init(&v);
    enum cryo_dtype t = cryo_mrc_decode(&v, b, len, "t.mrc", NULL) == 0 ? v.dtype : CRYO_DTYPE_INVALID;
    cryo_volume_free(&v);
    free(b);
    return t;
}

TEST(mode0_signed_unless_imod_says_unsigned)
{
    struct spec s;
    spec_default(&s, 0);
    CHECK_EQ_INT(dtype_of(&s), CRYO_DTYPE_I8);       /* MRC2014: signed */
    s.imod = 1;
    CHECK_EQ_INT(dtype_of(&s), CRYO_DTYPE_I8);       /* IMOD stamp, flag bit 0 set: signed */
    check_spec(&s, "imod signed");
    s.imod = 0;
    CHECK_EQ_INT(dtype_of(&s), CRYO_DTYPE_U8);       /* IMOD stamp, bit 0 clear: unsigned */
    check_spec(&s, "imod unsigned");
    s.big = 1;
    CHECK_EQ_INT(dtype_of(&s), CRYO_DTYPE_U8);
    s.imod = 2;                                      /* other IMOD flag bits don't matter */
    CHECK_EQ_INT(dtype_of(&s), CRYO_DTYPE_U8);
}

TEST(zero_machine_stamp_detects_byte_order)
{
    for (int big = 0; big <= 1; big++) {
        struct spec s;
        spec_default(&s, 1);
        s.big = big;
        s.stamp = 0;
        check_spec(&s, big ? "zero stamp BE" : "zero stamp LE");
        s.mode = 2;
        s.map_id = 0;  /* old CCP4: no map ID either */
        check_spec(&s, big ? "old CCP4 BE" : "old CCP4 LE");
    }
}

static void decode_spec(const struct spec *s, struct cryo_volume *v)
{
    size_t len;
    unsigned char *b = build_mrc(s, &len);
    struct cryo_error err = {0};
    cryo_volume_init(v);
    if (cryo_mrc_decode(v, b, len, "t.mrc", &err) != 0)
        tu_fail(__FILE__, __LINE__, "decode: %s", err.msg);
    free(b);
}

TEST(voxel_size_is_cell_over_sampling)
{
    struct spec s;
    spec_default(&s, 2);
    s.m[0] = 14, s.m[1] = 20, s.m[2] = 6;
    s.cella[0] = 28, s.cella[1] = 30, s.cella[2] = 4.5f;
    struct cryo_volume v;
    decode_spec(&s, &v);
    CHECK_CLOSE(v.apix[0], 2.0, 1e-7);
    CHECK_CLOSE(v.apix[1], 1.5, 1e-7);
    CHECK_CLOSE(v.apix[2], 0.75, 1e-7);
    cryo_volume_free(&v);
    s.cella[0] = s.cella[1] = s.cella[2] = 0;  /* unset cell */
    s.m[0] = 0;
    decode_spec(&s, &v);
    CHECK_CLOSE(v.apix[0], 1.0, 0);
    cryo_volume_free(&v);
}

TEST(origin_rule)
{
    struct spec s;
    struct cryo_volume v;
    spec_default(&s, 2);
    s.m[0] = 7, s.m[1] = 5, s.m[2] = 3;
    s.cella[0] = 14, s.cella[1] = 15, s.cella[2] = 12;  /* apix 2, 3, 4 */
    /* nstart (file order) with axes 3 1 2: column = z, row = x, section = y */
    s.axes[0] = 3, s.axes[1] = 1, s.axes[2] = 2;
    s.m[0] = 7, s.m[1] = 5, s.m[2] = 3;
    s.nstart[0] = -1, s.nstart[1] = 2, s.nstart[2] = -3;  /* z=-1, x=2, y=-3 */
    decode_spec(&s, &v);
    CHECK_CLOSE(v.origin[0], 2 * 2.0, 1e-9);
    CHECK_CLOSE(v.origin[1], -3 * 3.0, 1e-9);
    CHECK_CLOSE(v.origin[2], -1 * 4.0, 1e-9);
    CHECK(strcmp(cryo_meta_get(&v.meta, "mrc.origin_rule"), "nstart") == 0);
    cryo_volume_free(&v);
    /* ORIGIN words win when any is non-zero */
    s.origin[0] = 0, s.origin[1] = -7.5f, s.origin[2] = 0;
    decode_spec(&s, &v);
    CHECK_CLOSE(v.origin[0], 0, 0);
    CHECK_CLOSE(v.origin[1], -7.5, 0);
    CHECK_CLOSE(v.origin[2], 0, 0);
    cryo_volume_free(&v);
    /* ... but not without the "MAP " ID (pre-2000 files keep other things there) */
    s.map_id = 0;
    decode_spec(&s, &v);
    CHECK_CLOSE(v.origin[0], 4.0, 1e-9);
    cryo_volume_free(&v);
    /* uninitialised ORIGIN (so large a voxel step is lost) falls back to nstart */
    s.map_id = 1;
    s.origin[1] = 3e30f;
    decode_spec(&s, &v);
    CHECK_CLOSE(v.origin[1], -9.0, 1e-9);
    cryo_volume_free(&v);
    /* uninitialised nstart (> 10x the grid) gives 0 */
    s.origin[1] = 0;
    s.nstart[1] = 1000000;
    decode_spec(&s, &v);
    CHECK_CLOSE(v.origin[0], 0, 0);
    CHECK_CLOSE(v.origin[2], 0, 0);
    cryo_volume_free(&v);
}

TEST(extended_header_skipped_and_kept)
{
    struct spec s;
    spec_default(&s, 2);
    s.nsymbt = 160;
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    for (int i = 0; i < 160; i++)
        b[1024 + i] = (unsigned char)(i * 7);
    memcpy(b + 104, "FEI1", 4);
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    CHECK(cryo_mrc_decode(&v, b, len, "t.mrc", &err) == 0);
    CHECK(strcmp(cryo_meta_get(&v.meta, "mrc.exttyp"), "FEI1") == 0);
    CHECK_CLOSE(cryo_volume_get(&v, 1), expect_val(&s, 1, 0, 0), 0);
    /* written back unchanged */
    char *mem = NULL;
    size_t mlen = 0;
    FILE *f = open_memstream(&mem, &mlen);
    CHECK(cryo_mrc_write(f, &v, "o.mrc", &err) == 0);
    fclose(f);
    CHECK_EQ_INT(mlen, len);
    CHECK(memcmp(mem + 1024, b + 1024, 160) == 0);
    CHECK(memcmp(mem + 104, "FEI1", 4) == 0);
    CHECK(memcmp(mem + 1184, b + 1184, len - 1184) == 0);
    free(mem);
    /* a frame of another shape does not get it back (its records would describe other data) */
    CHECK(strcmp(cryo_meta_get(&v.meta, "mrc.exthdr_shape"), "7,5,3") == 0);
    cryo_meta_set(&v.meta, "mrc.exthdr_shape", "7,5,2", &err);
    mem = NULL;
    f = open_memstream(&mem, &mlen);
    CHECK(cryo_mrc_write(f, &v, "o.mrc", &err) == 0);
    fclose(f);
    CHECK_EQ_INT(mlen, len - 160);
    free(mem);
    /* without mrc.exthdr nothing is written */
    cryo_meta_remove_prefix(&v.meta, "mrc.");
    mem = NULL;
    f = open_memstream(&mem, &mlen);
    CHECK(cryo_mrc_write(f, &v, "o.mrc", &err) == 0);
    fclose(f);
    CHECK_EQ_INT(mlen, len - 160);
    free(mem);
    cryo_volume_free(&v);
    free(b);
}

TEST(symmetry_records_claimed_but_absent_are_ignored)
{
    /* EMDB emd_1042 and others: NSYMBT > 0 but the data follows the header directly. */
    struct spec s;
    spec_default(&s, 2);
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    puti(b + 92, 800, 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/nsym.mrc", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    f = fopen(path, "rb");
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    CHECK(cryo_mrc_read(&v, f, NULL, 0, "nsym.mrc", &err) == 0);
    CHECK_CLOSE(cryo_volume_get(&v, 8), expect_val(&s, 1, 1, 0), 0);
    fclose(f);
    cryo_volume_free(&v);
    free(b);
}

/* ---- bad input: one test each ------------------------------------------------ */

static void expect_refused(const unsigned char *b, size_t len, int status, const char *needle)
{
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    int st = cryo_mrc_decode(&v, b, len, "emd_x.map", &err);
    if (st != status)
        tu_fail(__FILE__, __LINE__, "status %d, expected %d (%s)", st, status, err.msg);
    if (strncmp(err.msg, "emd_x.map: ", 11) != 0 || !strstr(err.msg, needle) || strchr(err.msg, '\n'))
        tu_fail(__FILE__, __LINE__, "message '%s' lacks the file name or '%s'", err.msg, needle);
    CHECK(v.data == NULL);
    cryo_volume_free(&v);
}

static unsigned char *bad_base(size_t *len)
{
    struct spec s;
    spec_default(&s, 2);
    return build_mrc(&s, len);
}

TEST(bad_truncated_header)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    expect_refused(b, 700, CRYO_E_TRUNCATED, "too short for the 1024-byte MRC header");
    free(b);
}

TEST(bad_header_claims_more_data_than_present)
{
    struct spec s;
    spec_default(&s, 2);
    s.nxyz[0] = s.nxyz[1] = s.nxyz[2] = 100;
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    expect_refused(b, 1024 + 1258291, CRYO_E_TRUNCATED,
                   "header says 100x100x100 float32 (3.8 MiB) but only 1.2 MiB of data follow");
    free(b);
}

static char warned[1024];
static void keep_warning(void *ctx, const char *msg)
{
    (void)ctx;
    snprintf(warned, sizeof warned, "%s", msg);
}

/* Issue 12: in memory the length is known, so a 4 GiB claim in a 1 KiB image is refused
 * before allocation (the fuzzer's oom reproducer), and bytes after the data are counted in a
 * warning while the map still decodes. */
TEST(memory_image_length_bounds_claim_and_trailing_bytes_warned)
{
    struct spec s;
    spec_default(&s, 2);
    s.nxyz[0] = s.nxyz[1] = s.nxyz[2] = 1024;
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    expect_refused(b, 1024 + 4, CRYO_E_TRUNCATED, "header says 1024x1024x1024 float32 (4.0 GiB) but only");
    free(b);
    spec_default(&s, 2);
    b = build_mrc(&s, &len);
    unsigned char *c = calloc(1, len + 77);
    memcpy(c, b, len);
    struct cryo_volume v;
    cryo_volume_init(&v);
    cryo_set_warn_handler(keep_warning, NULL);
    warned[0] = '\0';
    CHECK_EQ_INT(cryo_mrc_decode(&v, c, len + 77, "t.mrc", NULL), 0);
    CHECK(strcmp(warned, "t.mrc: 77 bytes after the voxel data ignored (not part of the map)") == 0);
    warned[0] = '\0';
    CHECK_EQ_INT(cryo_mrc_decode(&v, c, len, "t.mrc", NULL), 0);
    CHECK(warned[0] == '\0');
    cryo_set_warn_handler(NULL, NULL);
    cryo_volume_free(&v);
    free(b);
    free(c);
}

TEST(bad_truncated_data_on_disk)
{
    struct spec s;
    spec_default(&s, 2);
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    char path[4096];
    snprintf(path, sizeof path, "%s/cut.mrc", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len - 1, f);
    fclose(f);
    f = fopen(path, "rb");
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_mrc_read(&v, f, NULL, 0, "cut.mrc", &err), CRYO_E_TRUNCATED);
    CHECK(strstr(err.msg, "cut.mrc: header says 7x5x3 float32 (420 bytes) but only 419 bytes of data follow") != NULL);
    fclose(f);
    cryo_volume_free(&v);
    free(b);
}

TEST(bad_absurd_dims)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    puti(b, 100000, 0), puti(b + 4, 100000, 0), puti(b + 8, 100000, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "over 1 TiB");
    free(b);
}

TEST(bad_overflowing_dims)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    puti(b, INT32_MAX, 0), puti(b + 4, INT32_MAX, 0), puti(b + 8, INT32_MAX, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "2147483647x2147483647x2147483647");
    free(b);
}

TEST(bad_negative_dims)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    puti(b + 4, -5, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "invalid dimensions 7x-5x3");
    puti(b + 4, 0, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "invalid dimensions 7x0x3");
    free(b);
}

TEST(bad_unknown_mode)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    puti(b + 12, 7, 0);
    expect_refused(b, len, CRYO_E_UNSUPPORTED, "unsupported MRC mode 7");
    puti(b + 12, 4, 0);
    expect_refused(b, len, CRYO_E_UNSUPPORTED, "complex");
    free(b);
}

TEST(bad_nan_or_inf_cell)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    putf(b + 44, NAN, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "cell length along Y (CELLA) is nan");
    putf(b + 44, INFINITY, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "not a finite number");
    putf(b + 44, -3.0f, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "negative cell length");
    free(b);
}

TEST(bad_nan_origin)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    putf(b + 200, NAN, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "ORIGIN along Y is nan");
    free(b);
}

TEST(bad_axis_order)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    puti(b + 68, 1, 0);
    expect_refused(b, len, CRYO_E_FORMAT, "MAPC/MAPR/MAPS = 1 1 3 is not a permutation");
    free(b);
}

TEST(bad_empty_and_garbage)
{
    unsigned char g[4096];
    uint64_t st = 99;
    for (size_t i = 0; i < sizeof g; i++)
        g[i] = (unsigned char)(tu_rand(&st) * 127 + 128);
    CHECK_EQ_INT(cryo_mrc_sniff(g, sizeof g), 0);
    struct cryo_error err = {0};
    struct cryo_volume v;
    cryo_volume_init(&v);
    CHECK_EQ_INT(cryo_mrc_decode(&v, g, 0, "emd_x.map", &err), CRYO_E_TRUNCATED);
    CHECK(strcmp(err.msg, "emd_x.map: empty input") == 0);
    /* garbage decoded anyway (e.g. forced): refused, never read as data */
    CHECK(cryo_mrc_decode(&v, g, sizeof g, "emd_x.map", &err) < 0);
    CHECK(strncmp(err.msg, "emd_x.map: ", 11) == 0);
    CHECK(v.data == NULL);
}

TEST(bad_extended_header_beyond_end)
{
    size_t len;
    unsigned char *b = bad_base(&len);
    puti(b + 92, 1 << 30, 0);
    unsigned char *b2 = realloc(b, len + 10);  /* neither header+ext+data nor header+data */
    memset(b2 + len, 0, 10);
    expect_refused(b2, len + 10, CRYO_E_TRUNCATED, "extended header");
    free(b2);
}

TEST(corpus_cut_at_every_offset_and_flipped_header_bytes)
{
    /* A file cut anywhere is refused with a message naming it; any single header byte set
     * to 0xFF either still decodes (to a frame whose size matches its header) or is refused
     * cleanly. Run under ASan this is a small fuzzer of the header parser. */
    struct spec s;
    spec_default(&s, 1);
    s.axes[0] = 3, s.axes[1] = 1, s.axes[2] = 2;
    s.nsymbt = 80;
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += (cut < 1200 ? 1 : 7)) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        struct cryo_error err = {0};
        int st = cryo_mrc_decode(&v, b, cut, "cut.mrc", &err);
        if (st < 0 && strncmp(err.msg, "cut.mrc: ", 9) == 0 && v.data == NULL)
            refused++;
        else
            tu_fail(__FILE__, __LINE__, "cut at %zu: status %d '%s'", cut, st, err.msg);
        cryo_volume_free(&v);
    }
    CHECK(refused > 1000);
    unsigned char *c = malloc(len);
    for (size_t off = 0; off < 1024; off++) {
        memcpy(c, b, len);
        c[off] = 0xFF;
        struct cryo_volume v;
        cryo_volume_init(&v);
        struct cryo_error err = {0};
        int st = cryo_mrc_decode(&v, c, len, "flip.mrc", &err);
        if (st == 0) {
            CHECK(v.data != NULL && cryo_volume_bytes(&v) <= len - 1024);
        } else if (strncmp(err.msg, "flip.mrc: ", 10) != 0 || v.data != NULL) {
            tu_fail(__FILE__, __LINE__, "flip at %zu: status %d '%s'", off, st, err.msg);
        }
        cryo_volume_free(&v);
    }
    free(c);
    free(b);
}

/* ---- writing ---------------------------------------------------------------- */

static int32_t word(const unsigned char *b, int off) { int32_t v; memcpy(&v, b + off, 4); return v; }
static float fword(const unsigned char *b, int off) { float v; memcpy(&v, b + off, 4); return v; }

static void fill(struct cryo_volume *v, enum cryo_dtype t, int64_t nz, int64_t ny, int64_t nx)
{
    cryo_volume_init(v);
    CHECK(cryo_volume_alloc(v, t, 1, nz, ny, nx, NULL) == 0);
    size_t n = cryo_volume_count(v);
    uint64_t st = 5;
    for (size_t i = 0; i < n; i++) {
        double r = tu_rand(&st);
        switch (t) {
        case CRYO_DTYPE_F32: ((float *)v->data)[i] = (float)(r * 3); break;
        case CRYO_DTYPE_F16: ((uint16_t *)v->data)[i] = cryo_f32_to_f16((float)(r * 3)); break;
        case CRYO_DTYPE_I16: ((int16_t *)v->data)[i] = (int16_t)(r * 32000); break;
        case CRYO_DTYPE_U16: ((uint16_t *)v->data)[i] = (uint16_t)((r + 1) * 32000); break;
        case CRYO_DTYPE_I8: ((int8_t *)v->data)[i] = (int8_t)(r * 127); break;
        case CRYO_DTYPE_U8: ((uint8_t *)v->data)[i] = (uint8_t)((r + 1) * 127); break;
        default: break;
        }
    }
    v->apix[0] = 1.25, v->apix[1] = 1.5, v->apix[2] = 2.0;
    v->origin[0] = -10, v->origin[1] = 20.5, v->origin[2] = 117;
}

TEST(write_header_is_mrc2014_and_round_trips_every_dtype)
{
    const enum cryo_dtype ts[] = {CRYO_DTYPE_F32, CRYO_DTYPE_F16, CRYO_DTYPE_I16, CRYO_DTYPE_U16,
                                  CRYO_DTYPE_I8, CRYO_DTYPE_U8};
    const int modes[] = {2, 12, 1, 6, 0, 6}; /* uint8 widened to mode 6 (uint16) */
    for (int k = 0; k < 6; k++) {
        struct cryo_volume v, back;
        fill(&v, ts[k], 4, 6, 9);
        struct cryo_error err = {0};
        char *mem = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&mem, &len);
        CHECK(cryo_mrc_write(f, &v, "o.mrc", &err) == 0);
        fclose(f);
        unsigned char *b = (unsigned char *)mem;
        int u8 = ts[k] == CRYO_DTYPE_U8;
        CHECK_EQ_INT(len, 1024 + cryo_volume_bytes(&v) * (u8 ? 2 : 1));
        CHECK_EQ_INT(word(b, 0), 9);
        CHECK_EQ_INT(word(b, 4), 6);
        CHECK_EQ_INT(word(b, 8), 4);
        CHECK_EQ_INT(word(b, 12), modes[k]);
        CHECK_EQ_INT(word(b, 16), 0);
        CHECK_EQ_INT(word(b, 28), 9);
        CHECK_EQ_INT(word(b, 36), 4);
        CHECK_CLOSE(fword(b, 40), 9 * 1.25, 1e-7);
        CHECK_CLOSE(fword(b, 48), 4 * 2.0, 1e-7);
        CHECK_EQ_INT(word(b, 64), 1);
        CHECK_EQ_INT(word(b, 68), 2);
        CHECK_EQ_INT(word(b, 72), 3);
        CHECK_EQ_INT(word(b, 88), 1);  /* ispg: a volume */
        CHECK_EQ_INT(word(b, 108), 20140);
        CHECK_CLOSE(fword(b, 196), -10, 0);
        CHECK_CLOSE(fword(b, 200), 20.5, 0);
        CHECK(memcmp(b + 208, "MAP ", 4) == 0);
        CHECK(b[212] == 0x44 && b[213] == 0x44 && b[214] == 0 && b[215] == 0);
        if (ts[k] == CRYO_DTYPE_I8) {
            CHECK_EQ_INT(word(b, 152), 1146047817);
            CHECK_EQ_INT(word(b, 156) & 1, ts[k] == CRYO_DTYPE_I8);
        }
        struct cryo_stats st;
        cryo_volume_stats(&v, &st);
        CHECK_CLOSE(fword(b, 76), st.min, 1e-6);
        CHECK_CLOSE(fword(b, 80), st.max, 1e-6);
        CHECK_CLOSE(fword(b, 84), st.mean, 1e-6);
        CHECK_CLOSE(fword(b, 216), st.std, 1e-6);
        cryo_volume_init(&back);
        CHECK(cryo_mrc_decode(&back, b, len, "o.mrc", &err) == 0);
        CHECK_EQ_INT(back.dtype, u8 ? CRYO_DTYPE_U16 : ts[k]);
        if (u8) {
            size_t bad = 0;
            for (size_t i = 0; i < cryo_volume_count(&v); i++)
                bad += ((uint16_t *)back.data)[i] != ((uint8_t *)v.data)[i];
            CHECK_EQ_INT(bad, 0);
        } else {
            CHECK(memcmp(back.data, v.data, cryo_volume_bytes(&v)) == 0);
        }
        for (int i = 0; i < 3; i++) {
            CHECK_CLOSE(back.apix[i], v.apix[i], 1e-7);
            CHECK_CLOSE(back.origin[i], v.origin[i], 1e-7);
        }
        cryo_volume_free(&back);
        cryo_volume_free(&v);
        free(mem);
    }
}

TEST(write_refuses_what_mrc_cannot_hold)
{
    struct cryo_volume v;
    struct cryo_error err = {0};
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    fill(&v, CRYO_DTYPE_F32, 2, 2, 2);
    CHECK(cryo_volume_convert(&v, CRYO_DTYPE_BF16, &err) == 0);
    CHECK_EQ_INT(cryo_mrc_write(f, &v, "o.mrc", &err), CRYO_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "o.mrc: MRC cannot hold bfloat16") != NULL);
    cryo_volume_free(&v);
    fill(&v, CRYO_DTYPE_F32, 2, 2, 2);
    v.apix[1] = NAN;
    CHECK_EQ_INT(cryo_mrc_write(f, &v, "o.mrc", &err), CRYO_E_NUMERIC);
    v.apix[1] = 1;
    v.origin[2] = INFINITY;
    CHECK_EQ_INT(cryo_mrc_write(f, &v, "o.mrc", &err), CRYO_E_NUMERIC);
    fflush(f);
    CHECK_EQ_INT(len, 0);  /* nothing written for a refused frame */
    fclose(f);
    free(mem);
    cryo_volume_free(&v);
}

TEST(labels_are_the_last_ten_history_lines_cut_cleanly)
{
    struct cryo_volume v, back;
    struct cryo_error err = {0};
    fill(&v, CRYO_DTYPE_F32, 2, 2, 2);
    for (int i = 0; i < 12; i++) {
        char line[64];
        snprintf(line, sizeof line, "tool-%d --flag %d", i, i);
        cryo_meta_add_history(&v.meta, line, &err);
    }
    /* 79 ASCII bytes then a 2-byte UTF-8 'Å': the cut must not split it */
    char longline[200];
    memset(longline, 'a', 79);
    strcpy(longline + 79, "\xC3\x85 and more text after the eightieth byte");
    cryo_meta_add_history(&v.meta, longline, &err);
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    CHECK(cryo_mrc_write(f, &v, "o.mrc", &err) == 0);
    fclose(f);
    unsigned char *b = (unsigned char *)mem;
    CHECK_EQ_INT(word(b, 220), 10);
    CHECK(memcmp(b + 224, "tool-3 --flag 3 ", 16) == 0);
    CHECK(memcmp(b + 224 + 80 * 8, "tool-11 --flag 11", 17) == 0);
    CHECK(b[224 + 80 * 9 + 78] == 'a' && b[224 + 80 * 9 + 79] == ' ');
    cryo_volume_init(&back);
    CHECK(cryo_mrc_decode(&back, b, len, "o.mrc", &err) == 0);
    CHECK_EQ_INT(cryo_meta_history_count(&back.meta), 10);
    CHECK(strcmp(cryo_meta_history(&back.meta, 0), "tool-3 --flag 3") == 0);
    CHECK_EQ_INT(strlen(cryo_meta_history(&back.meta, 9)), 79);
    cryo_volume_free(&back);
    cryo_volume_free(&v);
    free(mem);
}

TEST(labels_read_as_utf8_history)
{
    struct spec s;
    spec_default(&s, 2);
    size_t len;
    unsigned char *b = build_mrc(&s, &len);
    const char *l0 = "Relion 3.1 \xC3\x85ngstr\xC3\xB6m", *l1 = "old \xC5 label\x01tab", *l4 = "after a gap";
    memcpy(b + 224, l0, strlen(l0));       /* valid UTF-8 */
    memcpy(b + 304, l1, strlen(l1));       /* a Latin-1 byte and a control character */
    memcpy(b + 544, l4, strlen(l4));       /* label 4: the empty ones between are skipped */
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    CHECK(cryo_mrc_decode(&v, b, len, "t.mrc", &err) == 0);
    CHECK_EQ_INT(cryo_meta_history_count(&v.meta), 3);
    CHECK(strcmp(cryo_meta_history(&v.meta, 0), "Relion 3.1 \xC3\x85ngstr\xC3\xB6m") == 0);
    CHECK(strcmp(cryo_meta_history(&v.meta, 1), "old ? label tab") == 0);
    CHECK(strcmp(cryo_meta_history(&v.meta, 2), "after a gap") == 0);
    cryo_volume_free(&v);
    free(b);
}

TEST(stacks_and_images_get_ispg_0)
{
    struct cryo_volume v;
    struct cryo_error err = {0};
    fill(&v, CRYO_DTYPE_F32, 5, 3, 3);
    cryo_meta_set(&v.meta, "mrc.ispg", "0", &err);
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    CHECK(cryo_mrc_write(f, &v, "o.mrc", &err) == 0);
    fclose(f);
    CHECK_EQ_INT(word((unsigned char *)mem, 88), 0);
    CHECK_EQ_INT(word((unsigned char *)mem, 36), 1);  /* MZ = 1 for an image stack */
    CHECK_CLOSE(fword((unsigned char *)mem, 48), 2.0, 1e-7);
    free(mem);
    cryo_meta_remove(&v.meta, "mrc.ispg");
    mem = NULL;
    f = open_memstream(&mem, &len);
    CHECK(cryo_mrc_write(f, &v, "tilts.mrcs", &err) == 0);
    fclose(f);
    CHECK_EQ_INT(word((unsigned char *)mem, 88), 0);
    free(mem);
    cryo_volume_free(&v);
}

TEST(base64_round_trip)
{
    unsigned char d[300];
    for (int i = 0; i < 300; i++)
        d[i] = (unsigned char)(i * 31 + 7);
    for (size_t n = 0; n < 8; n++) {
        char *s = cryo_base64_encode(d, n + 290, NULL);
        unsigned char *back = NULL;
        size_t m = 0;
        CHECK(cryo_base64_decode(s, &back, &m, NULL) == 0);
        CHECK_EQ_INT(m, n + 290);
        CHECK(back && memcmp(back, d, m) == 0);
        free(back);
        free(s);
    }
    char *s = cryo_base64_encode((const unsigned char *)"Man", 3, NULL);
    CHECK(strcmp(s, "TWFu") == 0);
    free(s);
    unsigned char *x = NULL;
    size_t m;
    CHECK(cryo_base64_decode("TW=u", &x, &m, NULL) < 0);
    CHECK(cryo_base64_decode("TWF", &x, &m, NULL) < 0);
}

/* The uint8 rules: mode 6 by default (every reader agrees), mode 0 on request only when
 * every byte is <= 127 (signed and unsigned readings agree), mode 0 with IMOD's flag when the
 * caller insists. Read back by our reader and checked against the header words. */
static size_t write_u8_case(uint8_t top, enum cryo_mrc_u8 rule, int want_status, char **mem)
{
    struct cryo_volume v;
    cryo_volume_init(&v);
    CHECK(cryo_volume_alloc(&v, CRYO_DTYPE_U8, 1, 3, 4, 5, NULL) == 0);
    uint8_t *d = v.data;
    for (size_t i = 0; i < 60; i++)
        d[i] = (uint8_t)(i * top / 59);
    v.apix[0] = v.apix[1] = v.apix[2] = 1;
    struct cryo_error err = {0};
    size_t len = 0;
    FILE *f = open_memstream(mem, &len);
    CHECK_EQ_INT(cryo_mrc_write_u8(f, &v, "u.mrc", rule, &err), want_status);
    fclose(f);
    if (want_status == CRYO_OK) {
        struct cryo_volume back;
        cryo_volume_init(&back);
        CHECK(cryo_mrc_decode(&back, (unsigned char *)*mem, len, "u.mrc", &err) == 0);
        CHECK_EQ_INT(cryo_volume_count(&back), 60);
        for (size_t i = 0; i < 60 && back.data; i++) {
            double x = back.dtype == CRYO_DTYPE_U16 ? ((uint16_t *)back.data)[i] : ((uint8_t *)back.data)[i];
            CHECK_CLOSE(x, d[i], 0);
        }
        cryo_volume_free(&back);
    } else {
        CHECK(strstr(err.msg, "u.mrc: uint8 values up to 255") != NULL);
    }
    cryo_volume_free(&v);
    return len;
}

TEST(uint8_written_as_mode6_unless_mode0_is_safe_or_insisted)
{
    char *mem = NULL;
    size_t len = write_u8_case(255, CRYO_MRC_U8_UINT16, CRYO_OK, &mem);
    CHECK_EQ_INT(len, 1024 + 120);
    CHECK_EQ_INT(word((unsigned char *)mem, 12), 6);
    CHECK_EQ_INT(word((unsigned char *)mem, 152), 0);
    CHECK_CLOSE(fword((unsigned char *)mem, 80), 255, 0);
    free(mem);
    mem = NULL;
    len = write_u8_case(127, CRYO_MRC_U8_MODE0, CRYO_OK, &mem);
    CHECK_EQ_INT(len, 1024 + 60);
    CHECK_EQ_INT(word((unsigned char *)mem, 12), 0);
    CHECK_EQ_INT(word((unsigned char *)mem, 152), 1146047817);
    CHECK_EQ_INT(word((unsigned char *)mem, 156), 0);
    free(mem);
    mem = NULL;
    len = write_u8_case(255, CRYO_MRC_U8_MODE0, CRYO_E_INVALID, &mem);
    CHECK_EQ_INT(len, 0); /* refused before the first byte */
    free(mem);
    mem = NULL;
    len = write_u8_case(255, CRYO_MRC_U8_IMOD, CRYO_OK, &mem);
    CHECK_EQ_INT(len, 1024 + 60);
    CHECK_EQ_INT(word((unsigned char *)mem, 12), 0);
    CHECK_EQ_INT(word((unsigned char *)mem, 152), 1146047817);
    CHECK_EQ_INT(word((unsigned char *)mem, 156), 0);
    free(mem);
    enum cryo_mrc_u8 u;
    CHECK(cryo_mrc_u8_from_name("imod", &u) == 0 && u == CRYO_MRC_U8_IMOD);
    CHECK(cryo_mrc_u8_from_name("uint16", &u) == 0 && u == CRYO_MRC_U8_UINT16);
    CHECK(cryo_mrc_u8_from_name("mode0", &u) == 0 && u == CRYO_MRC_U8_MODE0);
    CHECK_EQ_INT(cryo_mrc_u8_from_name("mode1", &u), CRYO_E_INVALID);
}

int main(void)
{
    return RUN_TESTS(uint8_written_as_mode6_unless_mode0_is_safe_or_insisted,
                     memory_image_length_bounds_claim_and_trailing_bytes_warned,
                     every_axis_order_both_byte_orders, large_permuted_map_crosses_blocks,
                     every_mode_both_byte_orders, mode0_signed_unless_imod_says_unsigned,
                     zero_machine_stamp_detects_byte_order, voxel_size_is_cell_over_sampling, origin_rule,
                     extended_header_skipped_and_kept, symmetry_records_claimed_but_absent_are_ignored,
                     bad_truncated_header, bad_header_claims_more_data_than_present, bad_truncated_data_on_disk,
                     bad_absurd_dims, bad_overflowing_dims, bad_negative_dims, bad_unknown_mode, bad_nan_or_inf_cell, bad_nan_origin,
                     bad_axis_order, bad_empty_and_garbage, bad_extended_header_beyond_end,
                     corpus_cut_at_every_offset_and_flipped_header_bytes,
                     write_header_is_mrc2014_and_round_trips_every_dtype, write_refuses_what_mrc_cannot_hold,
                     labels_are_the_last_ten_history_lines_cut_cleanly, labels_read_as_utf8_history,
                     stacks_and_images_get_ispg_0,
                     base64_round_trip);
}
