/* volume.h — the one in-memory object every tool passes around: a frame.
 *
 * A frame is a dense tensor of up to 4 dimensions, C × Z × Y × X (X fastest in memory),
 * with its physical placement and free key=value metadata:
 *   - apix[3]:   voxel size in Å along x, y, z;
 *   - origin[3]: position in Å of the centre of voxel (0,0,0) along x, y, z, i.e. voxel
 *                (i,j,k) sits at origin + (i*apix[0], j*apix[1], k*apix[2]).
 * Axis order in memory is always x fastest, then y, z, channel; readers of formats with
 * other orders (MRC mapc/mapr/maps) permute on read.
 *
 * Ownership: a struct cryo_volume owns `data` (from cryo_alloc_big) and its metadata.
 * cryo_volume_free() releases both and leaves an empty volume; it is safe on an empty one.
 */
#ifndef CRYOLVM_VOLUME_H
#define CRYOLVM_VOLUME_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_dtype {
    CRYO_DTYPE_INVALID = 0,
    CRYO_DTYPE_F32 = 1,
    CRYO_DTYPE_F16 = 2,
    CRYO_DTYPE_BF16 = 3,
    CRYO_DTYPE_U8 = 4,
    CRYO_DTYPE_I8 = 5,
    CRYO_DTYPE_I16 = 6,
    CRYO_DTYPE_U16 = 7,
    CRYO_DTYPE_I32 = 8
};
#define CRYO_DTYPE_COUNT 9

size_t cryo_dtype_size(enum cryo_dtype t);        /* 0 for INVALID */
const char *cryo_dtype_name(enum cryo_dtype t);   /* "float32", "uint8", ... */
enum cryo_dtype cryo_dtype_from_name(const char *name); /* INVALID if unknown */

/* float16 / bfloat16 <-> float32 (round to nearest even; NaN/Inf preserved). */
float cryo_f16_to_f32(uint16_t h);
uint16_t cryo_f32_to_f16(float f);
float cryo_bf16_to_f32(uint16_t h);
uint16_t cryo_f32_to_bf16(float f);

/* Ordered key=value metadata. Keys: [A-Za-z0-9_.:-]+; values: UTF-8 text without NUL.
 * Conventions (see cryolvm-stream(5)):
 *   history.N        one line per tool run, "tool-name --flags ...", N = 0,1,2,...
 *   source           file the data came from
 *   patch.origin     "i,j,k" voxel position of a crop in its source volume
 *   mrc.*            MRC header facts carried along (mrc.ispg, mrc.exttyp, mrc.exthdr as base64)
 */
struct cryo_meta {
    size_t n, cap;
    char **keys; /* owned */
    char **vals; /* owned */
};

void cryo_meta_init(struct cryo_meta *m);
void cryo_meta_free(struct cryo_meta *m);
int cryo_meta_copy(struct cryo_meta *dst, const struct cryo_meta *src, struct cryo_error *err);
/* Set (replace if present, else append). */
int cryo_meta_set(struct cryo_meta *m, const char *key, const char *val, struct cryo_error *err);
int cryo_meta_setf(struct cryo_meta *m, struct cryo_error *err, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
const char *cryo_meta_get(const struct cryo_meta *m, const char *key); /* NULL if absent */
void cryo_meta_remove(struct cryo_meta *m, const char *key);
/* Remove every key that starts with `prefix`. */
void cryo_meta_remove_prefix(struct cryo_meta *m, const char *prefix);
/* Append "history.N" = line with the next free N. */
int cryo_meta_add_history(struct cryo_meta *m, const char *line, struct cryo_error *err);
/* Number of history entries and the i-th one (NULL if out of range). */
size_t cryo_meta_history_count(const struct cryo_meta *m);
const char *cryo_meta_history(const struct cryo_meta *m, size_t i);

struct cryo_volume {
    enum cryo_dtype dtype;
    int ndim;                   /* 1..4: how many of (c, nz, ny, nx) are meaningful, from the right */
    int64_t c, nz, ny, nx;      /* shape; unused leading dims are 1 */
    double apix[3];             /* Å per voxel, x y z */
    double origin[3];           /* Å, x y z, centre of voxel (0,0,0) */
    void *data;                 /* c*nz*ny*nx elements of dtype, x fastest; owned */
    struct cryo_meta meta;
};

/* An empty volume (no data), ready to be filled or freed. */
void cryo_volume_init(struct cryo_volume *v);
void cryo_volume_free(struct cryo_volume *v);

/* Allocate data for a shape (contents uninitialised); apix = 1, origin = 0, ndim = 4 if c>1
 * else 3 (or less when leading dims are 1 and the caller sets ndim). Frees old contents. */
int cryo_volume_alloc(struct cryo_volume *v, enum cryo_dtype t, int64_t c, int64_t nz, int64_t ny,
                      int64_t nx, struct cryo_error *err);
/* Same shape/placement/metadata as `like`, new dtype, uninitialised data. */
int cryo_volume_alloc_like(struct cryo_volume *v, const struct cryo_volume *like, enum cryo_dtype t,
                           struct cryo_error *err);
/* Deep copy. */
int cryo_volume_copy(struct cryo_volume *dst, const struct cryo_volume *src, struct cryo_error *err);
/* Move src into dst (dst freed first); src left empty. */
void cryo_volume_move(struct cryo_volume *dst, struct cryo_volume *src);
/* Rotate every channel by a quarter turn about z, in place (new buffer): turns = +1 maps
 * voxel (x, y) to (y, nx-1-x), so a feature along x comes to lie along y; turns = -1 undoes
 * it; 0 does nothing. A rotation, not a mirror, so a chiral map stays chiral. nx and ny,
 * apix[0] and apix[1] swap; the origin is kept (the voxel at index (0,0,0) moves: callers that
 * need a placement set it). CRYO_E_INVALID for other turns. */
int cryo_volume_rot90_z(struct cryo_volume *v, int turns, struct cryo_error *err);

size_t cryo_volume_count(const struct cryo_volume *v);  /* elements */
size_t cryo_volume_bytes(const struct cryo_volume *v);
size_t cryo_volume_channel_count(const struct cryo_volume *v); /* nz*ny*nx */

/* Convert in place to another dtype. Float -> integer rounds to nearest and fails with
 * CRYO_E_NUMERIC if a value is NaN/Inf or out of the target's range (no silent clipping). */
int cryo_volume_convert(struct cryo_volume *v, enum cryo_dtype t, struct cryo_error *err);
/* CRYO_E_NUMERIC naming the first NaN/Inf voxel (x,y,z,c) if any; `what` names the data. */
int cryo_volume_check_finite(const struct cryo_volume *v, const char *what, struct cryo_error *err);

/* Statistics over all elements, computed in double. */
struct cryo_stats { double min, max, mean, rms, std; size_t n_nonfinite; };
void cryo_volume_stats(const struct cryo_volume *v, struct cryo_stats *s);

/* Element i as double, whatever the dtype. */
double cryo_volume_get(const struct cryo_volume *v, size_t i);
/* Store x as element i of `data` of dtype t: a plain C cast (integers truncate and must be
 * in range; callers round and check with cryo_dtype_range first). */
void cryo_dtype_put(void *data, enum cryo_dtype t, size_t i, double x);
/* The finite range a dtype can hold (float16 ±65504, bfloat16 ±3.39e38, float32 ±Inf). */
void cryo_dtype_range(enum cryo_dtype t, double *lo, double *hi);

#ifdef __cplusplus
}
#endif
#endif
