/* mrc.c — the MRC2014 / CCP4 header: byte order, validation, geometry, metadata.
 *
 * How a header becomes a frame (documented for users in cryolvm-formats(5)):
 *
 * Byte order. The machine stamp at byte 212 says it: 0x44 (0x44 0x44 or 0x44 0x41) little-
 * endian, 0x11 0x11 big-endian. Files with a zero or unknown stamp (old CCP4 and MRC
 * writers) are read in whichever order gives a plausible header (a known mode, dimensions
 * 1..2^24); a stamp contradicted by an implausible header while the other order is
 * plausible is overridden the same way.
 *
 * Mode 0. MRC2014 says signed 8-bit. IMOD writes unsigned bytes and marks its files with
 * imodStamp = 1146047817 at byte 152; its imodFlags (byte 156) bit 0 set means "bytes are
 * signed". So: stamp present and bit 0 clear -> uint8; otherwise -> int8. Modes 1, 2, 6, 12
 * are int16, float32, uint16, float16 (kept as float16). Complex modes 3/4 and 101 (4-bit)
 * are refused.
 *
 * Axes. MAPC/MAPR/MAPS say which spatial axis (1=X, 2=Y, 3=Z) the columns, rows and
 * sections of the file run along; the reader permutes to x-fastest memory order. NX NY NZ
 * and NXSTART.. are in file (column,row,section) order; MX MY MZ, CELLA and ORIGIN are in
 * X,Y,Z order. All-zero MAPC/MAPR/MAPS (sloppy writers) is read as 1 2 3.
 *
 * Voxel size = CELLA / (MX, MY, MZ) per axis (not / NX); an unset (zero) cell or sampling
 * gives 1 Å on that axis. Non-finite or negative cell lengths are refused.
 *
 * Origin (Å of the centre of voxel 0,0,0), the rule ChimeraX uses: when the header has
 * "MAP " at 208 (MRC2000 and later) and any ORIGIN word is non-zero, the ORIGIN words,
 * unless they are so large that one voxel step is lost in float32 (uninitialised values, as
 * RELION 2.0 wrote); otherwise NSTART (permuted to X,Y,Z) × voxel size, unless a start is
 * more than 10 × the grid size away (uninitialised), then 0. Non-orthogonal cell angles are
 * kept as metadata (mrc.cell_angles) but not applied: frames are orthogonal grids.
 *
 * Labels become history entries (oldest first); the extended header is kept as
 * mrc.exttyp / mrc.exthdr (base64) up to MRC_EXTHDR_KEEP_MAX bytes.
 */
#include "mrc_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cryolvm/mem.h"

static int32_t get_i32(const unsigned char *p, int big)
{
    uint32_t u = big ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3])
                     : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
    int32_t i;
    memcpy(&i, &u, 4);
    return i;
}

static float get_f32(const unsigned char *p, int big)
{
    int32_t i = get_i32(p, big);
    float f;
    memcpy(&f, &i, 4);
    return f;
}

static int mode_known(int32_t mode)
{
    return mode == 0 || mode == 1 || mode == 2 || mode == 3 || mode == 4 || mode == 6 ||
           mode == 12 || mode == 16 || mode == 101;
}

/* A header read in this byte order has a known mode and sane dimensions. */
static int plausible(const unsigned char *buf, int big)
{
    if (!mode_known(get_i32(buf + 12, big)))
        return 0;
    for (int i = 0; i < 3; i++) {
        int32_t n = get_i32(buf + 4 * i, big);
        if (n < 1 || n > (1 << 24))
            return 0;
    }
    return 1;
}

static int axes_ok(int32_t a, int32_t b, int32_t c)
{
    return a >= 1 && a <= 3 && b >= 1 && b <= 3 && c >= 1 && c <= 3 && a != b && a != c && b != c;
}

int cryo_mrc_sniff(const unsigned char *buf, size_t len)
{
    if (len >= 212 && memcmp(buf + 208, "MAP ", 4) == 0)
        return 1;
    /* Old CCP4/MRC files without the map ID: known mode, sane dims and a valid axis order
     * in one byte order. Random data almost never passes all three. */
    if (len < 224)
        return 0;
    for (int big = 0; big <= 1; big++) {
        if (!plausible(buf, big))
            continue;
        if (axes_ok(get_i32(buf + 64, big), get_i32(buf + 68, big), get_i32(buf + 72, big)))
            return 1;
    }
    return 0;
}

