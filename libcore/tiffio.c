/* tiffio.c — TIFF stacks (one grayscale page per Z slice) via libtiff.
 *
 * Reading: every page must have one sample per pixel and the same size, bit depth and
 * sample format as page 0. 8/16/32-bit unsigned and signed integers and 32-bit floats are
 * kept as they are (uint32 becomes int32 when every value fits, 16-bit float stays float16,
 * 64-bit float becomes float32). Strips and tiles, any compression libtiff decodes.
 *
 * Voxel size, in this order (documented in cryolvm-formats(5)):
 *   - X/YResolution (pixels per unit) with the unit from an ImageJ description ("unit=nm",
 *     "micron", "\u00C5" ...) — ImageJ writes ResolutionUnit = none and names the unit there —
 *     or with ResolutionUnit = centimetre. Inch resolutions are ignored: 72 or 300 dpi is what
 *     desktop software writes by default and says nothing about a specimen.
 *   - Z: ImageJ "spacing=" in the same unit; without it Z takes the X voxel size.
 *   - nothing usable: 1 Å.
 * ImageJ "xorigin=" (pixels) etc. set the origin (origin = −xorigin × voxel size).
 * ImageJ's big stacks (one page directory, "images=N", the N pages' data contiguous) are
 * read as N slices.
 *
 * Writing: uncompressed, one strip per page, SampleFormat and BitsPerSample from the dtype,
 * X/YResolution = 1/voxel size with ResolutionUnit none, and an ImageJ description on page 0
 * (unit=\u00C5, spacing, origin, min/max) so ImageJ/Fiji opens it calibrated. It has no
 * "images=N": with that key ImageJ and tifffile assume all pages' data are contiguous after
 * page 0, which libtiff's page-by-page layout (data, IFD, data, IFD ...) is not; without it
 * they follow the IFD chain.
 * BigTIFF when the data exceed 2 GiB.
 *
 * libtiff messages never reach stderr: per-handle handlers (TIFFOpenExt) capture the first
 * error into the cryo_error, warnings (e.g. ImageJ's private tags) are dropped, and the
 * global handlers are cleared once as a backstop.
 */
#include "cryolvm/tiffio.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>

#include "cryolvm/mem.h"

int cryo_tiff_sniff(const unsigned char *buf, size_t len)
{
    if (len < 4)
        return 0;
    return (buf[0] == 'I' && buf[1] == 'I' && (buf[2] == 42 || buf[2] == 43) && buf[3] == 0) ||
           (buf[0] == 'M' && buf[1] == 'M' && buf[2] == 0 && (buf[3] == 42 || buf[3] == 43));
}

struct tiff_msgs {
    char err[512];
};

static int on_error(TIFF *t, void *ud, const char *module, const char *fmt, va_list ap)
{
    (void)t;
    struct tiff_msgs *m = ud;
    if (m && !m->err[0]) {
        char text[400];
        vsnprintf(text, sizeof text, fmt, ap);
        snprintf(m->err, sizeof m->err, "%s%s%s", module ? module : "", module ? ": " : "", text);
    }
    return 1;
}

static int on_warning(TIFF *t, void *ud, const char *module, const char *fmt, va_list ap)
{
    (void)t, (void)ud, (void)module, (void)fmt, (void)ap;
    return 1;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_globals(void)
{
    TIFFSetErrorHandler(NULL);
    TIFFSetWarningHandler(NULL);
}

static TIFF *tiff_open(const char *path, const char *mode, struct tiff_msgs *msgs)
{
    pthread_once(&quiet_once, quiet_globals);
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o)
        return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, msgs);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, msgs);
    TIFF *t = TIFFOpenExt(path, mode, o);
    TIFFOpenOptionsFree(o);
    return t;
}

