/* loader_priv.h — what the loader's files (loader.c, loader_prepare.c, loader_prefetch.c)
 * share. Not installed. */
#ifndef CRYOLVM_LOADER_PRIV_H
#define CRYOLVM_LOADER_PRIV_H

#include <pthread.h>
#include <stdint.h>
#include "cryolvm/loader.h"
#include "cryolvm/resample.h"

/* A float32 little-endian MRC (axis order 1 2 3) whose voxels a crop reads with pread. */
struct loader_file {
    char *path;      /* owned */
    int64_t n[3];    /* nx, ny, nz */
    double apix[3];  /* voxel size */
    int64_t offset;  /* byte offset of voxel (0,0,0) */
};

/* One map of the corpus: one file per channel. */
struct loader_map {
    char *name;                 /* owned; "path" or "path[f]" */
    struct loader_file ch[2];   /* channels of the loader */
};

struct loader_prefetch;

struct cryo_loader {
    struct cryo_loader_opts o;
    char *cache_dir;            /* owned */
    int own_cache;              /* 1: private temporary folder, removed at free */
    struct loader_map *maps;    /* owned, nmaps */
    size_t nmaps, cap;
    double *cum;                /* cum[i] = volume of maps 0..i (prepared voxels) */
    pthread_mutex_t stats_mu;
    struct cryo_loader_stats stats;
    struct loader_prefetch *pf; /* NULL when prefetch = 0 */
    struct cryo_resampler *resampler; /* only while opening */
};

/* Read the header of a float32 little-endian MRC with axis order 1 2 3 and check that the
 * file holds all its voxels. Returns 1 (and fills f, path not set) if usable, 0 if the
 * file is another kind of MRC or not MRC, < 0 on an I/O error. */
int loader_probe_f32_mrc(const char *path, struct loader_file *f, struct cryo_error *err);

/* Prepare every frame of one source once (or find its valid cache entries) and return the
 * files crops are read from: *files (owned by the caller, release each, then free) holds
 * frame_channels files per frame, frame f channel c at f * frame_channels + c. Frames must
 * have exactly frame_channels channels. */
int loader_prepare_source(struct cryo_loader *l, const char *path, int frame_channels,
                          struct loader_file **files, size_t *nfiles, struct cryo_error *err);
void loader_file_release(struct loader_file *f);

/* The private temporary cache folder, or the user's (created if missing). */
int loader_cache_init(struct cryo_loader *l, struct cryo_error *err);
void loader_cache_cleanup(struct cryo_loader *l);

/* Crop k of the loader into out (size³ × channels); adds to the redraw counter. */
int loader_make_crop(struct cryo_loader *l, uint64_t k, float *out, struct cryo_error *err);

int loader_prefetch_start(struct cryo_loader *l, struct cryo_error *err);
void loader_prefetch_stop(struct cryo_loader *l);
/* n crops from k through the queue. */
int loader_prefetch_batch(struct cryo_loader *l, uint64_t k, int n, float *out, struct cryo_error *err);

double loader_now(void); /* monotonic seconds */

#endif
