/* mrc_write.c — a frame as an MRC2014 file that mrcfile.validate accepts.
 *
 * The writer always produces the plainest valid file: little-endian (stamp 44 44 00 00),
 * "MAP ", NVERSION 20140, MAPC/MAPR/MAPS 1 2 3, MX/MY/MZ = NX/NY/NZ (MZ = 1 for stacks),
 * CELLA = N × voxel size, ORIGIN words from the frame's origin, NXSTART.. = 0, statistics
 * DMIN/DMAX/DMEAN/RMS (RMS = standard deviation from the mean, as MRC2014 defines it) over
 * the finite voxels, and the last 10 history entries as labels. The extended header kept
 * from the input (mrc.exthdr) is written back only when the frame still has the shape it
 * came with (mrc.exthdr_shape). Everything that could refuse the frame is checked before
 * the first byte is written.
 */
#include "mrc_priv.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cryolvm/mem.h"

static void put_i32(unsigned char *p, int32_t v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (unsigned char)u, p[1] = (unsigned char)(u >> 8), p[2] = (unsigned char)(u >> 16),
    p[3] = (unsigned char)(u >> 24);
}

static void put_f32(unsigned char *p, float f)
{
    int32_t i;
    memcpy(&i, &f, 4);
    put_i32(p, i);
}

struct mrc_stats { double min, max, mean, std; };

/* Min, max, mean, std over finite values, in double, one pass, typed loops per dtype.
 * Branch-free (x - x == 0 is the finiteness test) so that `omp simd` vectorises it: the
 * statistics of a 512 MiB map are then a small part of writing it. */
#define STATS_FN(NAME, T, CONV, CHECK)                                                            \
    static void NAME(const T *d, size_t n, struct mrc_stats *st)                                  \
    {                                                                                             \
        double mn = INFINITY, mx = -INFINITY, sum = 0, sum2 = 0;                                  \
        size_t good = 0;                                                                          \
        _Pragma("omp parallel for simd reduction(min : mn) reduction(max : mx) reduction(+ : sum, sum2, good) if (n > (1 << 20))") \
        for (size_t i = 0; i < n; i++) {                                                          \
            double x = CONV(d[i]);                                                                \
            int ok = !(CHECK) || x - x == 0.0;                                                    \
            double xs = ok ? x : 0.0;                                                             \
            good += (size_t)ok;                                                                   \
            mn = ok && x < mn ? x : mn;                                                           \
            mx = ok && x > mx ? x : mx;                                                           \
            sum += xs;                                                                            \
            sum2 += xs * xs;                                                                      \
        }                                                                                         \
        if (good == 0) {                                                                          \
            st->min = st->max = st->mean = st->std = 0;                                           \
            return;                                                                               \
        }                                                                                         \
        st->min = mn, st->max = mx, st->mean = sum / (double)good;                                \
        double var = sum2 / (double)good - st->mean * st->mean;                                   \
        st->std = sqrt(var > 0 ? var : 0);                                                        \
    }
/* float16 -> float32 by table: 256 KiB, built once; 10x faster than a call per voxel. */
static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;
static void f16_table_init(void)
{
    for (uint32_t i = 0; i < 65536; i++)
        f16_table[i] = cryo_f16_to_f32((uint16_t)i);
}
#define F16_LUT(h) ((double)f16_table[(h)])
#define AS_DOUBLE(x) ((double)(x))
STATS_FN(stats_f32, float, AS_DOUBLE, 1)
STATS_FN(stats_f16, uint16_t, F16_LUT, 1)
STATS_FN(stats_i16, int16_t, AS_DOUBLE, 0)
STATS_FN(stats_u16, uint16_t, AS_DOUBLE, 0)
STATS_FN(stats_i8, int8_t, AS_DOUBLE, 0)
STATS_FN(stats_u8, uint8_t, AS_DOUBLE, 0)

static void compute_stats(const struct cryo_volume *v, size_t n, struct mrc_stats *st)
{
    switch (v->dtype) {
    case CRYO_DTYPE_F32: stats_f32(v->data, n, st); break;
    case CRYO_DTYPE_F16:
        pthread_once(&f16_once, f16_table_init);
        stats_f16(v->data, n, st);
        break;
    case CRYO_DTYPE_I16: stats_i16(v->data, n, st); break;
    case CRYO_DTYPE_U16: stats_u16(v->data, n, st); break;
    case CRYO_DTYPE_I8: stats_i8(v->data, n, st); break;
    default: stats_u8(v->data, n, st); break;
    }
}