/* Å per unit for the unit names ImageJ and others write; 0 if unknown. */
static double unit_angstrom(const char *u)
{
    static const struct { const char *name; double a; } units[] = {
        {"A", 1}, {"\xC3\x85", 1}, {"\\u00C5", 1}, {"angstrom", 1}, {"Angstrom", 1}, {"nm", 10},
        {"nanometer", 10}, {"micron", 1e4}, {"microns", 1e4}, {"um", 1e4}, {"\xC2\xB5m", 1e4},
        {"\\u00B5m", 1e4}, {"mm", 1e7}, {"cm", 1e8}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(u, units[i].name) == 0)
            return units[i].a;
    return 0;
}

struct ij_desc {
    int is_imagej;
    long images;
    char unit[64];
    double spacing, origin[3];
    int has_spacing, has_origin[3];
};

static void parse_imagej(const char *d, struct ij_desc *ij)
{
    memset(ij, 0, sizeof *ij);
    if (!d || strncmp(d, "ImageJ=", 7) != 0)
        return;
    ij->is_imagej = 1;
    const char *p = d;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[256];
        if (n < sizeof line) {
            memcpy(line, p, n);
            line[n] = '\0';
            char *eq = strchr(line, '=');
            if (eq) {
                *eq = '\0';
                const char *k = line, *val = eq + 1;
                char *end;
                double x = strtod(val, &end);
                int num = end != val && *end == '\0' && isfinite(x);
                if (strcmp(k, "unit") == 0)
                    snprintf(ij->unit, sizeof ij->unit, "%s", val);
                else if (strcmp(k, "images") == 0 && num && x >= 1 && x <= 1e9)
                    ij->images = (long)x;
                else if (strcmp(k, "spacing") == 0 && num && x > 0)
                    ij->spacing = x, ij->has_spacing = 1;
                else if (strcmp(k, "xorigin") == 0 && num)
                    ij->origin[0] = x, ij->has_origin[0] = 1;
                else if (strcmp(k, "yorigin") == 0 && num)
                    ij->origin[1] = x, ij->has_origin[1] = 1;
                else if (strcmp(k, "zorigin") == 0 && num)
                    ij->origin[2] = x, ij->has_origin[2] = 1;
            }
        }
        p += n;
        if (*p == '\n')
            p++;
    }
}

static void tiff_calibration(TIFF *t, struct cryo_volume *v)
{
    char *desc = NULL;
    float xres = 0, yres = 0;
    uint16_t resunit = RESUNIT_INCH;
    struct ij_desc ij;
    if (!TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &desc))
        desc = NULL;
    parse_imagej(desc, &ij);
    TIFFGetField(t, TIFFTAG_XRESOLUTION, &xres);
    TIFFGetField(t, TIFFTAG_YRESOLUTION, &yres);
    TIFFGetFieldDefaulted(t, TIFFTAG_RESOLUTIONUNIT, &resunit);
    double factor = 0;
    if (ij.is_imagej && ij.unit[0])
        factor = unit_angstrom(ij.unit);
    else if (resunit == RESUNIT_CENTIMETER)
        factor = 1e8;
    v->apix[0] = v->apix[1] = v->apix[2] = 1.0;
    int have_x = 0;
    if (factor > 0 && isfinite(xres) && xres > 0) {
        v->apix[0] = factor / xres;
        have_x = 1;
        v->apix[1] = (isfinite(yres) && yres > 0) ? factor / yres : v->apix[0];
    }
    if (factor > 0 && ij.has_spacing)
        v->apix[2] = factor * ij.spacing;
    else if (have_x)
        v->apix[2] = v->apix[0];
    for (int i = 0; i < 3; i++)
        if (ij.has_origin[i])
            v->origin[i] = -ij.origin[i] * v->apix[i];
}

struct page_fmt {
    uint32_t w, h;
    uint16_t bps, spp, fmt;
};

static int page_format(TIFF *t, struct page_fmt *p)
{
    memset(p, 0, sizeof *p);
    if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &p->w) || !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &p->h))
        return -1;
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &p->bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &p->spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &p->fmt);
    if (p->fmt == SAMPLEFORMAT_VOID)
        p->fmt = SAMPLEFORMAT_UINT;
    return 0;
}

