/* stage-scale.c — an example stage plugin: multiply every voxel by a factor.
 *
 * Build and run (cryolvm-stage(7)):
 *   cc -shared -fPIC -I/usr/local/include -o scale.so stage-scale.c
 *   vol-stage ./scale.so --factor 2 in.mrc -o out.mrc
 */
#include <cryolvm/stage.h>
#include <stdlib.h>

struct scale_state { double factor; };

static const struct cryo_option scale_options[] = {
    {"factor", 0, CRYO_OPT_DOUBLE, "X", "1.0", "multiply every voxel by X", NULL},
    {0},
};

static int scale_init(void **state, const struct cryo_args *args, struct cryo_error *err)
{
    struct scale_state *s = malloc(sizeof *s);
    if (!s)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    s->factor = cryo_args_double(args, "factor");
    *state = s;
    return CRYO_OK;
}

static int scale_process(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                         struct cryo_error *err)
{
    const struct scale_state *s = state;
    CRYO_TRY(cryo_volume_convert(in, CRYO_DTYPE_F32, err));
    float *d = in->data;
    size_t n = cryo_volume_count(in);
    for (size_t i = 0; i < n; i++)
        d[i] = (float)(d[i] * s->factor);
    return cryo_emit_frame(out, in, err);
}

static void scale_destroy(void *state) { free(state); }

const struct cryo_stage cryo_stage_entry = {
    .api_version = CRYO_STAGE_API_VERSION,
    .name = "scale",
    .summary = "Multiply every voxel by a factor (example plugin).",
    .options = scale_options,
    .init = scale_init,
    .process = scale_process,
    .destroy = scale_destroy,
};
