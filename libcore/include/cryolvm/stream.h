/* stream.h — the cryolvm volume stream (CVOL), see cryolvm-stream(5).
 *
 * A stream is a header, any number of frames (each one struct cryo_volume), and an
 * end-of-stream record. Each frame's payload is byte-shuffled (multi-byte dtypes) and
 * zstd-compressed in chunks, with a checksum per frame, so a cut or corrupted stream is
 * reported instead of producing output. Memory is bounded by the largest frame.
 *
 * `name` arguments are used only in error messages ("-" or "stdin" for standard input).
 */
#ifndef CRYOLVM_STREAM_H
#define CRYOLVM_STREAM_H

#include <stdio.h>
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRYO_STREAM_MAGIC "CVOL"  /* first 4 bytes of every stream */
#define CRYO_STREAM_EXT ".cvol"   /* file extension that selects the stream on output */

struct cryo_stream_reader;
struct cryo_stream_writer;

struct cryo_stream_opts {
    int level;    /* zstd level, default 3 (0 = default); negative = fast levels */
    int threads;  /* zstd worker threads for large frames, 0 = auto */
    int shuffle;  /* 1 = byte-shuffle multi-byte dtypes (default), 0 = off */
};
void cryo_stream_opts_default(struct cryo_stream_opts *o);

/* Reader over an open FILE (not closed by the reader). Reads and checks the stream header;
 * `prefix`/`prefix_len` are bytes already consumed from `f` by format sniffing (may be 0). */
int cryo_stream_reader_open(struct cryo_stream_reader **r, FILE *f, const char *name,
                            const unsigned char *prefix, size_t prefix_len, struct cryo_error *err);
/* Next frame into *v (freed first). Returns 1 = frame read, 0 = clean end of stream,
 * < 0 = error (truncated, corrupt, missing end record, ...). */
int cryo_stream_read(struct cryo_stream_reader *r, struct cryo_volume *v, struct cryo_error *err);
/* Sizes of the last frame read: payload bytes on the wire and raw bytes. */
void cryo_stream_last_sizes(const struct cryo_stream_reader *r, uint64_t *compressed, uint64_t *raw);
void cryo_stream_reader_free(struct cryo_stream_reader *r);

int cryo_stream_writer_open(struct cryo_stream_writer **w, FILE *f, const char *name,
                            const struct cryo_stream_opts *opts, struct cryo_error *err);
int cryo_stream_write(struct cryo_stream_writer *w, const struct cryo_volume *v, struct cryo_error *err);
/* Raw bytes per compressed chunk (default 4 MiB; 8 .. 256 MiB, rounded down to whole
 * elements). Smaller chunks parallelise more and cost a little ratio. CRYO_E_INVALID if out
 * of range. Added for tests and benchmarks; the default suits maps. */
int cryo_stream_writer_set_chunk_bytes(struct cryo_stream_writer *w, size_t bytes, struct cryo_error *err);
/* Writes the end-of-stream record and flushes; does not fclose. */
int cryo_stream_writer_finish(struct cryo_stream_writer *w, struct cryo_error *err);
void cryo_stream_writer_free(struct cryo_stream_writer *w);

#ifdef __cplusplus
}
#endif
#endif
