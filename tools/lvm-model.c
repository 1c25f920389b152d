/* lvm-model — create, describe and run CryoLVM SCUNet-3D weights.
 *
 *   lvm-model init [--config KEY=VAL,...] [--seed S] -o W.safetensors
 *   lvm-model info W.safetensors
 *   lvm-model run W.safetensors IN -o OUT [--device cpu|cuda|cuda:N|auto] [--precision fp32|tf32|bf16]
 *   lvm-model grad W.safetensors BATCH.safetensors -o OUT.safetensors [--device D] [--precision P]
 *   lvm-model tensors FILE.safetensors [-o COPY.safetensors]
 *   lvm-model bench W.safetensors [--box N] [--batch B] [--train] [--repeat R] [--device D] [--precision P]
 *
 * Shape of main: parse, pick the command, validate every input before computing, write
 * the output atomically (safetensors writer, volume sink) so that a failure leaves nothing
 * behind. `grad` is the verification entry point: forward and backward on a given input
 * and output gradient, writing the output and every parameter gradient by PyTorch name
 * (tests/ref/torch_scunet.py parity compares them with autograd).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/nnctx.h"
#include "cryolvm/mem.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/nn_train.h"
#include "cryolvm/safetensors.h"

static const struct cryo_option options[] = {
    {"config", 'c', CRYO_OPT_STRING, "KEY=VAL,...", NULL,
     "init: network configuration on top of the default (in_ch, out_ch, width, levels, depth, window, "
     "head_dim, mlp_ratio, drop_path)", NULL},
    {"seed", 's', CRYO_OPT_INT, "S", "1", "init: seed of the weight initialisation", NULL},
    {"task", 0, CRYO_OPT_CHOICE, "TASK", NULL,
     "init: mark the (random) weights as fine-tuned for TASK, with the metadata lvm-apply reads (apix 1, "
     "normalize quantile:0.01:0.99, provenance); for tests", "sharpen|superres|wedge"},
    {"meta", 0, CRYO_OPT_STRING, "KEY=VAL;...", NULL, "init: set these metadata keys (after --task's)", NULL},
    {"device", 0, CRYO_OPT_STRING, "DEV", "auto",
     "device to compute on: cpu, cuda, cuda:N (GPU N) or auto (cuda if usable, else cpu); init and info only "
     "check weights there", NULL},
    {"precision", 0, CRYO_OPT_CHOICE, "P", NULL,
     "run, grad, bench: arithmetic of convolutions and matrix products (default $CRYO_NN_PRECISION, else fp32); "
     "tf32: TF32 tensor cores on a GPU, float32 on the cpu; bf16: bfloat16 operands, float32 accumulation "
     "(cpu: forward passes only, needs AVX-512 BF16 or AMX; GPU: training too)", "fp32|tf32|bf16"},
    {"box", 0, CRYO_OPT_INT, "N", "64", "bench: edge of the cubic tile", NULL},
    {"batch", 0, CRYO_OPT_INT, "B", "1", "bench: tiles per batch", NULL},
    {"train", 0, CRYO_OPT_FLAG, NULL, NULL, "bench: time training steps (forward, MSE, backward, AdamW) instead of forward passes", NULL},
    {"repeat", 0, CRYO_OPT_INT, "R", "3", "bench: timed repetitions after one warm-up (median reported)", NULL},
    {"profile", 0, CRYO_OPT_FLAG, NULL, NULL, "bench: after the timing, one more pass with the time of each layer kind", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "lvm-model",
    "create, describe and run CryoLVM SCUNet-3D network weights (safetensors)",
    "init|info|run|grad|tensors|bench [OPTIONS] [WEIGHTS] [INPUT]",
    options, 1, 3, 1, 0};

static const char *cmd_name;

static void need_inputs(int have, int want, const char *usage)
{
    if (have != want)
        cli_usage_error(&tool, "%s: usage: lvm-model %s", cmd_name, usage);
}

/* The context of a command: --device, and --precision for the commands that compute (run,
 * grad, bench); init and info only build the network to check weights, in fp32. `training`:
 * the command runs backward passes (grad, bench --train). */
