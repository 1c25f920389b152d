/* outfile.c — one output path for every file a tool writes (see outfile.h).
 *
 * The target is classified once, at open: the path is followed through symbolic links
 * (by hand, so that a dangling link still names where the file should go), names of the
 * process's own descriptors (/dev/stdout, /dev/fd/N, ...) are caught before the kernel's
 * links for them are followed (they lead to whatever fd 1 is, often a regular file that must
 * not be renamed over), and what remains is a regular file or nothing (replace atomically),
 * a device or FIFO (write in place), or something we cannot write (refuse).
 */
#include "cryolvm/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cryolvm/mem.h"

#define MAX_LINK_HOPS 40

struct cryo_outfile {
    char *name;        /* path as given, or "stdout" */
    char *target;      /* regular file to rename onto; NULL for direct targets */
    char *tmp;         /* the temporary (beside target, or the spool in $TMPDIR) */
    FILE *file;        /* what the caller writes to */
    FILE *direct;      /* a direct target: stdout, stderr, or a stream we opened */
    int own_direct;    /* we opened `direct` and close it */
    int sync, durable, committed;
};

void cryo_outfile_opts_default(struct cryo_outfile_opts *o)
{
    const char *e = getenv("CRYO_FSYNC");
    o->spool = 1;
    o->sync = !(e && strcmp(e, "0") == 0);
    o->durable = e && strcmp(e, "1") == 0;
}

/* The descriptor a name for one of our own descriptors stands for, or -1. */
static int own_fd_named(const char *p)
{
    if (strcmp(p, "/dev/stdout") == 0)
        return STDOUT_FILENO;
    if (strcmp(p, "/dev/stderr") == 0)
        return STDERR_FILENO;
    static const char *dirs[] = {"/dev/fd/", "/proc/self/fd/"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        size_t k = strlen(dirs[i]);
        if (strncmp(p, dirs[i], k) != 0 || !p[k])
            continue;
        char *end;
        long n = strtol(p + k, &end, 10);
        if (*end == '\0' && p[k] >= '0' && p[k] <= '9' && n <= INT32_MAX)
            return (int)n;
    }
    return -1;
}

