/* resample.c (stage) — mrc-resample: new voxel size (--apix), another map's grid (--like)
 * and/or a new box (--box) with libcore/resample.c. The voxel size change comes first, then
 * the crop/pad about the centre. Fourier resampling pads the input so the voxel size asked
 * is met exactly (resample.h, "Onto a grid"); where no pad in range does that, the frame
 * records the voxel size obtained in resample.apix and the residual in resample.residual
 * (and what was asked in resample.apix_requested) so the tool can say so; onto --like's grid
 * that is an error, because the output would claim a grid it is not on. The transform sizes
 * go to resample.pad and resample.fft (tests check them against numpy). One
 * cryo_resampler keeps FFTW plans and buffers across frames of the same shape. */
#include "cryolvm/resample.h"
#include "cryolvm/stage.h"
#include "cryolvm/volio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct cryo_option resample_options[] = {
    {"apix", 'a', CRYO_OPT_DOUBLES, "APIX[,Y,Z]", NULL, "New voxel size, one value or x,y,z", NULL},
    {"like", 'l', CRYO_OPT_STRING, "MAP", NULL, "Onto MAP's grid: its voxel size, box and origin", NULL},
    {"box", 'b', CRYO_OPT_INTS, "N[,N,N]", NULL, "New box in voxels, cropping or padding about the centre", NULL},
    {"method", 'm', CRYO_OPT_CHOICE, "METHOD", "fourier",
     "fourier (exact trigonometric interpolation), linear or cubic (Keys) interpolation", "fourier|linear|cubic"},
    {"fill", 0, CRYO_OPT_DOUBLE, "X", "0", "Value of voxels added by --box padding or outside the input with --like",
     NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

struct resample_state {
    int have_apix, have_box, have_like;
    double apix[3];
    int64_t box[3];
    struct cryo_grid like; /* --like MAP's grid */
    char *like_name;
    enum cryo_resample_method method;
    double fill;
    struct cryo_resampler *r;
};

static const char *method_name(enum cryo_resample_method m)
{
    return m == CRYO_RESAMPLE_FOURIER ? "fourier" : m == CRYO_RESAMPLE_LINEAR ? "linear" : "cubic";
}

static int read_like(struct resample_state *s, const char *path, struct cryo_error *err)
{
    if (!(s->like_name = strdup(path)))
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    struct cryo_volume v;
    cryo_volume_init(&v);
    int st = cryo_read_one(&v, path, err);
    if (st == CRYO_OK) {
        s->like.n[0] = v.nx, s->like.n[1] = v.ny, s->like.n[2] = v.nz;
        for (int d = 0; d < 3; d++) {
            s->like.apix[d] = v.apix[d];
            s->like.origin[d] = v.origin[d];
            if (!(v.apix[d] > 0) || !isfinite(v.apix[d]) || !isfinite(v.origin[d]))
                st = cryo_fail(err, CRYO_E_FORMAT, "%s: voxel size %g Å / origin %g Å along %c: not a grid to "
                               "resample onto", path, v.apix[d], v.origin[d], "xyz"[d]);
        }
    }
    cryo_volume_free(&v);
    return st;
}

static int resample_init(void **state, const struct cryo_args *a, struct cryo_error *err)
{
    struct resample_state *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    *state = s;
    if (cryo_args_has(a, "apix")) {
        double v[3];
        int k = cryo_args_doubles(a, "apix", v);
        if (k == 2)
            return cryo_fail(err, CRYO_E_INVALID, "--apix: give one voxel size or three (x,y,z), not two");
        for (int d = 0; d < 3; d++) {
            s->apix[d] = k == 1 ? v[0] : v[d];
            if (!(s->apix[d] > 0) || s->apix[d] > 1e6)
                return cryo_fail(err, CRYO_E_INVALID, "--apix: voxel size must be in (0, 1e6] Å, not %g", s->apix[d]);
        }
        s->have_apix = 1;
    }
    if (cryo_args_has(a, "box")) {
        long v[3];
        int k = cryo_args_ints(a, "box", v);
        if (k == 2)
            return cryo_fail(err, CRYO_E_INVALID, "--box: give one size or three (x,y,z), not two");
        for (int d = 0; d < 3; d++) {
            long b = k == 1 ? v[0] : v[d];
            if (b < 1 || b > 65536)
                return cryo_fail(err, CRYO_E_INVALID, "--box: size must be 1..65536, not %ld", b);
            s->box[d] = b;
        }
        s->have_box = 1;
    }
    s->have_like = cryo_args_has(a, "like");
    if (s->have_like && (s->have_apix || s->have_box))
        return cryo_fail(err, CRYO_E_INVALID,
                         "--like: takes voxel size, box and origin from MAP; not with --apix or --box");
    if (!s->have_apix && !s->have_box && !s->have_like)
        return cryo_fail(err, CRYO_E_INVALID, "nothing to do: give --apix, --like and/or --box");
    s->method = (enum cryo_resample_method)cryo_resample_method_from_name(cryo_args_string(a, "method"));
    s->fill = cryo_args_double(a, "fill");
    if (cryo_args_given(a, "fill") && !s->have_box && !s->have_like)
        return cryo_fail(err, CRYO_E_INVALID, "--fill: only used with --box or --like");
    if (s->have_like)
        CRYO_TRY(read_like(s, cryo_args_string(a, "like"), err));
    if (s->method == CRYO_RESAMPLE_FOURIER)
        CRYO_TRY(cryo_resampler_create(&s->r, err));
    return CRYO_OK;
}

/* resample.* metadata: what was asked, what was obtained, and the transform sizes. */
static int record(struct cryo_volume *v, const struct resample_state *s, const double asked[3],
                  const struct cryo_resample_axis ax[3], struct cryo_error *err)
{
    cryo_meta_remove_prefix(&v->meta, "resample."); /* a previous run's facts no longer apply */
    CRYO_TRY(cryo_meta_setf(&v->meta, err, "resample.apix", "%.9g,%.9g,%.9g", v->apix[0], v->apix[1], v->apix[2]));
    CRYO_TRY(cryo_meta_setf(&v->meta, err, "resample.apix_requested", "%.9g,%.9g,%.9g", asked[0], asked[1],
                            asked[2]));
    CRYO_TRY(cryo_meta_set(&v->meta, "resample.method", method_name(s->method), err));
    if (s->method != CRYO_RESAMPLE_FOURIER)
        return CRYO_OK;
    CRYO_TRY(cryo_meta_setf(&v->meta, err, "resample.residual", "%.3g,%.3g,%.3g", ax[0].residual, ax[1].residual,
                            ax[2].residual));
    CRYO_TRY(cryo_meta_setf(&v->meta, err, "resample.pad", "%lld,%lld,%lld", (long long)ax[0].pad,
                            (long long)ax[1].pad, (long long)ax[2].pad));
    return cryo_meta_setf(&v->meta, err, "resample.fft", "%lld,%lld,%lld", (long long)ax[0].fft,
                          (long long)ax[1].fft, (long long)ax[2].fft);
}

static int resample_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                            struct cryo_error *err)
{
    struct resample_state *s = state;
    CRYO_TRY(cryo_volume_convert(in, CRYO_DTYPE_F32, err));
    const char *src = cryo_meta_get(&in->meta, "source");
    CRYO_TRY(cryo_volume_check_finite(in, src ? src : "input", err));
    struct cryo_volume a, b;
    cryo_volume_init(&a);
    cryo_volume_init(&b);
    struct cryo_volume *cur = in;
    int st = CRYO_OK;
    if (s->have_apix || s->have_like) {
        struct cryo_grid g = s->like;
        struct cryo_resample_axis ax[3];
        if (s->have_apix)
            st = cryo_resample_grid_for_apix(in, s->apix, &g, err);
        if (st == CRYO_OK)
            st = cryo_resample_plan(in, &g, s->method, ax, err);
        for (int d = 0; d < 3 && st == CRYO_OK && s->have_like; d++)
            if (!ax[d].exact)
                st = cryo_fail(err, CRYO_E_UNSUPPORTED,
                               "%s%sFourier resampling from %.9g to %.9g Å (axis %c) cannot be exact here (best "
                               "residual %.2g); use --method cubic to put it on %s's grid",
                               src ? src : "", src ? ": " : "", in->apix[d], g.apix[d], "xyz"[d], ax[d].residual,
                               s->like_name);
        if (st == CRYO_OK)
            st = cryo_resample_to_grid(&a, in, &g, s->method, s->fill, s->r, ax, err);
        if (st == CRYO_OK)
            st = record(&a, s, g.apix, ax, err);
        if (st == CRYO_OK && s->have_like)
            st = cryo_meta_set(&a.meta, "resample.like", s->like_name, err);
        cur = &a;
    }
    if (st == CRYO_OK && s->have_box) {
        st = cryo_volume_crop_pad(&b, cur, s->box, s->fill, err);
        cur = &b;
    }
    if (st == CRYO_OK && cur == in)
        cryo_meta_remove_prefix(&in->meta, "mrc.");
    if (st == CRYO_OK)
        st = cryo_emit_frame(out, cur, err);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    return st;
}

static void resample_destroy(void *state)
{
    struct resample_state *s = state;
    if (!s)
        return;
    cryo_resampler_free(s->r);
    free(s->like_name);
    free(s);
}

const struct cryo_stage cryo_stage_resample = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "resample",
    .summary = "Resample maps to a new voxel size or another map's grid (Fourier, linear or cubic) and/or crop or "
               "pad the box.",
    .options = resample_options,
    .init = resample_init,
    .process = resample_process,
    .finish = NULL,
    .destroy = resample_destroy,
};
