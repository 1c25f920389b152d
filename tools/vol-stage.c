/* vol-stage — run any stage, built in or loaded from a plugin, as a stream filter.
 *
 *   vol-stage --list
 *   vol-stage NAME|PLUGIN.so [STAGE OPTIONS] [INPUT...]
 *
 * The stage's own option table becomes the command line after the stage argument, so a
 * plugin gets --help, validation and history lines for free (cryolvm-stage(7)). */
#include "common/cli.h"

#include <stdio.h>
#include <string.h>

static const struct cryo_tool tool = {
    .name = "vol-stage",
    .summary = "Run a built-in or plugin stage (a shared object) on volumes.",
    .usage = "--list | NAME|PLUGIN.so [STAGE OPTIONS] [INPUT...]",
};

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc < 2)
            cli_usage_error(&tool, "needs a stage name, a plugin path, or --list");
        printf("Usage: vol-stage %s\n%s\n\n"
               "  --list          list the built-in stages and exit\n"
               "  NAME            a built-in stage (see --list)\n"
               "  PLUGIN.so       a shared object exporting cryo_stage_entry (cryolvm-stage(7))\n"
               "  -h, --help      show this help and exit\n"
               "  -V, --version   show the version and exit\n\n"
               "'vol-stage NAME --help' shows the options of a stage. See vol-stage(1).\n",
               tool.usage, tool.summary);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("vol-stage (cryolvm) %s\n", CRYO_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "--list")) {
        for (const struct cryo_stage *const *s = cryo_stage_builtins(); *s; s++)
            printf("%-12s %s\n", (*s)->name, (*s)->summary);
        return 0;
    }
    const struct cryo_stage *stage = NULL;
    if (strchr(argv[1], '/') || strstr(argv[1], ".so")) {
        struct cryo_error err = {0};
        if (cryo_stage_load(&stage, argv[1], &err) < 0) {
            fprintf(stderr, "vol-stage: %s\n", err.msg);
            return 1;
        }
    } else if (!(stage = cryo_stage_find(argv[1]))) {
        cli_usage_error(&tool, "no built-in stage '%s' (see vol-stage --list)", argv[1]);
    }
    char name[128];
    snprintf(name, sizeof name, "vol-stage %s", stage->name);
    struct cryo_tool t = {.name = name, .summary = stage->summary, .usage = "[OPTIONS] [INPUT...]",
                          .options = stage->options, .max_inputs = -1};
    argv[1] = argv[0];
    return cli_run_stage(stage, &t, argc - 1, argv + 1);
}
