/* hist-compare — Gaussian-kernel soft histograms of two maps and their divergences
 * (Jensen–Shannon, KL both ways), exactly as the HistKL training loss defines them
 * (libcore/include/cryolvm/hist.h), so the number a user sees is the one the model saw.
 * Shape of main: parse -> read both maps (and the mask) -> choose the range -> histograms
 * -> summary / JSON / plot. */
#include "common/cli.h"
#include "common/plot.h"
#include "cryolvm/hist.h"
#include "cryolvm/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct cryo_option options[] = {
    {"bins", 'b', CRYO_OPT_INT, "N", "100", "Number of histogram bins", NULL},
    {"range", 'r', CRYO_OPT_DOUBLES, "LO,HI", NULL, "Span of the bins (default: min and max over both maps' used voxels)", NULL},
    {"sigma", 's', CRYO_OPT_DOUBLE, "S", NULL, "Gaussian kernel width in density units (default: one bin width)", NULL},
    {"mask", 'm', CRYO_OPT_STRING, "FILE", NULL, "Use only voxels where this mask is > 0.5 (same grid as both maps)", NULL},
    {"json", 'j', CRYO_OPT_FLAG, NULL, NULL, "Print one JSON object (divergences, spec, histograms) instead of the summary", NULL},
    {"plot", 'p', CRYO_OPT_STRING, "FILE", NULL, "Draw both histograms to FILE.png or FILE.svg", NULL},
    {"title", 0, CRYO_OPT_STRING, "TEXT", NULL, "Title of the plot", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "hist-compare", "soft (Gaussian-kernel) histograms of two maps and their Jensen-Shannon and KL divergences",
    "[OPTIONS] MAP1 MAP2", options, 2, 2, 0, 0};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void read_map(struct cryo_volume *v, const char *path, struct cryo_cli *cli)
{
    struct cryo_error err = {0};
    if (cryo_read_one(v, path, &err) < 0)
        cli_die(cli, &err);
    if (cryo_volume_convert(v, CRYO_DTYPE_F32, &err) < 0 || cryo_volume_check_finite(v, path, &err) < 0)
        cli_die(cli, &err);
}

