/* test_volio.c — sources and sinks (volio.h): sniffing by content, gzip, TIFF stacks,
 * atomic output, extension rules, and the real maps in ../shared/data (when present) read
 * with the header facts listed in its README (read there with mrcfile).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <tiffio.h>
#include <zlib.h>

#include "cryolvm/mrc.h"
#include "cryolvm/tiffio.h"
#include "cryolvm/volio.h"
#include "testutil.h"

static char *tmp_path(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/%s", tu_tmpdir(), name);
    return p;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Number of entries in the temp dir whose name starts with `prefix` and ends in ".tmp". */
static int temp_leftovers(const char *prefix)
{
    DIR *d = opendir(tu_tmpdir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void make_vol(struct cryo_volume *v, enum cryo_dtype t, int64_t nz, int64_t ny, int64_t nx)
{
    cryo_volume_init(v);
    CHECK(cryo_volume_alloc(v, t, 1, nz, ny, nx, NULL) == 0);
    size_t n = cryo_volume_count(v);
    uint64_t st = 11;
    for (size_t i = 0; i < n; i++) {
        double r = tu_rand(&st);
        switch (t) {
        case CRYO_DTYPE_F32: ((float *)v->data)[i] = (float)(r * 5); break;
        case CRYO_DTYPE_I32: ((int32_t *)v->data)[i] = (int32_t)(r * 2e9); break;
        case CRYO_DTYPE_I16: ((int16_t *)v->data)[i] = (int16_t)(r * 32000); break;
        case CRYO_DTYPE_U16: ((uint16_t *)v->data)[i] = (uint16_t)((r + 1) * 32000); break;
        case CRYO_DTYPE_I8: ((int8_t *)v->data)[i] = (int8_t)(r * 127); break;
        case CRYO_DTYPE_U8: ((uint8_t *)v->data)[i] = (uint8_t)((r + 1) * 127); break;
        case CRYO_DTYPE_F16: ((uint16_t *)v->data)[i] = cryo_f32_to_f16((float)r); break;
        default: break;
        }
    }
    v->apix[0] = 0.5, v->apix[1] = 0.5, v->apix[2] = 0.8;
    v->origin[0] = 12.5, v->origin[1] = -3, v->origin[2] = 40;
}

static void check_same(const struct cryo_volume *a, const struct cryo_volume *b, double place_tol)
{
    CHECK_EQ_INT(a->dtype, b->dtype);
    CHECK_EQ_INT(a->nx, b->nx);
    CHECK_EQ_INT(a->ny, b->ny);
    CHECK_EQ_INT(a->nz, b->nz);
    if (a->dtype == b->dtype && cryo_volume_bytes(a) == cryo_volume_bytes(b))
        CHECK(memcmp(a->data, b->data, cryo_volume_bytes(a)) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK_CLOSE(a->apix[i], b->apix[i], place_tol);
        CHECK_CLOSE(a->origin[i], b->origin[i], place_tol);
    }
}

TEST(format_from_path_rules)
{
    int gz;
    const char *mrc[] = {"a.mrc", "a.MAP", "b.ccp4", "s.mrcs", "t.rec", "t.st", "x.map.gz", "y.MRC.GZ"};
    for (size_t i = 0; i < 8; i++)
        CHECK_EQ_INT(cryo_format_from_path(mrc[i], &gz), CRYO_FORMAT_MRC);
    CHECK(cryo_format_from_path("x.map.gz", &gz) == CRYO_FORMAT_MRC && gz == 1);
    CHECK(cryo_format_from_path("x.map", &gz) == CRYO_FORMAT_MRC && gz == 0);
    CHECK_EQ_INT(cryo_format_from_path("a.tif", &gz), CRYO_FORMAT_TIFF);
    CHECK_EQ_INT(cryo_format_from_path("a.tiff", &gz), CRYO_FORMAT_TIFF);
    CHECK_EQ_INT(cryo_format_from_path("a.cvol", &gz), CRYO_FORMAT_STREAM);
    CHECK_EQ_INT(cryo_format_from_path("a.txt", &gz), CRYO_FORMAT_UNKNOWN);
    CHECK_EQ_INT(cryo_format_from_path(".mrc", &gz), CRYO_FORMAT_UNKNOWN);
    CHECK_EQ_INT(cryo_format_from_path("mrc", &gz), CRYO_FORMAT_UNKNOWN);
    CHECK_EQ_INT(cryo_format_from_name("tiff"), CRYO_FORMAT_TIFF);
    CHECK_EQ_INT(cryo_format_from_name("stream"), CRYO_FORMAT_STREAM);
    CHECK_EQ_INT(cryo_format_from_name("jpeg"), CRYO_FORMAT_UNKNOWN);
    CHECK(strcmp(cryo_format_name(CRYO_FORMAT_MRC), "mrc") == 0);
}

TEST(mrc_file_and_gzip_round_trip_through_sinks_and_sources)
{
    const char *names[] = {"rt.mrc", "rt.map.gz", "rt.cvol"};
    const enum cryo_format fmts[] = {CRYO_FORMAT_MRC, CRYO_FORMAT_MRC, CRYO_FORMAT_STREAM};
    for (int k = 0; k < 3; k++) {
        struct cryo_volume v, back;
        make_vol(&v, CRYO_DTYPE_F32, 6, 7, 8);
        struct cryo_error err = {0};
        const char *p = tmp_path(names[k]);
        CHECK(cryo_write_one(p, &v, NULL, &err) == 0);
        cryo_volume_init(&back);
        struct cryo_source *s = NULL;
        CHECK(cryo_source_open(&s, p, &err) == 0);
        if (!s) {
            tu_fail(__FILE__, __LINE__, "%s", err.msg);
            continue;
        }
        CHECK_EQ_INT(cryo_source_format(s), fmts[k]);
        CHECK_EQ_INT(cryo_source_gzipped(s), k == 1);
        CHECK_EQ_INT(cryo_source_next(s, &back, &err), 1);
        check_same(&v, &back, 1e-6);
        struct cryo_volume none;
        cryo_volume_init(&none);
        CHECK_EQ_INT(cryo_source_next(s, &none, &err), 0);
        cryo_volume_free(&none);
        cryo_source_free(s);
        cryo_volume_free(&back);
        cryo_volume_free(&v);
    }
    /* the .gz really is gzip */
    FILE *f = fopen(tmp_path("rt.map.gz"), "rb");
    unsigned char m[2] = {0};
    CHECK(f && fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b);
    if (f)
        fclose(f);
}

TEST(gzip_round_trip_larger_than_the_zlib_buffers)
{
    struct cryo_volume v, back;
    make_vol(&v, CRYO_DTYPE_F32, 40, 96, 130);  /* 1.9 MiB: several 256 KiB zlib chunks */
    struct cryo_error err = {0};
    const char *p = tmp_path("big.mrc.gz");
    CHECK(cryo_write_one(p, &v, NULL, &err) == 0);
    cryo_volume_init(&back);
    CHECK(cryo_read_one(&back, p, &err) == 0);
    check_same(&v, &back, 1e-6);
    cryo_volume_free(&back);
    cryo_volume_free(&v);
}

TEST(gzip_of_concatenated_members_is_read_whole)
{
    struct cryo_volume v, back;
    make_vol(&v, CRYO_DTYPE_I16, 3, 4, 5);
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    CHECK(cryo_mrc_write(f, &v, "m.mrc", NULL) == 0);
    fclose(f);
    /* two gzip members: the first 700 bytes, then the rest (what `cat a.gz b.gz` makes) */
    const char *p = tmp_path("two.mrc.gz");
    gzFile g = gzopen(p, "wb");
    gzwrite(g, mem, 700);
    gzclose(g);
    g = gzopen(p, "ab");
    gzwrite(g, mem + 700, (unsigned)(len - 700));
    gzclose(g);
    struct cryo_error err = {0};
    cryo_volume_init(&back);
    CHECK(cryo_read_one(&back, p, &err) == 0);
    check_same(&v, &back, 1e-6);
    cryo_volume_free(&back);
    cryo_volume_free(&v);
    free(mem);
}

TEST(tiff_round_trip_every_integer_and_float_type)
{
    const enum cryo_dtype ts[] = {CRYO_DTYPE_U8, CRYO_DTYPE_I8, CRYO_DTYPE_U16, CRYO_DTYPE_I16, CRYO_DTYPE_I32,
                                  CRYO_DTYPE_F32};
    for (int k = 0; k < 6; k++) {
        struct cryo_volume v, back;
        make_vol(&v, ts[k], 3, 5, 7);
        struct cryo_error err = {0};
        const char *p = tmp_path("rt.tif");
        if (cryo_write_one(p, &v, NULL, &err) != 0)
            tu_fail(__FILE__, __LINE__, "%s", err.msg);
        cryo_volume_init(&back);
        CHECK(cryo_read_one(&back, p, &err) == 0);
        check_same(&v, &back, 1e-6);  /* calibration via the ImageJ description */
        cryo_volume_free(&back);
        cryo_volume_free(&v);
    }
    struct cryo_volume h;
    make_vol(&h, CRYO_DTYPE_F16, 2, 2, 2);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_write_one(tmp_path("h.tif"), &h, NULL, &err), CRYO_E_UNSUPPORTED);
    CHECK(!exists(tmp_path("h.tif")));
    CHECK_EQ_INT(temp_leftovers("h.tif"), 0);
    cryo_volume_free(&h);
}

TEST(single_page_tiff_is_a_2d_frame)
{
    struct cryo_volume v, back;
    make_vol(&v, CRYO_DTYPE_U16, 1, 9, 4);
    struct cryo_error err = {0};
    CHECK(cryo_write_one(tmp_path("one.tiff"), &v, NULL, &err) == 0);
    cryo_volume_init(&back);
    CHECK(cryo_read_one(&back, tmp_path("one.tiff"), &err) == 0);
    CHECK_EQ_INT(back.nz, 1);
    CHECK_EQ_INT(back.ndim, 2);
    check_same(&v, &back, 1e-6);
    cryo_volume_free(&back);
    cryo_volume_free(&v);
}

/* A 2-page uint8 TIFF written with libtiff directly, with the given calibration tags. */
static void write_cal_tiff(const char *path, uint16_t resunit, float xres, const char *desc)
{
    TIFF *t = TIFFOpen(path, "w");
    unsigned char px[6] = {1, 2, 3, 4, 5, 6};
    for (int z = 0; z < 2; z++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 3);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, 2);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 2);
        TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, resunit);
        TIFFSetField(t, TIFFTAG_XRESOLUTION, xres);
        TIFFSetField(t, TIFFTAG_YRESOLUTION, xres / 2);
        if (desc && z == 0)
            TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, desc);
        TIFFWriteEncodedStrip(t, 0, px, 6);
        TIFFWriteDirectory(t);
    }
    TIFFClose(t);
}

