/* fuzz_tiff.c — the TIFF reader (libtiff underneath) on a file: page chains, sample types,
 * sizes, strips and tiles, resolution tags and ImageJ descriptions. */
#include "cryolvm/tiffio.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmpfile(data, size);
    if (!path)
        return 0;
    struct cryo_volume v;
    struct cryo_error err = {0};
    cryo_volume_init(&v);
    if (cryo_tiff_read(&v, path, "fuzz.tif", &err) == 0) {
        struct cryo_stats s;
        cryo_volume_stats(&v, &s);
    }
    cryo_volume_free(&v);
    return 0;
}