/* Copy a history line into an 80-byte label: control characters become spaces, and a cut
 * never splits a UTF-8 sequence. Space padded. */
static void put_label(unsigned char *dst, const char *line)
{
    size_t n = strlen(line);
    if (n > 80) {
        n = 80;
        while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80)
            n--;
    }
    memset(dst, ' ', 80);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        dst[i] = c < 32 || c == 127 ? ' ' : c;
    }
}

static int name_is_stack(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    const char *exts[] = {".mrcs", ".mrcs.gz", ".st", ".st.gz"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t k = strlen(exts[i]);
        if (n > k && strcasecmp(name + n - k, exts[i]) == 0)
            return 1;
    }
    return 0;
}

/* MZ for a stack kept from its source. Many files say ISPG 0 (image stack) yet sample z like
 * a volume (MZ = NZ): such a file is written back as it was read (ISPG 0, MZ = NZ, the same
 * cell), so every reader sees the same grid in the copy as in the original. */
static int32_t source_mz_of_stack(const struct cryo_meta *meta, int64_t nz)
{
    const char *sampling = cryo_meta_get(meta, "mrc.sampling");
    int mx, my, mz;
    if (sampling && sscanf(sampling, "%d,%d,%d", &mx, &my, &mz) == 3 && mz == nz)
        return mz;
    return 1;
}

static int host_big_endian(void)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return 1;
#else
    return 0;
#endif
}

/* uint8 as mode 6: each byte widened to a little-endian uint16, in pieces (no second copy
 * of the map in memory). */
static int write_u8_as_u16(FILE *f, const struct cryo_volume *v, size_t count, const char *name,
                           struct cryo_error *err)
{
    enum { CHUNK = 1 << 19 };
    unsigned char *tmp = malloc(2 * CHUNK);
    if (!tmp)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
    const uint8_t *p = v->data;
    for (size_t done = 0; done < count;) {
        size_t k = count - done < CHUNK ? count - done : CHUNK;
        for (size_t i = 0; i < k; i++)
            tmp[2 * i] = p[done + i], tmp[2 * i + 1] = 0;
        if (fwrite(tmp, 1, 2 * k, f) != 2 * k) {
            free(tmp);
            return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno ? errno : EIO));
        }
        done += k;
    }
    free(tmp);
    return CRYO_OK;
}

static int write_data(FILE *f, const struct cryo_volume *v, size_t bytes, const char *name,
                      struct cryo_error *err)
{
    size_t esize = cryo_dtype_size(v->dtype);
    if (!host_big_endian() || esize == 1) {
        const unsigned char *p = v->data;
        size_t done = 0;
        while (done < bytes) {   /* 1 GiB pieces: some libcs mishandle larger single writes */
            size_t k = bytes - done < ((size_t)1 << 30) ? bytes - done : ((size_t)1 << 30);
            if (fwrite(p + done, 1, k, f) != k)
                return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno ? errno : EIO));
            done += k;
        }
        return CRYO_OK;
    }
    /* Big-endian host: swap through a bounce buffer. */
    enum { CHUNK = 1 << 20 };
    unsigned char *tmp = malloc(CHUNK);
    if (!tmp)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
    const unsigned char *p = v->data;
    for (size_t done = 0; done < bytes;) {
        size_t k = bytes - done < CHUNK ? bytes - done : CHUNK;
        for (size_t i = 0; i < k; i += esize)
            for (size_t j = 0; j < esize; j++)
                tmp[i + j] = p[done + i + esize - 1 - j];
        if (fwrite(tmp, 1, k, f) != k) {
            free(tmp);
            return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno ? errno : EIO));
        }
        done += k;
    }
    free(tmp);
    return CRYO_OK;
}

const char *cryo_mrc_u8_name(enum cryo_mrc_u8 u)
{
    switch (u) {
    case CRYO_MRC_U8_UINT16: return "uint16";
    case CRYO_MRC_U8_MODE0: return "mode0";
    case CRYO_MRC_U8_IMOD: return "imod";
    }
    return "?";
}

