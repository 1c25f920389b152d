/* lvm-apply — apply fine-tuned CryoLVM weights (sharpen, superres, wedge) to maps.
 *
 *   lvm-apply --task sharpen|superres|wedge [--model W] [--half2 H2] [--mask M]
 *             [--tile N] [--stride N] [--batch B] [--device DEV[,DEV...]] [--precision fp32|tf32|bf16]
 *             [INPUT...] [-o OUT]
 *
 * Shape of main: find and check the weights (their task, config, voxel size and
 * normalisation) before reading any map; for every input frame: check it (finite, the half
 * map and the mask on its grid), bring it to the model's convention (Fourier resampling to
 * the model's voxel size, the quantile normalisation the model was trained with), run the
 * network (nn_infer.h: tiles, blending, empty tiles skipped), undo the normalisation's scale
 * (0 stays 0: solvent at zero) and the resampling (superres: stay on the model's finer grid when the input is coarser), apply
 * the mask, write. The output goes through the sink, so a failure leaves no file.
 *
 * Devices: --device is one device (cpu, cuda, cuda:N, auto) or a list of them (cuda:0,cuda:1,
 * cuda:all, cpu,cpu): one compute context each, the tiles spread over them
 * (cryo_infer_run_multi), the output the same as on one of them.
 *
 * Weights lookup (first that exists): --model FILE; $CRYOLVM_MODELS/TASK.safetensors;
 * <bin>/../share/models/TASK.safetensors (the source tree); <bin>/../share/cryolvm/models/
 * (an installed tree, wherever it was moved); CRYO_MODELS_DIR (the Makefile's PREFIX).
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "cryolvm/mem.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_infer.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/nn_train.h"
#include "cryolvm/normalize.h"
#include "cryolvm/resample.h"
#include "cryolvm/safetensors.h"

#ifndef CRYO_MODELS_DIR
#define CRYO_MODELS_DIR "/usr/local/share/cryolvm/models"
#endif

static const struct cryo_option options[] = {
    {"task", 't', CRYO_OPT_CHOICE, "TASK", NULL, "what the weights were fine-tuned for (required)",
     "sharpen|superres|wedge"},
    {"model", 'm', CRYO_OPT_STRING, "FILE", NULL,
     "weights (safetensors); default: TASK.safetensors from $CRYOLVM_MODELS, the source tree's share/models/ "
     "or the installed share/cryolvm/models/", NULL},
    {"half2", 0, CRYO_OPT_STRING, "FILE", NULL, "second half map: the input is the average of the two", NULL},
    {"mask", 0, CRYO_OPT_STRING, "FILE", NULL,
     "mask on the input's grid: normalisation statistics from inside it (> 0.5), output multiplied by it", NULL},
    {"apix", 0, CRYO_OPT_STRING, "A|native", NULL,
     "voxel size (Å) the network works at; default: the one the weights were trained at (their metadata); "
     "native: the input's own voxels, no resampling (a tomogram binned for the wedge task, as IsoNet runs)", NULL},
    {"tilt-axis", 0, CRYO_OPT_CHOICE, "AXIS", "y",
     "wedge: the tilt axis of the input (beam along z); the weights learnt a y axis, so an x axis is turned "
     "onto y for the network (a rotation about z) and back", "x|y"},
    {"tile", 0, CRYO_OPT_INTS, "N[,N,N]", "64",
     "tile edge in voxels of the model grid, a multiple of 2^levels; 0: the whole map in one pass", NULL},
    {"stride", 0, CRYO_OPT_INTS, "N[,N,N]", NULL, "distance between tiles (default: 3/4 of the tile)", NULL},
    {"batch", 'b', CRYO_OPT_INT, "B", "1", "tiles per forward pass", NULL},
    {"skip-below", 0, CRYO_OPT_DOUBLE, "T", "0",
     "skip tiles whose normalised input is <= T everywhere (empty solvent; output 0 there)", NULL},
    {"no-skip", 0, CRYO_OPT_FLAG, NULL, NULL, "run every tile", NULL},
    {"blend", 0, CRYO_OPT_CHOICE, "B", "gaussian", "tile blending weight", "gaussian|cosine|mean"},
    {"device", 0, CRYO_OPT_STRING, "DEV[,DEV...]", "auto",
     "device(s) to compute on: cpu, cuda (the default GPU), cuda:N (GPU N), cuda:all (every GPU), or a "
     "comma-separated list of them, tiles spread over the list (cpu entries share --threads: for tests or "
     "NUMA nodes); auto: cuda if usable, else cpu", NULL},
    {"precision", 0, CRYO_OPT_CHOICE, "P", "fp32",
     "reduced-precision arithmetic: tf32 lets CUDA run convolutions and matrix products on TF32 tensor "
     "cores (the CPU computes float32); bf16 rounds operands to bfloat16 with float32 accumulation "
     "(CPU with AVX-512 BF16 or AMX: the convolutions; CUDA: convolutions, linear layers, attention products)",
     "fp32|tf32|bf16"},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

static const struct cryo_tool tool = {
    "lvm-apply",
    "sharpen, super-resolve or complete the missing wedge of maps with fine-tuned CryoLVM weights",
    "--task TASK [OPTIONS] [INPUT...]",
    options, 0, -1, 1, 1};

/* What the weights say about themselves (safetensors metadata, nn_train.h). */
struct weights {
    char path[PATH_MAX];
    struct cryo_safetensors *st;
    struct cryo_scunet_config c;
    double apix;        /* Å per voxel the model was trained at */
    double qlo, qhi;    /* quantile probabilities of its normalisation */
};

