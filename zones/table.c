/* zones/table.c - the writer's side of zones_table: put, remove, grow.
 *
 * Invariant: live entries plus tombstones never fill more than half of the slots, so every
 * probe sequence meets an empty slot and a reader's loop ends. */
#include "zones/table.h"

#include <stdlib.h>
#include <string.h>

#include "zones/objects.h"

#define MIN_SLOTS 16

const char zones_table_tomb = 0;

static struct zones_table_slots *new_slots(size_t n)
{
    struct zones_table_slots *s = zones_xcalloc(1, sizeof(*s) + n * sizeof(s->slot[0]));
    s->mask = n - 1;
    return s;
}

void zones_table_init(struct zones_table *t, uint64_t (*hash_of)(const void *entry),
                      struct dns_epoch *epoch)
{
    memset(t, 0, sizeof(*t));
    atomic_store(&t->slots, new_slots(MIN_SLOTS));
    t->hash_of = hash_of;
    t->epoch = epoch;
}

void zones_table_deinit(struct zones_table *t)
{
    free(atomic_load(&t->slots));
    atomic_store(&t->slots, NULL);
}

static void retire(struct zones_table *t, void *ptr)
{
    if (t->epoch != NULL)
        dns_epoch_retire(t->epoch, ptr, free);
    else
        free(ptr);
}

/* A new array with room for one more entry at half load, holding the live entries only. */
static void grow(struct zones_table *t)
{
    struct zones_table_slots *old = atomic_load_explicit(&t->slots, memory_order_relaxed);
    size_t n = MIN_SLOTS;
    while (n < (t->used + 1) * 4)
        n *= 2;
    struct zones_table_slots *s = new_slots(n);
    for (size_t i = 0; i <= old->mask; i++) {
        void *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (e == NULL || e == ZONES_TABLE_TOMB)
            continue;
        size_t j = (size_t)t->hash_of(e) & s->mask;
        while (atomic_load_explicit(&s->slot[j], memory_order_relaxed) != NULL)
            j = (j + 1) & s->mask;
        atomic_store_explicit(&s->slot[j], e, memory_order_relaxed);
    }
    t->tombs = 0;
    atomic_store_explicit(&t->slots, s, memory_order_release);
    retire(t, old);
}

/* The slot holding entry in hash's probe sequence, or NULL. */
static _Atomic(void *) *slot_of(const struct zones_table *t, uint64_t hash, const void *entry)
{
    struct zones_table_slots *s =
        atomic_load_explicit(&((struct zones_table *)t)->slots, memory_order_relaxed);
    for (size_t i = (size_t)hash & s->mask;; i = (i + 1) & s->mask) {
        void *e = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (e == NULL)
            return NULL;
        if (e == entry)
            return &s->slot[i];
    }
}

int zones_table_put(struct zones_table *t, uint64_t hash, void *old, void *entry)
{
    if (old != NULL) {
        _Atomic(void *) *slot = slot_of(t, hash, old);
        if (slot == NULL)
            return -1;
        atomic_store_explicit(slot, entry, memory_order_release);
        return 0;
    }
    struct zones_table_slots *s = atomic_load_explicit(&t->slots, memory_order_relaxed);
    if ((t->used + t->tombs + 1) * 2 > s->mask + 1) {
        grow(t);
        s = atomic_load_explicit(&t->slots, memory_order_relaxed);
    }
    size_t i = (size_t)hash & s->mask;
    for (;; i = (i + 1) & s->mask) {
        void *e = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (e == NULL || e == ZONES_TABLE_TOMB) {
            if (e == ZONES_TABLE_TOMB)
                t->tombs--;
            break;
        }
    }
    atomic_store_explicit(&s->slot[i], entry, memory_order_release);
    t->used++;
    return 0;
}

int zones_table_remove(struct zones_table *t, uint64_t hash, const void *entry)
{
    _Atomic(void *) *slot = slot_of(t, hash, entry);
    if (slot == NULL)
        return -1;
    atomic_store_explicit(slot, ZONES_TABLE_TOMB, memory_order_release);
    t->used--;
    t->tombs++;
    return 0;
}

void zones_table_each(const struct zones_table *t, void (*fn)(void *ctx, void *entry), void *ctx)
{
    struct zones_table_slots *s =
        atomic_load_explicit(&((struct zones_table *)t)->slots, memory_order_relaxed);
    for (size_t i = 0; i <= s->mask; i++) {
        void *e = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (e != NULL && e != ZONES_TABLE_TOMB)
            fn(ctx, e);
    }
}
