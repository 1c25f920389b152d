/* vol-mask — masks for masked FSC and lvm-apply --mask, as relion_mask_create makes them:
 * threshold (after an optional low-pass), and/or the zone around a model's atoms, extended
 * or shrunk, with a raised-cosine soft edge. The maths is in libcore/mask.c (mask.h).
 *
 * Shape of main: parse -> the grid (input map, or --like with --model only) and the model ->
 * cryo_mask_make -> write. Lengths given as "N" are voxels (relion's unit), "NA" Å. */
#include "common/cli.h"
#include "cryolvm/mask.h"
#include "cryolvm/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cryo_option options[] = {
    {"threshold", 't', CRYO_OPT_DOUBLE, "T", NULL, "Binary mask of voxels >= T (relion --ini_threshold)", NULL},
    {"lowpass", 0, CRYO_OPT_DOUBLE, "Å", NULL, "Low-pass the map at this resolution before thresholding (relion --lowpass)", NULL},
    {"model", 0, CRYO_OPT_STRING, "MODEL", NULL, "Zone mask: voxels within --zone Å of an atom of this PDB/mmCIF model", NULL},
    {"zone", 'z', CRYO_OPT_DOUBLE, "Å", NULL, "With --model: zone radius around each atom centre", NULL},
    {"like", 'l', CRYO_OPT_STRING, "MAP", NULL, "With --model and no input map: the grid (box, voxel size, origin) of this map", NULL},
    {"extend", 'e', CRYO_OPT_STRING, "N[A]", NULL, "Extend the binary mask by N voxels, or N Å with a trailing A; negative shrinks (relion --extend_inimask)", NULL},
    {"soft-edge", 's', CRYO_OPT_STRING, "W[A]", NULL, "Raised-cosine edge W voxels (or W Å) wide outside the binary mask (relion --width_soft_edge)", NULL},
    {"invert", 0, CRYO_OPT_FLAG, NULL, NULL, "Write 1 - mask (relion --invert)", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "vol-mask", "make a mask: threshold (after a low-pass) and/or zone around a model, extended, with a soft edge",
    "[OPTIONS] [MAP]", options, 0, 1, 1, 0};

