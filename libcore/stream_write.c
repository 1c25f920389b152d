/* stream_write.c — the CVOL writer: stream header, one frame record per cryo_stream_write,
 * the end record in cryo_stream_writer_finish (layout: cryolvm-stream(5)).
 *
 * A frame is cut into chunks of raw data (4 MiB by default). Chunks are independent (each
 * is shuffled and compressed on its own into one zstd frame), so a batch of them, one per
 * thread, is compressed in parallel with OpenMP and then written in order. Memory is the
 * caller's frame plus, per thread, one shuffled chunk and one compressed chunk.
 * Why OpenMP over chunks rather than ZSTD_c_nbWorkers: decoding parallelises the same way,
 * and the shuffle and checksum of each chunk run in the same thread as its compression.
 */
#include "stream_priv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "cryolvm/mem.h"

struct slot {
    ZSTD_CCtx *cctx;
    unsigned char *shuf; /* chunk_bytes, shuffled raw data */
    unsigned char *comp; /* comp_cap, compressed chunk */
    size_t comp_cap, comp_len, shuf_cap;
    uint32_t crc;        /* crc32 of the chunk's raw bytes */
    size_t zerr;         /* ZSTD error code of the last compression, 0 if fine */
};

struct cryo_stream_writer {
    FILE *f;
    char *name;
    struct cryo_stream_opts opts;
    uint32_t chunk_bytes;
    uint64_t frames;
    int broken;   /* a write failed: no more frames, no end record */
    int finished;
    int nslots;
    struct slot *slots;
};

static int put(struct cryo_stream_writer *w, const void *buf, size_t len, struct cryo_error *err)
{
    if (len && fwrite(buf, 1, len, w->f) != len) {
        w->broken = 1;
        return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", w->name, strerror(errno));
    }
    return CRYO_OK;
}