TEST(tiff_voxel_size_rules)
{
    struct cryo_volume v;
    struct cryo_error err = {0};
    const char *p = tmp_path("cal.tif");
    /* 72 dpi: a desktop default, ignored */
    write_cal_tiff(p, RESUNIT_INCH, 72, NULL);
    cryo_volume_init(&v);
    CHECK(cryo_read_one(&v, p, &err) == 0);
    CHECK_CLOSE(v.apix[0], 1, 0);
    CHECK_CLOSE(v.apix[2], 1, 0);
    cryo_volume_free(&v);
    /* pixels per centimetre: 1e7/cm = 10 Å in x, 20 Å in y, z = x */
    write_cal_tiff(p, RESUNIT_CENTIMETER, 1e7f, NULL);
    CHECK(cryo_read_one(&v, p, &err) == 0);
    CHECK_CLOSE(v.apix[0], 10, 1e-6);
    CHECK_CLOSE(v.apix[1], 20, 1e-6);
    CHECK_CLOSE(v.apix[2], 10, 1e-6);
    cryo_volume_free(&v);
    /* ImageJ: unit in the description, resolution unit none, spacing and origin */
    write_cal_tiff(p, RESUNIT_NONE, 1000, "ImageJ=1.53t\nimages=2\nunit=micron\nspacing=0.004\nxorigin=5\n");
    CHECK(cryo_read_one(&v, p, &err) == 0);
    CHECK_CLOSE(v.apix[0], 10, 1e-6);
    CHECK_CLOSE(v.apix[1], 20, 1e-6);
    CHECK_CLOSE(v.apix[2], 40, 1e-6);
    CHECK_CLOSE(v.origin[0], -50, 1e-6);
    CHECK_CLOSE(cryo_volume_get(&v, 5), 6, 0);
    CHECK_CLOSE(cryo_volume_get(&v, 11), 6, 0);
    cryo_volume_free(&v);
    /* ImageJ without a unit: pixels, 1 Å */
    write_cal_tiff(p, RESUNIT_NONE, 1000, "ImageJ=1.53t\nspacing=3\n");
    CHECK(cryo_read_one(&v, p, &err) == 0);
    CHECK_CLOSE(v.apix[0], 1, 0);
    CHECK_CLOSE(v.apix[2], 1, 0);
    cryo_volume_free(&v);
}