static struct cryo_nn_ctx *open_ctx(const struct cryo_cli *cli, int computes, int training)
{
    if (!computes && cryo_args_has(cli->args, "precision"))
        cli_usage_error(&tool, "%s: --precision is for run, grad and bench", cmd_name);
    /* a word other than these is a usage error, as before; cuda:N's index is checked when
     * the context is made (one line, exit 1, as jepa-train and lvm-apply) */
    const char *dev = cryo_args_string(cli->args, "device");
    if (strcmp(dev, "cpu") != 0 && strcmp(dev, "cuda") != 0 && strcmp(dev, "auto") != 0 &&
        strncmp(dev, "cuda:", 5) != 0)
        cli_usage_error(&tool, "--device: '%s' is not cpu, cuda, cuda:N or auto", dev);
    return cli_nn_open(cli, dev, computes, training);
}

/* Read weights: the file, its config, a model for the box, the parameters loaded.
 * `input` (may be NULL) names the data the box came from in messages about the box. */
static struct cryo_scunet *load_model(const struct cryo_cli *cli, struct cryo_nn_ctx *ctx,
                                      const char *path, int n, int d, int h, int w, int training,
                                      const char *input)
{
    struct cryo_error err = {0};
    struct cryo_safetensors *st = NULL;
    struct cryo_scunet_config c;
    struct cryo_scunet *m = NULL;
    if (cryo_safetensors_read(&st, path, &err) < 0 || cryo_scunet_config_from_file(st, &c, &err) < 0 ||
        cryo_scunet_weights_check(st, &c, &err) < 0)
        cli_die(cli, &err);
    if (cryo_scunet_create(&m, &c, ctx, n, d, h, w, training, &err) < 0) {
        cryo_safetensors_free(st);
        if (err.status == CRYO_E_NOMEM) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%.900s (a %dx%dx%d box is too large for one pass; cut it into tiles)",
                     err.msg, w, h, d);
            cryo_fail(&err, CRYO_E_NOMEM, "%s", msg);
        }
        if (input)
            cryo_error_prefix(&err, input);
        cli_die(cli, &err);
    }
    if (cryo_scunet_load(m, st, &err) < 0) {
        cryo_safetensors_free(st);
        cli_die(cli, &err);
    }
    cryo_safetensors_free(st);
    return m;
}

/* --task / --meta: rewrite the saved weights with the extra metadata keys. */
static void add_init_meta(const struct cryo_cli *cli, const char *path, long seed)
{
    const char *task = cryo_args_string(cli->args, "task"), *meta = cryo_args_string(cli->args, "meta");
    if (!task && !meta)
        return;
    struct cryo_error err = {0};
    struct cryo_safetensors *st = NULL, *o = NULL;
    if (cryo_safetensors_read(&st, path, &err) < 0 || cryo_safetensors_create(&o, &err) < 0 ||
        cryo_meta_copy(&o->meta, &st->meta, &err) < 0)
        cli_die(cli, &err);
    for (size_t i = 0; i < st->n; i++)
        if (cryo_safetensors_add(o, st->t[i].name, st->t[i].dtype, st->t[i].ndim, st->t[i].shape, st->t[i].data,
                                 &err) < 0)
            cli_die(cli, &err);
    if (task && (cryo_meta_set(&o->meta, "task", task, &err) < 0 || cryo_meta_set(&o->meta, "apix", "1", &err) < 0 ||
                 cryo_meta_set(&o->meta, "normalize", "quantile:0.01:0.99", &err) < 0 ||
                 cryo_meta_setf(&o->meta, &err, "provenance",
                                "{\"tool\": \"lvm-model init\", \"seed\": %ld, \"weights\": \"random, untrained\"}",
                                seed) < 0))
        cli_die(cli, &err);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", meta ? meta : "");
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
            cli_usage_error(&tool, "--meta: '%s' is not KEY=VALUE", kv);
        *eq = '\0';
        if (cryo_meta_set(&o->meta, kv, eq + 1, &err) < 0)
            cli_die(cli, &err);
    }
    if (cryo_safetensors_write(o, path, &err) < 0)
        cli_die(cli, &err);
    cryo_safetensors_free(o);
    cryo_safetensors_free(st);
}