/* "6" -> 6 voxels, "4.5A" or "4.5Å" -> 4.5 Å in voxels of the finest axis (amin Å). */
static double parse_length(const char *name, const char *s, double amin, int allow_negative)
{
    struct cryo_error err = {0};
    char what[32];
    double x;
    int angstrom;
    snprintf(what, sizeof what, "--%s", name);
    if (cryo_mask_parse_length(s, what, &x, &angstrom, &err) < 0)
        cli_usage_error(&tool, "%s", err.msg);
    if (!allow_negative && x < 0)
        cli_usage_error(&tool, "%s: '%s' must be >= 0", what, s);
    return angstrom ? x / amin : x;
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    const struct cryo_args *a = cli.args;

    int has_thr = cryo_args_has(a, "threshold"), has_model = cryo_args_has(a, "model");
    int has_like = cryo_args_has(a, "like");
    int explicit_input = argc > 1 && strcmp(cli.inputs[0], "-") != 0; /* a named map */
    if (!has_thr && !has_model)
        cli_usage_error(&tool, "give --threshold, --model with --zone, or both");
    if (has_model != cryo_args_has(a, "zone"))
        cli_usage_error(&tool, "--model and --zone go together");
    if (cryo_args_has(a, "lowpass") && !has_thr)
        cli_usage_error(&tool, "--lowpass filters the map before --threshold: give --threshold too");
    if (has_like && !has_model)
        cli_usage_error(&tool, "--like gives the grid of a zone mask: it needs --model");
    if (has_like && has_thr)
        cli_usage_error(&tool, "--like replaces the input map, which --threshold needs");
    if (has_like && explicit_input)
        cli_usage_error(&tool, "give either an input map or --like, not both");

    struct cryo_mask_opts mo;
    cryo_mask_opts_default(&mo);
    mo.use_threshold = has_thr;
    if (has_thr)
        mo.threshold = cryo_args_double(a, "threshold");
    if (cryo_args_has(a, "lowpass")) {
        mo.lowpass = cryo_args_double(a, "lowpass");
        if (!(mo.lowpass > 0))
            cli_usage_error(&tool, "--lowpass: must be > 0 Å (got %g)", mo.lowpass);
    }
    if (has_model) {
        mo.zone = cryo_args_double(a, "zone");
        if (!(mo.zone > 0))
            cli_usage_error(&tool, "--zone: must be > 0 Å (got %g)", mo.zone);
    }
    mo.invert = cryo_args_flag(a, "invert");

    const char *grid_path = has_like ? cryo_args_string(a, "like") : cli.inputs[0];
    struct cryo_volume map;
    cryo_volume_init(&map);
    if (cryo_read_one(&map, grid_path, &err) < 0)
        cli_die(&cli, &err);
    const char *gname = strcmp(grid_path, "-") == 0 ? "stdin" : grid_path;
    if (map.c != 1) {
        fprintf(stderr, "%s: %s: has %lld channels; a mask needs a single-channel map\n", tool.name, gname,
                (long long)map.c);
        exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
    }
    if (cryo_volume_convert(&map, CRYO_DTYPE_F32, &err) < 0 ||
        (has_thr && cryo_volume_check_finite(&map, gname, &err) < 0))
        cli_die(&cli, &err);
    for (int d = 0; d < 3; d++)
        if (!(map.apix[d] > 0) || !isfinite(map.apix[d])) {
            fprintf(stderr, "%s: %s: voxel size along %c is %g: set it in the header (e.g. vol-convert --apix)\n",
                    tool.name, gname, "xyz"[d], map.apix[d]);
            exit(1);
        }
    struct cryo_mask_grid g;
    double amin = cryo_mask_grid_of(&map, &g);
    if (cryo_args_has(a, "extend"))
        mo.extend = parse_length("extend", cryo_args_string(a, "extend"), amin, 1);
    if (cryo_args_has(a, "soft-edge"))
        mo.soft_edge = parse_length("soft-edge", cryo_args_string(a, "soft-edge"), amin, 0);

    struct cryo_model model;
    cryo_model_init(&model);
    if (has_model) {
        struct cryo_model_opts fo;
        cryo_model_opts_default(&fo);
        if (cryo_model_read(&model, cryo_args_string(a, "model"), &fo, &err) < 0)
            cli_die(&cli, &err);
        mo.model = &model;
    }

    struct cryo_volume mask;
    cryo_volume_init(&mask);
    size_t n_bin = 0;
    if (cryo_mask_make(&mask, &map, &mo, &n_bin, &err) < 0) {
        cryo_error_prefix(&err, gname);
        cli_die(&cli, &err);
    }
    size_t n = cryo_volume_channel_count(&mask);
    if (n_bin == 0)
        cli_warn(&cli, "%s: the binary mask is empty (threshold above the map, or no atom inside the box)", gname);
    if (cryo_meta_set(&mask.meta, has_like ? "mask.grid" : "source", gname, &err) < 0 ||
        (has_model && cryo_meta_set(&mask.meta, "mask.model", cryo_args_string(a, "model"), &err) < 0) ||
        cryo_meta_setf(&mask.meta, &err, "mask.binary_voxels", "%zu", n_bin) < 0 ||
        cryo_meta_add_history(&mask.meta, cli.history, &err) < 0)
        cli_die(&cli, &err);
    if (cryo_write_one(cli.output, &mask, &cli.sink_opts, &err) < 0)
        cli_die(&cli, &err);
    if (!cli.quiet && cli.output)
        fprintf(stderr, "%s: %zu of %zu voxels (%.2f%%) in the binary mask; soft edge %g voxels -> %s\n", tool.name,
                n_bin, n, 100.0 * (double)n_bin / (double)n, mo.soft_edge, cli.output);
    cryo_volume_free(&mask);
    cryo_volume_free(&map);
    cryo_model_free(&model);
    cli_free(&cli);
    return 0;
}
