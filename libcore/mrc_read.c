/* mrc_read.c — MRC data into a frame, at close to copy speed.
 *
 * The idea: check every size before allocating, then move the data once. A regular file's
 * size is known, so a lying header is refused before any allocation and data in standard
 * axis order is fread straight into the frame (one copy, by the kernel). Pipes and gzip
 * streams are read as they come, straight into the frame when the claim is at most a
 * quarter of memory, else in growing chunks, so a header that claims terabytes on a pipe
 * fails with "only N bytes follow" rather than an allocation failure. Big-endian data
 * is swapped in place; non-standard axis orders are permuted in 16³ blocks (see permute).
 */
#include "mrc_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cryolvm/mem.h"

struct mrc_in {
    FILE *f;
    const unsigned char *pre; /* sniffed bytes not yet handed out */
    size_t pre_len;
    uint64_t consumed;        /* bytes handed out so far */
    int io_errno;
    int64_t total;            /* length of the whole source when known (memory), else -1 */
};

static size_t in_read(struct mrc_in *r, void *dst, size_t n)
{
    size_t got = 0;
    if (r->pre_len) {
        size_t k = n < r->pre_len ? n : r->pre_len;
        memcpy(dst, r->pre, k);
        r->pre += k, r->pre_len -= k, got = k;
    }
    while (got < n) {
        size_t k = fread((char *)dst + got, 1, n - got, r->f);
        got += k;
        if (k == 0) {
            if (ferror(r->f))
                r->io_errno = errno ? errno : EIO;
            break;
        }
    }
    r->consumed += got;
    return got;
}

/* Bytes left in the source, or -1 when unknown (pipe, gzip). */
static int64_t in_remaining(struct mrc_in *r)
{
    if (r->total >= 0)
        return r->total > (int64_t)r->consumed ? r->total - (int64_t)r->consumed : 0;
    int fd = fileno(r->f);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    off_t pos = ftello(r->f);
    if (pos < 0)
        return -1;
    int64_t left = (int64_t)st.st_size - ((int64_t)pos - (int64_t)r->pre_len);
    return left < 0 ? 0 : left;
}

static int read_failed(struct mrc_in *r, const char *name, struct cryo_error *err)
{
    return cryo_fail(err, CRYO_E_IO, "%s: read error: %s", name, strerror(r->io_errno));
}

static int truncated(const struct mrc_header *h, uint64_t have, const char *name, struct cryo_error *err)
{
    char want_s[32], have_s[32];
    mrc_format_bytes(h->data_bytes, want_s, sizeof want_s);
    mrc_format_bytes(have, have_s, sizeof have_s);
    return cryo_fail(err, CRYO_E_TRUNCATED, "%s: header says %dx%dx%d %s (%s) but only %s of data follow",
                     name, h->n[0], h->n[1], h->n[2], cryo_dtype_name(h->dtype), want_s, have_s);
}

static void swap_bytes(void *data, size_t n, size_t esize)
{
    if (esize == 2) {
        uint16_t *p = data;
        #pragma omp parallel for if (n > (1 << 22))
        for (size_t i = 0; i < n; i++)
            p[i] = __builtin_bswap16(p[i]);
    } else if (esize == 4) {
        uint32_t *p = data;
        #pragma omp parallel for if (n > (1 << 22))
        for (size_t i = 0; i < n; i++)
            p[i] = __builtin_bswap32(p[i]);
    }
}

/* Walk the destination in x-fastest order, 16^3 blocks at a time, fetching each voxel from
 * the file layout: dst[x + nx*(y + ny*z)] = src[x*is[0] + y*is[1] + z*is[2]], where is[k] is
 * the source stride of the file axis that runs along spatial axis k. Writes are contiguous;
 * a block's reads touch 16x16 cache lines, which stay in L1 while the block is copied. */
#define PERMUTE_FN(NAME, T)                                                                       \
    static void NAME(T *dst, const T *src, const int64_t n[3], const size_t is[3])               \
    {                                                                                             \
        const int64_t B = 16, nx = n[0], ny = n[1], nz = n[2];                                    \
        _Pragma("omp parallel for collapse(2) schedule(static) if (nx * ny * nz > (1 << 20))")   \
        for (int64_t zb = 0; zb < nz; zb += B)                                                    \
            for (int64_t yb = 0; yb < ny; yb += B)                                                \
                for (int64_t xb = 0; xb < nx; xb += B) {                                          \
                    int64_t ze = zb + B < nz ? zb + B : nz, ye = yb + B < ny ? yb + B : ny;       \
                    int64_t xe = xb + B < nx ? xb + B : nx;                                       \
                    for (int64_t z = zb; z < ze; z++)                                             \
                        for (int64_t y = yb; y < ye; y++) {                                       \
                            T *out = dst + (size_t)nx * ((size_t)y + (size_t)ny * (size_t)z);     \
                            const T *in = src + (size_t)y * is[1] + (size_t)z * is[2];           \
                            for (int64_t x = xb; x < xe; x++)                                     \
                                out[x] = in[(size_t)x * is[0]];                                   \
                        }                                                                         \
                }                                                                                 \
    }
