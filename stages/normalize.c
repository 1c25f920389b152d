/* normalize.c (stage) — mrc-normalize: quantile clipping to [0,1] (the CryoLVM paper's
 * pre-processing, default 0.01/0.99) or z-scores, each channel on its own, optionally with
 * statistics from a mask; --invert undoes a previous run from the normalize.* metadata.
 * Arithmetic in libcore/normalize.c and libcore/quantile.c. */
#include "cryolvm/normalize.h"
#include "cryolvm/stage.h"
#include "cryolvm/volio.h"

#include <stdlib.h>
#include <string.h>

static const struct cryo_option normalize_options[] = {
    {"mode", 'm', CRYO_OPT_CHOICE, "MODE", "quantile",
     "quantile: clip at two quantiles and scale to [0,1]; zscore: (x - mean)/std", "quantile|zscore"},
    {"quantiles", 'Q', CRYO_OPT_DOUBLES, "LO,HI", "0.01,0.99", "Quantile probabilities for --mode quantile", NULL},
    {"mask", 'k', CRYO_OPT_STRING, "FILE", NULL, "Statistics from voxels where this mask (same grid) is > 0.5", NULL},
    {"invert", 'i', CRYO_OPT_FLAG, NULL, NULL, "Undo a previous mrc-normalize using the frame's normalize.* metadata",
     NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

struct normalize_state {
    struct cryo_normalize_opts o;
    struct cryo_volume mask;
    char *mask_name;
    int invert;
};

static int normalize_init(void **state, const struct cryo_args *a, struct cryo_error *err)
{
    struct normalize_state *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    *state = s;
    cryo_volume_init(&s->mask);
    cryo_normalize_opts_default(&s->o);
    s->invert = cryo_args_flag(a, "invert");
    s->o.mode = strcmp(cryo_args_string(a, "mode"), "zscore") == 0 ? CRYO_NORMALIZE_ZSCORE : CRYO_NORMALIZE_QUANTILE;
    double q[3];
    int k = cryo_args_doubles(a, "quantiles", q);
    if (k != 2 || !(q[0] >= 0 && q[0] < q[1] && q[1] <= 1))
        return cryo_fail(err, CRYO_E_INVALID, "--quantiles: needs LO,HI with 0 <= LO < HI <= 1");
    s->o.lo = q[0], s->o.hi = q[1];
    if (cryo_args_given(a, "quantiles") && s->o.mode != CRYO_NORMALIZE_QUANTILE)
        return cryo_fail(err, CRYO_E_INVALID, "--quantiles: only with --mode quantile");
    if (s->invert && (cryo_args_given(a, "mode") || cryo_args_given(a, "quantiles") || cryo_args_has(a, "mask")))
        return cryo_fail(err, CRYO_E_INVALID, "--invert: takes the mapping from the metadata; give no other option");
    if (cryo_args_has(a, "mask")) {
        const char *path = cryo_args_string(a, "mask");
        if (!(s->mask_name = strdup(path)))
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        CRYO_TRY(cryo_read_one(&s->mask, path, err));
        if (s->mask.c != 1)
            return cryo_fail(err, CRYO_E_FORMAT, "%s: mask has %lld channels, needs 1", path, (long long)s->mask.c);
        CRYO_TRY(cryo_volume_convert(&s->mask, CRYO_DTYPE_F32, err));
        CRYO_TRY(cryo_volume_check_finite(&s->mask, path, err));
        s->o.mask = &s->mask;
        s->o.mask_name = s->mask_name;
    }
    return CRYO_OK;
}

static int normalize_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                             struct cryo_error *err)
{
    struct normalize_state *s = state;
    const char *src = cryo_meta_get(&in->meta, "source");
    CRYO_TRY(cryo_volume_convert(in, CRYO_DTYPE_F32, err));
    if (s->invert)
        CRYO_TRY(cryo_normalize_invert(in, src ? src : "input", err));
    else
        CRYO_TRY(cryo_normalize_volume(in, &s->o, src ? src : "input", err));
    return cryo_emit_frame(out, in, err);
}

static void normalize_destroy(void *state)
{
    struct normalize_state *s = state;
    if (!s)
        return;
    cryo_volume_free(&s->mask);
    free(s->mask_name);
    free(s);
}

const struct cryo_stage cryo_stage_normalize = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "normalize",
    .summary = "Normalise densities: clip at quantiles and scale to [0,1] (default) or z-scores; --invert undoes it.",
    .options = normalize_options,
    .init = normalize_init,
    .process = normalize_process,
    .finish = NULL,
    .destroy = normalize_destroy,
};
