/* testutil.c — the unit-test harness behind testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tu_failures_in_test;
static const char *current_test = "?";
static char tmpdir[256];

void tu_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", current_test, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    tu_failures_in_test++;
}

int tu_close(double a, double b, double tol)
{
    if (!isfinite(a) || !isfinite(b))
        return 0; /* NaN and Inf never pass */
    double scale = fabs(b) > 1 ? fabs(b) : 1;
    return fabs(a - b) <= tol * scale;
}

double tu_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double tu_rel_err_d(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        double d = a[i] - b[i];
        num += d * d;
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double tu_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static void remove_tmpdir(void)
{
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
}

const char *tu_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/cryolvm-unit.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

int tu_run_list(const char *file, const char *names, void (*fns[])(void), size_t n)
{
    /* names is the stringified argument list "a, b, c" */
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", names);
    char *save = NULL, *tok = strtok_r(buf, ", \n\t", &save);
    const char *only = getenv("TEST_ONLY");
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++, tok = strtok_r(NULL, ", \n\t", &save)) {
        current_test = tok ? tok : "?";
        if (only && strcmp(only, current_test) != 0)
            continue;
        tu_failures_in_test = 0;
        fns[i]();
        if (tu_failures_in_test) {
            failed++;
            fprintf(stderr, "not ok %s\n", current_test);
        } else {
            passed++;
        }
    }
    const char *base = strrchr(file, '/');
    printf("%s: %d passed, %d failed\n", base ? base + 1 : file, passed, failed);
    return failed ? 1 : 0;
}
