/* mrc-normalize — normalise map densities (quantile clipping to [0,1], z-scores, masked
 * statistics, --invert); a thin wrapper around the normalize stage (stages/normalize.c,
 * arithmetic in libcore/normalize.c and libcore/quantile.c). */
#include "common/cli.h"

extern const struct cryo_stage cryo_stage_normalize;

static const struct cryo_tool tool = {
    "mrc-normalize",
    "normalise map densities: clip at quantiles and scale to [0,1] (CryoLVM), or z-scores; --invert undoes it",
    "[OPTIONS] [INPUT...]", NULL, 0, -1, 1, 1};

int main(int argc, char **argv) { return cli_run_stage(&cryo_stage_normalize, &tool, argc, argv); }