int cryo_stream_writer_open(struct cryo_stream_writer **out, FILE *f, const char *name,
                            const struct cryo_stream_opts *opts, struct cryo_error *err)
{
    *out = NULL;
    struct cryo_stream_opts o;
    cryo_stream_opts_default(&o);
    if (opts)
        o = *opts;
    if (o.level == 0)
        o.level = CVOL_DEFAULT_LEVEL;
    if (!name || strcmp(name, "-") == 0)
        name = "stdout";
    if (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel())
        return cryo_fail(err, CRYO_E_INVALID, "%s: zstd level %d is outside %d..%d", name, o.level,
                         ZSTD_minCLevel(), ZSTD_maxCLevel());
    if (o.shuffle != 0 && o.shuffle != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: shuffle must be 0 or 1, not %d", name, o.shuffle);
    if (o.threads < 0)
        return cryo_fail(err, CRYO_E_INVALID, "%s: thread count %d is negative", name, o.threads);

    struct cryo_stream_writer *w = cryo_alloc_array(1, sizeof *w, err);
    if (!w)
        return CRYO_E_NOMEM;
    w->f = f;
    w->opts = o;
    w->chunk_bytes = CVOL_DEFAULT_CHUNK;
    w->name = cryo_strdup(name, err);
    if (!w->name) {
        free(w);
        return CRYO_E_NOMEM;
    }
    unsigned char h[CVOL_HEADER_SIZE];
    memcpy(h, CRYO_STREAM_MAGIC, 4);
    cvol_put_u16(h + 4, CVOL_MAJOR);
    cvol_put_u16(h + 6, CVOL_MINOR);
    cvol_put_u32(h + 8, 0);
    cvol_put_u32(h + 12, cvol_crc32(0, h, 12));
    int st = put(w, h, sizeof h, err);
    if (st < 0) {
        cryo_stream_writer_free(w);
        return st;
    }
    *out = w;
    return CRYO_OK;
}

int cryo_stream_writer_set_chunk_bytes(struct cryo_stream_writer *w, size_t bytes, struct cryo_error *err)
{
    if (bytes < 8 || bytes > CVOL_MAX_CHUNK_BYTES)
        return cryo_fail(err, CRYO_E_INVALID, "%s: chunk size %zu is outside 8..%u bytes", w->name, bytes,
                         (unsigned)CVOL_MAX_CHUNK_BYTES);
    w->chunk_bytes = (uint32_t)bytes;
    return CRYO_OK;
}

/* Make sure there are `n` slots able to hold a chunk of `cb` raw bytes. */
static int slots_reserve(struct cryo_stream_writer *w, int n, size_t cb, struct cryo_error *err)
{
    if (n > w->nslots) {
        struct slot *s = realloc(w->slots, (size_t)n * sizeof *s);
        if (!s)
            return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for compression buffers", w->name);
        memset(s + w->nslots, 0, (size_t)(n - w->nslots) * sizeof *s);
        w->slots = s;
        w->nslots = n;
    }
    size_t bound = ZSTD_compressBound(cb);
    for (int k = 0; k < n; k++) {
        struct slot *s = &w->slots[k];
        if (!s->cctx) {
            s->cctx = ZSTD_createCCtx();
            if (!s->cctx)
                return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for a zstd context", w->name);
        }
        if (s->comp_cap < bound) {
            cryo_free_big(s->comp);
            s->comp = cryo_alloc_big(bound, err);
            s->comp_cap = s->comp ? bound : 0;
            if (!s->comp)
                return CRYO_E_NOMEM;
        }
    }
    for (int k = 0; k < n; k++) {
        struct slot *s = &w->slots[k];
        if (s->shuf_cap < cb) {
            cryo_free_big(s->shuf);
            s->shuf = cryo_alloc_big(cb, err);
            s->shuf_cap = s->shuf ? cb : 0;
            if (!s->shuf)
                return CRYO_E_NOMEM;
        }
    }
    return CRYO_OK;
}

/* Check the frame and serialise its header (fixed part, metadata, crc32) into *hdr. */
static int frame_header(struct cryo_stream_writer *w, const struct cryo_volume *v, uint64_t raw,
                        uint32_t cb, uint32_t n_chunks, int filter, unsigned char **hdr, size_t *hdr_len,
                        struct cryo_error *err)
{
    const struct cryo_meta *m = &v->meta;
    if (m->n > CVOL_MAX_META_COUNT)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has %zu metadata entries (at most %u)",
                         w->name, (unsigned long long)w->frames + 1, m->n, CVOL_MAX_META_COUNT);
    uint64_t mb = 0;
    for (size_t i = 0; i < m->n; i++) {
        size_t kl = strlen(m->keys[i]), vl = strlen(m->vals[i]);
        if (!cvol_key_valid(m->keys[i], kl))
            return cryo_fail(err, CRYO_E_INVALID,
                             "%s: metadata key '%.64s' is not 1-255 characters of [A-Za-z0-9_.:-]", w->name,
                             m->keys[i]);
        mb += 2 + kl + 4 + (uint64_t)vl;
        if (mb > CVOL_MAX_META_BYTES)
            return cryo_fail(err, CRYO_E_INVALID, "%s: frame metadata exceeds %u bytes", w->name,
                             (unsigned)CVOL_MAX_META_BYTES);
    }
    size_t len = CVOL_FRAME_FIXED + (size_t)mb + 4;
    unsigned char *h = malloc(len);
    if (!h)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for a frame header", w->name);
    memset(h, 0, CVOL_FRAME_FIXED);
    memcpy(h, CVOL_TAG_FRAME, 4);
    cvol_put_u32(h + 4, CVOL_FRAME_FIXED);
    h[8] = (unsigned char)v->dtype;
    h[9] = (unsigned char)v->ndim;
    h[10] = (unsigned char)filter;
    h[11] = CVOL_CODEC_ZSTD;
    cvol_put_u32(h + 12, 0);
    cvol_put_u64(h + 16, (uint64_t)v->c);
    cvol_put_u64(h + 24, (uint64_t)v->nz);
    cvol_put_u64(h + 32, (uint64_t)v->ny);
    cvol_put_u64(h + 40, (uint64_t)v->nx);
    for (int a = 0; a < 3; a++) {
        cvol_put_f64(h + 48 + 8 * a, v->apix[a]);
        cvol_put_f64(h + 72 + 8 * a, v->origin[a]);
    }
    cvol_put_u64(h + 96, raw);
    cvol_put_u32(h + 104, cb);
    cvol_put_u32(h + 108, n_chunks);
    cvol_put_u32(h + 112, (uint32_t)m->n);
    cvol_put_u32(h + 116, (uint32_t)mb);
    unsigned char *p = h + CVOL_FRAME_FIXED;
    for (size_t i = 0; i < m->n; i++) {
        size_t kl = strlen(m->keys[i]), vl = strlen(m->vals[i]);
        cvol_put_u16(p, (uint16_t)kl);
        memcpy(p + 2, m->keys[i], kl);
        p += 2 + kl;
        cvol_put_u32(p, (uint32_t)vl);
        memcpy(p + 4, m->vals[i], vl);
        p += 4 + vl;
    }
    cvol_put_u32(p, cvol_crc32(0, h, (size_t)(p - h)));
    *hdr = h;
    *hdr_len = len;
    return CRYO_OK;
}

