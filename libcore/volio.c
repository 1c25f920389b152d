/* volio.c — open any input by its bytes, write any output atomically (see volio.h).
 *
 * Sources: the first bytes decide (never the name): gzip is undone through a FILE cookie
 * (gz.h) and the inflated bytes sniffed again; then "CVOL" -> stream, "II*\0"/"MM\0*" ->
 * TIFF, "MAP " at 208 or a plausible old CCP4 header -> MRC. MRC reads from any FILE
 * (pipes included); TIFF needs a seekable file for libtiff, so a pipe or gzip TIFF is first
 * spooled to a temporary file in $TMPDIR (or /tmp), removed as soon as it has been read.
 *
 * Sinks: the bytes go through outfile.h, which decides by what the path is: a regular file
 * (or a symbolic link to one, or nothing yet) is written beside the target and renamed over
 * it at cryo_sink_commit(); standard output, devices and FIFOs are written in place. MRC
 * and TIFF to those are collected in a temporary file and copied out at commit, so a refused
 * frame never leaves half a file in a pipe; a stream goes out frame by frame.
 */
#include "cryolvm/volio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cryolvm/mem.h"
#include "cryolvm/mrc.h"
#include "cryolvm/outfile.h"
#include "cryolvm/tiffio.h"
#include "gz.h"
#include "mrc_priv.h"

#define SNIFF_BYTES 1024

const char *cryo_format_name(enum cryo_format f)
{
    switch (f) {
    case CRYO_FORMAT_STREAM: return "stream";
    case CRYO_FORMAT_MRC: return "mrc";
    case CRYO_FORMAT_TIFF: return "tiff";
    default: return "unknown";
    }
}

enum cryo_format cryo_format_from_name(const char *name)
{
    if (!name)
        return CRYO_FORMAT_UNKNOWN;
    if (strcasecmp(name, "mrc") == 0 || strcasecmp(name, "map") == 0 || strcasecmp(name, "ccp4") == 0)
        return CRYO_FORMAT_MRC;
    if (strcasecmp(name, "tiff") == 0 || strcasecmp(name, "tif") == 0)
        return CRYO_FORMAT_TIFF;
    if (strcasecmp(name, "stream") == 0 || strcasecmp(name, "cvol") == 0)
        return CRYO_FORMAT_STREAM;
    return CRYO_FORMAT_UNKNOWN;
}

static int ends_with(const char *s, size_t n, const char *ext)
{
    size_t k = strlen(ext);
    return n > k && strncasecmp(s + n - k, ext, k) == 0;
}

enum cryo_format cryo_format_from_path(const char *path, int *gz)
{
    static const char *mrc_ext[] = {".mrc", ".map", ".ccp4", ".mrcs", ".rec", ".st"};
    if (gz)
        *gz = 0;
    if (!path)
        return CRYO_FORMAT_UNKNOWN;
    size_t n = strlen(path);
    if (ends_with(path, n, ".gz")) {
        n -= 3;
        if (gz)
            *gz = 1;
    }
    for (size_t i = 0; i < sizeof mrc_ext / sizeof mrc_ext[0]; i++)
        if (ends_with(path, n, mrc_ext[i]))
            return CRYO_FORMAT_MRC;
    if (ends_with(path, n, ".tif") || ends_with(path, n, ".tiff"))
        return CRYO_FORMAT_TIFF;
    if (ends_with(path, n, CRYO_STREAM_EXT))
        return CRYO_FORMAT_STREAM;
    return CRYO_FORMAT_UNKNOWN;
}

/* ---- sources ---------------------------------------------------------------- */

struct cryo_source {
    char *name;                      /* path or "stdin" */
    char *path;                      /* NULL for stdin */
    enum cryo_format format;
    FILE *file;                      /* the opened path, or stdin (not closed) */
    int own_file;
    struct cryo_gz *gz;              /* gzip layer, if any */
    FILE *in;                        /* what format readers read: file or the gzip FILE */
    unsigned char prefix[SNIFF_BYTES];
    size_t prefix_len;
    struct cryo_stream_reader *stream;
    int frames;                      /* frames delivered (MRC/TIFF: at most 1) */
};

