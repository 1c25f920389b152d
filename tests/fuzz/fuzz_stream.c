/* fuzz_stream.c — the CVOL stream reader, every frame to the end record.
 *
 * Every record of a stream carries a crc32, so almost every mutation would stop at the
 * first checksum and the decoder behind it would never be reached. The harness therefore
 * walks the input as the layout says (cryolvm-stream(5)) and rewrites each checksum to
 * match the mutated bytes before handing it to the reader: header, frame header + metadata,
 * frame trailer (every byte of the record), end record. A byte that breaks the layout just
 * ends the walk; the reader sees the rest as it is. */
#include "cryolvm/stream.h"
#include "fuzz_util.h"
#include "stream_priv.h"

static void fix_checksums(unsigned char *b, size_t n)
{
    if (n < CVOL_HEADER_SIZE)
        return;
    cvol_put_u32(b + 12, cvol_crc32(0, b, 12));
    size_t p = CVOL_HEADER_SIZE;
    while (n - p >= 8) {
        unsigned char *rec = b + p;
        if (memcmp(rec, CVOL_TAG_END, 4) == 0) {
            if (n - p >= CVOL_END_SIZE)
                cvol_put_u32(rec + 16, cvol_crc32(0, rec, 16));
            return;
        }
        if (memcmp(rec, CVOL_TAG_FRAME, 4) != 0)
            return;
        uint32_t fixed = cvol_get_u32(rec + 4);
        if (fixed < CVOL_FRAME_FIXED || fixed > CVOL_FRAME_FIXED_MAX || n - p < fixed)
            return;
        uint32_t meta = cvol_get_u32(rec + 116), n_chunks = cvol_get_u32(rec + 108);
        if ((uint64_t)n - p - fixed < (uint64_t)meta + 4)
            return;
        size_t q = fixed + meta;
        cvol_put_u32(rec + q, cvol_crc32(0, rec, q));
        q += 4;
        for (uint32_t k = 0; k < n_chunks; k++) {
            if (n - p - q < 4)
                return;
            uint32_t sz = cvol_get_u32(rec + q);
            if ((uint64_t)n - p - q - 4 < sz)
                return;
            q += 4 + (size_t)sz;
        }
        if (n - p - q < 4)
            return;
        cvol_put_u32(rec + q, cvol_crc32(0, rec, q));
        p += q + 4;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) /* fmemopen refuses an empty buffer */
        return 0;
    unsigned char *b = malloc(size);
    if (!b)
        return 0;
    memcpy(b, data, size);
    fix_checksums(b, size);
    FILE *f = fmemopen(b, size, "rb");
    if (!f) {
        free(b);
        return 0;
    }
    struct cryo_stream_reader *r = NULL;
    struct cryo_error err = {0};
    if (cryo_stream_reader_open(&r, f, "fuzz.cvol", NULL, 0, &err) == 0) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        for (int i = 0; i < 64 && cryo_stream_read(r, &v, &err) == 1; i++) {
            struct cryo_stats s;
            cryo_volume_stats(&v, &s);
        }
        cryo_volume_free(&v);
        cryo_stream_reader_free(r);
    }
    fclose(f);
    free(b);
    return 0;
}
