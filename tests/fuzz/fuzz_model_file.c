/* fuzz_model_file.c — a model file as the tools read it (cryo_model_read): plain or gzip,
 * PDB or mmCIF sniffed from the content. */
#include "cryolvm/model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmpfile(data, size);
    if (!path)
        return 0;
    struct cryo_model m;
    cryo_model_init(&m);
    cryo_model_read(&m, path, NULL, NULL);
    cryo_model_free(&m);
    return 0;
}