/* An ImageJ "big stack" as ImageJ writes past 4 GiB: one page directory, images=N, all
 * pages' data contiguous; built byte by byte (uint16, either byte order). */
static void write_imagej_bigstack(const char *path, int big, int w, int h, int n, int cut)
{
    const char *desc = "ImageJ=1.53t\nimages=4\nslices=4\nunit=nm\nspacing=2.5\n";
    unsigned char b[4096] = {0};
    size_t dl = strlen(desc) + 1, data = 8 + 2 + 11 * 12 + 4 + dl;
    data += data & 1;
    #define P16(o, v) (big ? (b[o] = (unsigned char)((v) >> 8), b[(o) + 1] = (unsigned char)(v)) \
                           : (b[o] = (unsigned char)(v), b[(o) + 1] = (unsigned char)((v) >> 8)))
    #define P32(o, v) (big ? (P16(o, (v) >> 16), P16((o) + 2, (v) & 0xffff)) : (P16(o, (v) & 0xffff), P16((o) + 2, (v) >> 16)))
    b[0] = b[1] = big ? 'M' : 'I';
    P16(2, 42);
    P32(4, 8u);
    P16(8, 11);
    const unsigned tags[11][4] = {{256, 3, 1, (unsigned)w}, {257, 3, 1, (unsigned)h}, {258, 3, 1, 16}, {259, 3, 1, 1},
                                  {262, 3, 1, 1}, {270, 2, (unsigned)dl, 8 + 2 + 11 * 12 + 4}, {273, 4, 1, (unsigned)data},
                                  {277, 3, 1, 1}, {278, 3, 1, (unsigned)h}, {279, 4, 1, (unsigned)(w * h * 2)},
                                  {339, 3, 1, 1}};
    for (int i = 0; i < 11; i++) {
        size_t o = 10 + 12 * (size_t)i;
        P16(o, tags[i][0]);
        P16(o + 2, tags[i][1]);
        P32(o + 4, tags[i][2]);
        if (tags[i][1] == 3)
            P16(o + 8, tags[i][3]);
        else
            P32(o + 8, tags[i][3]);
    }
    memcpy(b + 8 + 2 + 11 * 12 + 4, desc, dl);
    for (int i = 0; i < w * h * n; i++)
        P16(data + 2 * (size_t)i, (unsigned)(i * 7) & 0xffff);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, data + (size_t)(w * h * n * 2) - (size_t)cut, f);
    fclose(f);
    #undef P16
    #undef P32
}

