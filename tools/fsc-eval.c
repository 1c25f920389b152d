/* fsc-eval — Fourier shell correlation of two maps (half maps, or a map and a reference),
 * the resolution at FSC thresholds, optional masked FSC with relion's phase-randomisation
 * correction, and the curve as TSV / JSON / a figure. Arithmetic in libcore/fsc.c.
 *
 * Shape of main: parse -> read both maps (and the mask) -> cryo_fsc_compute -> report.
 * Map-versus-model metrics (--model, libcore/mapmodel_run.c) hook in at run_model(). */
#include "common/cli.h"
#include "common/plot.h"
#include "cryolvm/fsc.h"
#include "cryolvm/mapmodel.h"
#include "cryolvm/outfile.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cryo_option options[] = {
    {"mask", 'm', CRYO_OPT_STRING, "FILE", NULL,
     "Mask (values 0..1, soft edge) on the maps' grid: also report the masked and phase-randomisation corrected FSC", NULL},
    {"thresholds", 't', CRYO_OPT_DOUBLES, "T1,T2", "0.143,0.5", "FSC thresholds at which to report the resolution (1 to 3 values)", NULL},
    {"randomize-fsc", 0, CRYO_OPT_DOUBLE, "F", "0.8", "With --mask: randomise phases beyond the first shell where the unmasked FSC < F (relion)", NULL},
    {"randomize-at", 0, CRYO_OPT_DOUBLE, "Å", NULL, "With --mask: randomise phases beyond this resolution instead", NULL},
    {"seed", 0, CRYO_OPT_INT, "N", "1", "Seed of the random phases", NULL},
    {"relion-weights", 0, CRYO_OPT_FLAG, NULL, NULL, "Sum the stored half spectrum with equal weights, as relion does (default: full sphere)", NULL},
    {"tsv", 0, CRYO_OPT_STRING, "FILE", NULL, "Write the curve(s) as tab-separated values", NULL},
    {"json", 'j', CRYO_OPT_FLAG, NULL, NULL, "Print one JSON object (resolutions and curves) instead of the summary", NULL},
    {"plot", 'p', CRYO_OPT_STRING, "FILE", NULL, "Draw the curve(s) with thresholds marked, to FILE.png or FILE.svg", NULL},
    {"title", 0, CRYO_OPT_STRING, "TEXT", NULL, "Title of the plot", NULL},
    {"plot-with", 0, CRYO_OPT_STRING, "MAP3", NULL,
     "With --plot: also draw the FSC of MAP3 against MAP2 (e.g. MAP1 before processing); each curve labelled with its map and its FSC = 0.143 resolution", NULL},
    {"model", 0, CRYO_OPT_STRING, "MODEL", NULL, "Map-versus-model metrics against this PDB/mmCIF model (one map input; needs --res)", NULL},
    {"res", 0, CRYO_OPT_DOUBLE, "Å", NULL, "With --model: resolution of the model map, Å", NULL},
    {"mask-radius", 0, CRYO_OPT_DOUBLE, "Å", NULL, "With --model: CC_mask radius around atoms (default: phenix's automatic radius from res and mean B)", NULL},
    {"d-model", 0, CRYO_OPT_FLAG, NULL, NULL, "With --model: also find d_model, the model-map resolution that fits best", NULL},
    {"q-sigma", 0, CRYO_OPT_DOUBLE, "Å", "0.6", "With --model: width of the Q-score reference Gaussian", NULL},
    {"q-atoms", 0, CRYO_OPT_STRING, "TSV", NULL, "With --model: write per-atom Q-scores", NULL},
    {"q-residues", 0, CRYO_OPT_STRING, "TSV", NULL, "With --model: write per-residue Q-scores", NULL},
    {"q-model", 0, CRYO_OPT_STRING, "FILE", NULL, "With --model: write the model with Q-scores in the B-factor column (mmCIF if FILE ends in .cif or .mmcif, else PDB)", NULL},
    {"q-attr", 0, CRYO_OPT_STRING, "FILE", NULL, "With --model: write Q-scores as a ChimeraX attribute file (attribute qscore; open FILE.defattr)", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "fsc-eval", "Fourier shell correlation of two maps, resolution at FSC thresholds, masked FSC with phase randomisation",
    "[OPTIONS] MAP1 MAP2", options, 1, 2, 0, 0};

