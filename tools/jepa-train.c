/* jepa-train — pre-train the CryoLVM SCUNet-3D with JEPA (or the MAE baseline), or fine-tune
 * it for sharpening, super-resolution or missing-wedge completion.
 *
 *   jepa-train [OPTIONS] --out DIR [CROPS...]            pre-training (stdin: prepared crops)
 *   jepa-train --task sharpen --init PRE.safetensors --out DIR [PAIRS...]   fine-tuning
 *   jepa-train export CHECKPOINT -o W.safetensors        lean inference weights
 *   jepa-train --show-mask MASK.png [--size N]           one mask of the current options
 *
 * Shape of main: parse and validate every option → read the corpus (every frame of every
 * input, checked: finite, one grid, the voxel size) → open or resume the run directory
 * (refusals before any work) → the step loop: batch k·B … k·B+B−1 of the corpus order,
 * one trainer step, the log row, checkpoints (atomic), validation → final weights.
 *
 * Determinism: crop k of the run is a pure function of (seed, k, corpus): epoch e = k / N
 * visits the N crops in a permutation drawn from (seed, e). Masks, schedules and drop-path
 * are functions of the step and the saved RNG, so a checkpoint at step s plus the same corpus
 * continues exactly as the uninterrupted run (same thread count: float sums are ordered by
 * the threads).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <cairo.h>

#include "common/cli.h"
#include "common/nnctx.h"
#include "cryolvm/fsc.h"
#include "cryolvm/hist.h"
#include "cryolvm/jepa_mask.h"
#include "cryolvm/loader.h"
#include "cryolvm/mapmodel.h"
#include "cryolvm/mem.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/nn_train.h"
#include "cryolvm/safetensors.h"

static const struct cryo_option options[] = {
    {"out", 0, CRYO_OPT_STRING, "DIR", NULL, "run directory: checkpoints, log.tsv (required for training)", NULL},
    {"resume", 0, CRYO_OPT_FLAG, NULL, NULL, "continue the run in DIR from its last checkpoint (same config)", NULL},
    {"objective", 0, CRYO_OPT_CHOICE, "OBJ", "jepa", "pre-training objective", "jepa|mae"},
    {"task", 0, CRYO_OPT_CHOICE, "TASK", NULL, "fine-tune for this task on (input, target) pairs instead of pre-training", "sharpen|superres|wedge"},
    {"config", 'c', CRYO_OPT_STRING, "KEY=VAL,...", NULL, "network configuration on top of the default (as lvm-model init)", NULL},
    {"predictor", 0, CRYO_OPT_STRING, "KEY=VAL,...", NULL, "JEPA predictor: embed, depth, head_dim, mlp_ratio", NULL},
    {"steps", 0, CRYO_OPT_INT, "N", "1000", "optimiser steps", NULL},
    {"batch", 'b', CRYO_OPT_INT, "B", "2", "crops per step (the global batch)", NULL},
    {"seed", 's', CRYO_OPT_INT, "S", "1", "seed: initialisation, crop order, masks, drop-path", NULL},
    {"lr", 0, CRYO_OPT_DOUBLE, "X", "1e-3", "peak learning rate (AdamW)", NULL},
    {"min-lr", 0, CRYO_OPT_DOUBLE, "X", "1e-6", "learning rate at the end of the cosine", NULL},
    {"warmup", 0, CRYO_OPT_INT, "N", "0", "linear warm-up steps (default: 10% of --steps)", NULL},
    {"wd", 0, CRYO_OPT_DOUBLE, "X", "0.04", "weight decay at the start (conv and linear weights only)", NULL},
    {"wd-end", 0, CRYO_OPT_DOUBLE, "X", "0.4", "weight decay at the end of the cosine schedule (pre-training; fine-tuning: --wd)", NULL},
    {"ema", 0, CRYO_OPT_DOUBLE, "X", "0.996", "target-encoder EMA momentum at the start", NULL},
    {"ema-end", 0, CRYO_OPT_DOUBLE, "X", "1.0", "EMA momentum at the end (linear)", NULL},
    {"clip", 0, CRYO_OPT_DOUBLE, "X", "1.0", "gradient-norm clipping, 0 = off", NULL},
    {"loss", 0, CRYO_OPT_CHOICE, "L", "smooth-l1", "JEPA loss on the target tokens", "smooth-l1|squared"},
    {"beta", 0, CRYO_OPT_DOUBLE, "X", "1.0", "Smooth-L1 beta", NULL},
    {"targets", 0, CRYO_OPT_INT, "N", "4", "target blocks per crop", NULL},
    {"mask-scale", 0, CRYO_OPT_DOUBLES, "LO,HI", "0.15,0.2", "target block volume as a fraction of the token grid", NULL},
    {"mask-aspect", 0, CRYO_OPT_DOUBLES, "LO,HI", "0.75,1.5", "range of the block's aspect ratios", NULL},
    {"min-keep", 0, CRYO_OPT_INT, "N", "4", "context tokens to keep at least", NULL},
    {"mask-ratio", 0, CRYO_OPT_DOUBLE, "X", "0.75", "MAE: fraction of tokens masked", NULL},
    {"collapse", 0, CRYO_OPT_DOUBLE, "X", "0.05", "warn when the target embeddings' spread across tokens falls below X", NULL},
    {"init", 0, CRYO_OPT_STRING, "FILE", NULL, "fine-tuning: pre-trained checkpoint (its encoder)", NULL},
    {"init-from", 0, CRYO_OPT_CHOICE, "WHICH", "ema", "which encoder of a JEPA checkpoint: the EMA target or the context encoder", "ema|context"},
    {"from-scratch", 0, CRYO_OPT_FLAG, NULL, NULL, "fine-tuning without pre-training (ablation)", NULL},
    {"freeze-encoder", 0, CRYO_OPT_INT, "N", "0", "fine-tuning: keep the encoder fixed for the first N steps", NULL},
    {"alpha", 0, CRYO_OPT_DOUBLE, "X", "0.5", "fine-tuning loss alpha*MSE + (1-alpha)*HistKL (1 = MSE only)", NULL},
    {"bins", 0, CRYO_OPT_INT, "N", "100", "HistKL bins over [0,1] (kernel width one bin, as hist-compare)", NULL},
    {"val", 0, CRYO_OPT_STRING, "FILE", NULL, "held-out crops (fine-tuning: 2-channel pairs), or a text list of held-out maps (pairs with --pairs)", NULL},
    {"val-crops", 0, CRYO_OPT_INT, "N", "16", "--val LIST: fixed crops drawn from the held-out maps", NULL},
    {"val-every", 0, CRYO_OPT_INT, "N", "0", "validate every N steps (default: --save-every) and at the end", NULL},
    {"apix", 0, CRYO_OPT_DOUBLE, "A", "1.0", "voxel size the crops must have (Å); 0 = any", NULL},
    {"save-every", 0, CRYO_OPT_INT, "N", "100", "checkpoint every N steps", NULL},
    {"keep", 0, CRYO_OPT_INT, "K", "3", "periodic step-N checkpoints kept", NULL},
    {"device", 0, CRYO_OPT_STRING, "DEV", "auto", "device to train on: cpu, cuda, cuda:N (GPU N) or auto", NULL},
    {"precision", 0, CRYO_OPT_CHOICE, "P", NULL,
     "arithmetic of convolutions and matrix products (default $CRYO_NN_PRECISION, else fp32; float32 master "
     "weights always): tf32 = TF32 tensor cores on a GPU, float32 on the cpu; bf16 = bfloat16 convolutions, linear "
     "layers and attention products on a GPU, refused on the cpu (its bf16 kernels are forward-only); may change on --resume", "fp32|tf32|bf16"},
    {"export-dtype", 0, CRYO_OPT_CHOICE, "T", "f32", "export: weight precision", "f32|f16"},
    {"show-mask", 0, CRYO_OPT_STRING, "FILE.png", NULL, "draw one mask of these options as slices and exit", NULL},
    {"size", 0, CRYO_OPT_INT, "N", NULL, "inputs are maps: random crops of N^3 voxels from them (the loader); --show-mask: crop edge (48)", NULL},
    {"list", 0, CRYO_OPT_STRING, "LIST", NULL, "the maps: a file of map paths, one per line, '#' comments (the loader)", NULL},
    {"pairs", 0, CRYO_OPT_STRING, "LIST", NULL, "fine-tuning: file of \"input target\" map paths, one pair per line (the loader)", NULL},
    {"cache", 0, CRYO_OPT_STRING, "DIR", NULL, "loader: keep prepared maps here across runs (default: a private temporary folder)", NULL},
    {"min-density", 0, CRYO_OPT_DOUBLE, "X", "0", "loader: redraw crops whose mean density is below X", NULL},
    {"no-rotate", 0, CRYO_OPT_FLAG, NULL, NULL, "loader: no random cube rotations of the crops", NULL},
    {"flip", 0, CRYO_OPT_FLAG, NULL, NULL, "loader: also mirror crops with probability 1/2", NULL},
    {"prefetch", 0, CRYO_OPT_INT, "N", "8", "loader: crops prepared ahead by a background thread", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

#ifdef CRYO_HAVE_MPI
#define TOOL_NAME "jepa-train-mpi" /* the MPI build (make MPI=1) */
#else
#define TOOL_NAME "jepa-train"
#endif

static const struct cryo_tool tool = {
    TOOL_NAME,
#ifdef CRYO_HAVE_MPI
    "pre-train (JEPA, MAE) or fine-tune the CryoLVM SCUNet-3D on crops of density maps (MPI data-parallel build)",
#else
    "pre-train (JEPA, MAE) or fine-tune the CryoLVM SCUNet-3D on crops of density maps",
#endif
    "[OPTIONS] --out DIR [CROPS...|MAPS...] | export CHECKPOINT --out W.safetensors", options, 0, -1, 0, 1};

static struct cryo_cli cli;
static volatile sig_atomic_t stop_signal;
static int mpi_rank = 0, mpi_size = 1; /* data-parallel ranks (MPI=1 builds under mpirun) */

#ifdef CRYO_HAVE_MPI
#include <limits.h>
#include <mpi.h>

