/* gz.c — gzip reading and writing behind a stdio FILE (see gz.h).
 *
 * zlib's inflate with windowBits 15+16 parses the gzip wrapper and checks its CRC-32 and
 * length, so a damaged .gz is reported rather than producing wrong densities. After one
 * member ends, another 1f 8b member is decoded too (gzip -c a b > ab.gz); anything else
 * after a member is ignored, like gunzip's "trailing garbage" rule. */
#include "gz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define GZ_CHUNK ((size_t)1 << 18)

struct cryo_gz {
    int writing;
    FILE *under;             /* not owned */
    FILE *cookie;            /* owned */
    z_stream zs;
    int zs_ready;
    const unsigned char *prefix;
    size_t prefix_len;       /* remaining prefix bytes */
    unsigned char *prefix_copy;
    unsigned char *buf;      /* GZ_CHUNK bytes of compressed data */
    int member_done;         /* inflate reached the end of a member */
    int at_eof;              /* no more output will come */
    int status;              /* first failure, CRYO_OK if none */
    char msg[256];
    char name[256];
};

int cryo_gz_sniff(const unsigned char *buf, size_t len)
{
    return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

static void gz_record(struct cryo_gz *g, int status, const char *what)
{
    if (g->status == CRYO_OK) {
        g->status = status;
        snprintf(g->msg, sizeof g->msg, "%s", what);
    }
}

/* Refill zs.next_in from the prefix, then from the underlying FILE. 0 at end of input. */
static size_t gz_refill(struct cryo_gz *g)
{
    if (g->prefix_len > 0) {
        g->zs.next_in = (unsigned char *)g->prefix;
        g->zs.avail_in = (uInt)g->prefix_len;
        g->prefix += g->prefix_len;
        g->prefix_len = 0;
        return g->zs.avail_in;
    }
    size_t n = fread(g->buf, 1, GZ_CHUNK, g->under);
    if (n == 0 && ferror(g->under))
        gz_record(g, CRYO_E_IO, strerror(errno ? errno : EIO));
    g->zs.next_in = g->buf;
    g->zs.avail_in = (uInt)n;
    return n;
}

static ssize_t gz_read(void *cookie, char *out, size_t size)
{
    struct cryo_gz *g = cookie;
    if (g->status != CRYO_OK) {
        errno = EIO;
        return -1;
    }
    if (size > ((size_t)1 << 30))
        size = (size_t)1 << 30;
    g->zs.next_out = (unsigned char *)out;
    g->zs.avail_out = (uInt)size;
    while (g->zs.avail_out > 0 && !g->at_eof) {
        if (g->zs.avail_in == 0 && gz_refill(g) == 0) {
            if (g->status != CRYO_OK)
                break;
            if (!g->member_done)
                gz_record(g, CRYO_E_TRUNCATED, "gzip data ends early (file cut short?)");
            g->at_eof = 1;
            break;
        }
        if (g->member_done) {
            /* Between members: another gzip member, or trailing bytes to ignore. */
            if (g->zs.next_in[0] != 0x1f) {
                g->at_eof = 1;
                break;
            }
            inflateReset(&g->zs);
            g->member_done = 0;
        }
        int r = inflate(&g->zs, Z_NO_FLUSH);
        if (r == Z_STREAM_END) {
            g->member_done = 1;
        } else if (r == Z_DATA_ERROR || r == Z_NEED_DICT) {
            char what[200];
            snprintf(what, sizeof what, "corrupt gzip data (%s)", g->zs.msg ? g->zs.msg : "bad data");
            gz_record(g, CRYO_E_CORRUPT, what);
            break;
        } else if (r == Z_MEM_ERROR) {
            gz_record(g, CRYO_E_NOMEM, "out of memory in zlib");
            break;
        }
    }
    size_t got = size - g->zs.avail_out;
    if (got == 0 && g->status != CRYO_OK) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)got;
}

static int gz_drain(struct cryo_gz *g, int flush)
{
    for (;;) {
        g->zs.next_out = g->buf;
        g->zs.avail_out = (uInt)GZ_CHUNK;
        int r = deflate(&g->zs, flush);
        if (r == Z_STREAM_ERROR) {
            gz_record(g, CRYO_E_IO, "zlib deflate failed");
            return -1;
        }
        size_t have = GZ_CHUNK - g->zs.avail_out;
        if (have && fwrite(g->buf, 1, have, g->under) != have) {
            gz_record(g, CRYO_E_IO, strerror(errno ? errno : EIO));
            return -1;
        }
        if (flush == Z_FINISH ? r == Z_STREAM_END : g->zs.avail_out != 0)
            return 0;
    }
}

