/* vol-degrade — degrade maps for training pairs; a thin wrapper around the degrade stage
 * (stages/degrade.c, effects in libcore/degrade.c). */
#include "common/cli.h"

extern const struct cryo_stage cryo_stage_degrade;

static const struct cryo_tool tool = {
    "vol-degrade",
    "degrade maps (B-factor, low-pass, local resolution, binning, noise, missing wedge) for training pairs",
    "[OPTIONS] [INPUT...]", NULL, 0, -1, 1, 1};

int main(int argc, char **argv) { return cli_run_stage(&cryo_stage_degrade, &tool, argc, argv); }