PERMUTE_FN(permute8, uint8_t)
PERMUTE_FN(permute16, uint16_t)
PERMUTE_FN(permute32, uint32_t)

static void permute(void *dst, const void *src, const struct mrc_header *h)
{
    /* source strides of the column, row and section axes, assigned to their spatial axes */
    const size_t file_stride[3] = {1, (size_t)h->n[0], (size_t)h->n[0] * (size_t)h->n[1]};
    size_t is[3];
    for (int i = 0; i < 3; i++)
        is[h->file_axis[i]] = file_stride[i];
    switch (h->esize) {
    case 1: permute8(dst, src, h->dim, is); break;
    case 2: permute16(dst, src, h->dim, is); break;
    default: permute32(dst, src, h->dim, is); break;
    }
}

/* Touch a fresh buffer before read() fills it. Measured here (bench/mrcio.sh): read() into
 * 512 MiB of untouched huge-page memory runs at ~0.5 GB/s, because the kernel faults and
 * clears the pages one by one inside the copy; touching them first, two threads at a time,
 * and then reading runs at ~4.4 GB/s for the two steps together. */
static void prefault(void *p, size_t n)
{
    if (n < ((size_t)4 << 20))
        return;
    const size_t step = (size_t)2 << 20;
    unsigned char *b = p;
    #pragma omp parallel for schedule(static)
    for (size_t off = 0; off < n; off += step)
        memset(b + off, 0, n - off < step ? n - off : step);
}

static int host_big_endian(void)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return 1;
#else
    return 0;
#endif
}

/* Claims up to a quarter of physical memory are allocated at once even when the source
 * length is unknown (the untouched part of a lying header's buffer costs nothing); larger
 * claims on a pipe are read in growing chunks, so they fail as "only N bytes follow". */
static size_t direct_read_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0)
        return (size_t)1 << 30;
    return (size_t)pages / 4 * (size_t)psize;
}

/* Read the data of an unknown-length source in growing chunks (see top comment). Returns
 * the buffer (malloc'd) holding `got` bytes, got <= want. */
static unsigned char *read_growing(struct mrc_in *r, uint64_t want, uint64_t *got, struct cryo_error *err,
                                   const char *name)
{
    size_t cap = want < ((uint64_t)64 << 20) ? (size_t)want : ((size_t)64 << 20);
    unsigned char *buf = malloc(cap ? cap : 1);
    size_t have = 0;
    if (!buf) {
        cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    for (;;) {
        size_t k = in_read(r, buf + have, cap - have);
        have += k;
        if (have < cap || have == want)
            break;
        size_t ncap = cap > want / 2 ? (size_t)want : cap * 2;
        unsigned char *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory reading %llu bytes", name, (unsigned long long)want);
            return NULL;
        }
        buf = nb, cap = ncap;
    }
    *got = have;
    return buf;
}

static int keep_exthdr(struct cryo_volume *v, const struct mrc_header *h, const unsigned char *ext,
                       size_t n, struct cryo_error *err)
{
    char typ[5];
    int printable = 1;
    for (int i = 0; i < 4; i++)
        if (h->exttyp[i] < 32 || h->exttyp[i] > 126)
            printable = 0;
    memcpy(typ, h->exttyp, 5);
    if (printable && strcmp(typ, "    ") != 0)
        CRYO_TRY(cryo_meta_set(&v->meta, "mrc.exttyp", typ, err));
    CRYO_TRY(cryo_meta_setf(&v->meta, err, "mrc.nsymbt", "%d", h->nsymbt));
    if (ext) {
        /* The shape the extended header describes: the writer re-emits it only for a frame
         * of this shape, a safety net for tools that forget to drop mrc.* keys. */
        CRYO_TRY(cryo_meta_setf(&v->meta, err, "mrc.exthdr_shape", "%lld,%lld,%lld", (long long)h->dim[0],
                                (long long)h->dim[1], (long long)h->dim[2]));
        char *b = cryo_base64_encode(ext, n, err);
        if (!b)
            return CRYO_E_NOMEM;
        int s = cryo_meta_set(&v->meta, "mrc.exthdr", b, err);
        free(b);
        return s;
    }
    return CRYO_OK;
}

