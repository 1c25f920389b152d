/* stream_read.c — the CVOL reader: checks the stream header, then returns one frame per
 * cryo_stream_read until the end record (layout: cryolvm-stream(5)).
 *
 * Trust nothing before its checksum: a frame header is read whole (its fixed length and
 * metadata length are capped first, so a lying length cannot make us allocate much) and
 * its crc32 verified before any field is used. Then the shape is validated against the
 * caps, the frame allocated, and chunks read a batch at a time (one per thread) and
 * decompressed in parallel straight into the frame. The frame trailer's crc32 covers every
 * byte of the record on the wire (header, chunk sizes, compressed chunks), so any flipped
 * byte, lost or reordered chunk is caught, even one zstd would decode without complaint
 * (a window-size field, say); each chunk's own zstd XXH64 checks the decoded data too. Every way the input can end early is
 * told apart in the message, since "where did it stop" is the user's best clue.
 */
#include "stream_priv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include "cryolvm/mem.h"

struct rslot {
    ZSTD_DCtx *dctx;
    unsigned char *comp, *shuf;
    size_t comp_cap, shuf_cap, comp_len;
    uint32_t crc;
    size_t zerr;
};

struct cryo_stream_reader {
    FILE *f;
    char *name;
    unsigned char *prefix;
    size_t prefix_len, prefix_pos;
    uint64_t frames;     /* frames returned so far */
    int done;            /* 1 after the end record, < 0 after an error */
    uint64_t last_comp, last_raw;
    size_t data_cap;     /* bytes allocated for the frame being read (grows on a pipe) */
    int nslots;
    struct rslot *slots;
};

/* Read up to n bytes: prefix first, then the file. Returns the count read (short = end of
 * input) or -1 after recording an I/O error. */
static long long get(struct cryo_stream_reader *r, void *buf, size_t n, struct cryo_error *err)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n && r->prefix_pos < r->prefix_len)
        p[got++] = r->prefix[r->prefix_pos++];
    if (got < n) {
        got += fread(p + got, 1, n - got, r->f);
        if (got < n && ferror(r->f)) {
            cryo_fail(err, CRYO_E_IO, "%s: read failed: %s", r->name, strerror(errno));
            return -1;
        }
    }
    return (long long)got;
}

/* Message for an input that stops inside frame number `fno` (counted from 1). */
static int cut_in_frame(struct cryo_stream_reader *r, uint64_t fno, struct cryo_error *err)
{
    return cryo_fail(err, CRYO_E_TRUNCATED,
                     "%s: stream ends in the middle of frame %llu (the upstream process died?)", r->name,
                     (unsigned long long)fno);
}

/* Read exactly n bytes of frame `fno`; a short read is a cut stream. */
static int need(struct cryo_stream_reader *r, void *buf, size_t n, uint64_t fno, struct cryo_error *err)
{
    long long got = get(r, buf, n, err);
    if (got < 0)
        return CRYO_E_IO;
    if ((size_t)got < n)
        return cut_in_frame(r, fno, err);
    return CRYO_OK;
}

