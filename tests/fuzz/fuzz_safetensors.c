/* fuzz_safetensors.c — the safetensors parser (header length, JSON, dtypes, shapes,
 * offsets, metadata), then, for a file that names a SCUNet config, the path lvm-model takes:
 * config from the metadata, tensors checked against the config's table, and only then a
 * small network built and loaded (configs over 1 M parameters are not built here). */
#include "cryolvm/nn_backend.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cryo_nn_ctx *ctx;
    struct cryo_safetensors *st = NULL;
    struct cryo_error err = {0};
    if (cryo_safetensors_parse(&st, data, size, "fuzz.safetensors", &err) < 0)
        return 0;
    struct cryo_scunet_config c;
    size_t count = 0;
    if (cryo_scunet_config_from_file(st, &c, &err) == 0 && cryo_scunet_weights_check(st, &c, &err) == 0 &&
        cryo_scunet_param_count(&c, &count, &err) == 0 && count <= ((size_t)1 << 20)) {
        if (!ctx && cryo_nn_ctx_create(&ctx, CRYO_NN_DEVICE_CPU, 1, &err) < 0)
            abort();
        struct cryo_scunet *m = NULL;
        int q = 1 << c.levels;
        if (cryo_scunet_create(&m, &c, ctx, 1, q, q, q, 0, &err) == 0)
            cryo_scunet_load(m, st, &err);
        cryo_scunet_free(m);
    }
    cryo_safetensors_free(st);
    return 0;
}
