/* fuzz_config.c — the SCUNet config parser. Besides memory errors it checks the parser's
 * contract: what parses formats to text that parses back to an equal config, and formatting
 * that config again gives the same text (so configs compare equal byte-wise and by value). */
#include "cryolvm/nn_model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[1024];
    if (size >= sizeof text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cryo_scunet_config c, d;
    cryo_scunet_config_default(&c);
    if (cryo_scunet_config_parse(&c, text, NULL) < 0)
        return 0;
    char a[512], b[512];
    cryo_scunet_config_format(&c, a, sizeof a);
    cryo_scunet_config_default(&d);
    if (cryo_scunet_config_parse(&d, a, NULL) < 0 || !cryo_scunet_config_equal(&c, &d) ||
        memcmp(&c, &d, sizeof c) != 0)
        abort();
    cryo_scunet_config_format(&d, b, sizeof b);
    if (strcmp(a, b) != 0)
        abort();
    return 0;
}