static _Noreturn void die_msg(const struct cryo_cli *cli, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static _Noreturn void die_msg(const struct cryo_cli *cli, int status, const char *fmt, ...)
{
    struct cryo_error err = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    err.status = status;
    cli_die(cli, &err);
}

/* Directory of the running executable ("" if unknown). */
static void exe_dir(char *buf, size_t cap)
{
    ssize_t k = readlink("/proc/self/exe", buf, cap - 1);
    buf[k > 0 ? k : 0] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        buf[0] = '\0';
}

static int try_path(char *out, size_t cap, const char *dir, const char *sub, const char *task)
{
    if (!dir || !*dir)
        return 0;
    int k = snprintf(out, cap, "%s%s/%s.safetensors", dir, sub, task);
    return k > 0 && (size_t)k < cap && access(out, R_OK) == 0;
}

static void find_weights(const struct cryo_cli *cli, const char *task, char *out, size_t cap)
{
    const char *given = cryo_args_string(cli->args, "model");
    if (given) {
        snprintf(out, cap, "%s", given);
        return;
    }
    char exe[PATH_MAX];
    exe_dir(exe, sizeof exe);
    const char *env = getenv("CRYOLVM_MODELS");
    if (try_path(out, cap, env, "", task) || try_path(out, cap, exe, "/../share/models", task) ||
        try_path(out, cap, exe, "/../share/cryolvm/models", task) || try_path(out, cap, CRYO_MODELS_DIR, "", task))
        return;
    die_msg(cli, CRYO_E_IO,
            "no weights for task '%s': %s.safetensors is in none of $CRYOLVM_MODELS (%s), %s/../share/models, "
            "%s/../share/cryolvm/models, %s; give --model FILE, or fine-tune them with jepa-train (see lvm-apply(1))",
            task, task, env ? env : "unset", exe, exe, CRYO_MODELS_DIR);
}

static void load_weights(const struct cryo_cli *cli, const char *task, struct weights *w)
{
    struct cryo_error err = {0};
    find_weights(cli, task, w->path, sizeof w->path);
    const char *p = w->path;
    if (cryo_safetensors_read(&w->st, p, &err) < 0)
        cli_die(cli, &err);
    const struct cryo_meta *m = &w->st->meta;
    const char *fmt = cryo_meta_get(m, "format"), *t = cryo_meta_get(m, "task"),
               *apix = cryo_meta_get(m, "apix"), *norm = cryo_meta_get(m, "normalize");
    if (!fmt)
        die_msg(cli, CRYO_E_FORMAT, "%s: no 'format' in the metadata: not CryoLVM weights", p);
    if (cryo_scunet_config_from_file(w->st, &w->c, &err) < 0)
        cli_die(cli, &err);
    if (!t)
        die_msg(cli, CRYO_E_FORMAT, "%s: no 'task' in the metadata: not fine-tuned weights (pre-trained backbone?)", p);
    if (strcmp(t, task) != 0)
        die_msg(cli, CRYO_E_INVALID, "%s: weights fine-tuned for '%s', not '%s'", p, t, task);
    char *end;
    w->apix = apix ? strtod(apix, &end) : NAN;
    if (!apix || *end || !(w->apix > 0) || w->apix > 100)
        die_msg(cli, CRYO_E_FORMAT, "%s: metadata 'apix' is %s, not a voxel size in Å", p, apix ? apix : "missing");
    if (!norm || sscanf(norm, "quantile:%lf:%lf", &w->qlo, &w->qhi) != 2 || !(w->qlo >= 0 && w->qlo < w->qhi &&
                                                                            w->qhi <= 1))
        die_msg(cli, CRYO_E_FORMAT, "%s: metadata 'normalize' is %s, not quantile:LO:HI", p, norm ? norm : "missing");
    if (w->c.in_ch != 1 || w->c.out_ch != 1)
        die_msg(cli, CRYO_E_FORMAT, "%s: network has %d input and %d output channels; maps need 1 and 1", p,
                w->c.in_ch, w->c.out_ch);
}

/* The compute contexts of --device (one or a list) at --precision. */
static int make_contexts(const struct cryo_cli *cli, struct cryo_nn_ctx **ctxs)
{
    struct cryo_error err = {0};
    const char *dev = cryo_args_string(cli->args, "device"), *prec = cryo_args_string(cli->args, "precision");
    int n = 0;
    if (cryo_infer_contexts_create(ctxs, CRYO_INFER_MAX_CONTEXTS, &n, dev, cli->threads, &err) < 0) {
        cryo_error_prefix(&err, "--device");
        cli_die(cli, &err);
    }
    enum cryo_nn_precision p = strcmp(prec, "bf16") == 0   ? CRYO_NN_PRECISION_BF16
                               : strcmp(prec, "tf32") == 0 ? CRYO_NN_PRECISION_TF32
                                                           : CRYO_NN_PRECISION_FP32;
    for (int i = 0; i < n && p != CRYO_NN_PRECISION_FP32; i++)
        if (cryo_nn_set_precision(ctxs[i], p, &err) < 0) {
            cryo_error_prefix(&err, "--precision");
            cli_die(cli, &err);
        }
    return n;
}

/* Every tensor of the config present with its shape: load into the smallest model. */
static void check_weights(const struct cryo_cli *cli, struct cryo_nn_ctx *ctx, const struct weights *w)
{
    struct cryo_error err = {0};
    struct cryo_scunet *m = NULL;
    int q = 1 << w->c.levels;
    if (cryo_scunet_create(&m, &w->c, ctx, 1, q, q, q, 0, &err) < 0 || cryo_scunet_load(m, w->st, &err) < 0)
        cli_die(cli, &err);
    cryo_scunet_free(m);
}

static void read_map(const struct cryo_cli *cli, struct cryo_volume *v, const char *path)
{
    struct cryo_error err = {0};
    if (cryo_read_one(v, path, &err) < 0)
        cli_die(cli, &err);
    if (v->c != 1)
        die_msg(cli, CRYO_E_INVALID, "%s: %lld channels; a map has one", path, (long long)v->c);
    if (cryo_volume_convert(v, CRYO_DTYPE_F32, &err) < 0) {
        cryo_error_prefix(&err, path);
        cli_die(cli, &err);
    }
    if (cryo_volume_check_finite(v, path, &err) < 0) /* names the file itself */
        cli_die(cli, &err);
}

/* The second half map must lie on the first one's grid. */
static void check_same_grid(const struct cryo_cli *cli, const struct cryo_volume *a, const char *an,
                            const struct cryo_volume *b, const char *bn)
{
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz)
        die_msg(cli, CRYO_E_INVALID, "%s: half map is %lldx%lldx%lld but %s is %lldx%lldx%lld", bn, (long long)b->nx,
                (long long)b->ny, (long long)b->nz, an, (long long)a->nx, (long long)a->ny, (long long)a->nz);
    for (int d = 0; d < 3; d++) {
        if (fabs(a->apix[d] - b->apix[d]) > 1e-4 * a->apix[d])
            die_msg(cli, CRYO_E_INVALID, "%s: half map voxel size %g Å differs from %s's %g Å", bn, b->apix[d], an,
                    a->apix[d]);
        if (fabs(a->origin[d] - b->origin[d]) > 1e-3 * a->apix[d])
            die_msg(cli, CRYO_E_INVALID, "%s: half map origin %g Å differs from %s's %g Å (axis %c)", bn,
                    b->origin[d], an, a->origin[d], "xyz"[d]);
    }
}

