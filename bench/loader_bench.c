/* loader_bench.c — the training loader against the step rate (bench/loader.sh).
 *
 *   loader_bench CACHE SIZE PREFETCH BATCH STEPS STEP_MS LIST
 * Opens a loader on the maps of LIST (cryo_loader_read_list) with its cache in CACHE (so a
 * first run prepares the corpus and later runs reuse it), then
 *   1. makes 100 crops with cryo_loader_get, one after another, no prefetch involved:
 *      the loader's own crops/s on one core;
 *   2. runs STEPS "training steps": cryo_loader_batch(k, BATCH), then STEP_MS of sleep that
 *      stands for the model's forward/backward pass, during which the prefetch thread
 *      (PREFETCH crops ahead) works. Reports the mean and largest time a step waited.
 * Prints "key value" lines: maps, open_s, get_crops_per_s, step_wait_mean_ms,
 * step_wait_max_ms, peak_rss_mib (getrusage; bench/loader.sh also runs it under
 * /usr/bin/time -v).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "cryolvm/loader.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: loader_bench CACHE SIZE PREFETCH BATCH STEPS STEP_MS LIST\n");
        return 2;
    }
    struct cryo_loader_opts o;
    cryo_loader_opts_default(&o);
    o.cache_dir = argv[1];
    o.size = atoi(argv[2]);
    o.prefetch = atoi(argv[3]);
    int batch = atoi(argv[4]), steps = atoi(argv[5]), step_ms = atoi(argv[6]);
    o.rotate = o.flip = 1;
    o.min_density = 0.05;
    o.seed = 1;
    if (batch < 1 || steps < 1 || step_ms < 0) {
        fprintf(stderr, "loader_bench: bad BATCH/STEPS/STEP_MS\n");
        return 2;
    }
    struct cryo_error err = {0};
    char **paths = NULL;
    size_t n = 0;
    if (cryo_loader_read_list(argv[7], &paths, &n, &err) != 0) {
        fprintf(stderr, "loader_bench: %s\n", err.msg);
        return 1;
    }
    struct cryo_loader *l = NULL;
    double t0 = now();
    if (cryo_loader_open(&l, (const char *const *)paths, n, &o, &err) != 0) {
        fprintf(stderr, "loader_bench: %s\n", err.msg);
        return 1;
    }
    double open_s = now() - t0;
    size_t per = (size_t)o.size * o.size * o.size * (size_t)o.channels;
    float *out = malloc((size_t)batch * per * sizeof(float));
    const int gets = 100;
    t0 = now();
    for (int i = 0; i < gets; i++)
        if (cryo_loader_get(l, 1000000 + (uint64_t)i, out, &err) != 0) {
            fprintf(stderr, "loader_bench: %s\n", err.msg);
            return 1;
        }
    double get_s = now() - t0;
    double wait_sum = 0, wait_max = 0;
    struct timespec nap = {step_ms / 1000, (long)(step_ms % 1000) * 1000000L};
    for (int s = 0; s < steps; s++) {
        t0 = now();
        if (cryo_loader_batch(l, (uint64_t)s * (uint64_t)batch, batch, out, &err) != 0) {
            fprintf(stderr, "loader_bench: %s\n", err.msg);
            return 1;
        }
        double w = now() - t0;
        wait_sum += w;
        if (w > wait_max)
            wait_max = w;
        nanosleep(&nap, NULL);
    }
    struct cryo_loader_stats st;
    cryo_loader_stats(l, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("maps %zu\nopen_s %.3f\nget_crops_per_s %.1f\nstep_wait_mean_ms %.3f\nstep_wait_max_ms %.3f\n"
           "redraws_per_crop %.3f\npeak_rss_mib %.1f\n",
           cryo_loader_maps(l), open_s, gets / get_s, 1e3 * wait_sum / steps, 1e3 * wait_max,
           (double)st.redraws / (double)(st.crops ? st.crops : 1), ru.ru_maxrss / 1024.0);
    cryo_loader_free(l);
    cryo_loader_free_list(paths, n);
    free(out);
    return 0;
}
