/* fuzz_mrc_mem.c — the MRC parser on a file image in memory (cryo_mrc_decode): headers,
 * modes, axis orders, byte orders, extended headers, labels. */
#include "cryolvm/mrc.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cryo_volume v;
    struct cryo_error err = {0};
    cryo_volume_init(&v);
    if (cryo_mrc_decode(&v, data, size, "fuzz.mrc", &err) == 0) {
        struct cryo_stats s;
        cryo_volume_stats(&v, &s); /* touch every voxel: the frame must be as large as claimed */
    }
    cryo_volume_free(&v);
    return 0;
}