/* Read up to n bytes (fewer only at end of input). */
static size_t read_upto(FILE *f, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t k = fread(buf + got, 1, n - got, f);
        if (k == 0)
            break;
        got += k;
    }
    return got;
}

static int source_read_error(struct cryo_source *s, struct cryo_error *err)
{
    if (s->gz && cryo_gz_status(s->gz, err) < 0)
        return err ? err->status : CRYO_E_IO;
    return cryo_fail(err, CRYO_E_IO, "%s: read error: %s", s->name, strerror(errno ? errno : EIO));
}

int cryo_source_open(struct cryo_source **out, const char *path, struct cryo_error *err)
{
    *out = NULL;
    int is_stdin = !path || strcmp(path, "-") == 0;
    struct cryo_source *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    s->name = cryo_strdup(is_stdin ? "stdin" : path, err);
    s->path = is_stdin ? NULL : cryo_strdup(path, err);
    if (!s->name || (!is_stdin && !s->path)) {
        cryo_source_free(s);
        return CRYO_E_NOMEM;
    }
    if (is_stdin) {
        s->file = stdin;
    } else {
        s->file = fopen(path, "rb");
        if (!s->file) {
            int e = errno;
            cryo_source_free(s);
            return cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(e));
        }
        s->own_file = 1;
        struct stat st;
        if (fstat(fileno(s->file), &st) == 0 && S_ISDIR(st.st_mode)) {
            cryo_source_free(s);
            return cryo_fail(err, CRYO_E_IO, "%s: is a directory", path);
        }
    }
    s->in = s->file;
    s->prefix_len = read_upto(s->in, s->prefix, SNIFF_BYTES);
    if (s->prefix_len == 0 && ferror(s->in)) {
        int st = source_read_error(s, err);
        cryo_source_free(s);
        return st;
    }
    if (cryo_gz_sniff(s->prefix, s->prefix_len)) {
        int st = cryo_gz_open_read(&s->gz, &s->in, s->file, s->prefix, s->prefix_len, s->name, err);
        if (st < 0) {
            cryo_source_free(s);
            return st;
        }
        s->prefix_len = read_upto(s->in, s->prefix, SNIFF_BYTES);
        if (cryo_gz_status(s->gz, err) < 0) {
            st = err ? err->status : CRYO_E_CORRUPT;
            cryo_source_free(s);
            return st;
        }
    }
    if (s->prefix_len == 0) {
        cryo_source_free(s);
        return cryo_fail(err, CRYO_E_FORMAT, "%s: empty input", is_stdin ? "stdin" : path);
    }
    const unsigned char *b = s->prefix;
    size_t n = s->prefix_len;
    int st = CRYO_OK;
    if (n >= 4 && memcmp(b, CRYO_STREAM_MAGIC, 4) == 0) {
        s->format = CRYO_FORMAT_STREAM;
        st = cryo_stream_reader_open(&s->stream, s->in, s->name, b, n, err);
    } else if (cryo_tiff_sniff(b, n)) {
        s->format = CRYO_FORMAT_TIFF;
    } else if (cryo_mrc_sniff(b, n)) {
        s->format = CRYO_FORMAT_MRC;
    } else {
        if (n < 224)
            st = cryo_fail(err, CRYO_E_FORMAT,
                           "%s: not a recognised volume (%zu bytes: too short for MRC, not TIFF, not a cryolvm stream)",
                           s->name, n);
        else
            st = cryo_fail(err, CRYO_E_FORMAT,
                           "%s: not a recognised volume (expected MRC/CCP4, TIFF or a cryolvm stream; "
                           "first bytes %02x %02x %02x %02x)", s->name, b[0], b[1], b[2], b[3]);
    }
    if (st < 0) {
        cryo_source_free(s);
        return st;
    }
    *out = s;
    return CRYO_OK;
}

