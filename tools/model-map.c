/* model-map — atomic model (PDB/mmCIF) to simulated density map, as Chimera's molmap.
 * Either on the exact grid of an existing map (--like, for voxel-by-voxel comparison) or
 * on a box around the model (--apix, --pad). See molmap.h for the density definition. */
#include "common/cli.h"
#include "cryolvm/model.h"
#include "cryolvm/molmap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct cryo_option options[] = {
    {"res", 'r', CRYO_OPT_DOUBLE, "Å", NULL, "Resolution in Å (required): sigma = sigma-factor x res", NULL},
    {"like", 'l', CRYO_OPT_STRING, "MAP", NULL, "Put the map on exactly this map's grid (box, voxel size, origin)", NULL},
    {"apix", 0, CRYO_OPT_DOUBLE, "Å", NULL, "Voxel size of the box around the model (default res/3, as molmap)", NULL},
    {"pad", 0, CRYO_OPT_DOUBLE, "Å", NULL, "Padding around the atoms' bounding box (default 3 x res, as molmap)", NULL},
    {"cutoff", 0, CRYO_OPT_DOUBLE, "SIGMAS", "5", "Evaluate each Gaussian within this many sigma (molmap cutoffRange)", NULL},
    {"sigma-factor", 0, CRYO_OPT_DOUBLE, "F", "0.225079", "sigma = F x res; 1/(pi sqrt 2) as molmap", NULL},
    {"bfactor", 'b', CRYO_OPT_FLAG, NULL, NULL, "Widen each atom by its B-factor: sigma^2 += B/(8 pi^2)", NULL},
    {"hydrogens", 0, CRYO_OPT_FLAG, NULL, NULL, "Include hydrogen atoms (dropped by default)", NULL},
    {"waters", 0, CRYO_OPT_FLAG, NULL, NULL, "Include water molecules (dropped by default)", NULL},
    {"no-ligands", 0, CRYO_OPT_FLAG, NULL, NULL, "Drop HETATM records other than water", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "model-map", "simulate a density map from an atomic model (PDB or mmCIF), as Chimera molmap",
    "[OPTIONS] --res Å MODEL", options, 1, 1, 1, 0};

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    if (!cryo_args_has(cli.args, "res"))
        cli_usage_error(&tool, "--res is required");
    double res = cryo_args_double(cli.args, "res");
    if (!(res > 0))
        cli_usage_error(&tool, "--res: must be > 0 (got %g)", res);
    if (cryo_args_has(cli.args, "like") && (cryo_args_has(cli.args, "apix") || cryo_args_has(cli.args, "pad")))
        cli_usage_error(&tool, "--like takes the grid from the map: do not combine it with --apix or --pad");

    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, res);
    mo.cutoff = cryo_args_double(cli.args, "cutoff");
    mo.sigma_factor = cryo_args_double(cli.args, "sigma-factor");
    /* the table's text default is rounded: use the exact constant unless given */
    if (!cryo_args_given(cli.args, "sigma-factor"))
        mo.sigma_factor = CRYO_MOLMAP_SIGMA_FACTOR;
    mo.use_bfactor = cryo_args_flag(cli.args, "bfactor");
    mo.threads = cli.threads;
    if (!(mo.cutoff > 0))
        cli_usage_error(&tool, "--cutoff: must be > 0 (got %g)", mo.cutoff);
    if (!(mo.sigma_factor > 0))
        cli_usage_error(&tool, "--sigma-factor: must be > 0 (got %g)", mo.sigma_factor);

    struct cryo_model_opts fo;
    cryo_model_opts_default(&fo);
    fo.hydrogens = cryo_args_flag(cli.args, "hydrogens");
    fo.waters = cryo_args_flag(cli.args, "waters");
    fo.ligands = !cryo_args_flag(cli.args, "no-ligands");

    struct cryo_model m;
    cryo_model_init(&m);
    if (cryo_model_read(&m, cli.inputs[0], &fo, &err) < 0)
        cli_die(&cli, &err);

    struct cryo_volume v;
    cryo_volume_init(&v);
    if (cryo_args_has(cli.args, "like")) {
        const char *like = cryo_args_string(cli.args, "like");
        struct cryo_volume ref;
        cryo_volume_init(&ref);
        if (cryo_read_one(&ref, like, &err) < 0)
            cli_die(&cli, &err);
        if (cryo_volume_alloc(&v, CRYO_DTYPE_F32, 1, ref.nz, ref.ny, ref.nx, &err) < 0)
            cli_die(&cli, &err);
        memcpy(v.apix, ref.apix, sizeof v.apix);
        memcpy(v.origin, ref.origin, sizeof v.origin);
        cryo_volume_free(&ref);
    } else {
        double apix = cryo_args_has(cli.args, "apix") ? cryo_args_double(cli.args, "apix") : res / 3;
        double pad = cryo_args_has(cli.args, "pad") ? cryo_args_double(cli.args, "pad") : 3 * res;
        if (!(apix > 0))
            cli_usage_error(&tool, "--apix: must be > 0 (got %g)", apix);
        if (!(pad >= 0))
            cli_usage_error(&tool, "--pad: must be >= 0 (got %g)", pad);
        if (cryo_molmap_grid(&v, &m, apix, pad, &err) < 0) {
            cryo_error_prefix(&err, cli.inputs[0]);
            cli_die(&cli, &err);
        }
    }
    if (cryo_molmap_render(&v, &m, &mo, &err) < 0) {
        cryo_error_prefix(&err, cli.inputs[0]);
        cli_die(&cli, &err);
    }
    if (cryo_meta_set(&v.meta, "source", cli.inputs[0], &err) < 0 ||
        cryo_meta_setf(&v.meta, &err, "molmap.resolution", "%g", res) < 0 ||
        cryo_meta_add_history(&v.meta, cli.history, &err) < 0)
        cli_die(&cli, &err);
    if (cryo_write_one(cli.output, &v, &cli.sink_opts, &err) < 0)
        cli_die(&cli, &err);
    if (!cli.quiet && cli.output)
        fprintf(stderr, "model-map: %zu atoms -> %lldx%lldx%lld at %.4g Å/voxel\n", m.n,
                (long long)v.nx, (long long)v.ny, (long long)v.nz, v.apix[0]);
    cryo_volume_free(&v);
    cryo_model_free(&m);
    cli_free(&cli);
    return 0;
}