TEST(imagej_big_stack_with_one_directory)
{
    for (int big = 0; big <= 1; big++) {
        const char *p = tmp_path("bigstack.tif");
        write_imagej_bigstack(p, big, 5, 3, 4, 0);
        struct cryo_volume v;
        cryo_volume_init(&v);
        struct cryo_error err = {0};
        if (cryo_read_one(&v, p, &err) != 0) {
            tu_fail(__FILE__, __LINE__, "%s", err.msg);
            continue;
        }
        CHECK_EQ_INT(v.dtype, CRYO_DTYPE_U16);
        CHECK_EQ_INT(v.nx, 5);
        CHECK_EQ_INT(v.ny, 3);
        CHECK_EQ_INT(v.nz, 4);
        CHECK_CLOSE(v.apix[2], 25, 1e-9);
        int bad = 0;
        for (size_t i = 0; i < 60; i++)
            bad += cryo_volume_get(&v, i) != (double)((i * 7) & 0xffff);
        CHECK_EQ_INT(bad, 0);
        cryo_volume_free(&v);
        write_imagej_bigstack(p, big, 5, 3, 4, 2);  /* last pixel cut */
        CHECK_EQ_INT(cryo_read_one(&v, p, &err), CRYO_E_TRUNCATED);
        CHECK(strstr(err.msg, "ImageJ description says 4 images of 30 bytes but only 118 bytes") != NULL);
    }
}

TEST(tiff_cut_at_every_offset_is_refused)
{
    struct cryo_volume v;
    make_vol(&v, CRYO_DTYPE_U16, 3, 4, 5);
    struct cryo_error err = {0};
    const char *p = tmp_path("whole.tif"), *q = tmp_path("cut.tif");
    CHECK(cryo_write_one(p, &v, NULL, &err) == 0);
    FILE *f = fopen(p, "rb");
    unsigned char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int wrong = 0;
    for (size_t cut = 1; cut < len; cut++) {
        f = fopen(q, "wb");
        fwrite(buf, 1, cut, f);
        fclose(f);
        struct cryo_volume back;
        cryo_volume_init(&back);
        int st = cryo_read_one(&back, q, &err);
        /* bytes after the last page's data (none in our layout) could be cut harmlessly; a
         * success must then still hold the whole stack */
        if (st == 0 && (back.nz != 3 || memcmp(back.data, v.data, cryo_volume_bytes(&v)) != 0))
            wrong++;
        if (st < 0 && strncmp(err.msg, q, strlen(q)) != 0)
            wrong++;
        cryo_volume_free(&back);
    }
    CHECK_EQ_INT(wrong, 0);
    cryo_volume_free(&v);
}

