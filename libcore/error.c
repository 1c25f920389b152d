/* error.c — recording failures for the caller (see error.h). */
#include "cryolvm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cryo_fail_at(struct cryo_error *err, int status, const char *file, int line, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    size_t used = 0;
#ifdef CRYO_DEBUG
    int k = snprintf(err->msg, sizeof err->msg, "[%s:%d] ", file, line);
    used = k > 0 ? (size_t)k : 0;
    if (used >= sizeof err->msg)
        used = sizeof err->msg - 1;
#else
    (void)file;
    (void)line;
#endif
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
    /* One line: a stray newline in a formatted file name must not split the message. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return status;
}

int cryo_error_prefix(struct cryo_error *err, const char *what)
{
    if (!err)
        return CRYO_OK;
    char tmp[sizeof err->msg];
    size_t w = strlen(what), cap = sizeof tmp - 1;
    if (w > cap - 2)
        w = cap - 2;
    memcpy(tmp, what, w);
    memcpy(tmp + w, ": ", 2);
    size_t m = strlen(err->msg);
    if (m > cap - w - 2)
        m = cap - w - 2;
    memcpy(tmp + w + 2, err->msg, m);
    tmp[w + 2 + m] = '\0';
    memcpy(err->msg, tmp, sizeof tmp);
    return err->status;
}

void cryo_error_clear(struct cryo_error *err)
{
    if (!err)
        return;
    err->status = CRYO_OK;
    err->msg[0] = '\0';
}

const char *cryo_status_name(int status)
{
    switch (status) {
    case CRYO_OK: return "success";
    case CRYO_E_IO: return "I/O error";
    case CRYO_E_FORMAT: return "format error";
    case CRYO_E_NOMEM: return "out of memory";
    case CRYO_E_INVALID: return "invalid argument";
    case CRYO_E_UNSUPPORTED: return "unsupported";
    case CRYO_E_CORRUPT: return "corrupt data";
    case CRYO_E_TRUNCATED: return "truncated input";
    case CRYO_E_DEVICE: return "device error";
    case CRYO_E_NUMERIC: return "non-finite value";
    }
    return "unknown error";
}

static cryo_warn_fn warn_fn;
static void *warn_ctx;

void cryo_set_warn_handler(cryo_warn_fn fn, void *ctx)
{
    warn_fn = fn;
    warn_ctx = ctx;
}

void cryo_warn(const char *fmt, ...)
{
    if (!warn_fn)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    warn_fn(warn_ctx, msg);
}
