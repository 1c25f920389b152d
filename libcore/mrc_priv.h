/* mrc_priv.h — the decoded MRC2014 header shared by mrc.c, mrc_read.c and mrc_write.c
 * (libcore internal). Field names follow the MRC2014 paper (Cheng et al. 2015). */
#ifndef CRYOLVM_MRC_PRIV_H
#define CRYOLVM_MRC_PRIV_H

#include <stdint.h>
#include "cryolvm/mrc.h"

#define MRC_HEADER_BYTES 1024
#define MRC_IMOD_STAMP 1146047817 /* "IMOD" as a little-endian int32 at byte 152 */
/* Extended headers up to this size are kept (base64) in mrc.exthdr; larger ones are skipped. */
#define MRC_EXTHDR_KEEP_MAX ((size_t)1 << 20)
/* Refuse headers that claim more than this much data (1 TiB): no real map is that big. */
#define MRC_MAX_DATA_BYTES ((uint64_t)1 << 40)

struct mrc_header {
    /* raw words, already in host byte order */
    int32_t n[3];        /* NX NY NZ: columns, rows, sections (file order) */
    int32_t mode;
    int32_t nstart[3];   /* NXSTART NYSTART NZSTART (column, row, section) */
    int32_t m[3];        /* MX MY MZ: sampling along X, Y, Z */
    float cella[3];      /* Å, along X, Y, Z */
    float cellb[3];      /* degrees */
    int32_t map[3];      /* MAPC MAPR MAPS */
    float dmin, dmax, dmean;
    int32_t ispg, nsymbt;
    char exttyp[5];
    int32_t nversion;
    int32_t imod_stamp, imod_flags;
    float origin[3];     /* ORIGIN words, Å, X Y Z */
    int has_map_id;      /* "MAP " at 208 */
    unsigned char machst[4];
    float rms;
    int32_t nlabl;
    char labels[10][81];
    int big_endian;      /* file byte order */
    /* derived by mrc_header_parse */
    enum cryo_dtype dtype;
    int file_axis[3];    /* spatial axis (0=x,1=y,2=z) of the column, row, section file axis */
    int64_t dim[3];      /* nx ny nz in x,y,z order */
    double apix[3];
    double origin_xyz[3];
    int origin_from;     /* 0 = ORIGIN words, 1 = NSTART * voxel size, 2 = zero */
    size_t esize;
    uint64_t data_bytes;
};

/* Decode and check a 1024-byte header; name is used in messages. */
int mrc_header_parse(struct mrc_header *h, const unsigned char *buf, const char *name,
                     struct cryo_error *err);
/* Shape, placement and metadata (mrc.*, labels as history) of h into v (data untouched). */
int mrc_header_to_volume(const struct mrc_header *h, struct cryo_volume *v, struct cryo_error *err);
/* "3.8 MiB" style size text into buf. */
void mrc_format_bytes(uint64_t n, char *buf, size_t len);

/* cryo_mrc_read with what is known of the source's length (prefix included): `total` its
 * exact length (memory), `total_max` an upper bound (gzip from a file), each -1 if unknown.
 * A claim beyond either is refused before allocation. */
int mrc_read_sized(struct cryo_volume *v, FILE *f, const unsigned char *prefix, size_t prefix_len,
                   int64_t total, int64_t total_max, const char *name, struct cryo_error *err);

/* base64 (RFC 4648, with padding). encode returns a malloc'd string; decode a malloc'd buffer. */
char *cryo_base64_encode(const unsigned char *data, size_t n, struct cryo_error *err);
int cryo_base64_decode(const char *text, unsigned char **out, size_t *n, struct cryo_error *err);

#endif