static const char *fmt_name(uint16_t fmt)
{
    return fmt == SAMPLEFORMAT_INT ? "int" : fmt == SAMPLEFORMAT_IEEEFP ? "float" : fmt == SAMPLEFORMAT_UINT ? "uint" : "other";
}

/* dtype as stored in the file's pages (U32/F64 are read raw, then converted). */
enum raw_kind { RAW_NATIVE, RAW_U32, RAW_F64 };

static int pick_dtype(const struct page_fmt *p, enum cryo_dtype *t, enum raw_kind *raw)
{
    *raw = RAW_NATIVE;
    if (p->fmt == SAMPLEFORMAT_UINT) {
        if (p->bps == 8) *t = CRYO_DTYPE_U8;
        else if (p->bps == 16) *t = CRYO_DTYPE_U16;
        else if (p->bps == 32) *t = CRYO_DTYPE_I32, *raw = RAW_U32;
        else return -1;
    } else if (p->fmt == SAMPLEFORMAT_INT) {
        if (p->bps == 8) *t = CRYO_DTYPE_I8;
        else if (p->bps == 16) *t = CRYO_DTYPE_I16;
        else if (p->bps == 32) *t = CRYO_DTYPE_I32;
        else return -1;
    } else if (p->fmt == SAMPLEFORMAT_IEEEFP) {
        if (p->bps == 16) *t = CRYO_DTYPE_F16;
        else if (p->bps == 32) *t = CRYO_DTYPE_F32;
        else if (p->bps == 64) *t = CRYO_DTYPE_F32, *raw = RAW_F64;
        else return -1;
    } else {
        return -1;
    }
    return 0;
}

/* Read the current directory's pixels (w*h samples of `es` bytes) into dst. */
static int read_page(TIFF *t, unsigned char *dst, const struct page_fmt *p, size_t es)
{
    size_t row = (size_t)p->w * es, page = row * p->h;
    if (TIFFIsTiled(t)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
        tmsize_t ts = TIFFTileSize(t);
        if (tw == 0 || th == 0 || ts <= 0 || (size_t)ts < (size_t)tw * th * es)
            return -1;
        unsigned char *buf = malloc((size_t)ts);
        if (!buf)
            return -1;
        for (uint32_t y0 = 0; y0 < p->h; y0 += th)
            for (uint32_t x0 = 0; x0 < p->w; x0 += tw) {
                if (TIFFReadTile(t, buf, x0, y0, 0, 0) < 0) {
                    free(buf);
                    return -1;
                }
                uint32_t ny = p->h - y0 < th ? p->h - y0 : th, nx = p->w - x0 < tw ? p->w - x0 : tw;
                for (uint32_t y = 0; y < ny; y++)
                    memcpy(dst + (size_t)(y0 + y) * row + (size_t)x0 * es, buf + (size_t)y * tw * es,
                           (size_t)nx * es);
            }
        free(buf);
        return 0;
    }
    uint32_t rps = 0;
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rps);
    if (rps == 0 || rps > p->h)
        rps = p->h;
    uint32_t nstrips = TIFFNumberOfStrips(t);
    for (uint32_t s = 0; s < nstrips; s++) {
        size_t off = (size_t)s * rps * row;
        if (off >= page)
            break;
        size_t want = page - off < (size_t)rps * row ? page - off : (size_t)rps * row;
        if (TIFFReadEncodedStrip(t, s, dst + off, (tmsize_t)want) < 0)
            return -1;
    }
    return 0;
}

/* How many bytes one byte of a compression scheme can decode to, at most (published limits
 * of each coder: deflate 1032:1; a 12-bit LZW code 4096 bytes; PackBits 2 bytes for 128;
 * other coders (zstd, LZMA, JPEG, ...) 64 Ki:1, generous). Used to bound what a page's
 * strips or tiles can hold before anything is allocated for it. */
static uint64_t max_ratio(uint16_t comp)
{
    switch (comp) {
    case COMPRESSION_NONE: return 1;
    case COMPRESSION_PACKBITS: return 64;
    case COMPRESSION_ADOBE_DEFLATE:
    case COMPRESSION_DEFLATE: return 1032;
    case COMPRESSION_LZW: return 4096;
    default: return (uint64_t)1 << 16;
    }
}

