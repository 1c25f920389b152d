/* loader.h — random training crops from a corpus of maps bigger than memory (jepa-train).
 *
 * Corpus. cryo_loader_open takes paths to MRC (.gz ok), TIFF or stream files; every frame
 * of a stream is a map of its own. The loader never holds the corpus in memory: when it
 * opens, each map is read once (one at a time), prepared, and written to the cache folder as
 * an uncompressed little-endian float32 MRC (mode 2, axis order 1 2 3, no extended header)
 * that crops are later read from with pread of the rows they need. Preparation is therefore
 * done once per map, eagerly at open (so the map volumes needed for sampling are known and
 * a broken input fails at open, not hours into training), never per crop.
 *
 * Preparation, with the existing libcore code: Fourier resampling to apix Å
 * (resample.h, box n' = round(n a / apix), as mrc-resample --apix), then the 0.01/0.99
 * quantile clip to [0, 1] of every channel (normalize.h, as mrc-normalize). A step is
 * skipped when the input says it is done: resampling when resample.apix_requested
 * (mrc-resample's record) or the voxel size equals apix within 1e-3 relative; normalisation
 * when normalize.mode = quantile and normalize.quantiles = 0.01,0.99 and the map was not
 * resampled here (a resampled map is normalised again). apix = 0 keeps every voxel size;
 * normalize = 0 skips the normalisation. An uncompressed float32 MRC (axis order 1 2 3,
 * little-endian) that needs no step is read in place, without a cache copy.
 *
 * Cache. An entry is named by a 64-bit FNV-1a hash of (absolute path, file size, mtime in
 * ns, frame index, channel, apix, normalize, format version): "<16 hex digits>.mrc". An
 * entry whose header and file size are consistent is reused across runs; entries are
 * created as a temporary file in the same folder and renamed into place, so two processes
 * preparing the same map at once both end with one valid file. cache_dir = NULL makes a
 * private temporary folder (under $TMPDIR, else /tmp) removed by cryo_loader_free; a given
 * cache_dir is created if missing and never cleaned (delete it by hand when inputs change
 * in ways size and mtime do not show).
 *
 * Sampling. Crop k is a pure function of (seed, k, corpus, options), whatever the thread
 * and prefetch settings: the generator of patch.h (splitmix64) starts from
 * cryo_patch_rng_seed(seed, k) and draws, in this order:
 *   1. the map, with probability proportional to its prepared volume nx ny nz (every voxel of
 *      the corpus equally likely to be covered; uniform over maps would over-sample small
 *      maps): u in [0,1) from the top 53 bits, map = first i with u V < cumulative volume;
 *   2. one draw u per axis, x then y then z: start = floor(u (n - size + 1)) (as
 *      cryo_patch_random_start); an axis shorter than the crop still takes its draw but is
 *      zero-padded with the map centred, start = floor((n - size) / 2) (such maps are used,
 *      not skipped, so no warning is needed);
 *   3. if min_density > 0 and the crop's mean (target channel for pairs; after
 *      normalisation, so in [0, 1]) is below it, steps 1-2 again, at most max_redraw times,
 *      then the last draw is kept (vol-patch --min-density counts voxels above a threshold
 *      instead; a mean needs no second parameter);
 *   4. if rotate, r = floor(24 u), rotation r of cuberot.h (the 24 proper rotations); if
 *      flip, one more draw, mirror (x -> size-1-x, after the rotation) when u < 1/2.
 *
 * Layout. out holds size³ × channels floats, channel fastest: out[((z size + y) size + x)
 * channels + c] (NDHWC with N = 1). For pairs channel 0 is the input, 1 the target.
 *
 * Prefetch. prefetch > 0 starts one pthread that computes crops ahead into a bounded queue of
 * that many crops, assuming sequential use: after cryo_loader_batch(k, n) it works on
 * k + n, k + n + 1, ... A batch at another k drops the queue and restarts there. An error
 * met by the thread is returned by the call that asks for that crop (the thread stops until
 * then). cryo_loader_free stops and joins the thread. cryo_loader_get never uses the queue.
 *
 * Errors (messages name the file): CRYO_E_INVALID (options, a pair on different grids, a
 * frame with another number of channels than o->channels, "-" or another non-regular file:
 * standard input is the tool's business), CRYO_E_IO (cache folder, reads), CRYO_E_NUMERIC
 * (NaN/Inf in a map, or a flat map that cannot be normalised), the errors of volio.h and
 * resample.h for the inputs, and CRYO_E_IO/CRYO_E_TRUNCATED from get/batch for a cache file
 * that changed under the loader. Nothing is printed. A failed open sets *l = NULL and frees
 * everything (entries already written to a given cache_dir stay, valid, for the next run).
 */