static int check_frame(const struct cryo_stream_writer *w, const struct cryo_volume *v, uint64_t *raw,
                       struct cryo_error *err)
{
    unsigned long long fno = (unsigned long long)w->frames + 1;
    size_t es = cryo_dtype_size(v->dtype);
    if (v->dtype <= CRYO_DTYPE_INVALID || v->dtype >= CRYO_DTYPE_COUNT || es == 0)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has an invalid dtype (%d)", w->name, fno,
                         (int)v->dtype);
    if (v->ndim < 1 || v->ndim > 4)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has ndim %d (must be 1..4)", w->name, fno,
                         v->ndim);
    int64_t d[4] = {v->c, v->nz, v->ny, v->nx};
    for (int a = 0; a < 4; a++) {
        if (d[a] < 1 || (uint64_t)d[a] >= CVOL_MAX_DIM)
            return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has a dimension of %lld", w->name, fno,
                             (long long)d[a]);
        if (a < 4 - v->ndim && d[a] != 1)
            return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has ndim %d but a leading dimension of %lld",
                             w->name, fno, v->ndim, (long long)d[a]);
    }
    for (int a = 0; a < 3; a++)
        if (!isfinite(v->apix[a]) || !isfinite(v->origin[a]))
            return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has a non-finite voxel size or origin",
                             w->name, fno);
    size_t n, bytes;
    CRYO_TRY(cryo_count4(v->c, v->nz, v->ny, v->nx, &n, err));
    CRYO_TRY(cryo_mul_size(n, es, &bytes, err));
    if ((uint64_t)bytes > CVOL_MAX_FRAME_BYTES)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu holds %zu bytes (at most %llu per frame)", w->name,
                         fno, bytes, (unsigned long long)CVOL_MAX_FRAME_BYTES);
    if (!v->data)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame %llu has no data", w->name, fno);
    *raw = bytes;
    return CRYO_OK;
}