/* Link text resolved against the directory of the link. */
static char *link_next(const char *link, const char *text, struct cryo_error *err)
{
    const char *slash = strrchr(link, '/');
    if (text[0] == '/' || !slash)
        return cryo_strdup(text, err);
    size_t d = (size_t)(slash - link) + 1, n = d + strlen(text) + 1;
    char *p = malloc(n);
    if (!p) {
        cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(p, link, d);
    strcpy(p + d, text);
    return p;
}

enum target_kind { T_NEW, T_EXISTS, T_OWN_FD };

/* Follow `path` through symbolic links. T_NEW: *final does not exist yet; T_EXISTS: *final
 * is not a link, *st describes it; T_OWN_FD: *fd is the descriptor the name stands for. */
static int resolve(const char *name, const char *path, char **final, struct stat *st, int *fd,
                   struct cryo_error *err)
{
    char *p = cryo_strdup(path, err);
    if (!p)
        return CRYO_E_NOMEM;
    for (int hop = 0; hop <= MAX_LINK_HOPS; hop++) {
        if ((*fd = own_fd_named(p)) >= 0) {
            free(p);
            return T_OWN_FD;
        }
        if (lstat(p, st) != 0) {
            int e = errno;
            if (e == ENOENT) {
                *final = p;
                return T_NEW;
            }
            free(p);
            return cryo_fail(err, CRYO_E_IO, "%s: %s", name, strerror(e));
        }
        if (!S_ISLNK(st->st_mode)) {
            *final = p;
            return T_EXISTS;
        }
        size_t cap = (size_t)st->st_size + 1 > 256 ? (size_t)st->st_size + 1 : 4096;
        char *text = malloc(cap);
        ssize_t k = text ? readlink(p, text, cap - 1) : -1;
        if (k < 0) {
            int e = errno;
            free(text);
            free(p);
            return text ? cryo_fail(err, CRYO_E_IO, "%s: reading the link: %s", name, strerror(e))
                        : cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        }
        text[k] = '\0';
        char *next = link_next(p, text, err);
        free(text);
        free(p);
        if (!next)
            return CRYO_E_NOMEM;
        p = next;
    }
    free(p);
    return cryo_fail(err, CRYO_E_IO, "%s: %s", name, strerror(ELOOP));
}

/* Create "<base>.XXXXXX.tmp" exclusively with `mode` (the umask applies, as for any new
 * file). Returns the descriptor; *out the name. */
static int create_temp(const char *base, mode_t mode, char **out)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static uint64_t counter;
    size_t n = strlen(base) + 16;
    char *p = malloc(n);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    for (int tries = 0; tries < 100; tries++) {
        uint64_t z = x + ++counter * 0x9E3779B97F4A7C15ull; /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        char r[7];
        for (int i = 0; i < 6; i++, z /= 62)
            r[i] = abc[z % 62];
        r[6] = '\0';
        snprintf(p, n, "%s.%s.tmp", base, r);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0) {
            *out = p;
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    free(p);
    errno = e;
    return -1;
}

static int open_file_on_fd(struct cryo_outfile *o, int fd, FILE **f, struct cryo_error *err)
{
    *f = fdopen(fd, "wb");
    if (!*f) {
        int e = errno;
        close(fd);
        return cryo_fail(err, CRYO_E_IO, "%s: %s", o->name, strerror(e));
    }
    return CRYO_OK;
}

/* Regular file or nothing yet: a temporary beside it, with the permissions it will have. */
static int open_replace(struct cryo_outfile *o, char *final, const struct stat *old, struct cryo_error *err)
{
    o->target = final;
    int fd = create_temp(final, 0666, &o->tmp);
    if (fd < 0)
        return cryo_fail(err, CRYO_E_IO, "%s: cannot create output: %s", o->name, strerror(errno));
    if (old) {
        /* Replacing: the new file keeps the old one's owner (where we may) and mode. */
        if ((old->st_uid != geteuid() || old->st_gid != getegid()) &&
            fchown(fd, old->st_uid, old->st_gid) != 0 && fchown(fd, (uid_t)-1, old->st_gid) != 0) {
            /* not ours to give away: the new file is ours, as after any rewrite by another user */
        }
        if (fchmod(fd, old->st_mode & 07777) != 0) {
            /* best effort: the file keeps 0666 & ~umask */
        }
    }
    return open_file_on_fd(o, fd, &o->file, err);
}

/* Device, FIFO or one of our descriptors: written in place. */
static int open_direct(struct cryo_outfile *o, const char *dev, int own_fd, int spool, struct cryo_error *err)
{
    if (own_fd == STDOUT_FILENO || own_fd == STDERR_FILENO) {
        o->direct = own_fd == STDOUT_FILENO ? stdout : stderr;
    } else {
        int fd = own_fd >= 0 ? fcntl(own_fd, F_DUPFD_CLOEXEC, 3) : open(dev, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return cryo_fail(err, CRYO_E_IO, "%s: %s", o->name,
                             own_fd >= 0 && errno == EBADF ? "not an open file descriptor" : strerror(errno));
        CRYO_TRY(open_file_on_fd(o, fd, &o->direct, err));
        o->own_direct = 1;
    }
    if (!spool) {
        o->file = o->direct;
        return CRYO_OK;
    }
    const char *dir = getenv("TMPDIR");
    char base[4096];
    snprintf(base, sizeof base, "%s/cryolvm-out", dir && *dir ? dir : "/tmp");
    int fd = create_temp(base, 0600, &o->tmp);
    if (fd < 0)
        return cryo_fail(err, CRYO_E_IO, "%s: cannot create a temporary file in %s: %s", o->name,
                         dir && *dir ? dir : "/tmp", strerror(errno));
    return open_file_on_fd(o, fd, &o->file, err);
}

int cryo_outfile_open(struct cryo_outfile **out, const char *path, const struct cryo_outfile_opts *opts,
                      struct cryo_error *err)
{
    *out = NULL;
    struct cryo_outfile_opts d;
    if (!opts) {
        cryo_outfile_opts_default(&d);
        opts = &d;
    }
    if (path && !*path)
        return cryo_fail(err, CRYO_E_INVALID, "empty output file name");
    int is_stdout = !path || strcmp(path, "-") == 0;
    struct cryo_outfile *o = calloc(1, sizeof *o);
    if (!o)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    o->sync = opts->sync;
    o->durable = opts->durable;
    o->name = cryo_strdup(is_stdout ? "stdout" : path, err);
    int st = o->name ? CRYO_OK : CRYO_E_NOMEM;
    if (st == CRYO_OK && is_stdout) {
        st = open_direct(o, NULL, STDOUT_FILENO, opts->spool, err);
    } else if (st == CRYO_OK) {
        char *final = NULL;
        struct stat sb;
        memset(&sb, 0, sizeof sb);
        int fd = -1;
        int kind = resolve(o->name, path, &final, &sb, &fd, err);
        if (kind == T_OWN_FD)
            st = open_direct(o, NULL, fd, opts->spool, err);
        else if (kind == T_NEW)
            st = open_replace(o, final, NULL, err);
        else if (kind == T_EXISTS && S_ISREG(sb.st_mode))
            st = open_replace(o, final, &sb, err);
        else if (kind == T_EXISTS && (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) || S_ISFIFO(sb.st_mode)))
            st = open_direct(o, final, -1, opts->spool, err);
        else if (kind == T_EXISTS)
            st = cryo_fail(err, CRYO_E_IO, "%s: is a %s, not a file to write", o->name,
                           S_ISDIR(sb.st_mode) ? "directory" : S_ISSOCK(sb.st_mode) ? "socket" : "special file");
        else
            st = kind;
        if (!(kind == T_NEW || (kind == T_EXISTS && S_ISREG(sb.st_mode))))
            free(final); /* open_replace took it otherwise */
    }
    if (st < 0) {
        cryo_outfile_free(o);
        return st;
    }
    *out = o;
    return CRYO_OK;
}

FILE *cryo_outfile_file(struct cryo_outfile *o) { return o->file; }
const char *cryo_outfile_tmp_path(const struct cryo_outfile *o) { return o->tmp; }
const char *cryo_outfile_name(const struct cryo_outfile *o) { return o->name; }
int cryo_outfile_is_direct(const struct cryo_outfile *o) { return o->direct != NULL; }

int cryo_outfile_is_terminal(const struct cryo_outfile *o)
{
    return o->direct && isatty(fileno(o->direct));
}

static int write_failed(const struct cryo_outfile *o, struct cryo_error *err)
{
    return cryo_fail(err, CRYO_E_IO, "%s: write failed: %s", o->name, strerror(errno ? errno : EIO));
}

/* Flush and close the caller's FILE on the temporary, syncing it first if asked. */
static int finish_temp(struct cryo_outfile *o, int sync, struct cryo_error *err)
{
    errno = 0;
    if (fflush(o->file) != 0 || ferror(o->file))
        return write_failed(o, err);
    if (sync && fsync(fileno(o->file)) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: fsync failed: %s", o->name, strerror(errno));
    FILE *f = o->file;
    o->file = NULL;
    if (fclose(f) != 0)
        return write_failed(o, err);
    return CRYO_OK;
}

static int copy_spool_out(struct cryo_outfile *o, struct cryo_error *err)
{
    FILE *t = fopen(o->tmp, "rb");
    if (!t)
        return cryo_fail(err, CRYO_E_IO, "%s: reopening %s: %s", o->name, o->tmp, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    int st = buf ? CRYO_OK : cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    while (st == CRYO_OK) {
        size_t k = fread(buf, 1, CHUNK, t);
        if (k == 0) {
            if (ferror(t))
                st = cryo_fail(err, CRYO_E_IO, "%s: reading back %s: %s", o->name, o->tmp, strerror(errno));
            break;
        }
        errno = 0;
        if (fwrite(buf, 1, k, o->direct) != k)
            st = write_failed(o, err);
    }
    free(buf);
    fclose(t);
    return st;
}

static void fsync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int cryo_outfile_commit(struct cryo_outfile *o, struct cryo_error *err)
{
    if (o->committed)
        return CRYO_OK;
    if (o->target) {
        CRYO_TRY(finish_temp(o, o->sync, err));
        if (rename(o->tmp, o->target) != 0)
            return cryo_fail(err, CRYO_E_IO, "%s: cannot move the finished file into place: %s", o->name,
                             strerror(errno));
        if (o->durable)
            fsync_dir_of(o->target);
        free(o->tmp);
        o->tmp = NULL;
    } else {
        if (o->tmp) {
            CRYO_TRY(finish_temp(o, 0, err));
            CRYO_TRY(copy_spool_out(o, err));
            unlink(o->tmp);
            free(o->tmp);
            o->tmp = NULL;
        }
        errno = 0;
        if (fflush(o->direct) != 0 || ferror(o->direct))
            return write_failed(o, err);
        if (o->own_direct) {
            FILE *f = o->direct;
            o->direct = o->file = NULL;
            o->own_direct = 0;
            if (fclose(f) != 0)
                return write_failed(o, err);
        }
    }
    o->committed = 1;
    return CRYO_OK;
}

void cryo_outfile_free(struct cryo_outfile *o)
{
    if (!o)
        return;
    if (o->file && o->file != o->direct)
        fclose(o->file);
    if (o->tmp)
        unlink(o->tmp);
    if (o->own_direct && o->direct)
        fclose(o->direct);
    free(o->tmp);
    free(o->target);
    free(o->name);
    free(o);
}

int cryo_outfile_write(const char *path, cryo_outfile_fill_fn fn, void *ctx, const struct cryo_outfile_opts *opts,
                       struct cryo_error *err)
{
    struct cryo_outfile *o;
    CRYO_TRY(cryo_outfile_open(&o, path, opts, err));
    int st = fn(cryo_outfile_file(o), ctx, cryo_outfile_name(o), err);
    if (st == CRYO_OK)
        st = cryo_outfile_commit(o, err);
    cryo_outfile_free(o);
    return st;
}
