/* degrade.c (stage) — vol-degrade: make degraded inputs for map-repair training.
 * Each option switches on one effect of libcore/degrade.c, applied in the fixed order
 * documented in degrade.h. Frame f of the stream uses seed + f, so a stream of maps gets
 * different but reproducible noise. --pair emits two channels, 0 = degraded input and
 * 1 = clean target, so vol-patch crops both at the same place. NaN/Inf input is refused by
 * cryo_degrade_apply. */
#include "cryolvm/degrade.h"
#include "cryolvm/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct cryo_option degrade_options[] = {
    {"seed", 's', CRYO_OPT_INT, "N", "1", "Random seed; frame f of a stream uses N+f", NULL},
    {"local-res", 0, CRYO_OPT_DOUBLES, "LO,HI", NULL, "1. Local resolution varying smoothly between LO and HI Å", NULL},
    {"local-scale", 0, CRYO_OPT_DOUBLE, "Å", "20", "Length scale of the local-resolution regions", NULL},
    {"bfactor", 'b', CRYO_OPT_DOUBLE, "B", NULL, "2. Blur by a B-factor: F *= exp(-B s^2/4) (Å^2)", NULL},
    {"lowpass", 'l', CRYO_OPT_DOUBLE, "Å", NULL, "3. Low-pass at this resolution with a raised-cosine edge", NULL},
    {"lowpass-edge", 0, CRYO_OPT_DOUBLE, "SHELLS", "2", "Width of the low-pass edge in Fourier shells", NULL},
    {"bin", 0, CRYO_OPT_INT, "N", NULL, "4. Bin N^3 voxels (coarser sampling), then back onto the grid", NULL},
    {"snr", 0, CRYO_OPT_DOUBLE, "S", NULL, "5. Add Gaussian noise: var(signal)/var(noise) = S", NULL},
    {"noise-shape", 0, CRYO_OPT_CHOICE, "SHAPE", "white", "white, or shell: per Fourier shell like the clean map's spectrum", "white|shell"},
    {"sharpen", 0, CRYO_OPT_DOUBLES, "B,R", NULL, "6. Sharpen as post-processing does, noise included: F *= exp(+B s^2/4) (B > 0, Å^2), then low-pass at R Å", NULL},
    {"wedge", 'w', CRYO_OPT_DOUBLE, "DEG", NULL, "7. Missing wedge: keep tilts within +-DEG (IsoNet definition)", NULL},
    {"tilt-axis", 0, CRYO_OPT_CHOICE, "AXIS", "y", "Tilt axis of the wedge (beam along z)", "x|y"},
    {"cone", 0, CRYO_OPT_FLAG, NULL, NULL, "A missing cone (conical tilt) instead of a wedge", NULL},
    {"pair", 'p', CRYO_OPT_FLAG, NULL, NULL, "Emit 2 channels: 0 = degraded input, 1 = clean target", NULL},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

struct degrade_state {
    struct cryo_degrade_opts o;
    int pair;
    uint64_t frame;
};

