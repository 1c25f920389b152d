/* mrc.h — MRC2014 / CCP4 maps. The user-level description is cryolvm-formats(5).
 *
 * Read: modes 0 (int8; uint8 when the file has IMOD's stamp and imodFlags bit 0 clear), 1,
 * 2, 6, 12 (kept as float16); any MAPC/MAPR/MAPS permutation (resolved to x,y,z memory
 * order); both byte orders (machine stamp, or detected when the stamp is missing); the
 * extended header skipped (kept as metadata mrc.exthdr (base64, up to 1 MiB) and
 * mrc.exttyp); labels become history entries; header facts kept as mrc.* metadata. Voxel
 * size = CELLA / MX..; the origin follows the rule in mrc.c's top comment (ORIGIN words
 * when non-zero and "MAP " present, else NSTART × voxel size). gzip is undone by volio.
 * Write: mode from the dtype (f32->2, i16->1, u16->6, f16->12, i8->0, u8->6 by default, see
 * enum cryo_mrc_u8), axis order 1 2 3,
 * little-endian, labels = the last 10 history entries, written atomically by the caller
 * (see volio.h).
 */
#ifndef CRYOLVM_MRC_H
#define CRYOLVM_MRC_H

#include <stdio.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read one MRC map from f (not closed). `prefix`/`prefix_len` are bytes already consumed
 * from f by format sniffing (may be 0). A regular file is size-checked before anything is
 * allocated and read straight into the frame; a pipe or gzip stream is read as it comes.
 * v is replaced only on success. Errors (message starts with `name`):
 *   CRYO_E_TRUNCATED  header or data cut short ("header says 100x100x100 float32 (3.8 MiB)
 *                     but only 1.2 MiB of data follow")
 *   CRYO_E_FORMAT     impossible header (dims <= 0, bad axis order, NaN/Inf cell, > 1 TiB)
 *   CRYO_E_UNSUPPORTED mode other than 0, 1, 2, 6, 12
 *   CRYO_E_IO, CRYO_E_NOMEM */
int cryo_mrc_read(struct cryo_volume *v, FILE *f, const unsigned char *prefix, size_t prefix_len,
                  const char *name, struct cryo_error *err);
/* Parse a whole MRC file held in memory (`buf`, `len`), e.g. after gunzip. Same errors. */
int cryo_mrc_decode(struct cryo_volume *v, const unsigned char *buf, size_t len, const char *name,
                    struct cryo_error *err);
/* How uint8 data is written. MRC2014 defines mode 0 as signed and mrcfile, gemmi and relion
 * read it so even when IMOD's "unsigned" flag is set, so a byte above 127 would read back
 * negative everywhere but in IMOD and cryolvm. */
enum cryo_mrc_u8 {
    CRYO_MRC_U8_UINT16 = 0, /* mode 6 (uint16), the values widened: every reader agrees (default) */
    CRYO_MRC_U8_MODE0,      /* mode 0 (+ IMOD's unsigned flag) only when every value is <= 127,
                               where signed and unsigned readings agree; else CRYO_E_INVALID */
    CRYO_MRC_U8_IMOD        /* mode 0 with IMOD's unsigned flag whatever the values (IMOD only) */
};
const char *cryo_mrc_u8_name(enum cryo_mrc_u8 u); /* "uint16", "mode0", "imod" */
int cryo_mrc_u8_from_name(const char *name, enum cryo_mrc_u8 *u); /* CRYO_E_INVALID if unknown */

/* Write v (c must be 1) to f. bf16/i32 are refused with CRYO_E_UNSUPPORTED (convert first).
 * uint8 is written as mode 6 (cryo_mrc_write_u8 chooses otherwise), int8 as mode 0 with
 * IMOD's stamp and "signed" flag. A stack (nz > 1 and metadata mrc.ispg = 0, or a name ending in .mrcs)
 * gets ISPG 0 and MZ 1; a single image ISPG 0; a volume ISPG 1. The extended header is
 * written only when metadata mrc.exthdr (base64) is present and, if mrc.exthdr_shape
 * ("nx,ny,nz", set by the reader) is present, the frame still has that shape. Nothing is written when v is
 * refused (CRYO_E_INVALID, CRYO_E_UNSUPPORTED, CRYO_E_NUMERIC for non-finite apix/origin);
 * CRYO_E_IO when a write fails. */
int cryo_mrc_write(FILE *f, const struct cryo_volume *v, const char *name, struct cryo_error *err);
/* The same with the uint8 rule chosen; CRYO_E_INVALID (nothing written) for MODE0 and a value
 * above 127. */
int cryo_mrc_write_u8(FILE *f, const struct cryo_volume *v, const char *name, enum cryo_mrc_u8 u8,
                      struct cryo_error *err);
/* 1 if the header prefix looks like MRC/CCP4: "MAP " at 208, or (old files without the ID,
 * at least 224 bytes) a known mode, dimensions 1..2^24 and a valid MAPC/MAPR/MAPS in one
 * byte order; else 0. */
int cryo_mrc_sniff(const unsigned char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