int cryo_stream_reader_open(struct cryo_stream_reader **out, FILE *f, const char *name,
                            const unsigned char *prefix, size_t prefix_len, struct cryo_error *err)
{
    *out = NULL;
    if (!name || strcmp(name, "-") == 0)
        name = "stdin";
    struct cryo_stream_reader *r = cryo_alloc_array(1, sizeof *r, err);
    if (!r)
        return CRYO_E_NOMEM;
    r->f = f;
    r->name = cryo_strdup(name, err);
    if (!r->name) {
        free(r);
        return CRYO_E_NOMEM;
    }
    if (prefix_len) {
        r->prefix = malloc(prefix_len);
        if (!r->prefix) {
            cryo_stream_reader_free(r);
            return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
        }
        memcpy(r->prefix, prefix, prefix_len);
        r->prefix_len = prefix_len;
    }
    unsigned char h[CVOL_HEADER_SIZE];
    long long got = get(r, h, sizeof h, err);
    int st = CRYO_OK;
    if (got < 0)
        st = CRYO_E_IO;
    else if (got == 0)
        st = cryo_fail(err, CRYO_E_FORMAT, "%s: empty input (expected a cryolvm stream)", name);
    else if (memcmp(h, CRYO_STREAM_MAGIC, got < 4 ? (size_t)got : 4) != 0)
        st = cryo_fail(err, CRYO_E_FORMAT, "%s: not a cryolvm stream (it does not start with \"CVOL\")", name);
    else if (got < (long long)sizeof h)
        st = cryo_fail(err, CRYO_E_TRUNCATED, "%s: stream ends inside its header (the upstream process died?)",
                       name);
    else if (cvol_get_u16(h + 4) != CVOL_MAJOR)
        st = cryo_fail(err, CRYO_E_UNSUPPORTED,
                       "%s: stream format version %u.%u; this build reads version %d.x only", name,
                       cvol_get_u16(h + 4), cvol_get_u16(h + 6), CVOL_MAJOR);
    else if (cvol_get_u32(h + 12) != cvol_crc32(0, h, 12))
        st = cryo_fail(err, CRYO_E_CORRUPT, "%s: stream header checksum mismatch (corrupt data)", name);
    else if (cvol_get_u32(h + 8) & CVOL_FLAGS_REQUIRED)
        st = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: stream uses features this build does not know (flags 0x%08x)",
                       name, (unsigned)cvol_get_u32(h + 8));
    if (st < 0) {
        cryo_stream_reader_free(r);
        return st;
    }
    *out = r;
    return CRYO_OK;
}

/* The end record: count check, then nothing may follow. Returns 0 (clean end) or < 0. */
static int read_end(struct cryo_stream_reader *r, const unsigned char *tag, struct cryo_error *err)
{
    unsigned char e[CVOL_END_SIZE];
    memcpy(e, tag, 4);
    long long got = get(r, e + 4, sizeof e - 4, err);
    if (got < 0)
        return CRYO_E_IO;
    if (got < (long long)(sizeof e - 4))
        return cryo_fail(err, CRYO_E_TRUNCATED,
                         "%s: stream ends in the middle of its end record (the upstream process died?)", r->name);
    if (cvol_get_u32(e + 16) != cvol_crc32(0, e, 16))
        return cryo_fail(err, CRYO_E_CORRUPT, "%s: end record checksum mismatch (corrupt data)", r->name);
    uint64_t count = cvol_get_u64(e + 8);
    if (count != r->frames)
        return cryo_fail(err, CRYO_E_CORRUPT, "%s: end record says %llu frames but the stream held %llu",
                         r->name, (unsigned long long)count, (unsigned long long)r->frames);
    unsigned char extra;
    got = get(r, &extra, 1, err);
    if (got < 0)
        return CRYO_E_IO;
    if (got > 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: unexpected data after the end-of-stream record", r->name);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parse the metadata block (already under the header checksum) into m. */
static int parse_meta(struct cryo_stream_reader *r, uint64_t fno, const unsigned char *p, size_t len,
                      uint32_t count, struct cryo_meta *m, struct cryo_error *err)
{
    unsigned long long fn = (unsigned long long)fno;
    cryo_meta_init(m);
    if (count == 0) {
        if (len != 0)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: metadata block has %zu bytes for 0 entries",
                             r->name, fn, len);
        return CRYO_OK;
    }
    m->keys = cryo_alloc_array(count, sizeof *m->keys, err);
    m->vals = cryo_alloc_array(count, sizeof *m->vals, err);
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        cryo_meta_init(m);
        return CRYO_E_NOMEM;
    }
    m->cap = count;
    const unsigned char *end = p + len;
    int st = CRYO_OK;
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 2) {
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: metadata entry %u runs past its block", r->name,
                           fn, i);
            break;
        }
        size_t kl = cvol_get_u16(p);
        p += 2;
        if ((size_t)(end - p) < kl + 4 || !cvol_key_valid((const char *)p, kl)) {
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: metadata entry %u has a bad key", r->name, fn, i);
            break;
        }
        const unsigned char *key = p;
        p += kl;
        size_t vl = cvol_get_u32(p);
        p += 4;
        if ((size_t)(end - p) < vl || memchr(p, 0, vl)) {
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: metadata value of '%.*s' is %s", r->name, fn,
                           (int)kl, (const char *)key, (size_t)(end - p) < vl ? "longer than its block" : "not text (NUL byte)");
            break;
        }
        char *k = malloc(kl + 1), *v = malloc(vl + 1);
        if (!k || !v) {
            free(k);
            free(v);
            st = cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory reading metadata", r->name);
            break;
        }
        memcpy(k, key, kl);
        k[kl] = '\0';
        memcpy(v, p, vl);
        v[vl] = '\0';
        p += vl;
        m->keys[m->n] = k;
        m->vals[m->n] = v;
        m->n++;
    }
    if (st == CRYO_OK && p != end)
        st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: %zu stray bytes after the metadata", r->name, fn,
                       (size_t)(end - p));
    if (st == CRYO_OK && m->n > 1) {
        /* Keys are unique; sorting a copy finds duplicates in O(n log n) even for 65536 keys. */
        char **sorted = cryo_alloc_array(m->n, sizeof *sorted, err);
        if (!sorted)
            st = CRYO_E_NOMEM;
        else {
            memcpy(sorted, m->keys, m->n * sizeof *sorted);
            qsort(sorted, m->n, sizeof *sorted, cmp_str);
            for (size_t i = 1; i < m->n && st == CRYO_OK; i++)
                if (strcmp(sorted[i - 1], sorted[i]) == 0)
                    st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: metadata key '%s' appears twice", r->name,
                                   fn, sorted[i]);
            free(sorted);
        }
    }
    if (st < 0)
        cryo_meta_free(m);
    return st;
}

