/* infer_devices.c — compute contexts from a device list ("cuda:0,cuda:1", "cuda:all",
 * "cpu,cpu") for cryo_infer_run_multi (nn_infer.h). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryolvm/mem.h"
#include "cryolvm/nn_infer.h"
#include "nn/backend_impl.h"

#define ENTRY_MAX 32

/* "cpu", "cuda", "cuda:all", or "cuda:N" with N digits only; else 0. */
static int entry_ok(const char *e)
{
    if (!strcmp(e, "cpu") || !strcmp(e, "cuda") || !strcmp(e, "cuda:all"))
        return 1;
    if (strncmp(e, "cuda:", 5) != 0 || !e[5])
        return 0;
    for (const char *d = e + 5; *d; d++)
        if (*d < '0' || *d > '9')
            return 0;
    return strlen(e + 5) <= 4;
}

void cryo_infer_contexts_free(struct cryo_nn_ctx **ctxs, int n)
{
    for (int i = 0; ctxs && i < n; i++) {
        cryo_nn_ctx_free(ctxs[i]);
        ctxs[i] = NULL;
    }
}

/* Split `list` at commas into entries[] (empty ones kept); CRYO_E_INVALID for an entry that
 * is not a device word, a repeated GPU entry, or too many. */
static int parse(const char *list, char entries[][ENTRY_MAX], int cap, int *count, struct cryo_error *err)
{
    int k = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (k == cap)
            return cryo_fail(err, CRYO_E_INVALID, "device list '%s': more than %d entries", list, cap);
        if (len == 0)
            return cryo_fail(err, CRYO_E_INVALID, "device list '%s': entry %d is empty", list, k + 1);
        if (len >= ENTRY_MAX)
            return cryo_fail(err, CRYO_E_INVALID, "device list '%s': entry %d is not a device", list, k + 1);
        memcpy(entries[k], p, len);
        entries[k][len] = '\0';
        const char *e = entries[k];
        if (!strcmp(e, "auto"))
            return cryo_fail(err, CRYO_E_INVALID, "device list '%s': auto stands alone, not in a list", list);
        if (!entry_ok(e)) {
            if (!strncmp(e, "cuda:", 5))
                return cryo_fail(err, CRYO_E_INVALID, "device list '%s': '%s' is not a GPU index (0, 1, ...) or all",
                                 list, e + 5);
            return cryo_fail(err, CRYO_E_INVALID, "device list '%s': '%s' is not cpu, cuda, cuda:N or cuda:all",
                             list, e);
        }
        for (int j = 0; j < k; j++) {
            if (strcmp(e, "cpu") && !strcmp(entries[j], e))
                return cryo_fail(err, CRYO_E_INVALID, "device list '%s': %s is listed twice", list, e);
            int all_here = !strcmp(e, "cuda:all"), all_there = !strcmp(entries[j], "cuda:all");
            if ((all_here && strncmp(entries[j], "cuda", 4) == 0) || (all_there && strncmp(e, "cuda", 4) == 0))
                return cryo_fail(err, CRYO_E_INVALID, "device list '%s': cuda:all already takes every GPU", list);
        }
        k++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *count = k;
    return CRYO_OK;
}

/* Create the contexts of the parsed entries into ctxs[] (labels[] names each). */
static int create_all(struct cryo_nn_ctx **ctxs, char labels[][ENTRY_MAX], int cap, int *n,
                      char entries[][ENTRY_MAX], int k, int nthreads, struct cryo_error *err)
{
    int ncpu = 0, icpu = 0;
    for (int i = 0; i < k; i++)
        ncpu += !strcmp(entries[i], "cpu");
    int total = nthreads > 0 ? nthreads : omp_get_max_threads();
    for (int i = 0; i < k; i++) {
        const char *e = entries[i];
        if (!strcmp(e, "cpu")) {
            /* one CPU context keeps nthreads as given; several share the total */
            int t = ncpu == 1 ? nthreads : total / ncpu + (icpu < total % ncpu);
            if (ncpu > 1 && t < 1)
                t = 1;
            icpu++;
            if (*n == cap)
                return cryo_fail(err, CRYO_E_INVALID, "more than %d devices", cap);
            CRYO_TRY(cryo_nn_ctx_create(&ctxs[*n], CRYO_NN_DEVICE_CPU, t, err));
            snprintf(labels[(*n)++], ENTRY_MAX, "cpu");
            continue;
        }
        int all = !strcmp(e, "cuda:all");
        for (int g = 0; g == 0 || (all && g < ctxs[*n - 1]->device_count); g++) {
            if (*n == cap)
                return cryo_fail(err, CRYO_E_INVALID, "more than %d devices", cap);
            int rc = all ? cryo_nn_ctx_create_at(&ctxs[*n], CRYO_NN_DEVICE_CUDA, g, nthreads, err)
                         : cryo_nn_ctx_create_named(&ctxs[*n], e, nthreads, err);
            if (rc < 0)
                return cryo_error_prefix(err, e);
            snprintf(labels[(*n)++], ENTRY_MAX, "%s", all ? "cuda:all" : e);
        }
    }
    return CRYO_OK;
}

int cryo_infer_contexts_create(struct cryo_nn_ctx **ctxs, int cap, int *n, const char *list, int nthreads,
                               struct cryo_error *err)
{
    if (n)
        *n = 0;
    if (!ctxs || !n || cap < 1)
        return cryo_fail(err, CRYO_E_INVALID, "device list: no room for contexts");
    if (cap > CRYO_INFER_MAX_CONTEXTS)
        cap = CRYO_INFER_MAX_CONTEXTS;
    if (!list || !*list)
        return cryo_fail(err, CRYO_E_INVALID, "device list is empty");
    if (nthreads < 0)
        return cryo_fail(err, CRYO_E_INVALID, "device list: thread count %d is negative", nthreads);
    if (!strcmp(list, "auto")) {
        CRYO_TRY(cryo_nn_ctx_create_named(&ctxs[0], list, nthreads, err));
        *n = 1;
        return CRYO_OK;
    }
    char(*entries)[ENTRY_MAX] = cryo_alloc_array((size_t)cap, ENTRY_MAX, err);
    char(*labels)[ENTRY_MAX] = entries ? cryo_alloc_array((size_t)cap, ENTRY_MAX, err) : NULL;
    int k = 0, rc = labels ? parse(list, entries, cap, &k, err) : CRYO_E_NOMEM;
    if (rc == CRYO_OK)
        rc = create_all(ctxs, labels, cap, n, entries, k, nthreads, err);
    /* the same GPU twice, reached by two names (cuda and cuda:0) */
    for (int i = 0; rc == CRYO_OK && i < *n; i++)
        for (int j = 0; j < i && rc == CRYO_OK; j++)
            if (ctxs[i]->device == CRYO_NN_DEVICE_CUDA && ctxs[j]->device == CRYO_NN_DEVICE_CUDA &&
                ctxs[i]->device_index == ctxs[j]->device_index)
                rc = cryo_fail(err, CRYO_E_INVALID, "device list '%s': %s and %s are the same GPU (cuda:%d)", list,
                               labels[j], labels[i], ctxs[i]->device_index);
    if (rc < 0) {
        cryo_infer_contexts_free(ctxs, *n);
        *n = 0;
    }
    free(entries);
    free(labels);
    return rc;
}