/* The current page's stored data (sum of its strip or tile byte counts, each clipped to the
 * file) times its coder's limit: the most pixel bytes it can decode to. */
static uint64_t page_capacity(TIFF *t, uint64_t file_size)
{
    uint16_t comp = COMPRESSION_NONE;
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &comp);
    uint64_t *cnts = NULL, sum = 0;
    int tiled = TIFFIsTiled(t);
    uint32_t n = tiled ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
    if (!TIFFGetField(t, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &cnts) || !cnts)
        return 0;
    for (uint32_t i = 0; i < n && sum < file_size; i++)
        sum += cnts[i] < file_size ? cnts[i] : file_size;
    if (sum > file_size)
        sum = file_size;
    uint64_t r = max_ratio(comp);
    return sum > UINT64_MAX / r ? UINT64_MAX : sum * r;
}

static int tiff_fail(struct cryo_error *err, int status, const char *name, const struct tiff_msgs *m,
                     const char *what)
{
    if (m->err[0])
        return cryo_fail(err, status, "%s: %s (%s)", name, what, m->err);
    return cryo_fail(err, status, "%s: %s", name, what);
}

/* ImageJ saves stacks past 4 GiB with one page directory and "images=N": the N pages' data
 * follow each other from page 1's first strip. Read them straight from the file. The current
 * directory must be page 1. */
static int read_imagej_contiguous(TIFF *t, const char *path, const char *name, long images,
                                  const struct page_fmt *p0, enum cryo_dtype dt, struct cryo_volume *out,
                                  struct cryo_error *err)
{
    uint16_t comp = COMPRESSION_NONE;
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &comp);
    uint64_t *offs = NULL, *cnts = NULL;
    if (TIFFIsTiled(t) || comp != COMPRESSION_NONE || !TIFFGetField(t, TIFFTAG_STRIPOFFSETS, &offs) ||
        !TIFFGetField(t, TIFFTAG_STRIPBYTECOUNTS, &cnts))
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: ImageJ stack of %ld images with one page directory must "
                         "be uncompressed strips", name, images);
    size_t es = p0->bps / 8, page, total, sum = 0;
    CRYO_TRY(cryo_mul_size((size_t)p0->w, (size_t)p0->h, &page, err));
    CRYO_TRY(cryo_mul_size(page, es, &page, err));
    uint32_t ns = TIFFNumberOfStrips(t);
    for (uint32_t i = 0; i < ns; i++) {
        if (i + 1 < ns && offs[i + 1] != offs[i] + cnts[i])
            return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: ImageJ stack with non-contiguous strips", name);
        sum += cnts[i];
    }
    if (ns == 0 || sum < page)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: page 1 holds %zu bytes, %ux%u %u-bit needs %zu", name, sum,
                         p0->w, p0->h, p0->bps, page);
    CRYO_TRY(cryo_mul_size(page, (size_t)images, &total, err));
    FILE *f = fopen(path, "rb");
    if (!f)
        return cryo_fail(err, CRYO_E_IO, "%s: %s", name, strerror(errno));
    struct stat st;
    int s = CRYO_OK;
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size < offs[0] ||
        (uint64_t)st.st_size - offs[0] < total) {
        uint64_t have = (uint64_t)st.st_size > offs[0] ? (uint64_t)st.st_size - offs[0] : 0;
        s = cryo_fail(err, CRYO_E_TRUNCATED, "%s: ImageJ description says %ld images of %zu bytes but only %llu "
                      "bytes of image data follow", name, images, page, (unsigned long long)have);
    }
    if (s == CRYO_OK && (s = cryo_volume_alloc(out, dt, 1, images, p0->h, p0->w, err)) < 0)
        cryo_error_prefix(err, name);
    if (s == CRYO_OK && (fseeko(f, (off_t)offs[0], SEEK_SET) != 0 || fread(out->data, 1, total, f) != total))
        s = cryo_fail(err, CRYO_E_IO, "%s: reading ImageJ stack data failed", name);
    fclose(f);
    if (s == CRYO_OK && TIFFIsByteSwapped(t) && es > 1) {
        size_t n = total / es;
        if (es == 2)
            for (size_t i = 0; i < n; i++)
                ((uint16_t *)out->data)[i] = __builtin_bswap16(((uint16_t *)out->data)[i]);
        else if (es == 4)
            for (size_t i = 0; i < n; i++)
                ((uint32_t *)out->data)[i] = __builtin_bswap32(((uint32_t *)out->data)[i]);
    }
    return s;
}

