/* test_stream.c — the CVOL stream: bit-exact round trips of every dtype and shape, chunking,
 * several frames, metadata; and the broken-input corpus: a stream cut at every offset, a
 * byte flipped at every offset, a missing end record, lying header fields. The wire format
 * itself is checked against an independent reader/writer in tests/bats/stream.bats
 * (tests/ref/cvol.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cryolvm/mem.h"
#include "cryolvm/stream.h"
#include "stream_priv.h"
#include "testutil.h"

struct buf {
    unsigned char *p;
    size_t n;
};

/* A volume of the given shape filled with deterministic pseudo-random bytes. */
static void make_vol(struct cryo_volume *v, enum cryo_dtype t, int ndim, int64_t c, int64_t nz, int64_t ny,
                     int64_t nx, uint64_t seed)
{
    struct cryo_error err = {0};
    cryo_volume_init(v);
    int st = cryo_volume_alloc(v, t, c, nz, ny, nx, &err);
    CHECK(st == 0);
    if (st)
        return;
    v->ndim = ndim;
    unsigned char *p = v->data;
    size_t n = cryo_volume_bytes(v);
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        p[i] = (unsigned char)(seed >> 24);
    }
    /* Keep float frames finite so the data looks like data (the stream does not care). */
    if (t == CRYO_DTYPE_F32)
        for (size_t i = 0; i < n / 4; i++)
            ((float *)v->data)[i] = (float)(i % 97) * 0.25f - 3.0f + (float)(p[4 * i] & 7) * 1e-3f;
    v->apix[0] = 1.5, v->apix[1] = 1.25, v->apix[2] = 0.75;
    v->origin[0] = -10.5, v->origin[1] = 3.0, v->origin[2] = 117.0;
}

static int encode(struct buf *out, struct cryo_volume *vs, int n, int shuffle, size_t chunk, int threads)
{
    struct cryo_error err = {0};
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    struct cryo_stream_opts o;
    cryo_stream_opts_default(&o);
    o.shuffle = shuffle;
    o.threads = threads;
    struct cryo_stream_writer *w = NULL;
    int st = cryo_stream_writer_open(&w, f, "mem", &o, &err);
    if (st == 0 && chunk)
        st = cryo_stream_writer_set_chunk_bytes(w, chunk, &err);
    for (int i = 0; st == 0 && i < n; i++)
        st = cryo_stream_write(w, &vs[i], &err);
    if (st == 0)
        st = cryo_stream_writer_finish(w, &err);
    cryo_stream_writer_free(w);
    fclose(f);
    if (st && getenv("VERBOSE"))
        fprintf(stderr, "encode: %s\n", err.msg);
    out->p = (unsigned char *)mem;
    out->n = len;
    return st;
}

/* Decode all frames of buf; returns the final status (0 = clean end) and frames in vs. */
static int decode(const unsigned char *p, size_t n, struct cryo_volume *vs, int max, int *count,
                  struct cryo_error *err)
{
    FILE *f = tmpfile();
    if (n)
        fwrite(p, 1, n, f);
    rewind(f);
    *count = 0;
    for (int i = 0; i < max; i++)
        cryo_volume_init(&vs[i]);
    struct cryo_stream_reader *r = NULL;
    int st = cryo_stream_reader_open(&r, f, "test.cvol", NULL, 0, err);
    while (st == 0) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        st = cryo_stream_read(r, &v, err);
        if (st == 1) {
            if (*count < max)
                cryo_volume_move(&vs[*count], &v);
            else
                cryo_volume_free(&v);
            (*count)++;
            st = 0;
        } else {
            CHECK(v.data == NULL); /* no partial frame on error */
            break;
        }
    }
    cryo_stream_reader_free(r);
    fclose(f);
    return st;
}

