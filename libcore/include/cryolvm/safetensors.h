/* safetensors.h — read and write the safetensors weight format (the format PyTorch,
 * Hugging Face and numpy users exchange tensors in).
 *
 * Layout (https://github.com/huggingface/safetensors, format section):
 *   8 bytes   N, unsigned little-endian: length of the JSON header
 *   N bytes   JSON object { "name": {"dtype": "F32", "shape": [d0, d1, ...],
 *                                   "data_offsets": [begin, end]}, ...,
 *                           "__metadata__": {"key": "value", ...} }   (strings only)
 *             padded with spaces so that 8 + N is a multiple of 8
 *   rest      the data: tensors little-endian, row-major, at [begin, end) relative to the
 *             start of the data section; the tensors cover it exactly, without holes or overlap.
 * Names are PyTorch state_dict names ("enc.0.blocks.1.conv1.weight").
 *
 * Reading validates everything a lying header can get wrong: header length beyond the file
 * or above 100 MB, non-JSON or duplicate keys, unknown dtype, negative or overflowing shapes,
 * offsets out of range, overlapping, leaving holes or not matching dtype × shape. Each problem
 * is one CRYO_E_FORMAT message naming the file and the tensor.
 *
 * Writing is atomic: a temporary file next to the target, fsync, rename. Tensors are written
 * in the order they were added.
 *
 * Ownership: a struct cryo_safetensors owns its tensor table, names, metadata and (after a
 * read) the data blob the tensors point into. Tensors added for writing borrow the caller's
 * data, which must stay valid until cryo_safetensors_write() returns.
 */
#ifndef CRYOLVM_SAFETENSORS_H
#define CRYOLVM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_st_dtype {
    CRYO_ST_INVALID = 0,
    CRYO_ST_BOOL, CRYO_ST_U8, CRYO_ST_I8, CRYO_ST_U16, CRYO_ST_I16, CRYO_ST_F16, CRYO_ST_BF16,
    CRYO_ST_U32, CRYO_ST_I32, CRYO_ST_F32, CRYO_ST_U64, CRYO_ST_I64, CRYO_ST_F64
};

size_t cryo_st_dtype_size(enum cryo_st_dtype t);          /* bytes; 0 for INVALID */
const char *cryo_st_dtype_name(enum cryo_st_dtype t);     /* "F32", ... */
enum cryo_st_dtype cryo_st_dtype_from_name(const char *s); /* INVALID if unknown */

#define CRYO_ST_MAX_DIMS 8

struct cryo_st_tensor {
    char *name;                      /* owned */
    enum cryo_st_dtype dtype;
    int ndim;                        /* 0 (scalar) .. CRYO_ST_MAX_DIMS */
    int64_t shape[CRYO_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;                /* into the file's blob (read) or borrowed (write) */
};

struct cryo_safetensors {
    size_t n, cap;
    struct cryo_st_tensor *t;        /* owned table */
    struct cryo_meta meta;           /* __metadata__ */
    void *blob;                      /* owned data section after a read, else NULL */
    char *name;                      /* file name for messages, owned */
};

/* An empty set, for writing. */
int cryo_safetensors_create(struct cryo_safetensors **st, struct cryo_error *err);
void cryo_safetensors_free(struct cryo_safetensors *st); /* NULL is a no-op */

/* Read and validate a file (see above). CRYO_E_IO, CRYO_E_FORMAT, CRYO_E_TRUNCATED, CRYO_E_NOMEM. */
int cryo_safetensors_read(struct cryo_safetensors **st, const char *path, struct cryo_error *err);
/* Parse a complete file image already in memory (copied); `name` is used in messages. */
int cryo_safetensors_parse(struct cryo_safetensors **st, const void *buf, size_t len,
                           const char *name, struct cryo_error *err);

/* Add a tensor (data borrowed). CRYO_E_INVALID for a duplicate or empty name, a name
 * starting "__", a bad dtype or shape. */
int cryo_safetensors_add(struct cryo_safetensors *st, const char *name, enum cryo_st_dtype dtype,
                         int ndim, const int64_t *shape, const void *data, struct cryo_error *err);

/* NULL if absent. */
const struct cryo_st_tensor *cryo_safetensors_find(const struct cryo_safetensors *st,
                                                   const char *name);
/* Find a float32 tensor with exactly this shape; CRYO_E_FORMAT naming the file and tensor
 * when missing, of another dtype or shape. */
int cryo_safetensors_get_f32(const struct cryo_safetensors *st, const char *name, int ndim,
                             const int64_t *shape, const float **data, struct cryo_error *err);
/* Copy a tensor with exactly this shape into dst (float32, numel elements), widening float16
 * and bfloat16 storage (lean exported weights); CRYO_E_FORMAT as above, or for other dtypes. */
/* What cryo_safetensors_copy_f32 would accept (present, F32/F16/BF16, that shape), without
 * copying: for checking a weights file against a config before building a network. */
int cryo_safetensors_check_float(const struct cryo_safetensors *st, const char *name, int ndim,
                                 const int64_t *shape, struct cryo_error *err);
int cryo_safetensors_copy_f32(const struct cryo_safetensors *st, const char *name, int ndim,
                              const int64_t *shape, float *dst, struct cryo_error *err);

/* Write through outfile.h (a file: temp + fsync + rename; a link: its target; a device or
 * FIFO: in place, all at the end). CRYO_E_IO. */
int cryo_safetensors_write(const struct cryo_safetensors *st, const char *path,
                           struct cryo_error *err);

/* Number of elements of a tensor (product of its shape). */
size_t cryo_st_tensor_count(const struct cryo_st_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
