/* resample.c (stage) — mrc-resample: new voxel size (--apix) and/or new box (--box) with
 * libcore/resample.c. The voxel size change comes first, then the crop/pad about the
 * centre. Fourier resampling keeps the box extent, so its voxel size is n a / n' with
 * n' = round(n a / a_wanted); the frame records what it got in resample.apix (and what was
 * asked in resample.apix_requested) so the tool can say so. One cryo_resampler keeps FFTW
 * plans and buffers across frames of the same shape. */
#include "cryolvm/resample.h"
#include "cryolvm/normalize.h"
#include "cryolvm/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct cryo_option resample_options[] = {
    {"apix", 'a', CRYO_OPT_DOUBLES, "APIX[,Y,Z]", NULL, "New voxel size, one value or x,y,z", NULL},
    {"box", 'b', CRYO_OPT_INTS, "N[,N,N]", NULL, "New box in voxels, cropping or padding about the centre", NULL},
    {"method", 'm', CRYO_OPT_CHOICE, "METHOD", "fourier",
     "fourier (crop/pad the transform), linear or cubic (Keys) interpolation", "fourier|linear|cubic"},
    {"fill", 0, CRYO_OPT_DOUBLE, "X", "0", "Value of voxels added by --box padding", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

struct resample_state {
    int have_apix, have_box;
    double apix[3];
    int64_t box[3];
    enum cryo_resample_method method;
    double fill;
    struct cryo_resampler *r;
};

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
    if (!s->have_apix && !s->have_box)
        return cryo_fail(err, CRYO_E_INVALID, "nothing to do: give --apix and/or --box");
    s->method = (enum cryo_resample_method)cryo_resample_method_from_name(cryo_args_string(a, "method"));
    s->fill = cryo_args_double(a, "fill");
    if (cryo_args_given(a, "fill") && !s->have_box)
        return cryo_fail(err, CRYO_E_INVALID, "--fill: only used with --box");
    if (s->method == CRYO_RESAMPLE_FOURIER)
        CRYO_TRY(cryo_resampler_create(&s->r, err));
    return CRYO_OK;
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
    if (s->have_apix) {
        int64_t box[3];
        st = cryo_resample_box_for_apix(in, s->apix, box, err);
        if (st == CRYO_OK)
            st = cryo_resample(&a, in, box, s->method == CRYO_RESAMPLE_FOURIER ? NULL : s->apix, s->method, s->r,
                               err);
        if (st == CRYO_OK)
            st = cryo_meta_setf(&a.meta, err, "resample.apix", "%.9g,%.9g,%.9g", a.apix[0], a.apix[1], a.apix[2]);
        if (st == CRYO_OK)
            st = cryo_meta_setf(&a.meta, err, "resample.apix_requested", "%.9g,%.9g,%.9g", s->apix[0], s->apix[1],
                                s->apix[2]);
        if (st == CRYO_OK)
            st = cryo_meta_set(&a.meta, "resample.method",
                               s->method == CRYO_RESAMPLE_FOURIER ? "fourier"
                               : s->method == CRYO_RESAMPLE_LINEAR ? "linear"
                                                                   : "cubic",
                               err);
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
    free(s);
}

const struct cryo_stage cryo_stage_resample = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "resample",
    .summary = "Resample maps to a new voxel size (Fourier, linear or cubic) and/or crop or pad the box.",
    .options = resample_options,
    .init = resample_init,
    .process = resample_process,
    .finish = NULL,
    .destroy = resample_destroy,
};