static int cmd_init(const struct cryo_cli *cli)
{
    need_inputs(cli->n_inputs, 1, "init [--config KEY=VAL,...] [--seed S] -o W.safetensors");
    if (!cli->output)
        cli_usage_error(&tool, "init: needs -o W.safetensors");
    struct cryo_error err = {0};
    struct cryo_scunet_config c;
    cryo_scunet_config_default(&c);
    const char *text = cryo_args_string(cli->args, "config");
    if (text && cryo_scunet_config_parse(&c, text, &err) < 0)
        cli_usage_error(&tool, "--config: %s", err.msg);
    long seed = cryo_args_int(cli->args, "seed");
    if (seed < 0)
        cli_usage_error(&tool, "--seed must be >= 0");
    struct cryo_nn_ctx *ctx = open_ctx(cli, 0, 0);
    int q = 1 << c.levels;
    struct cryo_scunet *m = NULL;
    /* The smallest box: parameters do not depend on it. */
    if (cryo_scunet_create(&m, &c, ctx, 1, q, q, q, 0, &err) < 0 ||
        cryo_scunet_init(m, (uint64_t)seed, &err) < 0 || cryo_scunet_save(m, cli->output, &err) < 0)
        cli_die(cli, &err);
    add_init_meta(cli, cli->output, seed);
    if (!cli->quiet)
        fprintf(stderr, "lvm-model: %s: %zu parameters\n", cli->output, cryo_scunet_num_params(m));
    cryo_scunet_free(m);
    cryo_nn_ctx_free(ctx);
    return 0;
}

static int cmd_info(const struct cryo_cli *cli)
{
    need_inputs(cli->n_inputs, 2, "info W.safetensors");
    const char *path = cli->inputs[1];
    struct cryo_error err = {0};
    struct cryo_safetensors *st = NULL;
    struct cryo_scunet_config c;
    if (cryo_safetensors_read(&st, path, &err) < 0 || cryo_scunet_config_from_file(st, &c, &err) < 0 ||
        cryo_scunet_weights_check(st, &c, &err) < 0)
        cli_die(cli, &err);
    size_t count = 0, ntab = 0;
    double f48 = 0, f64 = 0;
    if (cryo_scunet_param_count(&c, &count, &err) < 0 || cryo_scunet_flops(&c, 1, 48, 48, 48, &f48, &err) < 0 ||
        cryo_scunet_flops(&c, 1, 64, 64, 64, &f64, &err) < 0)
        cli_die(cli, &err);
    /* Validate the weights against the config: load them into the smallest model. */
    struct cryo_nn_ctx *ctx = open_ctx(cli, 0, 0);
    struct cryo_scunet *m = NULL;
    int q = 1 << c.levels;
    if (cryo_scunet_create(&m, &c, ctx, 1, q, q, q, 0, &err) < 0 || cryo_scunet_load(m, st, &err) < 0)
        cli_die(cli, &err);
    cryo_scunet_free(m);
    cryo_nn_ctx_free(ctx);
    size_t file_floats = 0;
    for (size_t i = 0; i < st->n; i++)
        if (strncmp(st->t[i].name, "optim.", 6) && strncmp(st->t[i].name, "ema.", 4) &&
            strncmp(st->t[i].name, "jepa.", 5)) {
            file_floats += cryo_st_tensor_count(&st->t[i]);
            ntab++;
        }
    char cfg[512];
    cryo_scunet_config_format(&c, cfg, sizeof cfg);
    printf("%s\n", path);
    printf("  network        SCUNet-3D, %d levels, channels", c.levels);
    for (int l = 0; l <= c.levels; l++)
        printf("%s%d", l ? "-" : " ", c.width << l);
    printf(", %d Swin-Conv blocks per stage\n", c.depth);
    printf("  config         %s\n", cfg);
    printf("  parameters     %zu (%zu tensors in the file, %zu values)\n", count, ntab, file_floats);
    printf("  box            any multiple of %d per axis\n", 1 << c.levels);
    printf("  FLOPs 48^3     %.3f GFLOP per forward (training step about 3x)\n", f48 / 1e9);
    printf("  FLOPs 64^3     %.3f GFLOP per forward\n", f64 / 1e9);
    const char *step = cryo_meta_get(&st->meta, "step"), *jepa = cryo_meta_get(&st->meta, "jepa");
    if (step)
        printf("  training       step %s%s%s\n", step,
               cryo_safetensors_find(st, "optim.m.head.weight") ? ", optimiser state" : "",
               cryo_safetensors_find(st, "ema.head.weight") ? ", EMA weights" : "");
    if (jepa)
        printf("  pre-training   JEPA predictor %s\n", jepa);
    cryo_safetensors_free(st);
    return 0;
}