/* What follows the voxel data is ignored, but never silently: counted exactly when the
 * length is known, else by reading at most MRC_TRAILING_SLACK bytes (a gzip member is then
 * inflated no further, however much it would yield), and reported as a warning. Returns
 * the count (-1 after a read error). */
#define MRC_TRAILING_SLACK ((size_t)64 << 10)
static int64_t count_trailing(struct mrc_in *r, int *at_least)
{
    *at_least = 0;
    int64_t left = in_remaining(r);
    if (left >= 0)
        return left;
    unsigned char *buf = malloc(MRC_TRAILING_SLACK);
    if (!buf)
        return 0;
    size_t got = in_read(r, buf, MRC_TRAILING_SLACK);
    free(buf);
    if (r->io_errno)
        return -1;
    *at_least = got == MRC_TRAILING_SLACK;
    return (int64_t)got;
}

int mrc_read_sized(struct cryo_volume *v, FILE *f, const unsigned char *prefix, size_t prefix_len,
                   int64_t total, int64_t total_max, const char *name, struct cryo_error *err)
{
    struct mrc_in r = {f, prefix, prefix_len, 0, 0, total};
    unsigned char hdr[MRC_HEADER_BYTES];
    size_t got = in_read(&r, hdr, sizeof hdr);
    if (r.io_errno)
        return read_failed(&r, name, err);
    if (got == 0)
        return cryo_fail(err, CRYO_E_TRUNCATED, "%s: empty input", name);
    if (got < sizeof hdr)
        return cryo_fail(err, CRYO_E_TRUNCATED, "%s: only %zu bytes, too short for the 1024-byte MRC header",
                         name, got);
    struct mrc_header h;
    CRYO_TRY(mrc_header_parse(&h, hdr, name, err));

    int64_t left = in_remaining(&r);
    uint64_t ext_n = (uint64_t)h.nsymbt;
    if (left < 0 && total_max >= 0) {
        /* Length unknown but bounded (gzip: deflate yields at most 1032 bytes per byte):
         * a claim beyond the bound is refused before anything is allocated. */
        uint64_t can = (uint64_t)total_max > r.consumed ? (uint64_t)total_max - r.consumed : 0;
        if (ext_n + h.data_bytes > can) {
            char want_s[32], can_s[32];
            mrc_format_bytes(ext_n + h.data_bytes, want_s, sizeof want_s);
            mrc_format_bytes(can, can_s, sizeof can_s);
            return cryo_fail(err, CRYO_E_TRUNCATED,
                             "%s: header says %dx%dx%d %s (%s) but the compressed input can hold at most %s",
                             name, h.n[0], h.n[1], h.n[2], cryo_dtype_name(h.dtype), want_s, can_s);
        }
    }
    if (left >= 0 && (uint64_t)left < ext_n + h.data_bytes) {
        /* Some EMDB entries (emd_1042, ...) claim symmetry records that are not there. */
        if (ext_n > 0 && (uint64_t)left == h.data_bytes) {
            ext_n = 0;
        } else if ((uint64_t)left < ext_n) {
            char es[32];
            mrc_format_bytes(ext_n, es, sizeof es);
            return cryo_fail(err, CRYO_E_TRUNCATED,
                             "%s: input ends inside the %s extended header (NSYMBT = %d)", name, es, h.nsymbt);
        } else {
            return truncated(&h, (uint64_t)left - ext_n, name, err);
        }
    }

    struct cryo_volume tmp;
    cryo_volume_init(&tmp);
    unsigned char *ext = NULL, *spool = NULL;
    void *raw = NULL;
    int s = CRYO_OK;

    if (ext_n > 0) {
        int keep = ext_n <= MRC_EXTHDR_KEEP_MAX;
        size_t chunk = keep ? (size_t)ext_n : ((size_t)1 << 20);
        ext = malloc(chunk);
        if (!ext) {
            s = cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for the extended header", name);
            goto out;
        }
        uint64_t todo = ext_n;
        while (todo > 0) {
            size_t k = todo < chunk ? (size_t)todo : chunk;
            if (in_read(&r, ext, k) != k) {
                if (r.io_errno) {
                    s = read_failed(&r, name, err);
                } else {
                    char es[32];
                    mrc_format_bytes(ext_n, es, sizeof es);
                    s = cryo_fail(err, CRYO_E_TRUNCATED,
                                  "%s: input ends inside the %s extended header (NSYMBT = %d)", name, es, h.nsymbt);
                }
                goto out;
            }
            todo -= k;
        }
        if (!keep) {
            free(ext);
            ext = NULL;
        }
    }

    int identity = h.file_axis[0] == 0 && h.file_axis[1] == 1 && h.file_axis[2] == 2;
    size_t nbytes = (size_t)h.data_bytes, count = nbytes / h.esize;
    if (left >= 0 || nbytes <= direct_read_limit()) {
        /* Straight into the frame, 64 MiB at a time, each piece touched just before it is
         * read: on a pipe a lying header then costs at most one untouched piece. */
        raw = cryo_alloc_big(nbytes, err);
        if (!raw) {
            s = CRYO_E_NOMEM;
            goto out;
        }
        size_t k = 0;
        while (k < nbytes) {
            size_t piece = nbytes - k < ((size_t)64 << 20) ? nbytes - k : ((size_t)64 << 20);
            prefault((unsigned char *)raw + k, piece);
            size_t n_in = in_read(&r, (unsigned char *)raw + k, piece);
            k += n_in;
            if (n_in < piece)
                break;
        }
        if (k != nbytes) {
            s = r.io_errno ? read_failed(&r, name, err) : truncated(&h, k, name, err);
            goto out;
        }
    } else {
        uint64_t have = 0;
        spool = read_growing(&r, h.data_bytes, &have, err, name);
        if (!spool) {
            s = CRYO_E_NOMEM;
            goto out;
        }
        if (r.io_errno) {
            s = read_failed(&r, name, err);
            goto out;
        }
        if (have != h.data_bytes) {
            s = truncated(&h, have, name, err);
            goto out;
        }
        if (identity) {
            raw = cryo_alloc_big(nbytes, err);
            if (!raw) {
                s = CRYO_E_NOMEM;
                goto out;
            }
            memcpy(raw, spool, nbytes);
            free(spool);
            spool = NULL;
        } else {
            raw = spool;  /* permuted below into a big buffer */
        }
    }
    int at_least;
    int64_t trailing = count_trailing(&r, &at_least);
    if (trailing < 0) {
        s = read_failed(&r, name, err);
        goto out;
    }
    if (trailing > 0)
        cryo_warn("%s: %s%lld bytes after the voxel data ignored (not part of the map)", name,
                  at_least ? "at least " : "", (long long)trailing);
    if (h.big_endian != host_big_endian())
        swap_bytes(raw, count, h.esize);
    if (identity) {
        tmp.data = raw;
        raw = NULL;
    } else {
        tmp.data = cryo_alloc_big(nbytes, err);
        if (!tmp.data) {
            s = CRYO_E_NOMEM;
            goto out;
        }
        permute(tmp.data, raw, &h);
    }
    tmp.dtype = h.dtype;
    s = mrc_header_to_volume(&h, &tmp, err);
    if (s == CRYO_OK && h.nsymbt > 0)
        s = keep_exthdr(&tmp, &h, ext, (size_t)ext_n, err);
    if (s == CRYO_OK && ext_n == 0 && h.nsymbt > 0)
        s = cryo_meta_set(&tmp.meta, "mrc.exthdr_missing", "1", err);
    if (s == CRYO_OK)
        cryo_volume_move(v, &tmp);
out:
    if (raw) {
        if (raw == spool)
            free(spool);
        else
            cryo_free_big(raw);
    } else {
        free(spool);
    }
    free(ext);
    cryo_volume_free(&tmp);
    return s;
}

int cryo_mrc_read(struct cryo_volume *v, FILE *f, const unsigned char *prefix, size_t prefix_len,
                  const char *name, struct cryo_error *err)
{
    return mrc_read_sized(v, f, prefix, prefix_len, -1, -1, name, err);
}

int cryo_mrc_decode(struct cryo_volume *v, const unsigned char *buf, size_t len, const char *name,
                    struct cryo_error *err)
{
    if (len == 0)
        return cryo_fail(err, CRYO_E_TRUNCATED, "%s: empty input", name);
    FILE *f = fmemopen((void *)buf, len, "rb");
    if (!f)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: cannot open memory buffer", name);
    int s = mrc_read_sized(v, f, NULL, 0, (int64_t)len, -1, name, err);
    fclose(f);
    return s;
}