/* The gradient reducer (nn_train.h) over MPI: count-weighted sums of gradients and loss. */
static int mpi_reduce(void *user, float *const *grad, const size_t *n, int ngrad, double *loss, double count,
                      struct cryo_error *err)
{
    (void)user;
    double v[2] = {*loss * count, count};
    if (MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return cryo_fail(err, CRYO_E_IO, "MPI_Allreduce failed");
    float up = (float)count, down = (float)(1.0 / v[1]);
    for (int i = 0; i < ngrad; i++) {
        for (size_t k = 0; k < n[i]; k++)
            grad[i][k] *= up;
        for (size_t off = 0; off < n[i]; off += INT_MAX / 2) {
            size_t len = n[i] - off < INT_MAX / 2 ? n[i] - off : INT_MAX / 2;
            if (MPI_Allreduce(MPI_IN_PLACE, grad[i] + off, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
                return cryo_fail(err, CRYO_E_IO, "MPI_Allreduce failed");
        }
        for (size_t k = 0; k < n[i]; k++)
            grad[i][k] *= down;
    }
    *loss = v[0] / v[1];
    return CRYO_OK;
}
#endif

#ifdef CRYO_HAVE_MPI
/* The same with NCCL on the GPUs (the context's memory, nn_backend.h): used when every rank
 * trains on a CUDA context and NCCL loads; the gradients never leave the devices. */
static struct cryo_nn_ctx *nccl_ctx;
static int nccl_reduce(void *user, float *const *grad, const size_t *n, int ngrad, double *loss, double count,
                       struct cryo_error *err)
{
    struct cryo_nn_ctx *ctx = user;
    double v[2] = {*loss * count, count};
    CRYO_TRY(cryo_nn_allreduce_sum_host(ctx, v, 2, err));
    float up = (float)count, down = (float)(1.0 / v[1]);
    for (int i = 0; i < ngrad; i++) {
        CRYO_TRY(cryo_nn_scale(ctx, grad[i], n[i], up, err));
        CRYO_TRY(cryo_nn_allreduce_sum(ctx, grad[i], n[i], err));
        CRYO_TRY(cryo_nn_scale(ctx, grad[i], n[i], down, err));
    }
    *loss = v[0] / v[1];
    return CRYO_OK;
}
#endif

/* Ranks on GPUs: one NCCL communicator over them (rank 0's id through MPI_Bcast). Without
 * NCCL the gradients go through MPI on the host, as on the CPU. */
static void device_reduce_setup(struct cryo_nn_ctx *ctx)
{
#ifdef CRYO_HAVE_MPI
    if (mpi_size < 2 || cryo_nn_ctx_device(ctx) == CRYO_NN_DEVICE_CPU)
        return;
    unsigned char id[CRYO_NN_COMM_ID_BYTES];
    memset(id, 0, sizeof id);
    struct cryo_error err = {0};
    int ok = mpi_rank == 0 ? cryo_nn_comm_id(ctx, id, &err) == 0 : 1;
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (ok) {
        MPI_Bcast(id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
        ok = cryo_nn_comm_init(ctx, id, mpi_size, mpi_rank, &err) == 0;
    }
    int all = ok;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all)
        nccl_ctx = ctx;
    else if (mpi_rank == 0)
        fprintf(stderr, "jepa-train: note: no NCCL all-reduce (%s): gradients go through MPI on the host\n",
                err.msg[0] ? err.msg : "another rank failed");
#else
    (void)ctx;
#endif
}

/* Every rank agrees to stop when any got a signal (ranks must leave the loop together). */
static int stop_agreed(void)
{
    int s = stop_signal != 0;
#ifdef CRYO_HAVE_MPI
    if (mpi_size > 1)
        MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    return s;
}

static void barrier(void)
{
#ifdef CRYO_HAVE_MPI
    if (mpi_size > 1)
        MPI_Barrier(MPI_COMM_WORLD);
#endif
}

static void on_signal(int sig) { stop_signal = sig; }

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...)
{
    struct cryo_error err = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    err.status = CRYO_E_INVALID;
    cli_die(&cli, &err);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- configuration --------------------------------------------------------------------- */

struct run_cfg {
    int finetune;                 /* --task given */
    const char *task, *objective;
    struct cryo_scunet_config net;
    struct cryo_jepa_config pred;
    struct cryo_jepa_train_opts jo;
    struct cryo_train_opts so;
    long steps, batch, save_every, keep, val_every, freeze;
    uint64_t seed;
    double apix, collapse;
    const char *init, *init_from;
    int from_scratch;
};

static void parse_predictor(struct cryo_jepa_config *j, const char *text)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '='), *end;
        if (!eq)
            cli_usage_error(&tool, "--predictor: '%s' is not KEY=VAL", tok);
        *eq = 0;
        long v = strtol(eq + 1, &end, 10);
        if (*end || end == eq + 1)
            cli_usage_error(&tool, "--predictor: %s: '%s' is not an integer", tok, eq + 1);
        if (strcmp(tok, "embed") == 0)
            j->embed = (int)v;
        else if (strcmp(tok, "depth") == 0)
            j->depth = (int)v;
        else if (strcmp(tok, "head_dim") == 0)
            j->head_dim = (int)v;
        else if (strcmp(tok, "mlp_ratio") == 0)
            j->mlp_ratio = (int)v;
        else
            cli_usage_error(&tool, "--predictor: unknown key '%s' (embed, depth, head_dim, mlp_ratio)", tok);
    }
    struct cryo_error err = {0};
    if (cryo_jepa_config_check(j, &err) < 0)
        cli_usage_error(&tool, "--predictor: %s", err.msg);
}

static void read_config(struct run_cfg *c)
{
    struct cryo_args *a = cli.args;
    struct cryo_error err = {0};
    memset(c, 0, sizeof *c);
    c->task = cryo_args_has(a, "task") ? cryo_args_string(a, "task") : NULL;
    c->finetune = c->task != NULL;
    c->objective = cryo_args_string(a, "objective");
    cryo_scunet_config_default(&c->net);
    const char *ct = cryo_args_string(a, "config");
    if (ct && cryo_scunet_config_parse(&c->net, ct, &err) < 0)
        cli_usage_error(&tool, "--config: %s", err.msg);
    cryo_jepa_config_default(&c->pred, &c->net);
    if (cryo_args_string(a, "predictor"))
        parse_predictor(&c->pred, cryo_args_string(a, "predictor"));
    c->steps = cryo_args_int(a, "steps");
    c->batch = cryo_args_int(a, "batch");
    long seed = cryo_args_int(a, "seed");
    c->save_every = cryo_args_int(a, "save-every");
    c->keep = cryo_args_int(a, "keep");
    c->val_every = cryo_args_int(a, "val-every");
    c->freeze = cryo_args_int(a, "freeze-encoder");
    c->apix = cryo_args_double(a, "apix");
    c->collapse = cryo_args_double(a, "collapse");
    if (c->steps < 1 || c->steps > 1000000000L)
        cli_usage_error(&tool, "--steps must be 1..1e9");
    if (c->batch < 1 || c->batch > 4096)
        cli_usage_error(&tool, "--batch must be 1..4096");
    if (seed < 0)
        cli_usage_error(&tool, "--seed must be >= 0");
    c->seed = (uint64_t)seed;
    if (c->save_every < 1 || c->keep < 0 || c->val_every < 0 || c->freeze < 0 || !(c->apix >= 0))
        cli_usage_error(&tool, "--save-every >= 1, --keep >= 0, --val-every >= 0, --freeze-encoder >= 0, --apix >= 0");
    if (c->val_every == 0)
        c->val_every = c->save_every;
    double lr = cryo_args_double(a, "lr"), min_lr = cryo_args_double(a, "min-lr");
    long warm = cryo_args_int(a, "warmup");
    if (!cryo_args_given(a, "warmup"))
        warm = c->steps / 10;
    if (!(lr > 0) || !(min_lr >= 0) || min_lr > lr || warm < 0 || warm > c->steps)
        cli_usage_error(&tool, "--lr > 0, 0 <= --min-lr <= --lr, 0 <= --warmup <= --steps");
    double wd = cryo_args_double(a, "wd"), wd_end = cryo_args_double(a, "wd-end");
    double ema = cryo_args_double(a, "ema"), ema_end = cryo_args_double(a, "ema-end");
    double clip = cryo_args_double(a, "clip"), beta = cryo_args_double(a, "beta");
    if (!(wd >= 0) || !(wd_end >= 0) || !(ema >= 0 && ema < 1) || !(ema_end >= ema && ema_end <= 1) ||
        !(clip >= 0) || !(beta > 0))
        cli_usage_error(&tool, "--wd, --wd-end >= 0; 0 <= --ema < 1; --ema <= --ema-end <= 1; --clip >= 0; --beta > 0");
    cryo_jepa_train_opts_default(&c->jo);
    c->jo.adamw.lr = lr;
    c->jo.adamw.weight_decay = wd;
    c->jo.sched = (struct cryo_lr_schedule){lr, min_lr, warm, c->steps};
    c->jo.clip = clip;
    c->jo.ema_decay = ema;
    c->jo.ema_end = ema_end;
    c->jo.wd_end = wd_end;
    c->jo.loss = strcmp(cryo_args_string(a, "loss"), "squared") == 0 ? CRYO_JEPA_SQUARED : CRYO_JEPA_SMOOTH_L1;
    c->jo.beta = beta;
    c->jo.mode = strcmp(c->objective, "mae") == 0 ? CRYO_JEPA_MAE : CRYO_JEPA_LATENT;
    c->jo.seed = c->seed;
    c->jo.mask.targets = (int)cryo_args_int(a, "targets");
    c->jo.mask.min_keep = (int)cryo_args_int(a, "min-keep");
    double sc[3], as[3];
    if (cryo_args_doubles(a, "mask-scale", sc) != 2 || cryo_args_doubles(a, "mask-aspect", as) != 2)
        cli_usage_error(&tool, "--mask-scale and --mask-aspect take LO,HI");
    c->jo.mask.scale_min = sc[0];
    c->jo.mask.scale_max = sc[1];
    c->jo.mask.aspect_min = as[0];
    c->jo.mask.aspect_max = as[1];
    if (cryo_jepa_mask_opts_check(&c->jo.mask, &err) < 0)
        cli_usage_error(&tool, "%s", err.msg);
    c->jo.mask_ratio = cryo_args_double(a, "mask-ratio");
    if (!(c->jo.mask_ratio > 0 && c->jo.mask_ratio < 1))
        cli_usage_error(&tool, "--mask-ratio must be in (0, 1)");
    /* fine-tuning */
    cryo_train_opts_default(&c->so);
    c->so.adamw.lr = lr;
    c->so.adamw.weight_decay = wd;
    c->so.sched = c->jo.sched;
    c->so.clip = clip;
    c->so.seed = c->seed;
    c->so.alpha = cryo_args_double(a, "alpha");
    c->so.loss = c->so.alpha >= 1 ? CRYO_LOSS_MSE : CRYO_LOSS_COMBINED;
    long bins = cryo_args_int(a, "bins");
    if (!(c->so.alpha >= 0 && c->so.alpha <= 1) || bins < 2 || bins > 100000)
        cli_usage_error(&tool, "--alpha in [0, 1], --bins 2..100000");
    c->so.hist.bins = (int)bins;
    c->so.hist.lo = 0;
    c->so.hist.hi = 1;
    c->so.hist.sigma = 1.0 / (double)bins; /* hist-compare's default: one bin width */
    c->init = cryo_args_string(a, "init");
    c->init_from = cryo_args_string(a, "init-from");
    c->from_scratch = cryo_args_flag(a, "from-scratch");
    if (c->finetune && !c->init && !c->from_scratch)
        cli_usage_error(&tool, "fine-tuning (--task) needs --init PRETRAINED or --from-scratch");
    if (c->finetune && c->init && c->from_scratch)
        cli_usage_error(&tool, "--init and --from-scratch exclude each other");
    if (!c->finetune && (c->init || c->from_scratch))
        cli_usage_error(&tool, "--init and --from-scratch are for fine-tuning (--task)");
}

