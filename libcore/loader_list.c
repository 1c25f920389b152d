/* loader_list.c — list files of corpus paths (cryo_loader_read_list, loader.h). */
#include "cryolvm/loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryolvm/mem.h"

void cryo_loader_free_list(char **paths, size_t n)
{
    if (!paths)
        return;
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

/* "DIR/" of the list file ("" when it has no folder part). */
static char *list_folder(const char *path, struct cryo_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) + 1 : 0;
    char *d = malloc(len + 1);
    if (!d) {
        cryo_fail(err, CRYO_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(d, path, len);
    d[len] = '\0';
    return d;
}

int cryo_loader_read_list(const char *path, char ***paths, size_t *n, struct cryo_error *err)
{
    *paths = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return cryo_fail(err, CRYO_E_IO, "%s: %s", path, strerror(errno));
    char *folder = list_folder(path, err);
    char **out = NULL, *line = NULL;
    size_t count = 0, cap = 0, linecap = 0;
    int st = folder ? CRYO_OK : CRYO_E_NOMEM;
    ssize_t len;
    while (st == CRYO_OK && (len = getline(&line, &linecap, f)) >= 0) {
        if (memchr(line, '\0', (size_t)len)) {
            st = cryo_fail(err, CRYO_E_FORMAT, "%s: line %zu: a NUL byte (not a text list of paths)", path, count + 1);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = line, *e = line + strlen(line);
        while (*s == ' ' || *s == '\t')
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
            e--;
        if (e == s)
            continue;
        *e = '\0';
        if (count == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **p = realloc(out, nc * sizeof *p);
            if (!p) {
                st = cryo_fail(err, CRYO_E_NOMEM, "out of memory");
                break;
            }
            out = p, cap = nc;
        }
        size_t plen = (*s == '/' ? 0 : strlen(folder)) + strlen(s) + 1;
        if (!(out[count] = malloc(plen))) {
            st = cryo_fail(err, CRYO_E_NOMEM, "out of memory");
            break;
        }
        snprintf(out[count], plen, "%s%s", *s == '/' ? "" : folder, s);
        count++;
    }
    if (st == CRYO_OK && ferror(f))
        st = cryo_fail(err, CRYO_E_IO, "%s: read error: %s", path, strerror(errno));
    if (st == CRYO_OK && count == 0)
        st = cryo_fail(err, CRYO_E_INVALID, "%s: the list names no path", path);
    fclose(f);
    free(line);
    free(folder);
    if (st != CRYO_OK) {
        cryo_loader_free_list(out, count);
        return st;
    }
    *paths = out;
    *n = count;
    return CRYO_OK;
}