static int degrade_init(void **state, const struct cryo_args *a, struct cryo_error *err)
{
    struct degrade_state *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    *state = s;
    struct cryo_degrade_opts *o = &s->o;
    cryo_degrade_opts_default(o);
    o->seed = (uint64_t)cryo_args_int(a, "seed");
    int any = 0;
    if (cryo_args_has(a, "local-res")) {
        double lh[3];
        if (cryo_args_doubles(a, "local-res", lh) != 2 || !(lh[0] > 0) || !(lh[1] > lh[0]))
            return cryo_fail(err, CRYO_E_INVALID, "--local-res: needs LO,HI with 0 < LO < HI (Å)");
        o->local_lo = lh[0], o->local_hi = lh[1];
        any = 1;
    }
    o->local_scale = cryo_args_double(a, "local-scale");
    if (!(o->local_scale > 0))
        return cryo_fail(err, CRYO_E_INVALID, "--local-scale: must be > 0 Å");
    if (cryo_args_has(a, "bfactor")) {
        o->bfactor = cryo_args_double(a, "bfactor");
        any = 1;
    }
    if (cryo_args_has(a, "lowpass")) {
        o->lowpass = cryo_args_double(a, "lowpass");
        if (!(o->lowpass > 0))
            return cryo_fail(err, CRYO_E_INVALID, "--lowpass: must be > 0 Å");
        any = 1;
    }
    o->lowpass_edge = cryo_args_double(a, "lowpass-edge");
    if (!(o->lowpass_edge >= 0))
        return cryo_fail(err, CRYO_E_INVALID, "--lowpass-edge: must be >= 0 shells");
    if (cryo_args_has(a, "bin")) {
        long b = cryo_args_int(a, "bin");
        if (b < 1 || b > 64)
            return cryo_fail(err, CRYO_E_INVALID, "--bin: must be 1..64");
        o->bin = (int)b;
        any = 1;
    }
    if (cryo_args_has(a, "snr")) {
        o->snr = cryo_args_double(a, "snr");
        if (!(o->snr > 0))
            return cryo_fail(err, CRYO_E_INVALID, "--snr: must be > 0");
        any = 1;
    }
    o->noise_shell = strcmp(cryo_args_string(a, "noise-shape"), "shell") == 0;
    if (cryo_args_given(a, "noise-shape") && !cryo_args_has(a, "snr"))
        return cryo_fail(err, CRYO_E_INVALID, "--noise-shape: needs --snr");
    if (cryo_args_has(a, "sharpen")) {
        double br[3];
        if (cryo_args_doubles(a, "sharpen", br) != 2 || !(br[0] > 0) || !(br[1] > 0))
            return cryo_fail(err, CRYO_E_INVALID, "--sharpen: needs B,R with B > 0 (Å^2) and R > 0 (Å)");
        o->sharpen_b = br[0], o->sharpen_res = br[1];
        any = 1;
    }
    if (cryo_args_has(a, "wedge")) {
        o->wedge = cryo_args_double(a, "wedge");
        if (!(o->wedge > 0 && o->wedge <= 90))
            return cryo_fail(err, CRYO_E_INVALID, "--wedge: tilt range must be in (0, 90] degrees");
        any = 1;
    }
    o->tilt_axis = strcmp(cryo_args_string(a, "tilt-axis"), "x") == 0 ? CRYO_TILT_AXIS_X : CRYO_TILT_AXIS_Y;
    o->cone = cryo_args_flag(a, "cone");
    if ((o->cone || cryo_args_given(a, "tilt-axis")) && !cryo_args_has(a, "wedge"))
        return cryo_fail(err, CRYO_E_INVALID, "--cone/--tilt-axis: need --wedge");
    s->pair = cryo_args_flag(a, "pair");
    if (!any)
        return cryo_fail(err, CRYO_E_INVALID,
                         "no degradation chosen (give --bfactor, --lowpass, --snr, --local-res, --sharpen, --wedge or --bin)");
    return CRYO_OK;
}

static int degrade_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                           struct cryo_error *err)
{
    struct degrade_state *s = state;
    CRYO_TRY(cryo_volume_convert(in, CRYO_DTYPE_F32, err));
    struct cryo_degrade_opts o = s->o;
    o.seed = s->o.seed + s->frame++;
    if (!s->pair) {
        CRYO_TRY(cryo_degrade_apply(in, &o, err));
        return cryo_emit_frame(out, in, err);
    }
    if (in->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "--pair needs single-channel frames (this one has %lld)",
                         (long long)in->c);
    struct cryo_volume pair;
    cryo_volume_init(&pair);
    CRYO_TRY(cryo_volume_alloc(&pair, CRYO_DTYPE_F32, 2, in->nz, in->ny, in->nx, err));
    int st = cryo_meta_copy(&pair.meta, &in->meta, err);
    memcpy(pair.apix, in->apix, sizeof pair.apix);
    memcpy(pair.origin, in->origin, sizeof pair.origin);
    size_t n = cryo_volume_channel_count(in);
    memcpy((float *)pair.data + n, in->data, n * sizeof(float)); /* clean target */
    if (st == CRYO_OK)
        st = cryo_degrade_apply(in, &o, err);
    if (st == CRYO_OK) {
        memcpy(pair.data, in->data, n * sizeof(float));
        st = cryo_meta_set(&pair.meta, "channel.0", "input", err);
    }
    if (st == CRYO_OK)
        st = cryo_meta_set(&pair.meta, "channel.1", "target", err);
    if (st == CRYO_OK)
        st = cryo_emit_frame(out, &pair, err);
    cryo_volume_free(&pair);
    return st;
}

static void degrade_destroy(void *state) { free(state); }

const struct cryo_stage cryo_stage_degrade = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "degrade",
    .summary = "Degrade maps (blur, local resolution, binning, noise, missing wedge) for training pairs.",
    .options = degrade_options,
    .init = degrade_init,
    .process = degrade_process,
    .finish = NULL,
    .destroy = degrade_destroy,
};
