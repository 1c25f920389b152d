/* stream_priv.h — the CVOL wire layout and helpers shared by stream.c, stream_read.c and
 * stream_write.c. Not installed: the layout is documented for everyone in cryolvm-stream(5),
 * and every constant here has a row in that page's tables.
 */
#ifndef CRYOLVM_STREAM_PRIV_H
#define CRYOLVM_STREAM_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cryolvm/stream.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cryolvm streams are little-endian; this build assumes a little-endian host"
#endif

#define CVOL_MAJOR 1
#define CVOL_MINOR 0

#define CVOL_HEADER_SIZE 16       /* magic, major, minor, flags, crc32 */
#define CVOL_FRAME_FIXED 120      /* fixed part of a frame header in version 1.0 */
#define CVOL_FRAME_FIXED_MAX 4096 /* later minors may grow it up to this */
#define CVOL_END_SIZE 20          /* "CEND", reserved, frame count, crc32 */

#define CVOL_TAG_FRAME "FRAM"
#define CVOL_TAG_END "CEND"

#define CVOL_FILTER_NONE 0
#define CVOL_FILTER_SHUFFLE 1
#define CVOL_CODEC_ZSTD 1

/* Flag words: bits 0-15 are features a reader must understand (unknown one: reject),
 * bits 16-31 are hints a reader may ignore. */
#define CVOL_FLAGS_REQUIRED 0x0000FFFFu

/* Caps a reader enforces before allocating anything (see cryolvm-stream(5), LIMITS). */
#define CVOL_MAX_DIM ((uint64_t)1 << 31)             /* each of c, nz, ny, nx below this */
#define CVOL_MAX_FRAME_BYTES ((uint64_t)1 << 36)     /* 64 GiB of raw data per frame */
#define CVOL_MAX_CHUNK_BYTES ((uint32_t)256 << 20)   /* 256 MiB of raw data per chunk */
#define CVOL_MAX_META_BYTES ((uint32_t)16 << 20)     /* metadata block per frame */
#define CVOL_MAX_META_COUNT 65536u
#define CVOL_MAX_KEY_LEN 255u

#define CVOL_DEFAULT_CHUNK ((uint32_t)4 << 20)       /* 4 MiB raw per chunk */
#define CVOL_DEFAULT_LEVEL 3

static inline void cvol_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void cvol_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void cvol_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void cvol_put_f64(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    cvol_put_u64(p, u);
}
static inline uint16_t cvol_get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t cvol_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t cvol_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline double cvol_get_f64(const unsigned char *p)
{
    uint64_t u = cvol_get_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* zlib crc32 of a buffer of any size (zlib's length argument is 32-bit on some builds). */
uint32_t cvol_crc32(uint32_t crc, const void *buf, size_t len);

/* Byte shuffle of `n` elements of `size` bytes: out[j*n + i] = in[i*size + j]. */
void cvol_shuffle(unsigned char *out, const unsigned char *in, size_t n, size_t size);
void cvol_unshuffle(unsigned char *out, const unsigned char *in, size_t n, size_t size);

/* 1 if `key` is a valid metadata key ([A-Za-z0-9_.:-]{1,255}) of length `len`. */
int cvol_key_valid(const char *key, size_t len);

/* Threads to use for `n_chunks` chunks given a requested count (0 = OpenMP's default). */
int cvol_threads(int requested, size_t n_chunks);

#endif
