/* zones/table.h - a hash table of entry pointers that one thread writes while workers read.
 *
 * Open addressing with linear probing over atomic slots. The writer (the control thread)
 * inserts, replaces and deletes (a tombstone) with single atomic stores, so a reader sees each
 * entry before or after a change, never half of one. Growing copies the live entries into a
 * new slot array, publishes it with one store and retires the old array to the epoch
 * (dns/epoch.h): a reader still probing it sees the table as it was a moment ago. Entries
 * themselves are the caller's: a replaced or deleted one must be retired to the epoch too.
 *
 * Readers pass a match function; zones_table_find() is inline, so each call site's match
 * compiles into the probe loop. */
#ifndef ZONES_TABLE_H
#define ZONES_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/epoch.h"

/* Marks a deleted slot: the address of an object nothing else uses. */
extern const char zones_table_tomb;
#define ZONES_TABLE_TOMB ((void *)&zones_table_tomb)

struct zones_table_slots {
    size_t mask;
    _Atomic(void *) slot[];
};

struct zones_table {
    _Atomic(struct zones_table_slots *) slots;
    size_t used;                            /* live entries: writer only */
    size_t tombs;                           /* tombstones: writer only */
    uint64_t (*hash_of)(const void *entry); /* for growing */
    struct dns_epoch *epoch;                /* NULL: no readers, free at once */
};

void zones_table_init(struct zones_table *t, uint64_t (*hash_of)(const void *entry),
                      struct dns_epoch *epoch);
/* Frees the slot array; the entries are the caller's. */
void zones_table_deinit(struct zones_table *t);

typedef bool (*zones_table_match_fn)(const void *entry, const void *key);

/* The first entry after *pos (start with *pos = SIZE_MAX) whose probe sequence for hash
 * matches key, or NULL. Lets a reader walk several entries with one key (two Services
 * stating one address). Readers and the writer. */
static inline void *zones_table_next(const struct zones_table *t, uint64_t hash,
                                     zones_table_match_fn match, const void *key, size_t *pos)
{
    /* C11 wants non-const pointers for atomic loads; nothing is written. */
    struct zones_table_slots *s =
        atomic_load_explicit(&((struct zones_table *)t)->slots, memory_order_acquire);
    size_t i = *pos == SIZE_MAX ? (size_t)hash & s->mask : (*pos + 1) & s->mask;
    for (;; i = (i + 1) & s->mask) {
        void *e = atomic_load_explicit(&s->slot[i], memory_order_acquire);
        if (e == NULL)
            return NULL;
        if (e != ZONES_TABLE_TOMB && match(e, key)) {
            *pos = i;
            return e;
        }
    }
}

static inline void *zones_table_find(const struct zones_table *t, uint64_t hash,
                                     zones_table_match_fn match, const void *key)
{
    size_t pos = SIZE_MAX;
    return zones_table_next(t, hash, match, key, &pos);
}

/* Writer only. Puts entry in the table: where old is (replacing it), or, old NULL, in a free
 * slot. Returns 0, or -1 when old is not there. */
int zones_table_put(struct zones_table *t, uint64_t hash, void *old, void *entry);
/* Writer only. Takes entry out; -1 when it is not there. */
int zones_table_remove(struct zones_table *t, uint64_t hash, const void *entry);
/* Writer only: every live entry, in slot order. */
void zones_table_each(const struct zones_table *t, void (*fn)(void *ctx, void *entry), void *ctx);

#endif
