/* stream_bench.c — encode/decode speed and size of the CVOL stream on a raw volume
 * (built and run by bench/stream.sh; not part of the tools).
 *
 *   stream_bench RAW DTYPE NX NY NZ [LEVEL [SHUFFLE [CHUNK_BYTES [REPS [OUT.cvol]]]]]
 *
 * RAW holds NX*NY*NZ little-endian elements of DTYPE (float32, int16, ...), x fastest.
 * Prints one line: raw and stream bytes, ratio, median encode and decode MB/s (of raw
 * data, in memory, excluding file I/O), then the same for the peer: plain zstd at the same
 * level on the whole raw buffer, in memory, with ZSTD_c_nbWorkers = OMP_NUM_THREADS (what
 * `zstd -T2` does, without the file I/O). With OUT the stream is also written there (used
 * for the worked example in cryolvm-stream(5)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cryolvm/stream.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const struct cryo_error *e)
{
    fprintf(stderr, "stream_bench: %s\n", e->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: stream_bench RAW DTYPE NX NY NZ [LEVEL [SHUFFLE [CHUNK [REPS [OUT]]]]]\n");
        return 2;
    }
    struct cryo_error err = {0};
    enum cryo_dtype t = cryo_dtype_from_name(argv[2]);
    long nx = atol(argv[3]), ny = atol(argv[4]), nz = atol(argv[5]);
    struct cryo_stream_opts o;
    cryo_stream_opts_default(&o);
    if (argc > 6)
        o.level = atoi(argv[6]);
    if (argc > 7)
        o.shuffle = atoi(argv[7]);
    size_t chunk = argc > 8 ? (size_t)atol(argv[8]) : 0;
    int reps = argc > 9 ? atoi(argv[9]) : 5;
    const char *out = argc > 10 ? argv[10] : NULL;
    if (t == CRYO_DTYPE_INVALID || nx < 1 || ny < 1 || nz < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "stream_bench: bad arguments\n");
        return 2;
    }
    struct cryo_volume v;
    cryo_volume_init(&v);
    if (cryo_volume_alloc(&v, t, 1, nz, ny, nx, &err) < 0)
        die(&err);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(v.data, 1, cryo_volume_bytes(&v), f) != cryo_volume_bytes(&v)) {
        fprintf(stderr, "stream_bench: %s: cannot read %zu bytes\n", argv[1], cryo_volume_bytes(&v));
        return 1;
    }
    fclose(f);
    cryo_meta_set(&v.meta, "history.0", "stream_bench", NULL);

    size_t cap = cryo_volume_bytes(&v) + cryo_volume_bytes(&v) / 8 + (1 << 20);
    unsigned char *buf = malloc(cap);
    double tenc[100], tdec[100];
    size_t len = 0;
    for (int r = 0; r < reps; r++) {
        FILE *m = fmemopen(buf, cap, "wb");
        setvbuf(m, NULL, _IOFBF, 1 << 20);
        struct cryo_stream_writer *w;
        double t0 = now();
        if (cryo_stream_writer_open(&w, m, "mem", &o, &err) < 0 ||
            (chunk && cryo_stream_writer_set_chunk_bytes(w, chunk, &err) < 0) ||
            cryo_stream_write(w, &v, &err) < 0 || cryo_stream_writer_finish(w, &err) < 0)
            die(&err);
        len = (size_t)ftell(m);
        tenc[r] = now() - t0;
        cryo_stream_writer_free(w);
        fclose(m);

        struct cryo_volume back;
        cryo_volume_init(&back);
        m = fmemopen(buf, len, "rb");
        struct cryo_stream_reader *rd;
        t0 = now();
        if (cryo_stream_reader_open(&rd, m, "mem", NULL, 0, &err) < 0 || cryo_stream_read(rd, &back, &err) != 1 ||
            cryo_stream_read(rd, &back, &err) != 0)
            die(&err);
        tdec[r] = now() - t0;
        cryo_stream_reader_free(rd);
        fclose(m);
        struct cryo_volume again;
        cryo_volume_init(&again);
        if (r == 0) {
            /* check the round trip once, outside the timing */
            m = fmemopen(buf, len, "rb");
            if (cryo_stream_reader_open(&rd, m, "mem", NULL, 0, &err) < 0 || cryo_stream_read(rd, &again, &err) != 1)
                die(&err);
            if (memcmp(again.data, v.data, cryo_volume_bytes(&v)) != 0) {
                fprintf(stderr, "stream_bench: round trip differs\n");
                return 1;
            }
            cryo_volume_free(&again);
            cryo_stream_reader_free(rd);
            fclose(m);
        }
        cryo_volume_free(&back);
    }
    qsort(tenc, (size_t)reps, sizeof *tenc, cmp_d);
    qsort(tdec, (size_t)reps, sizeof *tdec, cmp_d);
    double mb = (double)cryo_volume_bytes(&v) / 1e6;
    printf("raw %zu stream %zu ratio %.3f encode %.0f MB/s decode %.0f MB/s (level %d shuffle %d)\n",
           cryo_volume_bytes(&v), len, (double)cryo_volume_bytes(&v) / (double)len, mb / tenc[reps / 2],
           mb / tdec[reps / 2], o.level, o.shuffle);
    /* The peer: plain zstd on the raw bytes. */
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    size_t zcap = ZSTD_compressBound(cryo_volume_bytes(&v));
    unsigned char *z = malloc(zcap), *back = malloc(cryo_volume_bytes(&v));
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, o.level);
    size_t mt = ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, nt);
    size_t zlen = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        zlen = ZSTD_compress2(cc, z, zcap, v.data, cryo_volume_bytes(&v));
        tenc[r] = now() - t0;
        t0 = now();
        size_t got = ZSTD_decompress(back, cryo_volume_bytes(&v), z, zlen);
        tdec[r] = now() - t0;
        if (ZSTD_isError(zlen) || got != cryo_volume_bytes(&v)) {
            fprintf(stderr, "stream_bench: plain zstd failed\n");
            return 1;
        }
    }
    qsort(tenc, (size_t)reps, sizeof *tenc, cmp_d);
    qsort(tdec, (size_t)reps, sizeof *tdec, cmp_d);
    printf("zstd raw %zu compressed %zu ratio %.3f encode %.0f MB/s decode %.0f MB/s (level %d workers %d)\n",
           cryo_volume_bytes(&v), zlen, (double)cryo_volume_bytes(&v) / (double)zlen, mb / tenc[reps / 2],
           mb / tdec[reps / 2], o.level, ZSTD_isError(mt) ? 0 : nt);
    ZSTD_freeCCtx(cc);
    free(z);
    free(back);
    if (out) {
        FILE *of = fopen(out, "wb");
        if (!of || fwrite(buf, 1, len, of) != len || fclose(of) != 0) {
            fprintf(stderr, "stream_bench: cannot write %s\n", out);
            return 1;
        }
    }
    free(buf);
    cryo_volume_free(&v);
    return 0;
}
