/* mrc-resample — resample maps to a new voxel size and/or box; a thin wrapper around the
 * resample stage (stages/resample.c, arithmetic in libcore/resample.c). The wrapper only adds
 * the note a user needs when Fourier resampling could not give the exact voxel size asked
 * for (the stage records both in metadata; libcore does not print). */
#include "common/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct cryo_stage cryo_stage_resample;

static const struct cryo_tool tool = {
    "mrc-resample",
    "resample maps to a new voxel size (Fourier crop/pad, linear or cubic) and/or crop or pad the box",
    "[OPTIONS] [INPUT...]", NULL, 0, -1, 1, 1};

static int quiet;
static const struct cryo_emit *inner_emit;

static int parse3(const char *s, double v[3])
{
    return s && sscanf(s, "%lf,%lf,%lf", &v[0], &v[1], &v[2]) == 3 ? 0 : -1;
}

/* Say once per frame when the voxel size differs from the one asked for. */
static int noting_emit(void *ctx, const struct cryo_volume *v, struct cryo_error *err)
{
    (void)ctx;
    double got[3], want[3];
    if (!quiet && parse3(cryo_meta_get(&v->meta, "resample.apix"), got) == 0 &&
        parse3(cryo_meta_get(&v->meta, "resample.apix_requested"), want) == 0) {
        int differs = 0;
        for (int d = 0; d < 3; d++)
            differs |= fabs(got[d] - want[d]) > 1e-6 * want[d];
        if (differs) {
            const char *src = cryo_meta_get(&v->meta, "source");
            fprintf(stderr,
                    "%s: note: %s%sFourier resampling keeps the box extent: voxel size is %.6g,%.6g,%.6g Å "
                    "(asked %.6g,%.6g,%.6g; box %lldx%lldx%lld = round(n apix / asked)); use --method cubic for "
                    "the exact size\n",
                    tool.name, src ? src : "", src ? ": " : "", got[0], got[1], got[2], want[0], want[1], want[2],
                    (long long)v->nx, (long long)v->ny, (long long)v->nz);
        }
    }
    return cryo_emit_frame(inner_emit, v, err);
}

static int wrapped_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                           struct cryo_error *err)
{
    inner_emit = out;
    const struct cryo_emit mine = {noting_emit, NULL};
    return cryo_stage_resample.process(state, in, &mine, err);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
    struct cryo_stage stage = cryo_stage_resample;
    stage.process = wrapped_process;
    return cli_run_stage(&stage, &tool, argc, argv);
}