static int cmd_run(const struct cryo_cli *cli)
{
    need_inputs(cli->n_inputs, 3, "run W.safetensors IN -o OUT");
    struct cryo_error err = {0};
    struct cryo_volume v;
    cryo_volume_init(&v);
    const char *in = cli->inputs[2];
    if (cryo_read_one(&v, in, &err) < 0)
        cli_die(cli, &err);
    if (cryo_volume_convert(&v, CRYO_DTYPE_F32, &err) < 0 || cryo_volume_check_finite(&v, in, &err) < 0) {
        cryo_error_prefix(&err, in);
        cli_die(cli, &err);
    }
    /* Check the box against the weights' config before building anything. */
    struct cryo_safetensors *st = NULL;
    struct cryo_scunet_config c;
    if (cryo_safetensors_read(&st, cli->inputs[1], &err) < 0 || cryo_scunet_config_from_file(st, &c, &err) < 0 ||
        cryo_scunet_weights_check(st, &c, &err) < 0)
        cli_die(cli, &err);
    cryo_safetensors_free(st);
    int q = 1 << c.levels;
    if (v.c != c.in_ch) {
        cryo_fail(&err, CRYO_E_INVALID, "%s: %lld channels, the network takes %d", in, (long long)v.c, c.in_ch);
        cli_die(cli, &err);
    }
    if (v.nz % q || v.ny % q || v.nx % q || v.nz > 4096 || v.ny > 4096 || v.nx > 4096) {
        cryo_fail(&err, CRYO_E_INVALID, "%s: box %lldx%lldx%lld is not a multiple of %d (crop or pad it)",
                  in, (long long)v.nx, (long long)v.ny, (long long)v.nz, q);
        cli_die(cli, &err);
    }
    struct cryo_nn_ctx *ctx = open_ctx(cli, 1, 0);
    struct cryo_scunet *m = load_model(cli, ctx, cli->inputs[1], 1, (int)v.nz, (int)v.ny, (int)v.nx, 0, in);
    /* The arenas are reserved, not yet touched: refuse a box whose activations would not fit
     * in memory rather than be killed half-way. */
    double need = (double)cryo_scunet_activation_bytes(m), have = (double)sysconf(_SC_PHYS_PAGES) *
                                                                   (double)sysconf(_SC_PAGESIZE);
    if (have > 0 && need > 0.8 * have) {
        cryo_fail(&err, CRYO_E_NOMEM,
                  "%s: a %lldx%lldx%lld box needs %.1f GiB of activations, more than this machine's "
                  "%.1f GiB allow; cut the map into tiles", in, (long long)v.nx, (long long)v.ny,
                  (long long)v.nz, need / 1073741824.0, have / 1073741824.0);
        cli_die(cli, &err);
    }
    /* C × Z × Y × X (volume) to Z × Y × X × C (NDHWC); identical for one channel. */
    size_t S = cryo_volume_channel_count(&v), C = (size_t)v.c;
    float *x = cryo_alloc_big(S * C * sizeof(float), &err);
    if (!x)
        cli_die(cli, &err);
    const float *src = v.data;
    for (size_t ch = 0; ch < C; ch++)
        for (size_t s = 0; s < S; s++)
            x[s * C + ch] = src[ch * S + s];
    if (cryo_nn_upload(ctx, cryo_scunet_input(m), x, S * C, &err) < 0 || cryo_scunet_forward(m, &err) < 0)
        cli_die(cli, &err);
    cryo_free_big(x);
    struct cryo_volume o;
    cryo_volume_init(&o);
    size_t OC = (size_t)c.out_ch;
    if (cryo_volume_alloc(&o, CRYO_DTYPE_F32, c.out_ch, v.nz, v.ny, v.nx, &err) < 0 ||
        cryo_meta_copy(&o.meta, &v.meta, &err) < 0)
        cli_die(cli, &err);
    memcpy(o.apix, v.apix, sizeof o.apix);
    memcpy(o.origin, v.origin, sizeof o.origin);
    float *y = cryo_alloc_big(S * OC * sizeof(float), &err);
    if (!y || cryo_nn_download(ctx, y, cryo_scunet_output(m), S * OC, &err) < 0)
        cli_die(cli, &err);
    float *dst = o.data;
    for (size_t ch = 0; ch < OC; ch++)
        for (size_t s = 0; s < S; s++)
            dst[ch * S + s] = y[s * OC + ch];
    cryo_free_big(y);
    /* The history line (and MRC label) names the weights first, so an 80-character label
     * still says which network made the map; the full path is also kept as lvm.weights. */
    char hist[sizeof cli->history + 4096];
    const char *opts = strchr(cli->history, ' ');
    snprintf(hist, sizeof hist, "lvm-model run %s%s", cli->inputs[1], opts ? opts : "");
    if (cryo_meta_set(&o.meta, "lvm.weights", cli->inputs[1], &err) < 0 ||
        cryo_meta_add_history(&o.meta, hist, &err) < 0)
        cli_die(cli, &err);
    struct cryo_sink *sink = cli_open_sink(cli);
    if (cryo_sink_write(sink, &o, &err) < 0 || cryo_sink_commit(sink, &err) < 0)
        cli_die(cli, &err);
    cryo_sink_free(sink);
    cryo_volume_free(&o);
    cryo_volume_free(&v);
    cryo_scunet_free(m);
    cryo_nn_ctx_free(ctx);
    return 0;
}