static int same_vol(const struct cryo_volume *a, const struct cryo_volume *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->c != b->c || a->nz != b->nz || a->ny != b->ny ||
        a->nx != b->nx)
        return 0;
    if (memcmp(a->apix, b->apix, sizeof a->apix) || memcmp(a->origin, b->origin, sizeof a->origin))
        return 0;
    if (memcmp(a->data, b->data, cryo_volume_bytes(a)))
        return 0;
    if (a->meta.n != b->meta.n)
        return 0;
    for (size_t i = 0; i < a->meta.n; i++)
        if (strcmp(a->meta.keys[i], b->meta.keys[i]) || strcmp(a->meta.vals[i], b->meta.vals[i]))
            return 0;
    return 1;
}

static void roundtrip(struct cryo_volume *vs, int n, int shuffle, size_t chunk, int threads)
{
    struct buf b;
    CHECK(encode(&b, vs, n, shuffle, chunk, threads) == 0);
    struct cryo_volume got[8];
    for (int i = 0; i < 8; i++)
        cryo_volume_init(&got[i]);
    struct cryo_error err = {0};
    int count = 0;
    int st = decode(b.p, b.n, got, 8, &count, &err);
    if (st)
        fprintf(stderr, "decode: %s\n", err.msg);
    CHECK(st == 0);
    CHECK_EQ_INT(count, n);
    for (int i = 0; i < n && i < count; i++)
        CHECK(same_vol(&vs[i], &got[i]));
    for (int i = 0; i < 8; i++)
        cryo_volume_free(&got[i]);
    free(b.p);
}

TEST(every_dtype_roundtrips)
{
    for (int t = 1; t < CRYO_DTYPE_COUNT; t++)
        for (int shuffle = 0; shuffle <= 1; shuffle++) {
            struct cryo_volume v;
            make_vol(&v, (enum cryo_dtype)t, 3, 1, 5, 7, 3, 1000 + (uint64_t)t);
            cryo_meta_set(&v.meta, "history.0", "test --dtype", NULL);
            roundtrip(&v, 1, shuffle, 0, 0);
            cryo_volume_free(&v);
        }
}

TEST(shapes_roundtrip)
{
    static const int64_t shapes[][5] = {
        /* ndim, c, nz, ny, nx */
        {1, 1, 1, 1, 13}, {1, 1, 1, 1, 1}, {2, 1, 1, 9, 11}, {3, 1, 1, 1, 1},
        {3, 1, 17, 1, 3}, {4, 3, 2, 5, 7}, {4, 1, 1, 1, 1}, {3, 1, 31, 29, 37},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct cryo_volume v;
        const int64_t *s = shapes[i];
        make_vol(&v, i % 2 ? CRYO_DTYPE_I16 : CRYO_DTYPE_F32, (int)s[0], s[1], s[2], s[3], s[4], 7 + i);
        roundtrip(&v, 1, 1, 0, 0);
        cryo_volume_free(&v);
    }
}

TEST(metadata_roundtrips)
{
    struct cryo_volume v;
    make_vol(&v, CRYO_DTYPE_F32, 3, 1, 4, 4, 4, 3);
    roundtrip(&v, 1, 1, 0, 0); /* empty metadata */
    char key[64], val[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "x-unknown.key:%d", i);
        snprintf(val, sizeof val, "value %d \xc3\x85ngstr\xc3\xb6m = %d", i, i * i);
        CHECK(cryo_meta_set(&v.meta, key, val, NULL) == 0);
    }
    CHECK(cryo_meta_set(&v.meta, "empty", "", NULL) == 0);
    char *big = malloc(300000);
    memset(big, 'A', 299999);
    big[299999] = '\0';
    CHECK(cryo_meta_set(&v.meta, "mrc.exthdr", big, NULL) == 0);
    free(big);
    roundtrip(&v, 1, 1, 0, 0);
    cryo_volume_free(&v);
}

TEST(bad_metadata_key_refused_by_writer)
{
    struct cryo_volume v;
    make_vol(&v, CRYO_DTYPE_U8, 1, 1, 1, 1, 5, 3);
    cryo_meta_set(&v.meta, "bad key", "x", NULL);
    struct buf b;
    CHECK(encode(&b, &v, 1, 1, 0, 0) == CRYO_E_INVALID);
    free(b.p);
    cryo_volume_free(&v);
}

