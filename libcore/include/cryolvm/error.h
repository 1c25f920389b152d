/* error.h — how libcore reports failure.
 *
 * Every fallible libcore call returns an int status: 0 (CRYO_OK) on success, one of the
 * negative CRYO_E_* codes on failure, and records a one-line message in the caller's
 * struct cryo_error (which may be NULL when the caller does not want the text). Nothing in
 * libcore prints or exits; a tool's main prints "tool: message" and exits.
 *
 * Messages name the file or stream and the problem, e.g.
 *   "emd_1234.map: header claims 512x512x512 float32 (512 MiB) but file has 3 MiB of data".
 * Debug builds (-DCRYO_DEBUG) prefix the libcore source file and line.
 */
#ifndef CRYOLVM_ERROR_H
#define CRYOLVM_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cryo_status {
    CRYO_OK = 0,
    CRYO_E_IO = -1,          /* open/read/write/rename failed (errno text included) */
    CRYO_E_FORMAT = -2,      /* input is not in the format it claims, or a header lies */
    CRYO_E_NOMEM = -3,       /* allocation failed, or a size overflows */
    CRYO_E_INVALID = -4,     /* bad argument or option value from the caller */
    CRYO_E_UNSUPPORTED = -5, /* valid input that this build cannot handle (mode, dtype, op) */
    CRYO_E_CORRUPT = -6,     /* checksum mismatch: data changed in transit */
    CRYO_E_TRUNCATED = -7,   /* input ends early (cut stream, short file) */
    CRYO_E_DEVICE = -8,      /* a backend (CUDA, cuDNN, cuBLAS, oneDNN) call failed */
    CRYO_E_NUMERIC = -9      /* NaN/Inf where a finite value is required */
};

struct cryo_error {
    int status;     /* the last status recorded, CRYO_OK if none */
    char msg[1024]; /* one line, no trailing newline */
};

/* Record a failure and return `status`, so callers write `return cryo_fail(err, ...)`.
 * `err` may be NULL. The message is truncated to fit. */
#define cryo_fail(err, status, ...) cryo_fail_at((err), (status), __FILE__, __LINE__, __VA_ARGS__)
int cryo_fail_at(struct cryo_error *err, int status, const char *file, int line,
                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Prefix an already recorded message with "what: " (e.g. a file name), keeping the status. */
int cryo_error_prefix(struct cryo_error *err, const char *what);

/* Reset to CRYO_OK and an empty message. */
void cryo_error_clear(struct cryo_error *err);

/* A short name for a status ("I/O error", "corrupt data", ...). */
const char *cryo_status_name(int status);

/* Warnings (input accepted, but something the user should know, e.g. bytes ignored after
 * the data). libcore never prints them: a program that wants them shown installs a handler
 * (the tools' cli_parse does); without one they are dropped. The handler gets one line
 * that names the file. Process-wide; set it before reading, from one thread. */
typedef void (*cryo_warn_fn)(void *ctx, const char *msg);
void cryo_set_warn_handler(cryo_warn_fn fn, void *ctx);
void cryo_warn(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Propagate a failing status from a call whose message is already recorded. */
#define CRYO_TRY(expr)            \
    do {                          \
        int cryo_s_ = (expr);     \
        if (cryo_s_ < 0)          \
            return cryo_s_;       \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