void mrc_format_bytes(uint64_t n, char *buf, size_t len)
{
    if (n < 1024)
        snprintf(buf, len, "%llu bytes", (unsigned long long)n);
    else if (n < ((uint64_t)1 << 20))
        snprintf(buf, len, "%.1f KiB", (double)n / 1024.0);
    else if (n < ((uint64_t)1 << 30))
        snprintf(buf, len, "%.1f MiB", (double)n / 1048576.0);
    else if (n < ((uint64_t)1 << 40))
        snprintf(buf, len, "%.1f GiB", (double)n / 1073741824.0);
    else
        snprintf(buf, len, "%.1f TiB", (double)n / 1099511627776.0);
}

static void decode_raw(struct mrc_header *h, const unsigned char *b, int big)
{
    memset(h, 0, sizeof *h);
    h->big_endian = big;
    for (int i = 0; i < 3; i++) {
        h->n[i] = get_i32(b + 4 * i, big);
        h->nstart[i] = get_i32(b + 16 + 4 * i, big);
        h->m[i] = get_i32(b + 28 + 4 * i, big);
        h->cella[i] = get_f32(b + 40 + 4 * i, big);
        h->cellb[i] = get_f32(b + 52 + 4 * i, big);
        h->map[i] = get_i32(b + 64 + 4 * i, big);
        h->origin[i] = get_f32(b + 196 + 4 * i, big);
    }
    h->mode = get_i32(b + 12, big);
    h->dmin = get_f32(b + 76, big);
    h->dmax = get_f32(b + 80, big);
    h->dmean = get_f32(b + 84, big);
    h->ispg = get_i32(b + 88, big);
    h->nsymbt = get_i32(b + 92, big);
    memcpy(h->exttyp, b + 104, 4);
    h->exttyp[4] = '\0';
    h->nversion = get_i32(b + 108, big);
    h->imod_stamp = get_i32(b + 152, big);
    h->imod_flags = get_i32(b + 156, big);
    h->has_map_id = memcmp(b + 208, "MAP ", 4) == 0;
    memcpy(h->machst, b + 212, 4);
    h->rms = get_f32(b + 216, big);
    h->nlabl = get_i32(b + 220, big);
    for (int i = 0; i < 10; i++) {
        memcpy(h->labels[i], b + 224 + 80 * i, 80);
        h->labels[i][80] = '\0';
    }
}

static const char *dim_names = "XYZ";

int mrc_header_parse(struct mrc_header *h, const unsigned char *b, const char *name,
                     struct cryo_error *err)
{
    int big;
    if (b[212] == 0x44)
        big = 0;
    else if (b[212] == 0x11)
        big = 1;
    else
        big = plausible(b, 0) ? 0 : plausible(b, 1) ? 1 : 0;
    if (!plausible(b, big) && plausible(b, !big))
        big = !big;
    decode_raw(h, b, big);

