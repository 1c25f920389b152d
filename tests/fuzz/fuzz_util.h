/* fuzz_util.h — what the libFuzzer harnesses share: the input as a temporary file (for
 * readers that take a path), and a cap on what one input may make a reader allocate.
 *
 * Every harness builds with -fsanitize=fuzzer,address,undefined (make fuzz): a memory error,
 * undefined behaviour, a leak or an allocation above -malloc_limit_mb is a finding, and the
 * input that caused it is written as crash-* / oom-* / leak-*; put it in
 * tests/fuzz/regress/HARNESS/ so that `make check-fuzz` replays it from then on. */
#ifndef CRYOLVM_FUZZ_UTIL_H
#define CRYOLVM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write data to one temporary file per process (reused) and return its path; NULL on
 * failure. No suffix is needed: the readers sniff content, never names. */
static inline const char *fuzz_tmpfile(const uint8_t *data, size_t size)
{
    static char path[256];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/cryolvm-fuzz-%ld.bin", dir && *dir ? dir : "/tmp", (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok)
        return NULL;
    return path;
}

#endif