int cryo_mrc_u8_from_name(const char *name, enum cryo_mrc_u8 *u)
{
    for (int i = CRYO_MRC_U8_UINT16; i <= CRYO_MRC_U8_IMOD; i++)
        if (name && strcmp(name, cryo_mrc_u8_name((enum cryo_mrc_u8)i)) == 0) {
            *u = (enum cryo_mrc_u8)i;
            return CRYO_OK;
        }
    return CRYO_E_INVALID;
}

static uint8_t max_u8(const uint8_t *d, size_t n)
{
    uint8_t m = 0;
    _Pragma("omp parallel for simd reduction(max : m) if (n > (1 << 22))")
    for (size_t i = 0; i < n; i++)
        m = d[i] > m ? d[i] : m;
    return m;
}

int cryo_mrc_write(FILE *f, const struct cryo_volume *v, const char *name, struct cryo_error *err)
{
    return cryo_mrc_write_u8(f, v, name, CRYO_MRC_U8_UINT16, err);
}

int cryo_mrc_write_u8(FILE *f, const struct cryo_volume *v, const char *name, enum cryo_mrc_u8 u8,
                      struct cryo_error *err)
{
    int32_t mode, imod_flags = -1;
    int widen = 0;
    switch (v->dtype) {
    case CRYO_DTYPE_F32: mode = 2; break;
    case CRYO_DTYPE_I16: mode = 1; break;
    case CRYO_DTYPE_U16: mode = 6; break;
    case CRYO_DTYPE_F16: mode = 12; break;
    case CRYO_DTYPE_I8: mode = 0, imod_flags = 1; break;  /* IMOD flag bit 0: signed bytes */
    case CRYO_DTYPE_U8:
        /* MRC2014 readers (mrcfile, gemmi, relion) take mode 0 as signed whatever IMOD's flag
         * says, so bytes above 127 would read negative: mode 6 unless asked otherwise. */
        if (u8 == CRYO_MRC_U8_UINT16)
            mode = 6, widen = 1;
        else
            mode = 0, imod_flags = 0; /* IMOD: unsigned bytes */
        break;
    default:
        return cryo_fail(err, CRYO_E_UNSUPPORTED,
                         "%s: MRC cannot hold %s data (convert to float32, float16, int16, uint16, int8 or uint8)",
                         name, cryo_dtype_name(v->dtype));
    }
    if (!v->data)
        return cryo_fail(err, CRYO_E_INVALID, "%s: no data to write", name);
    if (v->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: MRC holds one channel, this frame has %lld", name,
                         (long long)v->c);
    const int64_t dims[3] = {v->nx, v->ny, v->nz};
    for (int i = 0; i < 3; i++) {
        if (dims[i] < 1 || dims[i] > INT32_MAX)
            return cryo_fail(err, CRYO_E_INVALID, "%s: dimension %lld does not fit an MRC header", name,
                             (long long)dims[i]);
        if (!isfinite(v->apix[i]) || v->apix[i] <= 0)
            return cryo_fail(err, CRYO_E_NUMERIC, "%s: voxel size %g is not a positive finite number", name,
                             v->apix[i]);
        if (!isfinite(v->origin[i]))
            return cryo_fail(err, CRYO_E_NUMERIC, "%s: origin %g is not finite", name, v->origin[i]);
    }
    size_t count, bytes;
    CRYO_TRY(cryo_count4(1, v->nz, v->ny, v->nx, &count, err));
    CRYO_TRY(cryo_mul_size(count, cryo_dtype_size(v->dtype), &bytes, err));
    if (v->dtype == CRYO_DTYPE_U8 && u8 == CRYO_MRC_U8_MODE0) {
        uint8_t m = max_u8(v->data, count);
        if (m > 127)
            return cryo_fail(err, CRYO_E_INVALID,
                             "%s: uint8 values up to %u do not fit MRC mode 0, which MRC2014 readers (mrcfile, "
                             "gemmi, relion) read as signed (-128..127): write mode 6 (the default, uint16), "
                             "or mode 0 with IMOD's unsigned flag if only IMOD will read it",
                             name, (unsigned)m);
    }

