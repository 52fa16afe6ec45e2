/* resolver/cache.h - the answer cache in front of the forwarder, shared by all workers.
 *
 * Stores what the forwarder answered (positive, NXDOMAIN and NODATA with their SOA, and our
 * own SERVFAIL briefly), scrubbed to the question's chain, keyed by (name, type, class, DO)
 * with a keyed hash; bounded twice, by entries and by the bytes they hold, evicted by CLOCK.
 * An answer larger than an entry may hold is kept as what a UDP client can be sent of it: a
 * truncated reply. A hit is a copy and a few patches (ID, question case, TTLs minus the
 * age), under the lock of one of up to 64 shards. */
#ifndef RESOLVER_CACHE_H
#define RESOLVER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/chain.h"
#include "dns/names.h"
#include "dns/request.h"

/* The largest answer kept whole; a larger one is kept as a truncation marker (TC over UDP,
 * a miss over TCP). Smaller when a shard's share of the memory is under four times this. */
#define RESOLVER_CACHE_MAX_ANSWER 16384
#define RESOLVER_CACHE_MIN_MEMORY 65536

struct resolver_cache_config {
    size_t size;              /* entries, the hard bound (--cache-size); default 10000 */
    size_t memory;            /* bytes the entries hold together, at least 64 KiB
                                 (--cache-memory); default 16 MiB */
    uint32_t max_ttl;         /* TTLs are capped to this (--cache-max-ttl); default 3600 */
    uint32_t min_ttl;         /* ... and raised to this (--cache-min-ttl); default 0 */
    uint32_t serve_stale_s;   /* keep expired entries this long for RFC 8767 (--serve-stale); 0 */
    uint32_t servfail_ttl;    /* how long our own SERVFAIL is cached; default 5, 0 = never */
    uint64_t (*now_ms)(void); /* a monotonic clock in ms; NULL: uv_hrtime(). For tests. */
};

void resolver_cache_config_default(struct resolver_cache_config *cfg);

/* Counted under each shard's lock by whichever worker holds it; resolver_cache_stats() takes
 * the locks in turn, so it is safe from any thread (a scrape waits a lookup at most). */
struct resolver_cache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;
    uint64_t evictions; /* entries dropped to make room for others */
    uint64_t served_stale;
    uint64_t oversized; /* answers over RESOLVER_CACHE_MAX_ANSWER, kept as TC markers */
    size_t entries;
    size_t capacity;
    size_t bytes;  /* held by the entries: their answers and keys, with malloc's overhead */
    size_t memory; /* the bound on bytes */
};

struct resolver_cache;

/* Allocates the whole table; keeps a copy of cfg. */
int resolver_cache_new(struct resolver_cache **out, const struct resolver_cache_config *cfg);
/* NULL is a no-op. */
void resolver_cache_free(struct resolver_cache *cache);

/* The cache stage: answers fresh hits (DNS_DONE), passes the rest (DNS_NEXT). Thread-safe. */
enum dns_verdict resolver_cache_serve(void *self, struct dns_request *req);

/* The forwarder's side (resolver/forward.c calls these; no stage runs after an answer).
 * Stores msg, an upstream reply to req's question that resolver_scrub_check() accepted, with
 * no TC bit, rcode NOERROR or NXDOMAIN. A reply whose CNAME chain reaches a name of own (may
 * be NULL) is not stored: that part of the answer is svcdns's, never the upstream's. Thread-safe.
 */
void resolver_cache_store(struct resolver_cache *cache, const struct dns_request *req,
                          const uint8_t *msg, size_t len, const struct dns_names *own);
/* Every upstream failed for req's question (why: DNS_FAILURE_SILENT or _UPSTREAM). When
 * serve_stale_s allows, answers req from the expired entry (TTL 30, EDE 3 Stale Answer) and
 * returns true. Otherwise remembers the failure for servfail_ttl seconds, so a dead upstream
 * does not cost every client the full deadline, and returns false. Thread-safe. */
bool resolver_cache_fail(struct resolver_cache *cache, struct dns_request *req,
                         enum dns_failure why);

void resolver_cache_stats(struct resolver_cache *cache, struct resolver_cache_stats *out);

/* "90", "90s", "30m", "1h", "2d", "1h30m" -> seconds (at most 30 days). 0 or -1. */
int resolver_cache_parse_duration(const char *text, uint32_t *seconds);
/* "1048576", "512K", "64M", "1G" (binary units; "Mi", "MiB" and "MB" read the same) ->
 * bytes, at most 64 GiB. 0 or -1. */
int resolver_cache_parse_size(const char *text, size_t *bytes);

#endif
