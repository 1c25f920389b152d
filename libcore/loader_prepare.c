/* loader_prepare.c — each map of the corpus prepared once into the cache (loader.h).
 *
 * A source file's frames become cache entries "<hash>.mrc" (float32 MRC, one per frame and
 * channel), and once all of them are written, a manifest "<hash>.frames" saying how many
 * frames the source had. A later run that finds the manifest and valid entries does not
 * read the source at all. Every file is written beside its name and renamed into place
 * (volio's sinks for the maps), so a reader never sees half an entry, and two processes
 * preparing the same map at once each rename a complete file over the other's.
 */
#include "loader_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cryolvm/mem.h"
#include "cryolvm/normalize.h"
#include "cryolvm/resample.h"
#include "cryolvm/volio.h"
#include "mrc_priv.h"

/* Bump when the preparation changes, so old cache entries are not reused. */
#define LOADER_CACHE_VERSION 1
#define APIX_TOL 1e-3

static uint64_t fnv1a64(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ull;
    }
    return h;
}
#define FNV_OFFSET 0xCBF29CE484222325ull

void loader_file_release(struct loader_file *f)
{
    free(f->path);
    f->path = NULL;
}

int loader_probe_f32_mrc(const char *path, struct loader_file *f, struct cryo_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(errno));
    unsigned char buf[MRC_HEADER_BYTES];
    struct stat st;
    ssize_t got = pread(fd, buf, sizeof buf, 0);
    int ok = got == (ssize_t)sizeof buf && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok || !cryo_mrc_sniff(buf, sizeof buf))
        return 0;
    struct mrc_header h;
    if (mrc_header_parse(&h, buf, path, NULL) != CRYO_OK)
        return 0;
    const uint16_t one = 1;
    int host_le = *(const unsigned char *)&one == 1;
    if (h.dtype != CRYO_DTYPE_F32 || h.big_endian || !host_le || h.file_axis[0] != 0 || h.file_axis[1] != 1 ||
        h.file_axis[2] != 2 || h.nsymbt < 0)
        return 0;
    int64_t offset = MRC_HEADER_BYTES + (int64_t)h.nsymbt;
    if ((uint64_t)st.st_size < (uint64_t)offset + h.data_bytes)
        return 0;
    for (int d = 0; d < 3; d++)
        f->n[d] = h.dim[d];
    for (int d = 0; d < 3; d++)
        f->apix[d] = h.apix[d];
    f->offset = offset;
    return 1;
}