/* Everything that decides the numbers, as "key=value;..." (the resume check compares it). */
static void config_text(const struct run_cfg *c, const char *corpus, char *buf, size_t cap)
{
    char net[512];
    cryo_scunet_config_format(&c->net, net, sizeof net);
    int k = snprintf(buf, cap, "mode=%s;config=%s;steps=%ld;batch=%ld;seed=%" PRIu64 ";lr=%.17g;min_lr=%.17g;"
                     "warmup=%" PRId64 ";wd=%.17g;clip=%.17g;apix=%.17g;corpus=%s",
                     c->finetune ? c->task : c->objective, net, c->steps, c->batch, c->seed, c->jo.sched.lr,
                     c->jo.sched.min_lr, c->jo.sched.warmup, c->jo.adamw.weight_decay, c->jo.clip, c->apix, corpus);
    if (k < 0 || (size_t)k >= cap)
        return;
    if (c->finetune)
        snprintf(buf + k, cap - (size_t)k, ";alpha=%.17g;bins=%d;init=%s;init_from=%s;freeze=%ld",
                 c->so.alpha, c->so.hist.bins, c->init ? c->init : "scratch", c->init_from, c->freeze);
    else
        snprintf(buf + k, cap - (size_t)k,
                 ";predictor=embed=%d,depth=%d,head_dim=%d,mlp_ratio=%d;wd_end=%.17g;ema=%.17g;ema_end=%.17g;"
                 "loss=%s;beta=%.17g;targets=%d;mask_scale=%.17g,%.17g;mask_aspect=%.17g,%.17g;min_keep=%d;"
                 "mask_ratio=%.17g",
                 c->pred.embed, c->pred.depth, c->pred.head_dim, c->pred.mlp_ratio, c->jo.wd_end, c->jo.ema_decay,
                 c->jo.ema_end, c->jo.loss == CRYO_JEPA_SQUARED ? "squared" : "smooth-l1", c->jo.beta,
                 c->jo.mask.targets, c->jo.mask.scale_min, c->jo.mask.scale_max, c->jo.mask.aspect_min,
                 c->jo.mask.aspect_max, c->jo.mask.min_keep, c->jo.mask_ratio);
}

/* Values equal: numbers compared as numbers (1e-3 = 0.001), lists item by item. */
static int value_equal(const char *a, const char *b)
{
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (ea != a && eb != b && !*ea && !*eb)
        return x == y;
    if (!strchr(a, ',') && !strchr(b, ','))
        return strcmp(a, b) == 0;
    char A[1024], B[1024];
    snprintf(A, sizeof A, "%s", a);
    snprintf(B, sizeof B, "%s", b);
    char *sa, *sb, *ta = strtok_r(A, ",", &sa), *tb = strtok_r(B, ",", &sb);
    for (; ta && tb; ta = strtok_r(NULL, ",", &sa), tb = strtok_r(NULL, ",", &sb)) {
        char *qa = strchr(ta, '='), *qb = strchr(tb, '=');
        if (!qa != !qb)
            return 0;
        if (qa) {
            *qa++ = 0;
            *qb++ = 0;
            if (strcmp(ta, tb) != 0 || !value_equal(qa, qb))
                return 0;
        } else if (!value_equal(ta, tb)) {
            return 0;
        }
    }
    return !ta && !tb;
}

/* First key whose value differs between two config texts (NULL if none); *va, *vb its values. */
static const char *config_diff(const char *a, const char *b, char *va, char *vb, size_t cap)
{
    static char key[128];
    char A[4096], B[4096];
    snprintf(A, sizeof A, "%s", a);
    snprintf(B, sizeof B, "%s", b);
    char *sa, *ta;
    for (ta = strtok_r(A, ";", &sa); ta; ta = strtok_r(NULL, ";", &sa)) {
        char *eq = strchr(ta, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *other = NULL;
        char C[4096], *sc, *tc;
        snprintf(C, sizeof C, "%s", B);
        for (tc = strtok_r(C, ";", &sc); tc; tc = strtok_r(NULL, ";", &sc))
            if (strncmp(tc, ta, strlen(ta)) == 0 && tc[strlen(ta)] == '=') {
                other = tc + strlen(ta) + 1;
                break;
            }
        if (!other || !value_equal(eq + 1, other)) {
            snprintf(key, sizeof key, "%s", ta);
            snprintf(va, cap, "%s", eq + 1);
            snprintf(vb, cap, "%s", other ? other : "(absent)");
            return key;
        }
    }
    return NULL;
}

/* ---- corpus (stdin mode: prepared crops, every frame of every input) -------------------- */

struct corpus {
    size_t n, vox;         /* crops (maps with the loader), voxels per channel */
    int channels, d, h, w;
    float **crop;          /* stdin mode: n entries, channel-major (C × Z × Y × X) */
    struct cryo_loader *loader; /* map mode: random crops of the maps */
    float *lbuf;           /* loader batch, NDHWC */
    uint64_t hash;
    char names[512];
};

static void corpus_free(struct corpus *c)
{
    for (size_t i = 0; c->crop && i < c->n; i++)
        free(c->crop[i]);
    free(c->crop);
    cryo_loader_free(c->loader);
    cryo_free_big(c->lbuf);
    memset(c, 0, sizeof *c);
}

/* --pairs LIST: "input target" per line ('#' comments, blank lines skipped), paths relative
 * to the list's folder; *paths gets input, target, input, target, ... */
static void read_pairs(const char *list, char ***paths, size_t *n)
{
    FILE *f = fopen(list, "r");
    if (!f)
        die("%s: cannot read: %s", list, strerror(errno));
    char line[8192], base[4096];
    snprintf(base, sizeof base, "%s", list);
    char *slash = strrchr(base, '/');
    if (slash)
        slash[1] = 0;
    else
        base[0] = 0;
    size_t cap = 0, lineno = 0;
    *paths = NULL;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *save, *tok[3];
        tok[0] = strtok_r(line, " \t\r\n", &save);
        if (!tok[0])
            continue;
        tok[1] = strtok_r(NULL, " \t\r\n", &save);
        tok[2] = strtok_r(NULL, " \t\r\n", &save);
        if (!tok[1] || tok[2])
            die("%s: line %zu: needs two paths, \"input target\"", list, lineno);
        for (int k = 0; k < 2; k++) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                char **np = realloc(*paths, cap * sizeof *np);
                if (!np)
                    die("out of memory");
                *paths = np;
            }
            size_t len = strlen(base) + strlen(tok[k]) + 1;
            char *pth = malloc(len);
            if (!pth)
                die("out of memory");
            snprintf(pth, len, "%s%s", tok[k][0] == '/' ? "" : base, tok[k]);
            (*paths)[(*n)++] = pth;
        }
    }
    fclose(f);
    if (*n == 0)
        die("%s: empty corpus: no pairs listed", list);
}

/* Map mode: the loader over map files (or --pairs LIST), crops of size³. */
static void corpus_open_maps(struct corpus *c, const char *const *paths, int np, const char *pairs,
                             const char *maplist, int channels, long size, long batch, double apix, int q)
{
    struct cryo_error err = {0};
    struct cryo_loader_opts o;
    memset(c, 0, sizeof *c);
    cryo_loader_opts_default(&o);
    if (size < q || size % q || size % 8 || size > 512)
        cli_usage_error(&tool, "--size must be a multiple of 8 and of %d, at most 512", q);
    long prefetch = cryo_args_int(cli.args, "prefetch");
    double mind = cryo_args_double(cli.args, "min-density");
    if (prefetch < 0 || prefetch > 4096 || !(mind >= 0))
        cli_usage_error(&tool, "--prefetch 0..4096, --min-density >= 0");
    o.size = (int)size;
    o.channels = channels;
    o.min_density = mind;
    o.rotate = !cryo_args_flag(cli.args, "no-rotate");
    o.flip = cryo_args_flag(cli.args, "flip");
    o.apix = apix;
    o.cache_dir = cryo_args_string(cli.args, "cache");
    o.prefetch = (int)(prefetch > 0 && prefetch < batch ? batch : prefetch);
    o.seed = cryo_args_int(cli.args, "seed");
    if (mpi_size > 1) { /* each rank's loader makes (and prefetches) its own crops only */
        o.shard_ranks = mpi_size;
        o.shard_rank = mpi_rank;
        o.shard_block = (int)(batch / mpi_size);
        if (o.prefetch > 0 && o.prefetch < o.shard_block)
            o.prefetch = o.shard_block;
    }
    int rc;
    char **list = NULL;
    size_t nl = 0;
    if ((pairs || maplist) && (np != 1 || strcmp(paths[0], "-") != 0))
        cli_usage_error(&tool, "--%s LIST takes the maps from the list, not from arguments", pairs ? "pairs" : "list");
    if (pairs && maplist)
        cli_usage_error(&tool, "--pairs and --list exclude each other");
    if (pairs) {
        if (channels != 2)
            cli_usage_error(&tool, "--pairs is for fine-tuning (--task)");
        read_pairs(pairs, &list, &nl);
        rc = cryo_loader_open_pairs(&c->loader, (const char *const *)list, nl / 2, &o, &err);
    } else if (maplist) {
        if (cryo_loader_read_list(maplist, &list, &nl, &err) < 0)
            cli_die(&cli, &err);
        rc = cryo_loader_open(&c->loader, (const char *const *)list, nl, &o, &err);
    } else {
        for (int i = 0; i < np; i++)
            if (strcmp(paths[i], "-") == 0)
                cli_usage_error(&tool, "--size: the inputs are map files (standard input holds prepared crops: drop --size)");
        rc = cryo_loader_open(&c->loader, paths, (size_t)np, &o, &err);
    }
    if (rc < 0)
        cli_die(&cli, &err);
    c->n = cryo_loader_maps(c->loader);
    if (c->n == 0)
        die("empty corpus: no maps to train on");
    c->channels = channels;
    c->d = c->h = c->w = (int)size;
    c->vox = (size_t)size * (size_t)size * (size_t)size;
    if (!(c->lbuf = cryo_alloc_big((size_t)batch * c->vox * (size_t)channels * sizeof(float), &err)))
        cli_die(&cli, &err);
    /* identity of the corpus and of every option that changes the crops */
    c->hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < c->n; i++)
        for (const char *p = cryo_loader_map_name(c->loader, i); p && *p; p++)
            c->hash = (c->hash ^ (unsigned char)*p) * 0x100000001b3ULL;
    char opt[256];
    snprintf(opt, sizeof opt, "|%d|%.17g|%d|%d|%.17g|%d", o.size, o.min_density, o.rotate, o.flip, o.apix, o.normalize);
    for (const char *p = opt; *p; p++)
        c->hash = (c->hash ^ (unsigned char)*p) * 0x100000001b3ULL;
    snprintf(c->names, sizeof c->names, "%s%s (%zu map%s)", pairs ? "pairs " : maplist ? "list " : "",
             pairs ? pairs : maplist ? maplist : paths[0], c->n, c->n == 1 ? "" : "s");
    for (size_t i = 0; i < nl; i++)
        free(list[i]);
    free(list);
}