TEST(multi_chunk_frames_roundtrip)
{
    /* Chunk sizes that do not divide the frame, are not whole elements (rounded down), and
     * more chunks than threads, with 1 and 2 threads, shuffled and not. */
    static const size_t chunks[] = {8, 9, 100, 1000, 4096};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
        for (int threads = 1; threads <= 2; threads++)
            for (int shuffle = 0; shuffle <= 1; shuffle++) {
                struct cryo_volume v[3];
                make_vol(&v[0], CRYO_DTYPE_F32, 3, 1, 9, 10, 11, 11);
                make_vol(&v[1], CRYO_DTYPE_I16, 4, 2, 3, 5, 7, 12);
                make_vol(&v[2], CRYO_DTYPE_U8, 1, 1, 1, 1, 999, 13);
                roundtrip(v, 3, shuffle, chunks[i], threads);
                for (int k = 0; k < 3; k++)
                    cryo_volume_free(&v[k]);
            }
}

TEST(many_frames_and_zero_frames)
{
    struct cryo_volume v[8];
    for (int i = 0; i < 8; i++) {
        make_vol(&v[i], (enum cryo_dtype)(1 + i % 8), 3, 1, 2 + i, 3, 4, 50 + (uint64_t)i);
        cryo_meta_setf(&v[i].meta, NULL, "frame", "%d", i);
    }
    roundtrip(v, 8, 1, 64, 2);
    roundtrip(v, 0, 1, 0, 0);
    for (int i = 0; i < 8; i++)
        cryo_volume_free(&v[i]);
}

TEST(big_frame_default_chunks)
{
    /* 96^3 float32 = 3.4 MiB raw: several 1 MiB chunks, compressible smooth data. */
    struct cryo_volume v;
    make_vol(&v, CRYO_DTYPE_F32, 3, 1, 96, 96, 96, 5);
    float *d = v.data;
    for (size_t i = 0; i < cryo_volume_count(&v); i++)
        d[i] = (float)((i % 96) * (i / 96 % 96)) * 1e-3f;
    roundtrip(&v, 1, 1, (size_t)1 << 20, 0);
    struct buf b;
    CHECK(encode(&b, &v, 1, 1, 0, 0) == 0);
    CHECK(b.n < cryo_volume_bytes(&v) / 4); /* smooth data compresses */
    free(b.p);
    cryo_volume_free(&v);
}

/* Two frames, several chunks each: the corpus for cut and flip tests. */
static void corpus(struct buf *b)
{
    struct cryo_volume v[2];
    make_vol(&v[0], CRYO_DTYPE_F32, 3, 1, 3, 4, 5, 21);
    make_vol(&v[1], CRYO_DTYPE_I16, 1, 1, 1, 1, 40, 22);
    cryo_meta_set(&v[0].meta, "history.0", "vol-convert in.mrc", NULL);
    CHECK(encode(b, v, 2, 1, 64, 2) == 0);
    cryo_volume_free(&v[0]);
    cryo_volume_free(&v[1]);
}

TEST(cut_stream_at_every_offset)
{
    struct buf b;
    corpus(&b);
    struct cryo_volume got[2];
    for (size_t len = 0; len < b.n; len++) {
        struct cryo_error err = {0};
        int count;
        int st = decode(b.p, len, got, 2, &count, &err);
        for (int i = 0; i < count && i < 2; i++)
            cryo_volume_free(&got[i]);
        if (len == 0) {
            CHECK(st == CRYO_E_FORMAT);
            CHECK(strstr(err.msg, "test.cvol: empty input") != NULL);
        } else {
            CHECK(st == CRYO_E_TRUNCATED);
            CHECK(strstr(err.msg, "test.cvol: stream ends") != NULL);
        }
        if (st == 0)
            fprintf(stderr, "cut at %zu accepted\n", len);
    }
    /* Where the cut falls decides the message. */
    struct cryo_error err = {0};
    int count;
    decode(b.p, b.n - 1, got, 2, &count, &err);
    CHECK(strstr(err.msg, "end record") != NULL);
    for (int i = 0; i < count; i++)
        cryo_volume_free(&got[i]);
    decode(b.p, 40, got, 2, &count, &err);
    CHECK(strstr(err.msg, "in the middle of frame 1 (the upstream process died?)") != NULL);
    free(b.p);
}

