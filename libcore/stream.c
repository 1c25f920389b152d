/* stream.c — pieces of the CVOL stream shared by the reader and the writer: defaults, the
 * byte-shuffle filter, the checksum and the key rule.
 *
 * The idea of the shuffle: in a float32 density map the exponent and high mantissa bytes
 * of neighbouring voxels are nearly equal while the low mantissa bytes are noise. Storing
 * each byte position as its own plane puts the predictable bytes next to each other, which
 * zstd then compresses well, and keeps the noise planes from spoiling its match finder.
 */
#include "stream_priv.h"

#include <limits.h>
#include <zlib.h>
#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

void cryo_stream_opts_default(struct cryo_stream_opts *o)
{
    o->level = CVOL_DEFAULT_LEVEL;
    o->threads = 0;
    o->shuffle = 1;
}

uint32_t cvol_crc32(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uLong c = crc;
    while (len > 0) {
        /* zlib takes a uInt length: feed it in pieces well below UINT_MAX. */
        size_t step = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        c = crc32(c, p, (uInt)step);
        p += step;
        len -= step;
    }
    return (uint32_t)c;
}

/* The generic loops read one element at a time and scatter its bytes to the planes: reads
 * are sequential and there are only `size` write streams, which caches handle well. */
void cvol_shuffle(unsigned char *restrict out, const unsigned char *restrict in, size_t n, size_t size)
{
    if (size == 4) {
        unsigned char *o0 = out, *o1 = out + n, *o2 = out + 2 * n, *o3 = out + 3 * n;
        size_t i = 0;
#if defined(__SSSE3__)
        /* 16 elements at a time: group each vector's bytes by plane, then transpose 4x4
         * 32-bit words so that each register holds 16 bytes of one plane. */
        const __m128i by_plane = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for (; i + 16 <= n; i += 16) {
            __m128i v0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in + 4 * i)), by_plane);
            __m128i v1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in + 4 * i + 16)), by_plane);
            __m128i v2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in + 4 * i + 32)), by_plane);
            __m128i v3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in + 4 * i + 48)), by_plane);
            __m128i t0 = _mm_unpacklo_epi32(v0, v1), t1 = _mm_unpacklo_epi32(v2, v3);
            __m128i t2 = _mm_unpackhi_epi32(v0, v1), t3 = _mm_unpackhi_epi32(v2, v3);
            _mm_storeu_si128((__m128i *)(o0 + i), _mm_unpacklo_epi64(t0, t1));
            _mm_storeu_si128((__m128i *)(o1 + i), _mm_unpackhi_epi64(t0, t1));
            _mm_storeu_si128((__m128i *)(o2 + i), _mm_unpacklo_epi64(t2, t3));
            _mm_storeu_si128((__m128i *)(o3 + i), _mm_unpackhi_epi64(t2, t3));
        }
#endif
        for (; i < n; i++) {
            o0[i] = in[4 * i];
            o1[i] = in[4 * i + 1];
            o2[i] = in[4 * i + 2];
            o3[i] = in[4 * i + 3];
        }
    } else if (size == 2) {
        unsigned char *o0 = out, *o1 = out + n;
        for (size_t i = 0; i < n; i++) {
            o0[i] = in[2 * i];
            o1[i] = in[2 * i + 1];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < size; j++)
                out[j * n + i] = in[i * size + j];
    }
}

void cvol_unshuffle(unsigned char *restrict out, const unsigned char *restrict in, size_t n, size_t size)
{
    if (size == 4) {
        const unsigned char *i0 = in, *i1 = in + n, *i2 = in + 2 * n, *i3 = in + 3 * n;
        size_t i = 0;
#if defined(__SSSE3__)
        /* Interleave 16 bytes of each plane: bytes of planes 0/1 and 2/3 pairwise, then the
         * pairs, giving 16 whole elements. */
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(i0 + i)), b = _mm_loadu_si128((const __m128i *)(i1 + i));
            __m128i c = _mm_loadu_si128((const __m128i *)(i2 + i)), d = _mm_loadu_si128((const __m128i *)(i3 + i));
            __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
            __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
            _mm_storeu_si128((__m128i *)(out + 4 * i), _mm_unpacklo_epi16(ab_lo, cd_lo));
            _mm_storeu_si128((__m128i *)(out + 4 * i + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
            _mm_storeu_si128((__m128i *)(out + 4 * i + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
            _mm_storeu_si128((__m128i *)(out + 4 * i + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
        }
#endif
        for (; i < n; i++) {
            out[4 * i] = i0[i];
            out[4 * i + 1] = i1[i];
            out[4 * i + 2] = i2[i];
            out[4 * i + 3] = i3[i];
        }
    } else if (size == 2) {
        const unsigned char *i0 = in, *i1 = in + n;
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = i0[i];
            out[2 * i + 1] = i1[i];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < size; j++)
                out[i * size + j] = in[j * n + i];
    }
}

int cvol_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > CVOL_MAX_KEY_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int cvol_threads(int requested, size_t n_chunks)
{
    int t = requested;
#ifdef _OPENMP
    if (t <= 0)
        t = omp_get_max_threads();
#else
    t = 1;
#endif
    if (t < 1)
        t = 1;
    if ((size_t)t > n_chunks)
        t = n_chunks > 0 ? (int)(n_chunks > INT_MAX ? INT_MAX : n_chunks) : 1;
    return t;
}
