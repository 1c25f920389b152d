/* patch.c (stage) — vol-patch: random training crops (--random K), inference tiles (--tile)
 * and their blended merge (--merge); every channel of a frame is cropped at the same place,
 * so a vol-degrade --pair frame stays aligned. Geometry, RNG and blending are defined in
 * patch.h (libcore/patch.c). A crop that fails --min-density after --max-tries draws is
 * replaced by the best one seen and marked with patch.warning (the tool prints it). */
#include "cryolvm/patch.h"
#include "cryolvm/normalize.h"
#include "cryolvm/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cryo_option patch_options[] = {
    {"random", 'r', CRYO_OPT_INT, "K", NULL, "K random crops per volume (training)", NULL},
    {"tile", 't', CRYO_OPT_FLAG, NULL, NULL, "Cover each volume with overlapping tiles (inference)", NULL},
    {"merge", 'M', CRYO_OPT_FLAG, NULL, NULL, "Reassemble tiles into their source volumes", NULL},
    {"size", 'n', CRYO_OPT_INTS, "N[,N,N]", "48", "Crop or tile size in voxels (x,y,z)", NULL},
    {"stride", 0, CRYO_OPT_INTS, "N[,N,N]", NULL, "Tile stride (default: size - overlap)", NULL},
    {"overlap", 0, CRYO_OPT_INTS, "N[,N,N]", NULL, "Tile overlap in voxels (default size/4)", NULL},
    {"pad", 0, CRYO_OPT_CHOICE, "MODE", "reflect", "Padding of tiles beyond the volume edge", "zero|reflect"},
    {"seed", 's', CRYO_OPT_INT, "N", "1", "Seed of the crop positions; frame f uses (N, f)", NULL},
    {"min-density", 0, CRYO_OPT_DOUBLE, "T", NULL, "Redraw random crops with too few voxels above density T", NULL},
    {"min-fraction", 0, CRYO_OPT_DOUBLE, "F", "0.1", "Fraction of voxels that must exceed --min-density", NULL},
    {"max-tries", 0, CRYO_OPT_INT, "N", "100", "Draws per crop before keeping the best one with a warning", NULL},
    {"blend", 0, CRYO_OPT_CHOICE, "W", "gaussian", "Merge weights of overlapping tiles", "gaussian|cosine|mean"},
    {NULL, 0, CRYO_OPT_END, NULL, NULL, NULL, NULL}};

enum patch_mode { MODE_RANDOM, MODE_TILE, MODE_MERGE };

struct patch_state {
    enum patch_mode mode;
    long k;
    int64_t size[3], stride[3];
    enum cryo_pad_mode pad;
    uint64_t seed, frame;
    int density;
    double min_density, min_fraction;
    long max_tries;
    struct cryo_merger *merger;
};

static int get3(const struct cryo_args *a, const char *name, int64_t out[3], long lo, struct cryo_error *err)
{
    long v[3];
    int k = cryo_args_ints(a, name, v);
    if (k == 2)
        return cryo_fail(err, CRYO_E_INVALID, "--%s: give one value or three (x,y,z), not two", name);
    for (int d = 0; d < 3; d++) {
        out[d] = k == 1 ? v[0] : v[d];
        if (out[d] < lo || out[d] > 4096)
            return cryo_fail(err, CRYO_E_INVALID, "--%s: %lld is out of range (%ld..4096)", name, (long long)out[d], lo);
    }
    return CRYO_OK;
}