static int slots_reserve(struct cryo_stream_reader *r, int n, size_t comp, size_t shuf, struct cryo_error *err)
{
    if (n > r->nslots) {
        struct rslot *s = realloc(r->slots, (size_t)n * sizeof *s);
        if (!s)
            return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for decompression buffers", r->name);
        memset(s + r->nslots, 0, (size_t)(n - r->nslots) * sizeof *s);
        r->slots = s;
        r->nslots = n;
    }
    for (int k = 0; k < n; k++) {
        struct rslot *s = &r->slots[k];
        if (!s->dctx && !(s->dctx = ZSTD_createDCtx()))
            return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for a zstd context", r->name);
        if (s->comp_cap < comp) {
            cryo_free_big(s->comp);
            s->comp = cryo_alloc_big(comp, err);
            s->comp_cap = s->comp ? comp : 0;
            if (!s->comp)
                return CRYO_E_NOMEM;
        }
        if (s->shuf_cap < shuf) {
            cryo_free_big(s->shuf);
            s->shuf = cryo_alloc_big(shuf, err);
            s->shuf_cap = s->shuf ? shuf : 0;
            if (!s->shuf)
                return CRYO_E_NOMEM;
        }
    }
    return CRYO_OK;
}

/* Bytes still to come from a regular file, or -1 when unknown (pipe, gzip, memory). */
static int64_t source_remaining(const struct cryo_stream_reader *r)
{
    int fd = fileno(r->f);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return -1;
    off_t pos = ftello(r->f);
    if (pos < 0)
        return -1;
    int64_t left = (int64_t)sb.st_size - (int64_t)pos + (int64_t)(r->prefix_len - r->prefix_pos);
    return left < 0 ? 0 : left;
}

/* The fewest bytes on the wire that can carry `raw` bytes in chunks of `cb`: per chunk its
 * size word, a zstd frame header (magic + descriptor, 5 bytes) and per 128 KiB block at
 * least 4 bytes (an RLE block: 3-byte header + 1 byte), then the 4-byte trailer. zstd can
 * compress no better, so a frame whose claim needs more than the file has is a lie. */
static uint64_t min_wire_bytes(uint64_t raw, uint32_t cb, uint32_t n_chunks)
{
    const uint64_t block = (uint64_t)1 << 17;
    uint64_t full = raw / cb, rest = raw % cb;
    uint64_t w = full * (4 + 5 + 4 * ((cb + block - 1) / block));
    if (rest)
        w += 4 + 5 + 4 * ((rest + block - 1) / block);
    (void)n_chunks;
    return w + 4;
}

