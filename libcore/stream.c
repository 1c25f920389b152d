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
        for (size_t i = 0; i < n; i++) {
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
        for (size_t i = 0; i < n; i++) {
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
