/* loader_prefetch.c — one background thread that makes crops ahead of the caller (loader.h).
 *
 * The queue holds the ready crops head_k, head_k + 1, ..., head_k + len - 1 in a ring of
 * `cap` slots; the thread always makes crop head_k + len next, outside the lock, and keeps it
 * only if nothing moved the queue meanwhile (a caller taking crops keeps head_k + len
 * unchanged; a restart at another k bumps `gen`). Since crop k is a pure function of k, a
 * crop from the queue is the one cryo_loader_get would make. An error stops the thread at
 * that crop until the caller asks for it, gets the error, and so restarts it there. */
#include "loader_priv.h"

#include <stdlib.h>
#include <string.h>

#include "cryolvm/mem.h"

struct loader_prefetch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t ready;     /* a crop (or an error) arrived */
    pthread_cond_t space;     /* a slot freed, a restart, or stop */
    int cap;
    size_t per;               /* floats per crop */
    float *slots;             /* cap × per */
    float *scratch;           /* the crop the thread is making */
    uint64_t head_k;          /* crop number in slot `head` */
    int head, len;
    uint64_t gen;
    int failed;               /* the thread met an error at crop head_k + len */
    struct cryo_error fail;
    int stop;
};

static void *prefetch_main(void *arg)
{
    struct cryo_loader *l = arg;
    struct loader_prefetch *p = l->pf;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (p->failed || p->len == p->cap) {
            pthread_cond_wait(&p->space, &p->mu);
            continue;
        }
        uint64_t target = p->head_k + (uint64_t)p->len, gen = p->gen;
        pthread_mutex_unlock(&p->mu);
        struct cryo_error e;
        cryo_error_clear(&e);
        double t0 = loader_now();
        int st = loader_make_crop(l, target, p->scratch, &e);
        double dt = loader_now() - t0;
        pthread_mutex_lock(&l->stats_mu);
        l->stats.work_s += dt;
        pthread_mutex_unlock(&l->stats_mu);
        pthread_mutex_lock(&p->mu);
        if (p->gen != gen || p->head_k + (uint64_t)p->len != target)
            continue; /* the caller restarted elsewhere: drop it */
        if (st != CRYO_OK) {
            p->failed = 1;
            p->fail = e;
        } else {
            memcpy(p->slots + (size_t)((p->head + p->len) % p->cap) * p->per, p->scratch, p->per * sizeof(float));
            p->len++;
        }
        pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int loader_prefetch_start(struct cryo_loader *l, struct cryo_error *err)
{
    struct loader_prefetch *p = calloc(1, sizeof *p);
    if (!p)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory");
    p->cap = l->o.prefetch;
    p->per = (size_t)l->o.size * l->o.size * l->o.size * (size_t)l->o.channels;
    p->slots = cryo_alloc_array((size_t)p->cap, p->per * sizeof(float), err);
    p->scratch = cryo_alloc_array(p->per, sizeof(float), err);
    if (!p->slots || !p->scratch) {
        free(p->slots);
        free(p->scratch);
        free(p);
        return CRYO_E_NOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->space, NULL);
    l->pf = p;
    int r = pthread_create(&p->thread, NULL, prefetch_main, l);
    if (r != 0) {
        l->pf = NULL;
        pthread_cond_destroy(&p->ready);
        pthread_cond_destroy(&p->space);
        pthread_mutex_destroy(&p->mu);
        free(p->slots);
        free(p->scratch);
        free(p);
        return cryo_fail(err, CRYO_E_NOMEM, "cannot start the prefetch thread: %s", strerror(r));
    }
    return CRYO_OK;
}

void loader_prefetch_stop(struct cryo_loader *l)
{
    struct loader_prefetch *p = l->pf;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->space);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->scratch);
    free(p);
    l->pf = NULL;
}

int loader_prefetch_batch(struct cryo_loader *l, uint64_t k, int n, float *out, struct cryo_error *err)
{
    struct loader_prefetch *p = l->pf;
    double t0 = loader_now();
    int st = CRYO_OK, done = 0;
    pthread_mutex_lock(&p->mu);
    for (; done < n; done++) {
        uint64_t want = k + (uint64_t)done;
        if (p->head_k != want) { /* not where the thread is heading: restart there */
            p->head_k = want;
            p->head = p->len = 0;
            p->failed = 0;
            p->gen++;
            pthread_cond_broadcast(&p->space);
        }
        while (p->len == 0 && !p->failed)
            pthread_cond_wait(&p->ready, &p->mu);
        if (p->len == 0) { /* the thread failed at this very crop */
            st = p->fail.status < 0 ? p->fail.status : CRYO_E_IO;
            if (err)
                *err = p->fail;
            p->failed = 0; /* the next call retries it */
            p->gen++;
            pthread_cond_broadcast(&p->space);
            break;
        }
        memcpy(out + (size_t)done * p->per, p->slots + (size_t)p->head * p->per, p->per * sizeof(float));
        p->head = (p->head + 1) % p->cap;
        p->head_k++;
        p->len--;
        pthread_cond_broadcast(&p->space);
    }
    pthread_mutex_unlock(&p->mu);
    double dt = loader_now() - t0;
    pthread_mutex_lock(&l->stats_mu);
    l->stats.crops += (uint64_t)done;
    l->stats.wait_s += dt;
    pthread_mutex_unlock(&l->stats_mu);
    return st;
}
