/* meta.c — ordered key=value metadata carried with every frame (see volume.h). */
#include "cryolvm/mem.h"
#include "cryolvm/volume.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cryo_meta_init(struct cryo_meta *m) { memset(m, 0, sizeof *m); }

void cryo_meta_free(struct cryo_meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    cryo_meta_init(m);
}

static long meta_find(const struct cryo_meta *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return (long)i;
    return -1;
}

const char *cryo_meta_get(const struct cryo_meta *m, const char *key)
{
    long i = meta_find(m, key);
    return i < 0 ? NULL : m->vals[i];
}

int cryo_meta_set(struct cryo_meta *m, const char *key, const char *val, struct cryo_error *err)
{
    char *v = cryo_strdup(val, err);
    if (!v)
        return CRYO_E_NOMEM;
    long i = meta_find(m, key);
    if (i >= 0) {
        free(m->vals[i]);
        m->vals[i] = v;
        return CRYO_OK;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        char **k = realloc(m->keys, cap * sizeof *k);
        if (k)
            m->keys = k;
        char **vv = k ? realloc(m->vals, cap * sizeof *vv) : NULL;
        if (!vv) {
            free(v);
            return cryo_fail(err, CRYO_E_NOMEM, "out of memory growing metadata");
        }
        m->vals = vv;
        m->cap = cap;
    }
    char *k = cryo_strdup(key, err);
    if (!k) {
        free(v);
        return CRYO_E_NOMEM;
    }
    m->keys[m->n] = k;
    m->vals[m->n] = v;
    m->n++;
    return CRYO_OK;
}

int cryo_meta_setf(struct cryo_meta *m, struct cryo_error *err, const char *key, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return cryo_meta_set(m, key, buf, err);
}

int cryo_meta_copy(struct cryo_meta *dst, const struct cryo_meta *src, struct cryo_error *err)
{
    struct cryo_meta tmp;
    cryo_meta_init(&tmp);
    for (size_t i = 0; i < src->n; i++)
        if (cryo_meta_set(&tmp, src->keys[i], src->vals[i], err) < 0) {
            cryo_meta_free(&tmp);
            return CRYO_E_NOMEM;
        }
    cryo_meta_free(dst);
    *dst = tmp;
    return CRYO_OK;
}

static void meta_remove_at(struct cryo_meta *m, size_t i)
{
    free(m->keys[i]);
    free(m->vals[i]);
    memmove(m->keys + i, m->keys + i + 1, (m->n - i - 1) * sizeof *m->keys);
    memmove(m->vals + i, m->vals + i + 1, (m->n - i - 1) * sizeof *m->vals);
    m->n--;
}

void cryo_meta_remove(struct cryo_meta *m, const char *key)
{
    long i = meta_find(m, key);
    if (i >= 0)
        meta_remove_at(m, (size_t)i);
}

void cryo_meta_remove_prefix(struct cryo_meta *m, const char *prefix)
{
    size_t len = strlen(prefix);
    for (size_t i = m->n; i-- > 0;)
        if (strncmp(m->keys[i], prefix, len) == 0)
            meta_remove_at(m, i);
}

size_t cryo_meta_history_count(const struct cryo_meta *m)
{
    size_t n = 0;
    char key[32];
    for (;;) {
        snprintf(key, sizeof key, "history.%zu", n);
        if (!cryo_meta_get(m, key))
            return n;
        n++;
    }
}

const char *cryo_meta_history(const struct cryo_meta *m, size_t i)
{
    char key[32];
    snprintf(key, sizeof key, "history.%zu", i);
    return cryo_meta_get(m, key);
}

int cryo_meta_add_history(struct cryo_meta *m, const char *line, struct cryo_error *err)
{
    char key[32];
    snprintf(key, sizeof key, "history.%zu", cryo_meta_history_count(m));
    return cryo_meta_set(m, key, line, err);
}