/* Copy prefix + the rest of s->in to a temporary file for libtiff; returns its path. */
static int spool_to_temp(struct cryo_source *s, char *path, size_t cap, struct cryo_error *err)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    snprintf(path, cap, "%s/cryolvm-spool.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return cryo_fail(err, CRYO_E_IO, "%s: cannot create a temporary file in %s: %s", s->name, dir,
                         strerror(errno));
    FILE *t = fdopen(fd, "wb");
    if (!t) {
        close(fd);
        unlink(path);
        return cryo_fail(err, CRYO_E_IO, "%s: %s", s->name, strerror(errno));
    }
    int st = CRYO_OK;
    if (fwrite(s->prefix, 1, s->prefix_len, t) != s->prefix_len)
        st = cryo_fail(err, CRYO_E_IO, "%s: writing temporary %s: %s", s->name, path, strerror(errno));
    unsigned char *buf = malloc(1 << 20);
    if (!buf && st == CRYO_OK)
        st = cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", s->name);
    while (st == CRYO_OK) {
        size_t k = fread(buf, 1, 1 << 20, s->in);
        if (k == 0) {
            if (ferror(s->in))
                st = source_read_error(s, err);
            break;
        }
        if (fwrite(buf, 1, k, t) != k)
            st = cryo_fail(err, CRYO_E_IO, "%s: writing temporary %s: %s", s->name, path, strerror(errno));
    }
    free(buf);
    if (fclose(t) != 0 && st == CRYO_OK)
        st = cryo_fail(err, CRYO_E_IO, "%s: writing temporary %s: %s", s->name, path, strerror(errno));
    if (st < 0)
        unlink(path);
    return st;
}

int cryo_source_next(struct cryo_source *s, struct cryo_volume *v, struct cryo_error *err)
{
    if (s->format == CRYO_FORMAT_STREAM)
        return cryo_stream_read(s->stream, v, err);
    if (s->frames > 0)
        return 0;
    int st;
    if (s->format == CRYO_FORMAT_MRC) {
        /* Deflate yields at most 1032 bytes per compressed byte (zlib's limit): with the
         * file's size that bounds what a gzipped header may claim. */
        int64_t bound = -1;
        struct stat sb;
        if (s->gz && fstat(fileno(s->file), &sb) == 0 && S_ISREG(sb.st_mode))
            bound = (int64_t)sb.st_size * 1032 + 4096;
        st = mrc_read_sized(v, s->in, s->prefix, s->prefix_len, -1, bound, s->name, err);
        /* A gzip error surfaces as a short read: report the gzip reason instead; one found
         * in the bytes after the map (a bad CRC) fails the read too. */
        if (s->gz && cryo_gz_status(s->gz, NULL) < 0) {
            cryo_volume_free(v);
            st = cryo_gz_status(s->gz, err);
        }
    } else {
        struct stat sb;
        if (!s->gz && s->path && fstat(fileno(s->file), &sb) == 0 && S_ISREG(sb.st_mode)) {
            st = cryo_tiff_read(v, s->path, s->name, err);
        } else {
            char tmp[4096];
            st = spool_to_temp(s, tmp, sizeof tmp, err);
            if (st == CRYO_OK) {
                st = cryo_tiff_read(v, tmp, s->name, err);
                unlink(tmp);
            }
        }
    }
    if (st < 0)
        return st;
    s->frames++;
    return 1;
}

enum cryo_format cryo_source_format(const struct cryo_source *s) { return s->format; }
const char *cryo_source_name(const struct cryo_source *s) { return s->name; }
int cryo_source_gzipped(const struct cryo_source *s) { return s->gz != NULL; }