TEST(missing_end_record)
{
    struct buf b;
    corpus(&b);
    struct cryo_volume got[2];
    struct cryo_error err = {0};
    int count;
    int st = decode(b.p, b.n - 20, got, 2, &count, &err);
    CHECK(st == CRYO_E_TRUNCATED);
    CHECK_EQ_INT(count, 2);
    CHECK(strstr(err.msg, "test.cvol: stream ends after frame 2 without an end record") != NULL);
    for (int i = 0; i < count && i < 2; i++)
        cryo_volume_free(&got[i]);
    free(b.p);
}

TEST(flipped_byte_at_every_offset)
{
    struct buf b;
    corpus(&b);
    struct cryo_volume got[2];
    int accepted = 0;
    for (size_t off = 0; off < b.n; off++) {
        for (int bit = 0; bit < 8; bit += 7) {
            b.p[off] ^= (unsigned char)(1u << bit);
            struct cryo_error err = {0};
            int count;
            int st = decode(b.p, b.n, got, 2, &count, &err);
            for (int i = 0; i < count && i < 2; i++)
                cryo_volume_free(&got[i]);
            if (st == 0) {
                accepted++;
                fprintf(stderr, "flip at %zu bit %d accepted\n", off, bit);
            }
            CHECK(strncmp(err.msg, "test.cvol: ", 11) == 0);
            b.p[off] ^= (unsigned char)(1u << bit);
        }
    }
    CHECK_EQ_INT(accepted, 0);
    free(b.p);
}

TEST(trailing_garbage_and_bad_records)
{
    struct buf b;
    corpus(&b);
    struct cryo_volume got[2];
    struct cryo_error err = {0};
    int count;
    unsigned char *p = malloc(b.n + 3);
    memcpy(p, b.p, b.n);
    memcpy(p + b.n, "xyz", 3);
    CHECK(decode(p, b.n + 3, got, 2, &count, &err) == CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "after the end-of-stream record") != NULL);
    for (int i = 0; i < count && i < 2; i++)
        cryo_volume_free(&got[i]);
    /* Not a stream at all, and a stream of an unknown major version (header crc fixed up). */
    CHECK(decode((const unsigned char *)"hello world, not a map", 22, got, 2, &count, &err) == CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "not a cryolvm stream") != NULL);
    memcpy(p, b.p, b.n);
    p[4] = 2;
    uint32_t c = (uint32_t)crc32(0, p, 12);
    for (int i = 0; i < 4; i++)
        p[12 + i] = (unsigned char)(c >> (8 * i));
    CHECK(decode(p, b.n, got, 2, &count, &err) == CRYO_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "version 2.0") != NULL);
    free(p);
    free(b.p);
}

/* Rewrite a field of the first frame header and fix its crc, as a lying writer would. */
static int decode_with_lie(const struct buf *b, size_t field_off, const void *val, size_t len,
                           struct cryo_error *err)
{
    unsigned char *p = malloc(b->n);
    memcpy(p, b->p, b->n);
    size_t fh = 16; /* frame header starts after the stream header */
    memcpy(p + fh + field_off, val, len);
    uint32_t mb = (uint32_t)p[fh + 116] | (uint32_t)p[fh + 117] << 8 | (uint32_t)p[fh + 118] << 16 |
                  (uint32_t)p[fh + 119] << 24;
    size_t hl = 120 + (field_off == 116 ? 0 : mb);
    uint32_t c = (uint32_t)crc32(0, p + fh, (uInt)hl);
    if (field_off != 116)
        for (int i = 0; i < 4; i++)
            p[fh + hl + (size_t)i] = (unsigned char)(c >> (8 * i));
    struct cryo_volume got[2];
    int count;
    int st = decode(p, b->n, got, 2, &count, err);
    for (int i = 0; i < count && i < 2; i++)
        cryo_volume_free(&got[i]);
    free(p);
    return st;
}