/* Progress with an ETA, on stderr when --progress or a terminal (and not -q). */
struct progress {
    const struct cryo_cli *cli;
    const char *what;
    double t0;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void on_progress(void *user, int64_t done, int64_t total)
{
    struct progress *p = user;
    if (p->cli->quiet || !(p->cli->progress || isatty(STDERR_FILENO)) || total <= 0)
        return;
    double el = now_s() - p->t0, eta = done > 0 ? el * (double)(total - done) / (double)done : 0;
    char bar[31];
    int fill = (int)(30 * done / total);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\rlvm-apply: %s [%s] %lld/%lld tiles, %.0f s, ETA %.0f s ", p->what, bar, (long long)done,
            (long long)total, el, eta);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static void infer_opts(const struct cryo_cli *cli, struct cryo_infer_opts *o)
{
    cryo_infer_opts_default(o);
    long tile[3], stride[3];
    int nt = cryo_args_ints(cli->args, "tile", tile);
    if (nt == 0) {
        tile[0] = 64;
        nt = 1;
    }
    for (int d = nt; d < 3; d++)
        tile[d] = tile[nt - 1];
    int ns = cryo_args_ints(cli->args, "stride", stride);
    for (int d = ns; d < 3; d++)
        stride[d] = ns ? stride[ns - 1] : tile[d] - tile[d] / 4;
    for (int d = 0; d < 3; d++) {
        if (tile[d] < 0 || tile[d] > 4096 || (tile[d] && (stride[d] < 1 || stride[d] > tile[d])))
            cli_usage_error(&tool, "--tile must be in 0..4096 and --stride in 1..tile");
        o->tile[d] = tile[d];
        o->stride[d] = tile[d] ? stride[d] : 0;
    }
    if (nt && (tile[0] == 0) != (tile[1] == 0 || tile[2] == 0))
        cli_usage_error(&tool, "--tile 0 (whole map) applies to all three axes");
    long b = cryo_args_int(cli->args, "batch");
    if (b < 1 || b > 4096)
        cli_usage_error(&tool, "--batch must be in 1..4096");
    o->batch = (int)b;
    o->skip_empty = !cryo_args_flag(cli->args, "no-skip");
    o->skip_max = cryo_args_double(cli->args, "skip-below");
    const char *bl = cryo_args_string(cli->args, "blend");
    o->blend = strcmp(bl, "gaussian") == 0 ? CRYO_BLEND_GAUSSIAN
               : strcmp(bl, "cosine") == 0 ? CRYO_BLEND_COSINE : CRYO_BLEND_MEAN;
}

static int near_apix(const double a[3], double b)
{
    return fabs(a[0] - b) <= 1e-4 * b && fabs(a[1] - b) <= 1e-4 * b && fabs(a[2] - b) <= 1e-4 * b;
}

/* The voxel size the network works at: --apix A, the weights' own (default), or 0 for
 * --apix native (no resampling). Checked in main before any map is read. */
static double net_apix_for(const struct cryo_cli *cli, const struct weights *w)
{
    const char *a = cryo_args_string(cli->args, "apix");
    if (!a)
        return w->apix;
    if (strcmp(a, "native") == 0)
        return 0;
    return strtod(a, NULL);
}

/* The history line: the run with the weights named first (it becomes an MRC label of 80
 * characters, so the part that matters comes before the options). */
static void history_line(const struct cryo_cli *cli, const struct weights *w, char *buf, size_t cap)
{
    const char *base = strrchr(w->path, '/');
    base = base ? base + 1 : w->path;
    char opts[1024];
    snprintf(opts, sizeof opts, "%s", cryo_args_summary(cli->args));
    const char *given = cryo_args_string(cli->args, "model");
    if (given) { /* drop "--model PATH" from the summary: the weights come first */
        char pat[PATH_MAX + 16];
        snprintf(pat, sizeof pat, "--model %s", given);
        char *at = strstr(opts, pat);
        if (at) {
            size_t len = strlen(pat);
            memmove(at, at + len + (at[len] == ' '), strlen(at + len + (at[len] == ' ')) + 1);
        }
    }
    size_t n = strlen(opts);
    while (n && opts[n - 1] == ' ')
        opts[--n] = '\0';
    snprintf(buf, cap, "lvm-apply --model %s %s", base, opts);
}

/* One map through the model: see the comment at the top. */
static void apply_one(const struct cryo_cli *cli, struct cryo_nn_ctx *const *ctxs, int nctx, const struct weights *w,
                      const char *task, struct cryo_volume *v, const char *name, const struct cryo_volume *mask,
                      struct cryo_sink *sink, struct cryo_resampler *rs)
{
    struct cryo_error err = {0};
    const char *mname = cryo_args_string(cli->args, "mask");
    if (mask && cryo_normalize_check_mask(v, mask, mname, &err) < 0)
        cli_die(cli, &err);
    /* 0. a tilt axis along x is turned onto the y axis the wedge weights learnt */
    const int turn = strcmp(cryo_args_string(cli->args, "tilt-axis"), "x") == 0;
    double in_apix[3], in_origin[3];
    memcpy(in_apix, v->apix, sizeof in_apix);
    memcpy(in_origin, v->origin, sizeof in_origin);
    struct cryo_volume prep, pmask, out, tmask; /* tmask: the mask turned with the map */
    cryo_volume_init(&prep);
    cryo_volume_init(&pmask);
    cryo_volume_init(&out);
    cryo_volume_init(&tmask);
    const struct cryo_volume *nmask = mask; /* the mask on the network side of step 0 */
    if (turn && (cryo_volume_rot90_z(v, 1, &err) < 0 ||
                 (mask && (cryo_volume_copy(&tmask, mask, &err) < 0 || cryo_volume_rot90_z(&tmask, 1, &err) < 0))))
        cli_die(cli, &err);
    if (turn && mask)
        nmask = &tmask;
    /* 1. the model's voxel size (Fourier: a' = n a / n', n' = round(n a / A)); none with
     * --apix native */
    const double net_apix = net_apix_for(cli, w);
    int resample = net_apix > 0 && !near_apix(v->apix, net_apix);
    int64_t box[3];
    double target[3] = {net_apix, net_apix, net_apix};
    if (resample) {
        if (cryo_resample_box_for_apix(v, target, box, &err) == 0) {
            double grow = (double)box[0] * (double)box[1] * (double)box[2] / (double)cryo_volume_count(v);
            if (grow > 64) /* e.g. a 10 Å tomogram onto a 1 Å grid: 1000 times the voxels */
                cli_warn(cli, "%s: resampling %g Å voxels to the network's %g Å makes the map %.0f times larger "
                         "(%lldx%lldx%lld); for a tomogram, --apix native keeps its own voxels", name, v->apix[0],
                         net_apix, grow, (long long)box[0], (long long)box[1], (long long)box[2]);
        }
        if (cryo_resample_box_for_apix(v, target, box, &err) < 0 ||
            cryo_resample(&prep, v, box, NULL, CRYO_RESAMPLE_FOURIER, rs, &err) < 0 ||
            (nmask && cryo_resample(&pmask, nmask, box, NULL, CRYO_RESAMPLE_LINEAR, NULL, &err) < 0)) {
            cryo_error_prefix(&err, name);
            cli_die(cli, &err);
        }
    } else if (cryo_volume_copy(&prep, v, &err) < 0 || (nmask && cryo_volume_copy(&pmask, nmask, &err) < 0))
        cli_die(cli, &err);
    /* 2. normalise as in training; recorded in normalize.* for the inverse */
    struct cryo_normalize_opts no;
    cryo_normalize_opts_default(&no);
    no.mode = CRYO_NORMALIZE_QUANTILE;
    no.lo = w->qlo;
    no.hi = w->qhi;
    no.mask = mask ? &pmask : NULL;
    no.mask_name = mname;
    if (cryo_normalize_volume(&prep, &no, name, &err) < 0)
        cli_die(cli, &err);
    /* 3. the network */
    struct cryo_infer_opts io;
    struct cryo_infer_report rep;
    infer_opts(cli, &io);
    struct progress pr = {cli, name, now_s()};
    io.progress = on_progress;
    io.user = &pr;
    if (cryo_infer_run_multi(&out, &prep, ctxs, nctx, &w->c, w->st, &io, &rep, &err) < 0) {
        cryo_error_prefix(&err, name);
        cli_die(cli, &err);
    }
    cryo_volume_free(&prep);
    /* 4. back to the input's density scale: x = y / scale = y (q_hi - q_lo). The network's 0
     * is "no density" (its targets are molmaps, zero away from atoms), so it stays 0: solvent
     * at zero as in a reconstruction, not at the input's 1 % quantile (a noise level). */
    if (cryo_normalize_unscale(&out, name, &err) < 0)
        cli_die(cli, &err);
    /* 5. back to the input's grid, except superres from a coarser map: its gain lies
     * beyond the input's Nyquist, so it stays on the model's grid (same extent). */
    int coarser = resample && (v->apix[0] > net_apix * (1 + 1e-4) || v->apix[1] > net_apix * (1 + 1e-4) ||
                               v->apix[2] > net_apix * (1 + 1e-4));
    int keep_model_grid = strcmp(task, "superres") == 0 && coarser;
    if (resample && !keep_model_grid) {
        int64_t back[3] = {v->nx, v->ny, v->nz};
        struct cryo_volume tmp;
        cryo_volume_init(&tmp);
        if (cryo_resample(&tmp, &out, back, NULL, CRYO_RESAMPLE_FOURIER, rs, &err) < 0) {
            cryo_error_prefix(&err, name);
            cli_die(cli, &err);
        }
        cryo_volume_move(&out, &tmp);
        /* exactly the input's placement (the round trip is exact up to float rounding) */
        memcpy(out.apix, v->apix, sizeof out.apix);
        memcpy(out.origin, v->origin, sizeof out.origin);
    }
    /* 5b. the tilt axis back where it was, and the input's placement */
    if (turn) {
        if (cryo_volume_rot90_z(&out, -1, &err) < 0)
            cli_die(cli, &err);
        memcpy(out.apix, in_apix, sizeof out.apix);
        memcpy(out.origin, in_origin, sizeof out.origin);
    }
    /* 6. the mask, on the output's grid */
    if (mask) {
        const struct cryo_volume *mk = keep_model_grid ? &pmask : mask;
        float *y = out.data;
        const float *mv = mk->data;
        for (size_t i = 0, n = cryo_volume_count(&out); i < n; i++)
            y[i] *= mv[i];
    }
    char line[PATH_MAX + 1200];
    history_line(cli, w, line, sizeof line);
    const char *prov = cryo_meta_get(&w->st->meta, "provenance");
    if (cryo_meta_set(&out.meta, "lvm.task", task, &err) < 0 || cryo_meta_set(&out.meta, "lvm.weights", w->path, &err) < 0 ||
        (prov && cryo_meta_set(&out.meta, "lvm.provenance", prov, &err) < 0) ||
        cryo_meta_add_history(&out.meta, line, &err) < 0 || cryo_sink_write(sink, &out, &err) < 0)
        cli_die(cli, &err);
    if (cli->progress && !cli->quiet)
        fprintf(stderr, "lvm-apply: %s: %s, %lld tiles of %lldx%lldx%lld (%lld skipped), %.1f GFLOP, %.0f MiB of "
                "activations%s, %d device%s, %.1f s\n", name, rep.whole ? "whole map" : "tiled", (long long)rep.tiles,
                (long long)rep.box[0], (long long)rep.box[1], (long long)rep.box[2], (long long)rep.skipped,
                rep.flops / 1e9, rep.activation_bytes / 1048576.0, rep.contexts > 1 ? " each" : "", rep.contexts,
                rep.contexts > 1 ? "s" : "", now_s() - pr.t0);
    cryo_volume_free(&out);
    cryo_volume_free(&pmask);
    cryo_volume_free(&tmask);
}

int main(int argc, char **argv)
{
    struct cryo_cli cli;
    cli_parse(&tool, argc, argv, &cli);
    struct cryo_error err = {0};
    const char *task = cryo_args_string(cli.args, "task");
    if (!task)
        cli_usage_error(&tool, "--task sharpen|superres|wedge is required");
    struct cryo_infer_opts check;
    infer_opts(&cli, &check); /* usage errors before any work */
    if (cryo_args_given(cli.args, "tilt-axis") && strcmp(task, "wedge") != 0)
        cli_usage_error(&tool, "--tilt-axis applies to --task wedge");
    const char *apix_arg = cryo_args_string(cli.args, "apix");
    if (apix_arg && strcmp(apix_arg, "native") == 0 && strcmp(task, "superres") == 0)
        cli_usage_error(&tool, "--apix native: superres puts the map on a finer grid (give --apix A, or leave the weights' own)");
    if (apix_arg && strcmp(apix_arg, "native") != 0) {
        char *end;
        double a = strtod(apix_arg, &end);
        if (end == apix_arg || *end || !(a > 0 && a <= 100))
            cli_usage_error(&tool, "--apix '%s': a voxel size in Å (0 < A <= 100) or 'native'", apix_arg);
    }
    const char *h2name = cryo_args_string(cli.args, "half2"), *mname = cryo_args_string(cli.args, "mask");
    if (h2name && cli.n_inputs != 1)
        cli_usage_error(&tool, "--half2 pairs with exactly one input (the first half map)");
    struct weights w;
    memset(&w, 0, sizeof w);
    load_weights(&cli, task, &w);
    struct cryo_nn_ctx *ctxs[CRYO_INFER_MAX_CONTEXTS];
    int nctx = make_contexts(&cli, ctxs);
    check_weights(&cli, ctxs[0], &w);
    for (int d = 0; d < 3; d++)
        if (check.tile[d] % (1 << w.c.levels))
            cli_usage_error(&tool, "--tile %lld: not a multiple of %d (the network halves the box %d times)",
                            (long long)check.tile[d], 1 << w.c.levels, w.c.levels);
    struct cryo_volume mask, half2;
    cryo_volume_init(&mask);
    cryo_volume_init(&half2);
    if (mname)
        read_map(&cli, &mask, mname);
    if (h2name)
        read_map(&cli, &half2, h2name);
    struct cryo_resampler *rs = NULL;
    if (cryo_resampler_create(&rs, &err) < 0)
        cli_die(&cli, &err);
    struct cryo_sink *sink = cli_open_sink(&cli);
    for (int i = 0; i < cli.n_inputs; i++) {
        const char *in = cli.inputs[i];
        struct cryo_source *src = NULL;
        if (cryo_source_open(&src, in, &err) < 0)
            cli_die(&cli, &err);
        struct cryo_volume v;
        cryo_volume_init(&v);
        int r, frames = 0;
        const char *name = cryo_source_name(src);
        while ((r = cryo_source_next(src, &v, &err)) > 0) {
            if (v.c != 1)
                die_msg(&cli, CRYO_E_INVALID, "%s: %lld channels; a map has one", name, (long long)v.c);
            if (cryo_volume_convert(&v, CRYO_DTYPE_F32, &err) < 0) {
                cryo_error_prefix(&err, name);
                cli_die(&cli, &err);
            }
            if (cryo_volume_check_finite(&v, name, &err) < 0)
                cli_die(&cli, &err);
            if (h2name) {
                if (frames > 0)
                    die_msg(&cli, CRYO_E_INVALID, "%s: more than one frame; --half2 pairs one map with one map", name);
                check_same_grid(&cli, &v, name, &half2, h2name);
                float *a = v.data;
                const float *b = half2.data;
                for (size_t k = 0, n = cryo_volume_count(&v); k < n; k++)
                    a[k] = 0.5f * (a[k] + b[k]);
            }
            apply_one(&cli, ctxs, nctx, &w, task, &v, name, mname ? &mask : NULL, sink, rs);
            frames++;
        }
        if (r < 0)
            cli_die(&cli, &err);
        if (frames == 0)
            die_msg(&cli, CRYO_E_INVALID, "%s: no map in the input", name);
        cryo_volume_free(&v);
        cryo_source_free(src);
    }
    if (cryo_sink_commit(sink, &err) < 0)
        cli_die(&cli, &err);
    cryo_sink_free(sink);
    cryo_resampler_free(rs);
    cryo_volume_free(&mask);
    cryo_volume_free(&half2);
    cryo_safetensors_free(w.st);
    cryo_infer_contexts_free(ctxs, nctx);
    cli_free(&cli);
    return 0;
}
