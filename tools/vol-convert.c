/* vol-convert — any supported format to any other (MRC, TIFF, the cryolvm stream), with an
 * optional change of element type.
 *
 * Frames flow one at a time from the inputs to one sink, each with this run's history line
 * appended. The output is committed only after the last frame, so any failure (a broken
 * stream, a value that does not fit the new dtype) leaves no file and an existing one
 * untouched. Lossy conversions are refused rather than done quietly: a float value that
 * is NaN/Inf or outside an integer (or float16) range stops the run unless --clip or
 * --rescale says what to do with it. uint8 goes into MRC as mode 6 (uint16) unless
 * --mrc-uint8 asks for mode 0 (see mrc.h: MRC2014 readers take mode 0 as signed).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "cryolvm/mem.h"

static const struct cryo_option options[] = {
    {"dtype", 't', CRYO_OPT_CHOICE, "TYPE", NULL, "convert elements to TYPE", 
     "float32|float16|bfloat16|uint8|int8|int16|uint16|int32"},
    {"clip", 0, CRYO_OPT_FLAG, NULL, NULL,
     "with --dtype, clip values outside the new type's range to its limits instead of failing", NULL},
    {"rescale", 0, CRYO_OPT_FLAG, NULL, NULL,
     "with an integer --dtype, map each frame's min..max linearly onto the type's full range", NULL},
    {"frame", 0, CRYO_OPT_INT, "N", NULL, "write only frame N (from 1, counted over all inputs)", NULL},
    {"mrc-uint8", 0, CRYO_OPT_CHOICE, "RULE", "uint16",
     "uint8 data into MRC: uint16 (mode 6, read right by every program), mode0 (only when every value is "
     "<= 127), imod (mode 0 with IMOD's unsigned flag: values above 127 read right in IMOD only)",
     "uint16|mode0|imod"},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "vol-convert", "convert volumes between MRC, TIFF and the cryolvm stream, optionally changing dtype",
    "[OPTIONS] [INPUT...] [-o OUTPUT]", options, 0, -1, 1, 1};

static int is_int_type(enum cryo_dtype t)
{
    return t == CRYO_DTYPE_U8 || t == CRYO_DTYPE_I8 || t == CRYO_DTYPE_I16 || t == CRYO_DTYPE_U16 ||
           t == CRYO_DTYPE_I32;
}

/* Largest finite magnitude of a type; integer types give their [lo, hi]. */
struct conv {
    enum cryo_dtype to; /* INVALID = keep */
    int clip, rescale;
};

/* Convert v to c->to. Values that would not survive (NaN/Inf into an integer type, or
 * magnitudes beyond the new type's range) fail with a message naming the voxel and the
 * options that allow it; --clip and --rescale decide instead when given. */
static int convert(struct cryo_volume *v, const struct conv *c, const char *what, long frame,
                   struct cryo_error *err)
{
    if (c->to == CRYO_DTYPE_INVALID || c->to == v->dtype)
        return 0;
    double lo, hi, a = 1, b = 0;
    cryo_dtype_range(c->to, &lo, &hi);
    size_t n = cryo_volume_count(v);
    int to_int = is_int_type(c->to);
    if (c->rescale) {
        struct cryo_stats s;
        cryo_volume_stats(v, &s);
        if (s.n_nonfinite)
            return cryo_fail(err, CRYO_E_NUMERIC, "%s: frame %ld has %zu NaN/Inf values, which %s cannot hold",
                             what, frame, s.n_nonfinite, cryo_dtype_name(c->to));
        /* stored = a*x + b maps [min, max] onto [lo, hi]; a constant frame maps to lo. */
        a = s.max > s.min ? (hi - lo) / (s.max - s.min) : 0;
        b = lo - a * s.min;
        char val[128];
        snprintf(val, sizeof val, "%.17g,%.17g", a, b);
        CRYO_TRY(cryo_meta_set(&v->meta, "convert.scale", val, err));
    }
    /* Validate everything first, so that a failure names the first bad voxel. */
    for (size_t i = 0; i < n; i++) {
        double x = cryo_volume_get(v, i);
        if (!isfinite(x)) {
            if (to_int)
                return cryo_fail(err, CRYO_E_NUMERIC, "%s: frame %ld, element %zu is %s, which %s cannot hold", what,
                                 frame, i, isnan(x) ? "NaN" : "Inf", cryo_dtype_name(c->to));
            continue; /* NaN/Inf are kept by float types */
        }
        double y = a * x + b;
        if (to_int)
            y = nearbyint(y);
        if (!c->clip && !c->rescale && (y < lo || y > hi))
            return cryo_fail(err, CRYO_E_NUMERIC,
                             "%s: frame %ld, element %zu = %g is outside the %s range [%g, %g] "
                             "(use --clip or --rescale)",
                             what, frame, i, x, cryo_dtype_name(c->to), lo, hi);
    }
    struct cryo_volume out;
    cryo_volume_init(&out);
    CRYO_TRY(cryo_volume_alloc_like(&out, v, c->to, err));
    void *d = out.data;
    for (size_t i = 0; i < n; i++) {
        double x = cryo_volume_get(v, i);
        if (isfinite(x)) {
            x = a * x + b;
            if (to_int)
                x = nearbyint(x);
            x = x < lo ? lo : x > hi ? hi : x;
        }
        cryo_dtype_put(d, c->to, i, x);
    }
    cryo_volume_move(v, &out);
    return 0;
}

