/* dns/epoch.c - quiescent-state-based reclamation for data the workers read without locks.
 *
 * Why it is safe. The writer stores the new pointer, then bumps the epoch to E and tags the
 * old object with E. A worker records "seen E" only in its prepare callback, where it holds
 * no reference; having read E (acquire, paired with the bump's release, which comes after
 * the pointer store), every load it makes afterwards sees the new pointer. So once every
 * registered worker has seen E, nobody holds the old object. A worker registers before its
 * first read, so one that starts while an object is being retired either counts or can only
 * ever see the new pointer. */
#include "dns/epoch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

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
    uv_timer_t timer;
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

/* Unsigned difference: epochs may wrap after four billion retirements. */
static bool has_seen(struct reader *r, unsigned epoch)
{
    return !atomic_load(&r->active) || (int)(atomic_load(&r->seen) - epoch) >= 0;
}

static void on_check(uv_timer_t *timer)
{
    struct dns_epoch *e = timer->data;
    size_t kept = 0;
    bool lagging = false;
    for (size_t i = 0; i < e->n_retired; i++) {
        struct retired *t = &e->retired[i];
        bool free_it = true;
        for (unsigned k = 0; k < e->n_readers && free_it; k++)
            free_it = has_seen(&e->readers[k], t->epoch);
        if (free_it) {
            t->free_fn(t->ptr);
        } else {
            e->retired[kept++] = *t;
            lagging = true;
        }
    }
    e->n_retired = kept;
    if (!lagging) {
        uv_timer_stop(timer);
        return;
    }
    for (unsigned k = 0; k < e->n_readers; k++) {
        if (atomic_load(&e->readers[k].active))
            uv_async_send(&e->readers[k].wake);
    }
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
    e->timer.data = e;
    *out = e;
    return 0;
}

void dns_epoch_close(struct dns_epoch *epoch)
{
    if (epoch != NULL)
        uv_close((uv_handle_t *)&epoch->timer, NULL);
}

void dns_epoch_free(struct dns_epoch *epoch)
{
    if (epoch == NULL)
        return;
    for (size_t i = 0; i < epoch->n_retired; i++)
        epoch->retired[i].free_fn(epoch->retired[i].ptr);
    free(epoch->retired);
    free(epoch->readers);
    free(epoch);
}

int dns_epoch_reader_start(struct dns_epoch *epoch, unsigned reader, uv_loop_t *loop)
{
    if (reader >= epoch->n_readers)
        return UV_EINVAL;
    struct reader *r = &epoch->readers[reader];
    atomic_store(&r->seen, atomic_load(&epoch->now));
    atomic_store(&r->active, true);
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
    if (epoch->n_retired == epoch->cap_retired) {
        size_t cap = epoch->cap_retired ? epoch->cap_retired * 2 : 16;
        struct retired *p = realloc(epoch->retired, cap * sizeof(*p));
        if (p == NULL) {
            /* Nowhere to remember it: keeping it allocated is safe, freeing it is not. */
            return;
        }
        epoch->retired = p;
        epoch->cap_retired = cap;
    }
    unsigned now = atomic_fetch_add_explicit(&epoch->now, 1, memory_order_acq_rel) + 1;
    epoch->retired[epoch->n_retired++] = (struct retired){ptr, free_fn, now};
    on_check(&epoch->timer);
    if (epoch->n_retired > 0 && !uv_is_active((uv_handle_t *)&epoch->timer))
        uv_timer_start(&epoch->timer, on_check, CHECK_MS, CHECK_MS);
}