TEST(lying_header_fields)
{
    struct buf b;
    corpus(&b);
    struct cryo_error err = {0};
    unsigned char huge[8] = {0, 0, 0, 0, 0, 0, 0, 0x40}; /* 2^62 */
    CHECK(decode_with_lie(&b, 40, huge, 8, &err) == CRYO_E_FORMAT); /* nx = 2^62 */
    CHECK(strstr(err.msg, "frame 1") != NULL);
    unsigned char big[8] = {0, 0, 0, 0x40, 0, 0, 0, 0};   /* 2^30 per dim: product 2^90 */
    unsigned char *p = malloc(b.n);
    memcpy(p, b.p, b.n);
    struct buf b2 = {p, b.n};
    memcpy(p + 16 + 24, big, 8);
    memcpy(p + 16 + 32, big, 8);
    CHECK(decode_with_lie(&b2, 40, big, 8, &err) == CRYO_E_FORMAT);
    CHECK(strstr(err.msg, "exceeds 64 GiB") != NULL);
    free(p);
    unsigned char raw[8] = {1, 0, 0, 0, 0, 0, 0, 0};      /* raw bytes disagree with the shape */
    CHECK(decode_with_lie(&b, 96, raw, 8, &err) == CRYO_E_FORMAT);
    unsigned char zero[8] = {0};
    CHECK(decode_with_lie(&b, 24, zero, 8, &err) == CRYO_E_FORMAT); /* nz = 0 */
    unsigned char dt = 99;
    CHECK(decode_with_lie(&b, 8, &dt, 1, &err) == CRYO_E_UNSUPPORTED);
    unsigned char nd = 7;
    CHECK(decode_with_lie(&b, 9, &nd, 1, &err) == CRYO_E_FORMAT);
    unsigned char flag = 1;
    CHECK(decode_with_lie(&b, 12, &flag, 1, &err) == CRYO_E_UNSUPPORTED);
    unsigned char opt[4] = {0, 0, 1, 0};                  /* an optional flag bit: ignored */
    CHECK(decode_with_lie(&b, 12, opt, 4, &err) == 0);
    unsigned char nch[4] = {1, 0, 0, 0};                  /* chunk count disagrees */
    CHECK(decode_with_lie(&b, 108, nch, 4, &err) == CRYO_E_FORMAT);
    unsigned char mbytes[4] = {0xff, 0xff, 0xff, 0x7f};   /* 2 GiB of metadata: capped, no malloc */
    int st = decode_with_lie(&b, 116, mbytes, 4, &err);
    CHECK(st == CRYO_E_CORRUPT);
    CHECK(strstr(err.msg, "metadata") != NULL);
    unsigned char nan[8] = {0, 0, 0, 0, 0, 0, 0xf8, 0x7f};
    CHECK(decode_with_lie(&b, 48, nan, 8, &err) == CRYO_E_FORMAT); /* apix NaN */
    free(b.p);
}

TEST(writer_refuses_bad_frames)
{
    struct cryo_error err = {0};
    struct cryo_volume v;
    make_vol(&v, CRYO_DTYPE_F32, 3, 2, 2, 2, 2, 1); /* c = 2 but ndim 3 */
    struct buf b;
    CHECK(encode(&b, &v, 1, 1, 0, 0) == CRYO_E_INVALID);
    free(b.p);
    v.ndim = 4;
    v.apix[1] = 0.0 / 0.0;
    CHECK(encode(&b, &v, 1, 1, 0, 0) == CRYO_E_INVALID);
    free(b.p);
    cryo_volume_free(&v);
    struct cryo_stream_opts o;
    cryo_stream_opts_default(&o);
    o.level = 99;
    struct cryo_stream_writer *w = NULL;
    CHECK(cryo_stream_writer_open(&w, stdout, "-", &o, &err) == CRYO_E_INVALID);
    CHECK(w == NULL);
    CHECK(strstr(err.msg, "stdout: zstd level 99") != NULL);
}