static int cmd_grad(const struct cryo_cli *cli)
{
    need_inputs(cli->n_inputs, 3, "grad W.safetensors BATCH.safetensors -o OUT.safetensors");
    if (!cli->output)
        cli_usage_error(&tool, "grad: needs -o OUT.safetensors");
    struct cryo_error err = {0};
    struct cryo_safetensors *b = NULL;
    const char *bp = cli->inputs[2];
    if (cryo_safetensors_read(&b, bp, &err) < 0)
        cli_die(cli, &err);
    const struct cryo_st_tensor *ti = cryo_safetensors_find(b, "input");
    if (!ti || ti->ndim != 5 || ti->dtype != CRYO_ST_F32) {
        cryo_fail(&err, CRYO_E_FORMAT, "%s: needs an F32 tensor 'input' of shape N,D,H,W,C", bp);
        cli_die(cli, &err);
    }
    for (int i = 0; i < 4; i++)
        if (ti->shape[i] < 1 || ti->shape[i] > 4096) {
            cryo_fail(&err, CRYO_E_FORMAT, "%s: 'input' dimension %d is %lld", bp, i, (long long)ti->shape[i]);
            cli_die(cli, &err);
        }
    struct cryo_nn_ctx *ctx = open_ctx(cli, 1, 1);
    struct cryo_scunet *m = load_model(cli, ctx, cli->inputs[1], (int)ti->shape[0], (int)ti->shape[1],
                                       (int)ti->shape[2], (int)ti->shape[3], 1, bp);
    const struct cryo_scunet_config *c = cryo_scunet_config(m);
    int64_t in_shape[5] = {ti->shape[0], ti->shape[1], ti->shape[2], ti->shape[3], c->in_ch};
    int64_t out_shape[5] = {ti->shape[0], ti->shape[1], ti->shape[2], ti->shape[3], c->out_ch};
    const float *xin, *dout;
    if (cryo_safetensors_get_f32(b, "input", 5, in_shape, &xin, &err) < 0 ||
        cryo_safetensors_get_f32(b, "dout", 5, out_shape, &dout, &err) < 0)
        cli_die(cli, &err);
    size_t nout = cryo_scunet_output_count(m), np = cryo_scunet_num_params(m), ntab;
    for (size_t i = 0; i < cryo_scunet_input_count(m) + nout; i++) {
        size_t ni = cryo_scunet_input_count(m);
        float v = i < ni ? xin[i] : dout[i - ni];
        if (!isfinite(v)) {
            cryo_fail(&err, CRYO_E_NUMERIC, "%s: '%s' holds NaN or Inf", bp, i < ni ? "input" : "dout");
            cli_die(cli, &err);
        }
    }
    float *dd = cryo_nn_alloc(ctx, nout, &err);
    float *y = cryo_alloc_big(nout * sizeof(float), &err);
    float *g = cryo_alloc_big(np * sizeof(float), &err);
    if (!dd || !y || !g)
        cli_die(cli, &err);
    if (cryo_nn_upload(ctx, cryo_scunet_input(m), xin, cryo_scunet_input_count(m), &err) < 0 ||
        cryo_nn_upload(ctx, dd, dout, nout, &err) < 0 || cryo_scunet_forward(m, &err) < 0 ||
        cryo_scunet_zero_grad(m, &err) < 0 || cryo_scunet_backward(m, dd, &err) < 0 ||
        cryo_nn_download(ctx, y, cryo_scunet_output(m), nout, &err) < 0 ||
        cryo_nn_download(ctx, g, cryo_scunet_grad_data(m), np, &err) < 0)
        cli_die(cli, &err);
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &ntab);
    struct cryo_safetensors *o = NULL;
    char name[160];
    if (cryo_safetensors_create(&o, &err) < 0 ||
        cryo_safetensors_add(o, "output", CRYO_ST_F32, 5, out_shape, y, &err) < 0)
        cli_die(cli, &err);
    for (size_t i = 0; i < ntab; i++) {
        snprintf(name, sizeof name, "grad.%s", tab[i].name);
        if (cryo_safetensors_add(o, name, CRYO_ST_F32, tab[i].ndim, tab[i].shape, g + tab[i].offset, &err) < 0)
            cli_die(cli, &err);
    }
    if (cryo_safetensors_write(o, cli->output, &err) < 0)
        cli_die(cli, &err);
    cryo_safetensors_free(o);
    cryo_safetensors_free(b);
    cryo_free_big(g);
    cryo_free_big(y);
    cryo_nn_free(ctx, dd);
    cryo_scunet_free(m);
    cryo_nn_ctx_free(ctx);
    return 0;
}

