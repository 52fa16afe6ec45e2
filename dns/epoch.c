/* dns/epoch.c - quiescent-state-based reclamation for data the workers read without locks.
 *
 * Why it is safe. The writer stores the new pointer, then bumps the epoch to E and tags the
 * old object with E. A worker records "seen E" only in its prepare callback, where it holds
 * no reference; having read E (acquire, paired with the bump's release, which comes after
 * the pointer store), every load it makes afterwards sees the new pointer. So once every
 * registered worker has seen E, nobody holds the old object.
 *
 * A worker registers before its first read, and under the lock that retiring and collecting
 * take: either the collector looked before, and then the worker's reads come after the
 * pointer store, or it looks after, and then it counts the worker with the epoch it
 * registered at. Without the lock the registration is a store followed by the worker's
 * loads, which a weakly ordered CPU (arm64) may let those loads pass, so the collector could
 * see no reader while the worker already holds the old pointer. */
#include "dns/epoch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_MS 20 /* how often retired objects are looked at while there are any */

struct reader {
    struct dns_epoch *epoch;
    atomic_bool active;
    atomic_uint seen;
    uv_prepare_t prepare;
    uv_async_t wake; /* makes an idle worker run an iteration, hence its prepare */
};

struct retired {
    void *ptr;
    void (*free_fn)(void *ptr);
    unsigned epoch;
};

struct dns_epoch {
    atomic_uint now;
    struct reader *readers;
    unsigned n_readers;
    uv_timer_t timer; /* on the control loop: looks at the retired objects */
    uv_async_t kick;  /* a retirement from another thread starts the timer */
    uv_mutex_t lock;  /* guards the retired list and registrations: any thread may retire */
    struct retired *retired;
    size_t n_retired, cap_retired;
};

static void on_prepare(uv_prepare_t *handle)
{
    struct reader *r = handle->data;
    unsigned now = atomic_load_explicit(&r->epoch->now, memory_order_acquire);
    atomic_store_explicit(&r->seen, now, memory_order_release);
}

static void on_wake(uv_async_t *handle)
{
    (void)handle; /* the loop iteration it causes runs on_prepare */
}

/* Epochs are compared by unsigned difference: they may wrap after four billion
 * retirements. */

/* The oldest epoch some active reader may still be in. */
static unsigned oldest_seen(struct dns_epoch *e, unsigned now)
{
    unsigned oldest = now;
    for (unsigned k = 0; k < e->n_readers; k++) {
        struct reader *r = &e->readers[k];
        if (!atomic_load(&r->active))
            continue;
        unsigned seen = atomic_load(&r->seen);
        if ((int)(seen - oldest) < 0)
            oldest = seen;
    }
    return oldest;
}

enum collected { NOTHING_LEFT, MORE_READY, WAITING };

/* Frees what every reader has passed, at most PER_TICK objects, outside the lock so that a
 * writer is never held up by free(). The list is in epoch order (a retirement takes the next
 * epoch under the lock), so what can go is a prefix of it. A big change retires hundreds of
 * thousands of objects; freeing them a slice per loop iteration keeps /health and /metrics
 * answered meanwhile. */
static enum collected collect(struct dns_epoch *e)
{
    enum { PER_TICK = 4096 };
    uv_mutex_lock(&e->lock); /* registrations too: see the top of this file */
    unsigned oldest = oldest_seen(e, atomic_load(&e->now));
    size_t n = 0;
    while (n < e->n_retired && n < PER_TICK && (int)(oldest - e->retired[n].epoch) >= 0)
        n++;
    struct retired *done = malloc(n * sizeof(*done) + 1);
    if (done == NULL) {
        uv_mutex_unlock(&e->lock);
        return WAITING; /* try again at the next check */
    }
    memcpy(done, e->retired, n * sizeof(*done));
    memmove(e->retired, e->retired + n, (e->n_retired - n) * sizeof(*done));
    e->n_retired -= n;
    enum collected left = e->n_retired == 0                          ? NOTHING_LEFT
                          : (int)(oldest - e->retired[0].epoch) >= 0 ? MORE_READY
                                                                     : WAITING;
    uv_mutex_unlock(&e->lock);
    for (size_t i = 0; i < n; i++)
        done[i].free_fn(done[i].ptr);
    free(done);
    return left;
}