static void corpus_read(struct corpus *c, const char *const *paths, int np, int channels, double apix, int q)
{
    struct cryo_error err = {0};
    memset(c, 0, sizeof *c);
    c->channels = channels;
    c->hash = 0xcbf29ce484222325ULL;
    size_t cap = 0;
    for (int p = 0; p < np; p++) {
        struct cryo_source *s = NULL;
        if (cryo_source_open(&s, paths[p], &err) < 0)
            cli_die(&cli, &err);
        const char *name = cryo_source_name(s);
        size_t len = strlen(c->names);
        snprintf(c->names + len, sizeof c->names - len, "%s%s", len ? " " : "", name);
        struct cryo_volume v;
        cryo_volume_init(&v);
        int rc;
        long frame = 0;
        while ((rc = cryo_source_next(s, &v, &err)) == 1) {
            frame++;
            if (cryo_volume_convert(&v, CRYO_DTYPE_F32, &err) < 0 || cryo_volume_check_finite(&v, name, &err) < 0)
                cli_die(&cli, &err);
            if (v.c != channels)
                die("%s: frame %ld has %lld channel%s; %s needs %d", name, frame, (long long)v.c, v.c == 1 ? "" : "s",
                    channels == 2 ? "fine-tuning (input, target pairs: vol-degrade --pair)" : "pre-training", channels);
            if (apix > 0 && (fabs(v.apix[0] - apix) > 1e-3 * apix || fabs(v.apix[1] - apix) > 1e-3 * apix ||
                             fabs(v.apix[2] - apix) > 1e-3 * apix))
                die("%s: frame %ld has voxel size %g,%g,%g Å; the run trains at %g Å (mrc-resample --apix %g, or --apix 0)",
                    name, frame, v.apix[0], v.apix[1], v.apix[2], apix, apix);
            if (c->n == 0) {
                c->d = (int)v.nz;
                c->h = (int)v.ny;
                c->w = (int)v.nx;
                c->vox = cryo_volume_channel_count(&v);
                if (v.nz % q || v.ny % q || v.nx % q || v.nz > 512 || v.ny > 512 || v.nx > 512)
                    die("%s: crop %lldx%lldx%lld is not a multiple of %d per axis (<= 512)", name, (long long)v.nx,
                        (long long)v.ny, (long long)v.nz, q);
            } else if (v.nz != c->d || v.ny != c->h || v.nx != c->w) {
                die("%s: frame %ld is %lldx%lldx%lld, the first crop %dx%dx%d: all crops need one size", name, frame,
                    (long long)v.nx, (long long)v.ny, (long long)v.nz, c->w, c->h, c->d);
            }
            if (c->n == cap) {
                cap = cap ? 2 * cap : 64;
                float **nc = realloc(c->crop, cap * sizeof *nc);
                if (!nc)
                    die("out of memory reading %s", name);
                c->crop = nc;
            }
            size_t bytes = c->vox * (size_t)channels * sizeof(float);
            if (!(c->crop[c->n] = malloc(bytes)))
                die("%s: out of memory at crop %zu (the stdin corpus is held in memory)", name, c->n + 1);
            memcpy(c->crop[c->n], v.data, bytes);
            const unsigned char *b = v.data;
            for (size_t i = 0; i < bytes; i++)
                c->hash = (c->hash ^ b[i]) * 0x100000001b3ULL;
            c->n++;
        }
        if (rc < 0)
            cli_die(&cli, &err);
        cryo_volume_free(&v);
        cryo_source_free(s);
    }
    if (c->n == 0)
        die("%s: empty corpus: no crops to train on", c->names[0] ? c->names : "stdin");
}

/* A text file (a list of paths), not a volume: no control bytes but tab, CR and LF in its
 * first 4 KiB (MRC headers hold NULs, gzip and CVOL streams start with binary magic). */
static int is_text_list(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char b[4096];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (b[i] < 0x20 && b[i] != '\t' && b[i] != '\n' && b[i] != '\r')
            return 0;
    return 1;
}

/* --val LIST: n fixed crops of size³ drawn once by the loader from held-out maps (or pairs,
 * "input target" lines, with --pairs), with the training's preparation, cache and density
 * rule, no rotation, from a seed of their own; held in memory as the stdin corpus. */
static void corpus_val_maps(struct corpus *c, const char *list, int pairs, int channels, long size, long n,
                            double apix)
{
    struct cryo_error err = {0};
    struct cryo_loader_opts o;
    memset(c, 0, sizeof *c);
    cryo_loader_opts_default(&o);
    o.size = (int)size;
    o.channels = channels;
    o.min_density = cryo_args_double(cli.args, "min-density");
    o.rotate = 0;
    o.apix = apix;
    o.cache_dir = cryo_args_string(cli.args, "cache");
    o.prefetch = 0;
    o.seed = mix64((uint64_t)cryo_args_int(cli.args, "seed") ^ 0x76616C6964617465ULL);
    char **paths = NULL;
    size_t np = 0;
    struct cryo_loader *l = NULL;
    int rc;
    if (pairs) {
        read_pairs(list, &paths, &np);
        rc = cryo_loader_open_pairs(&l, (const char *const *)paths, np / 2, &o, &err);
    } else {
        if (cryo_loader_read_list(list, &paths, &np, &err) < 0)
            cli_die(&cli, &err);
        rc = cryo_loader_open(&l, (const char *const *)paths, np, &o, &err);
    }
    cryo_loader_free_list(paths, np);
    if (rc < 0)
        cli_die(&cli, &err);
    c->channels = channels;
    c->d = c->h = c->w = (int)size;
    c->vox = (size_t)size * (size_t)size * (size_t)size;
    if (!(c->crop = calloc((size_t)n, sizeof *c->crop)))
        die("out of memory");
    float *buf = cryo_alloc_big(c->vox * (size_t)channels * sizeof(float), &err);
    if (!buf)
        cli_die(&cli, &err);
    for (long k = 0; k < n; k++) {
        if (cryo_loader_get(l, (uint64_t)k, buf, &err) < 0)
            cli_die(&cli, &err);
        if (!(c->crop[k] = malloc(c->vox * (size_t)channels * sizeof(float))))
            die("out of memory (validation crops)");
        for (size_t v = 0; v < c->vox; v++) /* NDHWC -> channel-major */
            for (int ch = 0; ch < channels; ch++)
                c->crop[k][(size_t)ch * c->vox + v] = buf[v * (size_t)channels + (size_t)ch];
        c->n++;
    }
    snprintf(c->names, sizeof c->names, "%s (%zu map%s, %ld crops)", list, cryo_loader_maps(l),
             cryo_loader_maps(l) == 1 ? "" : "s", n);
    cryo_free_big(buf);
    cryo_loader_free(l);
}

/* Corpus index of crop k: epoch k / n visits every crop once, in a permutation of (seed, epoch). */
static size_t corpus_pick(const struct corpus *c, uint64_t seed, uint64_t k)
{
    static size_t *perm, perm_n;
    static uint64_t perm_epoch = UINT64_MAX;
    uint64_t e = k / c->n;
    if (perm_n != c->n || perm_epoch != e) {
        if (perm_n != c->n) {
            free(perm);
            if (!(perm = malloc(c->n * sizeof *perm)))
                die("out of memory");
            perm_n = c->n;
        }
        for (size_t i = 0; i < c->n; i++)
            perm[i] = i;
        uint64_t r = mix64(seed ^ mix64(e + 0x5851F42D4C957F2DULL));
        for (size_t i = c->n - 1; i > 0; i--) {
            r = mix64(r);
            size_t j = (size_t)(r % (uint64_t)(i + 1)), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        perm_epoch = e;
    }
    return perm[k % c->n];
}

/* Channel ch of crop i into NDHWC (one channel) at dst. */
static void corpus_channel(const struct corpus *c, size_t i, int ch, float *dst)
{
    memcpy(dst, c->crop[i] + (size_t)ch * c->vox, c->vox * sizeof(float));
}

/* ---- run directory ------------------------------------------------------------------------ */

static char dir[4096];

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Drop step-N.safetensors beyond the newest `keep`. */
static void prune_steps(long keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    long steps[4096];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long s;
        char tail[32];
        if (sscanf(e->d_name, "step-%ld.safetensor%31s", &s, tail) == 2 && strcmp(tail, "s") == 0)
            steps[n++] = s;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        size_t newer = 0;
        for (size_t j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (newer >= (size_t)keep) {
            char p[4200];
            snprintf(p, sizeof p, "%s/step-%ld.safetensors", dir, steps[i]);
            unlink(p);
        }
    }
}

/* Keep the log's rows up to `step` (a killed run may have logged past its checkpoint). */
static void truncate_log(const char *path, int64_t step)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o)
        die("%s: cannot write: %s", tmp, strerror(errno));
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *end;
        long long s = strtoll(line, &end, 10);
        if (end == line || s <= step)
            fputs(line, o);
    }
    fclose(f);
    if (fclose(o) != 0 || rename(tmp, path) != 0)
        die("%s: cannot rewrite: %s", path, strerror(errno));
}

