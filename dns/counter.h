/* dns/counter.h - statistics counters that a worker bumps and /metrics reads.
 *
 * Each counter has one writer, the thread that owns it (a worker's chain, its search stage),
 * so a bump is a relaxed load and a relaxed store: plain instructions, no lock prefix, and no
 * data race for another thread reading it (C11 atomics; TSan agrees). A reader may see a
 * count a few queries old.
 *
 * Every count /metrics shows, and how it is kept safe (reviewed for issue 11):
 *   single writer, these counters:   the chain's stats (dns/chain.h; the server's dropped
 *                                    datagrams too, bumped on the same worker), the search
 *                                    stage's (resolver/search.h);
 *   many writers, atomic_fetch_add:  the forwarder's and the upstreams' (resolver/forward.c,
 *                                    resolver/upstream.h), the rate limiter's (dns/rrl.c);
 *   under a lock:                    the cache's, per shard, read under each shard's lock;
 *   one thread only:                 the HTTP server's and the reload's state live on the
 *                                    control loop, which also serves /metrics; a worker's
 *                                    connection and slot counts (dns/worker.h) are never read
 *                                    by another thread. */
#ifndef DNS_COUNTER_H
#define DNS_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

struct dns_counter {
    _Atomic uint64_t value;
};

/* Only from the counter's one writer. */
static inline void dns_counter_add(struct dns_counter *c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&c->value, memory_order_relaxed);
    atomic_store_explicit(&c->value, v + n, memory_order_relaxed);
}

static inline void dns_counter_inc(struct dns_counter *c)
{
    dns_counter_add(c, 1);
}

/* From any thread. C11 wants a non-const pointer for atomic_load; nothing is written. */
static inline uint64_t dns_counter_get(const struct dns_counter *c)
{
    return atomic_load_explicit(&((struct dns_counter *)c)->value, memory_order_relaxed);
}

#endif