void cryo_source_last_sizes(const struct cryo_source *s, uint64_t *compressed, uint64_t *raw)
{
    if (s->format == CRYO_FORMAT_STREAM && s->stream) {
        cryo_stream_last_sizes(s->stream, compressed, raw);
        return;
    }
    *compressed = *raw = 0;
}

void cryo_source_free(struct cryo_source *s)
{
    if (!s)
        return;
    if (s->stream)
        cryo_stream_reader_free(s->stream);
    if (s->gz)
        cryo_gz_close(s->gz, NULL);
    if (s->own_file && s->file)
        fclose(s->file);
    free(s->name);
    free(s->path);
    free(s);
}

int cryo_read_one(struct cryo_volume *v, const char *path, struct cryo_error *err)
{
    struct cryo_source *s;
    CRYO_TRY(cryo_source_open(&s, path, err));
    struct cryo_volume tmp, extra;
    cryo_volume_init(&tmp);
    cryo_volume_init(&extra);
    int r = cryo_source_next(s, &tmp, err);
    if (r == 0)
        r = cryo_fail(err, CRYO_E_FORMAT, "%s: holds no frames", s->name);
    if (r > 0) {
        int r2 = cryo_source_next(s, &extra, err);
        if (r2 > 0)
            r = cryo_fail(err, CRYO_E_INVALID, "%s: holds more than one frame where one was expected", s->name);
        else if (r2 < 0)
            r = r2;
    }
    if (r > 0) {
        cryo_volume_move(v, &tmp);
        r = CRYO_OK;
    }
    cryo_volume_free(&tmp);
    cryo_volume_free(&extra);
    cryo_source_free(s);
    return r;
}

/* ---- sinks ------------------------------------------------------------------ */

struct cryo_sink {
    enum cryo_format format;
    enum cryo_mrc_u8 mrc_u8;
    struct cryo_outfile *of;         /* where the bytes go (outfile.h decides how) */
    const char *name;                /* for messages: target path or "stdout" (owned by of) */
    struct cryo_gz *gz;
    FILE *out;                       /* what writers write: the outfile's FILE or the gzip FILE */
    struct cryo_stream_writer *stream;
    int frames;
    int committed;
};

void cryo_sink_opts_default(struct cryo_sink_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = CRYO_FORMAT_UNKNOWN;
    o->mrc_u8 = CRYO_MRC_U8_UINT16;
    cryo_stream_opts_default(&o->stream);
    const char *d = getenv("CRYO_FSYNC");
    o->durable = d && strcmp(d, "1") == 0;
}

int cryo_sink_open(struct cryo_sink **out, const char *path, const struct cryo_sink_opts *opts,
                   struct cryo_error *err)
{
    *out = NULL;
    struct cryo_sink_opts o;
    if (opts)
        o = *opts;
    else
        cryo_sink_opts_default(&o);
    int to_stdout = !path || strcmp(path, "-") == 0;
    int gz = 0;
    enum cryo_format f = o.format;
    if (to_stdout) {
        if (f == CRYO_FORMAT_UNKNOWN)
            f = CRYO_FORMAT_STREAM;
    } else {
        enum cryo_format by_ext = cryo_format_from_path(path, &gz);
        if (f == CRYO_FORMAT_UNKNOWN)
            f = by_ext;
        if (f == CRYO_FORMAT_UNKNOWN)
            return cryo_fail(err, CRYO_E_INVALID,
                             "%s: unknown output format (use .mrc .map .ccp4 .mrcs .rec .st [.gz], .tif .tiff, "
                             ".cvol, or --format)", path);
        if (gz && f != CRYO_FORMAT_MRC)
            return cryo_fail(err, CRYO_E_INVALID, "%s: gzip output (.gz) is supported for MRC only", path);
    }
    struct cryo_sink *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    s->format = f;
    s->mrc_u8 = o.mrc_u8;
    /* A stream goes out frame by frame; MRC and TIFF to a device or pipe are collected first
     * (all or nothing, and libtiff needs a seekable file). */
    struct cryo_outfile_opts oo;
    cryo_outfile_opts_default(&oo);
    oo.spool = f != CRYO_FORMAT_STREAM;
    oo.durable = o.durable;
    int st = cryo_outfile_open(&s->of, path, &oo, err);
    if (st < 0) {
        free(s);
        return st;
    }
    s->name = cryo_outfile_name(s->of);
    if (!o.allow_terminal && cryo_outfile_is_terminal(s->of)) {
        st = cryo_fail(err, CRYO_E_INVALID, "%s is a terminal: refusing to write binary %s data there "
                       "(use -o FILE or a pipe)", s->name, cryo_format_name(f));
        cryo_sink_free(s);
        return st;
    }
    s->out = cryo_outfile_file(s->of);
    if (gz)
        st = cryo_gz_open_write(&s->gz, &s->out, cryo_outfile_file(s->of), 6, s->name, err);
    if (st == CRYO_OK && f == CRYO_FORMAT_STREAM)
        st = cryo_stream_writer_open(&s->stream, s->out, s->name, &o.stream, err);
    if (st < 0) {
        cryo_sink_free(s);
        return st;
    }
    *out = s;
    return CRYO_OK;
}