/* List any safetensors file (name, dtype, shape; metadata); with -o, write it again through
 * our reader and writer (the interchange test compares the copy with numpy). */
static int cmd_tensors(const struct cryo_cli *cli)
{
    need_inputs(cli->n_inputs, 2, "tensors FILE.safetensors [-o COPY.safetensors]");
    struct cryo_error err = {0};
    struct cryo_safetensors *st = NULL, *o = NULL;
    if (cryo_safetensors_read(&st, cli->inputs[1], &err) < 0)
        cli_die(cli, &err);
    if (cli->output) {
        if (cryo_safetensors_create(&o, &err) < 0 || cryo_meta_copy(&o->meta, &st->meta, &err) < 0)
            cli_die(cli, &err);
        for (size_t i = 0; i < st->n; i++) {
            const struct cryo_st_tensor *t = &st->t[i];
            if (cryo_safetensors_add(o, t->name, t->dtype, t->ndim, t->shape, t->data, &err) < 0)
                cli_die(cli, &err);
        }
        if (cryo_safetensors_write(o, cli->output, &err) < 0)
            cli_die(cli, &err);
        cryo_safetensors_free(o);
    } else {
        for (size_t i = 0; i < st->meta.n; i++)
            printf("metadata %s = %s\n", st->meta.keys[i], st->meta.vals[i]);
        for (size_t i = 0; i < st->n; i++) {
            const struct cryo_st_tensor *t = &st->t[i];
            printf("%s %s [", t->name, cryo_st_dtype_name(t->dtype));
            for (int k = 0; k < t->ndim; k++)
                printf("%s%lld", k ? "," : "", (long long)t->shape[k]);
            printf("]\n");
        }
    }
    cryo_safetensors_free(st);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_s(void) /* CPU time of the whole process, all threads */
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Time forward passes or training steps on random tiles; one line of key=value results. */
static int cmd_bench(const struct cryo_cli *cli)
{
    need_inputs(cli->n_inputs, 2, "bench W.safetensors [--box N] [--batch B] [--train] [--repeat R] [--device D] [--precision P]");
    long box = cryo_args_int(cli->args, "box"), batch = cryo_args_int(cli->args, "batch");
    long rep = cryo_args_int(cli->args, "repeat");
    int train = cryo_args_flag(cli->args, "train");
    if (box < 1 || box > 1024 || batch < 1 || batch > 256 || rep < 1 || rep > 1000)
        cli_usage_error(&tool, "bench: --box 1..1024, --batch 1..256, --repeat 1..1000");
    struct cryo_error err = {0};
    struct cryo_nn_ctx *ctx = open_ctx(cli, 1, train);
    struct cryo_scunet *m = load_model(cli, ctx, cli->inputs[1], (int)batch, (int)box, (int)box, (int)box, train, NULL);
    const struct cryo_scunet_config *c = cryo_scunet_config(m);
    double flops;
    if (cryo_scunet_flops(c, (int)batch, (int)box, (int)box, (int)box, &flops, &err) < 0)
        cli_die(cli, &err);
    size_t nin = cryo_scunet_input_count(m), nout = cryo_scunet_output_count(m);
    float *x = cryo_alloc_big(nin * sizeof(float), &err), *y = cryo_alloc_big(nout * sizeof(float), &err);
    if (!x || !y)
        cli_die(cli, &err);
    uint64_t s = 12345;
    for (size_t i = 0; i < nin; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
    }
    for (size_t i = 0; i < nout; i++)
        y[i] = x[i % nin];
    struct cryo_trainer *tr = NULL;
    struct cryo_train_opts o;
    cryo_train_opts_default(&o);
    if (train && cryo_trainer_create(&tr, m, &o, &err) < 0)
        cli_die(cli, &err);
    if (cryo_nn_upload(ctx, cryo_scunet_input(m), x, nin, &err) < 0)
        cli_die(cli, &err);
    double *t = calloc((size_t)rep, sizeof *t), cpu_best = 0;
    if (!t)
        cli_die(cli, &err);
    for (long r = -1; r < rep; r++) {
        double t0 = now_s(), c0 = cpu_s();
        int rc = train ? cryo_trainer_step(tr, x, y, &err) : cryo_scunet_forward(m, &err);
        if (rc == 0)
            rc = cryo_nn_sync(ctx, &err);
        if (rc < 0)
            cli_die(cli, &err);
        if (r >= 0) {
            t[r] = now_s() - t0;
            double dc = cpu_s() - c0;
            if (r == 0 || dc < cpu_best)
                cpu_best = dc;
        }
    }
    if (cryo_args_flag(cli->args, "profile")) {
        char rep_text[2048];
        cryo_scunet_profile(m, 1);
        int rc = train ? cryo_trainer_step(tr, x, y, &err) : cryo_scunet_forward(m, &err);
        if (rc < 0)
            cli_die(cli, &err);
        cryo_scunet_profile_report(m, rep_text, sizeof rep_text);
        cryo_scunet_profile(m, 0);
        printf("%s", rep_text);
    }
    qsort(t, (size_t)rep, sizeof *t, cmp_double);
    double med = t[rep / 2], work = train ? 3 * flops : flops;
    printf("what=%s box=%ld batch=%ld seconds=%.4f best=%.4f cpu=%.4f gflop=%.2f gflops=%.1f activation_mib=%.0f "
           "threads=%d precision=%s device=\"%s\"\n",
           train ? "train_step" : "forward", box, batch, med, t[0], cpu_best, work / 1e9, work / med / 1e9,
           (double)cryo_scunet_activation_bytes(m) / 1048576.0, cli->threads,
           cli_nn_precision_name(cryo_nn_get_precision(ctx)), cryo_nn_ctx_name(ctx));
    free(t);
    cryo_free_big(x);
    cryo_free_big(y);
    cryo_trainer_free(tr);
    cryo_scunet_free(m);
    cryo_nn_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    cli_nn_precision_init(cryo_args_string(cli.args, "precision"));
    cmd_name = cli.inputs[0];
    int rc;
    if (strcmp(cmd_name, "init") == 0)
        rc = cmd_init(&cli);
    else if (strcmp(cmd_name, "info") == 0)
        rc = cmd_info(&cli);
    else if (strcmp(cmd_name, "run") == 0)
        rc = cmd_run(&cli);
    else if (strcmp(cmd_name, "grad") == 0)
        rc = cmd_grad(&cli);
    else if (strcmp(cmd_name, "tensors") == 0)
        rc = cmd_tensors(&cli);
    else if (strcmp(cmd_name, "bench") == 0)
        rc = cmd_bench(&cli);
    else
        cli_usage_error(&tool, "unknown command '%s' (init, info, run, grad, tensors, bench)", cmd_name);
    cli_free(&cli);
    return rc;
}