/* On a pipe the frame buffer starts at this size and doubles as chunks arrive, so a header
 * that claims gigabytes costs memory only for data that actually comes. */
#define GROW_START ((size_t)64 << 20)

/* The frame header after its tag, checked; fills v's shape, placement and metadata. */
static int read_frame_header(struct cryo_stream_reader *r, uint64_t fno, struct cryo_volume *v, int *filter,
                             uint64_t *raw, uint32_t *cb, uint32_t *n_chunks, uint64_t *wire, uint32_t *wcrc,
                             struct cryo_error *err)
{
    unsigned long long fn = (unsigned long long)fno;
    unsigned char lenb[4];
    CRYO_TRY(need(r, lenb, 4, fno, err));
    uint32_t fixed = cvol_get_u32(lenb);
    if (fixed < CVOL_FRAME_FIXED || fixed > CVOL_FRAME_FIXED_MAX)
        return cryo_fail(err, CRYO_E_CORRUPT, "%s: frame %llu: header length %u is impossible (corrupt stream?)",
                         r->name, fn, (unsigned)fixed);
    unsigned char fixedbuf[CVOL_FRAME_FIXED_MAX];
    memcpy(fixedbuf, CVOL_TAG_FRAME, 4);
    memcpy(fixedbuf + 4, lenb, 4);
    CRYO_TRY(need(r, fixedbuf + 8, fixed - 8, fno, err));
    uint32_t meta_bytes = cvol_get_u32(fixedbuf + 116), meta_count = cvol_get_u32(fixedbuf + 112);
    if (meta_bytes > CVOL_MAX_META_BYTES || meta_count > CVOL_MAX_META_COUNT)
        return cryo_fail(err, CRYO_E_CORRUPT,
                         "%s: frame %llu: header claims %u metadata entries in %u bytes (limits %u, %u)", r->name,
                         fn, (unsigned)meta_count, (unsigned)meta_bytes, CVOL_MAX_META_COUNT,
                         (unsigned)CVOL_MAX_META_BYTES);
    unsigned char *mb = malloc((size_t)meta_bytes + 4);
    if (!mb)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for frame metadata", r->name);
    int st = need(r, mb, (size_t)meta_bytes + 4, fno, err);
    if (st == CRYO_OK) {
        uint32_t crc = cvol_crc32(cvol_crc32(0, fixedbuf, fixed), mb, meta_bytes);
        if (crc != cvol_get_u32(mb + meta_bytes))
            st = cryo_fail(err, CRYO_E_CORRUPT, "%s: frame %llu: header checksum mismatch (corrupt data)", r->name,
                           fn);
        *wcrc = cvol_crc32(crc, mb + meta_bytes, 4);
    }
    if (st < 0) {
        free(mb);
        return st;
    }
    *wire = (uint64_t)fixed + meta_bytes + 4; /* the tag is part of `fixed` */