/* ---- weights and metadata ----------------------------------------------------------------- */

static void json_str(char *buf, size_t cap, const char *s)
{
    size_t k = 0;
    for (; *s && k + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            k += (size_t)snprintf(buf + k, cap - k, "\\%c", ch);
        else if (ch < 0x20)
            k += (size_t)snprintf(buf + k, cap - k, "\\u%04x", ch);
        else
            buf[k++] = (char)ch;
    }
    buf[k] = 0;
}

struct val_result {
    double loss, fsc, cc;
    int done;
};

struct run_meta {
    char cfg[4096], cmdline[2048], inputs[600], val[600];
    double best_val;
    struct val_result last_val;
};

static char device_name[160]; /* cryo_nn_ctx_name of the training context */
static const char *precision_name; /* its precision (--precision, $CRYO_NN_PRECISION or fp32) */

static void build_meta(struct cryo_meta *m, const struct run_cfg *c, const struct run_meta *rm, int64_t step)
{
    struct cryo_error err = {0};
    char prov[8192], cl[4200], in[1300], vn[1300];
    json_str(cl, sizeof cl, rm->cmdline);
    json_str(in, sizeof in, rm->inputs);
    json_str(vn, sizeof vn, rm->val);
    int k = snprintf(prov, sizeof prov,
                     "{\"tool\":\"jepa-train\",\"version\":\"%s\",\"command\":\"%s\",\"inputs\":\"%s\",\"steps\":%" PRId64
                     ",\"mode\":\"%s\",\"ranks\":%d,\"precision\":\"%s\"",
                     CRYO_VERSION, cl, in, step, c->finetune ? c->task : c->objective, mpi_size,
                     precision_name ? precision_name : "fp32");
    if (rm->val[0] && k > 0 && (size_t)k < sizeof prov)
        k += snprintf(prov + k, sizeof prov - (size_t)k, ",\"val\":\"%s\"", vn);
    if (rm->last_val.done && c->finetune && k > 0 && (size_t)k < sizeof prov)
        k += snprintf(prov + k, sizeof prov - (size_t)k, ",\"val_loss\":%.6g,\"val_fsc0143\":%.4g,\"val_cc_mask\":%.4f",
                      rm->last_val.loss, rm->last_val.fsc, rm->last_val.cc);
    else if (rm->last_val.done && k > 0 && (size_t)k < sizeof prov)
        k += snprintf(prov + k, sizeof prov - (size_t)k, ",\"val_loss\":%.6g", rm->last_val.loss);
    if (k > 0 && (size_t)k < sizeof prov)
        snprintf(prov + k, sizeof prov - (size_t)k, "}");
    int rc = cryo_meta_set(m, "provenance", prov, &err);
    if (rc == 0)
        rc = cryo_meta_set(m, "jepa_train.config", rm->cfg, &err);
    if (rc == 0)
        rc = cryo_meta_set(m, "jepa_train.command", rm->cmdline, &err);
    if (rc == 0)
        rc = cryo_meta_setf(m, &err, "jepa_train.best_val", "%.17g", rm->best_val);
    if (rc == 0 && device_name[0]) /* the compute context of the run (--device); not compared on resume */
        rc = cryo_meta_set(m, "jepa_train.device", device_name, &err);
    if (rc == 0 && precision_name) /* --precision, likewise free to change between runs */
        rc = cryo_meta_set(m, "jepa_train.precision", precision_name, &err);
    if (rc == 0)
        rc = cryo_meta_setf(m, &err, "apix", "%g", c->apix > 0 ? c->apix : 1.0);
    if (rc == 0)
        rc = cryo_meta_set(m, "normalize", "quantile:0.01:0.99", &err);
    if (rc == 0 && c->finetune)
        rc = cryo_meta_set(m, "task", c->task, &err);
    if (rc < 0)
        cli_die(&cli, &err);
}

/* Encoder tensors: the head, the encoder stages and the bottleneck. */
static int is_encoder(const char *name)
{
    return strncmp(name, "head.", 5) == 0 || strncmp(name, "enc.", 4) == 0 || strncmp(name, "body.", 5) == 0;
}

/* ---- mask picture ------------------------------------------------------------------------- */

static int cmd_show_mask(const struct run_cfg *c, const char *png)
{
    long size = cryo_args_has(cli.args, "size") ? cryo_args_int(cli.args, "size") : 48;
    int q = 1 << c->net.levels;
    if (size < q || size % q || size > 1024)
        cli_usage_error(&tool, "--size must be a multiple of %d (<= 1024)", q);
    int g = (int)(size / q);
    size_t T = (size_t)g * g * g;
    uint8_t *m = malloc(T);
    struct cryo_mask_block *b = malloc(sizeof *b * (size_t)c->jo.mask.targets);
    struct cryo_error err = {0};
    if (!m || !b)
        die("out of memory");
    if (cryo_jepa_mask_draw(m, b, 1, g, g, g, &c->jo.mask, c->seed, 0, 0, &err) < 0)
        cli_die(&cli, &err);
    size_t len = strlen(png);
    if (strcmp(png, "-") == 0 || (len > 4 && strcmp(png + len - 4, ".txt") == 0)) {
        /* text: one panel per z slice, '.' context, 1..9 the target block (the last drawn wins) */
        FILE *f = strcmp(png, "-") == 0 ? stdout : fopen(png, "w");
        if (!f)
            die("%s: cannot write: %s", png, strerror(errno));
        int per = g <= 8 ? 4 : 2;
        for (int z0 = 0; z0 < g; z0 += per) {
            for (int z = z0; z < z0 + per && z < g; z++)
                fprintf(f, "z = %-*d", 2 * g - 1, z);
            fputc('\n', f);
            for (int y = 0; y < g; y++) {
                for (int z = z0; z < z0 + per && z < g; z++) {
                    for (int x = 0; x < g; x++) {
                        int who = -1;
                        for (int k = 0; k < c->jo.mask.targets; k++)
                            if (z >= b[k].z0 && z < b[k].z0 + b[k].d && y >= b[k].y0 && y < b[k].y0 + b[k].h &&
                                x >= b[k].x0 && x < b[k].x0 + b[k].w)
                                who = k;
                        fprintf(f, "%c ", who < 0 ? '.' : who < 9 ? '1' + who : '+');
                    }
                    fputs("   ", f);
                }
                fputc('\n', f);
            }
            fputc('\n', f);
        }
        if (f != stdout && fclose(f) != 0)
            die("%s: cannot write", png);
        free(m);
        free(b);
        return 0;
    }
    /* one panel per z slice of the token grid; cells coloured by the target block that covers
     * them (the last drawn wins), context grey */
    static const double col[6][3] = {{0.85, 0.33, 0.1}, {0.0, 0.45, 0.7}, {0.0, 0.62, 0.45},
                                     {0.8, 0.47, 0.65}, {0.9, 0.62, 0.0}, {0.34, 0.71, 0.91}};
    int cell = g <= 8 ? 18 : 10, pad = 12, cols = g < 4 ? g : 4, rows = (g + cols - 1) / cols;
    int W = pad + cols * (g * cell + pad), H = 30 + rows * (g * cell + pad + 14);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    char title[256];
    size_t cnt = 0;
    for (size_t t = 0; t < T; t++)
        cnt += m[t];
    snprintf(title, sizeof title, "%d target blocks %dx%dx%d on a %d^3 token grid: %.0f%% targets, context grey",
             c->jo.mask.targets, b[0].w, b[0].h, b[0].d, g, 100.0 * (double)cnt / (double)T);
    cairo_move_to(cr, pad, 18);
    cairo_show_text(cr, title);
    for (int z = 0; z < g; z++) {
        int px = pad + (z % cols) * (g * cell + pad), py = 30 + (z / cols) * (g * cell + pad + 14);
        char lab[32];
        snprintf(lab, sizeof lab, "z = %d", z);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, px, py + 10);
        cairo_show_text(cr, lab);
        for (int y = 0; y < g; y++)
            for (int x = 0; x < g; x++) {
                int who = -1;
                for (int k = 0; k < c->jo.mask.targets; k++)
                    if (z >= b[k].z0 && z < b[k].z0 + b[k].d && y >= b[k].y0 && y < b[k].y0 + b[k].h &&
                        x >= b[k].x0 && x < b[k].x0 + b[k].w)
                        who = k;
                if (who < 0)
                    cairo_set_source_rgb(cr, 0.82, 0.82, 0.82);
                else
                    cairo_set_source_rgb(cr, col[who % 6][0], col[who % 6][1], col[who % 6][2]);
                cairo_rectangle(cr, px + x * cell, py + 14 + y * cell, cell - 1, cell - 1);
                cairo_fill(cr);
            }
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", png, (int)getpid());
    cairo_status_t st = cairo_surface_write_to_png(s, tmp);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS || rename(tmp, png) != 0) {
        unlink(tmp);
        die("%s: cannot write the PNG", png);
    }
    free(m);
    free(b);
    return 0;
}

/* ---- export ------------------------------------------------------------------------------- */

/* Lean inference weights from a checkpoint: the backbone under its own names (pre-training:
 * the EMA target encoder unless --init-from context), float32 or float16, with the
 * checkpoint's descriptive metadata; training state left out. */