#ifndef CRYOLVM_LOADER_H
#define CRYOLVM_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_loader_opts {
    int size;            /* crop edge in voxels, a multiple of 8 (48) */
    int channels;        /* 1: single maps; 2: pairs (input, target) on one grid */
    double min_density;  /* redraw a crop whose mean (of the target channel for pairs) is below
                          * this, as vol-patch --min-density; 0 = off */
    int max_redraw;      /* 20: then take the last draw */
    int rotate;          /* 1: each crop gets one of the 24 proper rotations of the cube */
    int flip;            /* 1: and a mirror with probability 1/2 */
    double apix;         /* prepare: resample to this voxel size (1.0); 0 = keep */
    int normalize;       /* prepare: 0.01/0.99 quantile clip to [0,1], once per map (1) */
    const char *cache_dir; /* prepared maps are kept here as uncompressed float32 files that
                          * crops are read from (mmap/pread); NULL = a private temp dir
                          * removed by cryo_loader_free */
    int prefetch;        /* crops the background thread keeps ready (0 = synchronous) */
    uint64_t seed;
    /* Data-parallel ranks (jepa-train under MPI): with shard_ranks K > 1, this loader's crop
     * j is crop (j / b)·K·b + shard_rank·b + j mod b of the unsharded loader, b = shard_block
     * (the rank's share of a global batch of K·b). Rank r then asks for j = step·b, ... and
     * its prefetch runs ahead on its own crops. 0 or 1 = off. */
    int shard_ranks, shard_rank, shard_block;
};
/* size 48, channels 1, min_density 0, max_redraw 20, rotate 1, flip 0, apix 1.0,
 * normalize 1, cache_dir NULL, prefetch 8, seed 0, no sharding. */
void cryo_loader_opts_default(struct cryo_loader_opts *o);

struct cryo_loader;

/* Single maps: paths are MRC (.gz ok), TIFF or stream files (every frame a map).
 * With o->channels == 2 the frames must be 2-channel (vol-degrade --pair streams). */
int cryo_loader_open(struct cryo_loader **l, const char *const *paths, size_t n,
                     const struct cryo_loader_opts *o, struct cryo_error *err);
/* Pairs: paths[2i] input, paths[2i+1] target, same grid (else CRYO_E_INVALID naming both);
 * each file holds one map (or a stream whose frames pair up one to one). Each is prepared on
 * its own (its own quantiles). o->channels must be 2.
 * 2-channel stream frames (vol-degrade --pair) are given to cryo_loader_open instead. */
int cryo_loader_open_pairs(struct cryo_loader **l, const char *const *paths, size_t npairs,
                           const struct cryo_loader_opts *o, struct cryo_error *err);
/* Crop number k (k = 0, 1, 2, ...) is a pure function of (seed, k, corpus, options): map,
 * position, rotation, flip, redraws. out: size³ × channels floats, channel fastest (NDHWC with
 * N = 1). Thread-safe. This is what makes resume and multi-rank sharding exact. */
int cryo_loader_get(struct cryo_loader *l, uint64_t k, float *out, struct cryo_error *err);
/* n crops k, k+1, ..., k+n−1 into out (n × size³ × channels); served from the prefetch
 * queue when the thread has them ready (it assumes sequential use: after a batch at k it
 * works on k+n...). Same values as cryo_loader_get. Not for concurrent calls on one loader. */
int cryo_loader_batch(struct cryo_loader *l, uint64_t k, int n, float *out, struct cryo_error *err);
size_t cryo_loader_maps(const struct cryo_loader *l);           /* maps (or pairs) */
/* The path of map i ("path[f]" for frame f of a stream of several frames; the input's for a
 * pair); NULL if i is out of range. */
const char *cryo_loader_map_name(const struct cryo_loader *l, size_t i);
/* statistics for logs: crops served, redraws, seconds the caller waited */
struct cryo_loader_stats { uint64_t crops, redraws; double wait_s, work_s; };
/* crops: crops handed to the caller; redraws: density redraws of all crops made (also those
 * prefetched); wait_s: seconds callers spent in get/batch; work_s: seconds spent making crops
 * (any thread). */
void cryo_loader_stats(const struct cryo_loader *l, struct cryo_loader_stats *s);
void cryo_loader_free(struct cryo_loader *l); /* NULL ok */

/* Read a list file: one path per line, '#' starts a comment (to the end of the line), blank
 * lines and surrounding blanks ignored; a relative path is taken relative to the list file's
 * folder. *paths (an array of *n strings) is owned by the caller: cryo_loader_free_list.
 * CRYO_E_IO if unreadable, CRYO_E_INVALID if it names no path (message names the list). */
int cryo_loader_read_list(const char *path, char ***paths, size_t *n, struct cryo_error *err);
void cryo_loader_free_list(char **paths, size_t n); /* NULL ok */

#ifdef __cplusplus
}
#endif
#endif