    /* The header is what the writer wrote; now check that the writer made sense. */
    const unsigned char *h = fixedbuf;
    enum cryo_dtype dt = (enum cryo_dtype)h[8];
    int ndim = h[9];
    *filter = h[10];
    int codec = h[11];
    uint32_t flags = cvol_get_u32(h + 12);
    uint64_t d[4];
    for (int a = 0; a < 4; a++)
        d[a] = cvol_get_u64(h + 16 + 8 * a);
    *raw = cvol_get_u64(h + 96);
    *cb = cvol_get_u32(h + 104);
    *n_chunks = cvol_get_u32(h + 108);
    size_t es = cryo_dtype_size(dt);
    st = CRYO_OK;
    if (h[8] == 0 || h[8] >= CRYO_DTYPE_COUNT || es == 0)
        st = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: frame %llu: unknown dtype code %u", r->name, fn, h[8]);
    else if (codec != CVOL_CODEC_ZSTD)
        st = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: frame %llu: unknown codec %d", r->name, fn, codec);
    else if (*filter != CVOL_FILTER_NONE && *filter != CVOL_FILTER_SHUFFLE)
        st = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: frame %llu: unknown filter %d", r->name, fn, *filter);
    else if (flags & CVOL_FLAGS_REQUIRED)
        st = cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: frame %llu uses features this build does not know (flags 0x%08x)",
                       r->name, fn, (unsigned)flags);
    else if (ndim < 1 || ndim > 4)
        st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: ndim %d (must be 1..4)", r->name, fn, ndim);
    for (int a = 0; a < 4 && st == CRYO_OK; a++)
        if (d[a] < 1 || d[a] >= CVOL_MAX_DIM || (a < 4 - ndim && d[a] != 1))
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: shape %llux%llux%llux%llu with ndim %d is invalid",
                           r->name, fn, (unsigned long long)d[0], (unsigned long long)d[1],
                           (unsigned long long)d[2], (unsigned long long)d[3], ndim);
    if (st == CRYO_OK) {
        /* Multiply up against the cap so that no product can overflow. */
        uint64_t cap = CVOL_MAX_FRAME_BYTES / es, n = 1;
        int over = 0;
        for (int a = 3; a >= 1 && !over; a--) {
            if (d[a] > cap / n)
                over = 1;
            else
                n *= d[a];
        }
        if (over || d[0] > cap / n)
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: shape %llux%llux%llux%llu %s exceeds %llu GiB",
                           r->name, fn, (unsigned long long)d[0], (unsigned long long)d[1],
                           (unsigned long long)d[2], (unsigned long long)d[3], cryo_dtype_name(dt),
                           (unsigned long long)(CVOL_MAX_FRAME_BYTES >> 30));
        else if (*raw != n * d[0] * es)
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: header says %llu data bytes but the shape needs %llu",
                           r->name, fn, (unsigned long long)*raw, (unsigned long long)(n * d[0] * es));
        else if (*cb < es || *cb > CVOL_MAX_CHUNK_BYTES || *cb % es != 0 ||
                 *n_chunks != (*raw + *cb - 1) / *cb)
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: chunking (%u chunks of %u bytes) does not fit %llu bytes",
                           r->name, fn, (unsigned)*n_chunks, (unsigned)*cb, (unsigned long long)*raw);
    }
    double apix[3], origin[3];
    for (int a = 0; a < 3 && st == CRYO_OK; a++) {
        apix[a] = cvol_get_f64(h + 48 + 8 * a);
        origin[a] = cvol_get_f64(h + 72 + 8 * a);
        if (!isfinite(apix[a]) || !isfinite(origin[a]))
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: frame %llu: non-finite voxel size or origin", r->name, fn);
    }
    struct cryo_meta m;
    if (st == CRYO_OK)
        st = parse_meta(r, fno, mb, meta_bytes, meta_count, &m, err);
    free(mb);
    if (st < 0)
        return st;
    int64_t left = source_remaining(r);
    uint64_t need = min_wire_bytes(*raw, *cb, *n_chunks);
    if (left >= 0 && need > (uint64_t)left) {
        cryo_meta_free(&m);
        return cryo_fail(err, CRYO_E_TRUNCATED,
                         "%s: stream ends before frame %llu is complete: its header claims %llu data bytes, "
                         "which need at least %llu bytes of chunks, and only %lld bytes follow", r->name, fn,
                         (unsigned long long)*raw, (unsigned long long)need, (long long)left);
    }
    /* A frame of one byte is allocated whole; the real buffer follows in read_frame_data. */
    int grow = left < 0 && *raw > GROW_START;
    st = grow ? cryo_volume_alloc(v, dt, 1, 1, 1, 1, err)
              : cryo_volume_alloc(v, dt, (int64_t)d[0], (int64_t)d[1], (int64_t)d[2], (int64_t)d[3], err);
    if (st == CRYO_OK && grow) {
        cryo_free_big(v->data);
        v->data = cryo_alloc_big(GROW_START, err);
        st = v->data ? CRYO_OK : CRYO_E_NOMEM;
        v->c = (int64_t)d[0], v->nz = (int64_t)d[1], v->ny = (int64_t)d[2], v->nx = (int64_t)d[3];
    }
    r->data_cap = grow ? GROW_START : (size_t)*raw;
    if (st < 0) {
        cryo_meta_free(&m);
        cryo_volume_free(v);
        return cryo_error_prefix(err, r->name);
    }
    v->ndim = ndim;
    for (int a = 0; a < 3; a++) {
        v->apix[a] = apix[a];
        v->origin[a] = origin[a];
    }
    cryo_meta_free(&v->meta);
    v->meta = m;
    return CRYO_OK;
}

