/* stage.c — option tables parsed into validated values, and the stage registry/loader.
 * Values are checked when set (whole string must parse, numbers finite, choices known),
 * so getters cannot fail; a getter on a wrong name or type is a programming error. */
#include "cryolvm/mem.h"
#include "cryolvm/stage.h"

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arg_value {
    int set, given;
    char *text;      /* owned copy of the text form */
    long ival[3];
    double dval[3];
    int count;       /* values in ival/dval */
};

struct cryo_args {
    const struct cryo_option *table;
    size_t n;
    struct arg_value *vals;
    char summary[2048];
};

static long find_option(const struct cryo_args *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->table[i].name, name) == 0)
            return (long)i;
    return -1;
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Split "a,b,c" into up to 3 fields and parse each. */
static int parse_list(const char *text, int is_int, struct arg_value *v)
{
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return -1;
    strcpy(buf, text);
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (count == 3)
            return -1;
        if (is_int ? parse_long(tok, &v->ival[count]) : parse_double(tok, &v->dval[count]))
            return -1;
        count++;
    }
    /* "1,,2" or a trailing comma leaves empty fields that strtok skips: refuse them. */
    size_t commas = 0;
    for (const char *p = text; *p; p++)
        commas += *p == ',';
    if (count == 0 || commas != (size_t)count - 1)
        return -1;
    v->count = count;
    return 0;
}

static int choice_ok(const char *choices, const char *text)
{
    size_t len = strlen(text);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, text, n) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

static int set_value(struct cryo_args *a, size_t i, const char *text, int given, struct cryo_error *err)
{
    const struct cryo_option *o = &a->table[i];
    struct arg_value v = {0};
    int bad = 0;
    switch (o->type) {
    case CRYO_OPT_FLAG: v.ival[0] = 1; v.count = 1; break;
    case CRYO_OPT_INT: bad = parse_long(text, &v.ival[0]); v.count = 1; break;
    case CRYO_OPT_DOUBLE: bad = parse_double(text, &v.dval[0]); v.count = 1; break;
    case CRYO_OPT_STRING: break;
    case CRYO_OPT_CHOICE:
        if (!choice_ok(o->choices, text))
            return cryo_fail(err, CRYO_E_INVALID, "--%s: '%s' is not one of %s", o->name, text, o->choices);
        break;
    case CRYO_OPT_DOUBLES: bad = parse_list(text, 0, &v); break;
    case CRYO_OPT_INTS: bad = parse_list(text, 1, &v); break;
    default: return cryo_fail(err, CRYO_E_INVALID, "--%s: bad option table entry", o->name);
    }
    if (bad) {
        const char *what = o->type == CRYO_OPT_INT ? "an integer"
                         : o->type == CRYO_OPT_DOUBLE ? "a finite number"
                         : o->type == CRYO_OPT_INTS ? "1 to 3 comma-separated integers"
                                                    : "1 to 3 comma-separated finite numbers";
        return cryo_fail(err, CRYO_E_INVALID, "--%s: '%s' is not %s", o->name, text, what);
    }
    v.text = cryo_strdup(o->type == CRYO_OPT_FLAG ? "" : text, err);
    if (!v.text)
        return CRYO_E_NOMEM;
    v.set = 1;
    v.given = given;
    free(a->vals[i].text);
    a->vals[i] = v;
    return CRYO_OK;
}

int cryo_args_create(struct cryo_args **out, const struct cryo_option *table, struct cryo_error *err)
{
    *out = NULL;
    struct cryo_args *a = calloc(1, sizeof *a);
    if (!a)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    a->table = table;
    while (table && table[a->n].type != CRYO_OPT_END)
        a->n++;
    a->vals = cryo_alloc_array(a->n ? a->n : 1, sizeof *a->vals, err);
    if (!a->vals) {
        free(a);
        return CRYO_E_NOMEM;
    }
    for (size_t i = 0; i < a->n; i++)
        if (table[i].default_value && table[i].type != CRYO_OPT_FLAG) {
            int s = set_value(a, i, table[i].default_value, 0, err);
            if (s < 0) {
                cryo_error_prefix(err, "default value");
                cryo_args_free(a);
                return s;
            }
        }
    *out = a;
    return CRYO_OK;
}

void cryo_args_free(struct cryo_args *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->vals[i].text);
    free(a->vals);
    free(a);
}

int cryo_args_set(struct cryo_args *a, const char *name, const char *text, struct cryo_error *err)
{
    long i = find_option(a, name);
    if (i < 0)
        return cryo_fail(err, CRYO_E_INVALID, "unknown option --%s", name);
    if (!text && a->table[i].type != CRYO_OPT_FLAG)
        return cryo_fail(err, CRYO_E_INVALID, "--%s needs a value", name);
    return set_value(a, (size_t)i, text ? text : "", 1, err);
}