/* ---- the cache folder -------------------------------------------------------------- */

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            int r = mkdir(path, 0777);
            *p = '/';
            if (r != 0 && errno != EEXIST)
                return -1;
        }
    return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int loader_cache_init(struct cryo_loader *l, struct cryo_error *err)
{
    if (!l->o.cache_dir) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp)
            tmp = "/tmp";
        size_t len = strlen(tmp) + 32;
        if (!(l->cache_dir = malloc(len)))
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        snprintf(l->cache_dir, len, "%s/cryo-loader-XXXXXX", tmp);
        if (!mkdtemp(l->cache_dir))
            return cryo_fail(err, CRYO_E_IO, "%s: cannot make a temporary cache folder: %s", tmp, strerror(errno));
        l->own_cache = 1;
        return CRYO_OK;
    }
    if (!*l->o.cache_dir)
        return cryo_fail(err, CRYO_E_INVALID, "cache folder: empty name");
    if (!(l->cache_dir = cryo_strdup(l->o.cache_dir, err)))
        return CRYO_E_NOMEM;
    struct stat st;
    if (mkdir_p(l->cache_dir) != 0 || stat(l->cache_dir, &st) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: cannot make the cache folder: %s", l->cache_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cryo_fail(err, CRYO_E_IO, "%s: cache folder is not a folder", l->cache_dir);
    if (access(l->cache_dir, W_OK | X_OK) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: cache folder is not writable: %s", l->cache_dir, strerror(errno));
    return CRYO_OK;
}

void loader_cache_cleanup(struct cryo_loader *l)
{
    if (!l->own_cache || !l->cache_dir)
        return;
    DIR *d = opendir(l->cache_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(l->cache_dir);
}

/* ---- one source ---------------------------------------------------------------------- */

struct source_key {
    char *abs;      /* realpath of the source */
    uint64_t hash;  /* of (path, size, mtime, options, version) */
};

static int source_key_make(const struct cryo_loader *l, const char *path, struct source_key *k,
                           struct cryo_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return cryo_fail(err, CRYO_E_INVALID, "%s: not a regular file (the loader reads maps from files)", path);
    if (!(k->abs = realpath(path, NULL)))
        return cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(errno));
    char buf[256];
    snprintf(buf, sizeof buf, "\n%lld\n%lld.%09ld\n%.17g\n%d\n%d", (long long)st.st_size,
             (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, l->o.apix, l->o.normalize,
             LOADER_CACHE_VERSION);
    k->hash = fnv1a64(buf, fnv1a64(k->abs, FNV_OFFSET));
    return CRYO_OK;
}

static char *cache_path(const struct cryo_loader *l, uint64_t hash, const char *ext, struct cryo_error *err)
{
    size_t len = strlen(l->cache_dir) + 40;
    char *p = malloc(len);
    if (!p) {
        cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, len, "%s/%016llx.%s", l->cache_dir, (unsigned long long)hash, ext);
    return p;
}

static char *entry_path(const struct cryo_loader *l, const struct source_key *k, size_t frame, int ch,
                        struct cryo_error *err)
{
    char buf[64];
    snprintf(buf, sizeof buf, "frame %zu channel %d", frame, ch);
    return cache_path(l, fnv1a64(buf, k->hash), "mrc", err);
}

/* Frame count from a manifest, or 0 if there is none or it does not fit. */
static size_t manifest_read(const char *path, int channels)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned version = 0, ch = 0;
    unsigned long long frames = 0;
    int got = fscanf(f, "cryolvm-loader-cache %u frames %llu channels %u", &version, &frames, &ch);
    fclose(f);
    if (got != 3 || version != LOADER_CACHE_VERSION || ch != (unsigned)channels || frames > ((size_t)1 << 40))
        return 0;
    return (size_t)frames;
}

static int manifest_write(const char *path, size_t frames, int channels, struct cryo_error *err)
{
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (!tmp)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    int st = CRYO_OK;
    if (fd < 0) {
        st = cryo_fail(err, CRYO_E_IO, "%s: %s", tmp, strerror(errno));
    } else {
        char text[128];
        int n = snprintf(text, sizeof text, "cryolvm-loader-cache %d frames %zu channels %d\n", LOADER_CACHE_VERSION,
                         frames, channels);
        if (write(fd, text, (size_t)n) != n || fchmod(fd, 0644) != 0)
            st = cryo_fail(err, CRYO_E_IO, "%s: %s", tmp, strerror(errno));
        if (close(fd) != 0 && st == CRYO_OK)
            st = cryo_fail(err, CRYO_E_IO, "%s: %s", tmp, strerror(errno));
        if (st == CRYO_OK && rename(tmp, path) != 0)
            st = cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(errno));
        if (st != CRYO_OK)
            unlink(tmp);
    }
    free(tmp);
    return st;
}

static int apix_is(const double a[3], double want)
{
    for (int d = 0; d < 3; d++)
        if (!(fabs(a[d] - want) <= APIX_TOL * want))
            return 0;
    return 1;
}

/* Already at the voxel size: the grid says so, or mrc-resample recorded that it was asked. */
static int resample_done(const struct cryo_volume *v, double apix)
{
    if (apix_is(v->apix, apix))
        return 1;
    const char *req = cryo_meta_get(&v->meta, "resample.apix_requested");
    double a[3];
    return req && sscanf(req, "%lf,%lf,%lf", &a[0], &a[1], &a[2]) == 3 && apix_is(a, apix);
}

static int normalize_done(const struct cryo_volume *v)
{
    const char *mode = cryo_meta_get(&v->meta, "normalize.mode");
    const char *q = cryo_meta_get(&v->meta, "normalize.quantiles");
    double lo, hi;
    return mode && strcmp(mode, "quantile") == 0 && q && sscanf(q, "%lf,%lf", &lo, &hi) == 2 &&
           fabs(lo - 0.01) < 1e-12 && fabs(hi - 0.99) < 1e-12;
}

