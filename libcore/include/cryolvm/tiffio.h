/* tiffio.h — TIFF stacks via libtiff: each page one Z slice (cryolvm-formats(5)).
 * Read: 8/16/32-bit unsigned/signed integer and 16/32-bit float grayscale pages, all pages
 * the same size and type (uint32 -> int32 when it fits, float64 -> float32). Write: one
 * page per Z slice, dtype kept (u8 i8 u16 i16 i32 f32; f16/bf16 refused: convert first),
 * with an ImageJ description carrying the calibration.
 * Voxel size: from XResolution/YResolution when the unit is known (ImageJ "unit=", or
 * ResolutionUnit cm), the ImageJ "spacing=" for Z, else 1 Å (see tiffio.c).
 * libtiff's messages never reach stderr: errors are returned in err (CRYO_E_FORMAT for
 * unreadable input, CRYO_E_TRUNCATED for a broken page chain, CRYO_E_UNSUPPORTED for other
 * sample types, CRYO_E_IO for write failures), messages start with `name`.
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
