/* vol-halves — the full map from two half maps: their average (h1 + h2)/2, or their
 * difference h1 - h2 (noise only, for noise estimates). Half maps must share the grid
 * exactly (box, voxel size, origin): anything else is refused, never resampled.
 * The output keeps both names (halves.1, halves.2 and the history line) and the first
 * half's history before it. */
#include "common/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cryo_option options[] = {
    {"average", 'a', CRYO_OPT_FLAG, NULL, NULL, "Write (HALF1 + HALF2) / 2, the full map (the default)", NULL},
    {"difference", 'd', CRYO_OPT_FLAG, NULL, NULL, "Write HALF1 - HALF2, the noise without the signal", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "vol-halves", "average or difference of two half maps on the same grid",
    "[OPTIONS] HALF1 HALF2", options, 2, 2, 1, 0};

static void read_half(struct cryo_volume *v, const char *path, struct cryo_cli *cli)
{
    struct cryo_error err = {0};
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
    if (cryo_read_one(v, path, &err) < 0)
        cli_die(cli, &err);
    if (v->c != 1) {
        fprintf(stderr, "%s: %s: has %lld channels; half maps have one\n", tool.name, name, (long long)v->c);
        exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
    }
    if (cryo_volume_convert(v, CRYO_DTYPE_F32, &err) < 0 || cryo_volume_check_finite(v, name, &err) < 0)
        cli_die(cli, &err);
}

/* One line naming both files and the first thing that differs. */
static void check_same_grid(const struct cryo_volume *a, const struct cryo_volume *b, const char *na, const char *nb)
{
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz) {
        fprintf(stderr, "%s: %s is %lldx%lldx%lld but %s is %lldx%lldx%lld: half maps must share the grid\n",
                tool.name, na, (long long)a->nx, (long long)a->ny, (long long)a->nz, nb, (long long)b->nx,
                (long long)b->ny, (long long)b->nz);
        exit(1);
    }
    for (int d = 0; d < 3; d++) {
        /* headers store voxel sizes and origins as float32: a relative 1e-5 is rounding */
        if (fabs(a->apix[d] - b->apix[d]) > 1e-5 * fabs(a->apix[d])) {
            fprintf(stderr, "%s: %s has voxel size %g Å but %s has %g Å (axis %c): half maps must share the grid\n",
                    tool.name, na, a->apix[d], nb, b->apix[d], "xyz"[d]);
            exit(1);
        }
        if (fabs(a->origin[d] - b->origin[d]) > 1e-3 * a->apix[d]) {
            fprintf(stderr, "%s: %s has origin %g Å but %s has %g Å (axis %c): half maps must share the grid\n",
                    tool.name, na, a->origin[d], nb, b->origin[d], "xyz"[d]);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    int diff = cryo_args_flag(cli.args, "difference");
    if (diff && cryo_args_flag(cli.args, "average"))
        cli_usage_error(&tool, "--average and --difference exclude each other");
    if (strcmp(cli.inputs[0], "-") == 0 && strcmp(cli.inputs[1], "-") == 0)
        cli_usage_error(&tool, "only one half map can come from standard input");

    const char *n1 = strcmp(cli.inputs[0], "-") == 0 ? "stdin" : cli.inputs[0];
    const char *n2 = strcmp(cli.inputs[1], "-") == 0 ? "stdin" : cli.inputs[1];
    struct cryo_volume a, b;
    cryo_volume_init(&a);
    cryo_volume_init(&b);
    read_half(&a, cli.inputs[0], &cli);
    read_half(&b, cli.inputs[1], &cli);
    check_same_grid(&a, &b, n1, n2);

    float *x = a.data;
    const float *y = b.data;
    size_t n = cryo_volume_count(&a);
    if (diff) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] - y[i];
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * (x[i] + y[i]);
    }

    /* the first half's header facts (labels, extended header) describe a half map only */
    cryo_meta_remove_prefix(&a.meta, "mrc.");
    cryo_meta_remove(&a.meta, "source");
    char hist[sizeof cli.history + 64];
    snprintf(hist, sizeof hist, "%s%s", cli.history, diff ? "" : (cryo_args_given(cli.args, "average") ? "" : " --average"));
    size_t L = strlen(hist);
    snprintf(hist + L, sizeof hist - L, " %s %s", n1, n2); /* truncated names still say which */
    if (cryo_meta_set(&a.meta, "halves.1", n1, &err) < 0 || cryo_meta_set(&a.meta, "halves.2", n2, &err) < 0 ||
        cryo_meta_set(&a.meta, "halves.op", diff ? "difference" : "average", &err) < 0 ||
        cryo_meta_add_history(&a.meta, hist, &err) < 0)
        cli_die(&cli, &err);
    if (cryo_write_one(cli.output, &a, &cli.sink_opts, &err) < 0)
        cli_die(&cli, &err);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    cli_free(&cli);
    return 0;
}
