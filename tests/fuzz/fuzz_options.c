/* fuzz_options.c — the option parser every tool and stage uses (cryo_args_set) on each
 * built-in stage's table. Input: first byte picks the stage, then lines "name=value". */
#include "cryolvm/stage.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const struct cryo_stage *const *all = cryo_stage_builtins();
    size_t ns = 0;
    while (all[ns])
        ns++;
    if (ns == 0)
        return 0;
    const struct cryo_stage *stage = all[data[0] % ns];
    struct cryo_args *a = NULL;
    if (cryo_args_create(&a, stage->options, NULL) < 0)
        return 0;
    char *text = malloc(size);
    if (!text) {
        cryo_args_free(a);
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        cryo_args_set(a, line, eq + 1, NULL);
    }
    /* Read back every option through its typed getter. */
    for (const struct cryo_option *o = cryo_args_table(a); o && o->type != CRYO_OPT_END; o++) {
        double d3[3];
        long l3[3];
        if (!cryo_args_has(a, o->name))
            continue;
        switch (o->type) {
        case CRYO_OPT_FLAG: (void)cryo_args_flag(a, o->name); break;
        case CRYO_OPT_INT: (void)cryo_args_int(a, o->name); break;
        case CRYO_OPT_DOUBLE: (void)cryo_args_double(a, o->name); break;
        case CRYO_OPT_STRING:
        case CRYO_OPT_CHOICE: (void)cryo_args_string(a, o->name); break;
        case CRYO_OPT_DOUBLES: (void)cryo_args_doubles(a, o->name, d3); break;
        case CRYO_OPT_INTS: (void)cryo_args_ints(a, o->name, l3); break;
        default: break;
        }
    }
    (void)cryo_args_summary(a);
    free(text);
    cryo_args_free(a);
    return 0;
}
