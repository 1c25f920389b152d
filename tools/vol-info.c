/* vol-info — what a map, TIFF stack or stream holds: per frame the shape, dtype, voxel
 * size, origin, value statistics and metadata (history, MRC header facts carried as mrc.*
 * keys), and for streams the bytes on the wire against the raw size. Text for people,
 * --json (jansson) for scripts.
 *
 * Shape of main (netpbm style): parse, then per input open, loop over frames, print. A
 * broken input is reported on stderr (one line) after what could be read from it, and the
 * remaining inputs are still described; the exit status is 1 if any input failed.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

static const struct cryo_option options[] = {
    {"json", 'j', CRYO_OPT_FLAG, NULL, NULL, "print one JSON document instead of text", NULL},
    {"no-stats", 0, CRYO_OPT_FLAG, NULL, NULL, "skip min/max/mean/rms (the data is still read and checked)", NULL},
    {"full", 0, CRYO_OPT_FLAG, NULL, NULL, "print long metadata values in full instead of cut at 100 characters",
     NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "vol-info", "describe maps, TIFF stacks and cryolvm streams: shape, dtype, placement, statistics, metadata",
    "[OPTIONS] [INPUT...]", options, 0, -1, 0, 0};

struct cfg {
    int json, stats, full;
};

static void print_value(const char *key, const char *val, int full)
{
    size_t len = strlen(val);
    if (!full && len > 100)
        printf("    %-16s %.96s... (%zu characters)\n", key, val, len);
    else
        printf("    %-16s %s\n", key, val);
}

static void text_frame(const struct cfg *c, long no, const struct cryo_volume *v, const struct cryo_source *src)
{
    printf("  frame %ld: ", no);
    if (v->ndim == 4)
        printf("%lld channels of ", (long long)v->c);
    if (v->ndim >= 3)
        printf("%lld x %lld x %lld (x y z)", (long long)v->nx, (long long)v->ny, (long long)v->nz);
    else if (v->ndim == 2)
        printf("%lld x %lld (x y)", (long long)v->nx, (long long)v->ny);
    else
        printf("%lld (x)", (long long)v->nx);
    double mib = (double)cryo_volume_bytes(v) / 1048576.0;
    printf(" %s, %.3g MiB\n", cryo_dtype_name(v->dtype), mib);
    printf("    voxel size       %g x %g x %g \xc3\x85\n", v->apix[0], v->apix[1], v->apix[2]);
    printf("    origin           %g %g %g \xc3\x85 (centre of voxel 0,0,0)\n", v->origin[0], v->origin[1],
           v->origin[2]);
    if (c->stats) {
        struct cryo_stats s;
        cryo_volume_stats(v, &s);
        printf("    min %.6g  max %.6g  mean %.6g  rms %.6g  std %.6g\n", s.min, s.max, s.mean, s.rms, s.std);
        if (s.n_nonfinite)
            printf("    non-finite       %zu voxels (NaN or Inf), left out of the statistics\n", s.n_nonfinite);
    }
    uint64_t comp = 0, raw = 0;
    cryo_source_last_sizes(src, &comp, &raw);
    if (cryo_source_format(src) == CRYO_FORMAT_STREAM && raw > 0)
        printf("    stream           %llu bytes for %llu raw (ratio %.3f)\n", (unsigned long long)comp,
               (unsigned long long)raw, comp ? (double)raw / (double)comp : 0.0);
    for (size_t i = 0; i < v->meta.n; i++)
        print_value(v->meta.keys[i], v->meta.vals[i], c->full);
}

/* Text as JSON. Metadata should be UTF-8, but MRC labels written elsewhere can hold
 * Latin-1 bytes; those become '?' rather than making jansson drop the value. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *t = malloc(n + 1);
    if (!t)
        return json_null();
    for (size_t i = 0; i <= n; i++)
        t[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_string(t);
    free(t);
    return j ? j : json_null();
}

/* A double as JSON: null for NaN/Inf, which JSON cannot hold. */
static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *json_frame(const struct cfg *c, const struct cryo_volume *v, const struct cryo_source *src)
{
    json_t *f = json_object();
    int64_t dims[4] = {v->c, v->nz, v->ny, v->nx};
    json_t *shape = json_array();
    for (int a = 4 - v->ndim; a < 4; a++)
        json_array_append_new(shape, json_integer(dims[a]));
    json_object_set_new(f, "shape", shape);
    json_object_set_new(f, "ndim", json_integer(v->ndim));
    json_object_set_new(f, "dtype", json_string(cryo_dtype_name(v->dtype)));
    json_t *apix = json_array(), *origin = json_array();
    for (int a = 0; a < 3; a++) {
        json_array_append_new(apix, jnum(v->apix[a]));
        json_array_append_new(origin, jnum(v->origin[a]));
    }
    json_object_set_new(f, "voxel_size", apix);
    json_object_set_new(f, "origin", origin);
    json_object_set_new(f, "bytes", json_integer((json_int_t)cryo_volume_bytes(v)));
    if (c->stats) {
        struct cryo_stats s;
        cryo_volume_stats(v, &s);
        json_t *st = json_object();
        json_object_set_new(st, "min", jnum(s.min));
        json_object_set_new(st, "max", jnum(s.max));
        json_object_set_new(st, "mean", jnum(s.mean));
        json_object_set_new(st, "rms", jnum(s.rms));
        json_object_set_new(st, "std", jnum(s.std));
        json_object_set_new(st, "nonfinite", json_integer((json_int_t)s.n_nonfinite));
        json_object_set_new(f, "stats", st);
    }
    uint64_t comp = 0, raw = 0;
    cryo_source_last_sizes(src, &comp, &raw);
    if (cryo_source_format(src) == CRYO_FORMAT_STREAM && raw > 0) {
        json_object_set_new(f, "stream_bytes", json_integer((json_int_t)comp));
        json_object_set_new(f, "raw_bytes", json_integer((json_int_t)raw));
    }
    json_t *meta = json_object(), *hist = json_array();
    for (size_t i = 0; i < v->meta.n; i++)
        json_object_set_new(meta, v->meta.keys[i], jstr(v->meta.vals[i]));
    for (size_t i = 0, n = cryo_meta_history_count(&v->meta); i < n; i++)
        json_array_append_new(hist, jstr(cryo_meta_history(&v->meta, i)));
    json_object_set_new(f, "meta", meta);
    json_object_set_new(f, "history", hist);
    return f;
}