int cryo_sink_write(struct cryo_sink *s, const struct cryo_volume *v, struct cryo_error *err)
{
    if (s->committed)
        return cryo_fail(err, CRYO_E_INVALID, "%s: output already committed", s->name);
    if (s->format == CRYO_FORMAT_STREAM) {
        CRYO_TRY(cryo_stream_write(s->stream, v, err));
        s->frames++;
        return CRYO_OK;
    }
    const char *fmt = s->format == CRYO_FORMAT_MRC ? "MRC" : "TIFF";
    if (s->frames > 0)
        return cryo_fail(err, CRYO_E_INVALID,
                         "%s: %s output holds one frame, got a second (write a .cvol stream for several)",
                         s->name, fmt);
    if (v->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: %s output holds one channel, this frame has %lld (split it "
                         "first)", s->name, fmt, (long long)v->c);
    int st;
    if (s->format == CRYO_FORMAT_MRC)
        st = cryo_mrc_write_u8(s->out, v, s->name, s->mrc_u8, err);
    else
        st = cryo_tiff_write(cryo_outfile_tmp_path(s->of), v, s->name, err);
    if (st == CRYO_OK)
        s->frames++;
    return st;
}

int cryo_sink_commit(struct cryo_sink *s, struct cryo_error *err)
{
    if (s->committed)
        return CRYO_OK;
    if (s->frames == 0 && s->format != CRYO_FORMAT_STREAM)
        return cryo_fail(err, CRYO_E_INVALID, "%s: no frame was written", s->name);
    if (s->stream)
        CRYO_TRY(cryo_stream_writer_finish(s->stream, err));
    if (s->gz) {
        struct cryo_gz *g = s->gz;
        s->gz = NULL;
        s->out = cryo_outfile_file(s->of);
        CRYO_TRY(cryo_gz_close(g, err));
    }
    CRYO_TRY(cryo_outfile_commit(s->of, err));
    s->committed = 1;
    return CRYO_OK;
}

enum cryo_format cryo_sink_format(const struct cryo_sink *s) { return s->format; }

void cryo_sink_free(struct cryo_sink *s)
{
    if (!s)
        return;
    if (s->stream)
        cryo_stream_writer_free(s->stream);
    if (s->gz)
        cryo_gz_close(s->gz, NULL);
    cryo_outfile_free(s->of);
    free(s);
}

int cryo_write_one(const char *path, const struct cryo_volume *v, const struct cryo_sink_opts *opts,
                   struct cryo_error *err)
{
    struct cryo_sink *s;
    CRYO_TRY(cryo_sink_open(&s, path, opts, err));
    int st = cryo_sink_write(s, v, err);
    if (st == CRYO_OK)
        st = cryo_sink_commit(s, err);
    cryo_sink_free(s);
    return st;
}