/* Make sure a failure's message names the map. */
static int named(int st, const char *what, struct cryo_error *err)
{
    if (st < 0 && err && strncmp(err->msg, what, strlen(what)) != 0)
        cryo_error_prefix(err, what);
    return st;
}

/* Resample and normalise v in place as the options ask; `what` names it. */
static int prepare_frame(struct cryo_loader *l, struct cryo_volume *v, const char *what, struct cryo_error *err)
{
    CRYO_TRY(named(cryo_volume_convert(v, CRYO_DTYPE_F32, err), what, err));
    CRYO_TRY(cryo_volume_check_finite(v, what, err));
    int resampled = 0;
    if (l->o.apix > 0 && !resample_done(v, l->o.apix)) {
        const double a[3] = {l->o.apix, l->o.apix, l->o.apix};
        int64_t box[3];
        struct cryo_volume out;
        cryo_volume_init(&out);
        int st = cryo_resample_box_for_apix(v, a, box, err);
        if (st == CRYO_OK)
            st = cryo_resample(&out, v, box, NULL, CRYO_RESAMPLE_FOURIER, l->resampler, err);
        if (st != CRYO_OK) {
            cryo_volume_free(&out);
            return named(st, what, err);
        }
        cryo_volume_move(v, &out);
        resampled = 1;
    }
    if (l->o.normalize && (resampled || !normalize_done(v))) {
        struct cryo_normalize_opts no;
        cryo_normalize_opts_default(&no);
        CRYO_TRY(named(cryo_normalize_volume(v, &no, what, err), what, err));
    }
    cryo_meta_remove_prefix(&v->meta, "mrc.");
    return CRYO_OK;
}

/* Channel ch of v to an MRC at path (atomically), then probe it back. A one-channel frame
 * is written as it is (no copy: preparation's peak memory is that of the largest map). */
static int write_entry(const struct cryo_volume *v, int64_t ch, const char *path, struct loader_file *f,
                       struct cryo_error *err)
{
    struct cryo_volume c;
    cryo_volume_init(&c);
    int st = v->c == 1 ? CRYO_OK : cryo_volume_alloc(&c, CRYO_DTYPE_F32, 1, v->nz, v->ny, v->nx, err);
    if (st == CRYO_OK && v->c > 1) {
        size_t n = cryo_volume_channel_count(v);
        memcpy(c.data, (const float *)v->data + (size_t)ch * n, n * sizeof(float));
        memcpy(c.apix, v->apix, sizeof c.apix);
        memcpy(c.origin, v->origin, sizeof c.origin);
        st = cryo_meta_copy(&c.meta, &v->meta, err);
    }
    if (st == CRYO_OK) {
        struct cryo_sink_opts so;
        cryo_sink_opts_default(&so);
        so.format = CRYO_FORMAT_MRC;
        st = cryo_write_one(path, v->c == 1 ? v : &c, &so, err);
    }
    cryo_volume_free(&c);
    if (st == CRYO_OK) {
        int r = loader_probe_f32_mrc(path, f, err);
        if (r == 0)
            st = cryo_fail(err, CRYO_E_IO, "%s: cache entry unreadable right after writing it", path);
        else if (r < 0)
            st = r;
    }
    return st;
}

static int append_file(struct loader_file **files, size_t *n, size_t *cap, struct loader_file *f,
                       struct cryo_error *err)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 4;
        struct loader_file *p = realloc(*files, nc * sizeof *p);
        if (!p)
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        *files = p, *cap = nc;
    }
    (*files)[(*n)++] = *f;
    return CRYO_OK;
}

/* Every entry of a manifest, if all are there and valid; else 0 files. */
static int reuse_entries(struct cryo_loader *l, const struct source_key *k, size_t frames, int channels,
                         struct loader_file **files, size_t *nfiles, size_t *cap, struct cryo_error *err)
{
    for (size_t fr = 0; fr < frames; fr++)
        for (int c = 0; c < channels; c++) {
            struct loader_file f = {0};
            if (!(f.path = entry_path(l, k, fr, c, err)))
                return CRYO_E_NOMEM;
            int r = loader_probe_f32_mrc(f.path, &f, err);
            if (r <= 0 || append_file(files, nfiles, cap, &f, err) != CRYO_OK) {
                free(f.path);
                if (r < 0)
                    return r;
                for (size_t i = 0; i < *nfiles; i++)
                    loader_file_release(&(*files)[i]);
                *nfiles = 0;
                return r == 0 ? CRYO_OK : CRYO_E_NOMEM;
            }
        }
    return CRYO_OK;
}

