/* volio.h — open any supported input, write any supported output.
 *
 * Sources: a path, or "-" for standard input. The format is sniffed from the first bytes
 * (stream magic "CVOL", gzip, TIFF "II*\0"/"MM\0*", MRC "MAP " at byte 208), never from
 * the name. gzip is undone first (zlib), so .map.gz/.mrc.gz work from files and pipes.
 * An MRC or TIFF source yields exactly one frame; a stream yields its frames in order.
 * A TIFF from a pipe or gzip is spooled to a temporary file first (libtiff seeks); an MRC
 * is read as it comes. Empty input is "NAME: empty input" (NAME = path or "stdin").
 *
 * Sinks: a path whose extension picks the format (.mrc .map .ccp4 .mrcs .rec .st [+ .gz]
 * -> MRC, .tif .tiff -> TIFF, .cvol -> stream), or NULL/"-" for the stream on standard
 * output; binary output to a terminal is refused. How the path is written (outfile.h): a
 * regular file or a link to one through a temporary renamed over the target only in
 * cryo_sink_commit() (cryo_sink_free() on an uncommitted sink deletes the temporary, so
 * failure never leaves partial output and never touches an existing file); standard output,
 * /dev/stdout, devices and FIFOs in place, MRC or TIFF collected in a temporary file and
 * copied out at commit for the same reason. uint8 to MRC follows opts.mrc_u8 (mrc.h).
 * Errors: CRYO_E_IO (open/create/write/rename, errno text), CRYO_E_FORMAT (unrecognised or
 * broken input), CRYO_E_TRUNCATED, CRYO_E_CORRUPT (gzip), CRYO_E_UNSUPPORTED, and
 * CRYO_E_INVALID for unusable requests (unknown extension, .gz on a non-MRC output, a second
 * frame or a multi-channel frame into MRC/TIFF, a terminal on stdout); messages name the
 * file, or "stdin"/"stdout".
 */
#ifndef CRYOLVM_VOLIO_H
#define CRYOLVM_VOLIO_H

#include "cryolvm/mrc.h"
#include "cryolvm/stream.h"
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_format {
    CRYO_FORMAT_UNKNOWN = 0,
    CRYO_FORMAT_STREAM,
    CRYO_FORMAT_MRC,
    CRYO_FORMAT_TIFF
};
const char *cryo_format_name(enum cryo_format f); /* "stream", "mrc", "tiff" */
/* Format chosen by a file name's extension; UNKNOWN if none matches. *gz set for ".gz". */
enum cryo_format cryo_format_from_path(const char *path, int *gz);
/* Format by name ("mrc", "tiff", "stream"); UNKNOWN if none matches. */
enum cryo_format cryo_format_from_name(const char *name);

struct cryo_source;
int cryo_source_open(struct cryo_source **s, const char *path, struct cryo_error *err);
/* 1 = a frame in *v (freed first), 0 = no more frames, < 0 = error (message names the source). */
int cryo_source_next(struct cryo_source *s, struct cryo_volume *v, struct cryo_error *err);
enum cryo_format cryo_source_format(const struct cryo_source *s);
const char *cryo_source_name(const struct cryo_source *s); /* path, or "stdin" */
int cryo_source_gzipped(const struct cryo_source *s);
/* For streams: wire and raw sizes of the last frame (0,0 for other formats). */
void cryo_source_last_sizes(const struct cryo_source *s, uint64_t *compressed, uint64_t *raw);
void cryo_source_free(struct cryo_source *s);

/* Convenience: exactly one frame from a path (error if the source holds none or several). */
int cryo_read_one(struct cryo_volume *v, const char *path, struct cryo_error *err);

struct cryo_sink_opts {
    enum cryo_format format;          /* UNKNOWN = from the extension */
    struct cryo_stream_opts stream;   /* for stream output */
    int allow_terminal;               /* 1 = do not refuse a tty (tests only) */
    int durable;                      /* 1 = fsync the file and its directory at commit
                                         (default from environment CRYO_FSYNC=1) */
    enum cryo_mrc_u8 mrc_u8;          /* uint8 to MRC: mode 6 (default), mode0, imod (mrc.h) */
};
void cryo_sink_opts_default(struct cryo_sink_opts *o);

struct cryo_sink;
int cryo_sink_open(struct cryo_sink **s, const char *path, const struct cryo_sink_opts *opts,
                   struct cryo_error *err);
/* MRC and TIFF sinks take exactly one single-channel frame; a second is an error. */
int cryo_sink_write(struct cryo_sink *s, const struct cryo_volume *v, struct cryo_error *err);
/* Finish (end-of-stream record / rename into place). After success the output exists. */
int cryo_sink_commit(struct cryo_sink *s, struct cryo_error *err);
enum cryo_format cryo_sink_format(const struct cryo_sink *s);
void cryo_sink_free(struct cryo_sink *s); /* uncommitted: temporary removed, target untouched */

/* Convenience: write one frame atomically to path (or stdout when NULL/"-"). */
int cryo_write_one(const char *path, const struct cryo_volume *v, const struct cryo_sink_opts *opts,
                   struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