TEST(sink_is_atomic)
{
    const char *p = tmp_path("atomic.mrc");
    FILE *f = fopen(p, "w");
    fputs("precious", f);
    fclose(f);
    struct cryo_volume v;
    make_vol(&v, CRYO_DTYPE_F32, 2, 3, 4);
    struct cryo_error err = {0};
    struct cryo_sink *s = NULL;
    CHECK(cryo_sink_open(&s, p, NULL, &err) == 0);
    CHECK(cryo_sink_write(s, &v, &err) == 0);
    CHECK_EQ_INT(temp_leftovers("atomic.mrc."), 1);  /* written beside the target */
    cryo_sink_free(s);                               /* not committed */
    CHECK_EQ_INT(temp_leftovers("atomic.mrc."), 0);
    char buf[16] = {0};
    f = fopen(p, "r");
    CHECK(f && fgets(buf, sizeof buf, f) && strcmp(buf, "precious") == 0);
    if (f)
        fclose(f);
    /* committed: replaced */
    CHECK(cryo_sink_open(&s, p, NULL, &err) == 0);
    CHECK(cryo_sink_write(s, &v, &err) == 0);
    CHECK(cryo_sink_commit(s, &err) == 0);
    cryo_sink_free(s);
    struct stat st;
    CHECK(stat(p, &st) == 0 && (size_t)st.st_size == 1024 + cryo_volume_bytes(&v));
    mode_t um = umask(0);
    umask(um);
    CHECK_EQ_INT(st.st_mode & 0777, 0666 & ~um);  /* what fopen would give, not mkstemp's 0600 */
    CHECK_EQ_INT(temp_leftovers("atomic.mrc."), 0);
    cryo_volume_free(&v);
}

TEST(sink_refusals)
{
    struct cryo_volume v, two;
    make_vol(&v, CRYO_DTYPE_F32, 2, 3, 4);
    struct cryo_error err = {0};
    struct cryo_sink *s = NULL;
    CHECK_EQ_INT(cryo_sink_open(&s, tmp_path("out.xyz"), NULL, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "out.xyz: unknown output format") != NULL);
    CHECK_EQ_INT(cryo_sink_open(&s, tmp_path("out.tif.gz"), NULL, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "MRC only") != NULL);
    CHECK_EQ_INT(cryo_sink_open(&s, "/nonexistent-dir/x.mrc", NULL, &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "/nonexistent-dir/x.mrc: cannot create output") != NULL);
    /* a second frame into MRC */
    CHECK(cryo_sink_open(&s, tmp_path("one.mrc"), NULL, &err) == 0);
    CHECK(cryo_sink_write(s, &v, &err) == 0);
    CHECK_EQ_INT(cryo_sink_write(s, &v, &err), CRYO_E_INVALID);
    CHECK(strstr(err.msg, "one frame") != NULL);
    cryo_sink_free(s);
    CHECK(!exists(tmp_path("one.mrc")));
    /* two channels into MRC */
    cryo_volume_init(&two);
    CHECK(cryo_volume_alloc(&two, CRYO_DTYPE_F32, 2, 2, 2, 2, NULL) == 0);
    memset(two.data, 0, cryo_volume_bytes(&two));
    CHECK_EQ_INT(cryo_write_one(tmp_path("two.mrc"), &two, NULL, &err), CRYO_E_INVALID);
    CHECK(!exists(tmp_path("two.mrc")));
    /* int32 into MRC: refused before anything is written */
    cryo_volume_free(&two);
    make_vol(&two, CRYO_DTYPE_I32, 2, 2, 2);
    CHECK_EQ_INT(cryo_write_one(tmp_path("i32.mrc"), &two, NULL, &err), CRYO_E_UNSUPPORTED);
    CHECK(!exists(tmp_path("i32.mrc")));
    CHECK_EQ_INT(temp_leftovers("i32.mrc"), 0);
    /* no frame at all */
    CHECK(cryo_sink_open(&s, tmp_path("none.mrc"), NULL, &err) == 0);
    CHECK_EQ_INT(cryo_sink_commit(s, &err), CRYO_E_INVALID);
    cryo_sink_free(s);
    CHECK(!exists(tmp_path("none.mrc")));
    /* explicit format overrides the extension */
    struct cryo_sink_opts o;
    cryo_sink_opts_default(&o);
    o.format = CRYO_FORMAT_TIFF;
    CHECK(cryo_write_one(tmp_path("really-a-tiff.dat"), &v, &o, &err) == 0);
    struct cryo_source *src = NULL;
    CHECK(cryo_source_open(&src, tmp_path("really-a-tiff.dat"), &err) == 0);
    CHECK(src && cryo_source_format(src) == CRYO_FORMAT_TIFF);
    cryo_source_free(src);
    cryo_volume_free(&two);
    cryo_volume_free(&v);
}

