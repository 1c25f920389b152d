/* gz.h — gzip as a stdio FILE (libcore internal; used by volio.c).
 *
 * The idea: every reader and writer in libcore speaks FILE*, so gzip is undone or applied by
 * a FILE made with fopencookie() that inflates from / deflates to another FILE. Reading
 * starts from bytes already consumed by format sniffing (`prefix`), handles concatenated
 * gzip members (as gunzip does) and ignores trailing zero padding. A failure inside the
 * cookie makes the FILE report an error (ferror / short read); cryo_gz_status() then turns
 * the recorded reason ("corrupt gzip data", "gzip stream ends early") into a cryo_error.
 *
 * Ownership: struct cryo_gz owns the cookie FILE it returns, never the underlying FILE.
 */
#ifndef CRYOLVM_GZ_H
#define CRYOLVM_GZ_H

#include <stdio.h>
#include "cryolvm/error.h"

struct cryo_gz;

/* 1 if buf starts with the gzip magic 1f 8b. */
int cryo_gz_sniff(const unsigned char *buf, size_t len);

/* A FILE that yields the inflated bytes of `src` (whose first `prefix_len` bytes were
 * already read into `prefix`). CRYO_E_NOMEM on failure. */
int cryo_gz_open_read(struct cryo_gz **g, FILE **out, FILE *src, const unsigned char *prefix,
                      size_t prefix_len, const char *name, struct cryo_error *err);
/* A FILE whose bytes are deflated (gzip format, `level` 1..9, 0 = 6) into `dst`. */
int cryo_gz_open_write(struct cryo_gz **g, FILE **out, FILE *dst, int level, const char *name,
                       struct cryo_error *err);
/* CRYO_OK, or the recorded failure (CRYO_E_CORRUPT / CRYO_E_TRUNCATED / CRYO_E_IO) as err. */
int cryo_gz_status(const struct cryo_gz *g, struct cryo_error *err);
/* fclose the cookie FILE (a writer then writes the gzip trailer) and free g; returns the
 * first failure seen. Safe with g == NULL. Does not close the underlying FILE. */
int cryo_gz_close(struct cryo_gz *g, struct cryo_error *err);

#endif
