/* mrc.h — MRC2014 / CCP4 maps.
 *
 * Read: modes 0 (int8, or uint8 when IMOD's imodFlags bit 0 says so... see mrc.c), 1, 2, 6,
 * 12; any mapc/mapr/maps permutation (resolved to x,y,z memory order); both byte orders
 * (machine stamp); extended header skipped (kept as metadata mrc.exthdr/mrc.exttyp);
 * labels become history entries; .gz input. The physical origin follows the rule in mrc.c's
 * top comment (ORIGIN words, else NXSTART*apix ...).
 * Write: mode from the dtype (f32->2, i16->1, u16->6, f16->12, i8/u8->0), axis order 1 2 3,
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

/* Parse a whole MRC file held in memory (`buf`, `len`), e.g. after gunzip. */
int cryo_mrc_decode(struct cryo_volume *v, const unsigned char *buf, size_t len, const char *name,
                    struct cryo_error *err);
/* Write v (c must be 1) to f. bf16/i32 are refused with CRYO_E_UNSUPPORTED (convert first). */
int cryo_mrc_write(FILE *f, const struct cryo_volume *v, const char *name, struct cryo_error *err);
/* 1 if the 1024-byte header prefix looks like MRC/CCP4 ("MAP " at 208), else 0. */
int cryo_mrc_sniff(const unsigned char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
