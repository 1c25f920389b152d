/* mem.h — allocation helpers: overflow-checked sizes and large aligned buffers.
 *
 * Why: on this class of machine first touch of fresh 4 KiB pages runs at ~0.3 GB/s, with
 * huge pages at ~10 GB/s (see bench/README.md). Large buffers (volumes, activations, arenas)
 * therefore come from cryo_alloc_big(), which aligns to 2 MiB and asks for transparent huge
 * pages. Every `n * size` in libcore goes through cryo_mul_size() or cryo_alloc_array().
 */
#ifndef CRYOLVM_MEM_H
#define CRYOLVM_MEM_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *out = a * b; returns CRYO_E_NOMEM (with a message) on overflow. */
int cryo_mul_size(size_t a, size_t b, size_t *out, struct cryo_error *err);

/* Number of elements of a C×Z×Y×X shape, checked for overflow and negative dims. */
int cryo_count4(int64_t c, int64_t nz, int64_t ny, int64_t nx, size_t *out, struct cryo_error *err);

/* Zero-initialised; NULL + CRYO_E_NOMEM recorded on failure or overflow. free() it. */
void *cryo_alloc_array(size_t n, size_t size, struct cryo_error *err);

/* 64-byte aligned (2 MiB aligned and MADV_HUGEPAGE when >= 4 MiB), NOT initialised.
 * Release with cryo_free_big(). */
void *cryo_alloc_big(size_t bytes, struct cryo_error *err);
void cryo_free_big(void *p);

/* strdup that records CRYO_E_NOMEM. */
char *cryo_strdup(const char *s, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