int cryo_tiff_read(struct cryo_volume *v, const char *path, const char *name, struct cryo_error *err)
{
    struct tiff_msgs msgs = {{0}};
    TIFF *t = tiff_open(path, "r", &msgs);
    if (!t)
        return tiff_fail(err, CRYO_E_FORMAT, name, &msgs, "cannot read as TIFF");
    struct cryo_volume tmp;
    cryo_volume_init(&tmp);
    unsigned char *rawbuf = NULL;
    int s = CRYO_OK;

    struct page_fmt p0, p;
    if (page_format(t, &p0) < 0) {
        s = tiff_fail(err, CRYO_E_FORMAT, name, &msgs, "page 1 has no image size");
        goto out;
    }
    if (p0.spp != 1) {
        s = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: TIFF pages have %u samples per pixel; only grayscale "
                      "(1 sample) stacks are supported", name, p0.spp);
        goto out;
    }
    enum cryo_dtype dt;
    enum raw_kind raw;
    if (pick_dtype(&p0, &dt, &raw) < 0) {
        s = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: %u-bit %s TIFF samples are not supported (8/16/32-bit "
                      "integers, 16/32-bit floats)", name, p0.bps, fmt_name(p0.fmt));
        goto out;
    }
    tdir_t ndir = TIFFNumberOfDirectories(t);
    if (ndir < 1) {
        s = tiff_fail(err, CRYO_E_FORMAT, name, &msgs, "TIFF has no pages");
        goto out;
    }
    /* A page directory that points to a next one libtiff cannot read (cut file, bad offset)
     * ends the count early: refuse rather than return a shorter stack. */
    msgs.err[0] = '\0';
    if (!TIFFSetDirectory(t, ndir - 1) || !TIFFLastDirectory(t)) {
        char what[96];
        snprintf(what, sizeof what, "TIFF page chain is broken after page %u (file cut short?)", (unsigned)ndir);
        s = tiff_fail(err, CRYO_E_TRUNCATED, name, &msgs, what);
        goto out;
    }
    if (ndir == 1 && raw == RAW_NATIVE) {
        char *desc = NULL;
        struct ij_desc ij;
        if (!TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &desc))
            desc = NULL;
        parse_imagej(desc, &ij);
        if (ij.images > 1) {
            s = read_imagej_contiguous(t, path, name, ij.images, &p0, dt, &tmp, err);
            if (s < 0)
                goto out;
            tmp.ndim = 3;
            tiff_calibration(t, &tmp);
            cryo_volume_move(v, &tmp);
            goto out;
        }
    }
    /* Before allocating the stack: page 1's data must be able to hold its pixels, and the
     * file the whole stack (a 390-byte file must not ask for 13 GB). */
    {
        struct stat sb;
        uint64_t fsz = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0, page_bytes = 0, need = 0;
        uint16_t comp = COMPRESSION_NONE;
        msgs.err[0] = '\0';
        if (!TIFFSetDirectory(t, 0)) {
            s = tiff_fail(err, CRYO_E_FORMAT, name, &msgs, "cannot read a TIFF page directory");
            goto out;
        }
        TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &comp);
        page_bytes = (uint64_t)p0.w * p0.h * (p0.bps / 8);
        uint64_t cap = page_capacity(t, fsz), r = max_ratio(comp);
        need = (uint64_t)ndir * page_bytes;
        if (page_bytes > cap || (fsz <= UINT64_MAX / r && need > fsz * r)) {
            char ws[32];
            snprintf(ws, sizeof ws, "%.1f MiB", (double)need / 1048576.0);
            s = cryo_fail(err, CRYO_E_TRUNCATED,
                          "%s: %u page%s of %ux%u %u-bit need %s, more than the file's data (%llu "
                          "bytes) can hold", name, (unsigned)ndir, ndir == 1 ? "" : "s", p0.w, p0.h,
                          p0.bps, ws, (unsigned long long)fsz);
            goto out;
        }
    }
    s = cryo_volume_alloc(&tmp, dt, 1, (int64_t)ndir, (int64_t)p0.h, (int64_t)p0.w, err);
    if (s < 0) {
        cryo_error_prefix(err, name);
        goto out;
    }
    size_t es = p0.bps / 8, page_raw = (size_t)p0.w * p0.h * es, n_page = (size_t)p0.w * p0.h;
    if (raw != RAW_NATIVE) {
        rawbuf = malloc(page_raw);
        if (!rawbuf) {
            s = cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
            goto out;
        }
    }
    /* Walk the pages in order (TIFFReadDirectory): TIFFSetDirectory(d) starts from page 1
     * each time, quadratic in the number of pages. */
    for (tdir_t d = 0; d < ndir; d++) {
        msgs.err[0] = '\0'; /* quote only what libtiff says about this page */
        if (d == 0 ? !TIFFSetDirectory(t, 0) : !TIFFReadDirectory(t)) {
            s = tiff_fail(err, CRYO_E_FORMAT, name, &msgs, "cannot read a TIFF page directory");
            goto out;
        }
        if (page_format(t, &p) < 0 || p.w != p0.w || p.h != p0.h || p.bps != p0.bps || p.fmt != p0.fmt ||
            p.spp != p0.spp) {
            s = cryo_fail(err, CRYO_E_FORMAT, "%s: page %u is %ux%u %u-bit %s but page 1 is %ux%u %u-bit %s; "
                          "all pages of a stack must agree", name, (unsigned)d + 1, p.w, p.h, p.bps,
                          fmt_name(p.fmt), p0.w, p0.h, p0.bps, fmt_name(p0.fmt));
            goto out;
        }
        unsigned char *dst = (unsigned char *)tmp.data + (size_t)d * n_page * cryo_dtype_size(dt);
        if (read_page(t, raw == RAW_NATIVE ? dst : rawbuf, &p0, es) < 0) {
            char what[64];
            snprintf(what, sizeof what, "cannot decode page %u", (unsigned)d + 1);
            s = tiff_fail(err, CRYO_E_FORMAT, name, &msgs, what);
            goto out;
        }
        if (raw == RAW_U32) {
            const uint32_t *in = (const uint32_t *)rawbuf;
            int32_t *out = (int32_t *)dst;
            for (size_t i = 0; i < n_page; i++) {
                if (in[i] > INT32_MAX) {
                    s = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: uint32 value %u on page %u does not fit int32",
                                  name, in[i], (unsigned)d + 1);
                    goto out;
                }
                out[i] = (int32_t)in[i];
            }
        } else if (raw == RAW_F64) {
            const double *in = (const double *)rawbuf;
            float *out = (float *)dst;
            for (size_t i = 0; i < n_page; i++)
                out[i] = (float)in[i];
        }
    }
    tmp.ndim = ndir == 1 ? 2 : 3;
    TIFFSetDirectory(t, 0);
    tiff_calibration(t, &tmp);
    cryo_volume_move(v, &tmp);
