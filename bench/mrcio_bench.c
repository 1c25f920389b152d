/* mrcio_bench.c — in-process MRC read and write speed of libcore (bench/mrcio.sh).
 *
 *   mrcio_bench RUNS OUTDIR FILE...
 * For each FILE: median wall time of RUNS reads (cryo_read_one: open, sniff, header, data,
 * byte swap/permutation) and RUNS writes of the frame read (cryo_write_one to OUTDIR/out.mrc:
 * statistics, header, data, rename), printed as "file bytes read_s write_s". The page
 * cache is warm after the first run, so these are memory-to-memory speeds, comparable with
 * `cat FILE > /dev/null` and `cp FILE OUTDIR/` on the same file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cryolvm/volio.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: mrcio_bench RUNS OUTDIR FILE...\n");
        return 2;
    }
    int runs = atoi(argv[1]);
    if (runs < 1 || runs > 100)
        runs = 5;
    char out[4096];
    snprintf(out, sizeof out, "%s/out.mrc", argv[2]);
    double *tr = calloc((size_t)runs, sizeof *tr), *tw = calloc((size_t)runs, sizeof *tw);
    for (int k = 3; k < argc; k++) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        struct cryo_error err = {0};
        for (int r = 0; r < runs; r++) {
            double t0 = now();
            if (cryo_read_one(&v, argv[k], &err) != 0) {
                fprintf(stderr, "mrcio_bench: %s\n", err.msg);
                return 1;
            }
            tr[r] = now() - t0;
            t0 = now();
            if (cryo_write_one(out, &v, NULL, &err) != 0) {
                fprintf(stderr, "mrcio_bench: %s\n", err.msg);
                return 1;
            }
            tw[r] = now() - t0;
        }
        qsort(tr, (size_t)runs, sizeof *tr, cmp);
        qsort(tw, (size_t)runs, sizeof *tw, cmp);
        printf("%s %zu %.4f %.4f\n", argv[k], cryo_volume_bytes(&v), tr[runs / 2], tw[runs / 2]);
        cryo_volume_free(&v);
    }
    free(tr);
    free(tw);
    return 0;
}
