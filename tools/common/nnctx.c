/* nnctx.c — a tool's compute context from --device and --precision (nnctx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnctx.h"

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
    if (strcmp(w, "fp32") == 0)
        *p = CRYO_NN_PRECISION_FP32;
    else if (strcmp(w, "tf32") == 0)
        *p = CRYO_NN_PRECISION_TF32;
    else if (strcmp(w, "bf16") == 0)
        *p = CRYO_NN_PRECISION_BF16;
    else
        return -1;
    return 0;
}

_Noreturn static void fail(const struct cryo_cli *cli, struct cryo_nn_ctx *ctx, struct cryo_error *err,
                           const char *what)
{
    cryo_nn_ctx_free(ctx);
    cryo_error_prefix(err, what);
    cli_die(cli, err);
}

struct cryo_nn_ctx *cli_nn_open(const struct cryo_cli *cli, const char *device, const char *precision,
                                int training)
{
    struct cryo_error err = {0};
    enum cryo_nn_precision p = CRYO_NN_PRECISION_FP32;
    const char *env = getenv("CRYO_NN_PRECISION"), *src = "--precision", *word = precision;
    if (!precision && env && *env) {
        src = "CRYO_NN_PRECISION";
        word = env;
    }
    if (word && parse_precision(word, &p) < 0) {
        cryo_fail(&err, CRYO_E_INVALID, "'%s' is not fp32, tf32 or bf16", word);
        fail(cli, NULL, &err, src);
    }
    /* The context starts in fp32 whatever the environment says; the precision chosen above
     * is set next, so that its refusal names the flag or the variable. */
    unsetenv("CRYO_NN_PRECISION");
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
        fprintf(stderr, "%s: note: %stf32 on the cpu computes float32 (TF32 is a GPU tensor-core mode)\n",
                cli->tool->name, precision ? "--precision " : "CRYO_NN_PRECISION=");
    return ctx;
}
