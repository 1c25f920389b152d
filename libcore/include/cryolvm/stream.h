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
    int threads;  /* threads compressing chunks of large frames (OpenMP), 0 = auto */
    int shuffle;  /* 1 = byte-shuffle multi-byte dtypes (default), 0 = off */
};
void cryo_stream_opts_default(struct cryo_stream_opts *o);

/* Reader over an open FILE (not closed by the reader). Reads and checks the stream header;
 * `prefix`/`prefix_len` are bytes already consumed from `f` by format sniffing (may be 0;
 * copied). On success *r is owned by the caller (cryo_stream_reader_free); on failure *r
 * is NULL. Errors: CRYO_E_FORMAT (empty input, not "CVOL"), CRYO_E_TRUNCATED (header cut),
 * CRYO_E_UNSUPPORTED (other major version, unknown required flag), CRYO_E_CORRUPT (header
 * CRC), CRYO_E_IO, CRYO_E_NOMEM. Messages start with `name` ("-" is shown as "stdin"). */
int cryo_stream_reader_open(struct cryo_stream_reader **r, FILE *f, const char *name,
                            const unsigned char *prefix, size_t prefix_len, struct cryo_error *err);
/* Next frame into *v (freed first; owned by the caller). Returns 1 = frame read and fully
 * verified, 0 = clean end of stream (end record seen, frame count matched, nothing after
 * it), < 0 = error, with *v left empty (never a partial frame): CRYO_E_TRUNCATED (cut in a
 * frame, missing end record), CRYO_E_CORRUPT (CRC or zstd failure, unknown record, frame
 * count mismatch, a header or metadata length beyond the caps, checked before the CRC),
 * CRYO_E_FORMAT (CRC-valid header fields that break the rules or caps of
 * cryolvm-stream(5), data after the end record), CRYO_E_UNSUPPORTED (unknown dtype, codec,
 * filter or required flag), CRYO_E_IO, CRYO_E_NOMEM. After an error further calls fail with
 * the same status; after the end they return 0. Decodes on omp_get_max_threads() threads. */
int cryo_stream_read(struct cryo_stream_reader *r, struct cryo_volume *v, struct cryo_error *err);
/* Sizes of the last frame read: bytes of its record on the wire (header, chunks, trailer)
 * and raw data bytes. */
void cryo_stream_last_sizes(const struct cryo_stream_reader *r, uint64_t *compressed, uint64_t *raw);
void cryo_stream_reader_free(struct cryo_stream_reader *r);

/* Writer over an open FILE (not closed by the writer); writes the stream header at once.
 * `opts` may be NULL (defaults). On success *w is owned by the caller
 * (cryo_stream_writer_free); on failure NULL. Errors: CRYO_E_INVALID (level outside zstd's
 * range, shuffle not 0/1, negative threads), CRYO_E_IO, CRYO_E_NOMEM. */
int cryo_stream_writer_open(struct cryo_stream_writer **w, FILE *f, const char *name,
                            const struct cryo_stream_opts *opts, struct cryo_error *err);
/* Append one frame (v is not modified) and flush it, so a reader downstream gets it now.
 * Errors: CRYO_E_INVALID (bad dtype/ndim/shape, non-finite voxel size or origin, a key
 * outside [A-Za-z0-9_.:-]{1,255}, metadata over the caps; nothing written, the writer
 * stays usable), CRYO_E_IO (write failed: the writer is then unusable and finish refuses,
 * so the stream ends without an end record and readers report it), CRYO_E_NOMEM. */
int cryo_stream_write(struct cryo_stream_writer *w, const struct cryo_volume *v, struct cryo_error *err);
/* Raw bytes per compressed chunk (default 4 MiB; 8 .. 256 MiB, rounded down to whole
 * elements). Smaller chunks parallelise more and cost a little ratio. CRYO_E_INVALID if out
 * of range. Added for tests and benchmarks; the default suits maps. */
int cryo_stream_writer_set_chunk_bytes(struct cryo_stream_writer *w, size_t bytes, struct cryo_error *err);
/* Writes the end-of-stream record and flushes; does not fclose. CRYO_E_INVALID after a
 * failed write (a damaged stream must not look complete), CRYO_E_IO. A writer freed
 * without finish leaves a stream without end record, which readers refuse: that is how a
 * dying producer tells its consumers. */
int cryo_stream_writer_finish(struct cryo_stream_writer *w, struct cryo_error *err);
void cryo_stream_writer_free(struct cryo_stream_writer *w);

#ifdef __cplusplus
}
#endif
#endif