/* Describe one input; returns 0 or the failure status (message already printed). */
static int describe(const struct cryo_cli *cli, const struct cfg *c, const char *path, json_t *jinputs)
{
    struct cryo_error err = {0};
    struct cryo_source *src = NULL;
    json_t *jin = NULL, *jframes = NULL;
    if (c->json) {
        jin = json_object();
        jframes = json_array();
        json_object_set_new(jin, "file", jstr(strcmp(path, "-") ? path : "stdin"));
        json_array_append_new(jinputs, jin);
    }
    int st = cryo_source_open(&src, path, &err);
    if (st == 0) {
        const char *fmt = cryo_format_name(cryo_source_format(src));
        if (c->json) {
            json_object_set_new(jin, "format", json_string(fmt));
            json_object_set_new(jin, "gzip", json_boolean(cryo_source_gzipped(src)));
            json_object_set_new(jin, "frames", jframes);
            jframes = NULL;
        } else {
            printf("%s: %s%s\n", cryo_source_name(src), fmt, cryo_source_gzipped(src) ? " (gzip)" : "");
            fflush(stdout);
        }
        struct cryo_volume v;
        cryo_volume_init(&v);
        long no = 0;
        while ((st = cryo_source_next(src, &v, &err)) > 0) {
            no++;
            if (c->json)
                json_array_append_new(json_object_get(jin, "frames"), json_frame(c, &v, src));
            else
                text_frame(c, no, &v, src);
            fflush(stdout);
        }
        cryo_volume_free(&v);
        cryo_source_free(src);
    }
    json_decref(jframes);
    if (st < 0) {
        fprintf(stderr, "%s: %s\n", cli->tool->name, err.msg);
        if (c->json)
            json_object_set_new(jin, "error", jstr(err.msg));
        return st;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cfg c = {cryo_args_flag(cli.args, "json"), !cryo_args_flag(cli.args, "no-stats"),
                    cryo_args_flag(cli.args, "full")};
    json_t *jinputs = c.json ? json_array() : NULL;
    int failed = 0;
    for (int i = 0; i < cli.n_inputs; i++)
        if (describe(&cli, &c, cli.inputs[i], jinputs) < 0)
            failed = 1;
    if (c.json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "inputs", jinputs);
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(doc);
    }
    cli_free(&cli);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing to stdout failed\n", tool.name);
        return 1;
    }
    return failed;
}