static void on_check(uv_timer_t *timer)
{
    struct dns_epoch *e = timer->data;
    switch (collect(e)) {
    case NOTHING_LEFT:
        uv_timer_stop(timer);
        return;
    case MORE_READY: /* the next slice at the next loop iteration, after pending I/O */
        uv_timer_start(timer, on_check, 0, CHECK_MS);
        return;
    case WAITING:
        break;
    }
    for (unsigned k = 0; k < e->n_readers; k++) {
        if (atomic_load(&e->readers[k].active))
            uv_async_send(&e->readers[k].wake);
    }
}

static void on_kick(uv_async_t *handle)
{
    struct dns_epoch *e = handle->data;
    on_check(&e->timer);
    uv_mutex_lock(&e->lock);
    bool waiting = e->n_retired > 0;
    uv_mutex_unlock(&e->lock);
    if (waiting && !uv_is_active((uv_handle_t *)&e->timer))
        uv_timer_start(&e->timer, on_check, CHECK_MS, CHECK_MS);
}

int dns_epoch_new(struct dns_epoch **out, uv_loop_t *control, unsigned max_readers)
{
    struct dns_epoch *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return UV_ENOMEM;
    e->readers = calloc(max_readers, sizeof(*e->readers));
    if (e->readers == NULL) {
        free(e);
        return UV_ENOMEM;
    }
    e->n_readers = max_readers;
    for (unsigned k = 0; k < max_readers; k++)
        e->readers[k].epoch = e;
    uv_timer_init(control, &e->timer);
    uv_async_init(control, &e->kick, on_kick);
    uv_mutex_init(&e->lock);
    e->timer.data = e->kick.data = e;
    *out = e;
    return 0;
}

void dns_epoch_close(struct dns_epoch *epoch)
{
    if (epoch != NULL) {
        uv_close((uv_handle_t *)&epoch->timer, NULL);
        uv_close((uv_handle_t *)&epoch->kick, NULL);
    }
}

void dns_epoch_free(struct dns_epoch *epoch)
{
    if (epoch == NULL)
        return;
    for (size_t i = 0; i < epoch->n_retired; i++)
        epoch->retired[i].free_fn(epoch->retired[i].ptr);
    free(epoch->retired);
    free(epoch->readers);
    uv_mutex_destroy(&epoch->lock);
    free(epoch);
}

int dns_epoch_reader_start(struct dns_epoch *epoch, unsigned reader, uv_loop_t *loop)
{
    if (reader >= epoch->n_readers)
        return UV_EINVAL;
    struct reader *r = &epoch->readers[reader];
    uv_mutex_lock(&epoch->lock);
    atomic_store(&r->seen, atomic_load(&epoch->now));
    atomic_store(&r->active, true);
    uv_mutex_unlock(&epoch->lock);
    uv_prepare_init(loop, &r->prepare);
    uv_async_init(loop, &r->wake, on_wake);
    r->prepare.data = r->wake.data = r;
    uv_prepare_start(&r->prepare, on_prepare);
    return 0;
}

void dns_epoch_reader_stop(struct dns_epoch *epoch, unsigned reader)
{
    struct reader *r = &epoch->readers[reader];
    atomic_store(&r->active, false);
    uv_close((uv_handle_t *)&r->prepare, NULL);
    uv_close((uv_handle_t *)&r->wake, NULL);
}

void dns_epoch_retire(struct dns_epoch *epoch, void *ptr, void (*free_fn)(void *ptr))
{
    if (ptr == NULL)
        return;
    uv_mutex_lock(&epoch->lock);
    bool first = epoch->n_retired == 0;
    if (epoch->n_retired == epoch->cap_retired) {
        size_t cap = epoch->cap_retired ? epoch->cap_retired * 2 : 16;
        struct retired *p = realloc(epoch->retired, cap * sizeof(*p));
        if (p == NULL) {
            /* Nowhere to remember it: keeping it allocated is safe, freeing it is not. */
            uv_mutex_unlock(&epoch->lock);
            return;
        }
        epoch->retired = p;
        epoch->cap_retired = cap;
    }
    unsigned now = atomic_fetch_add_explicit(&epoch->now, 1, memory_order_acq_rel) + 1;
    epoch->retired[epoch->n_retired++] = (struct retired){ptr, free_fn, now};
    uv_mutex_unlock(&epoch->lock);
    /* One kick per batch of retirements: the control loop takes it from there. */
    if (first)
        uv_async_send(&epoch->kick);
}
