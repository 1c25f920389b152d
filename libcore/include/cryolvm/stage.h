/* stage.h — processing steps as plugins (see cryolvm-stage(7)).
 *
 * A stage turns a stream of frames into a stream of frames: mrc-normalize, mrc-resample,
 * vol-patch, vol-degrade, lvm-apply are thin tools around one stage each. A stage exports one
 * const struct cryo_stage: API version, name, its options as a table, and init / process /
 * finish / destroy. Built-in stages register in a static table (stages/); external ones are
 * shared objects loaded with dlopen that export `cryo_stage_entry` and are refused when their
 * api_version differs from CRYO_STAGE_API_VERSION.
 *
 * Options are data: the same table drives command-line parsing, --help, the man page check
 * and the history line each stage appends to the frame metadata.
 */
#ifndef CRYOLVM_STAGE_H
#define CRYOLVM_STAGE_H

#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRYO_STAGE_API_VERSION 1

enum cryo_opt_type {
    CRYO_OPT_END = 0,  /* terminates an option table */
    CRYO_OPT_FLAG,     /* no argument */
    CRYO_OPT_INT,      /* integer, whole string must parse */
    CRYO_OPT_DOUBLE,   /* finite real number */
    CRYO_OPT_STRING,
    CRYO_OPT_CHOICE,   /* one of `choices`, "a|b|c" */
    CRYO_OPT_DOUBLES,  /* 1 to 3 comma-separated finite numbers, e.g. "1.0" or "1,1.2,1" */
    CRYO_OPT_INTS      /* 1 to 3 comma-separated integers, e.g. "48" or "64,64,48" */
};

struct cryo_option {
    const char *name;          /* long name without dashes: "quantiles" -> --quantiles */
    char short_name;           /* 0 if none */
    enum cryo_opt_type type;
    const char *metavar;       /* "LO,HI" in --help; NULL for flags */
    const char *default_value; /* text form, NULL = unset by default */
    const char *help;          /* one sentence */
    const char *choices;       /* CRYO_OPT_CHOICE only */
};

/* Parsed option values, validated against the table when set. */
struct cryo_args;
int cryo_args_create(struct cryo_args **a, const struct cryo_option *table, struct cryo_error *err);
void cryo_args_free(struct cryo_args *a);
/* Set from text (the command line); validates type, range of ints, choices, trailing junk.
 * CRYO_E_INVALID with "--name: ..." on bad values or unknown names. */
int cryo_args_set(struct cryo_args *a, const char *name, const char *text, struct cryo_error *err);
/* 1 if given on the command line or defaulted, 0 if unset. Getters on a name not in the
 * table or of another type are programming errors (assert). */
int cryo_args_has(const struct cryo_args *a, const char *name);
int cryo_args_given(const struct cryo_args *a, const char *name); /* explicitly set, not default */
int cryo_args_flag(const struct cryo_args *a, const char *name);
long cryo_args_int(const struct cryo_args *a, const char *name);
double cryo_args_double(const struct cryo_args *a, const char *name);
const char *cryo_args_string(const struct cryo_args *a, const char *name); /* STRING or CHOICE */
/* DOUBLES/INTS: number of values given (1..3) and the values; out has room for 3. */
int cryo_args_doubles(const struct cryo_args *a, const char *name, double out[3]);
int cryo_args_ints(const struct cryo_args *a, const char *name, long out[3]);
/* "--quantiles 0.01,0.99 --seed 7" of the explicitly given options, for history lines. */
const char *cryo_args_summary(const struct cryo_args *a);
const struct cryo_option *cryo_args_table(const struct cryo_args *a);

/* Where a stage sends frames. The sink writes (or forwards) v before returning and does
 * not keep it; the stage still owns v afterwards. */
struct cryo_emit {
    int (*fn)(void *ctx, const struct cryo_volume *v, struct cryo_error *err);
    void *ctx;
};
static inline int cryo_emit_frame(const struct cryo_emit *e, const struct cryo_volume *v,
                                  struct cryo_error *err)
{
    return e->fn(e->ctx, v, err);
}

struct cryo_stage {
    int api_version;           /* CRYO_STAGE_API_VERSION */
    const char *name;          /* "normalize"; the tool name may differ ("mrc-normalize") */
    const char *summary;       /* one line for --help and listings */
    const struct cryo_option *options;
    /* Validate options and build state. `source` names the input for messages. */
    int (*init)(void **state, const struct cryo_args *args, struct cryo_error *err);
    /* One input frame, owned by the caller; the stage may modify it in place and emit it,
     * emit other frames, or keep what it needs (copy) and emit nothing yet. */
    int (*process)(void *state, struct cryo_volume *in, const struct cryo_emit *out,
                   struct cryo_error *err);
    /* After the last frame (may emit, e.g. a merged volume). May be NULL. */
    int (*finish)(void *state, const struct cryo_emit *out, struct cryo_error *err);
    void (*destroy)(void *state); /* may be NULL; must accept NULL state */
};

/* Built-in stages: NULL-terminated table, and lookup by name. */
const struct cryo_stage *const *cryo_stage_builtins(void);
const struct cryo_stage *cryo_stage_find(const char *name);
/* dlopen a stage plugin; refused (CRYO_E_UNSUPPORTED) on API version mismatch.
 * The handle stays open for the life of the process. */
int cryo_stage_load(const struct cryo_stage **stage, const char *path, struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