    if (h->n[0] < 1 || h->n[1] < 1 || h->n[2] < 1)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: invalid dimensions %dx%dx%d in MRC header (must be positive)",
                         name, h->n[0], h->n[1], h->n[2]);
    switch (h->mode) {
    case 0:
        /* IMOD: unsigned unless imodFlags bit 0 says signed; MRC2014: signed. */
        h->dtype = (h->imod_stamp == MRC_IMOD_STAMP && !(h->imod_flags & 1)) ? CRYO_DTYPE_U8
                                                                             : CRYO_DTYPE_I8;
        break;
    case 1: h->dtype = CRYO_DTYPE_I16; break;
    case 2: h->dtype = CRYO_DTYPE_F32; break;
    case 6: h->dtype = CRYO_DTYPE_U16; break;
    case 12: h->dtype = CRYO_DTYPE_F16; break;
    case 3:
    case 4:
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: MRC mode %d (complex Fourier data) is not supported",
                         name, h->mode);
    default:
        return cryo_fail(err, CRYO_E_UNSUPPORTED,
                         "%s: unsupported MRC mode %d (cryolvm reads modes 0, 1, 2, 6 and 12)", name, h->mode);
    }
    h->esize = cryo_dtype_size(h->dtype);

    uint64_t bytes = h->esize;
    for (int i = 0; i < 3; i++) {
        if (bytes > MRC_MAX_DATA_BYTES / (uint64_t)h->n[i])
            return cryo_fail(err, CRYO_E_FORMAT, "%s: header says %dx%dx%d %s: over 1 TiB, refusing absurd size",
                             name, h->n[0], h->n[1], h->n[2], cryo_dtype_name(h->dtype));
        bytes *= (uint64_t)h->n[i];
    }
    if ((uint64_t)bytes > (uint64_t)SIZE_MAX)
        return cryo_fail(err, CRYO_E_NOMEM, "%s: map too large for this machine", name);
    h->data_bytes = bytes;
    if (h->nsymbt < 0)
        return cryo_fail(err, CRYO_E_FORMAT, "%s: negative extended header size NSYMBT = %d", name, h->nsymbt);

    if (h->map[0] == 0 && h->map[1] == 0 && h->map[2] == 0) {
        h->map[0] = 1, h->map[1] = 2, h->map[2] = 3;
    }
    if (!axes_ok(h->map[0], h->map[1], h->map[2]))
        return cryo_fail(err, CRYO_E_FORMAT, "%s: MAPC/MAPR/MAPS = %d %d %d is not a permutation of 1 2 3",
                         name, h->map[0], h->map[1], h->map[2]);
    for (int i = 0; i < 3; i++) {
        h->file_axis[i] = h->map[i] - 1;
        h->dim[h->file_axis[i]] = h->n[i];
    }

    for (int i = 0; i < 3; i++) {
        if (!isfinite(h->cella[i]))
            return cryo_fail(err, CRYO_E_FORMAT, "%s: cell length along %c (CELLA) is %g, not a finite number",
                             name, dim_names[i], (double)h->cella[i]);
        if (h->cella[i] < 0)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: negative cell length %g along %c (CELLA)", name,
                             (double)h->cella[i], dim_names[i]);
        h->apix[i] = (h->cella[i] > 0 && h->m[i] > 0) ? (double)h->cella[i] / (double)h->m[i] : 1.0;
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(h->origin[i]) && h->has_map_id)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: ORIGIN along %c is %g, not a finite number", name,
                             dim_names[i], (double)h->origin[i]);

    /* Origin rule: see the top of this file. */
    int use_words = 0;
    if (h->has_map_id && (h->origin[0] != 0 || h->origin[1] != 0 || h->origin[2] != 0)) {
        use_words = 1;
        for (int i = 0; i < 3; i++) {
            float o = h->origin[i], step = (float)h->apix[i];
            if (o + step == o)
                use_words = 0;
        }
    }
    if (use_words) {
        h->origin_from = 0;
        for (int i = 0; i < 3; i++)
            h->origin_xyz[i] = h->origin[i];
    } else {
        int64_t start[3], limit = 0;
        for (int i = 0; i < 3; i++) {
            start[h->file_axis[i]] = h->nstart[i];
            if (h->m[i] > limit)
                limit = h->m[i];
            if (h->dim[i] > limit)
                limit = h->dim[i];
        }
        limit *= 10;
        int wild = 0;
        for (int i = 0; i < 3; i++)
            if (start[i] > limit || start[i] < -limit)
                wild = 1;
        h->origin_from = wild ? 2 : 1;
        for (int i = 0; i < 3; i++)
            h->origin_xyz[i] = wild ? 0.0 : (double)start[i] * h->apix[i];
        if (!wild && start[0] == 0 && start[1] == 0 && start[2] == 0)
            h->origin_from = 2;
    }
    return CRYO_OK;
}

/* Length of a valid UTF-8 sequence (2..4 bytes, no overlongs/surrogates) at p, else 0. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    size_t n = p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) || (p[0] == 0xF0 && p[1] < 0x90) ||
        (p[0] == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* Label text as a history line: trailing blanks/NULs dropped, control characters made
 * spaces, valid UTF-8 kept, any other byte (Latin-1 from old writers, garbage) made '?'
 * because metadata values are UTF-8. */
