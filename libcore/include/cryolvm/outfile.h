/* outfile.h — the one way every cryolvm output file is written (maps, streams, reports,
 * plots, weights), so that each kind of target is treated the same by every tool.
 *
 * What the path names decides how it is written:
 *   a regular file, or nothing yet   written to "<FILE>.XXXXXX.tmp" in the same directory,
 *                                    flushed and fsync'ed, then renamed over FILE at commit:
 *                                    readers never see half a file, a failure leaves an
 *                                    existing FILE untouched. A new file gets 0666 & ~umask
 *                                    (and the directory's default ACL), a replaced file
 *                                    keeps its permission bits (and, where allowed, owner).
 *   a symbolic link                  followed to its final target (even a dangling one whose
 *                                    directory exists), which is then treated as above: the
 *                                    target is replaced and the link stays a link.
 *   "-", /dev/stdout, /dev/stderr,   written directly, never renamed over: the device stays
 *   /dev/fd/N, /proc/self/fd/N,      a device, a FIFO a FIFO. "-" and /dev/stdout share the
 *   a character or block device,     process's stdout FILE, so bytes keep their order with
 *   a FIFO                           whatever else the tool prints there.
 *   a directory or a socket          refused (CRYO_E_IO).
 * With opts.spool, a direct target gets its bytes only at commit (they are collected in a
 * temporary file in $TMPDIR or /tmp first), so a failure leaves nothing half-written in a
 * pipe, and cryo_outfile_tmp_path() is a seekable file for libraries that write by path.
 * A write error on a direct target (ENOSPC on /dev/full, EPIPE) is a CRYO_E_IO failure of
 * the commit naming the path.
 *
 * Errors (CRYO_E_IO with errno text, CRYO_E_NOMEM) name the path as given, or "stdout".
 * Nothing here prints. One owner: the caller frees what it opens.
 */
#ifndef CRYOLVM_OUTFILE_H
#define CRYOLVM_OUTFILE_H

#include <stdio.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_outfile_opts {
    int spool;   /* direct targets: collect the bytes in a temporary, copy them out at commit */
    int sync;    /* fsync the temporary before the rename (default 1; CRYO_FSYNC=0 turns off) */
    int durable; /* also fsync the directory after the rename (default from CRYO_FSYNC=1) */
};
/* spool = 1, sync and durable from the environment variable CRYO_FSYNC. */
void cryo_outfile_opts_default(struct cryo_outfile_opts *o);

struct cryo_outfile;
/* Open `path` ("-" or NULL = standard output) for writing. opts may be NULL (defaults). */
int cryo_outfile_open(struct cryo_outfile **o, const char *path, const struct cryo_outfile_opts *opts,
                      struct cryo_error *err);
/* Where to write. Valid until commit or free; not to be closed by the caller. */
FILE *cryo_outfile_file(struct cryo_outfile *o);
/* The temporary file being written (a seekable regular file, for writers that open by path
 * such as libtiff), or NULL when bytes go straight to the target (direct, no spool). */
const char *cryo_outfile_tmp_path(const struct cryo_outfile *o);
/* The path as given, or "stdout" for "-"/NULL: for messages. */
const char *cryo_outfile_name(const struct cryo_outfile *o);
/* 1 if the target is written in place (device, FIFO, standard stream), 0 if renamed into place. */
int cryo_outfile_is_direct(const struct cryo_outfile *o);
/* 1 if the target is a terminal (binary writers refuse it). */
int cryo_outfile_is_terminal(const struct cryo_outfile *o);
/* Finish: flush, sync, rename into place or copy out the spool. After success the output is
 * complete. Committing twice is a no-op. */
int cryo_outfile_commit(struct cryo_outfile *o, struct cryo_error *err);
/* Uncommitted: the temporary is removed and the target left as it was. NULL is allowed. */
void cryo_outfile_free(struct cryo_outfile *o);

/* Convenience: open, fn(file, ctx, name, err), commit, free. fn returns CRYO_OK or a status
 * with the message recorded; a failed stdio write is caught at commit in any case. */
typedef int (*cryo_outfile_fill_fn)(FILE *f, void *ctx, const char *name, struct cryo_error *err);
int cryo_outfile_write(const char *path, cryo_outfile_fill_fn fn, void *ctx, const struct cryo_outfile_opts *opts,
                       struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
