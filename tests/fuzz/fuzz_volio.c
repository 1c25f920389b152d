/* fuzz_volio.c — any volume from a file, as the tools open it (cryo_source_open/next):
 * format sniffing, gzip (one or several members, trailing bytes), then MRC read from a FILE,
 * a TIFF, or a stream, every frame to the end. Seeds hold plain and gzipped MRC files. */
#include "cryolvm/volio.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmpfile(data, size);
    if (!path)
        return 0;
    struct cryo_source *s = NULL;
    struct cryo_error err = {0};
    if (cryo_source_open(&s, path, &err) == 0) {
        struct cryo_volume v;
        cryo_volume_init(&v);
        for (int i = 0; i < 64 && cryo_source_next(s, &v, &err) == 1; i++) {
            struct cryo_stats st;
            cryo_volume_stats(&v, &st);
        }
        cryo_volume_free(&v);
        cryo_source_free(s);
    }
    return 0;
}