static int cmd_export(void)
{
    if (cli.n_inputs != 2 || !cryo_args_string(cli.args, "out"))
        cli_usage_error(&tool, "export: usage: jepa-train export CHECKPOINT --out W.safetensors [--export-dtype f16]");
    const char *in = cli.inputs[1], *out = cryo_args_string(cli.args, "out");
    int f16 = strcmp(cryo_args_string(cli.args, "export-dtype"), "f16") == 0;
    struct cryo_error err = {0};
    struct cryo_safetensors *st = NULL, *o = NULL;
    struct cryo_scunet_config c;
    if (cryo_safetensors_read(&st, in, &err) < 0 || cryo_scunet_config_from_file(st, &c, &err) < 0)
        cli_die(&cli, &err);
    int pre = cryo_meta_get(&st->meta, "jepa") != NULL;
    const char *prefix = pre && strcmp(cryo_args_string(cli.args, "init-from"), "ema") == 0 ? "ema." : "";
    /* the table of the config names every tensor to write; loading it checks shapes and values */
    struct cryo_nn_ctx *ctx = NULL;
    struct cryo_scunet *m = NULL;
    int q = 1 << c.levels;
    ctx = cli_nn_open(&cli, "cpu", 0, 0); /* copies only: no arithmetic, whatever $CRYO_NN_PRECISION says */
    if (cryo_scunet_create(&m, &c, ctx, 1, q, q, q, 0, &err) < 0)
        cli_die(&cli, &err);
    size_t n;
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    const float *p = cryo_scunet_param_data(m);
    for (size_t i = 0; i < n; i++) {
        char name[200];
        const float *src;
        snprintf(name, sizeof name, "%s%s", is_encoder(tab[i].name) ? prefix : "", tab[i].name);
        if (cryo_safetensors_get_f32(st, name, tab[i].ndim, tab[i].shape, &src, &err) < 0)
            cli_die(&cli, &err);
        for (size_t k = 0; k < tab[i].count; k++)
            if (!isfinite(src[k]))
                die("%s: tensor '%s' holds NaN or Inf", in, name);
        memcpy((float *)p + tab[i].offset, src, tab[i].count * sizeof(float));
    }
    size_t np = cryo_scunet_num_params(m);
    uint16_t *h = f16 ? malloc(np * sizeof *h) : NULL;
    if (f16 && !h)
        die("out of memory");
    for (size_t i = 0; f16 && i < np; i++) {
        h[i] = cryo_f32_to_f16(p[i]);
        if (!isfinite(cryo_f16_to_f32(h[i])))
            die("%s: weight %zu (%g) does not fit float16; export float32", in, i, p[i]);
    }
    if (cryo_safetensors_create(&o, &err) < 0)
        cli_die(&cli, &err);
    static const char *keys[] = {"format", "config", "task", "apix", "normalize", "provenance"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *v = cryo_meta_get(&st->meta, keys[k]);
        if (v && cryo_meta_set(&o->meta, keys[k], v, &err) < 0)
            cli_die(&cli, &err);
    }
    for (size_t i = 0; i < n; i++)
        if (cryo_safetensors_add(o, tab[i].name, f16 ? CRYO_ST_F16 : CRYO_ST_F32, tab[i].ndim, tab[i].shape,
                                 f16 ? (const void *)(h + tab[i].offset) : (const void *)(p + tab[i].offset), &err) < 0)
            cli_die(&cli, &err);
    if (cryo_safetensors_write(o, out, &err) < 0)
        cli_die(&cli, &err);
    if (!cli.quiet)
        fprintf(stderr, TOOL_NAME ": %s: %zu parameters, %s%s\n", out, np, f16 ? "float16" : "float32",
                pre ? (*prefix ? ", the EMA target encoder" : ", the context encoder") : "");
    free(h);
    cryo_safetensors_free(o);
    cryo_safetensors_free(st);
    cryo_scunet_free(m);
    cryo_nn_ctx_free(ctx);
    return 0;
}

/* ---- validation (fine-tuning) --------------------------------------------------------------- */

struct validator {
    struct corpus set;
    struct cryo_scunet *model; /* fine-tuning: inference, one crop */
    struct cryo_jepa_trainer *jt; /* pre-training: a trainer of one crop for the loss */
};

/* Pre-training: the JEPA (or MAE) loss of the current weights, both branches, on every
 * held-out crop with its fixed mask (seed, crop index), averaged over the crops. */
static void validate_pre(struct validator *v, const struct cryo_jepa_trainer *t, const struct run_cfg *c,
                         struct val_result *r)
{
    struct cryo_error err = {0};
    memcpy(cryo_scunet_param_data(v->jt->enc), cryo_scunet_param_data(t->enc),
           cryo_scunet_num_params(t->enc) * sizeof(float));
    memcpy(cryo_scunet_param_data(v->jt->tenc), cryo_scunet_param_data(t->tenc),
           cryo_scunet_num_params(t->tenc) * sizeof(float));
    memcpy(cryo_jepa_param_data(v->jt->pred), cryo_jepa_param_data(t->pred),
           cryo_jepa_num_params(t->pred) * sizeof(float));
    memcpy(cryo_jepa_param_data(v->jt->tpred), cryo_jepa_param_data(t->tpred),
           cryo_jepa_num_params(t->tpred) * sizeof(float));
    double L = 0;
    for (size_t i = 0; i < v->set.n; i++) {
        double l;
        if (cryo_jepa_trainer_eval(v->jt, v->set.crop[i], c->seed ^ 0x76616C6964617465ULL /* "validate" */, i, &l,
                                   &err) < 0)
            l = NAN;
        L += l;
    }
    *r = (struct val_result){L / (double)v->set.n, NAN, NAN, 1};
}

static void validate(struct validator *v, struct cryo_scunet *trained, const struct run_cfg *c,
                     struct val_result *r)
{
    struct cryo_error err = {0};
    struct cryo_nn_ctx *ctx = cryo_scunet_ctx(trained);
    size_t np = cryo_scunet_num_params(trained), nv = v->set.vox;
    if (cryo_nn_copy(ctx, cryo_scunet_param_data(v->model), cryo_scunet_param_data(trained), np, &err) < 0)
        cli_die(&cli, &err);
    float *x = malloc(nv * sizeof *x), *y = malloc(nv * sizeof *y), *tg = malloc(nv * sizeof *tg);
    unsigned char *sel = malloc(nv);
    if (!x || !y || !tg || !sel)
        die("out of memory (validation)");
    double L = 0, F = 0, C = 0;
    for (size_t i = 0; i < v->set.n; i++) {
        corpus_channel(&v->set, i, 0, x);
        corpus_channel(&v->set, i, 1, tg);
        double l;
        if (cryo_nn_upload(ctx, cryo_scunet_input(v->model), x, nv, &err) < 0 ||
            cryo_scunet_forward(v->model, &err) < 0 ||
            cryo_nn_download(ctx, y, cryo_scunet_output(v->model), nv, &err) < 0)
            cli_die(&cli, &err);
        int rc = c->so.loss == CRYO_LOSS_MSE ? cryo_loss_mse(&l, NULL, y, tg, nv, &err)
                                             : cryo_loss_combined(&l, NULL, y, tg, nv, c->so.alpha, &c->so.hist, &err);
        if (rc < 0) {
            l = NAN;
        }
        /* FSC-0.143 of prediction against target (fsc-eval's code), and CC over the voxels
         * where the target is above its mean (the molecule's envelope) */
        struct cryo_volume a, b;
        cryo_volume_init(&a);
        cryo_volume_init(&b);
        if (cryo_volume_alloc(&a, CRYO_DTYPE_F32, 1, v->set.d, v->set.h, v->set.w, &err) < 0 ||
            cryo_volume_alloc(&b, CRYO_DTYPE_F32, 1, v->set.d, v->set.h, v->set.w, &err) < 0)
            cli_die(&cli, &err);
        double ap = c->apix > 0 ? c->apix : 1.0;
        for (int k = 0; k < 3; k++)
            a.apix[k] = b.apix[k] = ap;
        memcpy(a.data, y, nv * sizeof(float));
        memcpy(b.data, tg, nv * sizeof(float));
        struct cryo_fsc f;
        struct cryo_fsc_opts fo;
        struct cryo_fsc_res res;
        cryo_fsc_init(&f);
        cryo_fsc_opts_default(&fo);
        double fsc = NAN;
        if (cryo_fsc_compute(&f, &a, &b, &fo, &err) == 0) {
            cryo_fsc_resolution(f.s, f.fsc, f.nshell, 0.143, &res);
            fsc = res.interp;
        }
        cryo_fsc_free(&f);
        cryo_volume_free(&a);
        cryo_volume_free(&b);
        double mean = 0;
        for (size_t k = 0; k < nv; k++)
            mean += tg[k];
        mean /= (double)nv;
        for (size_t k = 0; k < nv; k++)
            sel[k] = tg[k] > mean;
        L += l;
        F += fsc;
        C += cryo_cc_masked(y, tg, sel, nv);
    }
    r->loss = L / (double)v->set.n;
    r->fsc = F / (double)v->set.n;
    r->cc = C / (double)v->set.n;
    r->done = 1;
    free(x);
    free(y);
    free(tg);
    free(sel);
}

/* ---- training ------------------------------------------------------------------------------ */

struct trainer {
    struct run_cfg *c;
    struct cryo_nn_ctx *ctx;
    struct cryo_jepa_trainer *jt;   /* pre-training */
    struct cryo_scunet *model;      /* fine-tuning */
    struct cryo_trainer *st;
    uint8_t *frozen;
    int64_t step;
};

static int trainer_save(struct trainer *t, const char *path, const struct run_meta *rm, struct cryo_error *err)
{
    struct cryo_meta m;
    cryo_meta_init(&m);
    build_meta(&m, t->c, rm, t->step);
    int rc = t->jt ? cryo_jepa_trainer_save_meta(t->jt, path, &m, err) : cryo_trainer_save_meta(t->st, path, &m, err);
    cryo_meta_free(&m);
    return rc;
}

/* Fine-tuning start: the encoder of a pre-trained checkpoint (EMA target by default), the
 * decoder from the seed. */