static int patch_init(void **state, const struct cryo_args *a, struct cryo_error *err)
{
    struct patch_state *s = calloc(1, sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    *state = s;
    int modes = cryo_args_has(a, "random") + cryo_args_flag(a, "tile") + cryo_args_flag(a, "merge");
    if (modes != 1)
        return cryo_fail(err, CRYO_E_INVALID, "give exactly one of --random K, --tile, --merge");
    s->mode = cryo_args_has(a, "random") ? MODE_RANDOM : cryo_args_flag(a, "tile") ? MODE_TILE : MODE_MERGE;
    CRYO_TRY(get3(a, "size", s->size, 1, err));
    if (s->mode == MODE_MERGE && cryo_args_given(a, "size"))
        return cryo_fail(err, CRYO_E_INVALID, "--size: not used with --merge (tiles carry their geometry)");
    if (s->mode == MODE_RANDOM) {
        s->k = cryo_args_int(a, "random");
        if (s->k < 1 || s->k > 1000000)
            return cryo_fail(err, CRYO_E_INVALID, "--random: K must be 1..1000000");
    }
    if ((cryo_args_given(a, "stride") || cryo_args_given(a, "overlap") || cryo_args_given(a, "pad")) &&
        s->mode != MODE_TILE)
        return cryo_fail(err, CRYO_E_INVALID, "--stride/--overlap/--pad: only with --tile");
    if (cryo_args_has(a, "stride") && cryo_args_has(a, "overlap"))
        return cryo_fail(err, CRYO_E_INVALID, "--stride and --overlap: give one of them");
    if (cryo_args_has(a, "stride")) {
        CRYO_TRY(get3(a, "stride", s->stride, 1, err));
    } else {
        int64_t ov[3] = {s->size[0] / 4, s->size[1] / 4, s->size[2] / 4};
        if (cryo_args_has(a, "overlap"))
            CRYO_TRY(get3(a, "overlap", ov, 0, err));
        for (int d = 0; d < 3; d++)
            s->stride[d] = s->size[d] - ov[d];
    }
    for (int d = 0; d < 3; d++)
        if (s->mode == MODE_TILE && (s->stride[d] < 1 || s->stride[d] > s->size[d]))
            return cryo_fail(err, CRYO_E_INVALID, "--stride/--overlap: stride must be 1..size (%lld), got %lld",
                             (long long)s->size[d], (long long)s->stride[d]);
    s->pad = strcmp(cryo_args_string(a, "pad"), "zero") == 0 ? CRYO_PAD_ZERO : CRYO_PAD_REFLECT;
    s->seed = (uint64_t)cryo_args_int(a, "seed");
    if (cryo_args_given(a, "seed") && s->mode != MODE_RANDOM)
        return cryo_fail(err, CRYO_E_INVALID, "--seed: only with --random");
    s->density = cryo_args_has(a, "min-density");
    if ((cryo_args_given(a, "min-fraction") || cryo_args_given(a, "max-tries")) && !s->density)
        return cryo_fail(err, CRYO_E_INVALID, "--min-fraction/--max-tries: need --min-density");
    if (s->density && s->mode != MODE_RANDOM)
        return cryo_fail(err, CRYO_E_INVALID, "--min-density: only with --random");
    if (s->density) {
        s->min_density = cryo_args_double(a, "min-density");
        s->min_fraction = cryo_args_double(a, "min-fraction");
        if (!(s->min_fraction >= 0 && s->min_fraction <= 1))
            return cryo_fail(err, CRYO_E_INVALID, "--min-fraction: must be in [0, 1]");
        s->max_tries = cryo_args_int(a, "max-tries");
        if (s->max_tries < 1 || s->max_tries > 1000000)
            return cryo_fail(err, CRYO_E_INVALID, "--max-tries: must be 1..1000000");
    }
    const char *bl = cryo_args_string(a, "blend");
    if (cryo_args_given(a, "blend") && s->mode != MODE_MERGE)
        return cryo_fail(err, CRYO_E_INVALID, "--blend: only with --merge");
    if (s->mode == MODE_MERGE)
        CRYO_TRY(cryo_merger_create(&s->merger,
                                    strcmp(bl, "cosine") == 0 ? CRYO_BLEND_COSINE
                                    : strcmp(bl, "mean") == 0 ? CRYO_BLEND_MEAN
                                                              : CRYO_BLEND_GAUSSIAN,
                                    err));
    return CRYO_OK;
}

static int random_crops(struct patch_state *s, const struct cryo_volume *in, const struct cryo_emit *out,
                        struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    for (int d = 0; d < 3; d++)
        if (n[d] < s->size[d])
            return cryo_fail(err, CRYO_E_INVALID, "volume is %lldx%lldx%lld, smaller than the %lldx%lldx%lld crop "
                             "(use --tile, or a smaller --size)",
                             (long long)n[0], (long long)n[1], (long long)n[2], (long long)s->size[0],
                             (long long)s->size[1], (long long)s->size[2]);
    uint64_t rng = cryo_patch_rng_seed(s->seed, s->frame);
    struct cryo_volume crop, best;
    cryo_volume_init(&crop);
    cryo_volume_init(&best);
    int st = CRYO_OK;
    for (long k = 0; k < s->k && st == CRYO_OK; k++) {
        int64_t start[3];
        double best_f = -1;
        long tries = 0;
        for (;;) {
            cryo_patch_random_start(&rng, n, s->size, start);
            tries++;
            st = cryo_patch_crop(&crop, in, start, s->size, CRYO_PAD_ZERO, k, s->k, err);
            if (st < 0 || !s->density)
                break;
            double f = cryo_patch_fraction_above(&crop, crop.c - 1, s->min_density);
            if (f > best_f) {
                best_f = f;
                struct cryo_volume tmp = best;
                best = crop;
                crop = tmp;
            }
            if (f >= s->min_fraction || tries >= s->max_tries)
                break;
        }
        struct cryo_volume *emit = s->density ? &best : &crop;
        if (st == CRYO_OK && s->density) {
            st = cryo_meta_setf(&emit->meta, err, "patch.tries", "%ld", tries);
            if (st == CRYO_OK && best_f < s->min_fraction)
                st = cryo_meta_setf(&emit->meta, err, "patch.warning",
                                    "crop %ld: no position in %ld tries has %g of its voxels above %g (best %.3g); "
                                    "kept the best",
                                    k, tries, s->min_fraction, s->min_density, best_f);
        }
        if (st == CRYO_OK)
            st = cryo_meta_setf(&emit->meta, err, "patch.seed", "%llu", (unsigned long long)s->seed);
        if (st == CRYO_OK)
            st = cryo_emit_frame(out, emit, err);
    }
    cryo_volume_free(&crop);
    cryo_volume_free(&best);
    return st;
}

static int tiles(struct patch_state *s, const struct cryo_volume *in, const struct cryo_emit *out,
                 struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    struct cryo_tiling t;
    CRYO_TRY(cryo_tiling_plan(&t, n, s->size, s->stride, err));
    int64_t total = cryo_tiling_total(&t);
    struct cryo_volume tile;
    cryo_volume_init(&tile);
    int st = CRYO_OK;
    for (int64_t i = 0; i < total && st == CRYO_OK; i++) {
        int64_t start[3];
        cryo_tiling_start(&t, i, start);
        st = cryo_patch_crop(&tile, in, start, s->size, s->pad, i, total, err);
        if (st == CRYO_OK)
            st = cryo_meta_setf(&tile.meta, err, "patch.stride", "%lld,%lld,%lld", (long long)s->stride[0],
                                (long long)s->stride[1], (long long)s->stride[2]);
        if (st == CRYO_OK)
            st = cryo_emit_frame(out, &tile, err);
    }
    cryo_volume_free(&tile);
    return st;
}

static int patch_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                         struct cryo_error *err)
{
    struct patch_state *s = state;
    CRYO_TRY(cryo_volume_convert(in, CRYO_DTYPE_F32, err));
    const char *src = cryo_meta_get(&in->meta, "source");
    CRYO_TRY(cryo_volume_check_finite(in, src ? src : "input", err));
    int st;
    if (s->mode == MODE_RANDOM) {
        st = random_crops(s, in, out, err);
    } else if (s->mode == MODE_TILE) {
        st = tiles(s, in, out, err);
    } else {
        int complete = 0;
        st = cryo_merger_add(s->merger, in, src, &complete, err);
        if (st == CRYO_OK && complete) {
            struct cryo_volume merged;
            cryo_volume_init(&merged);
            st = cryo_merger_take(s->merger, &merged, err);
            if (st == CRYO_OK)
                st = cryo_emit_frame(out, &merged, err);
            cryo_volume_free(&merged);
        }
    }
    s->frame++;
    return st;
}

static int patch_finish(void *state, const struct cryo_emit *out, struct cryo_error *err)
{
    struct patch_state *s = state;
    (void)out;
    int64_t count = 0, got = s->merger ? cryo_merger_pending(s->merger, &count) : 0;
    if (got > 0)
        return cryo_fail(err, CRYO_E_INVALID, "input ended after %lld of the %lld tiles of a volume", (long long)got,
                         (long long)count);
    return CRYO_OK;
}

static void patch_destroy(void *state)
{
    struct patch_state *s = state;
    if (!s)
        return;
    cryo_merger_free(s->merger);
    free(s);
}

const struct cryo_stage cryo_stage_patch = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "patch",
    .summary = "Random training crops, overlapping inference tiles, and the blended merge of tiles.",
    .options = patch_options,
    .init = patch_init,
    .process = patch_process,
    .finish = patch_finish,
    .destroy = patch_destroy,
};
