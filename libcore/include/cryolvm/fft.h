/* fft.h — shared, cached FFTW3 single-precision 3-D transforms of real volumes.
 *
 * Why not fftwf_plan_dft_r2c_3d: on this machine an FFTW_ESTIMATE 3-D plan of 256^3 runs
 * 4-5x slower than an FFTW_MEASURE one, and measuring the 3-D plan costs ~3 s, more than a
 * whole tool run. Here a 3-D transform is a 2-D r2c per z plane (FFTW_ESTIMATE plans are
 * as fast as measured ones for these) followed by 1-D transforms along z on lines gathered
 * contiguous, where FFTW_ESTIMATE is good too (strided in place it needed FFTW_MEASURE,
 * 0.1 s of planning for 256^3). Planning is ~2 ms; a 256^3 r2c runs in ~40 ms on 2 threads
 * (FFTW's measured best 3-D plan: ~28 ms).
 * Planes and z-line batches are spread over OpenMP threads (FFTW execution is thread-safe;
 * planning is serialised by a mutex). Plans are cached per shape for the life of the
 * process, so a tool that transforms many volumes of one shape plans once.
 *
 * Layout: real input X fastest (nx, ny, nz); the half spectrum is nz x ny x (nx/2+1)
 * complex values (interleaved re, im floats), the layout of fftwf_plan_dft_r2c_3d(nz, ny, nx).
 * Transforms are unnormalised (forward then inverse multiplies by nx*ny*nz).
 *
 * Ownership: plans belong to the cache (never free them); buffers belong to the caller.
 * Spectrum buffers must be 16-byte aligned (cryo_alloc_big gives 64); real buffers may have
 * any float alignment (slower when unaligned).
 * Errors: CRYO_E_INVALID (size < 1 or too large, unaligned spectrum), CRYO_E_NOMEM (FFTW
 * could not plan, or the scratch could not be allocated).
 */
#ifndef CRYOLVM_FFT_H
#define CRYOLVM_FFT_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_fft3;

/* Plans for a real volume of nx x ny x nz (from the cache, or made and cached now). */
int cryo_fft3_get(const struct cryo_fft3 **plan, int64_t nx, int64_t ny, int64_t nz, struct cryo_error *err);

/* Complex elements of the half spectrum: nz * ny * (nx/2+1). */
size_t cryo_fft3_complex_count(const struct cryo_fft3 *plan);

/* out[2*complex_count] = DFT(in); in is not modified. */
int cryo_fft3_forward(const struct cryo_fft3 *plan, const float *in, float *out, struct cryo_error *err);
/* out[nx*ny*nz] = unnormalised inverse DFT of the half spectrum `in`, which is destroyed. */
int cryo_fft3_inverse(const struct cryo_fft3 *plan, float *in, float *out, struct cryo_error *err);

/* Drop every cached plan (tests; tools need not call it). */
void cryo_fft_cache_clear(void);

#ifdef __cplusplus
}
#endif
#endif
