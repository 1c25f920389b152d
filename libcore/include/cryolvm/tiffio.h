/* tiffio.h — TIFF stacks via libtiff: each page one Z slice.
 * Read: 8/16/32-bit unsigned/signed integer and 32-bit float grayscale pages, all pages the
 * same size. Write: one page per Z slice, dtype kept (f16/bf16 refused: convert first).
 * Voxel size: from XResolution/YResolution when the unit allows, and the ImageJ
 * "spacing=" description, else 1 Å (see tiffio.c).
 */
#ifndef CRYOLVM_TIFFIO_H
#define CRYOLVM_TIFFIO_H

#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

int cryo_tiff_sniff(const unsigned char *buf, size_t len);
/* Read from a path (libtiff needs a seekable file; volio spools stdin to a temp file). */
int cryo_tiff_read(struct cryo_volume *v, const char *path, const char *name, struct cryo_error *err);
int cryo_tiff_write(const char *path, const struct cryo_volume *v, const char *name, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
