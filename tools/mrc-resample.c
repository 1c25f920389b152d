/* mrc-resample — resample maps to a new voxel size, another map's grid and/or a new box; a
 * thin wrapper around the resample stage (stages/resample.c, arithmetic in libcore/resample.c).
 * The wrapper only adds the warning a user needs when Fourier resampling could not give the
 * exact voxel size asked for (the stage records both and the residual in metadata; libcore
 * does not print). The warning is printed even with -q: a voxel size other than the one
 * asked must never pass silently. */
#include "common/cli.h"
#include "cryolvm/resample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct cryo_stage cryo_stage_resample;

static const struct cryo_tool tool = {
    "mrc-resample",
    "resample maps to a new voxel size or another map's grid (Fourier, linear or cubic) and/or crop or pad the box",
    "[OPTIONS] [INPUT...]", NULL, 0, -1, 1, 1};

static const struct cryo_emit *inner_emit;

static int parse3(const char *s, double v[3])
{
    return s && sscanf(s, "%lf,%lf,%lf", &v[0], &v[1], &v[2]) == 3 ? 0 : -1;
}

/* Say once per frame when the voxel size differs from the one asked for. */
static int warning_emit(void *ctx, const struct cryo_volume *v, struct cryo_error *err)
{
    (void)ctx;
    double got[3], want[3], res[3];
    if (parse3(cryo_meta_get(&v->meta, "resample.apix"), got) == 0 &&
        parse3(cryo_meta_get(&v->meta, "resample.apix_requested"), want) == 0 &&
        parse3(cryo_meta_get(&v->meta, "resample.residual"), res) == 0) {
        double worst = 0;
        for (int d = 0; d < 3; d++)
            worst = res[d] > worst ? res[d] : worst;
        if (worst > CRYO_RESAMPLE_APIX_TOL) {
            const char *src = cryo_meta_get(&v->meta, "source");
            fprintf(stderr,
                    "%s: warning: %s%sno Fourier pad in range makes the voxel size exact: it is %.9g,%.9g,%.9g Å "
                    "(asked %.9g,%.9g,%.9g; relative residual %.2g, %.2g voxel across the box); use --method "
                    "cubic for the exact size\n",
                    tool.name, src ? src : "", src ? ": " : "", got[0], got[1], got[2], want[0], want[1], want[2],
                    worst, worst * (double)(v->nx > v->ny ? (v->nx > v->nz ? v->nx : v->nz)
                                                          : (v->ny > v->nz ? v->ny : v->nz)));
        }
    }
    return cryo_emit_frame(inner_emit, v, err);
}

static int wrapped_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                           struct cryo_error *err)
{
    inner_emit = out;
    const struct cryo_emit mine = {warning_emit, NULL};
    return cryo_stage_resample.process(state, in, &mine, err);
}

int main(int argc, char **argv)
{
    struct cryo_stage stage = cryo_stage_resample;
    stage.process = wrapped_process;
    return cli_run_stage(&stage, &tool, argc, argv);
}