static void expect_source_error(const char *name, const void *bytes, size_t n, const char *needle)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (n)
        fwrite(bytes, 1, n, f);
    fclose(f);
    struct cryo_error err = {0};
    struct cryo_volume v;
    cryo_volume_init(&v);
    int st = cryo_read_one(&v, p, &err);
    CHECK(st < 0);
    if (!strstr(err.msg, needle) || strncmp(err.msg, p, strlen(p)) != 0)
        tu_fail(__FILE__, __LINE__, "message '%s' lacks the path or '%s'", err.msg, needle);
    cryo_volume_free(&v);
}

TEST(sources_refuse_empty_garbage_and_missing_input)
{
    expect_source_error("empty.map", "", 0, ": empty input");
    unsigned char g[3000];
    uint64_t st = 3;
    for (size_t i = 0; i < sizeof g; i++)
        g[i] = (unsigned char)(tu_rand(&st) * 127 + 128);
    expect_source_error("garbage.map", g, sizeof g, "not a recognised volume");
    expect_source_error("short.map", "hello", 5, "too short for MRC");
    unsigned char gz_empty[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_source_error("empty.map.gz", gz_empty, sizeof gz_empty, "empty input");
    unsigned char gz_cut[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x4b, 0x4c};
    expect_source_error("cut.map.gz", gz_cut, sizeof gz_cut, "gzip data ends early");
    struct cryo_error err = {0};
    struct cryo_source *s = NULL;
    CHECK_EQ_INT(cryo_source_open(&s, tmp_path("does-not-exist.mrc"), &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "does-not-exist.mrc: No such file or directory") != NULL);
    CHECK_EQ_INT(cryo_source_open(&s, tu_tmpdir(), &err), CRYO_E_IO);
    CHECK(strstr(err.msg, "is a directory") != NULL);
}

TEST(stdout_sink_refuses_a_terminal_only)
{
    /* stdout here is a pipe or file under the test runner, so only the option path is
     * checkable: allow_terminal must not be needed for non-terminals. */
    struct cryo_sink_opts o;
    cryo_sink_opts_default(&o);
    CHECK_EQ_INT(o.allow_terminal, 0);
    CHECK_EQ_INT(o.format, CRYO_FORMAT_UNKNOWN);
    if (isatty(STDOUT_FILENO)) {
        struct cryo_sink *s = NULL;
        struct cryo_error err = {0};
        CHECK_EQ_INT(cryo_sink_open(&s, "-", &o, &err), CRYO_E_INVALID);
        CHECK(strstr(err.msg, "terminal") != NULL);
    }
}

/* ---- real maps (skipped when ../shared/data is absent) ------------------------- */

static const char *data_dir(void)
{
    static char dir[4096];
    const char *e = getenv("CRYO_DATA");
    if (e && *e)
        snprintf(dir, sizeof dir, "%s", e);
    else
        snprintf(dir, sizeof dir, "../shared/data");
    return dir;
}

struct fact {
    const char *file;
    int n[3];          /* file nx ny nz (columns, rows, sections) */
    int mode;          /* -1: TIFF */
    double apix[3];
    double origin_words[3];
    int nstart[3];
    int axes[3];
};

/* From ../shared/data/README.md (read there with mrcfile). */
static const struct fact facts[] = {
    {"mrcfile_tests/EMD-3197.map", {20, 20, 20}, 2, {11.4, 11.4, 11.4}, {0, 0, 0}, {-2, 0, 0}, {1, 2, 3}},
    {"mrcfile_tests/EMD-3001.map", {73, 43, 25}, 2, {0.448, 0.393, 0.459}, {0, 0, 0}, {0, -21, -12}, {3, 1, 2}},
    {"tempy_emd5168_actin/emd_5168.map", {100, 100, 100}, 2, {1.742, 1.742, 1.742}, {0, 0, 0}, {-50, -50, -50}, {1, 2, 3}},
    {"tempy_emd5168_actin/emd_5170.map", {100, 100, 100}, 2, {2.38, 2.38, 2.38}, {0, 0, 0}, {-49, -49, -49}, {1, 2, 3}},
    {"apoferritin_emd20026/emd20026_prot.mrc", {94, 104, 112}, 2, {0.65, 0.65, 0.65}, {117.0, 65.65, 101.4}, {0, 0, 0}, {1, 2, 3}},
    {"emringer_axisorder/test_map.ccp4", {20, 34, 27}, 2, {1.2156, 1.2156, 1.2156}, {0, 0, 0}, {0, 0, 0}, {3, 2, 1}},
    {"real_maps_nomodel/emd_1832.map", {64, 64, 64}, 2, {5.7, 5.7, 5.7}, {0, 0, 0}, {-32, -32, -32}, {1, 2, 3}},
    {"real_maps_nomodel/emd_5625.map", {56, 56, 56}, 2, {4.23, 4.23, 4.23}, {0, 0, 0}, {-28, -28, -28}, {1, 2, 3}},
    {"real_maps_nomodel/emd_6824_diffmodeler.mrc", {70, 70, 70}, 2, {2.64, 2.64, 2.64}, {0, 0, 0}, {0, 0, 0}, {1, 2, 3}},
    {"real_maps_nomodel/emd_1461_cropped_dmm.mrc", {75, 80, 96}, 2, {1.23, 1.23, 1.23}, {54.12, -40.59, 225.09}, {0, 0, 0}, {1, 2, 3}},
    {"real_maps_nomodel/emd_2513_cropped_dmm.mrc", {76, 74, 80}, 2, {1.32, 1.32, 1.32}, {114.84, 62.04, 52.8}, {0, 0, 0}, {1, 2, 3}},
    {"subtomogram/ribosome_sta_32px_12A.mrc", {32, 32, 32}, 2, {12, 12, 12}, {0, 0, 0}, {0, 0, 0}, {1, 2, 3}},
    {"subtomogram/tiltstack_float16_mode12.mrcs", {32, 32, 37}, 12, {12, 12, 12}, {0, 0, 0}, {0, 0, 0}, {1, 2, 3}},
    {"tomo_microtubule/13pf_MT.tif", {94, 206, 36}, -1, {10.52, 10.52, 10.52}, {0, 0, 0}, {0, 0, 0}, {1, 2, 3}},
    {"tomo_microtubule/14pf_MT.tif", {84, 136, 44}, -1, {10.52, 10.52, 10.52}, {0, 0, 0}, {0, 0, 0}, {1, 2, 3}},
};

static void parse3(const char *s, double out[3])
{
    out[0] = out[1] = out[2] = NAN;
    if (s)
        sscanf(s, "%lf,%lf,%lf", &out[0], &out[1], &out[2]);
}

TEST(real_maps_match_their_readme_facts)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/README.md", data_dir());
    if (!exists(p)) {
        printf("SKIP real_maps_match_their_readme_facts: %s not present\n", data_dir());
        return;
    }
    for (size_t k = 0; k < sizeof facts / sizeof facts[0]; k++) {
        const struct fact *f = &facts[k];
        snprintf(p, sizeof p, "%s/%s", data_dir(), f->file);
        struct cryo_volume v;
        cryo_volume_init(&v);
        struct cryo_error err = {0};
        if (cryo_read_one(&v, p, &err) != 0) {
            tu_fail(__FILE__, __LINE__, "%s: %s", f->file, err.msg);
            continue;
        }
        int64_t xyz[3] = {v.nx, v.ny, v.nz};
        int dim_ok = 1;
        for (int i = 0; i < 3; i++)  /* file axis i runs along spatial axis axes[i] */
            dim_ok &= xyz[f->axes[i] - 1] == f->n[i];
        if (!dim_ok)
            tu_fail(__FILE__, __LINE__, "%s: dims %lldx%lldx%lld", f->file, (long long)v.nx, (long long)v.ny,
                    (long long)v.nz);
        for (int i = 0; i < 3; i++)
            CHECK_CLOSE(v.apix[i], f->apix[i], 6e-4);  /* README rounds to 3-4 digits */
        if (f->mode >= 0) {
            double mode[3], axes[3], ns[3], ow[3];
            parse3(cryo_meta_get(&v.meta, "mrc.mode"), mode);
            sscanf(cryo_meta_get(&v.meta, "mrc.mode"), "%lf", &mode[0]);
            parse3(cryo_meta_get(&v.meta, "mrc.axes"), axes);
            parse3(cryo_meta_get(&v.meta, "mrc.nstart"), ns);
            parse3(cryo_meta_get(&v.meta, "mrc.origin_words"), ow);
            CHECK_EQ_INT(mode[0], f->mode);
            for (int i = 0; i < 3; i++) {
                CHECK_EQ_INT(axes[i], f->axes[i]);
                CHECK_EQ_INT(ns[i], f->nstart[i]);
                CHECK_CLOSE(ow[i], f->origin_words[i], 1e-5);
            }
            /* the origin rule: ORIGIN words when non-zero, else nstart (to x,y,z) x voxel size */
            int words = f->origin_words[0] != 0 || f->origin_words[1] != 0 || f->origin_words[2] != 0;
            for (int i = 0; i < 3; i++) {
                double want = words ? f->origin_words[i] : 0;
                if (!words)
                    for (int j = 0; j < 3; j++)
                        if (f->axes[j] - 1 == i)
                            want = f->nstart[j] * v.apix[i];
                CHECK_CLOSE(v.origin[i], want, 1e-4);
            }
            CHECK_EQ_INT(v.dtype, f->mode == 12 ? CRYO_DTYPE_F16 : CRYO_DTYPE_F32);
        } else {
            CHECK_EQ_INT(v.dtype, CRYO_DTYPE_U8);
        }
        struct cryo_stats st;
        cryo_volume_stats(&v, &st);
        CHECK_EQ_INT(st.n_nonfinite, 0);
        cryo_volume_free(&v);
    }
}