int cryo_stream_write(struct cryo_stream_writer *w, const struct cryo_volume *v, struct cryo_error *err)
{
    if (w->broken || w->finished)
        return cryo_fail(err, CRYO_E_INVALID, "%s: stream writer used after %s", w->name,
                         w->finished ? "finish" : "a failed write");
    uint64_t raw;
    CRYO_TRY(check_frame(w, v, &raw, err));
    size_t es = cryo_dtype_size(v->dtype);
    int filter = (w->opts.shuffle && es > 1) ? CVOL_FILTER_SHUFFLE : CVOL_FILTER_NONE;
    uint32_t cb = w->chunk_bytes - w->chunk_bytes % (uint32_t)es; /* whole elements per chunk */
    if (cb > raw)
        cb = (uint32_t)raw;
    uint64_t nc64 = (raw + cb - 1) / cb;
    if (nc64 > UINT32_MAX)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame needs %llu chunks", w->name, (unsigned long long)nc64);
    uint32_t n_chunks = (uint32_t)nc64;

    unsigned char *hdr = NULL;
    size_t hdr_len = 0;
    CRYO_TRY(frame_header(w, v, raw, cb, n_chunks, filter, &hdr, &hdr_len, err));
    int st = put(w, hdr, hdr_len, err);
    uint32_t crc = cvol_crc32(0, hdr, hdr_len); /* the trailer covers every byte of the record */
    free(hdr);
    if (st < 0)
        return st;

    int nt = cvol_threads(w->opts.threads, n_chunks);
    if ((st = slots_reserve(w, nt, cb, err)) < 0) {
        w->broken = 1; /* the frame header is out: the frame can no longer be completed */
        return st;
    }
    const unsigned char *data = v->data;
    for (uint32_t b = 0; b < n_chunks; b += (uint32_t)nt) {
        int nb = (int)((n_chunks - b) < (uint32_t)nt ? (n_chunks - b) : (uint32_t)nt);
#pragma omp parallel for num_threads(nt) schedule(static, 1) if (nb > 1)
        for (int k = 0; k < nb; k++) {
            struct slot *s = &w->slots[k];
            uint64_t off = (uint64_t)(b + (uint32_t)k) * cb;
            size_t len = (size_t)((raw - off) < cb ? (raw - off) : cb);
            const unsigned char *src = data + off;
            if (filter == CVOL_FILTER_SHUFFLE) {
                cvol_shuffle(s->shuf, src, len / es, es);
                src = s->shuf;
            }
            ZSTD_CCtx_reset(s->cctx, ZSTD_reset_session_and_parameters);
            ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel, w->opts.level);
            ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_checksumFlag, 1);
            ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_contentSizeFlag, 1);
            size_t r = ZSTD_compress2(s->cctx, s->comp, s->comp_cap, src, len);
            s->zerr = ZSTD_isError(r) ? r : 0;
            s->comp_len = ZSTD_isError(r) ? 0 : r;
            unsigned char sz[4];
            cvol_put_u32(sz, (uint32_t)s->comp_len);
            s->crc = cvol_crc32(cvol_crc32(0, sz, 4), s->comp, s->comp_len);
        }
        for (int k = 0; k < nb; k++) {
            struct slot *s = &w->slots[k];
            if (s->zerr) {
                w->broken = 1;
                return cryo_fail(err, CRYO_E_IO, "%s: zstd compression failed: %s", w->name,
                                 ZSTD_getErrorName(s->zerr));
            }
            unsigned char sz[4];
            cvol_put_u32(sz, (uint32_t)s->comp_len);
            CRYO_TRY(put(w, sz, 4, err));
            CRYO_TRY(put(w, s->comp, s->comp_len, err));
            crc = (uint32_t)crc32_combine(crc, s->crc, (z_off_t)(4 + s->comp_len));
        }
    }
    unsigned char tr[4];
    cvol_put_u32(tr, crc);
    CRYO_TRY(put(w, tr, 4, err));
    /* Flush per frame so the next program in a pipeline can start on it now. */
    if (fflush(w->f) != 0) {
        w->broken = 1;
        return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", w->name, strerror(errno));
    }
    w->frames++;
    return CRYO_OK;
}

int cryo_stream_writer_finish(struct cryo_stream_writer *w, struct cryo_error *err)
{
    if (w->broken)
        return cryo_fail(err, CRYO_E_INVALID, "%s: not finishing a stream after a failed write", w->name);
    if (w->finished)
        return CRYO_OK;
    unsigned char e[CVOL_END_SIZE];
    memcpy(e, CVOL_TAG_END, 4);
    cvol_put_u32(e + 4, 0);
    cvol_put_u64(e + 8, w->frames);
    cvol_put_u32(e + 16, cvol_crc32(0, e, 16));
    CRYO_TRY(put(w, e, sizeof e, err));
    if (fflush(w->f) != 0) {
        w->broken = 1;
        return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", w->name, strerror(errno));
    }
    w->finished = 1;
    return CRYO_OK;
}

void cryo_stream_writer_free(struct cryo_stream_writer *w)
{
    if (!w)
        return;
    for (int k = 0; k < w->nslots; k++) {
        ZSTD_freeCCtx(w->slots[k].cctx);
        cryo_free_big(w->slots[k].shuf);
        cryo_free_big(w->slots[k].comp);
    }
    free(w->slots);
    free(w->name);
    free(w);
}
