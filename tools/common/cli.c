/* cli.c — the shape every tool's main shares: one option table drives getopt_long, --help
 * and the history line; failures print one line and exit; an open output is removed on any
 * failure exit so no partial file is ever left behind. */
#include "cli.h"

#include <getopt.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_BASE = 1000, OPT_LEVEL = 900, OPT_THREADS, OPT_PROGRESS };

/* The sink a failing exit must discard (at most one per process in our tools). */
static struct cryo_sink *open_sink;

static void discard_open_sink(void)
{
    if (open_sink) {
        cryo_sink_free(open_sink);
        open_sink = NULL;
    }
}

/* A reader downstream that goes away (`tool | head -c 100`) is no error of ours: SIGPIPE is
 * caught rather than fatal, so the failed write unwinds through cli_die, which removes the
 * open output's temporary and exits 1 without a message. */
static volatile sig_atomic_t pipe_broken;
static void on_sigpipe(int sig)
{
    (void)sig;
    pipe_broken = 1;
}

_Noreturn void cli_die(const struct cryo_cli *cli, const struct cryo_error *err)
{
    discard_open_sink();
    if (pipe_broken)
        exit(1);
    fprintf(stderr, "%s: %s\n", cli && cli->tool ? cli->tool->name : "cryolvm",
            err && err->msg[0] ? err->msg : "failed");
    exit(1);
}

