/* mask.c (stage) — one mask per input frame, on that frame's grid: relion_mask_create's
 * threshold / low-pass / extend / soft edge and a model zone (libcore/mask.c, mask.h), for
 * pipelines (`vol-halves h1 h2 | vol-stage mask --threshold 0.02 --soft-edge 6`).
 * vol-mask(1) is the tool with the same options plus --like. Lengths "N" are voxels (of the
 * frame's finest axis), "NA" Å, so they are converted per frame. */
#include "cryolvm/mask.h"
#include "cryolvm/stage.h"

#include <stdlib.h>
#include <string.h>

static const struct cryo_option mask_options[] = {
    {"threshold", 't', CRYO_OPT_DOUBLE, "T", NULL, "Binary mask of voxels >= T (relion --ini_threshold)", NULL},
    {"lowpass", 0, CRYO_OPT_DOUBLE, "Å", NULL, "Low-pass the map at this resolution before thresholding (relion --lowpass)", NULL},
    {"model", 0, CRYO_OPT_STRING, "MODEL", NULL, "Zone mask: voxels within --zone Å of an atom of this PDB/mmCIF model", NULL},
    {"zone", 'z', CRYO_OPT_DOUBLE, "Å", NULL, "With --model: zone radius around each atom centre", NULL},
    {"extend", 'e', CRYO_OPT_STRING, "N[A]", NULL, "Extend the binary mask by N voxels, or N Å with a trailing A; negative shrinks (relion --extend_inimask)", NULL},
    {"soft-edge", 's', CRYO_OPT_STRING, "W[A]", NULL, "Raised-cosine edge W voxels (or W Å) wide outside the binary mask (relion --width_soft_edge)", NULL},
    {"invert", 0, CRYO_OPT_FLAG, NULL, NULL, "Write 1 - mask (relion --invert)", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

struct mask_state {
    struct cryo_mask_opts o;
    struct cryo_model model;
    double extend, soft_edge;      /* as given */
    int extend_a, soft_edge_a;     /* 1 = in Å */
    char *model_path;              /* owned */
};

static int mask_init(void **state, const struct cryo_args *a, struct cryo_error *err)
{
    struct mask_state *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    *state = s;
    cryo_model_init(&s->model);
    cryo_mask_opts_default(&s->o);
    int has_thr = cryo_args_has(a, "threshold"), has_model = cryo_args_has(a, "model");
    if (!has_thr && !has_model)
        return cryo_fail(err, CRYO_E_INVALID, "give --threshold, --model with --zone, or both");
    if (has_model != cryo_args_has(a, "zone"))
        return cryo_fail(err, CRYO_E_INVALID, "--model and --zone go together");
    if (cryo_args_has(a, "lowpass") && !has_thr)
        return cryo_fail(err, CRYO_E_INVALID, "--lowpass filters the map before --threshold: give --threshold too");
    s->o.use_threshold = has_thr;
    if (has_thr)
        s->o.threshold = cryo_args_double(a, "threshold");
    if (cryo_args_has(a, "lowpass") && !((s->o.lowpass = cryo_args_double(a, "lowpass")) > 0))
        return cryo_fail(err, CRYO_E_INVALID, "--lowpass: must be > 0 Å (got %g)", s->o.lowpass);
    if (cryo_args_has(a, "extend"))
        CRYO_TRY(cryo_mask_parse_length(cryo_args_string(a, "extend"), "--extend", &s->extend, &s->extend_a, err));
    if (cryo_args_has(a, "soft-edge")) {
        CRYO_TRY(cryo_mask_parse_length(cryo_args_string(a, "soft-edge"), "--soft-edge", &s->soft_edge,
                                        &s->soft_edge_a, err));
        if (s->soft_edge < 0)
            return cryo_fail(err, CRYO_E_INVALID, "--soft-edge: '%s' must be >= 0", cryo_args_string(a, "soft-edge"));
    }
    s->o.invert = cryo_args_flag(a, "invert");
    if (has_model) {
        if (!((s->o.zone = cryo_args_double(a, "zone")) > 0))
            return cryo_fail(err, CRYO_E_INVALID, "--zone: must be > 0 Å (got %g)", s->o.zone);
        struct cryo_model_opts fo;
        cryo_model_opts_default(&fo);
        if (!(s->model_path = strdup(cryo_args_string(a, "model"))))
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        CRYO_TRY(cryo_model_read(&s->model, s->model_path, &fo, err));
        s->o.model = &s->model;
    }
    return CRYO_OK;
}

static int mask_process(void *state, struct cryo_volume *in, const struct cryo_emit *out, struct cryo_error *err)
{
    struct mask_state *s = state;
    const char *src = cryo_meta_get(&in->meta, "source");
    const char *name = src ? src : "input";
    if (in->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: has %lld channels; a mask needs a single-channel map", name,
                         (long long)in->c);
    CRYO_TRY(cryo_volume_convert(in, CRYO_DTYPE_F32, err));
    if (s->o.use_threshold)
        CRYO_TRY(cryo_volume_check_finite(in, name, err));
    struct cryo_mask_grid g;
    double amin = cryo_mask_grid_of(in, &g);
    struct cryo_mask_opts o = s->o;
    o.extend = s->extend_a ? s->extend / amin : s->extend;
    o.soft_edge = s->soft_edge_a ? s->soft_edge / amin : s->soft_edge;
    struct cryo_volume m;
    cryo_volume_init(&m);
    size_t nb = 0;
    int st = cryo_mask_make(&m, in, &o, &nb, err);
    if (st < 0) {
        if (!strstr(err->msg, name))
            cryo_error_prefix(err, name);
        return st;
    }
    /* the frame's lineage (history, source) stays; its MRC header facts do not describe a mask */
    st = cryo_meta_copy(&m.meta, &in->meta, err);
    if (st == 0) {
        cryo_meta_remove_prefix(&m.meta, "mrc.");
        st = cryo_meta_setf(&m.meta, err, "mask.binary_voxels", "%zu", nb);
    }
    if (st == 0 && o.model)
        st = cryo_meta_set(&m.meta, "mask.model", s->model_path, err);
    if (st == 0)
        st = cryo_emit_frame(out, &m, err);
    cryo_volume_free(&m);
    return st;
}

static void mask_destroy(void *state)
{
    struct mask_state *s = state;
    if (!s)
        return;
    cryo_model_free(&s->model);
    free(s->model_path);
    free(s);
}

const struct cryo_stage cryo_stage_mask = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "mask",
    .summary = "A mask per frame: threshold (after a low-pass) and/or zone around a model, extended, with a soft edge (relion_mask_create).",
    .options = mask_options,
    .init = mask_init,
    .process = mask_process,
    .finish = NULL,
    .destroy = mask_destroy,
};