TEST(sniffed_prefix_is_consumed_first)
{
    struct buf b;
    corpus(&b);
    FILE *f = tmpfile();
    fwrite(b.p + 10, 1, b.n - 10, f);
    rewind(f);
    struct cryo_error err = {0};
    struct cryo_stream_reader *r = NULL;
    CHECK(cryo_stream_reader_open(&r, f, "-", b.p, 10, &err) == 0);
    struct cryo_volume v;
    cryo_volume_init(&v);
    int n = 0, st;
    uint64_t wire = 0;
    while ((st = cryo_stream_read(r, &v, &err)) == 1) {
        uint64_t comp, raw;
        cryo_stream_last_sizes(r, &comp, &raw);
        CHECK(raw == cryo_volume_bytes(&v));
        wire += comp;
        n++;
    }
    CHECK(st == 0);
    CHECK_EQ_INT(wire + 16 + 20, b.n); /* frame records fill all but the header and end record */
    CHECK_EQ_INT(n, 2);
    cryo_volume_free(&v);
    cryo_stream_reader_free(r);
    fclose(f);
    free(b.p);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

TEST(future_minor_version_is_read)
{
    /* A 1.7 stream whose first frame header carries 8 bytes of fields this reader does not
     * know (header_len 128) and an optional flag bit: all allowed by the spec, so the
     * frames must read as before. Built by editing a 1.0 stream and fixing its CRCs. */
    struct buf b;
    corpus(&b);
    size_t fh = 16, mb = (size_t)b.p[fh + 116] | (size_t)b.p[fh + 117] << 8;
    unsigned char *p = malloc(b.n + 8);
    memcpy(p, b.p, fh + 120);
    memset(p + fh + 120, 0xAB, 8);                         /* the unknown fields */
    memcpy(p + fh + 128, b.p + fh + 120, b.n - fh - 120);  /* metadata onwards */
    p[6] = 7;                                              /* minor 7 */
    p[8 + 2] = 0x01;                                       /* stream flag bit 16: optional */
    put32(p + 12, (uint32_t)crc32(0, p, 12));
    put32(p + fh + 4, 128);
    put32(p + fh + 128 + mb, (uint32_t)crc32(0, p + fh, (uInt)(128 + mb)));
    /* The trailer covers the record: find its end by the first frame's wire size. */
    struct cryo_volume got[2];
    struct cryo_error err = {0};
    int count;
    FILE *f = tmpfile();
    fwrite(b.p, 1, b.n, f);
    rewind(f);
    struct cryo_stream_reader *r = NULL;
    CHECK(cryo_stream_reader_open(&r, f, "x", NULL, 0, &err) == 0);
    struct cryo_volume v;
    cryo_volume_init(&v);
    CHECK(cryo_stream_read(r, &v, &err) == 1);
    uint64_t wire, raw;
    cryo_stream_last_sizes(r, &wire, &raw);
    cryo_volume_free(&v);
    cryo_stream_reader_free(r);
    fclose(f);
    size_t end = fh + (size_t)wire + 8 - 4; /* trailer offset in the edited stream */
    put32(p + end, (uint32_t)crc32(0, p + fh, (uInt)(end - fh)));
    int st = decode(p, b.n + 8, got, 2, &count, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    CHECK(st == 0);
    CHECK_EQ_INT(count, 2);
    struct cryo_volume want[2];
    int n2;
    CHECK(decode(b.p, b.n, want, 2, &n2, &err) == 0);
    for (int i = 0; i < 2 && i < count; i++) {
        CHECK(same_vol(&got[i], &want[i]));
        cryo_volume_free(&got[i]);
        cryo_volume_free(&want[i]);
    }
    p[8] = 0x01; /* a required stream flag bit is refused */
    put32(p + 12, (uint32_t)crc32(0, p, 12));
    CHECK(decode(p, b.n + 8, got, 2, &count, &err) == CRYO_E_UNSUPPORTED);
    free(p);
    free(b.p);
}

TEST(random_damage_is_always_refused)
{
    /* A small fuzz with a fixed seed: several bytes changed, bytes inserted or deleted, the
     * stream cut; every damaged stream must be refused cleanly (the sanitizer build checks
     * that refusing never reads out of bounds or leaks). */
    struct buf b;
    corpus(&b);
    uint64_t seed = 12345;
    unsigned char *p = malloc(b.n + 64);
    int accepted = 0;
    for (int it = 0; it < 1000; it++) {
        memcpy(p, b.p, b.n);
        size_t n = b.n;
        int kind = (int)(tu_rand(&seed) * 2 + 2) % 4; /* 0..3 */
        size_t at = (size_t)((tu_rand(&seed) + 1) / 2 * (double)(b.n - 1));
        if (kind == 0) {
            for (int k = 0; k < 3; k++) {
                size_t o = (at + (size_t)k * 37) % n;
                p[o] = (unsigned char)(p[o] + 1 + (unsigned)((tu_rand(&seed) + 1) * 100));
            }
        } else if (kind == 1) {
            size_t len = 1 + (size_t)((tu_rand(&seed) + 1) * 16);
            memmove(p + at + len, p + at, n - at);
            memset(p + at, 0x5a, len);
            n += len;
        } else if (kind == 2) {
            size_t len = 1 + (size_t)((tu_rand(&seed) + 1) * 16);
            if (at + len > n)
                len = n - at;
            memmove(p + at, p + at + len, n - at - len);
            n -= len;
        } else {
            n = at;
        }
        if (n == b.n && memcmp(p, b.p, n) == 0)
            continue;
        struct cryo_volume got[2];
        struct cryo_error err = {0};
        int count;
        int st = decode(p, n, got, 2, &count, &err);
        for (int i = 0; i < count && i < 2; i++)
            cryo_volume_free(&got[i]);
        if (st == 0)
            accepted++;
        else
            CHECK(strncmp(err.msg, "test.cvol: ", 11) == 0);
    }
    CHECK_EQ_INT(accepted, 0);
    free(p);
    free(b.p);
}

TEST(shuffle_matches_definition)
{
    /* Byte j of element i at j*n + i, for every element size and counts around the 16-wide
     * vector loop; unshuffle inverts it. A symmetric bug would still round-trip, so check
     * the layout itself (the Python reference checks it again across implementations). */
    static const size_t sizes[] = {1, 2, 4, 8};
    unsigned char in[8 * 70], sh[8 * 70], back[8 * 70];
    uint64_t seed = 99;
    for (size_t k = 0; k < 4; k++)
        for (size_t n = 0; n <= 70; n++) {
            size_t s = sizes[k];
            for (size_t i = 0; i < n * s; i++) {
                seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
                in[i] = (unsigned char)seed;
            }
            cvol_shuffle(sh, in, n, s);
            int ok = 1;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < s; j++)
                    ok &= sh[j * n + i] == in[i * s + j];
            CHECK(ok);
            cvol_unshuffle(back, sh, n, s);
            CHECK(memcmp(back, in, n * s) == 0);
        }
    CHECK_EQ_INT(cvol_crc32(0, "123456789", 9), 0xCBF43926u); /* the check value in the man page */
}

int main(void)
{
    return RUN_TESTS(every_dtype_roundtrips, shapes_roundtrip, metadata_roundtrips, bad_metadata_key_refused_by_writer,
                     multi_chunk_frames_roundtrip, many_frames_and_zero_frames, big_frame_default_chunks,
                     cut_stream_at_every_offset, missing_end_record, flipped_byte_at_every_offset,
                     trailing_garbage_and_bad_records, lying_header_fields, writer_refuses_bad_frames,
                     sniffed_prefix_is_consumed_first, shuffle_matches_definition, future_minor_version_is_read,
                     random_damage_is_always_refused);
}