_Noreturn void cli_usage_error(const struct cryo_tool *t, const char *fmt, ...)
{
    discard_open_sink();
    va_list ap;
    fprintf(stderr, "%s: ", t->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", t->name);
    exit(2);
}

void cli_warn(const struct cryo_cli *cli, const char *fmt, ...)
{
    if (cli->quiet)
        return;
    va_list ap;
    fprintf(stderr, "%s: warning: ", cli->tool->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* libcore's warnings (cryo_warn) go to stderr like the tool's own. */
static void cli_libcore_warning(void *ctx, const char *msg)
{
    cli_warn(ctx, "%s", msg);
}

void cli_progress(const struct cryo_cli *cli, const char *what, long done, long total)
{
    if (cli->quiet || !(cli->progress || isatty(STDERR_FILENO)))
        return;
    if (total > 0)
        fprintf(stderr, "\r%s: %s %ld/%ld (%.0f%%)", cli->tool->name, what, done, total,
                100.0 * (double)done / (double)total);
    else
        fprintf(stderr, "\r%s: %s %ld", cli->tool->name, what, done);
    if (total > 0 && done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static const char *type_metavar(const struct cryo_option *o)
{
    if (o->metavar)
        return o->metavar;
    switch (o->type) {
    case CRYO_OPT_INT: return "N";
    case CRYO_OPT_DOUBLE: return "X";
    case CRYO_OPT_DOUBLES: return "X[,Y,Z]";
    case CRYO_OPT_INTS: return "N[,N,N]";
    case CRYO_OPT_CHOICE: return o->choices;
    default: return "VALUE";
    }
}

static void print_option(FILE *f, char short_name, const char *name, const char *metavar,
                         const char *help, const char *def)
{
    char left[128];
    int k = short_name ? snprintf(left, sizeof left, "  -%c, --%s", short_name, name)
                       : snprintf(left, sizeof left, "      --%s", name);
    if (metavar && k > 0 && (size_t)k < sizeof left)
        snprintf(left + k, sizeof left - (size_t)k, " %s", metavar);
    if (strlen(left) > 28)
        fprintf(f, "%s\n%30s", left, "");
    else
        fprintf(f, "%-30s", left);
    fprintf(f, "%s", help);
    if (def)
        fprintf(f, " (default %s)", def);
    fputc('\n', f);
}

void cli_print_help(const struct cryo_tool *t, FILE *f)
{
    fprintf(f, "Usage: %s %s\n%s\n\nOptions:\n", t->name, t->usage, t->summary);
    for (const struct cryo_option *o = t->options; o && o->type != CRYO_OPT_END; o++)
        print_option(f, o->short_name, o->name, o->type == CRYO_OPT_FLAG ? NULL : type_metavar(o),
                     o->help, o->default_value);
    if (t->writes_volumes) {
        print_option(f, 'o', "output", "FILE",
                     "write to FILE (.mrc .map .ccp4 .mrcs .rec .st [.gz], .tif .tiff, .cvol) instead of the stream on stdout",
                     NULL);
        print_option(f, 'f', "format", "mrc|tiff|stream", "output format, overriding the extension", NULL);
        print_option(f, 0, "level", "N", "zstd level of stream output", "3");
    }
    print_option(f, 0, "threads", "N", "worker threads (0 = all cores)", "0");
    print_option(f, 'q', "quiet", NULL, "no warnings or progress on stderr", NULL);
    if (t->reports_progress)
        print_option(f, 0, "progress", NULL, "show progress even when stderr is not a terminal", NULL);
    print_option(f, 'h', "help", NULL, "show this help and exit", NULL);
    print_option(f, 'V', "version", NULL, "show the version and exit", NULL);
    fprintf(f, "\nInputs are files in any supported format (sniffed from their first bytes) or '-' for\n"
               "standard input. Exit status: 0 success, 1 failure, 2 usage error. See %s(1).\n",
            t->name);
}

static void history_append(char *buf, size_t cap, const char *s)
{
    size_t used = strlen(buf);
    if (*s && used + 1 < cap)
        snprintf(buf + used, cap - used, "%s%s", used ? " " : "", s);
}

void cli_parse(const struct cryo_tool *t, int argc, char **argv, struct cryo_cli *cli)
{
    memset(cli, 0, sizeof *cli);
    cli->tool = t;
    cryo_sink_opts_default(&cli->sink_opts);
    struct cryo_error err = {0};
    if (cryo_args_create(&cli->args, t->options, &err) < 0)
        cli_die(cli, &err);

    size_t n_tool = 0;
    while (t->options && t->options[n_tool].type != CRYO_OPT_END)
        n_tool++;
    struct option *longs = calloc(n_tool + 16, sizeof *longs);
    char shorts[128] = ":hVq";
    if (!longs)
        cli_usage_error(t, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n_tool; i++) {
        const struct cryo_option *o = &t->options[i];
        longs[k++] = (struct option){o->name, o->type == CRYO_OPT_FLAG ? no_argument : required_argument,
                                     NULL, OPT_BASE + (int)i};
        if (o->short_name) {
            size_t L = strlen(shorts);
            shorts[L] = o->short_name;
            shorts[L + 1] = o->type == CRYO_OPT_FLAG ? '\0' : ':';
            shorts[L + 2] = '\0';
        }
    }
    if (t->writes_volumes) {
        longs[k++] = (struct option){"output", required_argument, NULL, 'o'};
        longs[k++] = (struct option){"format", required_argument, NULL, 'f'};
        longs[k++] = (struct option){"level", required_argument, NULL, OPT_LEVEL};
        strcat(shorts, "o:f:");
    }
    longs[k++] = (struct option){"threads", required_argument, NULL, OPT_THREADS};
    longs[k++] = (struct option){"quiet", no_argument, NULL, 'q'};
    if (t->reports_progress)
        longs[k++] = (struct option){"progress", no_argument, NULL, OPT_PROGRESS};
    longs[k++] = (struct option){"help", no_argument, NULL, 'h'};
    longs[k++] = (struct option){"version", no_argument, NULL, 'V'};

    opterr = 0;
    int c, idx;
    while ((c = getopt_long(argc, argv, shorts, longs, &idx)) != -1) {
        char *end;
        switch (c) {
        case 'h': cli_print_help(t, stdout); exit(0);
        case 'V': printf("%s (cryolvm) %s\n", t->name, CRYO_VERSION); exit(0);
        case 'q': cli->quiet = 1; break;
        case OPT_PROGRESS: cli->progress = 1; break;
        case 'o': cli->output = optarg; break;
        case 'f':
            cli->sink_opts.format = cryo_format_from_name(optarg);
            if (cli->sink_opts.format == CRYO_FORMAT_UNKNOWN)
                cli_usage_error(t, "--format: '%s' is not one of mrc|tiff|stream", optarg);
            break;
        case OPT_LEVEL: {
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < -7 || v > 22)
                cli_usage_error(t, "--level: '%s' is not a zstd level (-7..22)", optarg);
            cli->sink_opts.stream.level = (int)v;
            break;
        }
        case OPT_THREADS: {
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 0 || v > 1024)
                cli_usage_error(t, "--threads: '%s' is not a thread count (0..1024)", optarg);
            cli->threads = (int)v;
            break;
        }
        case ':': {
            const char *opt = argv[optind - 1];
            cli_usage_error(t, "option '%s' needs a value", opt);
        }
        case '?': {
            if (optopt && optopt < 128 && optopt != '?')
                cli_usage_error(t, "unknown option '-%c'", optopt);
            cli_usage_error(t, "unknown option '%s'", argv[optind - 1]);
        }
        default:
            if (c >= OPT_BASE && c < OPT_BASE + (int)n_tool) {
                const struct cryo_option *o = &t->options[c - OPT_BASE];
                if (cryo_args_set(cli->args, o->name, o->type == CRYO_OPT_FLAG ? NULL : optarg, &err) < 0)
                    cli_usage_error(t, "%s", err.msg);
            } else {
                /* a short option of the tool's table arrives as its character */
                for (size_t i = 0; i < n_tool; i++)
                    if (t->options[i].short_name == c) {
                        const struct cryo_option *o = &t->options[i];
                        if (cryo_args_set(cli->args, o->name, o->type == CRYO_OPT_FLAG ? NULL : optarg, &err) < 0)
                            cli_usage_error(t, "%s", err.msg);
                        break;
                    }
            }
        }
    }
    free(longs);

    cli->n_inputs = argc - optind;
    if (cli->n_inputs < t->min_inputs)
        cli_usage_error(t, "needs %d input%s, got %d", t->min_inputs, t->min_inputs == 1 ? "" : "s",
                        cli->n_inputs);
    if (t->max_inputs >= 0 && cli->n_inputs > t->max_inputs)
        cli_usage_error(t, "takes at most %d input%s, got %d (unexpected '%s')", t->max_inputs,
                        t->max_inputs == 1 ? "" : "s", cli->n_inputs, argv[optind + t->max_inputs]);
    static const char *stdin_only[] = {"-"};
    if (cli->n_inputs == 0 && t->min_inputs == 0) {
        cli->inputs = stdin_only;
        cli->n_inputs = 1;
    } else {
        cli->inputs = (const char **)(argv + optind);
    }
    if (cli->threads > 0)
        omp_set_num_threads(cli->threads);
    cli->sink_opts.stream.threads = cli->threads;

    cryo_set_warn_handler(cli_libcore_warning, cli);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    snprintf(cli->history, sizeof cli->history, "%s", t->name);
    history_append(cli->history, sizeof cli->history, cryo_args_summary(cli->args));
}

void cli_free(struct cryo_cli *cli)
{
    cryo_args_free(cli->args);
    cli->args = NULL;
    cryo_set_warn_handler(NULL, NULL);
}

struct cryo_sink *cli_open_sink(const struct cryo_cli *cli)
{
    struct cryo_error err = {0};
    struct cryo_sink *s = NULL;
    if (cryo_sink_open(&s, cli->output, &cli->sink_opts, &err) < 0)
        cli_die(cli, &err);
    open_sink = s;
    return s;
}

/* ---- the generic stage runner ------------------------------------------------ */

struct stage_emit_ctx {
    const struct cryo_cli *cli;
    struct cryo_sink *sink;
    long frames_out;
};

/* Write a frame with the tool's history line appended, without copying its data. */
static int emit_to_sink(void *ctx, const struct cryo_volume *v, struct cryo_error *err)
{
    struct stage_emit_ctx *c = ctx;
    struct cryo_volume shallow = *v;
    cryo_meta_init(&shallow.meta);
    int s = cryo_meta_copy(&shallow.meta, &v->meta, err);
    if (s == 0)
        s = cryo_meta_add_history(&shallow.meta, c->cli->history, err);
    if (s == 0)
        s = cryo_sink_write(c->sink, &shallow, err);
    cryo_meta_free(&shallow.meta);
    if (s == 0)
        c->frames_out++;
    return s;
}

int cli_run_stage(const struct cryo_stage *stage, const struct cryo_tool *t, int argc, char **argv)
{
    struct cryo_tool tool = *t;
    if (!tool.options)
        tool.options = stage->options;
    tool.writes_volumes = 1;
    tool.reports_progress = 1;
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    void *state = NULL;
    if (stage->init(&state, cli.args, &err) < 0) {
        if (err.status == CRYO_E_INVALID)
            cli_usage_error(&tool, "%s", err.msg);
        cli_die(&cli, &err);
    }
    struct stage_emit_ctx ctx = {&cli, cli_open_sink(&cli), 0};
    struct cryo_emit emit = {emit_to_sink, &ctx};
    struct cryo_volume v;
    cryo_volume_init(&v);
    long frames_in = 0;
    for (int i = 0; i < cli.n_inputs; i++) {
        struct cryo_source *src = NULL;
        if (cryo_source_open(&src, cli.inputs[i], &err) < 0)
            cli_die(&cli, &err);
        int r;
        while ((r = cryo_source_next(src, &v, &err)) > 0) {
            if (cryo_meta_get(&v.meta, "source") == NULL && strcmp(cli.inputs[i], "-") != 0)
                cryo_meta_set(&v.meta, "source", cli.inputs[i], NULL);
            if (stage->process(state, &v, &emit, &err) < 0) {
                if (!strstr(err.msg, cryo_source_name(src)))
                    cryo_error_prefix(&err, cryo_source_name(src));
                cli_die(&cli, &err);
            }
            frames_in++;
            cli_progress(&cli, "frames", frames_in, -1);
        }
        if (r < 0)
            cli_die(&cli, &err);
        cryo_source_free(src);
    }
    if (stage->finish && stage->finish(state, &emit, &err) < 0)
        cli_die(&cli, &err);
    if (cli.progress || (!cli.quiet && isatty(STDERR_FILENO) && frames_in > 0))
        if (!cli.quiet)
            fputc('\n', stderr);
    if (ctx.frames_out == 0) {
        err.status = CRYO_E_INVALID;
        snprintf(err.msg, sizeof err.msg, "%s: no frames to write (empty input?)", cli.inputs[0]);
        cli_die(&cli, &err);
    }
    if (cryo_sink_commit(ctx.sink, &err) < 0)
        cli_die(&cli, &err);
    cryo_sink_free(ctx.sink);
    open_sink = NULL;
    if (stage->destroy)
        stage->destroy(state);
    cryo_volume_free(&v);
    cli_free(&cli);
    return 0;
}