static void die_msg(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", tool.name);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

/* "0.143" -> "fsc_0143", "0.5" -> "fsc_05" */
static void thr_key(char *b, size_t n, double t)
{
    char num[32];
    snprintf(num, sizeof num, "%g", t);
    size_t k = (size_t)snprintf(b, n, "fsc_");
    for (const char *c = num; *c && k + 1 < n; c++)
        if (*c != '.')
            b[k++] = *c == '-' ? 'm' : *c;
    b[k] = 0;
}

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *jarr(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jnum(v[i]));
    return a;
}

struct text_report {
    void (*fn)(FILE *, const void *);
    const void *ctx;
};

static int fill_text_report(FILE *f, void *ctx, const char *name, struct cryo_error *err)
{
    (void)name;
    (void)err;
    const struct text_report *r = ctx;
    r->fn(f, r->ctx);
    return CRYO_OK; /* a failed write shows at commit */
}

/* Write text produced by fn through libcore's one output path (outfile.h: a file is renamed
 * into place when complete, a link keeps pointing at it, a device or /dev/stdout is written
 * in place). Returns 0; a failure prints one line naming the file and exits 1 (the int
 * return is kept so that calls written for the errno contract still read right). */
static int write_atomic(const char *path, void (*fn)(FILE *, const void *), const void *ctx)
{
    struct text_report r = {fn, ctx};
    struct cryo_error err = {0};
    if (cryo_outfile_write(path, fill_text_report, &r, NULL, &err) < 0) {
        fprintf(stderr, "%s: %s\n", tool.name, err.msg);
        exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
    }
    return 0;
}