static void clean_label(const char *in, char *out)
{
    size_t n = strnlen(in, 80);
    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0' || in[n - 1] == '\t'))
        n--;
    const unsigned char *u = (const unsigned char *)in;
    size_t i = 0;
    while (i < n) {
        size_t k = u[i] >= 0x80 ? utf8_len(u + i, n - i) : 0;
        if (k) {
            memcpy(out + i, in + i, k);
            i += k;
        } else {
            out[i] = (u[i] >= 32 && u[i] < 127) ? (char)u[i] : u[i] < 32 || u[i] == 127 ? ' ' : '?';
            i++;
        }
    }
    out[n] = '\0';
}

int mrc_header_to_volume(const struct mrc_header *h, struct cryo_volume *v, struct cryo_error *err)
{
    v->c = 1;
    v->nx = h->dim[0], v->ny = h->dim[1], v->nz = h->dim[2];
    v->ndim = h->dim[2] == 1 ? 2 : 3;
    for (int i = 0; i < 3; i++) {
        v->apix[i] = h->apix[i];
        v->origin[i] = h->origin_xyz[i];
    }
    struct cryo_meta *m = &v->meta;
    static const char *rule[] = {"origin", "nstart", "zero"};
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.mode", "%d", h->mode));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.ispg", "%d", h->ispg));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.axes", "%d,%d,%d", h->map[0], h->map[1], h->map[2]));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.nstart", "%d,%d,%d", h->nstart[0], h->nstart[1], h->nstart[2]));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.sampling", "%d,%d,%d", h->m[0], h->m[1], h->m[2]));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.cell", "%.9g,%.9g,%.9g", (double)h->cella[0], (double)h->cella[1],
                            (double)h->cella[2]));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.cell_angles", "%.9g,%.9g,%.9g", (double)h->cellb[0],
                            (double)h->cellb[1], (double)h->cellb[2]));
    CRYO_TRY(cryo_meta_setf(m, err, "mrc.origin_words", "%.9g,%.9g,%.9g", (double)h->origin[0],
                            (double)h->origin[1], (double)h->origin[2]));
    CRYO_TRY(cryo_meta_set(m, "mrc.origin_rule", rule[h->origin_from], err));
    CRYO_TRY(cryo_meta_set(m, "mrc.endian", h->big_endian ? "big" : "little", err));
    if (h->nversion)
        CRYO_TRY(cryo_meta_setf(m, err, "mrc.nversion", "%d", h->nversion));
    for (int i = 0; i < 10; i++) {
        char line[81];
        clean_label(h->labels[i], line);
        if (line[0])
            CRYO_TRY(cryo_meta_add_history(m, line, err));
    }
    return CRYO_OK;
}

/* ---- base64 (RFC 4648) ------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cryo_base64_encode(const unsigned char *d, size_t n, struct cryo_error *err)
{
    size_t out_len = (n + 2) / 3 * 4 + 1;
    char *s = cryo_alloc_array(out_len, 1, err);
    if (!s)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        s[j++] = b64[v >> 18 & 63];
        s[j++] = b64[v >> 12 & 63];
        s[j++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        s[j++] = i + 2 < n ? b64[v & 63] : '=';
    }
    s[j] = '\0';
    return s;
}

int cryo_base64_decode(const char *text, unsigned char **out, size_t *n, struct cryo_error *err)
{
    size_t len = strlen(text);
    if (len % 4 != 0)
        return cryo_fail(err, CRYO_E_FORMAT, "base64 text length %zu is not a multiple of 4", len);
    unsigned char *d = cryo_alloc_array(len / 4 * 3 + 1, 1, err);
    if (!d)
        return CRYO_E_NOMEM;
    size_t j = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            const char *p = c ? strchr(b64, c) : NULL;
            if (c == '=' && i + 4 == len && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!p || pad) {
                free(d);
                return cryo_fail(err, CRYO_E_FORMAT, "invalid base64 character at offset %zu", i + (size_t)k);
            }
            v = v << 6 | (uint32_t)(p - b64);
        }
        d[j++] = (unsigned char)(v >> 16);
        if (pad < 2)
            d[j++] = (unsigned char)(v >> 8);
        if (pad < 1)
            d[j++] = (unsigned char)v;
    }
    *out = d;
    *n = j;
    return CRYO_OK;
}