static const struct arg_value *get(const struct cryo_args *a, const char *name, enum cryo_opt_type t1,
                                   enum cryo_opt_type t2)
{
    long i = find_option(a, name);
    assert(i >= 0 && "option name not in the table");
    assert((a->table[i].type == t1 || a->table[i].type == t2) && "option of another type");
    return &a->vals[i];
}

int cryo_args_has(const struct cryo_args *a, const char *name)
{
    long i = find_option(a, name);
    assert(i >= 0 && "option name not in the table");
    return a->vals[i].set;
}

int cryo_args_given(const struct cryo_args *a, const char *name)
{
    long i = find_option(a, name);
    assert(i >= 0 && "option name not in the table");
    return a->vals[i].given;
}

int cryo_args_flag(const struct cryo_args *a, const char *name)
{
    return get(a, name, CRYO_OPT_FLAG, CRYO_OPT_FLAG)->set;
}

long cryo_args_int(const struct cryo_args *a, const char *name)
{
    return get(a, name, CRYO_OPT_INT, CRYO_OPT_INT)->ival[0];
}

double cryo_args_double(const struct cryo_args *a, const char *name)
{
    return get(a, name, CRYO_OPT_DOUBLE, CRYO_OPT_DOUBLE)->dval[0];
}

const char *cryo_args_string(const struct cryo_args *a, const char *name)
{
    const struct arg_value *v = get(a, name, CRYO_OPT_STRING, CRYO_OPT_CHOICE);
    return v->set ? v->text : NULL;
}

int cryo_args_doubles(const struct cryo_args *a, const char *name, double out[3])
{
    const struct arg_value *v = get(a, name, CRYO_OPT_DOUBLES, CRYO_OPT_DOUBLES);
    for (int k = 0; k < v->count; k++)
        out[k] = v->dval[k];
    return v->set ? v->count : 0;
}

int cryo_args_ints(const struct cryo_args *a, const char *name, long out[3])
{
    const struct arg_value *v = get(a, name, CRYO_OPT_INTS, CRYO_OPT_INTS);
    for (int k = 0; k < v->count; k++)
        out[k] = v->ival[k];
    return v->set ? v->count : 0;
}

const char *cryo_args_summary(const struct cryo_args *ca)
{
    struct cryo_args *a = (struct cryo_args *)ca; /* the summary is a cache */
    size_t used = 0;
    a->summary[0] = '\0';
    for (size_t i = 0; i < a->n; i++) {
        if (!a->vals[i].given)
            continue;
        int k = a->table[i].type == CRYO_OPT_FLAG
                    ? snprintf(a->summary + used, sizeof a->summary - used, "%s--%s", used ? " " : "", a->table[i].name)
                    : snprintf(a->summary + used, sizeof a->summary - used, "%s--%s %s", used ? " " : "",
                               a->table[i].name, a->vals[i].text);
        if (k < 0 || (size_t)k >= sizeof a->summary - used)
            break;
        used += (size_t)k;
    }
    return a->summary;
}

const struct cryo_option *cryo_args_table(const struct cryo_args *a) { return a->table; }

const struct cryo_stage *cryo_stage_find(const char *name)
{
    for (const struct cryo_stage *const *s = cryo_stage_builtins(); *s; s++)
        if (strcmp((*s)->name, name) == 0)
            return *s;
    return NULL;
}

int cryo_stage_load(const struct cryo_stage **stage, const char *path, struct cryo_error *err)
{
    *stage = NULL;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return cryo_fail(err, CRYO_E_IO, "%s: cannot load stage plugin: %s", path, dlerror());
    const struct cryo_stage *s = dlsym(h, "cryo_stage_entry");
    if (!s) {
        dlclose(h);
        return cryo_fail(err, CRYO_E_FORMAT, "%s: not a cryolvm stage (no symbol cryo_stage_entry)", path);
    }
    if (s->api_version != CRYO_STAGE_API_VERSION) {
        int v = s->api_version;
        dlclose(h);
        return cryo_fail(err, CRYO_E_UNSUPPORTED,
                         "%s: stage API version %d, this cryolvm needs version %d (rebuild the plugin)",
                         path, v, CRYO_STAGE_API_VERSION);
    }
    if (!s->name || !s->process || !s->init) {
        dlclose(h);
        return cryo_fail(err, CRYO_E_FORMAT, "%s: stage descriptor lacks name, init or process", path);
    }
    *stage = s; /* the handle stays open: the descriptor lives in it */
    return CRYO_OK;
}
