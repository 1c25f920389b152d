/* fuzz_pdb.c — the PDB reader on text in memory, with every filter switched by the first
 * byte (hydrogens, waters, ligands), so alternate-location resolution sees all atoms. */
#include "cryolvm/model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct cryo_model_opts o = {data[0] & 1, (data[0] >> 1) & 1, (data[0] >> 2) & 1};
    struct cryo_model m;
    cryo_model_init(&m);
    cryo_model_parse_pdb(&m, (const char *)data + 1, size - 1, "fuzz.pdb", &o, NULL);
    cryo_model_free(&m);
    return 0;
}