static int same_grid(const struct cryo_volume *a, const struct cryo_volume *b)
{
    return a->c == b->c && a->nx == b->nx && a->ny == b->ny && a->nz == b->nz;
}

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    struct cryo_hist_spec spec;
    long bins = cryo_args_int(cli.args, "bins");
    if (bins < 1 || bins > 1 << 20)
        cli_usage_error(&tool, "--bins: %ld is not in 1..1048576", bins);
    spec.bins = (int)bins;
    double rng[3] = {0, 0, 0};
    int have_range = cryo_args_has(cli.args, "range");
    if (have_range) {
        if (cryo_args_doubles(cli.args, "range", rng) != 2)
            cli_usage_error(&tool, "--range takes two numbers LO,HI");
        if (!(rng[1] > rng[0]))
            cli_usage_error(&tool, "--range: HI (%g) must be greater than LO (%g)", rng[1], rng[0]);
    }
    if (cryo_args_has(cli.args, "sigma") && !(cryo_args_double(cli.args, "sigma") > 0))
        cli_usage_error(&tool, "--sigma: must be > 0 (got %g)", cryo_args_double(cli.args, "sigma"));
    const char *plot = cryo_args_has(cli.args, "plot") ? cryo_args_string(cli.args, "plot") : NULL;
    if (plot) {
        size_t n = strlen(plot);
        if (n < 4 || (strcasecmp(plot + n - 4, ".png") != 0 && strcasecmp(plot + n - 4, ".svg") != 0))
            cli_usage_error(&tool, "--plot: '%s' must end in .png or .svg", plot);
    }

    struct cryo_volume v[2], m;
    cryo_volume_init(&v[0]);
    cryo_volume_init(&v[1]);
    cryo_volume_init(&m);
    read_map(&v[0], cli.inputs[0], &cli);
    read_map(&v[1], cli.inputs[1], &cli);
    float *sel = NULL;
    const char *mask_path = NULL;
    if (cryo_args_has(cli.args, "mask")) {
        mask_path = cryo_args_string(cli.args, "mask");
        read_map(&m, mask_path, &cli);
        for (int i = 0; i < 2; i++)
            if (!same_grid(&m, &v[i]))
                fail("%s: mask is %lldx%lldx%lld but %s is %lldx%lldx%lld", mask_path, (long long)m.nx,
                     (long long)m.ny, (long long)m.nz, cli.inputs[i], (long long)v[i].nx, (long long)v[i].ny,
                     (long long)v[i].nz);
        size_t n = cryo_volume_count(&m);
        sel = cryo_alloc_array(n, sizeof *sel, &err);
        if (!sel)
            cli_die(&cli, &err);
        const float *mk = m.data;
        size_t used = 0;
        for (size_t i = 0; i < n; i++)
            used += (sel[i] = mk[i] > 0.5f ? 1.0f : 0.0f) != 0;
        if (!used)
            fail("%s: no voxel of the mask is > 0.5", mask_path);
    }
    /* default range: min..max over the voxels used of both maps */
    if (!have_range) {
        rng[0] = INFINITY, rng[1] = -INFINITY;
        for (int k = 0; k < 2; k++) {
            const float *x = v[k].data;
            for (size_t i = 0, n = cryo_volume_count(&v[k]); i < n; i++)
                if (!sel || sel[i] != 0) {
                    rng[0] = x[i] < rng[0] ? x[i] : rng[0];
                    rng[1] = x[i] > rng[1] ? x[i] : rng[1];
                }
        }
        if (!(rng[1] > rng[0]))
            fail("%s, %s: all values equal %g: give --range", cli.inputs[0], cli.inputs[1], rng[0]);
    }
    spec.lo = rng[0], spec.hi = rng[1];
    spec.sigma = cryo_args_has(cli.args, "sigma") ? cryo_args_double(cli.args, "sigma") : (spec.hi - spec.lo) / spec.bins;

    double *p = cryo_alloc_array((size_t)spec.bins, sizeof *p, &err);
    double *q = cryo_alloc_array((size_t)spec.bins, sizeof *q, &err);
    if (!p || !q)
        cli_die(&cli, &err);
    double *h[2] = {p, q};
    for (int k = 0; k < 2; k++)
        if (cryo_soft_hist(h[k], v[k].data, cryo_volume_count(&v[k]), sel, &spec, &err) < 0) {
            cryo_error_prefix(&err, cli.inputs[k]);
            cli_die(&cli, &err);
        }
    double js = cryo_js_divergence(p, q, spec.bins);
    double kl_pq = cryo_kl_divergence(p, q, spec.bins), kl_qp = cryo_kl_divergence(q, p, spec.bins);

    double *c = cryo_alloc_array((size_t)spec.bins, sizeof *c, &err);
    if (!c)
        cli_die(&cli, &err);
    double w = (spec.hi - spec.lo) / spec.bins, ymax = 0;
    for (int j = 0; j < spec.bins; j++) {
        c[j] = spec.lo + (j + 0.5) * w;
        ymax = p[j] > ymax ? p[j] : ymax;
        ymax = q[j] > ymax ? q[j] : ymax;
    }
    if (plot) {
        struct plot_series ser[2] = {
            {cli.inputs[0], c, p, (size_t)spec.bins, {0.12, 0.35, 0.85}, 2.0, 0},
            {cli.inputs[1], c, q, (size_t)spec.bins, {0.85, 0.15, 0.15}, 2.0, 1}};
        char title[256];
        snprintf(title, sizeof title, "soft histograms: JS = %.4g, KL = %.4g / %.4g", js, kl_pq, kl_qp);
        struct plot_spec ps = {cryo_args_has(cli.args, "title") ? cryo_args_string(cli.args, "title") : title,
                               "density", "fraction of voxels per bin", NULL, spec.lo, spec.hi, 0, ymax * 1.08,
                               ser, 2, NULL, NULL, 0, 0, 0, 0};
        char msg[512];
        if (plot_write(plot, &ps, msg, sizeof msg) != 0)
            fail("%s", msg);
    }
    if (cryo_args_flag(cli.args, "json")) {
        json_t *o = json_object(), *hp = json_array(), *hq = json_array(), *hc = json_array();
        for (int j = 0; j < spec.bins; j++) {
            json_array_append_new(hc, json_real(c[j]));
            json_array_append_new(hp, json_real(p[j]));
            json_array_append_new(hq, json_real(q[j]));
        }
        json_object_set_new(o, "js", jnum(js));
        json_object_set_new(o, "kl_12", jnum(kl_pq));
        json_object_set_new(o, "kl_21", jnum(kl_qp));
        json_object_set_new(o, "bins", json_integer(spec.bins));
        json_object_set_new(o, "range", json_pack("[f,f]", spec.lo, spec.hi));
        json_object_set_new(o, "sigma", json_real(spec.sigma));
        json_object_set_new(o, "masked", json_boolean(sel != NULL));
        json_object_set_new(o, "centres", hc);
        json_object_set_new(o, "hist_1", hp);
        json_object_set_new(o, "hist_2", hq);
        json_dumpf(o, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
        json_decref(o);
    } else if (!cli.quiet) {
        printf("%s: %s vs %s: %d bins over [%g, %g], kernel sigma %g%s%s\n", tool.name, cli.inputs[0],
               cli.inputs[1], spec.bins, spec.lo, spec.hi, spec.sigma, mask_path ? ", mask " : "",
               mask_path ? mask_path : "");
        printf("  JS divergence %.6g nats   KL(1||2) %.6g   KL(2||1) %.6g\n", js, kl_pq, kl_qp);
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        fail("stdout: write failed: %s", strerror(errno));
    free(p);
    free(q);
    free(c);
    free(sel);
    cryo_volume_free(&v[0]);
    cryo_volume_free(&v[1]);
    cryo_volume_free(&m);
    cli_free(&cli);
    return 0;
}