/* Chunks and trailer of frame `fno` into v->data. */
static int read_frame_data(struct cryo_stream_reader *r, uint64_t fno, struct cryo_volume *v, int filter,
                           uint64_t raw, uint32_t cb, uint32_t n_chunks, uint64_t *wire, uint32_t crc,
                           struct cryo_error *err)
{
    unsigned long long fn = (unsigned long long)fno;
    size_t es = cryo_dtype_size(v->dtype);
    int shuffled = filter == CVOL_FILTER_SHUFFLE && es > 1;
    /* Buffers for the largest chunk actually present, not for what chunk_bytes claims:
     * memory stays bounded by the frame even if a writer states a huge chunk size. */
    size_t cmax = (size_t)(raw < cb ? raw : cb);
    int nt = cvol_threads(0, n_chunks);
    CRYO_TRY(slots_reserve(r, nt, ZSTD_compressBound(cmax), shuffled ? cmax : 0, err));
    unsigned char *data = v->data;
    for (uint32_t b = 0; b < n_chunks; b += (uint32_t)nt) {
        int nb = (int)((n_chunks - b) < (uint32_t)nt ? (n_chunks - b) : (uint32_t)nt);
        uint64_t upto = (uint64_t)(b + (uint32_t)nb) * cb;
        if (upto > raw)
            upto = raw;
        if (upto > r->data_cap) { /* growing buffer (pipe): double, keep what is decoded */
            size_t ncap = r->data_cap > raw / 2 ? (size_t)raw : 2 * r->data_cap;
            if (ncap < upto)
                ncap = (size_t)upto;
            unsigned char *nd = cryo_alloc_big(ncap, err);
            if (!nd)
                return cryo_error_prefix(err, r->name);
            memcpy(nd, data, (size_t)b * cb);
            cryo_free_big(v->data);
            v->data = data = nd;
            r->data_cap = ncap;
        }
        for (int k = 0; k < nb; k++) {
            struct rslot *s = &r->slots[k];
            unsigned char szb[4];
            CRYO_TRY(need(r, szb, 4, fno, err));
            uint32_t sz = cvol_get_u32(szb);
            uint64_t off = (uint64_t)(b + (uint32_t)k) * cb;
            size_t len = (size_t)((raw - off) < cb ? (raw - off) : cb);
            if (sz == 0 || sz > ZSTD_compressBound(len))
                return cryo_fail(err, CRYO_E_CORRUPT,
                                 "%s: frame %llu, chunk %u: compressed size %u is impossible (corrupt data)",
                                 r->name, fn, (unsigned)(b + (uint32_t)k + 1), (unsigned)sz);
            CRYO_TRY(need(r, s->comp, sz, fno, err));
            s->comp_len = sz;
            *wire += 4 + (uint64_t)sz;
        }
#pragma omp parallel for num_threads(nt) schedule(static, 1) if (nb > 1)
        for (int k = 0; k < nb; k++) {
            struct rslot *s = &r->slots[k];
            uint64_t off = (uint64_t)(b + (uint32_t)k) * cb;
            size_t len = (size_t)((raw - off) < cb ? (raw - off) : cb);
            unsigned char szb[4];
            cvol_put_u32(szb, (uint32_t)s->comp_len);
            s->crc = cvol_crc32(cvol_crc32(0, szb, 4), s->comp, s->comp_len);
            unsigned char *dst = shuffled ? s->shuf : data + off;
            /* Exactly one zstd frame (the spec's rule): no skippable or concatenated frames. */
            size_t one = ZSTD_findFrameCompressedSize(s->comp, s->comp_len);
            size_t got = ZSTD_isError(one) ? one
                         : one != s->comp_len ? (size_t)-1
                                              : ZSTD_decompressDCtx(s->dctx, dst, len, s->comp, s->comp_len);
            s->zerr = 0;
            if (ZSTD_isError(got) && got != (size_t)-1)
                s->zerr = got;
            else if (got != len)
                s->zerr = (size_t)-1; /* sentinel: not one frame of the right size, not a zstd code */
            if (!s->zerr && shuffled)
                cvol_unshuffle(data + off, s->shuf, len / es, es);
        }
        for (int k = 0; k < nb; k++) {
            struct rslot *s = &r->slots[k];
            if (s->zerr)
                return cryo_fail(err, CRYO_E_CORRUPT, "%s: frame %llu, chunk %u: %s (corrupt data)", r->name, fn,
                                 (unsigned)(b + (uint32_t)k + 1),
                                 s->zerr == (size_t)-1 ? "not one zstd frame of the chunk's size"
                                                       : ZSTD_getErrorName(s->zerr));
            crc = (uint32_t)crc32_combine(crc, s->crc, (z_off_t)(4 + s->comp_len));
        }
    }
    unsigned char tr[4];
    CRYO_TRY(need(r, tr, 4, fno, err));
    *wire += 4;
    if (cvol_get_u32(tr) != crc)
        return cryo_fail(err, CRYO_E_CORRUPT, "%s: frame %llu: data checksum mismatch (corrupt data)", r->name, fn);
    return CRYO_OK;
}

