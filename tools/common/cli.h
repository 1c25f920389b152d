/* cli.h — what every cryolvm tool's main shares (not part of libcore: only programs print).
 *
 * Conventions (cryolvm(7)): GNU getopt_long flags from one option table; --help and
 * --version; inputs are files or "-"/nothing for stdin; output is the stream on stdout or
 * -o FILE whose extension picks MRC/TIFF/stream; the binary stream is never written to a
 * terminal; exit 0 success, 1 failure, 2 usage error; one line on stderr per failure,
 * "tool: file: what went wrong".
 *
 * Options every tool gets from cli_parse (do not repeat them in a tool's table):
 *   -o, --output FILE   -f, --format mrc|tiff|stream   --level N (zstd)   --threads N
 *   -q, --quiet   -h, --help   -V, --version   --progress (tools that report progress)
 */
#ifndef CRYOLVM_CLI_H
#define CRYOLVM_CLI_H

#include <stdio.h>
#include "cryolvm/stage.h"
#include "cryolvm/volio.h"

struct cryo_tool {
    const char *name;                  /* "mrc-normalize" */
    const char *summary;               /* one line */
    const char *usage;                 /* after the name: "[OPTIONS] [INPUT...]" */
    const struct cryo_option *options; /* tool-specific, CRYO_OPT_END-terminated; may be NULL */
    int min_inputs;                    /* positional arguments; 0 means stdin when none given */
    int max_inputs;                    /* -1 = unlimited */
    int writes_volumes;                /* 1 if -o/--format/--level apply (adds those options) */
    int reports_progress;              /* 1 if the tool calls cli_progress (adds --progress);
                                          cli_run_stage sets it for stage tools */
};

struct cryo_cli {
    const struct cryo_tool *tool;
    struct cryo_args *args;            /* values of tool->options */
    const char **inputs;               /* positional args; {"-"} when none and min_inputs == 0 */
    int n_inputs;
    const char *output;                /* -o value, NULL = stdout */
    struct cryo_sink_opts sink_opts;   /* from --format/--level/--threads */
    int threads;                       /* --threads (0 = all cores) */
    int quiet, progress;
    char history[1024];                /* "tool --opt v ..." for frame metadata / MRC labels */
};

/* Parse or exit: 0 after --help/--version, 2 with one line on a usage error. */
void cli_parse(const struct cryo_tool *t, int argc, char **argv, struct cryo_cli *cli);
void cli_free(struct cryo_cli *cli);

/* "tool: <err->msg>" on stderr, exit 1. */
_Noreturn void cli_die(const struct cryo_cli *cli, const struct cryo_error *err);
/* "tool: <message>" then "Try 'tool --help'.", exit 2. */
_Noreturn void cli_usage_error(const struct cryo_tool *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print a non-fatal warning "tool: warning: ..." unless -q. */
void cli_warn(const struct cryo_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Progress on stderr when --progress, or stderr is a terminal and not -q.
 * cli_progress(cli, "tiles", done, total); call with done == total to end the line. */
void cli_progress(const struct cryo_cli *cli, const char *what, long done, long total);

/* A complete main for a tool that wraps one stage: reads every frame of every input,
 * runs stage->process, stage->finish, writes what it emits to the output, appends the
 * history line to each emitted frame's metadata. Returns the exit status. */
int cli_run_stage(const struct cryo_stage *stage, const struct cryo_tool *t, int argc, char **argv);

/* Open the output sink of the parsed command line (stdout stream or -o FILE). Exits on error. */
struct cryo_sink *cli_open_sink(const struct cryo_cli *cli);

/* Write --help text for a tool (used by cli_parse and by scripts/check-man). */
void cli_print_help(const struct cryo_tool *t, FILE *f);

#endif