static void load_encoder(struct cryo_scunet *m, const char *path, const char *from)
{
    struct cryo_error err = {0};
    struct cryo_safetensors *st = NULL;
    struct cryo_scunet_config fc;
    if (cryo_safetensors_read(&st, path, &err) < 0 || cryo_scunet_config_from_file(st, &fc, &err) < 0)
        cli_die(&cli, &err);
    if (memcmp(&fc, cryo_scunet_config(m), sizeof fc) != 0) {
        char a[512], b[512];
        cryo_scunet_config_format(&fc, a, sizeof a);
        cryo_scunet_config_format(cryo_scunet_config(m), b, sizeof b);
        die("%s: pre-trained for config %s, the run has %s (drop --config or match it)", path, a, b);
    }
    const char *prefix = strcmp(from, "ema") == 0 && cryo_safetensors_find(st, "ema.head.weight") ? "ema." : "";
    if (strcmp(from, "ema") == 0 && !*prefix)
        die("%s: no EMA target encoder in the checkpoint (use --init-from context)", path);
    size_t n;
    const struct cryo_nn_param *tab = cryo_scunet_params(m, &n);
    float *p = cryo_scunet_param_data(m);
    int loaded = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_encoder(tab[i].name))
            continue;
        char name[200];
        const float *src;
        snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
        if (cryo_safetensors_get_f32(st, name, tab[i].ndim, tab[i].shape, &src, &err) < 0)
            cli_die(&cli, &err);
        for (size_t k = 0; k < tab[i].count; k++)
            if (!isfinite(src[k]))
                die("%s: tensor '%s' holds NaN or Inf", path, name);
        if (cryo_nn_upload(cryo_scunet_ctx(m), p + tab[i].offset, src, tab[i].count, &err) < 0)
            cli_die(&cli, &err);
        loaded++;
    }
    if (!loaded)
        die("%s: no encoder tensors", path);
    cryo_safetensors_free(st);
}

static void trainer_create(struct trainer *t, struct run_cfg *c, const struct corpus *data)
{
    struct cryo_error err = {0};
    memset(t, 0, sizeof *t);
    t->c = c;
    t->ctx = cli_nn_open(&cli, cryo_args_string(cli.args, "device"), 1, 1);
    precision_name = cli_nn_precision_name(cryo_nn_get_precision(t->ctx));
    snprintf(device_name, sizeof device_name, "%s", cryo_nn_ctx_name(t->ctx));
    device_reduce_setup(t->ctx);
    int B = (int)(c->batch / mpi_size); /* this rank's share of the global batch */
    if (!c->finetune) {
        if (cryo_jepa_trainer_create(&t->jt, &c->net, &c->pred, &c->jo, t->ctx, B, data->d, data->h, data->w,
                                     c->seed, &err) < 0)
            cli_die(&cli, &err);
        t->jt->sample_offset = (uint64_t)mpi_rank * (uint64_t)B;
#ifdef CRYO_HAVE_MPI
        if (mpi_size > 1)
            t->jt->reduce = nccl_ctx ? (struct cryo_grad_reducer){nccl_reduce, nccl_ctx, 1}
                                     : (struct cryo_grad_reducer){mpi_reduce, NULL, 0};
#endif
        return;
    }
    if (cryo_scunet_create(&t->model, &c->net, t->ctx, B, data->d, data->h, data->w, 1, &err) < 0 ||
        cryo_scunet_init(t->model, c->seed, &err) < 0)
        cli_die(&cli, &err);
    if (c->init)
        load_encoder(t->model, c->init, c->init_from);
    if (cryo_trainer_create(&t->st, t->model, &c->so, &err) < 0)
        cli_die(&cli, &err);
#ifdef CRYO_HAVE_MPI
    if (mpi_size > 1)
        t->st->reduce = nccl_ctx ? (struct cryo_grad_reducer){nccl_reduce, nccl_ctx, 1}
                                 : (struct cryo_grad_reducer){mpi_reduce, NULL, 0};
#endif
    size_t n;
    const struct cryo_nn_param *tab = cryo_scunet_params(t->model, &n);
    if (!(t->frozen = calloc(n, 1)))
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        t->frozen[i] = (uint8_t)is_encoder(tab[i].name);
}

static void trainer_free(struct trainer *t)
{
    cryo_jepa_trainer_free(t->jt);
    cryo_trainer_free(t->st);
    cryo_scunet_free(t->model);
    free(t->frozen);
    cryo_nn_ctx_free(t->ctx);
}

struct step_stats {
    double loss, lr, wd, ema, norm, spread_t, spread_s;
};

static int trainer_step(struct trainer *t, const struct corpus *data, float *xin, float *tgt, struct step_stats *s,
                        struct cryo_error *err)
{
    const struct run_cfg *c = t->c;
    size_t nv = data->vox;
    long nb = c->batch / mpi_size; /* this rank's crops: k·B + rank·nb … */
    uint64_t k0 = (uint64_t)t->step * (uint64_t)c->batch + (uint64_t)mpi_rank * (uint64_t)nb;
    if (data->loader) { /* channel fastest; a sharded loader (MPI) counts this rank's crops only */
        CRYO_TRY(cryo_loader_batch(data->loader, mpi_size > 1 ? (uint64_t)t->step * (uint64_t)nb : k0, (int)nb,
                                   data->lbuf, err));
        size_t C = (size_t)data->channels;
        for (size_t i = 0; i < (size_t)nb * nv; i++) {
            xin[i] = data->lbuf[i * C];
            if (c->finetune)
                tgt[i] = data->lbuf[i * C + 1];
        }
    }
    for (long i = 0; !data->loader && i < nb; i++) {
        uint64_t k = k0 + (uint64_t)i;
        size_t idx = corpus_pick(data, c->seed, k);
        corpus_channel(data, idx, 0, xin + (size_t)i * nv);
        if (c->finetune)
            corpus_channel(data, idx, 1, tgt + (size_t)i * nv);
    }
    if (t->jt) {
        CRYO_TRY(cryo_jepa_trainer_step(t->jt, xin, err));
        *s = (struct step_stats){t->jt->last_loss, t->jt->last_lr, t->jt->last_wd, t->jt->last_ema,
                                 t->jt->last_norm, t->jt->spread_tokens, t->jt->spread_samples};
    } else {
        t->st->frozen = t->step < c->freeze ? t->frozen : NULL;
        CRYO_TRY(cryo_trainer_step(t->st, xin, tgt, err));
        if (!isfinite(t->st->last_loss))
            return cryo_fail(err, CRYO_E_NUMERIC, "training step %" PRId64 ": loss is not finite", t->step + 1);
        *s = (struct step_stats){t->st->last_loss, t->st->last_lr, c->so.adamw.weight_decay, 0, t->st->last_norm,
                                 NAN, NAN};
    }
    t->step++;
    return CRYO_OK;
}