TEST(real_map_with_axes_312_is_transposed_right)
{
    /* EMD-3001 is stored with columns along Z, rows along X, sections along Y: the
     * voxel (x,y,z) must be the file's element at column z, row x, section y. */
    char p[4096];
    snprintf(p, sizeof p, "%s/mrcfile_tests/EMD-3001.map", data_dir());
    if (!exists(p)) {
        printf("SKIP real_map_with_axes_312_is_transposed_right: no data\n");
        return;
    }
    struct cryo_volume v;
    cryo_volume_init(&v);
    struct cryo_error err = {0};
    CHECK(cryo_read_one(&v, p, &err) == 0);
    FILE *f = fopen(p, "rb");
    unsigned char h[1024];
    CHECK(fread(h, 1, 1024, f) == 1024);
    int32_t nc, nr, ns, nsym;
    memcpy(&nc, h, 4), memcpy(&nr, h + 4, 4), memcpy(&ns, h + 8, 4), memcpy(&nsym, h + 92, 4);
    size_t n = (size_t)nc * nr * ns;
    float *raw = malloc(n * 4);
    fseek(f, 1024 + nsym, SEEK_SET);
    CHECK(fread(raw, 4, n, f) == n);
    fclose(f);
    int bad = 0;
    for (int z = 0; z < v.nz; z++)
        for (int y = 0; y < v.ny; y++)
            for (int x = 0; x < v.nx; x++) {
                float a = ((float *)v.data)[x + v.nx * (y + v.ny * (size_t)z)];
                float b = raw[z + (size_t)nc * (x + (size_t)nr * y)];
                if (a != b && bad++ < 3)
                    tu_fail(__FILE__, __LINE__, "voxel %d,%d,%d: %g vs %g", x, y, z, a, b);
            }
    free(raw);
    cryo_volume_free(&v);
}

int main(void)
{
    return RUN_TESTS(format_from_path_rules, mrc_file_and_gzip_round_trip_through_sinks_and_sources,
                     gzip_round_trip_larger_than_the_zlib_buffers, gzip_of_concatenated_members_is_read_whole, tiff_round_trip_every_integer_and_float_type,
                     single_page_tiff_is_a_2d_frame, tiff_voxel_size_rules,
                     imagej_big_stack_with_one_directory, tiff_cut_at_every_offset_is_refused, sink_is_atomic, sink_refusals,
                     sources_refuse_empty_garbage_and_missing_input, stdout_sink_refuses_a_terminal_only,
                     real_maps_match_their_readme_facts, real_map_with_axes_312_is_transposed_right);
}