    unsigned char *ext = NULL;
    size_t ext_n = 0;
    const char *ext_b64 = cryo_meta_get(&v->meta, "mrc.exthdr");
    const char *ext_shape = cryo_meta_get(&v->meta, "mrc.exthdr_shape");
    if (ext_b64 && ext_shape) {
        char now[96];
        snprintf(now, sizeof now, "%lld,%lld,%lld", (long long)v->nx, (long long)v->ny, (long long)v->nz);
        if (strcmp(now, ext_shape) != 0)
            ext_b64 = NULL;  /* the frame's shape changed: the extended header no longer fits */
    }
    if (ext_b64) {
        int s = cryo_base64_decode(ext_b64, &ext, &ext_n, err);
        if (s < 0) {
            cryo_error_prefix(err, "metadata mrc.exthdr");
            cryo_error_prefix(err, name);
            return s;
        }
        if (ext_n > INT32_MAX) {
            free(ext);
            return cryo_fail(err, CRYO_E_INVALID, "%s: extended header too large", name);
        }
    }

    const char *ispg_meta = cryo_meta_get(&v->meta, "mrc.ispg");
    int stack = v->nz > 1 && ((ispg_meta && strcmp(ispg_meta, "0") == 0) || name_is_stack(name));
    int32_t ispg = (v->nz == 1 || stack) ? 0 : 1;
    int32_t stack_mz = stack && !name_is_stack(name) ? source_mz_of_stack(&v->meta, v->nz) : 1;

    struct mrc_stats st;
    compute_stats(v, count, &st);

    unsigned char h[MRC_HEADER_BYTES];
    memset(h, 0, sizeof h);
    for (int i = 0; i < 3; i++) {
        int32_t m = (i == 2 && stack) ? stack_mz : (int32_t)dims[i];
        put_i32(h + 4 * i, (int32_t)dims[i]);
        put_i32(h + 28 + 4 * i, m);
        put_f32(h + 40 + 4 * i, (float)(v->apix[i] * m));
        put_f32(h + 52 + 4 * i, 90.0f);
        put_i32(h + 64 + 4 * i, i + 1);
        put_f32(h + 196 + 4 * i, (float)v->origin[i]);
    }
    put_i32(h + 12, mode);
    put_f32(h + 76, (float)st.min);
    put_f32(h + 80, (float)st.max);
    put_f32(h + 84, (float)st.mean);
    put_f32(h + 216, (float)st.std);
    put_i32(h + 88, ispg);
    put_i32(h + 92, (int32_t)ext_n);
    if (ext_n) {
        /* An untyped extended header (pre-2014 files) of 80-byte text records is CCP4
         * symmetry operators; anything else untyped is declared old-style MRC ("MRCO"). */
        const char *typ = cryo_meta_get(&v->meta, "mrc.exttyp");
        if (!typ || strlen(typ) != 4) {
            int text = ext_n % 80 == 0;
            for (size_t i = 0; i < ext_n && text; i++)
                text = ext[i] >= 32 && ext[i] < 127;
            typ = text ? "CCP4" : "MRCO";
        }
        memcpy(h + 104, typ, 4);
    }
    put_i32(h + 108, 20140);
    if (imod_flags >= 0) {
        put_i32(h + 152, MRC_IMOD_STAMP);
        put_i32(h + 156, imod_flags);
    }
    memcpy(h + 208, "MAP ", 4);
    h[212] = 0x44, h[213] = 0x44;
    size_t nh = cryo_meta_history_count(&v->meta), first = nh > 10 ? nh - 10 : 0;
    int32_t nlabl = 0;
    for (size_t i = first; i < nh; i++) {
        const char *line = cryo_meta_history(&v->meta, i);
        int blank = 1;
        for (const char *p = line; p && *p; p++)
            if (*p != ' ' && *p != '\t')
                blank = 0;
        if (!blank)
            put_label(h + 224 + 80 * nlabl++, line);
    }
    put_i32(h + 220, nlabl);

    int s = CRYO_OK;
    if (fwrite(h, 1, sizeof h, f) != sizeof h || (ext_n && fwrite(ext, 1, ext_n, f) != ext_n))
        s = cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", name, strerror(errno ? errno : EIO));
    free(ext);
    if (s == CRYO_OK)
        s = widen ? write_u8_as_u16(f, v, count, name, err) : write_data(f, v, bytes, name, err);
    return s;
}