static void progress(int64_t step, int64_t total, double elapsed, int64_t done_here, double loss)
{
    if (cli.quiet || !(cli.progress || isatty(STDERR_FILENO)))
        return;
    int width = 30, fill = (int)((double)width * (double)step / (double)total);
    double eta = done_here > 0 ? elapsed / (double)done_here * (double)(total - step) : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r" TOOL_NAME ": [%s] %" PRId64 "/%" PRId64 " loss %.4g ETA %02d:%02d:%02d", bar, step, total,
            loss, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
    if (step >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static int cmd_train(struct run_cfg *c)
{
    struct cryo_error err = {0};
    const char *out = cryo_args_string(cli.args, "out");
    if (!out)
        cli_usage_error(&tool, "training needs --out DIR");
    snprintf(dir, sizeof dir, "%s", out);
    int resume = cryo_args_flag(cli.args, "resume");
    int q = 1 << c->net.levels;
    if (c->batch % mpi_size)
        die("--batch %ld is the global batch: it must be a multiple of the %d ranks", c->batch, mpi_size);
    const char *pairs = cryo_args_string(cli.args, "pairs"), *maplist = cryo_args_string(cli.args, "list");
    if (mpi_size > 1 && !pairs && !maplist)
        for (int i = 0; i < cli.n_inputs; i++)
            if (strcmp(cli.inputs[i], "-") == 0)
                die("standard input goes to rank 0 only: under mpirun give the crops or maps as files");
    /* data first: every refusal before the run directory is touched */
    struct corpus data;
    if (cryo_args_has(cli.args, "size") || pairs || maplist)
        corpus_open_maps(&data, cli.inputs, cli.n_inputs, pairs, maplist, c->finetune ? 2 : 1,
                         cryo_args_has(cli.args, "size") ? cryo_args_int(cli.args, "size") : 48, c->batch, c->apix, q);
    else
        corpus_read(&data, cli.inputs, cli.n_inputs, c->finetune ? 2 : 1, c->apix, q);
    struct validator val = {0};
    const char *valpath = cryo_args_string(cli.args, "val");
    if (valpath && is_text_list(valpath)) {
        long vn = cryo_args_int(cli.args, "val-crops");
        if (vn < 1 || vn > 100000)
            cli_usage_error(&tool, "--val-crops must be 1..100000");
        if (data.d != data.h || data.d != data.w)
            die("--val %s: held-out maps give cubic crops; the training crops are %dx%dx%d", valpath, data.w, data.h,
                data.d);
        corpus_val_maps(&val.set, valpath, pairs != NULL, c->finetune ? 2 : 1, data.d, vn, c->apix);
    } else if (valpath) {
        corpus_read(&val.set, &valpath, 1, c->finetune ? 2 : 1, c->apix, q);
    }
    char corpus_id[64];
    snprintf(corpus_id, sizeof corpus_id, "%zux%dx%dx%dx%d:%016" PRIx64, data.n, data.channels, data.d, data.h, data.w,
             data.hash);
    struct run_meta rm;
    memset(&rm, 0, sizeof rm);
    rm.best_val = INFINITY;
    config_text(c, corpus_id, rm.cfg, sizeof rm.cfg);
    snprintf(rm.inputs, sizeof rm.inputs, "%s", data.names);
    if (valpath)
        snprintf(rm.val, sizeof rm.val, "%s", val.set.names);
    snprintf(rm.cmdline, sizeof rm.cmdline, "%s", cli.history);

    char last[4200], logp[4200], best[4200];
    path_in(last, sizeof last, "last.safetensors");
    path_in(logp, sizeof logp, "log.tsv");
    path_in(best, sizeof best, "best.safetensors");
    struct stat sd;
    int have_dir = stat(dir, &sd) == 0;
    if (have_dir && !S_ISDIR(sd.st_mode))
        die("%s: exists and is not a directory", dir);
    int have_run = have_dir && (file_exists(last) || file_exists(logp));
    if (have_run && !resume)
        die("%s: holds another run (last.safetensors / log.tsv); --resume to continue it, or choose another --out", dir);
    if (resume && !file_exists(last))
        die("%s: nothing to resume (no last.safetensors yet): remove the folder to start again", dir);
    struct cryo_safetensors *ck = NULL;
    char old_precision[16] = ""; /* the checkpoint's jepa_train.precision: --resume may change it */
    if (resume) {
        if (cryo_safetensors_read(&ck, last, &err) < 0)
            cli_die(&cli, &err);
        const char *old = cryo_meta_get(&ck->meta, "jepa_train.config");
        if (!old)
            die("%s: not a jepa-train checkpoint (no jepa_train.config)", last);
        char va[1024], vb[1024];
        const char *key = config_diff(old, rm.cfg, va, vb, sizeof va);
        if (!key)
            key = config_diff(rm.cfg, old, vb, va, sizeof va);
        if (key)
            die("%s: the run was started with %s=%s, this command has %s=%s; resume with the same config",
                last, key, va, key, vb);
        const char *cmd = cryo_meta_get(&ck->meta, "jepa_train.command");
        if (cmd)
            snprintf(rm.cmdline, sizeof rm.cmdline, "%s", cmd); /* provenance: the run's own command */
        const char *bv = cryo_meta_get(&ck->meta, "jepa_train.best_val");
        if (bv)
            rm.best_val = strtod(bv, NULL);
        const char *pr = cryo_meta_get(&ck->meta, "jepa_train.precision");
        snprintf(old_precision, sizeof old_precision, "%s", pr ? pr : "");
    }
    struct trainer t; /* before DIR is made: a refused --device or --precision leaves nothing behind */
    trainer_create(&t, c, &data);
    if (old_precision[0] && strcmp(old_precision, precision_name) != 0 && !cli.quiet)
        fprintf(stderr, TOOL_NAME ": %s: note: the run so far trained in %s; it continues in %s\n", dir, old_precision,
                precision_name);
    barrier(); /* every rank has checked DIR before rank 0 writes into it */
    if (mpi_rank == 0 && !have_dir && mkdir(dir, 0777) != 0)
        die("%s: cannot create: %s", dir, strerror(errno));
    if (mpi_size > 1 && !cli.quiet)
        fprintf(stderr, TOOL_NAME ": %s: data-parallel over %d MPI ranks, %ld crops per rank and step\n", dir, mpi_size,
                c->batch / mpi_size);
    if (ck) {
        int rc = t.jt ? cryo_jepa_trainer_load(t.jt, ck, &err) : cryo_trainer_load(t.st, ck, &err);
        if (rc < 0)
            cli_die(&cli, &err);
        t.step = t.jt ? t.jt->step : t.st->step;
        cryo_safetensors_free(ck);
        if (mpi_rank == 0)
            truncate_log(logp, t.step);
    }
    if (valpath && c->finetune &&
        cryo_scunet_create(&val.model, &c->net, t.ctx, 1, val.set.d, val.set.h, val.set.w, 0, &err) < 0)
        cli_die(&cli, &err);
    if (valpath && !c->finetune && mpi_rank == 0 &&
        cryo_jepa_trainer_create(&val.jt, &c->net, &c->pred, &c->jo, t.ctx, 1, val.set.d, val.set.h, val.set.w,
                                 c->seed, &err) < 0)
        cli_die(&cli, &err);
    FILE *log = fopen(mpi_rank == 0 ? logp : "/dev/null", "a"); /* only rank 0 writes */
    if (!log)
        die("%s: cannot open: %s", logp, strerror(errno));
    if (ftell(log) == 0)
        fprintf(log, "step\tlr\twd\tema\tloss\tval_loss\tgrad_norm\tspread_tokens\tspread_samples\tval_fsc0143\t"
                     "val_cc_mask\tsamples_per_s\tseconds\n");
    fflush(log);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    size_t nv = data.vox;
    size_t nb = (size_t)(c->batch / mpi_size);
    float *xin = cryo_alloc_big(nb * nv * sizeof(float), &err);
    float *tgt = c->finetune ? cryo_alloc_big(nb * nv * sizeof(float), &err) : NULL;
    if (!xin || (c->finetune && !tgt))
        cli_die(&cli, &err);
    if (valpath && mpi_rank == 0 && t.step == 0) { /* the baseline the training is measured against */
        struct val_result v0;
        if (c->finetune) {
            validate(&val, t.model, c, &v0);
            fprintf(log, "0\t-\t-\t-\t-\t%.9g\t-\t-\t-\t%.4g\t%.4f\t-\t-\n", v0.loss, v0.fsc, v0.cc);
        } else {
            validate_pre(&val, t.jt, c, &v0);
            fprintf(log, "0\t-\t-\t-\t-\t%.9g\t-\t-\t-\t-\t-\t-\t-\n", v0.loss);
        }
        fflush(log);
    }
    double t0 = now_s();
    int64_t start = t.step, collapsed_since = -1;
    int failed = 0;
    int stop = 0;
    int64_t saved = -1;
    while (t.step < c->steps && !(stop = stop_agreed())) {
        struct step_stats s = {0};
        double ts = now_s();
        if (trainer_step(&t, &data, xin, tgt, &s, &err) < 0) {
            if (err.status != CRYO_E_NUMERIC)
                cli_die(&cli, &err);
            fprintf(stderr, TOOL_NAME ": %s: stopped at step %" PRId64 " (%s); the last good checkpoint is kept%s%s\n",
                    dir, t.step + 1, err.msg, file_exists(last) ? ": " : " (none written yet)",
                    file_exists(last) ? last : "");
            failed = 1;
#ifdef CRYO_HAVE_MPI
            if (mpi_size > 1) /* the other ranks wait in the all-reduce */
                MPI_Abort(MPI_COMM_WORLD, 1);
#endif
            break;
        }
        double dt = now_s() - ts;
        if (!c->finetune && s.spread_t < c->collapse) {
            if (collapsed_since < 0)
                cli_warn(&cli, "step %" PRId64 ": target embedding spread %.4g across tokens is below %g: "
                               "the representation may be collapsing", t.step, s.spread_t, c->collapse);
            collapsed_since = t.step;
        } else {
            collapsed_since = -1;
        }
        int save = mpi_rank == 0 && (t.step % c->save_every == 0 || t.step == c->steps);
        int do_val = valpath && mpi_rank == 0 && (t.step % c->val_every == 0 || t.step == c->steps);
        struct val_result vr = {0};
        if (do_val) {
            if (c->finetune)
                validate(&val, t.model, c, &vr);
            else
                validate_pre(&val, t.jt, c, &vr);
            rm.last_val = vr;
        }
        fprintf(log, "%" PRId64 "\t%.6g\t%.6g\t%.6g\t%.9g\t", t.step, s.lr, s.wd, s.ema, s.loss);
        if (do_val)
            fprintf(log, "%.9g", vr.loss);
        else
            fputc('-', log);
        fprintf(log, "\t%.6g\t", s.norm);
        if (isfinite(s.spread_t))
            fprintf(log, "%.6g\t%.6g\t", s.spread_t, s.spread_s);
        else
            fputs("-\t-\t", log);
        if (do_val && c->finetune)
            fprintf(log, "%.4g\t%.4f\t", vr.fsc, vr.cc);
        else
            fputs("-\t-\t", log);
        fprintf(log, "%.3g\t%.3f\n", (double)c->batch / dt, now_s() - t0);
        fflush(log);
        if (do_val && vr.loss < rm.best_val) {
            rm.best_val = vr.loss;
            if (trainer_save(&t, best, &rm, &err) < 0)
                cli_die(&cli, &err);
        }
        if (save) {
            if (t.step % c->save_every == 0 && c->keep > 0) {
                char sp[4200];
                snprintf(sp, sizeof sp, "%s/step-%" PRId64 ".safetensors", dir, t.step);
                if (trainer_save(&t, sp, &rm, &err) < 0)
                    cli_die(&cli, &err);
                prune_steps(c->keep);
            }
            if (trainer_save(&t, last, &rm, &err) < 0)
                cli_die(&cli, &err);
            saved = t.step;
        }
        progress(t.step, c->steps, now_s() - t0, t.step - start, s.loss);
    }
    if (stop && mpi_rank == 0 && saved != t.step && t.step > 0 && trainer_save(&t, last, &rm, &err) < 0)
        cli_die(&cli, &err); /* a signal: the finished step is saved */
    fclose(log);
    cryo_free_big(xin);
    cryo_free_big(tgt);
    cryo_scunet_free(val.model);
    cryo_jepa_trainer_free(val.jt);
    corpus_free(&val.set);
    int64_t at = t.step;
    trainer_free(&t);
    corpus_free(&data);
    if (failed)
        return 1;
    if (stop && mpi_rank == 0) {
        fprintf(stderr, TOOL_NAME ": %s: stopped by signal %d after step %" PRId64 "; checkpoint %s (--resume continues)\n",
                dir, (int)(stop_signal ? stop_signal : SIGTERM), at, last);
        return 1;
    }
    if (stop)
        return 1;
    if (!cli.quiet)
        fprintf(stderr, TOOL_NAME ": %s: %" PRId64 " steps done\n", dir, at);
    return 0;
}

#ifdef CRYO_HAVE_MPI
/* Started by a launcher (mpirun, mpiexec, srun)? Otherwise the MPI build runs as one plain
 * process without MPI_Init: an OpenMPI singleton would start a daemon, which fails where ssh
 * is missing (containers). */
static int mpi_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "SLURM_STEP_NUM_TASKS", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}
#endif

int main(int argc, char **argv)
{
    cli_parse(&tool, argc, argv, &cli);
    cli_nn_precision_init(cryo_args_string(cli.args, "precision")); /* one thread yet: it edits the environment */
#ifdef CRYO_HAVE_MPI
    int have_mpi = 0;
    if (!cryo_args_string(cli.args, "show-mask") && !(cli.n_inputs >= 1 && strcmp(cli.inputs[0], "export") == 0) &&
        mpi_launched()) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
        have_mpi = 1;
        const char *tasks = getenv("SLURM_STEP_NUM_TASKS");
        if (mpi_size == 1 && tasks && atol(tasks) > 1)
            die("srun started %s tasks but MPI sees one: each would train alone into --out "
                "(srun --mpi=pmix or --mpi=pmi2, as the cluster's OpenMPI was built, or mpirun)", tasks);
        if (mpi_rank > 0)
            cli.quiet = 1; /* one voice: rank 0 warns and shows progress */
    }
#endif
    if (cli.n_inputs >= 1 && strcmp(cli.inputs[0], "export") == 0)
        return cmd_export();
    struct run_cfg c;
    read_config(&c);
    const char *png = cryo_args_string(cli.args, "show-mask");
    int rc = png ? cmd_show_mask(&c, png) : cmd_train(&c);
    cli_free(&cli);
#ifdef CRYO_HAVE_MPI
    if (have_mpi)
        MPI_Finalize();
#endif
    return rc;
}