static ssize_t gz_write(void *cookie, const char *data, size_t size)
{
    struct cryo_gz *g = cookie;
    size_t done = 0;
    if (g->status != CRYO_OK) {
        errno = EIO;
        return 0;
    }
    while (done < size) {
        size_t n = size - done;
        if (n > ((size_t)1 << 30))
            n = (size_t)1 << 30;
        g->zs.next_in = (unsigned char *)data + done;
        g->zs.avail_in = (uInt)n;
        if (gz_drain(g, Z_NO_FLUSH) < 0) {
            errno = EIO;
            return 0;
        }
        done += n;
    }
    return (ssize_t)size;
}

static int gz_cookie_close(void *cookie)
{
    struct cryo_gz *g = cookie;
    int rc = 0;
    if (g->writing && g->zs_ready && g->status == CRYO_OK) {
        g->zs.next_in = NULL;
        g->zs.avail_in = 0;
        rc = gz_drain(g, Z_FINISH);
    }
    if (g->zs_ready)
        g->writing ? deflateEnd(&g->zs) : inflateEnd(&g->zs);
    g->zs_ready = 0;
    return rc;
}

static struct cryo_gz *gz_new(int writing, FILE *under, const char *name, struct cryo_error *err)
{
    struct cryo_gz *g = calloc(1, sizeof *g);
    if (g)
        g->buf = malloc(GZ_CHUNK);
    if (!g || !g->buf) {
        if (g)
            free(g);
        cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory for gzip buffers", name);
        return NULL;
    }
    g->writing = writing;
    g->under = under;
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

static void gz_free(struct cryo_gz *g)
{
    if (!g)
        return;
    free(g->buf);
    free(g->prefix_copy);
    free(g);
}

int cryo_gz_open_read(struct cryo_gz **out_g, FILE **out, FILE *src, const unsigned char *prefix,
                      size_t prefix_len, const char *name, struct cryo_error *err)
{
    struct cryo_gz *g = gz_new(0, src, name, err);
    if (!g)
        return CRYO_E_NOMEM;
    if (prefix_len) {
        g->prefix_copy = malloc(prefix_len);
        if (!g->prefix_copy) {
            gz_free(g);
            return cryo_fail(err, CRYO_E_NOMEM, "%s: out of memory", name);
        }
        memcpy(g->prefix_copy, prefix, prefix_len);
        g->prefix = g->prefix_copy;
        g->prefix_len = prefix_len;
    }
    if (inflateInit2(&g->zs, 15 + 16) != Z_OK) {
        gz_free(g);
        return cryo_fail(err, CRYO_E_NOMEM, "%s: cannot start zlib inflate", name);
    }
    g->zs_ready = 1;
    cookie_io_functions_t io = {gz_read, NULL, NULL, gz_cookie_close};
    g->cookie = fopencookie(g, "rb", io);
    if (!g->cookie) {
        inflateEnd(&g->zs);
        gz_free(g);
        return cryo_fail(err, CRYO_E_NOMEM, "%s: cannot create gzip reader", name);
    }
    *out_g = g;
    *out = g->cookie;
    return CRYO_OK;
}

int cryo_gz_open_write(struct cryo_gz **out_g, FILE **out, FILE *dst, int level, const char *name,
                       struct cryo_error *err)
{
    struct cryo_gz *g = gz_new(1, dst, name, err);
    if (!g)
        return CRYO_E_NOMEM;
    if (level < 1 || level > 9)
        level = 6;
    if (deflateInit2(&g->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        gz_free(g);
        return cryo_fail(err, CRYO_E_NOMEM, "%s: cannot start zlib deflate", name);
    }
    g->zs_ready = 1;
    cookie_io_functions_t io = {NULL, gz_write, NULL, gz_cookie_close};
    g->cookie = fopencookie(g, "wb", io);
    if (!g->cookie) {
        deflateEnd(&g->zs);
        gz_free(g);
        return cryo_fail(err, CRYO_E_NOMEM, "%s: cannot create gzip writer", name);
    }
    /* Large stdio buffer: fewer, larger deflate calls. */
    setvbuf(g->cookie, NULL, _IOFBF, GZ_CHUNK);
    *out_g = g;
    *out = g->cookie;
    return CRYO_OK;
}

int cryo_gz_status(const struct cryo_gz *g, struct cryo_error *err)
{
    if (!g || g->status == CRYO_OK)
        return CRYO_OK;
    return cryo_fail(err, g->status, "%s: %s", g->name, g->msg);
}

int cryo_gz_close(struct cryo_gz *g, struct cryo_error *err)
{
    if (!g)
        return CRYO_OK;
    int rc = fclose(g->cookie);
    int s = cryo_gz_status(g, err);
    if (s == CRYO_OK && rc != 0)
        s = cryo_fail(err, CRYO_E_IO, "%s: writing gzip data failed", g->name);
    gz_free(g);
    return s;
}