out:
    free(rawbuf);
    cryo_volume_free(&tmp);
    TIFFClose(t);
    return s;
}

int cryo_tiff_write(const char *path, const struct cryo_volume *v, const char *name, struct cryo_error *err)
{
    uint16_t bps, fmt;
    switch (v->dtype) {
    case CRYO_DTYPE_U8: bps = 8, fmt = SAMPLEFORMAT_UINT; break;
    case CRYO_DTYPE_I8: bps = 8, fmt = SAMPLEFORMAT_INT; break;
    case CRYO_DTYPE_U16: bps = 16, fmt = SAMPLEFORMAT_UINT; break;
    case CRYO_DTYPE_I16: bps = 16, fmt = SAMPLEFORMAT_INT; break;
    case CRYO_DTYPE_I32: bps = 32, fmt = SAMPLEFORMAT_INT; break;
    case CRYO_DTYPE_F32: bps = 32, fmt = SAMPLEFORMAT_IEEEFP; break;
    default:
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: TIFF output cannot hold %s data (convert to float32 first)",
                         name, cryo_dtype_name(v->dtype));
    }
    if (!v->data)
        return cryo_fail(err, CRYO_E_INVALID, "%s: no data to write", name);
    if (v->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: a TIFF stack holds one channel, this frame has %lld", name,
                         (long long)v->c);
    if (v->nx > UINT32_MAX || v->ny > UINT32_MAX || v->nz > 65535 * 16)
        return cryo_fail(err, CRYO_E_INVALID, "%s: %lldx%lldx%lld is too large for a TIFF stack", name,
                         (long long)v->nx, (long long)v->ny, (long long)v->nz);
    for (int i = 0; i < 3; i++)
        if (!isfinite(v->apix[i]) || v->apix[i] <= 0 || !isfinite(v->origin[i]))
            return cryo_fail(err, CRYO_E_NUMERIC, "%s: voxel size/origin must be finite (voxel size > 0)", name);
    size_t page = (size_t)v->nx * (size_t)v->ny * cryo_dtype_size(v->dtype);
    int big = cryo_volume_bytes(v) > ((size_t)1 << 31);

    struct cryo_stats st;
    cryo_volume_stats(v, &st);
    char desc[512];
    snprintf(desc, sizeof desc,
             "ImageJ=1.11a\nunit=\\u00C5\nspacing=%.9g\nxorigin=%.9g\nyorigin=%.9g\n"
             "zorigin=%.9g\nloop=false\nmin=%.9g\nmax=%.9g\n",
             v->apix[2], -v->origin[0] / v->apix[0],
             -v->origin[1] / v->apix[1], -v->origin[2] / v->apix[2], isfinite(st.min) ? st.min : 0.0,
             isfinite(st.max) ? st.max : 0.0);

    struct tiff_msgs msgs = {{0}};
    TIFF *t = tiff_open(path, big ? "w8" : "w", &msgs);
    if (!t)
        return tiff_fail(err, CRYO_E_IO, name, &msgs, "cannot create TIFF");
    int s = CRYO_OK;
    for (int64_t z = 0; z < v->nz && s == CRYO_OK; z++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)v->nx);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)v->ny);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bps);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)1);
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, fmt);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, (uint32_t)v->ny);
        TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE);
        TIFFSetField(t, TIFFTAG_XRESOLUTION, (float)(1.0 / v->apix[0]));
        TIFFSetField(t, TIFFTAG_YRESOLUTION, (float)(1.0 / v->apix[1]));
        if (v->nz > 1) {
            TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
            if (v->nz <= 65535)
                TIFFSetField(t, TIFFTAG_PAGENUMBER, (uint16_t)z, (uint16_t)v->nz);
        }
        if (z == 0)
            TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, desc);
        unsigned char *src = (unsigned char *)v->data + (size_t)z * page;
        /* Directory first, then its data: readers that guess from offsets (tifffile's ImageJ
         * path) then never mistake the stack for contiguous data. */
        if (!TIFFCheckpointDirectory(t))
            s = tiff_fail(err, CRYO_E_IO, name, &msgs, "writing TIFF directory failed");
        else if (TIFFWriteEncodedStrip(t, 0, src, (tmsize_t)page) < 0 || !TIFFWriteDirectory(t))
            s = tiff_fail(err, CRYO_E_IO, name, &msgs, "writing TIFF page failed");
    }
    TIFFClose(t);
    if (s == CRYO_OK && msgs.err[0])
        s = tiff_fail(err, CRYO_E_IO, name, &msgs, "writing TIFF failed");
    return s;
}
