/* nnctx.c — a tool's compute context from --device and --precision (nnctx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnctx.h"

static int taken;             /* cli_nn_precision_init has run */
static char word[32], src[24]; /* the precision asked for ("" = fp32) and who asked */

const char *cli_nn_precision_name(enum cryo_nn_precision p)
{
    switch (p) {
    case CRYO_NN_PRECISION_TF32: return "tf32";
    case CRYO_NN_PRECISION_BF16: return "bf16";
    default: return "fp32";
    }
}

static int parse_precision(const char *w, enum cryo_nn_precision *p)
{
    if (!*w || strcmp(w, "fp32") == 0)
        *p = CRYO_NN_PRECISION_FP32;
    else if (strcmp(w, "tf32") == 0)
        *p = CRYO_NN_PRECISION_TF32;
    else if (strcmp(w, "bf16") == 0)
        *p = CRYO_NN_PRECISION_BF16;
    else
        return -1;
    return 0;
}

void cli_nn_precision_init(const char *flag)
{
    const char *env = getenv("CRYO_NN_PRECISION");
    snprintf(src, sizeof src, "%s", flag || !env || !*env ? "--precision" : "CRYO_NN_PRECISION");
    snprintf(word, sizeof word, "%s", flag ? flag : env ? env : "");
    if (env) /* the contexts start in fp32; cli_nn_open sets the word above */
        unsetenv("CRYO_NN_PRECISION");
    taken = 1;
}

_Noreturn static void fail(const struct cryo_cli *cli, struct cryo_nn_ctx *ctx, struct cryo_error *err,
                           const char *what)
{
    cryo_nn_ctx_free(ctx);
    cryo_error_prefix(err, what);
    cli_die(cli, err);
}

struct cryo_nn_ctx *cli_nn_open(const struct cryo_cli *cli, const char *device, int computes, int training)
{
    struct cryo_error err = {0};
    if (!taken)
        cli_nn_precision_init(NULL);
    enum cryo_nn_precision p = CRYO_NN_PRECISION_FP32;
    if (computes && parse_precision(word, &p) < 0) {
        cryo_fail(&err, CRYO_E_INVALID, "'%s' is not fp32, tf32 or bf16", word);
        fail(cli, NULL, &err, src);
    }
    struct cryo_nn_ctx *ctx = NULL;
    if (cryo_nn_ctx_create_named(&ctx, device, cli->threads, &err) < 0) {
        char dev[48];
        snprintf(dev, sizeof dev, "--device %s", device);
        fail(cli, NULL, &err, dev);
    }
    int cpu = cryo_nn_ctx_device(ctx) == CRYO_NN_DEVICE_CPU;
    if (p == CRYO_NN_PRECISION_BF16 && training && cpu) {
        cryo_fail(&err, CRYO_E_UNSUPPORTED,
                  "bf16: training in bf16 needs a GPU (--device cuda): the CPU's bfloat16 kernels are forward-only; "
                  "train in fp32 or tf32 here");
        fail(cli, ctx, &err, src);
    }
    if (cryo_nn_set_precision(ctx, p, &err) < 0)
        fail(cli, ctx, &err, src);
    if (p == CRYO_NN_PRECISION_TF32 && cpu && !cli->quiet)
        fprintf(stderr, "%s: note: %s%stf32 on the cpu computes float32 (TF32 is a GPU tensor-core mode)\n",
                cli->tool->name, src, strcmp(src, "--precision") == 0 ? " " : "=");
    return ctx;
}