/* Read the source and write an entry per frame and channel. */
static int build_entries(struct cryo_loader *l, const char *path, const struct source_key *k, int channels,
                         struct loader_file **files, size_t *nfiles, size_t *cap, struct cryo_error *err)
{
    struct cryo_source *src = NULL;
    CRYO_TRY(cryo_source_open(&src, path, err));
    int is_stream = cryo_source_format(src) == CRYO_FORMAT_STREAM;
    struct cryo_volume v;
    cryo_volume_init(&v);
    size_t frames = 0;
    int st = CRYO_OK;
    char what[4096];
    for (;;) {
        int r = cryo_source_next(src, &v, err);
        if (r <= 0) {
            st = r;
            break;
        }
        if (is_stream)
            snprintf(what, sizeof what, "%s[%zu]", path, frames);
        else
            snprintf(what, sizeof what, "%s", path);
        if (v.c != channels) {
            st = cryo_fail(err, CRYO_E_INVALID, "%s: has %lld channel%s, the loader wants %d%s", what, (long long)v.c,
                           v.c == 1 ? "" : "s", channels,
                           channels == 2 ? " (an input/target pair, as vol-degrade --pair writes)" : "");
            break;
        }
        if ((st = prepare_frame(l, &v, what, err)) != CRYO_OK)
            break;
        for (int c = 0; c < channels && st == CRYO_OK; c++) {
            struct loader_file f = {0};
            if (!(f.path = entry_path(l, k, frames, c, err)))
                st = CRYO_E_NOMEM;
            else if ((st = write_entry(&v, c, f.path, &f, err)) != CRYO_OK ||
                     (st = append_file(files, nfiles, cap, &f, err)) != CRYO_OK)
                free(f.path);
        }
        if (st != CRYO_OK)
            break;
        frames++;
    }
    cryo_volume_free(&v);
    cryo_source_free(src);
    if (st == CRYO_OK && frames == 0)
        st = cryo_fail(err, CRYO_E_FORMAT, "%s: holds no map", path);
    if (st == CRYO_OK) {
        char *m = cache_path(l, k->hash, "frames", err);
        st = m ? manifest_write(m, frames, channels, err) : CRYO_E_NOMEM;
        free(m);
    }
    return st;
}

int loader_prepare_source(struct cryo_loader *l, const char *path, int frame_channels,
                          struct loader_file **files, size_t *nfiles, struct cryo_error *err)
{
    *files = NULL;
    *nfiles = 0;
    size_t cap = 0;
    if (strcmp(path, "-") == 0)
        return cryo_fail(err, CRYO_E_INVALID, "standard input cannot be part of a corpus: the loader reads files");
    /* An uncompressed float32 MRC that needs no step is read where it is. */
    if (frame_channels == 1 && !l->o.normalize) {
        struct loader_file f = {0};
        int r = loader_probe_f32_mrc(path, &f, err);
        if (r < 0)
            return r;
        if (r == 1 && (l->o.apix <= 0 || apix_is(f.apix, l->o.apix))) {
            if (!(f.path = cryo_strdup(path, err)))
                return CRYO_E_NOMEM;
            return append_file(files, nfiles, &cap, &f, err);
        }
    }
    struct source_key k = {0};
    int st = source_key_make(l, path, &k, err);
    char *manifest = st == CRYO_OK ? cache_path(l, k.hash, "frames", err) : NULL;
    if (st == CRYO_OK && !manifest)
        st = CRYO_E_NOMEM;
    if (st == CRYO_OK) {
        size_t frames = manifest_read(manifest, frame_channels);
        if (frames)
            st = reuse_entries(l, &k, frames, frame_channels, files, nfiles, &cap, err);
        if (st == CRYO_OK && *nfiles == 0)
            st = build_entries(l, path, &k, frame_channels, files, nfiles, &cap, err);
    }
    if (st != CRYO_OK) {
        for (size_t i = 0; i < *nfiles; i++)
            loader_file_release(&(*files)[i]);
        free(*files);
        *files = NULL;
        *nfiles = 0;
    }
    free(manifest);
    free(k.abs);
    return st;
}