/* A frame the chosen output cannot hold gets a message saying what would work. */
static int check_fits(const struct cryo_volume *v, enum cryo_format f, const char *what, long frame, long written,
                      struct cryo_error *err)
{
    if (f == CRYO_FORMAT_STREAM)
        return 0;
    const char *fmt = cryo_format_name(f);
    if (written > 0)
        return cryo_fail(err, CRYO_E_INVALID,
                         "%s: more than one frame, but %s output holds one (pick one with --frame N, or write a "
                         ".cvol stream)",
                         what, fmt);
    if (v->c > 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: frame %ld has %lld channels, but %s output holds one", what, frame,
                         (long long)v->c, fmt);
    if (f == CRYO_FORMAT_MRC && (v->dtype == CRYO_DTYPE_BF16 || v->dtype == CRYO_DTYPE_I32))
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: MRC cannot hold %s (add --dtype float32)", what,
                         cryo_dtype_name(v->dtype));
    if (f == CRYO_FORMAT_TIFF && (v->dtype == CRYO_DTYPE_F16 || v->dtype == CRYO_DTYPE_BF16))
        return cryo_fail(err, CRYO_E_UNSUPPORTED, "%s: TIFF output cannot hold %s (add --dtype float32)", what,
                         cryo_dtype_name(v->dtype));
    return 0;
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct conv c = {CRYO_DTYPE_INVALID, cryo_args_flag(cli.args, "clip"), cryo_args_flag(cli.args, "rescale")};
    if (cryo_args_given(cli.args, "dtype"))
        c.to = cryo_dtype_from_name(cryo_args_string(cli.args, "dtype"));
    if ((c.clip || c.rescale) && c.to == CRYO_DTYPE_INVALID)
        cli_usage_error(&tool, "--clip and --rescale need --dtype");
    if (c.clip && c.rescale)
        cli_usage_error(&tool, "--clip and --rescale exclude each other");
    if (c.rescale && !is_int_type(c.to))
        cli_usage_error(&tool, "--rescale needs an integer --dtype, not %s", cryo_dtype_name(c.to));
    long pick = 0;
    if (cryo_args_given(cli.args, "frame")) {
        pick = cryo_args_int(cli.args, "frame");
        if (pick < 1)
            cli_usage_error(&tool, "--frame: frames count from 1, not %ld", pick);
    }

    struct cryo_error err = {0};
    if (cryo_mrc_u8_from_name(cryo_args_string(cli.args, "mrc-uint8"), &cli.sink_opts.mrc_u8) < 0)
        cli_usage_error(&tool, "--mrc-uint8: '%s' is not one of uint16|mode0|imod", cryo_args_string(cli.args, "mrc-uint8"));
    struct cryo_sink *sink = cli_open_sink(&cli);
    enum cryo_format ofmt = cryo_sink_format(sink);
    struct cryo_volume v;
    cryo_volume_init(&v);
    long seen = 0, written = 0;
    for (int i = 0; i < cli.n_inputs && !(pick && written); i++) {
        struct cryo_source *src = NULL;
        if (cryo_source_open(&src, cli.inputs[i], &err) < 0)
            cli_die(&cli, &err);
        const char *name = cryo_source_name(src);
        int r;
        while ((r = cryo_source_next(src, &v, &err)) > 0) {
            seen++;
            if (pick && seen != pick)
                continue;
            if (convert(&v, &c, name, seen, &err) < 0 || check_fits(&v, ofmt, name, seen, written, &err) < 0)
                cli_die(&cli, &err);
            if (!cryo_meta_get(&v.meta, "source") && strcmp(cli.inputs[i], "-") != 0 &&
                cryo_meta_set(&v.meta, "source", cli.inputs[i], &err) < 0)
                cli_die(&cli, &err);
            if (cryo_meta_add_history(&v.meta, cli.history, &err) < 0 || cryo_sink_write(sink, &v, &err) < 0)
                cli_die(&cli, &err);
            if (ofmt == CRYO_FORMAT_MRC && v.dtype == CRYO_DTYPE_U8 && cli.sink_opts.mrc_u8 == CRYO_MRC_U8_IMOD) {
                struct cryo_stats st;
                cryo_volume_stats(&v, &st);
                if (st.max > 127)
                    cli_warn(&cli, "%s: uint8 values up to %g written as MRC mode 0 with IMOD's unsigned flag: "
                             "mrcfile, gemmi and relion will read those above 127 as negative", name, st.max);
            }
            written++;
            cli_progress(&cli, "frames", written, -1);
            if (pick)
                break; /* the frame is out; the rest of the input is not needed */
        }
        if (r < 0)
            cli_die(&cli, &err);
        cryo_source_free(src);
    }
    if (pick && written == 0) {
        cryo_fail(&err, CRYO_E_INVALID, "%s: has %ld frame%s, no frame %ld", cli.n_inputs == 1 ? cli.inputs[0] : "inputs",
                  seen, seen == 1 ? "" : "s", pick);
        cli_die(&cli, &err);
    }
    if (written == 0) {
        cryo_fail(&err, CRYO_E_INVALID, "%s: no frames to write (empty stream?)",
                  strcmp(cli.inputs[0], "-") ? cli.inputs[0] : "stdin");
        cli_die(&cli, &err);
    }
    if (cryo_sink_commit(sink, &err) < 0)
        cli_die(&cli, &err);
    cryo_sink_free(sink);
    cryo_volume_free(&v);
    cli_free(&cli);
    return 0;
}
