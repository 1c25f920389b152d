/* vol-patch — random training crops, inference tiles and their merge; a thin wrapper around
 * the patch stage (stages/patch.c, libcore/patch.c). The wrapper only prints the warning the
 * stage records in patch.warning when --min-density could not be met (libcore does not
 * print). */
#include "common/cli.h"

#include <stdio.h>
#include <string.h>

extern const struct cryo_stage cryo_stage_patch;

static const struct cryo_tool tool = {
    "vol-patch",
    "random training crops (--random), overlapping inference tiles (--tile) and their blended merge (--merge)",
    "[OPTIONS] [INPUT...]", NULL, 0, -1, 1, 1};

static int quiet;
static const struct cryo_emit *inner_emit;

static int warning_emit(void *ctx, const struct cryo_volume *v, struct cryo_error *err)
{
    (void)ctx;
    const char *w = cryo_meta_get(&v->meta, "patch.warning");
    if (w && !quiet) {
        const char *src = cryo_meta_get(&v->meta, "source");
        fprintf(stderr, "%s: warning: %s%s%s\n", tool.name, src ? src : "", src ? ": " : "", w);
    }
    return cryo_emit_frame(inner_emit, v, err);
}

static int wrapped_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                           struct cryo_error *err)
{
    inner_emit = out;
    const struct cryo_emit mine = {warning_emit, NULL};
    return cryo_stage_patch.process(state, in, &mine, err);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
    struct cryo_stage stage = cryo_stage_patch;
    stage.process = wrapped_process;
    return cli_run_stage(&stage, &tool, argc, argv);
}