static void tsv_rows(FILE *f, const void *ctx)
{
    const struct cryo_fsc *c = ctx;
    fprintf(f, "shell\tinv_angstrom\tangstrom\tfsc");
    if (c->fsc_true)
        fprintf(f, "\tfsc_masked\tfsc_random_masked\tfsc_corrected");
    fprintf(f, "\tcount\n");
    for (size_t q = 0; q < c->nshell; q++) {
        fprintf(f, "%zu\t%.6f\t%.4f\t%.6f", q, c->s[q], q ? 1.0 / c->s[q] : INFINITY, c->fsc[q]);
        if (c->fsc_true)
            fprintf(f, "\t%.6f\t%.6f\t%.6f", c->fsc_masked[q], c->fsc_rand[q], c->fsc_true[q]);
        fprintf(f, "\t%lld\n", (long long)c->count[q]);
    }
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* "NAME (0.143: 3.21 Å)" or "NAME (0.143 not reached)" for a compared curve's legend */
static void curve_label(char *b, size_t n, const char *path, const struct cryo_fsc *c)
{
    struct cryo_fsc_res r;
    cryo_fsc_resolution(c->s, c->fsc_true ? c->fsc_true : c->fsc, c->nshell, 0.143, &r);
    if (r.reached)
        snprintf(b, n, "%s (FSC = 0.143 at %.2f Å)", base_name(path), r.interp);
    else
        snprintf(b, n, "%s (FSC = 0.143 not reached)", base_name(path));
}

/* c2 (may be NULL): the FSC of --plot-with's map against MAP2; then each map is one curve
 * (the corrected one with --mask) named after its file, and the reference lines mark MAP1's */
static void do_plot(const char *path, const struct cryo_fsc *c, const double *thr, int nthr,
                    const struct cryo_fsc_res *res, const char *title, const struct cryo_fsc *c2,
                    const char *name1, const char *name2)
{
    struct plot_series ser[4];
    char lab1[256], lab2[256];
    size_t ns = 0;
    /* Shell 0 is the single DC coefficient: it only compares the two maps' means, which a
     * cryo-EM map does not define (it reads -1 when one map's solvent sits below zero), so
     * the curves start at shell 1; the TSV and JSON keep every shell. */
    const size_t q0 = c->nshell > 1 ? 1 : 0, np = c->nshell - q0;
    if (c2) {
        curve_label(lab1, sizeof lab1, name1, c);
        curve_label(lab2, sizeof lab2, name2, c2);
        ser[ns++] = (struct plot_series){lab1, c->s + q0, (c->fsc_true ? c->fsc_true : c->fsc) + q0, np, {0.12, 0.35, 0.85}, 2.2, 0};
        ser[ns++] = (struct plot_series){lab2, c2->s + q0, (c2->fsc_true ? c2->fsc_true : c2->fsc) + q0, np, {0.85, 0.35, 0.1}, 1.8, 1};
    } else if (c->fsc_true) {
        ser[ns++] = (struct plot_series){"corrected (masked, phase-randomised)", c->s + q0, c->fsc_true + q0, np, {0, 0, 0}, 2.2, 0};
        ser[ns++] = (struct plot_series){"masked", c->s + q0, c->fsc_masked + q0, np, {0.12, 0.35, 0.85}, 1.4, 0};
        ser[ns++] = (struct plot_series){"unmasked", c->s + q0, c->fsc + q0, np, {0.1, 0.6, 0.2}, 1.4, 0};
        ser[ns++] = (struct plot_series){"phase-randomised, masked", c->s + q0, c->fsc_rand + q0, np, {0.85, 0.15, 0.15}, 1.4, 1};
    } else {
        ser[ns++] = (struct plot_series){"FSC", c->s + q0, c->fsc + q0, np, {0, 0, 0}, 2.2, 0};
    }
    struct plot_line hl[3], vl[3];
    char hlab[3][32], vlab[3][48];
    double ymin = 0;
    for (size_t s = 0; s < ns; s++)
        for (size_t q = 0; q < ser[s].n; q++)
            if (ser[s].y[q] < ymin)
                ymin = ser[s].y[q];
    ymin = ymin < -0.05 ? floor(ymin * 10) / 10 : -0.05; /* the whole curve stays in the frame */
    for (int i = 0; i < nthr; i++) {
        snprintf(hlab[i], sizeof hlab[i], "FSC = %g", thr[i]);
        snprintf(vlab[i], sizeof vlab[i], "%.2f Å", res[i].interp);
        hl[i] = (struct plot_line){thr[i], hlab[i], {0.45, 0.45, 0.45}};
        vl[i] = (struct plot_line){res[i].reached ? 1.0 / res[i].interp : NAN, vlab[i], {0.45, 0.45, 0.45}};
    }
    struct plot_spec p = {title, "spatial frequency (1/Å)", "Fourier shell correlation", "resolution (Å)",
                          0, c->s[c->nshell - 1], ymin, 1.05, ser, ns, hl, vl, (size_t)nthr, (size_t)nthr, 0, 0};
    char msg[512];
    if (plot_write(path, &p, msg, sizeof msg) != 0) {
        fprintf(stderr, "%s: %s\n", tool.name, msg);
        exit(1);
    }
}

/* fsc-eval MAP --model MODEL --res R: map-versus-model metrics (libcore/mapmodel_run.c).
 * New map-model options go in the table above and into the request here. */
static int run_model(struct cryo_cli *cli, const struct cryo_volume *map)
{
    if (!cryo_args_has(cli->args, "res"))
        cli_usage_error(&tool, "--model needs --res (resolution of the model map, Å)");
    struct cryo_mapmodel_request rq;
    memset(&rq, 0, sizeof rq);
    rq.model_path = cryo_args_string(cli->args, "model");
    rq.resolution = cryo_args_double(cli->args, "res");
    if (!(rq.resolution > 0))
        cli_usage_error(&tool, "--res: must be > 0 (got %g)", rq.resolution);
    rq.mask_radius = cryo_args_has(cli->args, "mask-radius") ? cryo_args_double(cli->args, "mask-radius") : 0;
    rq.q_sigma = cryo_args_double(cli->args, "q-sigma");
    if (cryo_args_has(cli->args, "mask-radius") && !(rq.mask_radius > 0))
        cli_usage_error(&tool, "--mask-radius: must be > 0 (got %g)", rq.mask_radius);
    if (!(rq.q_sigma > 0))
        cli_usage_error(&tool, "--q-sigma: must be > 0 (got %g)", rq.q_sigma);
    rq.d_model = cryo_args_flag(cli->args, "d-model");
    rq.q_atoms_path = cryo_args_has(cli->args, "q-atoms") ? cryo_args_string(cli->args, "q-atoms") : NULL;
    rq.q_residues_path = cryo_args_has(cli->args, "q-residues") ? cryo_args_string(cli->args, "q-residues") : NULL;
    rq.q_model_path = cryo_args_has(cli->args, "q-model") ? cryo_args_string(cli->args, "q-model") : NULL;
    rq.q_attr_path = cryo_args_has(cli->args, "q-attr") ? cryo_args_string(cli->args, "q-attr") : NULL;
    struct cryo_mapmodel_report rep;
    memset(&rep, 0, sizeof rep);
    struct cryo_error err = {0};
    int json = cryo_args_flag(cli->args, "json");
    if (cryo_mapmodel_run(map, cli->inputs[0], &rq, &rep, &err) < 0 ||
        ((json || !cli->quiet) && cryo_mapmodel_print(stdout, &rep, rq.resolution, json, &err) < 0))
        cli_die(cli, &err);
    cryo_mapmodel_report_free(&rep);
    return 0;
}

static void read_map(struct cryo_volume *v, const char *path, struct cryo_cli *cli)
{
    struct cryo_error err = {0};
    if (cryo_read_one(v, path, &err) < 0)
        cli_die(cli, &err);
    if (v->c != 1)
        die_msg("%s: has %s channels; FSC needs single-channel maps", path, "several");
    if (cryo_volume_convert(v, CRYO_DTYPE_F32, &err) < 0 || cryo_volume_check_finite(v, path, &err) < 0)
        cli_die(cli, &err);
    for (int d = 0; d < 3; d++)
        if (!(v->apix[d] > 0) || !isfinite(v->apix[d]))
            die_msg("%s: voxel size is %s: set it in the header (e.g. vol-convert --apix)", path,
                    v->apix[d] == 0 ? "0" : "not positive");
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    int json = cryo_args_flag(cli.args, "json");

    if (cryo_args_has(cli.args, "model")) {
        if (cli.n_inputs != 1)
            cli_usage_error(&tool, "--model compares one map with a model: give exactly one map");
        if (cryo_args_has(cli.args, "plot-with"))
            cli_usage_error(&tool, "--plot-with applies to two maps with --plot, not to --model");
        struct cryo_volume map;
        cryo_volume_init(&map);
        read_map(&map, cli.inputs[0], &cli);
        int rc = run_model(&cli, &map);
        cryo_volume_free(&map);
        cli_free(&cli);
        return rc;
    }
    if (cli.n_inputs != 2)
        cli_usage_error(&tool, "needs two maps (or one map with --model)");
    if (cryo_args_has(cli.args, "res") || cryo_args_has(cli.args, "mask-radius") || cryo_args_flag(cli.args, "d-model") ||
        cryo_args_given(cli.args, "q-sigma") || cryo_args_has(cli.args, "q-atoms") ||
        cryo_args_has(cli.args, "q-residues") || cryo_args_has(cli.args, "q-model") || cryo_args_has(cli.args, "q-attr"))
        cli_usage_error(&tool, "--res, --mask-radius, --d-model and --q-* apply to --model only");

    double thr[3];
    int nthr = cryo_args_doubles(cli.args, "thresholds", thr);
    for (int i = 0; i < nthr; i++)
        if (!(thr[i] > 0 && thr[i] < 1))
            cli_usage_error(&tool, "--thresholds: %g is not in (0, 1)", thr[i]);
    struct cryo_fsc_opts o;
    cryo_fsc_opts_default(&o);
    o.randomize_fsc = cryo_args_double(cli.args, "randomize-fsc");
    if (!(o.randomize_fsc > 0 && o.randomize_fsc < 1))
        cli_usage_error(&tool, "--randomize-fsc: %g is not in (0, 1)", o.randomize_fsc);
    if (cryo_args_has(cli.args, "randomize-at")) {
        o.randomize_at_A = cryo_args_double(cli.args, "randomize-at");
        if (!(o.randomize_at_A > 0))
            cli_usage_error(&tool, "--randomize-at: must be > 0 Å (got %g)", o.randomize_at_A);
    }
    o.half_weights = cryo_args_flag(cli.args, "relion-weights");
    long seed = cryo_args_int(cli.args, "seed");
    o.seed = (uint64_t)seed;
    const char *plot = cryo_args_has(cli.args, "plot") ? cryo_args_string(cli.args, "plot") : NULL;
    if (plot) {
        size_t n = strlen(plot);
        if (n < 4 || (strcasecmp(plot + n - 4, ".png") != 0 && strcasecmp(plot + n - 4, ".svg") != 0))
            cli_usage_error(&tool, "--plot: '%s' must end in .png or .svg", plot);
    }
    const char *with_path = cryo_args_has(cli.args, "plot-with") ? cryo_args_string(cli.args, "plot-with") : NULL;
    if (with_path && !plot)
        cli_usage_error(&tool, "--plot-with needs --plot FILE");

    struct cryo_volume a, b, m, w;
    cryo_volume_init(&a);
    cryo_volume_init(&b);
    cryo_volume_init(&m);
    cryo_volume_init(&w);
    read_map(&a, cli.inputs[0], &cli);
    read_map(&b, cli.inputs[1], &cli);
    if (a.nx != b.nx || a.ny != b.ny || a.nz != b.nz) {
        fprintf(stderr, "%s: %s is %lldx%lldx%lld but %s is %lldx%lldx%lld: resample one onto the other's grid first\n",
                tool.name, cli.inputs[0], (long long)a.nx, (long long)a.ny, (long long)a.nz, cli.inputs[1],
                (long long)b.nx, (long long)b.ny, (long long)b.nz);
        exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
    }
    for (int d = 0; d < 3; d++)
        if (fabs(a.apix[d] - b.apix[d]) > 1e-3 * a.apix[d]) {
            fprintf(stderr, "%s: %s has voxel size %g Å but %s has %g Å (axis %c)\n", tool.name, cli.inputs[0],
                    a.apix[d], cli.inputs[1], b.apix[d], "xyz"[d]);
            exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
        }
    if (with_path) {
        read_map(&w, with_path, &cli);
        if (w.nx != b.nx || w.ny != b.ny || w.nz != b.nz) {
            fprintf(stderr, "%s: %s (--plot-with) is %lldx%lldx%lld but %s is %lldx%lldx%lld: resample it onto that grid first\n",
                    tool.name, with_path, (long long)w.nx, (long long)w.ny, (long long)w.nz, cli.inputs[1],
                    (long long)b.nx, (long long)b.ny, (long long)b.nz);
            exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
        }
        for (int d = 0; d < 3; d++)
            if (fabs(w.apix[d] - b.apix[d]) > 1e-3 * b.apix[d]) {
                fprintf(stderr, "%s: %s (--plot-with) has voxel size %g Å but %s has %g Å (axis %c)\n", tool.name,
                        with_path, w.apix[d], cli.inputs[1], b.apix[d], "xyz"[d]);
                exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
            }
    }
    const char *mask_path = NULL;
    if (cryo_args_has(cli.args, "mask")) {
        mask_path = cryo_args_string(cli.args, "mask");
        read_map(&m, mask_path, &cli);
        if (m.nx != a.nx || m.ny != a.ny || m.nz != a.nz) {
            fprintf(stderr, "%s: %s: mask is %lldx%lldx%lld but the maps are %lldx%lldx%lld\n", tool.name, mask_path,
                    (long long)m.nx, (long long)m.ny, (long long)m.nz, (long long)a.nx, (long long)a.ny,
                    (long long)a.nz);
            exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
        }
        struct cryo_stats st;
        cryo_volume_stats(&m, &st);
        if (st.min < -1e-6 || st.max > 1 + 1e-6 || st.max <= 0) {
            fprintf(stderr, "%s: %s: mask values must lie in [0, 1] and not all be 0 (min %g, max %g)\n", tool.name,
                    mask_path, st.min, st.max);
            exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
        }
        o.mask = &m;
    } else if (cryo_args_given(cli.args, "randomize-at") || cryo_args_given(cli.args, "randomize-fsc")) {
        cli_usage_error(&tool, "--randomize-at/--randomize-fsc apply with --mask only");
    }

    struct cryo_fsc c;
    if (cryo_fsc_compute(&c, &a, &b, &o, &err) < 0) {
        cryo_error_prefix(&err, mask_path ? mask_path : cli.inputs[0]);
        cli_die(&cli, &err);
    }
    struct cryo_fsc c2;
    memset(&c2, 0, sizeof c2);
    if (with_path && cryo_fsc_compute(&c2, &w, &b, &o, &err) < 0) {
        cryo_error_prefix(&err, with_path);
        cli_die(&cli, &err);
    }
    const double *head = c.fsc_true ? c.fsc_true : c.fsc;
    struct cryo_fsc_res res[3];
    for (int i = 0; i < nthr; i++)
        cryo_fsc_resolution(c.s, head, c.nshell, thr[i], &res[i]);
    double nyq_A = 1.0 / c.s[c.nshell - 1];
    if (c.fsc_true) {
        /* relion_postprocess's sanity checks on the correction, as warnings */
        struct cryo_fsc_res un, co;
        cryo_fsc_resolution(c.s, c.fsc, c.nshell, 0.143, &un);
        cryo_fsc_resolution(c.s, c.fsc_true, c.nshell, 0.143, &co);
        if (un.shell_index > co.shell_index)
            cli_warn(&cli, "the unmasked FSC extends beyond the mask-corrected one (%.3f vs %.3f Å): check the mask",
                     un.shell, co.shell);
        else if (co.shell_index < (int)c.nshell && c.fsc_rand[co.shell_index > 0 ? co.shell_index - 1 : 0] > 0.1)
            cli_warn(&cli, "the phase-randomised masked FSC is above 0.1 at the resolution: use a softer mask");
    }

    if (cryo_args_has(cli.args, "tsv")) {
        const char *tsv = cryo_args_string(cli.args, "tsv");
        int e = write_atomic(tsv, tsv_rows, &c);
        if (e) {
            fprintf(stderr, "%s: %s: cannot write: %s\n", tool.name, tsv, strerror(e));
            exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
        }
    }
    if (plot)
        do_plot(plot, &c, thr, nthr, res, cryo_args_has(cli.args, "title") ? cryo_args_string(cli.args, "title") : NULL,
                with_path ? &c2 : NULL, cli.inputs[0], with_path);

    if (json) {
        json_t *o_ = json_object();
        char key[48];
        for (int i = 0; i < nthr; i++) {
            thr_key(key, sizeof key, thr[i]);
            json_object_set_new(o_, key, jnum(res[i].interp));
            strcat(key, "_shell");
            json_object_set_new(o_, key, jnum(res[i].shell));
        }
        json_t *tl = json_array();
        for (int i = 0; i < nthr; i++)
            json_array_append_new(tl, json_pack("{s:f,s:o,s:o,s:b}", "threshold", thr[i], "interp", jnum(res[i].interp),
                                                "shell", jnum(res[i].shell), "reached", res[i].reached));
        json_object_set_new(o_, "thresholds", tl);
        json_object_set_new(o_, "nyquist", jnum(nyq_A));
        json_object_set_new(o_, "shell_width", jnum(c.ds));
        json_object_set_new(o_, "masked", json_boolean(c.fsc_true != NULL));
        if (c.fsc_true) {
            json_object_set_new(o_, "randomize_at_shell", json_integer(c.randomize_at));
            json_object_set_new(o_, "randomize_at", jnum(1.0 / c.s[c.randomize_at]));
        }
        json_t *cur = json_object();
        json_t *sh = json_array(), *d = json_array();
        for (size_t q = 0; q < c.nshell; q++) {
            json_array_append_new(sh, json_integer((json_int_t)q));
            json_array_append_new(d, q ? jnum(1.0 / c.s[q]) : json_null());
        }
        json_object_set_new(cur, "shell", sh);
        json_object_set_new(cur, "inv_angstrom", jarr(c.s, c.nshell));
        json_object_set_new(cur, "angstrom", d);
        json_object_set_new(cur, "fsc", jarr(c.fsc, c.nshell));
        if (c.fsc_true) {
            json_object_set_new(cur, "fsc_masked", jarr(c.fsc_masked, c.nshell));
            json_object_set_new(cur, "fsc_random_masked", jarr(c.fsc_rand, c.nshell));
            json_object_set_new(cur, "fsc_corrected", jarr(c.fsc_true, c.nshell));
        }
        json_object_set_new(o_, "curve", cur);
        json_dumpf(o_, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(8));
        fputc('\n', stdout);
        json_decref(o_);
    } else if (!cli.quiet) {
        printf("%s: FSC %s vs %s, %zu shells of %.5f 1/Å to Nyquist %.3f Å\n", tool.name, cli.inputs[0],
               cli.inputs[1], c.nshell, c.ds, nyq_A);
        if (c.fsc_true)
            printf("  mask %s; phases randomised beyond %.3f Å (shell %d); resolutions from the corrected FSC\n",
                   mask_path, 1.0 / c.s[c.randomize_at], c.randomize_at);
        for (int i = 0; i < nthr; i++) {
            if (res[i].reached)
                printf("  FSC = %g at %.3f Å (interpolated; relion's last shell above: %.3f Å)\n", thr[i],
                       res[i].interp, res[i].shell);
            else
                printf("  FSC = %g not reached: above it up to Nyquist %.3f Å\n", thr[i], nyq_A);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: write failed: %s\n", tool.name, strerror(errno));
        exit(1); /* exit, not return: what main holds stays reachable for leak checkers */
    }
    cryo_fsc_free(&c);
    if (with_path)
        cryo_fsc_free(&c2);
    cryo_volume_free(&w);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    cryo_volume_free(&m);
    cli_free(&cli);
    return 0;
}