int cryo_stream_read(struct cryo_stream_reader *r, struct cryo_volume *v, struct cryo_error *err)
{
    cryo_volume_free(v);
    if (r->done == 1)
        return 0;
    if (r->done < 0)
        return cryo_fail(err, r->done, "%s: stream reader used after an error", r->name);
    uint64_t fno = r->frames + 1;
    unsigned char tag[4];
    long long got = get(r, tag, 4, err);
    int st;
    if (got < 0)
        st = CRYO_E_IO;
    else if (got == 0)
        st = r->frames == 0
                 ? cryo_fail(err, CRYO_E_TRUNCATED,
                             "%s: stream ends after its header without an end record (the upstream process died?)",
                             r->name)
                 : cryo_fail(err, CRYO_E_TRUNCATED,
                             "%s: stream ends after frame %llu without an end record (the upstream process died?)",
                             r->name, (unsigned long long)r->frames);
    else if (got < 4)
        st = cryo_fail(err, CRYO_E_TRUNCATED,
                       "%s: stream ends in the middle of a record after frame %llu (the upstream process died?)",
                       r->name, (unsigned long long)r->frames);
    else if (memcmp(tag, CVOL_TAG_END, 4) == 0) {
        st = read_end(r, tag, err);
        if (st == 0) {
            r->done = 1;
            return 0;
        }
    } else if (memcmp(tag, CVOL_TAG_FRAME, 4) != 0)
        st = cryo_fail(err, CRYO_E_CORRUPT, "%s: unknown record type where frame %llu should start (corrupt data)",
                       r->name, (unsigned long long)fno);
    else {
        int filter;
        uint64_t raw, wire = 0;
        uint32_t cb, n_chunks, wcrc = 0;
        st = read_frame_header(r, fno, v, &filter, &raw, &cb, &n_chunks, &wire, &wcrc, err);
        if (st == CRYO_OK)
            st = read_frame_data(r, fno, v, filter, raw, cb, n_chunks, &wire, wcrc, err);
        if (st == CRYO_OK) {
            r->frames = fno;
            r->last_comp = wire;
            r->last_raw = raw;
            return 1;
        }
    }
    cryo_volume_free(v); /* never hand out a partial frame */
    r->done = st < 0 ? st : CRYO_E_FORMAT;
    return st;
}

void cryo_stream_last_sizes(const struct cryo_stream_reader *r, uint64_t *compressed, uint64_t *raw)
{
    if (compressed)
        *compressed = r->last_comp;
    if (raw)
        *raw = r->last_raw;
}

void cryo_stream_reader_free(struct cryo_stream_reader *r)
{
    if (!r)
        return;
    for (int k = 0; k < r->nslots; k++) {
        ZSTD_freeDCtx(r->slots[k].dctx);
        cryo_free_big(r->slots[k].comp);
        cryo_free_big(r->slots[k].shuf);
    }
    free(r->slots);
    free(r->prefix);
    free(r->name);
    free(r);
}
